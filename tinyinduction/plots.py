"""Matplotlib figures shared by the CLI and the lessons (saved to files, never shown).

Conventions, so a figure reads on a projector: every attention picture has a colour
bar on a fixed 0-1 scale; chance levels are drawn where a reader would ask "compared
with what?"; legends sit outside the data; y-labels say exactly what is plotted.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

LN2 = math.log(2.0)
ATTENTION_LABEL = "attention weight\n(fixed scale 0-1)"
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


def legend_outside(ax, **kwargs):
    """A legend to the right of the axes, where it cannot cover data."""
    kwargs.setdefault("fontsize", 8)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def plot_loss_history(ax, history, phase=None, x_key="step", keys=tuple(EVAL_STYLES),
                      n_labels=None):
    """Loss curves of a history dict, the ln 2 plateau level (and ln n_labels, the loss
    of a uniform guess, if given), the plateau and the transition. Legend outside."""
    x = np.asarray(history[x_key])
    for key in keys:
        if key in history:
            label, color, style = EVAL_STYLES.get(key, (key, None, "-"))
            values = np.array([np.nan if v is None else v for v in history[key]], dtype=float)
            ax.plot(x, values, style, color=color, label=label, lw=1.4)
    ax.axhline(LN2, color="grey", lw=0.9, ls=":", label="ln 2 = 0.69: copy one of the\ntwo context labels at random")
    if n_labels:
        ax.axhline(math.log(n_labels), color="grey", lw=0.9, ls="-.",
                   label=f"ln {n_labels} = {math.log(n_labels):.2f}: uniform over\nall {n_labels} labels")
    if phase is not None:
        if phase.plateau_start is not None and phase.plateau_end is not None:
            ax.axvspan(phase.plateau_start, phase.plateau_end, color="gold", alpha=0.2, label="plateau")
        if phase.transition_time is not None:
            ax.axvline(phase.transition_time, color="tab:purple", lw=1.2, ls="--",
                       label=f"phase change: loss < 0.4 ln 2\nat {x_key} {phase.transition_time:,.0f}")
    ax.set_xlabel("training " + x_key.replace("_", " "))
    ax.set_ylabel("cross-entropy at the query (nats)")
    ax.set_ylim(bottom=0)
    legend_outside(ax, fontsize=7)


def plot_patterns(axes, patterns, token_names, title_prefix="", vmax=1.0):
    """Attention patterns [H, Tq, Tk] as heatmaps on a fixed 0..vmax scale, one axis per
    head. Returns the last image, for add_attention_colorbar."""
    image = None
    for head, ax in enumerate(axes):
        image = ax.imshow(patterns[head], vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{title_prefix}H{head}", fontsize=9)
        ticks = range(len(token_names))
        ax.set_xticks(ticks, token_names, fontsize=7)
        ax.set_yticks(ticks, token_names, fontsize=7)
        ax.tick_params(length=0)
    return image


def add_attention_colorbar(fig, image, axes, label=ATTENTION_LABEL):
    """One colour bar for a row of attention pictures (they share the 0-1 scale)."""
    bar = fig.colorbar(image, ax=list(np.ravel(axes)), fraction=0.025, pad=0.02)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def demo_figure(history, mean_patterns, phase, path, n_context_pairs=2, title=""):
    """Loss curves (top) and every head's mean attention pattern at the end (bottom rows).

    mean_patterns [L, H, Tq, Tk]: mean over train-set sequences whose query matches x1.
    """
    n_layers, n_heads = mean_patterns.shape[:2]
    width, height = max(11, 1.45 * n_heads + 1.5), 4.4 + 1.6 * n_layers
    fig = plt.figure(figsize=(width, height))
    # fixed margins, room for the legend at the right: saved without bbox_inches="tight",
    # which draws the figure twice (speed: a third of the demo's drawing time)
    grid = fig.add_gridspec(1 + n_layers, n_heads, height_ratios=[3.2] + [1.2] * n_layers,
                            hspace=0.5, left=0.75 / width, right=1 - 2.4 / width,
                            top=1 - 0.45 / height, bottom=0.75 / height)
    ax = fig.add_subplot(grid[0, :])
    plot_loss_history(ax, history, phase, n_labels=None)
    ax.set_title(title, fontsize=10)
    names = fewshot_token_names(n_context_pairs)
    for layer in range(n_layers):
        axes = [fig.add_subplot(grid[1 + layer, h]) for h in range(n_heads)]
        image = plot_patterns(axes, mean_patterns[layer], names, title_prefix=f"L{layer} ")
        axes[0].set_ylabel(f"layer {layer}\nquery", fontsize=8)
        for ax in axes[1:]:
            ax.tick_params(labelleft=False)      # the query names once per row
        add_attention_colorbar(fig, image, axes)
    fig.text(0.5, 0.15 / height, "attention patterns at the end of training (rows: query, columns: key; mean "
             "over the train-set sequences whose query matches x1, so the answer is l1)",
             ha="center", fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_figure(fig, path, dpi=110):
    """Save to `path` (PNG); show inline in a notebook, otherwise close. Prints the path."""
    import matplotlib

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    print(f"figure written to {path}")
    if "inline" in matplotlib.get_backend():
        plt.show()
    else:
        plt.close(fig)
    return path


def circuit_diagram(ax):
    """The induction circuit on x1 l1 x2 l2 xq: a layer-0 previous-token head, then a
    layer-1 induction head whose query at xq matches l1 and copies l1's label."""
    names = ["x1", "l1", "x2", "l2", "xq"]
    levels = {"input": 0.0, "after layer 0": 1.0, "after layer 1": 2.0}
    for i in range(len(names)):
        ax.plot([i, i], [0, 2.35], color="lightgrey", lw=6, zorder=0, solid_capstyle="round")
        ax.text(i, -0.25, names[i], ha="center", va="top", fontsize=13, fontweight="bold")
    for name, y in levels.items():
        ax.text(-0.55, y, name, ha="right", va="center", fontsize=9, color="dimgrey")
    arrow = dict(arrowstyle="-|>", lw=2.2, mutation_scale=16)
    for label in (1, 3):   # previous-token head: each label reads its exemplar
        ax.annotate("", xy=(label, 1.0), xytext=(label - 1, 0.05),
                    arrowprops=dict(color="tab:orange", connectionstyle="arc3,rad=-0.25", **arrow))
    ax.annotate("", xy=(4, 2.0), xytext=(1, 1.05),
                arrowprops=dict(color="tab:blue", connectionstyle="arc3,rad=-0.3", **arrow))
    ax.annotate("", xy=(4, 1.95), xytext=(3, 1.05),
                arrowprops=dict(color="tab:blue", alpha=0.35, ls="--",
                                connectionstyle="arc3,rad=-0.2", arrowstyle="-|>", lw=1.2))
    ax.text(4.15, 2.05, "output:\nl1's label", ha="left", va="center", fontsize=10, fontweight="bold")
    ax.text(2.95, 1.45, "the other label:\nno match, little attention", ha="center", fontsize=8,
            color="tab:blue", alpha=0.6)
    ax.text(-2.1, -0.75, "orange: a layer-0 previous-token head. Each label token reads the exemplar "
            "just before it,\nso l1 now carries x1's class.", ha="left", va="top",
            fontsize=9, color="tab:orange")
    ax.text(-2.1, -1.25, "blue: a layer-1 induction head at xq. Its query (xq's class) matches the "
            "key of l1 (x1's class),\nso it attends to l1 and copies l1's label to the output.",
            ha="left", va="top", fontsize=9, color="tab:blue")
    ax.set_xlim(-2.2, 5.2)
    ax.set_ylim(-1.8, 2.5)
    ax.axis("off")
    return ax
