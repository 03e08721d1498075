"""Figures of `reproduce olsson` (matplotlib only; every function writes one PNG).

training_figure: per model, held-out loss (train loss light), ICL score, and every head's
    prefix-matching score over training, the phase change marked.
pca_figure:      the per-token-loss PCA trajectories of the four models, plus the loss
    at each position at the end (where in the context each model gains).
heads_figure:    final per-head scores: prefix matching, induction, previous-token,
    copying (sample-based and eigenvalue proxy).
ablation_figure: the 2-layer model's ICL score, clean / induction heads ablated / other
    heads ablated (each other head set as a dot).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .plots import titled

COLOURS = {"1L": "tab:blue", "2L": "tab:red", "1L_smeared": "tab:cyan", "2L_smeared": "tab:orange"}


def _mark_phase(ax, step):
    if step is not None:
        ax.axvline(step, color="k", ls="--", lw=0.8)


def training_figure(path, trajectories, results, note=""):
    names = list(trajectories)
    fig, axes = plt.subplots(3, len(names), figsize=(3.6 * len(names), 8.4), sharex="col",
                             squeeze=False)
    loss_range = [np.inf, -np.inf]
    for col, name in enumerate(names):
        tr, res = trajectories[name], results["models"][name]
        steps, phase = tr["step"], res["phase_change_step"]
        history = tr["history"]
        ax = axes[0, col]
        ax.plot(steps, tr["loss"], color=COLOURS.get(name, "k"), marker=".", label="plain held-out windows")
        shown = list(tr["loss"][1:])
        if "eval/heldout_repeated/loss" in history:
            repeated = history["eval/heldout_repeated/loss"]
            ax.plot(history["step"], repeated, color="0.45", lw=1, label="held-out windows, repeated")
            shown += list(repeated[1:])
        loss_range = [min(loss_range[0], np.nanmin(shown)), max(loss_range[1], np.nanmax(shown))]
        ax.set_title(f"{name}\n" + ("no phase change" if phase is None else f"phase change at step {phase:,}"))
        ax = axes[1, col]
        ax.plot(steps, tr["icl_score"], color=COLOURS.get(name, "k"), marker=".")
        ax.axhline(0, color="0.6", lw=0.6)
        ax = axes[2, col]
        prefix = tr["prefix_matching"]                                  # [checkpoints, L, H]
        for layer in range(prefix.shape[1]):
            for head in range(prefix.shape[2]):
                ax.plot(steps, prefix[:, layer, head], ls="-" if layer else ":",
                        label=f"L{layer}H{head}")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        ax.set_xlabel("training step")
        for row in range(3):
            _mark_phase(axes[row, col], phase)
    icl_low = min(np.min(tr["icl_score"]) for tr in trajectories.values())
    icl_high = max(np.max(tr["icl_score"]) for tr in trajectories.values())
    for col in range(len(names)):           # one ICL scale for every model
        axes[1, col].set_ylim(icl_low - 0.02, icl_high + 0.02)
    pad = 0.05 * (loss_range[1] - loss_range[0])
    for col in range(len(names)):
        axes[0, col].set_ylim(loss_range[0] - pad, loss_range[1] + 4 * pad)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[0, 0].set_ylabel("loss (nats per character)")
    early, late = results["settings"]["icl_positions"]
    band = results["settings"]["icl_band"]
    axes[1, 0].set_ylabel(f"ICL score (nats)\nloss@{late}±{band} − loss@{early}±{band}")
    axes[2, 0].set_ylabel("prefix-matching score\n(dotted: layer 0, solid: layer 1)")
    fig.suptitle(titled("Olsson et al. on Python source: loss, ICL score and prefix matching over "
                        "training (dashed line: phase change)", note), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pca_figure(path, pca, trajectories, results, note=""):
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    for name, tr in trajectories.items():
        points, colour = pca[name], COLOURS.get(name, "k")
        ax.plot(points[:, 0], points[:, 1], color=colour, marker=".", ms=4, lw=1, label=name)
        ax.plot(*points[0], marker="o", color=colour, ms=6, mfc="white")
        ax.plot(*points[-1], marker="s", color=colour, ms=6)
        phase = results["models"][name]["phase_change_step"]
        if phase is not None:
            index = int(np.flatnonzero(tr["step"] == phase)[0]) - pca["first"]
            ax.plot(*points[index], marker="*", color="k", ms=12, mfc=colour)
    explained = pca["explained_variance"]
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    first_step = next(iter(trajectories.values()))["step"][pca["first"]]
    ax.set_title(titled("per-token losses across checkpoints, first two principal components", note)
                 + f"\n(open circle: step {first_step:,}; star: phase change; square: end)", fontsize=9)
    ax.legend(fontsize=8)
    for name, tr in trajectories.items():
        ax2.plot(np.arange(tr["loss_by_position"].shape[1]), tr["loss_by_position"][-1],
                 color=COLOURS.get(name, "k"), label=name)
    early, late = results["settings"]["icl_positions"]
    for position in (early, late):
        ax2.axvline(position, color="0.5", ls=":", lw=0.8)
    ax2.set_xlabel("position in the window (0 = first character)")
    ax2.set_ylabel("held-out loss at that position (nats)")
    ax2.set_title("final loss by position (dotted: the ICL score's two positions)", fontsize=9)
    ax2.legend(fontsize=7, ncol=3, loc="upper right")
    low, high = ax2.get_ylim()
    ax2.set_ylim(low, high + 0.25 * (high - low))       # room for the legend above the curves
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heads_figure(path, results, note=""):
    names = list(results["models"])
    kinds = [("prefix_matching", "prefix matching", (0, 1)), ("induction_score", "induction", (0, 1)),
             ("previous_token_score", "previous token", (0, 1)),
             ("copying_score_sample", "copying (sample; chance -0.92)", (-1, 1)),
             ("copying_score_weights", "copying (eigenvalues)", (-1, 1))]
    fig, axes = plt.subplots(len(names), len(kinds), figsize=(2.6 * len(kinds), 1.3 * len(names) + 1.2),
                             squeeze=False)
    for row, name in enumerate(names):
        for col, (key, label, (low, high)) in enumerate(kinds):
            ax = axes[row, col]
            values = np.asarray(results["models"][name][key], dtype=float)     # [L, H]
            image = ax.imshow(values, vmin=low, vmax=high, cmap="viridis" if low == 0 else "RdBu_r",
                              aspect="auto")
            for (layer, head), value in np.ndenumerate(values):
                ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="w" if (value - low) / (high - low) < 0.5 and low == 0 else "k")
            ax.set_xticks(range(values.shape[1]))
            ax.set_yticks(range(values.shape[0]))
            ax.set_yticklabels([f"L{l}" for l in range(values.shape[0])])
            if row == 0:
                ax.set_title(label, fontsize=9)
            if row == len(names) - 1:
                ax.set_xlabel("head")
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(titled("final per-head scores", note), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ablation_figure(path, results, trajectories, note=""):
    a = results["ablation"]
    heads = ", ".join(f"L{l}H{h}" for l, h in a["induction_heads"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    panels = [(axes[0], a, "plain held-out windows (Olsson's measure)"),
              (axes[1], a["repeated"], "held-out windows that repeat a span")]
    labels = ["clean", f"induction heads\nablated ({heads})", "as many other\nheads ablated"]
    for ax, scores, title in panels:
        values = [scores["clean_icl_score"], scores["induction_heads_icl_score"], scores["other_heads_icl_score"]]
        errors = [scores["clean_icl_score_sem"], scores["induction_heads_icl_score_sem"], 0.0]
        bars = ax.bar(labels, [np.nan if v is None else v for v in values], yerr=errors, capsize=4,
                      color=["0.5", "tab:red", "tab:blue"])
        for bar, value in zip(bars, values):
            if value is not None:
                ax.annotate(f"{value:+.3f}", (bar.get_x() + 0.02, value), ha="left",
                            va="top" if value < 0 else "bottom", fontsize=8)
        if scores["other_heads_icl_scores"]:
            ax.scatter([2] * len(scores["other_heads_icl_scores"]), scores["other_heads_icl_scores"],
                       color="k", s=8, zorder=3, label="each set of other heads")
            ax.legend(fontsize=8)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_ylabel("ICL score of the 2-layer model (nats)\nnegative = later characters are easier")
    fig.suptitle(titled("zero-ablating the 2-layer model's induction heads (error bars: standard error "
                        "over windows)", note), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
