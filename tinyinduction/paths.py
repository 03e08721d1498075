"""Where lessons write figures and runs, whatever the working directory.

    figures_dir()            the repository's figures/ (a checkout installed with
                             pip install -e .), else ./figures
    figures_dir("exercises") figures/exercises/: where exercise versions of the lessons
                             write, so a student's figures never replace the committed ones
    runs_dir()               the repository's runs/, else ./runs
    cache_directory()        $XDG_CACHE_HOME/tinyinduction (~/.cache/tinyinduction): tables
                             built once and named by a hash of their recipe (glyphs, BPE)

Environment variables (the test suite uses them to keep its output in a temporary
directory):
    TINYINDUCTION_FIGURES    directory for figures instead of the above
    TINYINDUCTION_RUNS       directory for training runs instead of the above
    TINYINDUCTION_QUICK=1    lessons run their fastest setting (smaller runs, fewer
                             points); what changes is printed by each lesson
"""
from __future__ import annotations

import os
from pathlib import Path


def repository_root() -> Path | None:
    """The checkout this package was installed from (editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "setup.cfg").is_file() and (root / "lessons").is_dir():
        return root
    return None


def _base(variable: str, default_name: str) -> Path:
    chosen = os.environ.get(variable)
    if chosen:
        return Path(chosen)
    root = repository_root()
    return (root if root is not None else Path.cwd()) / default_name


def figures_dir(subdir: str | None = None) -> Path:
    """Directory for figures (created if missing); `subdir` is a folder inside it."""
    path = _base("TINYINDUCTION_FIGURES", "figures")
    if subdir:
        path = path / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Directory for training runs (created if missing)."""
    path = _base("TINYINDUCTION_RUNS", "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_directory() -> Path:
    """$XDG_CACHE_HOME/tinyinduction, or ~/.cache/tinyinduction when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinyinduction"


def lessons_dir() -> Path | None:
    """The repository's lessons/ directory, or None when the package is not a checkout."""
    root = repository_root()
    return None if root is None else root / "lessons"


def quick_mode() -> bool:
    """True when TINYINDUCTION_QUICK is set to 1/true/yes: lessons take their fastest setting."""
    value = os.environ.get("TINYINDUCTION_QUICK", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"TINYINDUCTION_QUICK = {value!r}: allowed values are 1, true, yes, 0, false, no")
