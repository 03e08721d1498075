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
from .base import Row
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
