"""`reproduce olsson --plain` and `--explore`: single 2-layer runs at other settings.

--plain: Olsson et al.'s own regime, plain text only (no repeated spans), long runs.
    Does a 2-layer attention-only model form induction heads from plain code alone, and
    after how many tokens? And how does batch x context move that point (Aoyama et al.
    2025 report that it matters)? One run per PLAIN_SETTINGS entry: equal token budgets,
    a 4x different batch (so batch x context) at the same context.
--explore: the exploratory runs that chose the default setting (EXPLORATION: vocabulary,
    context, steps), the failed ones included, each with why it was run. Seed 1, never
    the decisive seeds 5 and 6.

Both train one run after another with --jobs 1 (run them in the background: they take
hours); interrupted, the same command resumes every run from its last checkpoint. At
every checkpoint: the best head's prefix-matching score, layer 0's best previous-token
score, the loss and the ICL score on plain held-out windows. The outcome of each run
(steps and tokens trained, the best prefix-matching score, the phase change if any, in
steps and tokens, the ICL score, wall time) is read by the default `reproduce olsson`
into results["plain"] and results["exploration"] when these DIRs (runs/reproduce/
olsson_plain and olsson_explore by default) sit beside its own.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..jsonio import to_jsonable
from ..sweep import RunSpec
from . import olsson_analysis as oa
from .base import Row
from .olsson_common import Setting, make_probes, model_config, over_training, setting, source_of, vocab_of

N_WINDOWS = 512                    # held-out windows of the loss and ICL at every checkpoint
EXPLORATION_SEED = 1               # exploratory runs never use the decisive seeds (5 and 6)


@dataclass(frozen=True)
class SingleRun:
    """One run of --plain or --explore: what differs from the default setting, and why."""

    label: str
    batch_size: int
    n_ctx: int
    steps: int
    checkpoint_every: int
    repeat_fraction: float = 0.0
    n_layers: int = 2
    vocab_size: int | None = None          # None: the command's --vocab (default 1024)
    heldout_fraction: float | None = None  # None: the default setting's
    why: str = ""


PLAIN = (
    SingleRun("B16_T64", 16, 64, 40_000, 2_500, why="the default's batch x context: 1,024 tokens a step"),
    SingleRun("B64_T64", 64, 64, 10_000, 625, why="4x the batch x context, the same tokens in all"),
)
QUICK_PLAIN = (SingleRun("B16_T32", 16, 32, 300, 100), SingleRun("B32_T32", 32, 32, 150, 50))
EXPLORATION = (
    SingleRun("2L_V1024_T64_B16_r0.5", 16, 64, 10_000, 250, 0.5, heldout_fraction=0.1,
              why="the research note's run (heads at steps 5k-7k there), in this package, seed 1"),
    SingleRun("2L_V1024_T32_B32_r0.9", 32, 32, 3_000, 100, 0.9,
              why="--quick candidate: the old quick setting (context 32, 90% repeated, batch 32) on BPE-1024; "
                  "its 800 steps formed no head in the 2-layer model"),
    SingleRun("2L_V256_T32_B32_r0.9", 32, 32, 3_000, 100, 0.9, vocab_size=256,
              why="--quick candidate: the same with a BPE of 256 tokens"),
    SingleRun("2L_V1024_T32_B32_r0.5", 32, 32, 3_000, 100, 0.5,
              why="--quick candidate: the two above formed heads by step ~1,000 but their plain-text ICL score "
                  "went up (worse) at the phase change; half the windows repeated, as in the default"),
    SingleRun("2L_V256_T32_B32_r0.5", 32, 32, 3_000, 100, 0.5, vocab_size=256,
              why="--quick candidate: the same with a BPE of 256 tokens"),
)
QUICK_EXPLORATION = (SingleRun("2L_V1024_T32_B16_r0.5", 16, 32, 200, 100, 0.5),)


def single_runs(mode: str, quick: bool, seed: int, source: str = "stdlib", vocab: int | None = None) -> dict:
    """{label: (SingleRun, olsson_common.Setting)} of mode "plain" or "explore"."""
    entries = {"plain": QUICK_PLAIN if quick else PLAIN,
               "explore": QUICK_EXPLORATION if quick else EXPLORATION}[mode]
    out = {}
    for run in entries:
        base = setting(False, seed if mode == "plain" else EXPLORATION_SEED, source, run.vocab_size or vocab)
        text = base.text.replace(n_ctx=run.n_ctx, repeat_fraction=run.repeat_fraction)
        if run.heldout_fraction is not None:
            text = text.replace(heldout_fraction=run.heldout_fraction)
        out[run.label] = (run, Setting(text, base.n_heads, base.d_model, base.d_head,
                                       base.train.replace(steps=run.steps, batch_size=run.batch_size,
                                                          eval_every=run.checkpoint_every,
                                                          checkpoint_every=run.checkpoint_every),
                                       n_trajectory_windows=N_WINDOWS, second_seed=False))
    return out


def run_single_runs(ctx, mode: str) -> dict:
    """Train (or reuse) every run of the mode, one grid each, and measure them over training."""
    from .olsson_plots import plain_figure
    chosen = single_runs(mode, ctx.quick, ctx.seed, source_of(ctx), vocab_of(ctx))
    load_at_start = os.getloadavg()
    runs = {}
    for label, (entry, s) in chosen.items():
        task = s.text.make_task()
        name = "1L" if entry.n_layers == 1 else "2L"
        spec = RunSpec(f"{name}_{label}" if not label.startswith(name) else label,
                       model_config(name, task.d_vocab, s), s.text, s.train)
        ctx.log(f"{spec.name}: {s.train.steps:,} steps of {s.train.batch_size} x {s.text.n_ctx} tokens, "
                f"{s.text.repeat_fraction:.0%} repeated windows, BPE of {task.d_vocab}"
                + (f" ({entry.why})" if entry.why else ""))
        summary = ctx.train_runs([spec], grid=label)[spec.name]
        probes = make_probes(task, s.n_trajectory_windows, s.train.seed)
        tr = over_training(summary.out_dir, spec.model, probes, s.train.seed)
        best = tr["prefix_matching"].max(axis=(1, 2))
        history = summary.history()
        tokens_per_step = s.train.batch_size * s.text.n_ctx
        phase, window = oa.phase_change_step(tr["step"], best), oa.phase_window(tr["step"], best)
        runs[label] = {
            "why": entry.why, "n_layers": entry.n_layers, "vocab_size": task.d_vocab,
            "batch_size": s.train.batch_size, "n_ctx": s.text.n_ctx, "repeat_fraction": s.text.repeat_fraction,
            "heldout_fraction": s.text.heldout_fraction, "seed": s.train.seed, "tokens_per_step": tokens_per_step,
            "steps": int(tr["step"][-1]), "tokens": int(tr["step"][-1]) * tokens_per_step,
            "planned_steps": s.train.steps, "status": summary.status,
            "max_prefix_matching": float(best.max()), "final_prefix_matching": float(best[-1]),
            "phase_change_step": phase, "phase_change_tokens": None if phase is None else phase * tokens_per_step,
            "phase_change_onset_step": None if window is None else window[0],
            "phase_change_end_step": None if window is None else window[1],
            "previous_token_max": float(tr["previous_token"][-1][0].max()),
            "icl_score": float(tr["icl_score"][-1]), "icl_score_sem": float(tr["icl_score_sem"][-1]),
            "loss": float(tr["loss"][-1]),
            "wall_seconds": float(history["wall_time"][-1]) if history.get("wall_time") else None,
            "steps_over_training": tr["step"], "best_prefix_matching_over_training": best,
            "previous_token_over_training": tr["previous_token"][:, 0].max(axis=1),
            "icl_score_over_training": tr["icl_score"], "icl_score_sem_over_training": tr["icl_score_sem"],
            "loss_over_training": tr["loss"],
        }
    results = {"mode": mode, "runs": runs,
               "load_average": {"start": load_at_start, "end": os.getloadavg()}}
    stem = {"plain": "olsson_plain", "explore": "olsson_exploration"}[mode]
    plain_figure(ctx.figure_path(stem + ("_quick" if ctx.quick else "")), runs, mode, getattr(ctx, "figure_note", ""))
    return results


SUMMARY_KEYS = ("why", "n_layers", "vocab_size", "batch_size", "n_ctx", "repeat_fraction", "heldout_fraction",
                "seed", "steps", "tokens", "planned_steps", "status", "max_prefix_matching", "phase_change_step",
                "phase_change_tokens", "phase_change_onset_step", "phase_change_end_step", "icl_score",
                "icl_score_sem", "loss", "wall_seconds")


def read_outcome(directory) -> dict | None:
    """{label: the run's summary} from a --plain or --explore DIR's results.json, or None."""
    path = Path(directory) / "results.json"
    if not path.is_file():
        return None
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return None
    return to_jsonable({label: {k: run.get(k) for k in SUMMARY_KEYS} for label, run in runs.items()})


def outcome_status(directory) -> str:
    """ "finished" (results.json there), "unfinished" (started: reproduce.json but no
    results.json yet: running, or stopped) or "not run"."""
    directory = Path(directory)
    if (directory / "results.json").is_file():
        return "finished"
    return "unfinished" if (directory / "reproduce.json").is_file() else "not run"


def single_runs_table(results) -> list[Row]:
    rows = []
    paper = "induction heads form (~0.2-2B tokens in the known small reproductions)" \
        if results["mode"] == "plain" else ""
    for label, r in results["runs"].items():
        phase = "none" if r["phase_change_step"] is None else \
            f"step {r['phase_change_step']:,} ({r['phase_change_tokens'] / 1e6:.1f}M tokens)"
        hours = "" if r["wall_seconds"] is None else f"; {r['wall_seconds'] / 3600:.2f} h of training"
        rows.append(Row(f"{label}: best prefix-matching head over training", r["max_prefix_matching"], paper,
                        f"after {r['steps']:,} steps = {r['tokens'] / 1e6:.1f}M tokens ({r['status']}); "
                        f"phase change: {phase}{hours}"))
        rows.append(Row(f"{label}: final ICL score (nats)", r["icl_score"], "",
                        f"± {r['icl_score_sem']:.3f} s.e., {N_WINDOWS} plain held-out windows"))
    return rows
