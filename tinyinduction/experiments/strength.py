"""`reproduce strength`: training with the match clamped at a given strength (finding 8).

Only the reference run's strongest layer-1 head active, its query row clamped all
through training to s on the correct label and 1 - s on the other (subcircuits.match),
9,375 steps each (300k sequences, as the paper's clamped runs); we report the final loss
on the training set and on held-out label pairs (relabel).

The sweep is over the induction strength 2s - 1 in {-1, -0.5, 0, 0.25, 0.5, 0.75, 1},
i.e. s = 0, 0.25, 0.5, 0.625, 0.75, 0.875, 1: every clamped row is then a real
attention pattern, and a negative strength means the head looks more at the wrong
label. (The paper's code also accepts s outside [0, 1], where the row is an affine mix,
e.g. s = -1 gives -1 x the correct label's value + 2 x the other's: a sign-flipped copy,
not a wrong-label head. Two such runs, s = -1 and -0.5, are reported apart as "affine".)
Paper: negative strengths still fit the training data while the relabel loss explodes:
a head that points at the wrong label can be decoded by memorising the training label
pairs, which does not carry over to new pairs.
"""
from __future__ import annotations

from ..subcircuits import condition_specs
from ..sweep import RunSpec
from .base import Row, format_value
from .subcircuits import reference_heads

NAME = "strength"
SUMMARY = "Singh et al. finding 8: training with the match clamped at strength s"
OPTIONS = ("seed", "features")
INDUCTION_STRENGTHS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)
AFFINE_S = (-1.0, -0.5)
PAPER_STEPS, QUICK_STEPS = 9_375, 1_500


def run(ctx) -> dict:
    from . import plots
    model, task, train, roles = reference_heads(ctx)
    ind = roles.strongest_induction_head[1]
    steps = QUICK_STEPS if ctx.quick else PAPER_STEPS
    run_train = train.replace(steps=steps, eval_every=steps // 50, checkpoint_every=steps)
    pattern_s = [(1 + strength) / 2 for strength in INDUCTION_STRENGTHS]
    specs = {f"s={s:g}": RunSpec(f"s={s:g}", model, task, run_train, condition_specs("B", ind, s=s))
             for s in pattern_s + list(AFFINE_S)}
    runs = ctx.train_runs(list(specs.values()), grid="strengths")

    def finals(values):
        out = {"s": list(values), "train_loss": [], "relabel_loss": [], "train_acc": [], "relabel_acc": []}
        for s in values:
            final = runs[f"s={s:g}"].final
            for key, name in (("train_loss", "train/loss"), ("relabel_loss", "relabel/loss"),
                              ("train_acc", "train/acc"), ("relabel_acc", "relabel/acc")):
                out[key].append(final.get(f"eval/{name}"))
        return out

    results = {**finals(pattern_s), "induction_strength": list(INDUCTION_STRENGTHS),
               "affine": finals(AFFINE_S), "induction_head": [1, ind], "steps": steps, "curves": {}}
    for s in pattern_s:
        history = runs[f"s={s:g}"].history()
        results["curves"][f"{2 * s - 1:g}"] = {"step": history["step"], "train": history["eval/train/loss"],
                                               "relabel": history["eval/relabel/loss"]}
    plots.strength_figure(ctx.figure_path("strength" + ("_quick" if ctx.quick else "")), results,
                          note=ctx.figure_note)
    return results


def table(results) -> list[Row]:
    rows = []
    for s, strength, train, relabel in zip(results["s"], results["induction_strength"],
                                           results["train_loss"], results["relabel_loss"]):
        rows.append(Row(f"strength {strength:g} (s = {s:g}): train / relabel loss", [train, relabel],
                        "fits, relabel explodes" if strength < 0 else ""))
    for s, train, relabel in zip(*(results["affine"][k] for k in ("s", "train_loss", "relabel_loss"))):
        rows.append(Row(f"affine s = {s:g} (paper's code): train / relabel loss", [train, relabel], "",
                        "not an attention pattern: a sign-flipped copy"))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Clamped strength"
FIGURES = {"strength": "Train and relabel loss over training for each clamped induction strength."}


def report(results) -> str:
    rows = list(zip(results["induction_strength"], results["train_acc"], results["relabel_loss"],
                    results["relabel_acc"]))
    negative = [(s, acc, rl, racc) for s, acc, rl, racc in rows if s < 0]
    zero = [results["train_loss"][i] for i, s in enumerate(results["induction_strength"]) if s == 0]
    affine = results["affine"]
    lines = [
        f"Only the strongest layer-1 head active (L1H{results['induction_head'][1]}), its query row "
        f"clamped all through training to induction strength 2s - 1, {results['steps']:,} steps "
        "per run. The sweep's values are induction strengths, so every clamped row is a real "
        "attention pattern (s in [0, 1]) and a negative strength is a head that looks more at the "
        "wrong label. The paper's code also accepts s outside [0, 1], where the row is no longer a "
        "distribution: those runs are reported apart (\"affine\").",
        "",
    ]
    if negative:
        lines.append("Negative strengths: " + "; ".join(
            f"strength {s:g}: training accuracy {format_value(acc)}, relabel loss {format_value(rl)} "
            f"(accuracy {format_value(racc)})" for s, acc, rl, racc in negative)
            + ". The paper: they still fit the training data while the relabel loss explodes: a "
            "head that points at the wrong label can be decoded through the label pairs seen in "
            "training, which says nothing about new pairs.")
    if zero:
        lines.append(f"At strength 0 the head carries no information about which label is right: "
                     f"train loss {format_value(zero[0])} (ln 2 = 0.693).")
    lines.append("The affine rows: " + "; ".join(
        f"s = {s:g}: train loss {format_value(t)}, relabel loss {format_value(r)}"
        for s, t, r in zip(affine["s"], affine["train_loss"], affine["relabel_loss"]))
        + ". s = -1 sends minus the correct label's value and twice the other's, a sign-flipped "
        "copy that the output layer can invert.")
    return "\n".join(lines)


def headline(results) -> list[Row]:
    i = results["induction_strength"].index(min(results["induction_strength"]))
    return [Row(f"a negative clamped strength fits training, relabel explodes: strength "
                f"{results['induction_strength'][i]:g}, train / relabel loss",
                [results["train_loss"][i], results["relabel_loss"][i]], "fits, relabel explodes")]
