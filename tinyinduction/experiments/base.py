"""The `reproduce` contract shared by every paper experiment.

    python -m tinyinduction reproduce NAME [--seed S] [--features F] [--text PATH] [--out DIR]
                                           [--jobs N] [--quick] [--json] [--scheduler ADDRESS]
                                           [--figures DIR] [--plain | --explore] [--vocab N]

- checks everything before writing anything, so a refused command leaves DIR as it
  found it: the name, every option (an option the experiment does not use is refused,
  not ignored), the feature table, the text, the paths, the scheduler (connected);
- DIR belongs to one setting: DIR/reproduce.json records the experiment, --quick, the
  seed, --features and --text, and a DIR that holds another experiment, or this one at
  another setting, is refused in one line naming what differs (`seed: 5 there, 6
  here`), as `train` refuses a run directory of another run;
- trains what it needs through the sweep runner (finished runs in DIR are reused,
  interrupted ones resumed, a DIR holding other runs is refused);
- a stop (Ctrl-C, SIGTERM) ends it after every running run has saved (sweep.GridStopped):
  no results are written from an incomplete set, the same command continues;
- writes DIR/results.json (strict JSON: NaN becomes null) and DIR/table.md, and prints a
  table of our numbers next to the paper's;
- figures: only the default run (the paper's setting: no --quick, seed 5, no --features
  or --text, no --out) draws the repository's figures/; any other under DIR/figures/, so
  no other run replaces a committed figure; --figures DIR chooses. A figure's title
  states the setting when it is not the paper's (Context.figure_note);
- --json prints results.json as one JSON object on the last line.
Defaults: DIR = runs/reproduce/NAME, with _quick, _seed=S, _features=F, _text=PATH,
_vocab=N added for a setting that is not the default, and _plain or _explore last for
olsson's other runs (so they sit beside the default's DIR, which reads them); sweep.run_dir_name
makes it a safe name; seed 5 (the paper's).
"""
from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from .. import __version__
from ..jsonio import to_jsonable, write_atomic, write_json
from ..runs import check_output_dir, describe_differences, identity_differences
from ..sweep import connect_scheduler, run_dir_name, run_grid
from . import EXPERIMENTS, provenance
from .provenance import finished_before, training_seconds

PAPER_SEED = 5
RECORD_FILE = "reproduce.json"
DEFAULT_OPTIONS = ("seed",)      # an experiment module's OPTIONS: which of seed, features, text,
                                 # plain, explore, vocab it uses
MODES = ("plain", "explore")     # olsson's other runs (--plain, --explore): DIR_plain, DIR_explore


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
    features: str | None = None    # few-shot experiments: the exemplar features (--features)
    plain: bool = False            # olsson: the long runs on plain text (--plain)
    explore: bool = False          # olsson: the exploratory runs (--explore)
    vocab: int | None = None       # olsson: the BPE's size (--vocab; default 1024)
    executor: Any = None           # a connected scheduler's executor (else scheduler/jobs decide)
    figure_files: list = field(default_factory=list)
    runs: dict = field(default_factory=dict)    # "grid/name" -> {"reused", "train_seconds"}

    def train_runs(self, specs, grid: str | None = None) -> dict:
        """Train (or reuse) runs through the sweep runner; {name: sweep.RunSummary}.
        Raises sweep.GridStopped when stopped (the runs saved; no results from them).

        grid: a sub-grid name (its runs go to out/runs/<grid>); one per experiment by default.
        """
        where = self.out / "runs" / grid if grid else self.out / "runs"
        label = f"reproduce {self.name}{' --quick' if self.quick else ''}" + (f" {grid}" if grid else "")
        reused = {spec.name: finished_before(where / spec.name, spec.train.steps) for spec in specs}
        summaries = run_grid(specs, where, jobs=self.jobs, scheduler=self.scheduler, grid_name=label,
                             log=self.log, executor=self.executor)
        for name, summary in summaries.items():     # for results.json's meta (the results page)
            self.runs[f"{grid}/{name}" if grid else name] = {
                "reused": reused[name], "train_seconds": round(training_seconds(summary), 1)}
        return summaries

    def figure_path(self, stem: str) -> Path:
        """Where to save figure `stem` (a PNG); remembered for results.json."""
        self.figures.mkdir(parents=True, exist_ok=True)
        path = self.figures / f"{stem}.png"
        self.figure_files.append(str(path))
        return path

    @property
    def figure_note(self) -> str:
        """What a figure's title adds when the setting is not the paper's, e.g. "seed 7,
        features glyphs" ("" at the paper's setting)."""
        parts = (["quick setting"] if self.quick else []) \
            + ([f"seed {self.seed}"] if self.seed != PAPER_SEED else []) \
            + ([f"features {self.features}"] if self.features else []) \
            + ([f"text {self.text}"] if self.text else []) \
            + ([f"BPE of {self.vocab}"] if self.vocab else [])
        return ", ".join(parts)


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


