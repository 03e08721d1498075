"""`reproduce heads`: which heads do what (Singh et al. findings 1-4 and 7).

One seed-5 run of the paper's setting, then, on its final parameters (evaluation on the
fixed 1,000-sequence training evaluation set unless said otherwise):
- head roles by rule (heads.identify_heads) and the induction strength of every layer-1
  head over the whole enumerated training set (78,400 sequences);
- redundancy: accuracy with one layer-1 head ablated (its values zeroed, the paper's
  ablation), and with only one layer-1 head left (every other one ablated);
- additivity: the loss as layer-1 heads are switched on one by one, strongest first;
- many-to-many wiring: the previous-token heads of layer 0, or the other layer-0 heads,
  ablated (outputs zeroed) with the clean run's patterns kept everywhere (only value
  paths change) or with the clean layer-1 values kept (only query/key paths change);
- layer 0's direct path to the output removed, on a plateau checkpoint and at the end;
- composition scores (Q, K, V) of layer-0 into layer-1 heads, with a random baseline;
- direct logit attribution of every head;
and, on every checkpoint: induction strengths, previous-token scores, and the loss with
subcircuit clamps applied only at evaluation (post-hoc, finding 7).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..heads import identify_heads
from ..interventions import (direct_path_ablation, pattern_preserving_ablation,
                             value_preserving_ablation)
from ..measures import (composition_scores, direct_logit_attribution, induction_strength,
                        previous_token_head_score)
from ..model import loss_from_cache, run_with_cache
from ..phases import describe_history
from ..runs import checkpoint_paths
from ..subcircuits import ablate_heads, build_clamps, only_head
from ..sweep import RunSpec
from ..train import evaluate, load_params
from .base import Row, format_value
from .setups import setting, task_of

NAME = "heads"
SUMMARY = "Singh et al. findings 1-4, 7: head roles, ablations, redundancy, wiring, direct path"
OPTIONS = ("seed", "features")

# Singh et al. 2024, their seed 5 (shared/research/singh2024.md)
PAPER = {
    "only_head_acc": [0.40, 0.77, 0.75, 0.98, 0.43, 0.65, 0.29, 0.59],
    "switch_on_loss": [0.117, 0.044, 0.010],
    "wiring": {"pattern_preserving": {"previous_token_heads": 0.9985, "other_heads": 0.343},
               "value_preserving": {"previous_token_heads": 0.699, "other_heads": 0.993}},
    "direct_path": {"plateau_loss_increase": 0.1, "final_loss_increase": 0.0},
    "previous_token_heads": [[0, 1], [0, 2], [0, 5]],
    "strongest_induction_head": [1, 3],
}
POSTHOC = {   # subcircuit clamps applied only at evaluation, on the trained heads
    "A": lambda ind, prev: [{"kind": "A"}],
    "B": lambda ind, prev: [{"kind": "match", "layer": 1, "head": ind, "s": 1.0}],
    "C": lambda ind, prev: [{"kind": "copy", "layer": 1, "head": ind}],
}


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint of a run, in step order."""
    return sorted(checkpoint_paths(run_dir))


def redundancy(params, config, batch) -> dict:
    """Accuracy with one layer-1 head ablated / with only one left; loss as heads switch on."""
    ablate_one = [evaluate(params, config, batch, ablate_heads(config, 1, [h]))[1]
                  for h in range(config.n_heads)]
    alone = [evaluate(params, config, batch, only_head(config, 1, h))[1] for h in range(config.n_heads)]
    return {"ablate_one_acc": ablate_one, "only_head_acc": alone}


def switch_on(params, config, batch, order) -> list[float]:
    """Loss with the first k heads of `order` active (the others' values zero), k = 1..H."""
    losses = []
    for k in range(1, len(order) + 1):
        off = [h for h in range(config.n_heads) if h not in order[:k]]
        losses.append(evaluate(params, config, batch, ablate_heads(config, 1, off))[0])
    return losses


