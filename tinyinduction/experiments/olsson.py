"""`reproduce olsson`: Olsson et al. (2022)'s small-model arguments on Python source.

Attention-only models are trained on a byte-pair encoding (BPE, tasks/bpe.py) of the
Python standard library's source (tasks/text.py), through the sweep runner, with a
checkpoint at every evaluation: 1 and 2 layers, each with and without the smeared key,
and the 2-layer model on a second seed. Half of their training windows repeat a span of
real text (TextConfig.repeat_fraction: the deviation from the paper, kept and stated;
`--plain` is Olsson's own regime, olsson_plain.py). Every ICL score, loss and ablation
is measured on *plain* held-out windows:
- at every checkpoint, on a fixed subset of them: the loss, the ICL score (loss late in
  the context minus early: Olsson's tokens 500 and 50 of 512 scaled to our context,
  each averaged over +-ICL_BAND positions), per-token losses (for the PCA), and every
  head's prefix-matching, induction and previous-token scores (text_measures.py);
- at the end, and just before and just after the phase change, on *every*
  non-overlapping held-out window (olsson_analysis.tiled_windows), so that standard
  errors are small and comparisons between models and steps are paired on the same
  windows;
- on the final 2-layer models: zero-ablating the induction heads against as many other
  heads (every set of that size), on plain and on repeated held-out windows.
Olsson's claims, each with its test, are in olsson_claims.py (written before the runs).

Figures: figures/olsson_training.png, olsson_pca.png, olsson_heads.png, olsson_ablation.png
(with --quick or --text they go to DIR/figures/; quick names end in _quick).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import text_measures as tm
from . import olsson_analysis as oa
from .base import Row
from .olsson_claims import all_claims
from .olsson_report import headline, report  # noqa: F401 (the results page's text)
from .olsson_plain import outcome_status, read_outcome, run_single_runs, single_runs, single_runs_table
from .olsson_common import (ICL_BAND, MODELS, SECOND_SEED, icl_on_all_windows, make_probes, over_training,
                            params_at, run_specs, setting, source_of, vocab_of)

NAME = "olsson"
SUMMARY = "Olsson et al. 2022 on Python source (BPE): 1 vs 2 layers, smeared key, plain-text ICL, ablations"
OPTIONS = ("seed", "text", "plain", "explore", "vocab")
TITLE = "Olsson et al. 2022 on real text"
FIGURES = {
    "olsson_training": "Columns: the models. Top: loss on plain held-out windows (dots) and on held-out windows "
                       "that repeat a span (grey line). Middle: the ICL score on plain held-out windows, ± one "
                       "standard error (one scale for all). Bottom: every head's prefix-matching score (dotted: "
                       "layer 0). Grey band: the phase change (10% to 90% of the best head's rise); dashed: halfway.",
    "olsson_ablation": "The 2-layer models' ICL score with their induction heads zeroed, or as many other heads "
                       "(dots: each set), on plain and on repeated held-out windows; dashed: the 1-layer model. "
                       "Error bars: standard errors over windows.",
    "olsson_pca": "Left: per-token losses of every checkpoint of every model (one fixed position in each of the "
                  "per-checkpoint windows), first two principal components; triangles: onset and end of the "
                  "phase change. Right: the final loss at each position of the window.",
    "olsson_heads": "Final per-head scores of every model: prefix matching, induction, previous token, copying "
                    "(sample-based and eigenvalue proxy).",
    "olsson_plain": "`--plain`: 2-layer models on plain text only, two batch x context settings: best "
                    "prefix-matching head, ICL score and loss against tokens seen.",
    "olsson_exploration": "`--explore`: the exploratory runs (seed 1) that chose the default setting.",
}


# ---------------------------------------------------------------- the experiment


def check(ctx):
    """Refuse text that cannot be trained on (--text, --vocab) before reproduce writes anything."""
    mode = mode_of(ctx)
    if mode != "default":
        for _, s in single_runs(mode, ctx.quick, ctx.seed, source_of(ctx), vocab_of(ctx)).values():
            s.text.make_task()
    else:
        setting(ctx.quick, ctx.seed, source_of(ctx), vocab_of(ctx)).text.make_task()


def mode_of(ctx) -> str:
    """ "plain" (--plain), "explore" (--explore) or "default"."""
    if getattr(ctx, "plain", False) and getattr(ctx, "explore", False):
        raise ValueError("reproduce olsson: give --plain or --explore, not both")
    return "plain" if getattr(ctx, "plain", False) else "explore" if getattr(ctx, "explore", False) else "default"


def run(ctx) -> dict:
    if mode_of(ctx) != "default":
        return run_single_runs(ctx, mode_of(ctx))
    from . import olsson_plots as plots
    s = setting(ctx.quick, ctx.seed, source_of(ctx), vocab_of(ctx))
    task = s.text.make_task()
    fp = task.fingerprint
    ctx.log(f"text: {fp['files']} files, {fp['characters']:,} characters, {fp['train_tokens']:,} training "
            f"tokens, BPE of {task.d_vocab} ({fp['chars_per_token_heldout']:.2f} characters per token)")
    specs = run_specs(s, task.d_vocab)
    configs = {spec.name: spec.model for spec in specs}
    seeds = {spec.name: spec.train.seed for spec in specs}
    summaries = ctx.train_runs(specs)
    probes = make_probes(task, s.n_trajectory_windows, ctx.seed, s.n_final_windows, s.n_ablation_windows)
    ctx.log(f"measuring on {probes.windows.tokens.shape[0]:,} held-out windows at every checkpoint, on "
            f"{probes.all_windows.tokens.shape[0]:,} at the end, on {probes.ablation_windows.tokens.shape[0]:,} "
            "in the ablations")

    trajectories, results, final_icl = {}, {"models": {}}, {}
    for name, config in configs.items():
        ctx.log(f"measuring {name} on its checkpoints ...")
        run_dir = Path(summaries[name].out_dir)
        trajectory = over_training(run_dir, config, probes, seeds[name])
        trajectory["history"] = summaries[name].history()
        trajectories[name] = trajectory
        best = trajectory["prefix_matching"].max(axis=(1, 2))
        final_params = params_at(run_dir, config, seeds[name], int(trajectory["step"][-1]))
        final_icl[name], by_position = icl_on_all_windows(final_params, config, probes)
        copying = tm.copying_scores(final_params, config, probes.sample_tokens)
        window = oa.phase_window(trajectory["step"], best)
        results["models"][name] = {
            "seed": seeds[name], "repeat_fraction": s.text.repeat_fraction,
            "icl_score": float(np.nanmean(final_icl[name])), "icl_score_sem": tm.standard_error(final_icl[name]),
            "max_prefix_matching": float(best[-1]), "max_prefix_matching_over_training": float(best.max()),
            "phase_change_step": oa.phase_change_step(trajectory["step"], best),
            "phase_change_onset_step": None if window is None else window[0],
            "phase_change_end_step": None if window is None else window[1],
            "loss": float(trajectory["loss"][-1]), "loss_by_position": by_position,
            "prefix_matching": trajectory["prefix_matching"][-1],
            "induction_score": trajectory["induction"][-1],
            "previous_token_score": trajectory["previous_token"][-1],
            "copying_score_sample": copying["sample"], "copying_score_weights": copying["weights"],
            "smear_sigmoid": [1 / (1 + np.exp(-final_params[f"blocks.{l}.attn.smear_alpha"]))
                              for l in range(config.n_layers)] if config.smeared_key else None,
            "steps": trajectory["step"], "icl_score_over_training": trajectory["icl_score"],
            "icl_score_sem_over_training": trajectory["icl_score_sem"],
            "loss_over_training": trajectory["loss"], "best_prefix_matching_over_training": best,
        }
    pca = oa.loss_pca({name: tr["per_token"] for name, tr in trajectories.items()})
    pca_steps = trajectories["1L"]["step"][pca["first"]:]
    for name, m in results["models"].items():
        m["icl_diff_vs_1L"], m["icl_diff_vs_1L_sem"] = (None, None) if name == "1L" else \
            oa.paired_change(final_icl[name], final_icl["1L"])
        _across_phase_change(ctx, name, m, configs, seeds, summaries, probes, trajectories, pca, pca_steps)
    for name, key in (("2L", "ablation"), (SECOND_SEED, "ablation_second_seed")):
        if name in configs:
            ctx.log(f"ablating {name}'s heads ...")
            params = params_at(summaries[name].out_dir, configs[name], seeds[name],
                               int(trajectories[name]["step"][-1]))
            results[key] = oa.ablation(params, configs[name], probes.ablation_windows,
                                       results["models"][name]["prefix_matching"],
                                       {"repeated": probes.repeated_windows})
    if "1L" in configs:               # where the 1-layer model's ICL score comes from, without induction heads
        ctx.log("ablating 1L's copying heads ...")
        params = params_at(summaries["1L"].out_dir, configs["1L"], seeds["1L"], int(trajectories["1L"]["step"][-1]))
        results["ablation_1L"] = oa.copying_ablation(params, configs["1L"], probes.ablation_windows,
                                                     results["models"]["1L"]["copying_score_weights"])
    results["second_seed_model"] = SECOND_SEED if SECOND_SEED in configs else None
    results["tokenizer"] = {"kind": fp["tokenizer"], "vocab_size": task.d_vocab,
                            "chars_per_token": fp["chars_per_token_heldout"],
                            "unk_rate_heldout": fp["unk_rate_heldout"]}
    results["plain"], results["exploration"] = _beside(ctx, "_plain"), _beside(ctx, "_explore")
    results["beside_status"] = {"plain": _beside_status(ctx, "_plain"), "exploration": _beside_status(ctx, "_explore")}
    results["pca"] = {"explained_variance": pca["explained_variance"]}
    results["settings"] = {"text": s.text.to_dict(), "fingerprint": fp, "n_heads": s.n_heads,
                           "d_model": s.d_model, "d_head": s.d_head, "train": s.train.to_dict(),
                           "icl_positions": tm.icl_positions(s.text.n_ctx), "icl_band": ICL_BAND,
                           "n_trajectory_windows": int(probes.windows.tokens.shape[0]),
                           "n_all_windows": int(probes.all_windows.tokens.shape[0]),
                           "n_ablation_windows": int(probes.ablation_windows.tokens.shape[0]),
                           "prefix_matching_tokens": probes.n_random}
    suffix = "_quick" if ctx.quick else ""
    note = getattr(ctx, "figure_note", "")
    plots.training_figure(ctx.figure_path(f"olsson_training{suffix}"), trajectories, results, note)
    plots.pca_figure(ctx.figure_path(f"olsson_pca{suffix}"), pca, trajectories, results, note)
    plots.heads_figure(ctx.figure_path(f"olsson_heads{suffix}"), results, note)
    plots.ablation_figure(ctx.figure_path(f"olsson_ablation{suffix}"), results, note)
    return results


def _across_phase_change(ctx, name, m, configs, seeds, summaries, probes, trajectories, pca, pca_steps):
    """A model's ICL score just before and just after its phase change on every held-out
    window (paired), 1L's change over the same steps, the loss's shape there, the PCA turn."""
    keys = ("icl_score_before", "icl_score_before_sem", "icl_score_after", "icl_score_after_sem",
            "icl_change_at_phase_change", "icl_change_at_phase_change_sem", "icl_change_vs_1L_same_steps",
            "icl_change_vs_1L_same_steps_sem", "loss_at_phase_change", "pca_turn_degrees",
            "pca_turn_degrees_1L_same_steps", "pca_path_lengths", "pca_path_lengths_1L_same_steps")
    m.update(dict.fromkeys(keys))
    onset, end = m["phase_change_onset_step"], m["phase_change_end_step"]
    if onset is None or "1L" not in configs:
        return
    ctx.log(f"{name}: ICL score on every held-out window at steps {onset:,} and {end:,} (and 1L's)")
    per_window = {}
    for model in (name, "1L"):
        for step in (onset, end):
            params = params_at(summaries[model].out_dir, configs[model], seeds[model], step)
            per_window[model, step] = icl_on_all_windows(params, configs[model], probes)[0]
    before, after = per_window[name, onset], per_window[name, end]
    m["icl_score_before"], m["icl_score_before_sem"] = float(np.nanmean(before)), tm.standard_error(before)
    m["icl_score_after"], m["icl_score_after_sem"] = float(np.nanmean(after)), tm.standard_error(after)
    m["icl_change_at_phase_change"], m["icl_change_at_phase_change_sem"] = oa.paired_change(after, before)
    control = per_window["1L", end] - per_window["1L", onset]
    m["icl_change_vs_1L_same_steps"], m["icl_change_vs_1L_same_steps_sem"] = oa.paired_change(
        after - before, control)
    m["loss_at_phase_change"] = oa.loss_shape(m["steps"], m["loss_over_training"], onset, end)
    m["pca_turn_degrees"] = oa.pca_turn_degrees(pca[name], pca_steps, onset, end)
    m["pca_turn_degrees_1L_same_steps"] = oa.pca_turn_degrees(pca["1L"], pca_steps, onset, end)
    m["pca_path_lengths"] = oa.pca_path_lengths(pca[name], pca_steps, onset, end)
    m["pca_path_lengths_1L_same_steps"] = oa.pca_path_lengths(pca["1L"], pca_steps, onset, end)


def _beside_dir(ctx, suffix) -> Path:
    """DIR_plain or DIR_explore beside this run's DIR (runs/reproduce/olsson_plain by default)."""
    return Path(ctx.out).with_name(Path(ctx.out).name + suffix)


