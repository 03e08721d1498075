"""Where lessons write figures and runs, whatever the working directory and however the
package was installed (pip install -e . or pip install .).

A lesson finds its repository from its own file, not from the package:

    ROOT = lesson_root()                  # the checkout this lesson file belongs to
    FIGURES = figures_dir(root=ROOT)      # ROOT/figures
    runs_dir(root=ROOT)                   # ROOT/runs

    lesson_root()            the first folder above the calling script's file (in a
                             notebook: above the working directory, which Jupyter sets to
                             the notebook's folder) that holds setup.cfg and lessons/
    figures_dir(sub, root=)  root/figures[/sub]; figures_dir("exercises", ...) is where
                             exercise versions of the lessons write, so a student's figures
                             never replace the committed ones
    runs_dir(root=)          root/runs
    cache_directory()        $XDG_CACHE_HOME/tinyinduction (~/.cache/tinyinduction): tables
                             built once and named by a hash of their recipe (glyphs, BPE)
Without root: the checkout the package was installed from (pip install -e .), else the
checkout the working directory is in, else the working directory.

Environment variables (the test suite uses them to keep its output in a temporary
directory):
    TINYINDUCTION_FIGURES    directory for figures instead of the above
    TINYINDUCTION_RUNS       directory for training runs instead of the above
    TINYINDUCTION_QUICK=1    lessons run their fastest setting (smaller runs, fewer
                             points); what changes is printed by each lesson
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _is_checkout(folder: Path) -> bool:
    return (folder / "setup.cfg").is_file() and (folder / "lessons").is_dir()


def find_repository(start) -> Path | None:
    """The first folder at or above `start` (a file or a folder) that is a checkout of
    this project (setup.cfg and lessons/ in it), or None."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if folder.is_dir() and _is_checkout(folder):
            return folder
    return None


def repository_root() -> Path | None:
    """The checkout this package was installed from (editable install), or None."""
    root = Path(__file__).resolve().parent.parent
    return root if _is_checkout(root) else None


def lesson_root(anchor=None) -> Path:
    """The checkout a lesson belongs to, found from the lesson's own file.

    anchor: a path inside the checkout; by default the calling script's __file__, or,
    in a notebook (no __file__), the working directory. Falls back to the package's
    checkout (editable install), then to the working directory.
    """
    if anchor is None:
        anchor = sys._getframe(1).f_globals.get("__file__") or Path.cwd()
    return find_repository(anchor) or repository_root() or Path.cwd()


def _base(variable: str, default_name: str, root) -> Path:
    chosen = os.environ.get(variable)
    if chosen:
        return Path(chosen)
    if root is None:
        root = repository_root() or find_repository(Path.cwd()) or Path.cwd()
    return Path(root) / default_name


def figures_dir(subdir: str | None = None, root=None) -> Path:
    """Directory for figures (created if missing); `subdir` is a folder inside it."""
    path = _base("TINYINDUCTION_FIGURES", "figures", root)
    if subdir:
        path = path / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(root=None) -> Path:
    """Directory for training runs (created if missing)."""
    path = _base("TINYINDUCTION_RUNS", "runs", root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_directory() -> Path:
    """$XDG_CACHE_HOME/tinyinduction, or ~/.cache/tinyinduction when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinyinduction"


def lessons_dir() -> Path | None:
    """The lessons/ directory of the package's checkout, else of the checkout the
    working directory is in, or None."""
    root = repository_root() or find_repository(Path.cwd())
    return None if root is None else root / "lessons"


def quick_mode() -> bool:
    """True when TINYINDUCTION_QUICK is set to 1/true/yes: lessons take their fastest setting."""
    value = os.environ.get("TINYINDUCTION_QUICK", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"TINYINDUCTION_QUICK = {value!r}: allowed values are 1, true, yes, 0, false, no")
