"""`reproduce race`: every layer-1 head trained alone, and all heads together (finding 2).

First the network with all heads (seed 5, the paper's setting). Then, for each layer-1
head h, the same network trained with every other layer-1 head ablated throughout
training (their values zeroed, as the paper does). Each alone-run lasts the paper's
31,250 steps, or 3x the all-heads learning time if that is longer (our stand-in features
can make learning slower than the paper's): results.json says which (`steps_rule`).
Paper: every head alone eventually learns (~0.30M-0.61M sequences = ~9,400-19,000
steps), all together learn fastest (~0.27M = ~8,400 steps).
"""
from __future__ import annotations

from ..sweep import RunSpec
from .base import Row, format_value
from .setups import setting

NAME = "race"
SUMMARY = "Singh et al. finding 2: each layer-1 head trained alone, and all together"
OPTIONS = ("seed", "features")
PAPER_STEPS = 31_250
PAPER = {"all": 0.27e6 / 32, "alone": (0.30e6 / 32, 0.61e6 / 32)}   # learning times in steps


def run(ctx) -> dict:
    from . import plots
    model, task, train = setting(ctx.quick, ctx.seed, ctx.features, checkpoint_every=PAPER_STEPS)
    if ctx.quick:
        train = train.replace(checkpoint_every=train.steps)
    everyone = ctx.train_runs([RunSpec("all", model, task, train)], grid="all")["all"]
    base_steps = train.steps
    if everyone.learning_time is not None and 3 * everyone.learning_time > base_steps:
        steps, rule = 3 * everyone.learning_time, f"3 x the all-heads learning time ({everyone.learning_time:,} steps)"
        # keep a whole number of evaluation intervals
        steps = -(-steps // train.eval_every) * train.eval_every
    else:
        steps, rule = base_steps, f"{'the quick setting' if ctx.quick else 'the paper'}'s {base_steps:,} steps"
    alone_train = train.replace(steps=steps, checkpoint_every=min(steps, train.checkpoint_every * 2))
    specs = [RunSpec(f"head={h}", model, task, alone_train, ({"kind": "only_head", "layer": 1, "head": h},))
             for h in range(model.n_heads)]
    ctx.log(f"training each of the {model.n_heads} layer-1 heads alone for {steps:,} steps ({rule}) ...")
    alone = ctx.train_runs(specs, grid="alone")
    curves = {"all": _curve(everyone)}
    curves.update({str(h): _curve(alone[f"head={h}"]) for h in range(model.n_heads)})
    learning_time = {"all": everyone.learning_time}
    learning_time.update({str(h): alone[f"head={h}"].learning_time for h in range(model.n_heads)})
    final_loss = {key: curve["loss"][-1] for key, curve in curves.items()}
    plots.race_figure(ctx.figure_path("race" + ("_quick" if ctx.quick else "")), curves, learning_time,
                      note=ctx.figure_note)
    learned = [lt for key, lt in learning_time.items() if key != "all" and lt is not None]
    return {"learning_time": learning_time, "final_loss": final_loss, "steps_alone": steps,
            "steps_rule": rule, "n_alone_learned": len(learned),
            "all_fastest": everyone.learning_time is not None and all(
                everyone.learning_time <= lt for lt in learned),
            "curves": curves}


def _curve(summary) -> dict:
    history = summary.history()
    return {"step": history["step"], "loss": history["eval/train/loss"]}


def table(results) -> list[Row]:
    lt = results["learning_time"]
    heads = sorted((k for k in lt if k != "all"), key=int)
    alone = [lt[h] for h in heads]
    learned = [v for v in alone if v is not None]
    return [
        Row("learning time, all heads (steps)", lt["all"], f"~{PAPER['all']:,.0f}",
            "stand-in features, not Omniglot"),
        Row("learning time, each head alone (steps)", alone,
            f"~{PAPER['alone'][0]:,.0f}-{PAPER['alone'][1]:,.0f}", "- = did not learn within "
            f"{results['steps_alone']:,} steps"),
        Row("heads that learn alone", f"{len(learned)} of {len(alone)}", "all 8"),
        Row("fastest alone / all together", None if not learned or lt["all"] is None
            else min(learned) / lt["all"], f"{PAPER['alone'][0] / PAPER['all']:.2f}",
            "> 1: all heads together learn fastest"),
        Row("alone-run length", results["steps_alone"], "", results["steps_rule"]),
    ]


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Heads race"
FIGURES = {"race": "The loss of each layer-1 head trained alone, and of all heads together."}


def _ratio(results):
    lt = results["learning_time"]
    learned = [v for k, v in lt.items() if k != "all" and v is not None]
    return None if not learned or lt["all"] is None else min(learned) / lt["all"]


def report(results) -> str:
    lt = results["learning_time"]
    alone = [v for k, v in lt.items() if k != "all"]
    learned = [v for v in alone if v is not None]
    ratio = _ratio(results)
    paper_ratio = PAPER["alone"][0] / PAPER["all"]
    verdict = ("as in the paper, all heads together learn fastest" if results["all_fastest"]
               else "unlike the paper, a head alone learns as fast as all heads together or faster")
    return (f"Each layer-1 head trained alone (the other heads' values zeroed all through "
            f"training), and all heads together, seed {results['meta']['seed']}. All heads together "
            f"cross 0.4 ln 2 at step {format_value(lt['all'])} (paper ~{PAPER['all']:,.0f}); each "
            f"alone-run lasts {results['steps_alone']:,} steps: {results['steps_rule']}.\n\n"
            f"{len(learned)} of {len(alone)} heads learn alone, at steps "
            f"{format_value(sorted(learned)) if learned else '-'} (paper: all of them, "
            f"~{PAPER['alone'][0]:,.0f}-{PAPER['alone'][1]:,.0f}); {verdict}: the fastest single "
            f"head needs {format_value(ratio)} times as long as the whole layer (paper "
            f"{paper_ratio:.2f}).")


def headline(results) -> list[Row]:
    return [Row("all heads together learn fastest: fastest head alone / all together (learning time)",
                _ratio(results), f"{PAPER['alone'][0] / PAPER['all']:.2f}")]