def wiring(params, config, batch, previous_token_heads) -> dict:
    """Accuracy with the previous-token heads (or the other layer-0 heads) ablated,
    keeping the clean run's patterns (value paths change) or layer-1 values (Q/K paths)."""
    clean = run_with_cache(params, config, batch)
    sets = {"previous_token_heads": [(0, h) for h in previous_token_heads],
            "other_heads": [(0, h) for h in range(config.n_heads) if h not in previous_token_heads]}
    out = {"pattern_preserving": {}, "value_preserving": {}, "heads": {k: [h for _, h in v] for k, v in sets.items()}}
    for name, heads in sets.items():
        if not heads:
            out["pattern_preserving"][name] = out["value_preserving"][name] = None
            continue
        out["pattern_preserving"][name] = evaluate(
            params, config, batch, pattern_preserving_ablation(config, heads, clean))[1]
        out["value_preserving"][name] = evaluate(
            params, config, batch, value_preserving_ablation(config, heads, clean))[1]
    return out


def direct_path(params_by_step: dict, config, batch) -> dict:
    """Loss increase when layer 0's direct path to the output is removed, per checkpoint."""
    out = {}
    for label, params in params_by_step.items():
        clean = evaluate(params, config, batch)[0]
        out[label] = evaluate(params, config, batch, [direct_path_ablation(config)])[0] - clean
    return out


def over_training(run_dir, config, task, induction_head, previous_token_head) -> dict:
    """Per checkpoint: loss, induction strength of layer-1 heads, previous-token scores of
    layer-0 heads, query-row attention of layer 1, and post-hoc clamped losses."""
    batch = task.eval_sets()["train"]
    first = np.asarray(batch.query_pair) == 0          # sequences whose answer is l1
    posthoc = {name: build_clamps(make(induction_head, previous_token_head), config)
               for name, make in POSTHOC.items()}
    rows = {"step": [], "loss": [], "induction_strength": [], "previous_token_score": [],
            "query_rows": [], "clamped_eval_loss": {name: [] for name in posthoc}}
    for step, path in checkpoints(run_dir):
        params, _ = load_params(path)
        cache = run_with_cache(params, config, batch)
        rows["step"].append(step)
        rows["loss"].append(loss_from_cache(config, batch, cache)[0])
        rows["induction_strength"].append(induction_strength(cache, batch, 1).tolist())
        rows["previous_token_score"].append(previous_token_head_score(cache, 0).tolist())
        rows["query_rows"].append(cache["pattern", 1][first][:, :, -1, :].mean(axis=0).tolist())
        for name, clamps in posthoc.items():
            rows["clamped_eval_loss"][name].append(evaluate(params, config, batch, clamps)[0])
    return rows


