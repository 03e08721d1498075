"""`reproduce data`: Singh et al. Fig. 6, data properties act through different subcircuits.

Training classes 50 / 100 / 200 (5 labels, label pairs split 8/2) and labels 5 / 10 / 15
(50 classes; pairs split 8/2, 36/9, 84/21), each under four conditions, always with only
the reference run's strongest layer-1 head active (the others' values ablated):
  unclamped   nothing given, 62,500 steps (2M sequences)
  B_evolves   A and C clamped (layer-0 perfect + copy): only the match B is learned
  C_evolves   B clamped (match): only the copy C is learned (A is then irrelevant)
  BC_evolve   A clamped: B and C are learned
the clamped ones for 9,375 steps (300k sequences), evaluated every 30 steps.
Paper: unclamped, more labels delay the phase change a lot and more classes mildly;
B is slowed by classes, not labels; C by labels, not classes.
"""
from __future__ import annotations

import dataclasses

from ..subcircuits import DATA_CONDITIONS, condition_specs
from ..sweep import RunSpec
from .base import Row, format_value
from .subcircuits import reference_heads

NAME = "data"
SUMMARY = "Singh et al. Fig. 6: classes and labels act through different subcircuits"
OPTIONS = ("seed", "features")
PAPER_SWEEPS = {"classes": (50, 100, 200), "labels": (5, 10, 15)}
QUICK_SWEEPS = {"classes": (10, 20, 40), "labels": (5, 7, 9)}
PAPER_STEPS = {"unclamped": 62_500, "clamped": 9_375}
QUICK_STEPS = {"unclamped": 3_000, "clamped": 1_500}
EVAL_EVERY = {"paper": {"unclamped": 500, "clamped": 30}, "quick": {"unclamped": 50, "clamped": 15}}
# mid-drop of the unclamped runs, in steps (sequences / 32), read from the paper's Fig. 6
PAPER_MID_DROP = {"labels": {"5": 0.25e6 / 32, "10": 0.75e6 / 32, "15": 1.2e6 / 32},
                  "classes": {"50": 0.25e6 / 32, "200": 0.35e6 / 32}}
PAPER_EFFECT = {"unclamped": "labels delay a lot, classes mildly", "B_evolves": "classes slow it, labels do not",
                "C_evolves": "labels slow it, classes do not", "BC_evolve": "-"}


def data_settings(base_task, quick: bool) -> dict:
    """{"classes=50": task config, ...} for both sweeps (the shared base point once)."""
    sweeps = QUICK_SWEEPS if quick else PAPER_SWEEPS
    settings = {}
    for axis, values in sweeps.items():
        for value in values:
            field = "n_train_classes" if axis == "classes" else "n_labels"
            settings[(axis, value)] = dataclasses.replace(base_task, **{field: value})
    return settings


