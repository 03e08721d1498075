"""The `reproduce` contract shared by every paper experiment.

    python -m tinyinduction reproduce NAME [--seed S] [--out DIR] [--jobs N] [--quick]
                                           [--json] [--scheduler ADDRESS] [--figures DIR]

- trains what it needs through the sweep runner (finished runs in DIR are reused,
  interrupted ones resumed, a DIR holding other runs is refused);
- writes DIR/results.json (strict JSON: NaN becomes null) and DIR/table.md, and prints a
  table of our numbers next to the paper's;
- figures: under figures/ at the paper's setting; with --quick (a reduced setting for
  lessons and tests) under DIR/figures/, so a quick run never replaces a committed
  figure; --figures DIR chooses;
- --json prints results.json as one JSON object on the last line.
Defaults: DIR = runs/reproduce/NAME (NAME_quick with --quick), seed 5 (the paper's).
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from .. import __version__
from ..runs import to_jsonable, write_atomic, write_json
from ..sweep import run_grid
from . import EXPERIMENTS

PAPER_SEED = 5


@dataclass
class Row:
    """One line of an experiment's table: our number next to the paper's."""

    quantity: str
    ours: Any
    paper: Any = ""
    note: str = ""


@dataclass
class Context:
    """What an experiment's run(ctx) gets: its settings and its doors to runs and figures."""

    name: str
    seed: int = PAPER_SEED
    out: Path = Path("runs/reproduce")
    jobs: int = 1
    quick: bool = False
    scheduler: str | None = None
    figures: Path = Path("figures")
    log: Callable = print
    text: str | None = None        # olsson: a user's text file or directory (--text)
    plain: bool = False            # olsson: the long plain-text runs (--plain)
    explore: bool = False          # olsson: the exploratory runs (--explore)
    vocab: int | None = None       # olsson: the BPE's size (--vocab; default 1024)
    figure_files: list = field(default_factory=list)

    def train_runs(self, specs, grid: str | None = None) -> dict:
        """Train (or reuse) runs through the sweep runner; {name: sweep.RunSummary}.

        grid: a sub-grid name (its runs go to out/runs/<grid>); one per experiment by default.
        """
        where = self.out / "runs" / grid if grid else self.out / "runs"
        label = f"reproduce {self.name}{' --quick' if self.quick else ''}" + (f" {grid}" if grid else "")
        return run_grid(specs, where, jobs=self.jobs, scheduler=self.scheduler, grid_name=label,
                        log=self.log)

    def figure_path(self, stem: str) -> Path:
        """Where to save figure `stem` (a PNG); remembered for results.json."""
        self.figures.mkdir(parents=True, exist_ok=True)
        path = self.figures / f"{stem}.png"
        self.figure_files.append(str(path))
        return path


def load(name: str):
    """The experiment module called `name`, or a one-line error listing the names."""
    if name not in EXPERIMENTS:
        raise ValueError(f"reproduce {name!r}: unknown experiment; choices: {', '.join(EXPERIMENTS)}")
    try:
        return importlib.import_module(f"tinyinduction.experiments.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"tinyinduction.experiments.{name}":
            raise ValueError(f"reproduce {name}: not available in this version") from None
        raise


to_json = to_jsonable   # NaN/inf -> None, NumPy -> Python, tuples -> lists (runs.py)


def format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def format_table(rows, markdown=False) -> str:
    """Rows as aligned text, or as a Markdown table."""
    cells = [(r.quantity, format_value(r.ours), format_value(r.paper), r.note) for r in rows]
    header = ("quantity", "ours", "paper", "note")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |"
                                  for row in cells])
    widths = [max(len(row[i]) for row in cells + [header]) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header[:3], widths)) + "  note"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in cells]
    return "\n".join(lines)


def _write_text(path: Path, text: str):
    data = text.encode()
    write_atomic(path, lambda handle: handle.write(data))


def run_experiment(name: str, seed: int = PAPER_SEED, out=None, jobs: int = 1, quick: bool = False,
                   scheduler: str | None = None, figures=None, as_json: bool = False,
                   log=print, text: str | None = None, plain: bool = False, explore: bool = False,
                   vocab: int | None = None) -> dict:
    """Run experiment `name` under the reproduce contract (module docstring); its results."""
    module = load(name)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed = {seed!r}: must be a non-negative integer")
    mode = "_plain" if plain else "_explore" if explore else ""       # olsson's other runs: DIR beside
    out = Path(out) if out is not None else Path("runs/reproduce") / (name + mode + ("_quick" if quick else ""))
    if str(out) in ("", "."):
        raise ValueError(f"--out {str(out)!r}: give a directory for the runs and results")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    if text is not None and name != "olsson":
        raise ValueError(f"--text {text!r}: only the olsson experiment trains on text")
    for flag, given in (("--plain", plain), ("--explore", explore), ("--vocab", vocab is not None)):
        if given and name != "olsson":
            raise ValueError(f"{flag}: only the olsson experiment takes it")
    if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 3):
        raise ValueError(f"--vocab {vocab!r}: must be an integer >= 3 (the BPE's tokens, BOS and UNK included)")
    # quick runs and runs on a user's text never replace the committed figures
    figures = Path(figures) if figures is not None else (
        out / "figures" if quick or text or vocab is not None else Path("figures"))
    if figures.exists() and not figures.is_dir():
        raise ValueError(f"--figures {figures} is a file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    ctx = Context(name, seed, out, jobs, quick, scheduler, figures, log, text=text, plain=plain,
                  explore=explore, vocab=vocab)
    started = time.perf_counter()
    log(f"reproduce {name}{' (quick setting)' if quick else ''}: seed {seed}, runs and results "
        f"in {out}, figures in {figures}, {jobs} job{'s' if jobs > 1 else ''}")
    results = module.run(ctx)
    wall = time.perf_counter() - started
    results = to_json({**results, "meta": {"experiment": name, "quick": quick, "seed": seed,
                                           "wall_seconds": round(wall, 1), "version": __version__,
                                           "figures": ctx.figure_files}})
    write_json(out / "results.json", results, indent=1)
    rows = module.table(results)
    _write_text(out / "table.md", format_table(rows, markdown=True) + "\n")
    log("")
    if quick:
        log("quick setting: a smaller network and shorter runs than the paper's; the paper's "
            "column is for orientation only")
    log(format_table(rows))
    log(f"\nwall time {wall:.0f} s; results in {out / 'results.json'}, table in {out / 'table.md'}")
    if as_json:
        print(json.dumps(results, allow_nan=False))
    return results
