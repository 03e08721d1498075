"""The results page's text for `reproduce olsson` (report(results) -> Markdown): the
setting, where the claims are (the table's first rows: olsson.table), the --plain and
--explore outcomes. Every number is formatted from results.json; none is typed here."""
from __future__ import annotations

from .base import Row
from .olsson_claims import claim_7


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def setting_text(results) -> str:
    s, t = results["settings"], results["tokenizer"]
    text, train = s["text"], s["train"]
    fp = s["fingerprint"]
    early, late = s["icl_positions"]
    models = results["models"]
    second = results.get("second_seed_model")
    trained = ", ".join(name for name in models if name != second)
    seeds = f"seed {models['2L']['seed']}" + (f", and the 2-layer model again on seed {models[second]['seed']}"
                                              if second else "")
    return (
        f"**Setting.** Attention-only models, {s['n_heads']} heads of {s['d_head']} per layer, d_model "
        f"{s['d_model']}, RoPE, pre-LayerNorm, untied unembedding; {trained} (`_smeared`: with Olsson's "
        f"smeared key); {seeds}. Text: the Python standard library's source ({fp['files']} files, "
        f"{fp['characters']:,} characters; a fifth of the files held out: {fp['heldout_files']}), "
        f"as a byte-pair encoding of {t['vocab_size']:,} tokens learnt on the training files "
        f"({t['chars_per_token']:.2f} characters per token on held-out files; UNK rate {t['unk_rate_heldout']:.1e}; "
        "the text, the tokenizer and the measures: [reference manual]"
        "(tinyinduction/README.md#text-tasks-and-olsson-et-als-measures)). "
        f"Context {text['n_ctx']} tokens, batch {train['batch_size']}, Adam lr {train['lr']:g}, "
        f"{train['steps']:,} steps ({train['steps'] * train['batch_size'] * text['n_ctx'] / 1e6:.1f}M tokens), "
        f"a checkpoint every {train['checkpoint_every']}. **Deviation from the paper, kept and stated:** "
        f"{text['repeat_fraction']:.0%} of the training windows repeat a span of real text (`--plain` is "
        f"Olsson's own regime, below). Everything is measured on **plain** held-out windows: at every "
        f"checkpoint on {s['n_trajectory_windows']:,} of them; the final, before and after scores on all "
        f"{s['n_all_windows']:,} non-overlapping ones (paired between models and steps on the same windows); "
        f"the ablations on {s['n_ablation_windows']:,}. ICL score = loss at position {late}±{s['icl_band']} "
        f"minus loss at position {early}±{s['icl_band']} (Olsson's tokens 500 and 50 of 512, scaled to "
        f"{text['n_ctx']}).")