def run(ctx) -> dict:
    from . import plots
    model, task_config, train_config = setting(ctx.quick, ctx.seed, ctx.features)
    spec = RunSpec(f"seed={ctx.seed}", model, task_config, train_config)
    summary = ctx.train_runs([spec])[spec.name]
    run_dir = Path(summary.out_dir)
    history = summary.history()
    task = task_of(task_config)
    batch = task.eval_sets()["train"]
    steps = checkpoints(run_dir)
    params, _ = load_params(steps[-1][1])

    ctx.log("analysing the final network: head roles, ablations, wiring ...")
    roles = identify_heads(params, model, task)
    strength = roles.induction_strength
    order = [int(h) for h in np.argsort(strength)[::-1]]
    prev_heads = [h for _, h in roles.previous_token_heads]
    results = {"previous_token_heads": roles.previous_token_heads,
               "induction_heads": roles.induction_heads,
               "strongest_induction_head": roles.strongest_induction_head,
               "strongest_previous_token_head": roles.strongest_previous_token_head,
               "rules": roles.rules, "induction_strength": strength,
               "previous_token_score": roles.previous_token_score,
               "learning_time": summary.learning_time, "final_train_loss": history["eval/train/loss"][-1]}
    results.update(redundancy(params, model, batch))
    induction = [h for _, h in roles.induction_heads] or [roles.strongest_induction_head[1]]
    results["ablate_induction_heads_acc"] = evaluate(params, model, batch,
                                                     ablate_heads(model, 1, induction))[1]
    results["switch_on_order"] = [[1, h] for h in order]
    results["switch_on_loss"] = switch_on(params, model, batch, order)
    results["wiring"] = wiring(params, model, batch, prev_heads)
    results["composition"] = composition_scores(params, model)
    results["direct_logit_attribution"] = direct_logit_attribution(
        run_with_cache(params, model, batch), params, model, batch)

    phase = describe_history(history, loss_key="eval/train/loss")
    plateau_step = None
    if phase.plateau_start is not None and phase.plateau_end is not None:
        middle = 0.5 * (phase.plateau_start + phase.plateau_end)
        plateau_step = min((s for s, _ in steps), key=lambda s: abs(s - middle))
    probe = {"final": params}
    if plateau_step is not None:
        probe["plateau"] = load_params(dict(steps)[plateau_step])[0]
    increase = direct_path(probe, model, batch)
    results["direct_path"] = {"plateau_step": plateau_step, "final_step": steps[-1][0],
                              "plateau_loss_increase": increase.get("plateau"),
                              "final_loss_increase": increase["final"]}

    ctx.log(f"reading {len(steps)} checkpoints for the measures over training ...")
    ind, prev = roles.strongest_induction_head[1], roles.strongest_previous_token_head[1]
    trajectory = over_training(run_dir, model, task, ind, prev)
    results["posthoc"] = {"steps": trajectory["step"], "unclamped_eval_loss": trajectory["loss"],
                          "clamped_eval_loss": trajectory["clamped_eval_loss"],
                          "induction_head": [1, ind], "previous_token_head": [0, prev]}
    results["over_training"] = {k: trajectory[k] for k in ("step", "induction_strength",
                                                            "previous_token_score")}
    suffix = "_quick" if ctx.quick else ""
    note = ctx.figure_note
    plots.heads_over_training(ctx.figure_path(f"heads_over_training{suffix}"), history, trajectory,
                              roles, phase, note=note)
    plots.heads_ablations(ctx.figure_path(f"heads_ablations{suffix}"), results,
                          None if ctx.quick else PAPER, note=note)
    plots.posthoc_figure(ctx.figure_path(f"heads_posthoc{suffix}"), trajectory, note=note)
    plots.query_row_animation(ctx.figures / f"heads_phase_change{suffix}.gif", trajectory, phase,
                              note=note)
    ctx.figure_files.append(str(ctx.figures / f"heads_phase_change{suffix}.gif"))
    plots.composition_figure(ctx.figure_path(f"heads_composition{suffix}"), results["composition"],
                             prev_heads, [h for _, h in roles.induction_heads], note=note)
    return results


