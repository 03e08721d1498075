"""`reproduce toy`: the toy three-subcircuit model, and held against the network.

1. The scalar toy (D = 3 factors, s = 1, w0 = 0.05, tau = 1): plateau length and
   transition time with 0, 1, 2 factors clamped at their targets, closed form against
   solve_ivp (what `python -m tinyinduction toy` prints), and the figure toy_clamping.
2. Singh et al.'s vector toy (a, b, c in R^20, truth seed 0, start seed 1, lr 1, 1,000
   steps; their Fig. 5a): the step at which the loss falls below 0.4 x its plateau with
   nothing, c, or b and c clamped.
3. The network: the seed's unclamped run of the few-shot setting (the paper's, or
   --quick's), trained or reused through the sweep runner; its phase-change descriptors
   (phases.describe_history) and the toy fitted to its loss for D = 1, 2, 3
   (toy.fit_scalar_model, from the plateau's start), with the figure toy_network_fit.
The toy's definitions and closed forms: tinyinduction/toy/ and the reference manual.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..phases import PAPER_THRESHOLD, describe_history, describe_phase_change
from ..sweep import RunSpec
from .. import toy
from .base import Row, format_value
from .report import fixed
from .setups import setting

NAME = "toy"
SUMMARY = "the toy three-subcircuit model: clamping removes factors; fitted to the network's drop"
OPTIONS = ("seed", "features")     # of the network run the toy is fitted to
SCALAR = {"s": 1.0, "w0": 0.05, "tau": 1.0}          # `python -m tinyinduction toy`'s defaults
VECTOR = {"n": 20, "truth_seed": 0, "init_seed": 1, "lr": 1.0, "steps": 1000}
CLAMP_NAMES = {"none": "no factor clamped (D=3)", "one_clamp": "one clamped (D=2)",
               "two_clamps": "two clamped (D=1)"}
VECTOR_NAMES = {"none": "nothing", "one_clamp": "c", "two_clamps": "b and c"}   # toy.VECTOR_CLAMPS
PAPER = {"scalar": "each clamped factor shortens the plateau; with two the decay is exponential",
         "vector": "plateau, then drop; shorter with c clamped; none with b and c clamped",
         "network": "-"}


def scalar_toy(points: int = 400) -> dict:
    """Plateau and transition with 0/1/2 clamps (closed form, solve_ivp) and the curves."""
    s, w0, tau = SCALAR["s"], SCALAR["w0"], SCALAR["tau"]
    summary = toy.clamping_summary(s, w0, tau)
    t = toy.time_grid(s, w0, tau, points)
    curves = toy.clamping_curves(s, w0, tau, t)
    return {"summary": summary, "t": t, "curves": curves,
            "max_rel_error": max(c["max_rel_error"] for c in curves.values())}


def vector_toy() -> tuple[dict, dict]:
    """({clamp label: transition step}, histories) of Singh et al.'s vector toy."""
    truth = toy.random_factors(VECTOR["n"], VECTOR["truth_seed"])
    init = toy.random_factors(VECTOR["n"], VECTOR["init_seed"])
    histories = {label: toy.train_vector_model(truth, init, VECTOR["lr"], VECTOR["steps"], clamp)
                 for label, clamp in toy.VECTOR_CLAMPS.items()}
    steps = {}
    for label, history in histories.items():
        loss = np.asarray(history["loss"])
        # the plateau level: the highest loss after the first steps' fall (as lesson 04)
        phase = describe_phase_change(history["step"], loss, plateau_level=loss[5:50].max())
        steps[label] = phase.transition_time
    return steps, histories


