"""The demo: a full phase-change run on the built-in features, a figure and a summary."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .model import run_with_cache
from .phases import PAPER_THRESHOLD, describe_history
from .plots import demo_figure
from .tasks.fewshot import FewShotTask
from .train import train

# Singh et al. 2024, seed 5, Omniglot/ResNet18 features (shared/research/singh2024.md)
PAPER_PHASE_CHANGE_STEPS = (5_600, 11_000)
PAPER_PLATEAU_LOSS = 0.72


def mean_patterns(params, model_config, batch, query_pair=0) -> np.ndarray:
    """Every layer's attention patterns [L, H, Tq, Tk], averaged over the sequences whose
    query matches context pair `query_pair` (so an induction head's query row points at
    that pair's label instead of being smeared over both)."""
    cache = run_with_cache(params, model_config, batch)
    chosen = np.asarray(batch.query_pair) == query_pair
    return np.stack([cache["pattern", layer][chosen].mean(axis=0)
                     for layer in range(model_config.n_layers)])


def summarise(history, wall_seconds) -> dict:
    """Plateau level, phase-change step (paper convention), final losses and accuracies.

    However short the run: with too few evaluations to describe a phase change, "phase"
    is None and "phase_note" says why."""
    try:
        phase, note = describe_history(history, loss_key="eval/train/loss",
                                       threshold=PAPER_THRESHOLD, interpolate=False), ""
    except ValueError as error:
        phase, note = None, str(error)
    final = {key: values[-1] for key, values in history.items() if key.startswith(("eval/", "train/"))}
    return {"phase": phase, "phase_note": note, "final": final, "wall_seconds": wall_seconds}


def features_description(features: str) -> str:
    """How the demo names the exemplar features it trains on."""
    if features.startswith("builtin"):
        return "built-in stand-in features" + (f" ({features})" if features != "builtin" else "")
    if features.startswith("glyphs"):
        return "rendered-glyph features" + (f" ({features})" if features != "glyphs" else "")
    return f"features from {features}"


def run_demo(model_config, task_config, train_config, out_dir: Path, figure: Path,
             preset_name: str = "paper", task=None, overwrite=False, log=print,
             evaluate_in_background=False):
    """Train (or reuse a finished run in out_dir, or continue an interrupted one), print a
    summary (next to the paper's numbers for the paper preset), draw. Returns the
    TrainResult; an interrupted run is summarised and drawn as far as it got.
    evaluate_in_background: see train() (the command line turns it on)."""
    paper = preset_name == "paper"
    features = features_description(task_config.features if task_config is not None else "builtin")
    log(f"tinyinduction demo: {model_config.n_layers} layers x {model_config.n_heads} heads, "
        f"{train_config.steps:,} steps of {train_config.batch_size} sequences "
        f"(seed {train_config.seed}), {features}; run directory {out_dir}")
    task = task or FewShotTask(task_config)
    result = train(model_config, task_config, train_config, out_dir=out_dir, task=task,
                   resume=None if overwrite else "auto", overwrite=overwrite, log=log,
                   evaluate_in_background=evaluate_in_background)
    history = result.history
    wall = history["wall_time"][-1] if history.get("wall_time") else 0.0
    summary = summarise(history, wall)
    phase, final = summary["phase"], summary["final"]
    patterns = mean_patterns(result.params, model_config, task.eval_sets()["train"])
    demo_figure(history, patterns, phase, figure, task.n_context_pairs,
                title=f"Few-shot task, {preset_name} preset, seed {train_config.seed} "
                      f"({features}, not Omniglot)"
                      + (f", interrupted at step {result.step:,}" if result.interrupted else ""))
    log("")
    log("summary" + (f" (interrupted at step {result.step:,} of {train_config.steps:,}; run the "
                     "same command again to continue)" if result.interrupted else ""))
    if phase is None:
        log(f"  phase change          not described: {summary['phase_note']}")
    else:
        change = phase.transition_time
        log(f"  plateau loss          {phase.plateau_level:.3f}  (ln 2 = {math.log(2):.3f}"
            + (f"; paper ~{PAPER_PLATEAU_LOSS})" if paper else ")"))
        if change is None:
            log("  phase change          not reached (train-set loss never fell below 0.4 ln 2)")
        else:
            log(f"  phase change          step {change:,.0f} = {change * train_config.batch_size / 1e6:.2f}M "
                f"sequences (first evaluation with loss < 0.4 ln 2"
                + (f"; paper, seed 5, Omniglot features: ~{PAPER_PHASE_CHANGE_STEPS[0]:,}-"
                   f"{PAPER_PHASE_CHANGE_STEPS[1]:,} steps)" if paper else ")"))
    log(f"  final training loss   {final['train/loss']:.4f}, accuracy {final['train/acc']:.3f}")
    for key in final:
        if key.startswith("eval/") and key.endswith("/loss"):
            name = key[len("eval/"):-len("/loss")]
            log(f"  eval {name:<17s} loss {final[key]:.4f}  accuracy {final[f'eval/{name}/acc']:.3f}")
    log(f"  wall time             {wall:.1f} s (training time recorded in the history)")
    log(f"  figure                {figure}")
    return result