def table(results) -> list[Row]:
    """Our numbers next to the paper's (paper: their seed 5, Omniglot features)."""
    stand_in = "stand-in features, not Omniglot"
    w, pw = results["wiring"], PAPER["wiring"]
    dp = results["direct_path"]
    n = len(results["switch_on_loss"])
    rows = [
        Row("previous-token heads (layer 0)", [h for _, h in results["previous_token_heads"]], "1, 2, 5",
            "found by rule; the paper looked at patterns"),
        Row("induction heads (layer 1), strongest first", [h for _, h in results["induction_heads"]],
            "3 strongest", "induction strength >= 0.3"),
        Row("induction strength of layer-1 heads", results["induction_strength"], "-",
            "whole training set"),
        Row("accuracy, one layer-1 head ablated (min over heads)", min(results["ablate_one_acc"]), "~1",
            "redundancy"),
        Row("accuracy, only head h active", results["only_head_acc"], PAPER["only_head_acc"],
            stand_in + "; head numbers are not comparable across papers"),
        Row("accuracy, every induction head ablated", results["ablate_induction_heads_acc"], "-",
            "chance is 0.5"),
        Row("loss as heads switch on, strongest first", results["switch_on_loss"][:min(n, 4)],
            PAPER["switch_on_loss"], "additivity"),
        Row("wiring: PT heads ablated, patterns kept (V paths)", w["pattern_preserving"]["previous_token_heads"],
            pw["pattern_preserving"]["previous_token_heads"], "accuracy"),
        Row("wiring: PT heads ablated, layer-1 values kept (Q/K paths)", w["value_preserving"]["previous_token_heads"],
            pw["value_preserving"]["previous_token_heads"], "accuracy"),
        Row("wiring: other heads ablated, patterns kept", w["pattern_preserving"]["other_heads"],
            pw["pattern_preserving"]["other_heads"], "accuracy"),
        Row("wiring: other heads ablated, layer-1 values kept", w["value_preserving"]["other_heads"],
            pw["value_preserving"]["other_heads"], "accuracy"),
        Row("layer-0 direct path removed: loss increase on the plateau", dp["plateau_loss_increase"],
            "~0.1", f"checkpoint at step {dp['plateau_step']}"),
        Row("layer-0 direct path removed: loss increase at the end", dp["final_loss_increase"], "~0",
            f"step {dp['final_step']}"),
        Row("learning time (steps)", results["learning_time"], "~5,600-11,000", stand_in),
    ]
    prev = [h for _, h in results["previous_token_heads"]]
    induction = [h for _, h in results["induction_heads"]]
    composition = results["composition"]
    if prev and induction:
        for kind in "QKV":
            scores = np.asarray(composition[kind], dtype=float)
            rows.append(Row(f"{kind}-composition, previous-token -> induction heads (mean)",
                            float(scores[np.ix_(prev, induction)].mean()), "-",
                            f"all pairs {scores.mean():.3f}, random baseline "
                            f"{composition['baseline'][kind]:.3f}"
                            + ("; the circuit predicts K above the rest" if kind == "K" else "")))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Heads: roles, redundancy, additivity, wiring"
FIGURES = {
    "heads_over_training": "The loss (top), the induction strength of every layer-1 head and the "
                           "previous-token score of every layer-0 head over training: they rise "
                           "together during the drop.",
    "heads_phase_change": "The layer-1 query rows across the phase change (an animation).",
    "heads_ablations": "Single heads alone and ablated (left), heads switched on one by one "
                       "(middle), the wiring test (right), ours beside the paper's.",
    "heads_composition": "Q-, K- and V-composition of every layer-0 head into every layer-1 head, "
                         "read off the weights.",
    "heads_posthoc": "Subcircuit clamps applied only at evaluation, on every saved checkpoint.",
}


def _arrow(values) -> str:
    return " -> ".join(f"{v:.3g}" for v in values)


def _span(values) -> str:
    """"0.83-0.95" (or one value, or "-" for none)."""
    if not values:
        return "-"
    low, high = f"{min(values):.2f}", f"{max(values):.2f}"
    return low if low == high else f"{low}-{high}"