def network_fit(history: dict) -> dict:
    """The network's phase-change descriptors and the toy fitted to its loss (D = 1, 2, 3)."""
    x = np.asarray(history["step"], dtype=float)
    loss = np.asarray(history["eval/train/loss"], dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        phase = describe_history(history, loss_key="eval/train/loss", threshold=PAPER_THRESHOLD)
        best = toy.fit_scalar_model(x, loss)
        fits = {d: toy.fit_scalar_model(x, loss, depths=(d,), x_start=best.x_start)
                for d in best.rms_by_depth}
    return {"x": x, "loss": loss, "best": best, "fits": fits, "phase": phase}


def _step(value):
    """An interpolated step, to the nearest step (None where there is none)."""
    return None if value is None or not np.isfinite(value) else int(round(value))


def run(ctx) -> dict:
    scalar = scalar_toy()
    vector_steps, histories = vector_toy()
    toy.plot_clamping_figure(str(ctx.figure_path("toy_clamping" + ("_quick" if ctx.quick else ""))),
                             scalar["t"], scalar["curves"], scalar["summary"], histories)
    model, task, train = setting(ctx.quick, ctx.seed, ctx.features)
    train = train.replace(checkpoint_every=train.steps)
    spec = RunSpec(f"seed={ctx.seed}", model, task, train)
    summary = ctx.train_runs([spec])[spec.name]
    fit = network_fit(summary.history())
    best, phase = fit["best"], fit["phase"]
    toy.fit_figure(str(ctx.figure_path("toy_network_fit" + ("_quick" if ctx.quick else ""))),
                   fit["x"], fit["loss"], fit["fits"], best.depth, best.x_start,
                   f"seed-{ctx.seed} run ({'quick' if ctx.quick else 'paper'} setting), eval train loss",
                   "Network loss vs fitted toy (loss = floor + height (1 - u/s))"
                   + (f" [{ctx.figure_note}]" if ctx.figure_note else ""))
    return {
        "scalar": {**SCALAR, "depth": 3,
                   "plateau_length": {k: v for k, v in scalar["summary"]["plateau_length"].items()},
                   "transition_time": {k: v for k, v in scalar["summary"]["transition_time"].items()},
                   "max_rel_error": scalar["max_rel_error"]},
        "vector": {**VECTOR, "transition_step": vector_steps},
        "network": {"steps": int(fit["x"][-1]), "learning_time": summary.learning_time,
                    "plateau_level": phase.plateau_level, "plateau_start": _step(phase.plateau_start),
                    "plateau_end": _step(phase.plateau_end), "transition_time": _step(phase.transition_time),
                    "best_depth": best.depth, "rms_by_depth": best.rms_by_depth,
                    "tau": best.tau, "w0": best.w0, "x_start": best.x_start},
    }


def table(results) -> list[Row]:
    scalar, vector, network = results["scalar"], results["vector"], results["network"]
    rows = []
    for key, label in CLAMP_NAMES.items():
        plateau, transition = scalar["plateau_length"][key], scalar["transition_time"][key]
        rows.append(Row(f"scalar toy, {label}: plateau / transition (tau), closed form",
                        [plateau["closed_form"], transition["closed_form"]],
                        PAPER["scalar"] if key == "none" else "",
                        f"solve_ivp {format_value(plateau['simulation'])} / "
                        f"{format_value(transition['simulation'])}"))
    rows.append(Row("scalar toy: max relative error, closed forms vs solve_ivp", scalar["max_rel_error"]))
    for label, step in vector["transition_step"].items():
        rows.append(Row(f"vector toy, {VECTOR_NAMES.get(label, label)} clamped: loss < 0.4 x "
                        "plateau at step", step,
                        PAPER["vector"] if label == "none" else ""))
    rms = network["rms_by_depth"]
    rows.append(Row("network: plateau level, start, end (steps)",
                    [network["plateau_level"], network["plateau_start"], network["plateau_end"]], ""))
    rows.append(Row("network: loss < 0.4 ln 2 at step (interpolated)", network["transition_time"]))
    rows.append(Row("network: toy fit rms for D = " + ", ".join(str(d) for d in sorted(rms)),
                    [rms[d] for d in sorted(rms)], PAPER["network"],
                    f"best D = {network['best_depth']}"))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "The toy model"
FIGURES = {
    "toy_clamping": "Left: the scalar toy with 0, 1, 2 clamps: lines are the closed forms, circles "
                    "solve_ivp, dotted lines the plateau ends. Right: the vector toy, its loss on a "
                    "log scale (with two clamps the line is straight: exponential decay). "
                    "`python -m tinyinduction toy` draws the same figure.",
    "toy_network_fit": "The network's evaluation loss (dots) and the toy fitted to it for D = 1, 2, 3.",
}


def report(results) -> str:
    scalar, vector, network = results["scalar"], results["vector"], results["network"]
    plateaus = [scalar["plateau_length"][k]["closed_form"] for k in CLAMP_NAMES]
    rms = network["rms_by_depth"]
    ordered = sorted(rms, key=lambda d: rms[d])
    steps = vector["transition_step"]
    return "\n".join([
        "The toy model (its maths: [the reference manual](tinyinduction/README.md"
        "#the-toy-model-why-the-phase-change-is-a-plateau-and-then-a-drop)) is a product of D "
        "factors trained by gradient flow; clamping a factor at its target removes it from the "
        f"product. With D = {scalar['depth']}, s = {scalar['s']:g}, w0 = {scalar['w0']:g}, "
        f"tau = {scalar['tau']:g} (the defaults of `python -m tinyinduction toy`), the plateau lasts "
        + " -> ".join(f"{p:.4g}" for p in plateaus)
        + " tau with 0, 1, 2 factors clamped: each clamp shortens it "
        + ", ".join(f"{a / b:.0f}x" for a, b in zip(plateaus, plateaus[1:]))
        + f", and with two the decay is exponential. The closed forms and solve_ivp agree to a "
        f"relative error of {scalar['max_rel_error']:.1e}.",
        "",
        f"Singh et al.'s vector toy (N = {vector['n']}, lr {vector['lr']:g}): the loss falls below "
        "0.4 x its plateau at step " + ", ".join(f"{format_value(v)} with {VECTOR_NAMES.get(k, k)} clamped"
                                                 for k, v in steps.items()) + ".",
        "",
        f"The network (the seed-{results['meta']['seed']} run, {network['steps']:,} steps): a plateau "
        f"at {fixed(network['plateau_level'])} from step {fixed(network['plateau_start'], ',.0f')} "
        f"to {fixed(network['plateau_end'], ',.0f')}, loss < 0.4 ln 2 at step "
        f"{fixed(network['transition_time'], ',.0f')}. The toy fitted from the plateau's start: rms "
        + ", ".join(f"{rms[d]:.4f} for D = {d}" for d in sorted(rms))
        + f". Best D = {network['best_depth']}; the next best, D = {ordered[1]}, has "
        f"{rms[ordered[1]] / rms[ordered[0]]:.2f}x its rms" + _shape_verdict(rms) + " The clamping "
        "experiments ([subcircuits](#subcircuits-singh-et-al-fig-5b)) fit the toy to every clamped "
        "condition.",
    ])


def _shape_verdict(rms) -> str:
    """What the fit's rms values can say about the shape of the drop."""
    one = rms.get("1", rms.get(1))
    more = [v for d, v in rms.items() if int(d) > 1]
    if one is None or not more:
        return "."
    if one > 2 * min(more):
        close = max(more) < 1.5 * min(more)
        return (": the drop is sigmoidal, not exponential"
                + (", and its shape alone hardly tells two factors from three." if close else "."))
    return ": one factor fits as well, so the curve shows no plateau-then-drop shape to speak of."

