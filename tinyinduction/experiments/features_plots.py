"""Figures of `reproduce features` (files only; matplotlib's object API, no pyplot state)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from ..phases import PAPER_THRESHOLD
from .plots import titled

LN2 = math.log(2.0)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


STAT_LABELS = {
    "effective_rank": "effective rank of the training classes",
    "heldout_in_train_span": "fraction of the held-out classes' variation\ninside the training classes' span",
}


def _scatter(ax, results, stat, target, ylabel):
    """One point per table; the recipe before the sweep, the chosen one and the glyph
    table are named, the other sweep points are blue dots."""
    points = results["points"]
    named = {"old": ("black", "recipe before the sweep"),
             results.get("chosen_point"): ("tab:red", "chosen recipe"),
             "glyphs": ("tab:green", "glyph table (not in rho)"),
             "glyphs,mean_norm=59": ("tab:olive", "glyph table at the built-in's scale")}
    for name, p in points.items():
        y = p[target]
        censored = target == "learning_time" and y is None
        if censored:
            y = p["steps"]
        colour, label = named.get(name, ("tab:blue", None))
        ax.scatter(p["statistics"][stat], y, color=colour, marker="^" if censored else "o",
                   s=40 if label else 22, zorder=3 if label else 2, label=label)
    ax.scatter([], [], color="tab:blue", s=22, label="other generator settings")
    rho = results["correlation"][stat][target]
    rho = "undefined" if rho is None else f"{rho:+.2f}"
    ax.set_xlabel(f"{STAT_LABELS.get(stat, stat.replace('_', ' '))}\n(Spearman rho over the "
                  f"generator sweep = {rho})", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def sweep_figure(path, results, curves, paper: bool = True,
                 timing_stat: str = "effective_rank",
                 generalisation_stat: str = "heldout_in_train_span", seed: int = 5,
                 note: str = "") -> Path:
    """Loss curves of every sweep point; learning time and final held-out-class loss
    against the table statistics that predict them (paper=False: the quick setting,
    drawn without the paper's numbers)."""
    fig = Figure(figsize=(14, 5.4))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1, 1]})
    ax = axes[0]
    lo, hi = results["target"]["learning_time"]
    if paper:
        ax.axvspan(lo, hi, color="tab:orange", alpha=0.15, label="paper's phase change (seed 5)")
    ax.axhline(LN2, color="grey", ls=":", lw=1, label="ln 2")
    ax.axhline(PAPER_THRESHOLD, color="tab:purple", ls="--", lw=1, label="0.4 ln 2 (learning time)")
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(curves)))
    for (name, (steps, loss, _)), colour in zip(curves.items(), colours):
        special = {results.get("chosen_point"): ("tab:red", 2.2), "old": ("black", 1.6),
                   "glyphs": ("tab:green", 1.8), "glyphs,mean_norm=59": ("tab:olive", 1.8)}
        c, lw = special.get(name, (colour, 0.9))
        suffix = {"old": " (before the sweep)", results.get("chosen_point"): " (chosen)"}
        ax.plot(steps, loss, color=c, lw=lw, label=name + suffix.get(name, ""))
    ax.xaxis.set_major_locator(matplotlib.ticker.MultipleLocator(10_000))
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("training step (batch of 32)")
    ax.set_ylabel("loss on the training evaluation set (nats)")
    ax.set_ylim(0, 1.2)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"Seed-{seed} runs on each feature table", fontsize=10)
    _scatter(axes[1], results, timing_stat, "learning_time",
             "learning time (steps; triangle: not reached)")
    axes[1].set_title("What predicts the timing", fontsize=10)
    _scatter(axes[2], results, generalisation_stat, "heldout_classes",
             "held-out classes, final loss (nats)")
    if paper:
        axes[1].axhspan(lo, hi, color="tab:orange", alpha=0.15, label="paper's phase change")
        axes[2].axhline(results["target"]["heldout_classes"], color="tab:orange", ls="--", lw=1,
                        label="target 0.2 (paper ~0.12)")
    for ax in axes[1:]:
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    axes[2].set_title("What predicts generalisation to new classes", fontsize=10)
    fig.suptitle(titled("Stand-in exemplar features (not Omniglot): generator settings vs the "
                        "phase change", note), fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def glyph_figure(path, n_classes: int = 8) -> Path:
    """The first classes of the glyph table, each with its 5 renderings (exemplar 0 is the
    one training uses)."""
    from ..tasks.glyphs import glyph_images
    images, classes = glyph_images(n_classes=n_classes)
    n_renderings = images.shape[1]
    fig = Figure(figsize=(1.2 * n_renderings + 1.6, 1.2 * n_classes + 0.6))
    axes = fig.subplots(n_classes, n_renderings)
    for c, (char, script, _) in enumerate(classes):
        for e in range(n_renderings):
            ax = axes[c, e]
            ax.imshow(images[c, e], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_title("exemplar 0\n(training)" if e == 0 else f"exemplar {e}", fontsize=8)
        axes[c, 0].set_ylabel(f"U+{ord(char):04X}\n{script}", fontsize=7, rotation=0,
                              ha="right", va="center")
    fig.suptitle("Glyph table: classes (rows) x renderings (28 x 28 px)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
