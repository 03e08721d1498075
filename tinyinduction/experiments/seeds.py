"""`reproduce seeds`: seeds 5-9 of the paper's setting, unclamped (Singh et al. finding 8).

Per seed: the learning time, the final induction strength of every layer-1 head (whole
training set), and each head's single-head accuracy (every other layer-1 head's values
ablated at evaluation). Across seeds and heads (5 x 8 points): the Pearson correlation
of final induction strength with single-head accuracy, and with the seed's learning
time (each head paired with the learning time of the run it belongs to).
Paper: strength tracks single-head accuracy strongly and learning time only weakly.
"""
from __future__ import annotations

import numpy as np

from ..heads import induction_strength_on_train_set
from ..subcircuits import only_head
from ..sweep import RunSpec
from ..train import evaluate, load_params
from .base import Row, format_value
from .heads import checkpoints
from .setups import setting, task_of

NAME = "seeds"
SUMMARY = "Singh et al. finding 8: seeds 5-9, induction strength vs accuracy and timing"
OPTIONS = ("features",)   # it trains seeds 5-9 itself
PAPER_SEEDS = (5, 6, 7, 8, 9)
QUICK_SEEDS = (5, 6, 7)


def correlation(x, y):
    """Pearson correlation of two lists, skipping pairs with a missing value (None if < 3)."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3:
        return None
    a, b = np.array(pairs, dtype=float).T
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def run(ctx) -> dict:
    from . import plots
    seeds = QUICK_SEEDS if ctx.quick else PAPER_SEEDS
    specs = []
    for seed in seeds:
        model, task, train = setting(ctx.quick, seed, ctx.features)
        specs.append(RunSpec(f"seed={seed}", model, task, train.replace(checkpoint_every=train.steps)))
    runs = ctx.train_runs(specs)
    task = task_of(specs[0].task)
    batch = task.eval_sets()["train"]
    results = {"seeds": list(seeds), "learning_time": [], "final_induction_strength": [],
               "only_head_acc": []}
    for spec in specs:
        summary = runs[spec.name]
        params, _ = load_params(checkpoints(summary.out_dir)[-1][1])
        results["learning_time"].append(summary.learning_time)
        results["final_induction_strength"].append(
            induction_strength_on_train_set(params, spec.model, task).tolist())
        results["only_head_acc"].append(
            [evaluate(params, spec.model, batch, only_head(spec.model, 1, h))[1]
             for h in range(spec.model.n_heads)])
    strength = [s for row in results["final_induction_strength"] for s in row]
    accuracy = [a for row in results["only_head_acc"] for a in row]
    timing = [lt for lt, row in zip(results["learning_time"], results["final_induction_strength"])
              for _ in row]
    results["corr_strength_acc"] = correlation(strength, accuracy)
    results["corr_strength_learning_time"] = correlation(strength, timing)
    plots.seeds_figure(ctx.figure_path("seeds" + ("_quick" if ctx.quick else "")), results,
                       note=ctx.figure_note)
    return results


def table(results) -> list[Row]:
    return [
        Row("seeds", results["seeds"]),
        Row("learning time per seed (steps)", results["learning_time"], "~4,700-11,000 (rise from "
            "~0.15M-0.35M sequences)", "stand-in features, not Omniglot"),
        Row("corr(final induction strength, single-head accuracy)", results["corr_strength_acc"],
            "strong", "over seeds x layer-1 heads"),
        Row("corr(final induction strength, learning time)", results["corr_strength_learning_time"],
            "weak", "each head with its run's learning time"),
    ]


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Seeds"
FIGURES = {"seeds": "Final induction strength of every layer-1 head of every seed against its "
                    "single-head accuracy (left) and its run's learning time (right)."}


def report(results) -> str:
    times = [t for t in results["learning_time"] if t is not None]
    acc, timing = results["corr_strength_acc"], results["corr_strength_learning_time"]
    n_heads = sum(len(row) for row in results["final_induction_strength"])
    verdict = ("as in the paper, a head's final induction strength predicts how well it does the "
               "task alone much better than when its run learned"
               if acc is not None and timing is not None and abs(acc) > abs(timing) else
               "unlike the paper, strength does not predict single-head accuracy better than timing")
    return (f"Seeds {format_value(results['seeds'])} of the same setting, unclamped: the final "
            f"induction strength of each layer-1 head ({n_heads} heads) against its single-head "
            "accuracy (every other layer-1 head's values ablated at evaluation) and against its "
            f"run's learning time. The learning times span "
            + (f"{min(times):,}-{max(times):,} steps" if times else "nothing (no run learned)")
            + f"; {verdict} (r = {format_value(acc)} against r = {format_value(timing)}).")


def headline(results) -> list[Row]:
    return [Row("induction strength predicts single-head accuracy, not timing: correlation with "
                "accuracy, with learning time",
                [results["corr_strength_acc"], results["corr_strength_learning_time"]], "strong, weak")]
