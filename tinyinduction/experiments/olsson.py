"""`reproduce olsson`: Olsson et al. (2022)'s small-model arguments on Python source.

Four attention-only models are trained on the character-level text of the Python
standard library (tasks/text.py), through the sweep runner, with a checkpoint at every
evaluation: 1 and 2 layers, each with and without the smeared key. Half of their
training windows repeat a span of real text (TextConfig.repeat_fraction; why: the
README's Olsson section); a fifth run, CONTROL, is the 2-layer model on plain text only.
Then, on every checkpoint (text_measures.py):
- held-out loss on plain windows, the ICL score (loss late in the context minus early:
  Olsson's tokens 500 and 50 of 512 scaled to our context, each averaged over
  +-ICL_BAND positions) with its standard error, the loss at each position, and the
  per-token losses at fixed (window, position) pairs (for the PCA);
- every head's prefix-matching score (Olsson's repeated random tokens), induction score
  on ``[BOS] r r`` and previous-token score on text;
and on the final parameters: copying scores (sample-based and eigenvalue proxy) and, for
the 2-layer model, the ablation of its induction heads (outputs zeroed) against as many
other heads (every subset of that size, averaged), on plain and on repeated windows.

Phase change: the first checkpoint at which the best head's prefix-matching score is
halfway from its value at step 0 to its maximum over training, provided that maximum
reaches PHASE_MIN_PREFIX (a head that never gets there never formed: no phase change).
Induction heads: heads whose final prefix-matching score is >= INDUCTION_THRESHOLD.
Nothing here was tuned to agree with the paper; the README says what was chosen and why.

Figures: figures/olsson_training.png, figures/olsson_pca.png, figures/olsson_heads.png and
figures/olsson_ablation.png (with --quick or --text they go to DIR/figures/; quick names
end in _quick).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import text_measures as tm
from ..clamp import zero_ablate_head
from ..config import ModelConfig, TrainConfig
from ..model import TokenBatch, init_params
from ..runs import checkpoint_paths
from ..sweep import RunSpec
from ..tasks.repeated import (fitting_prefix_length, prefix_matching_candidates,
                              prefix_matching_tokens, repeated_tokens)
from ..tasks.text import TextConfig, TextTask
from ..train import load_params
from .base import Row, format_value

NAME = "olsson"
SUMMARY = "Olsson et al. 2022 on Python source: 1 vs 2 layers, smeared key, ICL score, PCA"
OPTIONS = ("seed", "text")

MODELS = {"1L": (1, False), "2L": (2, False), "1L_smeared": (1, True), "2L_smeared": (2, True)}
CONTROL = "2L_plain_text"    # default setting only: the 2-layer model without repeated windows
ICL_BAND = 2                 # positions each side of the scaled token indices
PHASE_MIN_PREFIX = 0.3       # best prefix-matching score a formed induction head reaches
INDUCTION_THRESHOLD = 0.3    # final prefix-matching score that makes a head an induction head
N_PROBE_SEQUENCES = 32       # prefix-matching and repeated-token sequences (paper: 10)

# Olsson et al. 2022 (shared/research/olsson2022-and-toys.md), qualitative claims
PAPER = {
    "1L": "no induction heads, no ICL improvement, no phase change",
    "2L": "induction heads form in a phase change; ICL score jumps then (~ -0.4 nats after)",
    "1L_smeared": "forms induction heads and a phase change",
    "2L_smeared": "phase change earlier than without the smeared key",
    "ablation": "ablating induction heads removes most of the ICL score; others mostly not",
    "2L - 1L": "2-layer models reach ~ -0.4, 1-layer ~0: clearly negative",
}


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    text: TextConfig
    n_heads: int
    d_model: int
    d_head: int
    train: TrainConfig
    n_eval_windows: int          # held-out windows every checkpoint is measured on
    control: bool                # also train CONTROL (plain text)


def setting(quick: bool, seed: int, source: str = "stdlib") -> Setting:
    """The default and the --quick setting (the README's Olsson section says why).

    default: context 64 characters, half the training windows repeat a span of real
        text (tasks/text.py), 4 heads of 16 per layer, d_model 64, batch 16, lr 3e-3,
        4,000 steps, a checkpoint every 100; plus the 2-layer control on plain text.
    quick:   the same network on a context of 32, 90% repeated windows, batch 32, 800
        steps: induction heads in the 2-layer model within about a minute (they form
        after ~500-700 steps), for lessons and tests. Not compared with the paper.
    """
    if quick:
        return Setting(TextConfig(source=source, n_ctx=32, eval_windows=64, repeat_fraction=0.9,
                                  tokenizer="chars"),
                       n_heads=4, d_model=64, d_head=16, n_eval_windows=128, control=False,
                       train=TrainConfig(seed=seed, steps=800, batch_size=32, lr=3e-3, eval_every=50,
                                         checkpoint_every=50, log_every=0))
    return Setting(TextConfig(source=source, n_ctx=64, eval_windows=64, repeat_fraction=0.5,
                              tokenizer="chars"),
                   n_heads=4, d_model=64, d_head=16, n_eval_windows=512, control=True,
                   train=TrainConfig(seed=seed, steps=4000, batch_size=16, lr=3e-3, eval_every=100,
                                     checkpoint_every=100, log_every=0))


def model_config(name: str, d_vocab: int, s: Setting) -> ModelConfig:
    n_layers, smeared = MODELS.get(name, (2, False))
    return ModelConfig(n_layers=n_layers, n_heads=s.n_heads, d_model=s.d_model, d_head=s.d_head,
                       positional="rope", input_kind="tokens", d_vocab=d_vocab, n_ctx=s.text.n_ctx,
                       smeared_key=smeared)


def run_specs(s: Setting, d_vocab: int) -> list[RunSpec]:
    specs = [RunSpec(name, model_config(name, d_vocab, s), s.text, s.train) for name in MODELS]
    if s.control:
        specs.append(RunSpec(CONTROL, model_config(CONTROL, d_vocab, s), s.text.replace(repeat_fraction=0.0),
                             s.train))
    return specs


# ---------------------------------------------------------------- probes and measures


@dataclass
class Probes:
    """The fixed inputs every checkpoint is measured on."""

    windows: TokenBatch          # held-out text windows [N, T]
    repeated_windows: TokenBatch  # held-out text windows that repeat a span (for the ablation)
    pairs: np.ndarray            # [N, 2] (window, position) of the per-token losses
    prefix: TokenBatch           # Olsson's prefix-matching sequences
    n_random: int
    repeated: TokenBatch         # [BOS] r r
    half: int
    sample_tokens: np.ndarray    # the copying score's sample (25 distinct ids)


def make_probes(task: TextTask, n_windows: int, seed: int = 0) -> Probes:
    n_ctx = task.config.n_ctx
    rng = np.random.default_rng([seed, 10])
    windows = task.sample(rng, n_windows, split="heldout", repeat_fraction=0.0)   # plain text
    candidates = prefix_matching_candidates(task.vocab.counts)
    n_random = fitting_prefix_length(n_ctx)
    half = (n_ctx - 1) // 2
    return Probes(
        windows, task.sample(rng, n_windows // 2, split="heldout", repeat_fraction=1.0),
        tm.per_token_pairs(rng, n_windows, n_ctx),
        prefix_matching_tokens(rng, N_PROBE_SEQUENCES, candidates, n_random), n_random,
        repeated_tokens(rng, N_PROBE_SEQUENCES, half, candidates), half,
        rng.choice(candidates, size=min(25, candidates.size), replace=False))


def measure(params, config: ModelConfig, probes: Probes, clamps=()) -> dict:
    """Every per-checkpoint measure of the module docstring."""
    losses = tm.per_position_losses(params, config, probes.windows, clamps)       # [N, T]
    first = TokenBatch(probes.windows.tokens[:N_PROBE_SEQUENCES], probes.windows.targets[:N_PROBE_SEQUENCES])
    return {
        "loss": float(np.nanmean(losses)),
        "icl_score": tm.icl_score(losses, band=ICL_BAND),
        "icl_score_sem": tm.icl_score_sem(losses, band=ICL_BAND),
        "icl_per_window": tm.icl_per_window(losses, band=ICL_BAND),
        "loss_by_position": np.nanmean(losses, axis=0),
        "per_token": tm.per_token_losses(losses, probes.pairs),
        "prefix_matching": tm.prefix_matching_scores(params, config, probes.prefix, probes.n_random),
        "induction": tm.induction_scores(params, config, probes.repeated),
        "previous_token": tm.previous_token_scores(params, config, first),
    }


def checkpoints(run_dir) -> list[tuple[int, Path]]:
    return sorted(checkpoint_paths(run_dir))


def over_training(run_dir, config, probes, seed: int) -> dict:
    """{measure: [value per checkpoint]} plus "step", in step order; step 0 is the
    initialisation (init_params(config, seed), as train() makes it)."""
    rows = {"step": []}
    found = checkpoints(run_dir)
    for step, path in ([(0, None)] if not found or found[0][0] != 0 else []) + found:
        params = init_params(config, seed) if path is None else load_params(path)[0]
        rows["step"].append(step)
        for key, value in measure(params, config, probes).items():
            rows.setdefault(key, []).append(value)
    return {k: np.asarray(v) for k, v in rows.items()}


def phase_change_step(steps, best_prefix) -> int | None:
    """First step where the best head's prefix-matching score is halfway from its start
    to its maximum; None if the maximum stays below PHASE_MIN_PREFIX."""
    best_prefix = np.asarray(best_prefix)
    if best_prefix.max() < PHASE_MIN_PREFIX:
        return None
    halfway = 0.5 * (best_prefix[0] + best_prefix.max())
    return int(np.asarray(steps)[np.argmax(best_prefix >= halfway)])


def ablation(params, config, probes, prefix_final) -> dict:
    """ICL score with the induction heads zeroed, and with as many other heads zeroed
    (mean over every subset of that size), on plain held-out windows (the paper's
    measure; the top-level keys) and on held-out windows that repeat a span ("repeated")."""
    heads = [(l, h) for l in range(config.n_layers) for h in range(config.n_heads)]
    scores = {head: prefix_final[head] for head in heads}
    induction = [head for head in heads if scores[head] >= INDUCTION_THRESHOLD]
    rule = f"prefix matching >= {INDUCTION_THRESHOLD}"
    if not induction:
        induction, rule = [max(heads, key=scores.get)], "none reaches the threshold: the best head"
    others = [head for head in heads if head not in induction]

    other_sets = list(itertools.combinations(others, len(induction))) if len(others) >= len(induction) else []

    def scores(windows):
        def icl(ablated):
            clamps = [zero_ablate_head(l, h) for l, h in ablated]
            losses = tm.per_position_losses(params, config, windows, clamps)
            return tm.icl_score(losses, band=ICL_BAND), tm.icl_score_sem(losses, band=ICL_BAND)
        others_icl = [icl(subset)[0] for subset in other_sets]
        (clean, clean_sem), (ablated, ablated_sem) = icl([]), icl(induction)
        return {"clean_icl_score": clean, "clean_icl_score_sem": clean_sem,
                "induction_heads_icl_score": ablated, "induction_heads_icl_score_sem": ablated_sem,
                "other_heads_icl_score": float(np.mean(others_icl)) if others_icl else None,
                "other_heads_icl_scores": others_icl}
    return {"induction_heads": [list(h) for h in induction], "rule": rule,
            "other_head_sets": [[list(h) for h in s] for s in other_sets],
            **scores(probes.windows), "repeated": scores(probes.repeated_windows)}


def paired_differences(trajectories) -> dict:
    """Final ICL score of each model minus 1L's (and 2L's minus the control's), on the same
    windows: {"2L - 1L": [difference, standard error of the paired difference], ...}."""
    final = {name: tr["icl_per_window"][-1] for name, tr in trajectories.items()}
    pairs = [(name, "1L") for name in final if name != "1L"]
    if CONTROL in final:
        pairs.append(("2L", CONTROL))
    return {f"{a} - {b}": [float(np.nanmean(final[a] - final[b])), tm.standard_error(final[a] - final[b])]
            for a, b in pairs if a in final and b in final}


def icl_around(steps, icl, step, lo=200, hi=600) -> tuple[float | None, float | None]:
    """Mean ICL score over the checkpoints lo..hi steps before `step`, and lo..hi after."""
    steps, icl = np.asarray(steps), np.asarray(icl)
    before = icl[(steps >= step - hi) & (steps <= step - lo)]
    after = icl[(steps >= step + lo) & (steps <= step + hi)]
    return (float(before.mean()) if before.size else None, float(after.mean()) if after.size else None)


def loss_pca(trajectories: dict, first: int = 1) -> dict:
    """Olsson's per-token-loss PCA: every checkpoint of every model (from checkpoint index
    `first` on: the initialisation's uniform ~ln V losses would take the first component)
    is a row of per-token losses; centre over all rows; project on the first two
    principal components. {model: [checkpoints - first, 2], "explained_variance": [2]}."""
    names = list(trajectories)
    rows = [np.asarray(trajectories[n]["per_token"])[first:] for n in names]
    matrix = np.concatenate(rows)                                              # [checkpoints, N]
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    explained = singular ** 2 / (singular ** 2).sum()
    out, start = {"explained_variance": explained[:2], "first": first}, 0
    for name, block in zip(names, rows):
        out[name] = projected[start:start + len(block)]
        start += len(block)
    return out


# ---------------------------------------------------------------- the experiment


def check(ctx):
    """Refuse text that cannot be trained on (--text) before reproduce writes anything."""
    setting(ctx.quick, ctx.seed, source=ctx.text or "stdlib").text.make_task()   # cached


def run(ctx) -> dict:
    from . import olsson_plots as plots
    s = setting(ctx.quick, ctx.seed, source=getattr(ctx, "text", None) or "stdlib")
    task = s.text.make_task()
    ctx.log(f"text: {task.fingerprint['files']} files, {task.fingerprint['characters']:,} characters, "
            f"vocabulary {task.d_vocab}")
    specs = run_specs(s, task.d_vocab)
    configs = {spec.name: spec.model for spec in specs}
    summaries = ctx.train_runs(specs)
    probes = make_probes(task, s.n_eval_windows, ctx.seed)

    trajectories, results = {}, {"models": {}}
    for name in configs:
        ctx.log(f"measuring {name} on its checkpoints ...")
        run_dir = Path(summaries[name].out_dir)
        trajectory = over_training(run_dir, configs[name], probes, s.train.seed)
        trajectory["history"] = summaries[name].history()
        trajectories[name] = trajectory
        best = trajectory["prefix_matching"].max(axis=(1, 2))
        final_params, _ = load_params(checkpoints(run_dir)[-1][1])
        copying = tm.copying_scores(final_params, configs[name], probes.sample_tokens)
        results["models"][name] = {
            "icl_score": float(trajectory["icl_score"][-1]),
            "icl_score_sem": float(trajectory["icl_score_sem"][-1]),
            "max_prefix_matching": float(best[-1]),
            "phase_change_step": phase_change_step(trajectory["step"], best),
            "loss": float(trajectory["loss"][-1]),
            "prefix_matching": trajectory["prefix_matching"][-1],
            "induction_score": trajectory["induction"][-1],
            "previous_token_score": trajectory["previous_token"][-1],
            "copying_score_sample": copying["sample"],
            "copying_score_weights": copying["weights"],
            "smear_sigmoid": [1 / (1 + np.exp(-final_params[f"blocks.{l}.attn.smear_alpha"]))
                              for l in range(configs[name].n_layers)] if configs[name].smeared_key else None,
            "steps": trajectory["step"], "icl_score_over_training": trajectory["icl_score"],
            "loss_over_training": trajectory["loss"], "best_prefix_matching_over_training": best,
        }
        if name == "2L":
            results["ablation"] = ablation(final_params, configs[name], probes,
                                           trajectory["prefix_matching"][-1])
    for name, m in results["models"].items():     # the ICL score across the phase change
        phase = m["phase_change_step"]
        m["icl_score_around_phase_change"] = None if phase is None else icl_around(
            m["steps"], m["icl_score_over_training"], phase)
        if phase is not None and CONTROL in results["models"]:
            control = results["models"][CONTROL]
            m["control_icl_score_around_phase_change"] = icl_around(
                control["steps"], control["icl_score_over_training"], phase)
    results["paired_icl_differences"] = paired_differences(trajectories)
    pca = loss_pca(trajectories)
    results["pca"] = {"explained_variance": pca["explained_variance"]}
    results["settings"] = {"text": s.text.to_dict(), "fingerprint": task.fingerprint,
                           "n_heads": s.n_heads, "d_model": s.d_model, "d_head": s.d_head,
                           "train": s.train.to_dict(), "icl_positions": tm.icl_positions(s.text.n_ctx),
                           "icl_band": ICL_BAND, "n_eval_windows": s.n_eval_windows,
                           "prefix_matching_tokens": probes.n_random}
    suffix = "_quick" if ctx.quick else ""
    note = ctx.figure_note
    plots.training_figure(ctx.figure_path(f"olsson_training{suffix}"), trajectories, results, note)
    plots.pca_figure(ctx.figure_path(f"olsson_pca{suffix}"), pca, trajectories, results, note)
    plots.heads_figure(ctx.figure_path(f"olsson_heads{suffix}"), results, note)
    plots.ablation_figure(ctx.figure_path(f"olsson_ablation{suffix}"), results, trajectories, note)
    return results


def _fmt_phase(step):
    return "none" if step is None else f"step {step:,}"


def _fmt_pair(pair):
    return "-" if pair is None or None in pair else f"{pair[0]:+.3f} -> {pair[1]:+.3f}"


def table(results) -> list[Row]:
    m = results["models"]
    rows = []
    for name in list(MODELS) + ([CONTROL] if CONTROL in m else []):
        r = m[name]
        rows.append(Row(f"{name}: final ICL score (nats)", r["icl_score"], PAPER.get(name, "(control)"),
                        f"+-{r['icl_score_sem']:.3f} s.e.; held-out loss {r['loss']:.3f}"))
        note = f"phase change: {_fmt_phase(r['phase_change_step'])}"
        if r.get("icl_score_around_phase_change"):
            note += f"; ICL across it {_fmt_pair(r['icl_score_around_phase_change'])}"
            if r.get("control_icl_score_around_phase_change"):
                note += f" (control, same steps: {_fmt_pair(r['control_icl_score_around_phase_change'])})"
        rows.append(Row(f"{name}: best prefix-matching head (final)", r["max_prefix_matching"], "", note))
    for pair, (difference, error) in results.get("paired_icl_differences", {}).items():
        rows.append(Row(f"final ICL score, {pair} (same windows)", difference,
                        PAPER["2L - 1L"] if pair == "2L - 1L" else "", f"+-{error:.3f} s.e. (paired)"))
    a = results["ablation"]
    heads = f"heads {a['induction_heads']} ({a['rule']})"
    for label, scores in (("plain text", a), ("repeated windows", a["repeated"])):
        rows.append(Row(f"2L ICL score, {label}: clean", scores["clean_icl_score"], "",
                        f"+-{scores['clean_icl_score_sem']:.3f} s.e."))
        rows.append(Row(f"2L ICL score, {label}: induction heads ablated", scores["induction_heads_icl_score"],
                        PAPER["ablation"] if label == "plain text" else "", heads))
        rows.append(Row(f"2L ICL score, {label}: as many other heads ablated", scores["other_heads_icl_score"],
                        "", f"mean over {len(a['other_head_sets'])} head sets"))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "Olsson et al. 2022 on real text"
FIGURES = {
    "olsson_training": "Columns: the models. Top: loss on plain held-out windows (dots) and on "
                      "held-out windows that repeat a span (grey). Middle: the ICL score (one "
                      "scale for all). Bottom: every head's prefix-matching score (dotted: layer 0). "
                      "Dashed line: the phase change.",
    "olsson_pca": "Left: per-token losses of every checkpoint of every model, first two principal "
                  "components. Right: the final loss at each position of the window; the ICL score "
                  "reads the marked positions.",
    "olsson_ablation": "The 2-layer model's ICL score with its induction heads zeroed, or as many "
                       "other heads (dots: each set), on plain and on repeated held-out windows; "
                       "error bars are standard errors over windows.",
    "olsson_heads": "Per-head scores of every model: prefix matching, induction, previous token, "
                    "both copying scores.",
}


def _best_head(model) -> str:
    scores = np.asarray(model["prefix_matching"], dtype=float)
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return f"L{layer}H{head} {scores[layer, head]:.2f}"


def report(results) -> str:
    m, s = results["models"], results["settings"]
    text, train, fingerprint = s["text"], s["train"], s["fingerprint"]
    a = results["ablation"]
    lines = [
        "Olsson et al. argue, from small attention-only models trained on ordinary text, that "
        "induction heads form in a phase change and carry most of in-context learning. This "
        "experiment repeats their small-model arguments on a text every Python installation has: "
        f"its standard library's source ({fingerprint['files']:,} files, "
        f"{fingerprint['characters']:,} characters, character tokens; the text, the smeared key "
        "and the measures: [reference manual](tinyinduction/README.md#text-tasks-and-olsson-et-als-measures)).",
        "",
        f"**The setting.** Attention-only, RoPE, pre-LayerNorm, {s['n_heads']} heads of {s['d_head']} "
        f"per layer, d_model {s['d_model']}, context {text['n_ctx']} characters, Adam lr "
        f"{train['lr']:g}, batch {train['batch_size']}, {train['steps']:,} steps, a checkpoint every "
        f"{train['checkpoint_every']:,}; models {', '.join(m)}. A deviation from the paper: a share "
        f"{text['repeat_fraction']:g} of the training windows repeat a span of real text (a window is "
        "its own first few characters over and over, so only copying, not a fixed offset, predicts "
        "it): on plain characters an induction head has almost nothing to gain (lesson 06 measures "
        "why)"
        + (f"; the 2-layer model trained on plain text for the same steps (`{CONTROL}`, the control) "
           f"reaches a best prefix-matching score of {m[CONTROL]['max_prefix_matching']:.2f}"
           if CONTROL in m else "") + ". The ICL score is measured on plain held-out "
        f"windows, as Olsson et al. do (positions {format_value(s['icl_positions'])}, each averaged "
        f"over +-{s['icl_band']} positions, {s['n_eval_windows']} windows).",
        "",
        f"**Phase change** (our rule): the first checkpoint at which the best head's prefix-matching "
        f"score is halfway from its start to its maximum, if that maximum reaches {PHASE_MIN_PREFIX} "
        f"(otherwise none). **Induction heads**: final prefix-matching score >= {INDUCTION_THRESHOLD}.",
        "",
        "| model | best prefix-matching head (final) | phase change | final ICL score (nats) | Olsson et al. |",
        "|---|---|---|---|---|",
    ]
    for name, r in m.items():
        lines.append(f"| {name} | {_best_head(r)} | {_fmt_phase(r['phase_change_step'])} | "
                     f"{r['icl_score']:+.3f} +- {r['icl_score_sem']:.3f} | {PAPER.get(name, '(control)')} |")
    around = m.get("2L", {}).get("icl_score_around_phase_change")
    lines += [
        "",
        "- **Which models form induction heads, and when**: the table above; "
        + ("the smeared key brings the phase change earlier"
           if all(m.get(k, {}).get("phase_change_step") is not None for k in ("2L", "2L_smeared"))
           and m["2L_smeared"]["phase_change_step"] < m["2L"]["phase_change_step"]
           else "the smeared key does not bring the 2-layer phase change earlier here") + ".",
        "- **The ICL score across the 2-layer phase change** (mean before, after): "
        + (_fmt_pair(around) if around else "no phase change") + " (Olsson et al.: a jump to about "
        "-0.4 nats).",
        f"- **Ablation** of the 2-layer model's induction heads "
        f"({', '.join(f'L{l}H{h}' for l, h in a['induction_heads'])}; "
        f"{a['rule']}): ICL score on plain windows {a['clean_icl_score']:+.3f} clean, "
        f"{a['induction_heads_icl_score']:+.3f} with them zeroed, "
        f"{format_value(a['other_heads_icl_score'])} with as many other heads zeroed (mean over "
        f"{len(a['other_head_sets'])} head set(s)); on repeated windows {a['repeated']['clean_icl_score']:+.3f}, "
        f"{a['repeated']['induction_heads_icl_score']:+.3f} and "
        f"{format_value(a['repeated']['other_heads_icl_score'])}. Olsson et al.: "
        f"{PAPER['ablation']}.",
        "",
        "Our models are tiny, see characters rather than words and train for seconds rather than "
        "days; the setting was chosen before the results.",
    ]
    return "\n".join(lines)


def headline(results) -> list[Row]:
    m = results["models"]
    if "1L" not in m or "2L" not in m:
        return []
    around = m["2L"].get("icl_score_around_phase_change")
    return [
        Row("2-layer attention-only models form induction heads, 1-layer ones do not: best "
            "prefix-matching head, 2L / 1L", [m["2L"]["max_prefix_matching"], m["1L"]["max_prefix_matching"]],
            "yes / no"),
        Row("the ICL score jumps at the phase change: 2L's ICL score before -> after it",
            _fmt_pair(around) if around else "no phase change", "jump to ~ -0.4 nats"),
    ]