def _options(name, module, seed, features, text, plain=False, explore=False, vocab=None) -> dict:
    """The setting's options, each checked against what the experiment uses."""
    uses = getattr(module, "OPTIONS", DEFAULT_OPTIONS)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"--seed = {seed!r}: must be a non-negative integer")
    for flag, value in (("plain", plain), ("explore", explore)):
        if not isinstance(value, bool):
            raise ValueError(f"{flag} = {value!r}: must be True or False")
    if plain and explore:
        raise ValueError(f"reproduce {name}: give --plain or --explore, not both")
    if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 3):
        raise ValueError(f"--vocab {vocab!r}: must be an integer >= 3 (the BPE's tokens, BOS and UNK included)")
    for option, value in (("seed", seed), ("features", features), ("text", text), ("plain", plain or None),
                          ("explore", explore or None), ("vocab", vocab)):
        if value is not None and option not in uses:
            uses_text = ", ".join(f"--{o}" for o in uses) or "none of --seed, --features, --text"
            raise ValueError(f"reproduce {name} does not take --{option} (it uses {uses_text})"
                             + ("; only the olsson experiment trains on text" if option == "text" else ""))
    for option, value in (("features", features), ("text", text)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"--{option} {value!r}: give "
                             + ("the path of a text file or directory (without --text, olsson "
                                "reads the Python standard library)" if option == "text" else
                                "a feature source: builtin[:...], glyphs[:...] or a .npy file"))
    options = {"seed": (PAPER_SEED if seed is None else seed) if "seed" in uses else None,
               "features": features, "text": os.path.abspath(text) if text is not None else None}
    for option, value in (("plain", plain), ("explore", explore), ("vocab", vocab)):
        if option in uses:                             # recorded only by the experiments that take them
            options[option] = value
    return options


def default_out(name: str, quick: bool, options: dict) -> Path:
    """runs/reproduce/NAME, with the setting's non-default options in the name."""
    label = name + ("_quick" if quick else "")
    if options["seed"] not in (None, PAPER_SEED):
        label += f"_seed={options['seed']}"
    for option in ("features", "text", "vocab"):
        if options.get(option) is not None:
            label += f"_{option}={options[option]}"
    for mode in MODES:
        if options.get(mode):
            label += f"_{mode}"
    return Path("runs/reproduce") / run_dir_name(label)


def _recorded_setting(out: Path) -> dict | None:
    """The setting DIR holds: reproduce.json, or (a DIR written before it existed) what its
    results.json's meta or its grids' names say; None for a new or empty DIR. A DIR that
    holds something else is refused."""
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        if (out / RECORD_FILE).exists():
            record = json.loads((out / RECORD_FILE).read_text())
            if isinstance(record, dict) and "experiment" in record:
                return record
        elif (out / "results.json").exists():
            meta = json.loads((out / "results.json").read_text()).get("meta", {})
            if "experiment" in meta:
                legacy = {"experiment": meta["experiment"], "quick": meta.get("quick")}
                uses = getattr(load(meta["experiment"]), "OPTIONS", DEFAULT_OPTIONS) \
                    if meta["experiment"] in EXPERIMENTS else DEFAULT_OPTIONS
                return {**legacy, "seed": meta.get("seed")} if "seed" in uses else legacy
        else:
            labels = {json.loads(grid.read_text()).get("grid", "") for grid in out.glob("runs/**/grid.json")}
            found = {(label.split()[1], "--quick" in label.split()) for label in labels
                     if label.startswith("reproduce ")}
            if len(found) == 1:      # an interrupted run of an older version: seed not recorded
                experiment, quick = found.pop()
                return {"experiment": experiment, "quick": quick}
    except (OSError, ValueError, AttributeError, IndexError):
        pass
    raise ValueError(f"--out {out} is not empty and holds no {RECORD_FILE} (nor a reproduce "
                     "result of an older version); give a new or empty directory")


