"""Command-line parsers of `reproduce` and `sweep` (registered by cli.build_parser)."""
from __future__ import annotations

from . import EXPERIMENTS

ALL = "all"      # reproduce all: every experiment in turn, then the results page (report.py)


def _positive_int(text):
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _where_options(parser):
    parser.add_argument("--jobs", type=_positive_int, default=1,
                        help="training runs at once, one process each (default 1)")
    parser.add_argument("--scheduler", help="address of a Dask distributed scheduler "
                                            "(tcp://host:8786); needs pip install \".[cluster]\"")


def cmd_reproduce(args) -> int:
    from .base import run_experiment
    if args.name == ALL:
        return _reproduce_all(args)
    run_experiment(args.name, seed=args.seed, out=args.out, jobs=args.jobs, quick=args.quick,
                   scheduler=args.scheduler, figures=args.figures, as_json=args.json, text=args.text,
                   features=args.features, plain=args.plain, explore=args.explore, vocab=args.vocab)
    return 0


def _reproduce_all(args) -> int:
    from .report import run_all
    given = [f"--{option}" for option in ("seed", "features", "figures", "text")
             if getattr(args, option) is not None] + (["--json"] if args.json else [])
    if given:
        raise ValueError(f"reproduce all does not take {', '.join(given)} (it takes --jobs, --quick, "
                         "--out, --scheduler): each experiment runs at its default setting")
    run_all(jobs=args.jobs, quick=args.quick, out=args.out, scheduler=args.scheduler)
    return 0


def cmd_sweep(args) -> int:
    from ..sweep import run_dir_name, run_grid
    from .grid import expand, load_spec, spec_from_flags
    if args.spec is not None and (args.grid or args.clamp):
        raise ValueError("sweep: give a SPEC file or --grid/--clamp flags, not both")
    if args.spec is None and not args.grid:
        raise ValueError("sweep: nothing to vary; give --grid section.field=v1,v2 or a SPEC file")
    spec = load_spec(args.spec) if args.spec else spec_from_flags(args.preset, args.grid, args.clamp,
                                                                   args.name)
    runs = expand(spec)
    name = spec.get("name", "sweep")
    out = args.out or f"runs/sweep/{run_dir_name(name)}"
    where = f"the Dask scheduler {args.scheduler}" if args.scheduler else f"{args.jobs} job(s)"
    print(f"sweep {name}: {len(runs)} runs in {out}, on {where}")
    run_grid(runs, out, jobs=args.jobs, scheduler=args.scheduler, grid_name=name)
    print(f"summary in {out}/summary.csv and summary.json")
    return 0


def add_parsers(sub) -> None:
    """Add the reproduce and sweep subcommands to cli.build_parser's subparsers."""
    p = sub.add_parser("reproduce", help="run a paper experiment: "
                                         + ", ".join(EXPERIMENTS) + ", or all of them",
                       description="Reproduce a paper experiment: trains what it needs, writes "
                                   "results.json, figures and a table of our numbers next to the "
                                   "paper's. Experiments: " + "; ".join(
                                       f"{k}: {v}" for k, v in EXPERIMENTS.items())
                                   + "; all: every experiment in turn, then the results page "
                                     "(figures/README.md; with --quick or --out: DIR/REPORT.md)")
    p.add_argument("name", help="experiment: " + ", ".join(EXPERIMENTS) + ", or all")
    p.add_argument("--seed", type=int, help="seed (default 5, the paper's main run; not for seeds)")
    p.add_argument("--features", help="few-shot experiments: the exemplar features (as train "
                                      "--features; default the setting's own)")
    p.add_argument("--out", help="runs and results (default runs/reproduce/NAME, plus _quick, "
                                 "_seed=S, ... for a setting that is not the paper's; with all: "
                                 "DIR/NAME[_quick] and DIR/REPORT.md)")
    p.add_argument("--quick", action="store_true", help="a reduced setting for lessons and tests")
    p.add_argument("--json", action="store_true", help="print results.json on the last line")
    p.add_argument("--figures", help="figure directory (default figures/ for the paper's setting "
                                     "in the default DIR, else DIR/figures)")
    p.add_argument("--text", metavar="PATH", help="olsson only: a text file or directory to train on "
                                                  "instead of the Python standard library's source")
    p.add_argument("--plain", action="store_true", help="olsson only: the long runs on plain text (hours; "
                                                        "resumable), beside the default's DIR")
    p.add_argument("--explore", action="store_true", help="olsson only: the exploratory runs that chose the "
                                                          "default setting")
    p.add_argument("--vocab", type=_positive_int, metavar="N", help="olsson only: the BPE's size (default 1024)")
    _where_options(p)
    p.set_defaults(func=cmd_reproduce, resumable=True)

    p = sub.add_parser("sweep", help="a grid of training runs (local processes or a Dask cluster)",
                       description="Train every point of a grid; finished runs are skipped, "
                                   "interrupted ones resumed. SPEC is a JSON grid spec (see "
                                   "tinyinduction/experiments/grid.py), or use --grid flags.")
    p.add_argument("spec", nargs="?", help="grid spec JSON file")
    p.add_argument("--preset", default="paper", help="base setting with --grid: paper or small")
    p.add_argument("--grid", action="append", metavar="SECTION.FIELD=V1,V2",
                   help="an axis, e.g. train.seed=5,6,7 or task.n_labels=5,10 (repeatable)")
    p.add_argument("--clamp", action="append", metavar="KIND[:FIELD=VALUE,...]",
                   help="clamp every run (A, match:head=3,s=0.8, copy:head=3, ...)")
    p.add_argument("--name", help="grid name (default sweep)")
    p.add_argument("--out", help="directory of the grid (default runs/sweep/NAME)")
    _where_options(p)
    p.set_defaults(func=cmd_sweep, resumable=True)
