"""The results page: `python -m tinyinduction reproduce all [--jobs N] [--quick] [--out DIR]`.

Runs every experiment in turn through base.run_experiment (finished runs are reused;
a stop -- Ctrl-C, SIGTERM, a refusal -- ends the whole sequence, and the same command
continues it), then writes the page from their results.json: figures/README.md at the
paper's setting, DIR/REPORT.md with --quick or --out (DIR defaults to runs/reproduce).
At the paper's setting it also rewrites the front page's headline table (README.md,
between its `<!-- headline` markers).

What an experiment module gives the page, beside NAME, SUMMARY, run and table:
    TITLE                         the section's heading
    FIGURES = {stem: caption}     a caption for each figure stem (ctx.figure_path's stem,
                                  without _quick), in the order the page shows them
    (links in report() prose are written from the repository's root, e.g.
    [the model](tinyinduction/README.md#the-model); the page makes them relative to itself)
    report(results) -> str        Markdown after the table: the setting, what agrees with
                                  the paper, what differs and why. Every number in it is
                                  formatted from `results` (paper numbers from the module's
                                  constants); none is typed into the prose
    headline(results) -> [Row]    optional: the finding(s) for the headline table
The page gives each experiment: its heading; one line with the command, the setting, the
wall time, the runs (trained here or reused, and their own training time), the machine
and its load, and the commit; the table (ours beside the paper's); report(results); and
every figure the run drew, with its caption.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from . import EXPERIMENTS
from ..jsonio import write_atomic
from .base import Row, format_table, format_value, load, run_experiment

PAGE = "figures/README.md"     # at the paper's setting; like the experiments' runs and figures,
README = "README.md"           # relative to the working directory (the repository's root)
QUICK_PAGE = "REPORT.md"
HEADLINE_START, HEADLINE_END = "<!-- headline", "<!-- headline end -->"
STAND_IN = ("**Our exemplar features are a generated stand-in for the paper's Omniglot/ResNet18 "
            "features**, tuned on the seed-5 run to put its phase change where the paper has it "
            "([the stand-in features](#the-stand-in-features)): wherever our number differs "
            "from the paper's, that is the first suspect. Our layers are numbered from 0: our "
            "layer 0 is the paper's \"layer 1\".")
QUICK_WARNING = ("**Quick setting**: a smaller network and shorter runs than the papers' (for "
                 "tests and lessons). These numbers check the pipeline; they are not the papers' "
                 "setting, and the paper columns are there for orientation only.")


# ---------------------------------------------------------------- running them all


def page_path(quick: bool, out) -> Path:
    """figures/README.md at the paper's setting; DIR/REPORT.md with --quick or --out."""
    if not quick and out is None:
        return Path(PAGE)
    return Path(out if out is not None else "runs/reproduce") / QUICK_PAGE


def run_all(jobs: int = 1, quick: bool = False, out=None, scheduler: str | None = None,
            log=print, names=None) -> Path:
    """Every experiment in turn (names: a subset, for tests), then the page; its path."""
    names = list(EXPERIMENTS) if names is None else list(names)
    unknown = [name for name in names if name not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"reproduce all: unknown experiments {unknown}; choices: {', '.join(EXPERIMENTS)}")
    path = page_path(quick, out)
    results = {}
    for number, name in enumerate(names, 1):
        log(f"\n=== reproduce all: {number}/{len(names)} {name} ===")
        where = None if out is None else Path(out) / (name + ("_quick" if quick else ""))
        try:
            results[name] = run_experiment(name, out=where, jobs=jobs, quick=quick,
                                           scheduler=scheduler, log=log)
        except BaseException:
            log(f"reproduce all stopped at {name}: the finished runs are kept; the same command "
                "continues from there")
            raise
    command = "python -m tinyinduction reproduce all" + (f" --jobs {jobs}" if jobs > 1 else "") \
        + (" --quick" if quick else "") + (f" --out {out}" if out is not None else "")
    write_page(results, path, command=command, quick=quick)
    log(f"\nresults page written to {path}")
    if not quick and out is None:
        if Path(README).is_file():
            update_headline(Path(README), headline_block(results, link=f"{PAGE}#"))
            log(f"headline table rewritten in {README}")
        else:
            log(f"no {README} here: the front page's headline table was not rewritten")
    return path


# ---------------------------------------------------------------- the page


def fixed(value, spec: str = ".3f") -> str:
    """`value` formatted with `spec`, or "-" where results.json has none (NaN is stored as
    null): for the numbers of report() prose."""
    return "-" if value is None else format(value, spec)