def run(ctx) -> dict:
    from . import plots
    model, base_task, train, roles = reference_heads(ctx)
    ind, prev = roles.strongest_induction_head[1], roles.strongest_previous_token_head[1]
    steps = QUICK_STEPS if ctx.quick else PAPER_STEPS
    every = EVAL_EVERY["quick" if ctx.quick else "paper"]
    specs, where = [], {}
    for condition in DATA_CONDITIONS:
        kind = "unclamped" if condition == "unclamped" else "clamped"
        run_train = train.replace(steps=steps[kind], eval_every=every[kind],
                                  checkpoint_every=steps[kind] // 2)
        seen = {}
        for (axis, value), task in data_settings(base_task, ctx.quick).items():
            key = (task.n_train_classes, task.n_labels)
            if key not in seen:       # the base point belongs to both sweeps: train it once
                name = f"{condition},classes={key[0]},labels={key[1]}"
                specs.append(RunSpec(name, model.replace(n_labels=task.n_labels), task, run_train,
                                     condition_specs(condition, ind, prev)))
                seen[key] = name
            where[(condition, axis, value)] = seen[key]
    ctx.log(f"training {len(specs)} runs (4 conditions x {len(specs) // 4} data settings) ...")
    runs = ctx.train_runs(specs, grid="sweeps")
    results = {"induction_head": [1, ind], "steps": steps}
    curves = {}
    for (condition, axis, value), name in where.items():
        entry = results.setdefault(condition, {}).setdefault(axis, {})
        entry[str(value)] = runs[name].learning_time
        history = runs[name].history()
        curves.setdefault(condition, {}).setdefault(axis, {})[str(value)] = {
            "step": history["step"], "loss": history["eval/train/loss"]}
    results["curves"] = curves
    plots.data_figure(ctx.figure_path("data" + ("_quick" if ctx.quick else "")), results,
                      note=ctx.figure_note)
    return results


def _slowdown(entry: dict):
    """Learning time at the largest setting / at the smallest (None if either never learned)."""
    values = [entry[k] for k in sorted(entry, key=int)]
    if values[0] is None or values[-1] is None or values[0] == 0:
        return None
    return values[-1] / values[0]


def table(results) -> list[Row]:
    rows = []
    for condition in DATA_CONDITIONS:
        for axis in ("classes", "labels"):
            entry = results[condition][axis]
            slow = _slowdown(entry)
            paper = ", ".join(f"~{v:,.0f}" for v in PAPER_MID_DROP[axis].values()) \
                if condition == "unclamped" else ""
            rows.append(Row(f"{condition}: learning time by {axis} ({', '.join(entry)})",
                            [entry[k] for k in entry], paper,
                            "slowdown largest/smallest: " + ("-" if slow is None else f"{slow:.2f}x")))
        rows.append(Row(f"{condition}: the paper's finding", "", PAPER_EFFECT[condition],
                        "paper: mid-drop steps, ours: learning time" if condition == "unclamped" else ""))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Data through subcircuits (Singh et al. Fig. 6)"
FIGURES = {"data": "Rows are the two sweeps, columns the four conditions (the clamped ones on a "
                   "log step axis)."}
# (condition, the axis that should slow it more, the other): the paper's three findings
FINDINGS = (("unclamped", "labels", "classes"), ("B_evolves", "classes", "labels"),
            ("C_evolves", "labels", "classes"))


def _change(entry) -> str:
    values = [entry[k] for k in sorted(entry, key=int)]
    return f"{format_value(values[0])} -> {format_value(values[-1])}"


def _holds(results, condition, more, less) -> bool | None:
    a, b = _slowdown(results[condition][more]), _slowdown(results[condition][less])
    return None if a is None or b is None else a > b


def _verdict(held, agree: str, disagree: str) -> str:
    return {True: agree, False: disagree}.get(held, "a run never learned: no verdict.")


def report(results) -> str:
    sweeps = {axis: sorted(results["unclamped"][axis], key=int) for axis in ("classes", "labels")}
    held = [_holds(results, *finding) for finding in FINDINGS]
    paper_labels = PAPER_MID_DROP["labels"]
    paper_classes = PAPER_MID_DROP["classes"]
    u, b, c = results["unclamped"], results["B_evolves"], results["C_evolves"]
    return "\n".join([
        f"The seed-{results['meta']['seed']} reference run names the induction head "
        f"(L1H{results['induction_head'][1]}); every run keeps only it active. Training classes "
        f"{', '.join(sweeps['classes'])} (with {min(sweeps['labels'], key=int)} labels) and labels "
        f"{', '.join(sweeps['labels'])} (with {min(sweeps['classes'], key=int)} classes), under four "
        f"conditions: unclamped ({results['steps']['unclamped']:,} steps) and three clamped ones "
        f"({results['steps']['clamped']:,} steps): B_evolves (A and C given: only the match B is "
        "learned), C_evolves (B given: only the copy C), BC_evolve (A given). Learning time: the "
        "first evaluation with train loss < 0.4 ln 2.",
        "",
        f"{sum(h is True for h in held)} of the paper's {len(FINDINGS)} findings hold on our features.",
        f"- Unclamped, the learning time goes {_change(u['labels'])} steps from the fewest to the "
        f"most labels (the paper's mid-drop ~{min(paper_labels.values()):,.0f} -> "
        f"~{max(paper_labels.values()):,.0f}) and {_change(u['classes'])} from the fewest to the most "
        f"classes (paper ~{min(paper_classes.values()):,.0f} -> ~{max(paper_classes.values()):,.0f}); "
        "the paper: labels delay it a lot, classes mildly. Ours: " + _verdict(held[0], "labels more, as in the paper.",
                                                         "not labels more than classes, unlike the paper."),
        f"- Only the match B learned: learning time {_change(b['classes'])} over the classes sweep, "
        f"{_change(b['labels'])} over the labels sweep: " + _verdict(held[1], "classes slow it more, as in the paper.",
                                                "classes do not slow it more, unlike the paper."),
        f"- Only the copy C learned: learning time {_change(c['labels'])} over the labels sweep, "
        f"{_change(c['classes'])} over the classes sweep: " + _verdict(held[2], "labels slow it more, as in the paper.",
                                                 "labels do not slow it more, unlike the paper."),
        "",
        "In the paper's reading: classes act through the match, labels through the copy.",
    ])


def headline(results) -> list[Row]:
    u, b, c = results["unclamped"], results["B_evolves"], results["C_evolves"]
    paper = {axis: max(v.values()) / min(v.values()) for axis, v in PAPER_MID_DROP.items()}

    def times(value):
        return "-" if value is None else f"{value:.2f}x"
    return [
        Row("labels delay the phase change a lot, classes mildly: slowdown over the labels sweep, "
            "over the classes sweep", f"{times(_slowdown(u['labels']))}, {times(_slowdown(u['classes']))}",
            f"~{paper['labels']:.1f}x, ~{paper['classes']:.1f}x"),
        Row("classes slow the match (B), labels the copy (C): B's slowdown over classes, "
            "C's over labels", f"{times(_slowdown(b['classes']))}, {times(_slowdown(c['labels']))}",
            "both slowed"),
    ]