def claim_out(out: Path, name: str, quick: bool, options: dict) -> dict:
    """The record of this setting for DIR/reproduce.json; refuses a DIR that holds another
    experiment or another setting, naming what differs. Reads only."""
    record = {"experiment": name, "quick": quick, **options}
    old = _recorded_setting(out)
    if old is None:
        return record
    # what an older version did not record is not compared (its runs still check their seeds)
    differences = identity_differences(old, {key: record[key] for key in old if key in record})
    if differences:
        raise ValueError(f"--out {out} holds reproduce {old.get('experiment')} at another setting ("
                         + describe_differences(differences) + "); give another --out, or leave "
                         "--out out: the default directory follows the setting")
    return record


def _provenance(ctx, started_at, load_start, code) -> dict:
    """When, where and on what code (the commit when it started: it ran the code it imported
    then) the experiment ran, and its runs (trained or reused)."""
    return {"started": started_at, "jobs": ctx.jobs, "machine": provenance.machine(),
            "load": {"start": load_start, "end": provenance.load_average()},
            "commit": code,
            "runs": {"count": len(ctx.runs), "reused": sum(r["reused"] for r in ctx.runs.values()),
                     "train_seconds": round(sum(r["train_seconds"] for r in ctx.runs.values()), 1),
                     "each": ctx.runs}}


def run_experiment(name: str, seed: int | None = None, out=None, jobs: int = 1, quick: bool = False,
                   scheduler: str | None = None, figures=None, as_json: bool = False,
                   log=print, text: str | None = None, features: str | None = None, plain: bool = False,
                   explore: bool = False, vocab: int | None = None) -> dict:
    """Run experiment `name` under the reproduce contract (module docstring); its results.
    Raises sweep.GridStopped if stopped (nothing written beyond the saved runs)."""
    module = load(name)
    if not isinstance(quick, bool):
        raise ValueError(f"quick = {quick!r}: must be True or False")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs = {jobs!r}: must be an integer >= 1")
    options = _options(name, module, seed, features, text, plain, explore, vocab)
    default_setting = not quick and options["seed"] in (None, PAPER_SEED) and features is None \
        and text is None and vocab is None and out is None
    out = check_output_dir(out if out is not None else default_out(name, quick, options), "--out")
    if str(out) in ("", "."):
        raise ValueError(f"--out {str(out)!r}: give a directory for the runs and results")
    # only the default run draws the repository's figures: no other replaces a committed one
    figures = check_output_dir(figures if figures is not None else
                               Path("figures") if default_setting else out / "figures", "--figures")
    record = claim_out(out, name, quick, options)
    ctx = Context(name, options["seed"] if options["seed"] is not None else PAPER_SEED, out, jobs,
                  quick, scheduler, figures, log, text=text, features=features, plain=plain, explore=explore,
                  vocab=vocab)
    if features is not None:
        from .setups import setting
        setting(quick, ctx.seed, features=features)    # the table is built (or read) and checked
    if hasattr(module, "check"):
        module.check(ctx)                              # e.g. olsson: the text can be trained on
    if scheduler is not None:
        ctx.executor = connect_scheduler(scheduler)
    # everything is checked: now DIR is this setting's
    write_json(out / RECORD_FILE, record, indent=1)
    started, started_at, load_start = time.perf_counter(), provenance.now(), provenance.load_average()
    code = provenance.commit()
    setting_text = ctx.figure_note or "the paper's setting"
    log(f"reproduce {name} ({setting_text}): runs and results in {out}, figures in {figures}, "
        f"{jobs} job{'s' if jobs > 1 else ''}")
    results = module.run(ctx)
    wall = time.perf_counter() - started
    results = to_json({**results, "meta": {"experiment": name, "quick": quick, "seed": options["seed"],
                                           "features": features, "text": options["text"],
                                           **{k: options[k] for k in ("plain", "explore", "vocab") if k in options},
                                           "wall_seconds": round(wall, 1), "version": __version__,
                                           "figures": ctx.figure_files, **_provenance(ctx, started_at,
                                                                                     load_start, code)}})
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
