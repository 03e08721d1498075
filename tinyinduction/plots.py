"""Matplotlib figures shared by the CLI and the lessons (saved to files, never shown)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

LN2 = math.log(2.0)
EVAL_STYLES = {
    "train/loss": ("training batches", "black", "-"),
    "eval/train/loss": ("train set (fixed)", "tab:blue", "-"),
    "eval/relabel/loss": ("relabel (held-out label pairs)", "tab:orange", "-"),
    "eval/heldout_classes/loss": ("held-out classes", "tab:green", "-"),
    "eval/other_exemplars/loss": ("other exemplars", "tab:red", "--"),
}


def fewshot_token_names(n_context_pairs: int) -> list[str]:
    """["x1", "l1", "x2", "l2", ..., "xq"]."""
    names = []
    for i in range(1, n_context_pairs + 1):
        names += [f"x{i}", f"l{i}"]
    return names + ["xq"]


def plot_loss_history(ax, history, phase=None, x_key="step", keys=tuple(EVAL_STYLES)):
    """Loss curves of a history dict; the ln 2 plateau level, the plateau and the transition."""
    x = np.asarray(history[x_key])
    for key in keys:
        if key in history:
            label, color, style = EVAL_STYLES.get(key, (key, None, "-"))
            ax.plot(x, history[key], style, color=color, label=label, lw=1.4)
    ax.axhline(LN2, color="grey", lw=0.8, ls=":", label="ln 2 (copy a random context label)")
    if phase is not None:
        if phase.plateau_start is not None and phase.plateau_end is not None:
            ax.axvspan(phase.plateau_start, phase.plateau_end, color="gold", alpha=0.2, label="plateau")
        if phase.transition_time is not None:
            ax.axvline(phase.transition_time, color="tab:purple", lw=1.2, ls="--",
                       label=f"phase change (loss < 0.4 ln 2) at {x_key} {phase.transition_time:,.0f}")
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel("cross-entropy at the query (nats)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper right")


def plot_patterns(axes, patterns, token_names, title_prefix=""):
    """Attention patterns [H, Tq, Tk] as heatmaps, one axis per head."""
    for head, ax in enumerate(axes):
        ax.imshow(patterns[head], vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{title_prefix}H{head}", fontsize=8)
        ticks = range(len(token_names))
        ax.set_xticks(ticks, token_names, fontsize=6)
        ax.set_yticks(ticks, token_names, fontsize=6)
        ax.tick_params(length=0)


def demo_figure(history, mean_patterns, phase, path, n_context_pairs=2, title=""):
    """Loss curves (top) and every head's mean attention pattern at the end (bottom rows).

    mean_patterns [L, H, Tq, Tk]: mean over train-set sequences whose query matches x1.
    """
    n_layers, n_heads = mean_patterns.shape[:2]
    fig = plt.figure(figsize=(max(10, 1.3 * n_heads), 4.2 + 1.5 * n_layers))
    grid = fig.add_gridspec(1 + n_layers, n_heads, height_ratios=[3.2] + [1.2] * n_layers,
                            hspace=0.45)
    ax = fig.add_subplot(grid[0, :])
    plot_loss_history(ax, history, phase)
    ax.set_title(title, fontsize=10)
    names = fewshot_token_names(n_context_pairs)
    for layer in range(n_layers):
        axes = [fig.add_subplot(grid[1 + layer, h]) for h in range(n_heads)]
        plot_patterns(axes, mean_patterns[layer], names, title_prefix=f"L{layer} ")
        axes[0].set_ylabel(f"layer {layer}\nquery", fontsize=8)
    fig.text(0.5, 0.01, "attention patterns at the end of training (rows: query, columns: key; mean "
             "over the train-set sequences whose query matches x1, so the answer is l1)",
             ha="center", fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