def single_runs_text(outcome, mode, status=None) -> str:
    """The --plain or --explore runs as a table; without them, why not (status: from
    results["beside_status"]; None in results written before it was recorded)."""
    if not outcome:
        command = f"python -m tinyinduction reproduce olsson --{'plain' if mode == 'plain' else 'explore'}"
        if status == "unfinished":
            return (f"Started beside this one but not finished when this ran (still running, or stopped: `{command}` "
                    "continues it); run `python -m tinyinduction reproduce olsson` again when it has finished "
                    "(finished runs are reused) to bring its outcome here.")
        if status == "not run":
            return f"Not run beside this one (`{command}`)."
        return f"No outcome beside this one when it ran (`{command}`)."
    lines = ["| run | why | layers | BPE | batch x context | repeated | steps (tokens) | best prefix matching "
             "| phase change | final ICL score | wall time |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in outcome.items():
        phase = "none" if r["phase_change_step"] is None else \
            f"step {r['phase_change_step']:,} ({r['phase_change_tokens'] / 1e6:.1f}M tokens)"
        wall = "-" if r["wall_seconds"] is None else f"{r['wall_seconds'] / 60:.0f} min"
        status = "" if r["status"] == "finished" else f" ({r['status']})"
        lines.append(
            f"| {label} | {_cell(r['why'])} | {r['n_layers']} | {r['vocab_size']:,} | {r['batch_size']} x "
            f"{r['n_ctx']} | {r['repeat_fraction']:.0%} | {r['steps']:,} ({r['tokens'] / 1e6:.1f}M){status} | "
            f"{r['max_prefix_matching']:.2f} | {phase} | {r['icl_score']:+.3f} ± {r['icl_score_sem']:.3f} | {wall} |")
    stem = "olsson_plain" if mode == "plain" else "olsson_exploration"
    lines.append(f"\nOver training (best head, ICL score, loss against tokens seen): [{stem}.png](figures/{stem}.png), "
                 f"drawn by `python -m tinyinduction reproduce olsson --{'plain' if mode == 'plain' else 'explore'}`.")
    return "\n".join(lines)


def _heads(heads) -> str:
    return ", ".join(f"L{l}H{h}" for l, h in heads) or "none"


def differences_text(results) -> str:
    """Where ours differ from the paper, with what was measured to explain it."""
    m, s = results["models"], results["settings"]
    parts = []
    one, two = m.get("1L"), m.get("2L")
    if one and two:
        copying = ", ".join(f"{c:+.2f}" for c in one["copying_score_weights"][0])
        text = (f"*A 1-layer model's ICL score.* Olsson et al.'s 1-layer models have about none; ours ends at "
                f"{one['icl_score']:+.3f} ± {one['icl_score_sem']:.3f} (the 2-layer model: {two['icl_score']:+.3f}). "
                f"Its heads' copying scores (OV eigenvalues, one per head): {copying}. A copying head raises the "
                "logits of the tokens it attends to, so it predicts tokens seen earlier in the window, which pays "
                "on code, where identifiers recur.")
        a = results.get("ablation_1L")
        if a:
            text += (f" Zeroing its copying heads ({_heads(a['copying_heads'])}) takes its ICL score from "
                     f"{a['clean_icl_score']:+.3f} to {a['copying_heads_icl_score']:+.3f} (paired change "
                     f"{a['copying_heads_change']:+.3f} ± {a['copying_heads_change_sem']:.3f}); zeroing its other "
                     f"heads ({_heads(a['other_heads'])}) instead: {a['other_heads_icl_score']:+.3f}.")
        parts.append(text + " So the claims credit the induction heads only with the 2-layer model's difference "
                     "from the 1-layer one, on the same windows.")
    if two and two.get("pca_turn_degrees") is not None and claim_7(results).agrees is False:
        text = (f"*Claim 7, the PCA turn.* The 2-layer trajectory turns by {two['pca_turn_degrees']:.0f} degrees "
                f"between the steps before its phase change and those after it (1L over the same steps: "
                f"{two['pca_turn_degrees_1L_same_steps']:.0f}), short of the criterion.")
        lengths, control = two.get("pca_path_lengths"), two.get("pca_path_lengths_1L_same_steps")
        if lengths and control:
            text += (f" What it does instead is jump: it moves {lengths['during']:.1f} (in the first two "
                     f"components) during the phase change, against {lengths['before']:.1f} over as many steps "
                     f"before and {lengths['after']:.1f} after; the 1-layer model over the same steps "
                     f"{control['before']:.1f}, {control['during']:.1f}, {control['after']:.1f}.")
        parts.append(text)
    if two and two.get("icl_score_over_training"):
        parts.append(
            f"*The curves over training* read a fixed subset of {s['n_trajectory_windows']:,} windows; the final, "
            f"before and after scores read all {s['n_all_windows']:,}. At the end the 2-layer model's ICL score "
            f"is {two['icl_score_over_training'][-1]:+.3f} on the subset and {two['icl_score']:+.3f} on all: a "
            "subset is one sample of windows, and as the same windows are read at every checkpoint, it sits off "
            "by about as much throughout.")
    return "\n\n".join(parts)


def report(results) -> str:
    if "mode" in results:                          # a --plain or --explore DIR of its own
        return single_runs_text(results["runs"], results["mode"])
    status = results.get("beside_status") or {}
    parts = [setting_text(results),
             "**Olsson et al.'s claims** are the table's first rows: ours, theirs, and whether they agree by a "
             "criterion written down in `tinyinduction/experiments/olsson_claims.py` before the decisive runs "
             "(seeds 5 and 6) were made.",
             "**Where ours differ, and what we measured about it.**", differences_text(results),
             "**Plain text only (`--plain`)**: does a 2-layer model form induction heads without repeated spans, "
             "and when?", single_runs_text(results.get("plain"), "plain", status.get("plain")),
             "**Exploratory runs (`--explore`, seed 1)** that chose this setting, the failed ones included:",
             single_runs_text(results.get("exploration"), "explore", status.get("exploration"))]
    return "\n\n".join(parts)


def headline(results) -> list[Row]:
    """The front page's rows: Olsson et al.'s central claim on plain held-out code."""
    if "mode" in results or "2L" not in results.get("models", {}):
        return []
    m, a = results["models"]["2L"], results.get("ablation")
    rows = [Row("a 2-layer model's ICL score on plain held-out code, minus a 1-layer model's (nats)",
                f"{m['icl_diff_vs_1L']:+.3f} ± {m['icl_diff_vs_1L_sem']:.3f}", "about -0.4")]
    if m.get("icl_change_at_phase_change") is not None:
        rows.append(Row("the ICL score's change across the phase change (nats)",
                        f"{m['icl_change_at_phase_change']:+.3f} ± {m['icl_change_at_phase_change_sem']:.3f}",
                        "a sharp drop"))
    if a:
        rows.append(Row("ICL score with the induction heads ablated (clean -> ablated)",
                        f"{a['clean_icl_score']:+.3f} -> {a['induction_heads_icl_score']:+.3f}",
                        "most of the ICL score gone"))
    return rows