def _beside(ctx, suffix):
    """The outcome of the --plain or --explore runs if they finished beside this one, else None."""
    return None if ctx.quick else read_outcome(_beside_dir(ctx, suffix))


def _beside_status(ctx, suffix) -> str:
    return "not run" if ctx.quick else outcome_status(_beside_dir(ctx, suffix))


# ---------------------------------------------------------------- table and report


def table(results) -> list[Row]:
    """Olsson's claims (ours, theirs, agrees?), then each model's final ICL score and its
    difference from 1L, the ablations, and the largest standard errors (the final ones against
    their target)."""
    if "mode" in results:
        return single_runs_table(results)
    second = results.get("second_seed_model")
    claims = all_claims(results)                 # the main seed's 7, then the second seed's (if any)
    rows = [Row(f"claim {c.number}" + (f" ({second}, seed {results['models'][second]['seed']})" if i >= 7 else ""),
                c.ours, c.claim, _agrees(c)) for i, c in enumerate(claims)]
    m = results["models"]
    for name in m:
        r = m[name]
        rows.append(Row(f"{name}: final ICL score, plain held-out windows (nats)", r["icl_score"], "",
                        f"± {r['icl_score_sem']:.3f} s.e.; held-out loss {r['loss']:.3f}"))
        if r.get("icl_diff_vs_1L") is not None:
            rows.append(Row(f"{name} - 1L: final ICL score (same windows)", r["icl_diff_vs_1L"],
                            "about -0.4" if name == "2L" else "", f"± {r['icl_diff_vs_1L_sem']:.3f} s.e. (paired)"))
    for key, name in (("ablation", "2L"), ("ablation_second_seed", second)):
        a = results.get(key)
        if a:
            rows += [Row(f"{name}: ICL score, clean (ablation windows)", a["clean_icl_score"], "",
                         f"± {a['clean_icl_score_sem']:.3f} s.e."),
                     Row(f"{name}: ICL score, induction heads {a['induction_heads']} zeroed",
                         a["induction_heads_icl_score"], "most of the ICL score gone",
                         f"± {a['induction_heads_icl_score_sem']:.3f} s.e.; paired change "
                         f"{a['induction_heads_change']:+.3f} ± {a['induction_heads_change_sem']:.3f}"),
                     Row(f"{name}: ICL score, as many other heads zeroed (mean over sets)",
                         a["other_heads_icl_score"], "much less change",
                         "" if a["other_heads_icl_score"] is None else
                         f"± {a['other_heads_icl_score_sem']:.3f} s.e. (mean); {len(a['other_heads_icl_scores'])} "
                         f"sets, {min(a['other_heads_icl_scores']):+.3f} to {max(a['other_heads_icl_scores']):+.3f}")]
    final = largest_standard_error(results, FINAL_SEMS)
    if final is not None:
        rows.append(Row("largest standard error of a final ICL score or difference from 1L", final[0], "",
                        f"{final[1]}; target <= {SEM_TARGET} ({'met' if final[0] <= SEM_TARGET else 'NOT met'})"))
    around = largest_standard_error(results, PHASE_CHANGE_SEMS)
    if around is not None:
        rows.append(Row("largest standard error of an ICL score or change around a phase change", around[0], "",
                        around[1]))
    return rows


SEM_TARGET = 0.02           # issue 15: the final scores' standard errors, paired between models
FINAL_SEMS = ("icl_score_sem", "icl_diff_vs_1L_sem")
PHASE_CHANGE_SEMS = ("icl_score_before_sem", "icl_score_after_sem", "icl_change_at_phase_change_sem",
                     "icl_change_vs_1L_same_steps_sem")


def largest_standard_error(results, keys) -> tuple[float, str] | None:
    """(the largest, "model key") of these standard errors of every model, or None."""
    found = [(m[k], f"{name} {k}") for name, m in results["models"].items() for k in keys
             if m.get(k) is not None and np.isfinite(m[k])]
    return max(found) if found else None


def _agrees(claim) -> str:
    word = {True: "agrees", False: "DISAGREES", None: "not measured"}[claim.agrees]
    return f"{word} ({claim.criterion})" if claim.criterion else word