def report(results) -> str:
    prev = [h for _, h in results["previous_token_heads"]]
    induction = [h for _, h in results["induction_heads"]]
    alone = results["only_head_acc"]
    strong = [alone[h] for h in induction]
    weak = [a for h, a in enumerate(alone) if h not in induction]
    w, pw, dp = results["wiring"], PAPER["wiring"], results["direct_path"]
    posthoc = results["posthoc"]
    final_clamped = {name: losses[-1] for name, losses in posthoc["clamped_eval_loss"].items()}
    n = min(len(results["switch_on_loss"]), len(PAPER["switch_on_loss"]) + 1)
    lines = [
        f"One seed-{results['meta']['seed']} run ({dp['final_step']:,} steps), then analysis of its "
        "final parameters on the fixed 1,000-sequence training evaluation set (the induction "
        "strength on every distinct training sequence, streamed in chunks). Head indices are "
        "never hard-coded: `heads.identify_heads` finds the roles by rule.",
        "",
        f"- **Roles, by rule.** {len(prev)} previous-token head(s) in layer 0 "
        f"({', '.join(f'L0H{h}' for h in prev) or 'none'}; the paper found "
        f"{len(PAPER['previous_token_heads'])} by looking at patterns), {len(induction)} induction "
        f"head(s) in layer 1 ({', '.join(f'L1H{h}' for h in induction) or 'none'}). Head numbers are "
        "arbitrary, so they are not comparable with the paper's.",
        f"- **Redundant and additive.** Ablating any single layer-1 head leaves the accuracy at "
        f"{min(results['ablate_one_acc']):.3g} or more; alone, the induction heads reach "
        + _span(strong) + " and the others " + _span(weak)
        + f" (chance 0.5). Switched on one by one, strongest first, the loss falls "
        f"{_arrow(results['switch_on_loss'][:n])} (paper {_arrow(PAPER['switch_on_loss'])}); "
        f"ablating every induction head leaves accuracy {results['ablate_induction_heads_acc']:.3g}.",
        f"- **Many-to-many wiring.** With the clean patterns kept (only value paths change), "
        f"ablating the previous-token heads leaves accuracy "
        f"{format_value(w['pattern_preserving']['previous_token_heads'])} (paper "
        f"{pw['pattern_preserving']['previous_token_heads']}) and ablating the other layer-0 heads "
        f"{format_value(w['pattern_preserving']['other_heads'])} (paper "
        f"{pw['pattern_preserving']['other_heads']}); with the clean layer-1 values kept (only "
        f"query/key paths change) it is {format_value(w['value_preserving']['previous_token_heads'])} "
        f"and {format_value(w['value_preserving']['other_heads'])} (paper "
        f"{pw['value_preserving']['previous_token_heads']} and {pw['value_preserving']['other_heads']}). "
        "In the paper the previous-token heads work through the query/key path and the other "
        "heads through the values.",
        f"- **The direct path** of layer 0 to the output: removing it costs "
        f"{format_value(dp['plateau_loss_increase'])} nats on the plateau (step "
        f"{format_value(dp['plateau_step'])}; paper ~{PAPER['direct_path']['plateau_loss_increase']}) "
        f"and {format_value(dp['final_loss_increase'])} at the end (paper "
        f"~{PAPER['direct_path']['final_loss_increase']:g}).",
        "- **Post-hoc clamps** (finding 7): subcircuit clamps applied only at evaluation, on each "
        f"saved checkpoint, with induction head L1H{posthoc['induction_head'][1]}. Final loss "
        f"unclamped {posthoc['unclamped_eval_loss'][-1]:.3g}; with "
        + ", ".join(f"{name} clamped {value:.3g}" for name, value in final_clamped.items())
        + ". Clamping A at evaluation replaces layer 0's output, which the trained layer 1 also "
        "reads through its values from the other layer-0 heads.",
    ]
    return "\n".join(lines)


def headline(results) -> list[Row]:
    w, pw = results["wiring"], PAPER["wiring"]
    n = len(PAPER["switch_on_loss"])
    return [
        Row("redundancy: accuracy with one layer-1 head ablated (min over heads)",
            min(results["ablate_one_acc"]), "~1"),
        Row("additivity: loss as layer-1 heads switch on, strongest first",
            results["switch_on_loss"][:n], PAPER["switch_on_loss"]),
        Row("wiring: previous-token heads ablated, layer-1 values kept (Q/K paths): accuracy",
            w["value_preserving"]["previous_token_heads"], pw["value_preserving"]["previous_token_heads"]),
        Row("wiring: other layer-0 heads ablated, patterns kept (V paths): accuracy",
            w["pattern_preserving"]["other_heads"], pw["pattern_preserving"]["other_heads"]),
    ]