def slug(title: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _seconds(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 100:
        return f"{value:.0f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _load(meta) -> str:
    load = meta.get("load") or {}
    start, end = load.get("start"), load.get("end")
    if not start or not end:
        return "load not available"
    return f"load {start[0]:.1f} at the start, {end[0]:.1f} at the end (1-minute averages)"


def _commit(meta) -> str:
    commit = meta.get("commit")
    if not commit:
        return "commit unknown (not a git checkout)"
    return f"commit `{commit['commit']}`" + (" with uncommitted changes to the code" if commit["changed"] else "")


def _machine(meta) -> str:
    machine = meta.get("machine") or {}
    return f"{machine.get('cpu', 'unknown cpu')}, {machine.get('cores', '?')} cores"


def provenance_line(name: str, meta: dict) -> str:
    """The command, setting, wall time, runs, machine, load and commit of one experiment."""
    runs = meta.get("runs") or {}
    count, reused = runs.get("count", 0), runs.get("reused", 0)
    trained = count - reused
    run_text = (f"{count} run{'s' if count != 1 else ''}, {trained} trained here and {reused} reused; "
                f"the runs' own training time, summed: {_seconds(runs.get('train_seconds'))}"
                if count else "no training runs")
    setting = "quick setting" if meta.get("quick") else "the paper's setting"
    seed = f", seed {meta['seed']}" if meta.get("seed") is not None else ""
    seed += "".join(f", {option} {meta[option]}" for option in ("features", "text") if meta.get(option))
    jobs = meta.get("jobs", 1)
    return (f"`python -m tinyinduction reproduce {name}{' --quick' if meta.get('quick') else ''}`: "
            f"{setting}{seed}. Wall time {_seconds(meta.get('wall_seconds'))} with {jobs} "
            f"job{'s' if jobs != 1 else ''} ({run_text}), started {meta.get('started', '?')} on "
            f"{_machine(meta)}, {_load(meta)}; {_commit(meta)}.")


def _stem(path: str) -> str:
    stem = Path(path).stem
    return stem[:-len("_quick")] if stem.endswith("_quick") else stem


def figures_markdown(name: str, module, results: dict, page_dir: Path) -> str:
    """Every figure the run drew, captions first in FIGURES order, paths relative to the page."""
    captions = getattr(module, "FIGURES", {})
    drawn = results.get("meta", {}).get("figures", [])
    order = {stem: i for i, stem in enumerate(captions)}
    drawn = sorted(drawn, key=lambda path: order.get(_stem(path), len(order)))
    blocks = []
    for path in drawn:
        where = Path(os.path.relpath(Path(path).resolve(), page_dir.resolve())).as_posix()
        caption = captions.get(_stem(path), "")
        blocks.append(f"![{_stem(path)}]({where})\n*{caption + ' ' if caption else ''}"
                      f"Drawn by `python -m tinyinduction reproduce {name}`.*")
    return "\n\n".join(blocks)


LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")


def relink(markdown: str, page_dir: Path) -> str:
    """Links of report() prose are written from the repository's root (the working
    directory); on the page they must start from the page's directory."""
    def move(match):
        path, _, anchor = match.group(1).partition("#")
        moved = Path(os.path.relpath(Path(path).resolve(), page_dir.resolve())).as_posix()
        return f"]({moved}{'#' + anchor if anchor else ''})"
    return LINK.sub(move, markdown)


def section(name: str, results: dict, page_dir: Path) -> str:
    module = load(name)
    title = getattr(module, "TITLE", module.SUMMARY)
    parts = [f"## {title}", provenance_line(name, results.get("meta", {})),
             format_table(module.table(results), markdown=True)]
    if hasattr(module, "report"):
        prose = relink(module.report(results).strip(), page_dir)
        if prose:
            parts.append(prose)
    figures = figures_markdown(name, module, results, page_dir)
    if figures:
        parts.append(figures)
    return "\n\n".join(parts)


def headline_rows(results_by_name: dict) -> list[tuple[str, Row]]:
    """(experiment, row) of every experiment's headline, in page order."""
    rows = []
    for name, results in results_by_name.items():
        module = load(name)
        if hasattr(module, "headline"):
            rows += [(name, row) for row in module.headline(results)]
    return rows


def headline_table(results_by_name: dict, link: str) -> str:
    """The headline table; `link` + a section's anchor points at each experiment."""
    lines = ["| finding | ours | paper | experiment |", "|---|---|---|---|"]
    for name, row in headline_rows(results_by_name):
        title = getattr(load(name), "TITLE", name)
        cells = [row.quantity, format_value(row.ours), format_value(row.paper),
                 f"[{name}]({link}{slug(title)})"]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def headline_block(results_by_name: dict, link: str) -> str:
    """What the front page shows between its headline markers: a preamble and the table."""
    return "\n".join([
        "Each paper finding, our number and the paper's (the paper's setting, seed 5 unless the "
        "row says otherwise), from the runs of the [results page](figures/README.md); "
        "`python -m tinyinduction reproduce all` writes this table.",
        "**Our exemplar features are a generated stand-in for the paper's Omniglot/ResNet18 "
        "features, tuned on the seed-5 run** to put its phase change where the paper has it: "
        "the rows of that run agree because of the tuning.", "",
        headline_table(results_by_name, link)])


def write_page(results_by_name: dict, path, command: str, quick: bool) -> str:
    """Write the results page to `path`; its text."""
    path = Path(path)
    page_dir = path.parent
    page_dir.mkdir(parents=True, exist_ok=True)

    def doc(relative):     # a link from the page to one of the documents (working directory)
        return Path(os.path.relpath(Path(relative).resolve(), page_dir.resolve())).as_posix()

    metas = [r.get("meta", {}) for r in results_by_name.values()]
    wall = sum(m.get("wall_seconds") or 0 for m in metas)
    commits = sorted({_commit(m) for m in metas})
    machines = sorted({_machine(m) for m in metas})
    lines = [
        "# tinyinduction: results" + (" (quick setting)" if quick else ""), "",
        f"[Front page]({doc(README)}) · [Course guide]({doc('lessons/README.md')}) · **Results** · "
        f"[Reference manual]({doc('tinyinduction/README.md')})", "",
        f"<!-- written by `{command}` (tinyinduction/experiments/report.py): edit the experiment "
        "modules, not this page -->",
        f"Written by `{command}` from each experiment's `results.json`: every number on this page "
        "comes from a run, next to the paper's. Machine: " + "; ".join(machines) + ". Code: "
        + "; ".join(commits) + f". Total wall time {_seconds(wall)}.", ""]
    if quick:
        lines += [QUICK_WARNING, ""]
    lines += [STAND_IN, "", "## Headline results", "",
              headline_table(results_by_name, link="#"), "",
              "## The experiments", "",
              "| experiment | what it reproduces | runs (trained here, reused) | wall time | runs' own "
              "training time, summed | load at start, end |",
              "|---|---|---|---|---|---|"]
    for name, results in results_by_name.items():
        module, meta = load(name), results.get("meta", {})
        runs = meta.get("runs") or {}
        load_ = meta.get("load") or {}
        loads = ", ".join(f"{v[0]:.1f}" for v in (load_.get("start"), load_.get("end")) if v) or "-"
        lines.append(f"| [`{name}`](#{slug(getattr(module, 'TITLE', module.SUMMARY))}) | {module.SUMMARY} | "
                     f"{runs.get('count', 0)} ({runs.get('count', 0) - runs.get('reused', 0)}, "
                     f"{runs.get('reused', 0)}) | {_seconds(meta.get('wall_seconds'))} | "
                     f"{_seconds(runs.get('train_seconds'))} | {loads} |")
    lines += ["", "A reused run did not train in this call: the wall time then covers the analysis "
              "only, and the runs' own training time (whenever they trained, summed over runs that may "
              "have run side by side) says what training cost. Both depend on the machine and on what "
              "else ran on it (the load).", ""]
    text = "\n".join(lines) + "\n" + "\n\n".join(
        section(name, results, page_dir) for name, results in results_by_name.items()) + "\n"
    data = text.encode()
    write_atomic(path, lambda handle: handle.write(data))
    return text


def update_headline(readme: Path, block: str) -> None:
    """Replace the text between the front page's headline markers by `block`."""
    text = readme.read_text()
    start, end = text.find(HEADLINE_START), text.find(HEADLINE_END)
    if start == -1 or end == -1 or end < start:
        raise ValueError(f"{readme}: no '{HEADLINE_START} ...' and '{HEADLINE_END}' markers to "
                         "write the headline table between")
    first_line_end = text.index("\n", start)
    new = text[:first_line_end + 1] + block + "\n" + text[end:]
    data = new.encode()
    write_atomic(readme, lambda handle: handle.write(data))
