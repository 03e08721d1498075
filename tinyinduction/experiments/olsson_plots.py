"""Figures of `reproduce olsson` (matplotlib only; every function writes one PNG).

training_figure: per model, plain held-out loss (repeated held-out windows grey), ICL score
    with its standard error, and every head's prefix-matching score over training; the
    phase change (onset to end) shaded.
pca_figure:      the per-token-loss PCA trajectories of every model, and the final loss at
    each position (where in the context each model gains).
heads_figure:    final per-head scores: prefix matching, induction, previous-token,
    copying (sample-based and eigenvalue proxy).
ablation_figure: the 2-layer models' ICL score, clean / induction heads ablated / other
    heads ablated (each other head set as a dot), with 1L's score for reference.
plain_figure:    the --plain runs: best prefix-matching head, ICL score and loss against
    tokens seen.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .plots import titled

COLOURS = {"1L": "tab:blue", "2L": "tab:red", "1L_smeared": "tab:cyan", "2L_smeared": "tab:orange",
           "2L_second_seed": "tab:purple"}


def _mark_phase(ax, model):
    onset, end = model.get("phase_change_onset_step"), model.get("phase_change_end_step")
    if onset is not None:
        ax.axvspan(onset, end, color="0.85", zorder=0)
    if model.get("phase_change_step") is not None:
        ax.axvline(model["phase_change_step"], color="k", ls="--", lw=0.8)


def training_figure(path, trajectories, results, note=""):
    names = list(trajectories)
    fig, axes = plt.subplots(3, len(names), figsize=(max(3.3 * len(names), 8.0), 8.6), sharex="col",
                             squeeze=False)
    loss_range = [np.inf, -np.inf]
    for col, name in enumerate(names):
        tr, res = trajectories[name], results["models"][name]
        steps, phase, colour = tr["step"], res["phase_change_step"], COLOURS.get(name, "k")
        history = tr["history"]
        ax = axes[0, col]
        ax.plot(steps, tr["loss"], color=colour, marker=".", ms=3, label="plain held-out windows")
        shown = list(tr["loss"][1:])
        if "eval/heldout_repeated/loss" in history:
            repeated = history["eval/heldout_repeated/loss"]
            ax.plot(history["step"], repeated, color="0.45", lw=1, label="held-out windows, repeated")
            shown += list(repeated[1:])
        loss_range = [min(loss_range[0], np.nanmin(shown)), max(loss_range[1], np.nanmax(shown))]
        seed = f" (seed {res['seed']})" if name == "2L_second_seed" else ""
        ax.set_title(f"{name}{seed}\n" + ("no phase change" if phase is None else f"phase change at step {phase:,}"),
                     fontsize=9)
        ax = axes[1, col]
        icl, sem = tr["icl_score"], tr["icl_score_sem"]
        ax.fill_between(steps, icl - sem, icl + sem, color=colour, alpha=0.25, lw=0)
        ax.plot(steps, icl, color=colour, marker=".", ms=3)
        ax.axhline(0, color="0.6", lw=0.6)
        ax = axes[2, col]
        prefix = tr["prefix_matching"]                                  # [checkpoints, L, H]
        for layer in range(prefix.shape[1]):
            for head in range(prefix.shape[2]):
                ax.plot(steps, prefix[:, layer, head], ls="-" if layer else ":", lw=1, label=f"L{layer}H{head}")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        ax.set_xlabel("training step")
        for row in range(3):
            _mark_phase(axes[row, col], res)
    icl_low = min(np.min(tr["icl_score"][1:] - tr["icl_score_sem"][1:]) for tr in trajectories.values())
    icl_high = max(np.max(tr["icl_score"][1:] + tr["icl_score_sem"][1:]) for tr in trajectories.values())
    pad = 0.05 * (loss_range[1] - loss_range[0])
    for col in range(len(names)):           # one scale per row for every model
        axes[1, col].set_ylim(icl_low - 0.02, max(icl_high, 0) + 0.02)
        axes[0, col].set_ylim(loss_range[0] - pad, loss_range[1] + 4 * pad)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[0, 0].set_ylabel("loss (nats per token)")
    early, late = results["settings"]["icl_positions"]
    band = results["settings"]["icl_band"]
    axes[1, 0].set_ylabel(f"ICL score, plain windows (nats)\nloss@{late}±{band} − loss@{early}±{band}")
    axes[2, 0].set_ylabel("prefix-matching score\n(dotted: layer 0, solid: layer 1)")
    fig.suptitle(titled("Olsson et al. on Python source (BPE): loss, ICL score (± s.e.) and prefix matching "
                        "over training\ngrey: the phase change (10% to 90% of the best head's rise); dashed: "
                        "halfway", note), fontsize=10)
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
        model = results["models"][name]
        for key, marker in (("phase_change_onset_step", "^"), ("phase_change_end_step", "v")):
            if model.get(key) is not None:
                index = int(np.flatnonzero(tr["step"] == model[key])[0]) - pca["first"]
                if index >= 0:
                    ax.plot(*points[index], marker=marker, color="k", ms=8, mfc=colour)
    explained = pca["explained_variance"]
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f}% of variance)")
    first_step = next(iter(trajectories.values()))["step"][pca["first"]]
    ax.set_title(titled("per-token losses across checkpoints, first two principal components", note)
                 + f"\n(open circle: step {first_step:,}; triangles: onset and end of the phase change; "
                   "square: end)", fontsize=9)
    ax.legend(fontsize=8)
    for name in trajectories:
        by_position = np.asarray(results["models"][name]["loss_by_position"])
        ax2.plot(np.arange(by_position.size), by_position, color=COLOURS.get(name, "k"), label=name)
    early, late = results["settings"]["icl_positions"]
    for position in (early, late):
        ax2.axvline(position, color="0.5", ls=":", lw=0.8)
    ax2.set_xlabel("position in the window (0 = first token)")
    ax2.set_ylabel("held-out loss at that position (nats)")
    ax2.set_title(f"final loss by position, all {results['settings']['n_all_windows']:,} plain held-out windows\n"
                  "(dotted: the ICL score's two positions)", fontsize=9)
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
                ax.set_ylabel(name, fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(titled("final per-head scores", note), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ablation_figure(path, results, note=""):
    panels = [(key, model) for key, model in (("ablation", "2L"), ("ablation_second_seed", "2L_second_seed"))
              if results.get(key)]
    fig, axes = plt.subplots(1, 2 * len(panels), figsize=(4.2 * 2 * len(panels), 4.8), squeeze=False)
    one = results["models"].get("1L")
    labels = ["clean", "induction\nheads ablated", "as many other\nheads ablated"]
    for index, (key, model) in enumerate(panels):
        a = results[key]
        heads = ", ".join(f"L{l}H{h}" for l, h in a["induction_heads"])
        for offset, (scores, title) in enumerate(((a, "plain held-out windows"),
                                                  (a["repeated"], "held-out windows that repeat a span"))):
            ax = axes[0, 2 * index + offset]
            values = [scores["clean_icl_score"], scores["induction_heads_icl_score"], scores["other_heads_icl_score"]]
            errors = [scores["clean_icl_score_sem"], scores["induction_heads_icl_score_sem"],
                      scores["other_heads_icl_score_sem"] or 0.0]
            ax.bar(range(3), [np.nan if v is None else v for v in values], yerr=errors, capsize=4, width=0.6,
                   color=["0.5", "tab:red", "tab:blue"])
            for x, value in enumerate(values):
                if value is not None:
                    ax.annotate(f"{value:+.3f}", (x + 0.32, value), ha="left", va="center", fontsize=8)
            if scores["other_heads_icl_scores"]:
                ax.scatter([2] * len(scores["other_heads_icl_scores"]), scores["other_heads_icl_scores"],
                           color="k", s=8, zorder=3, label="each set of other heads")
            if offset == 0 and one is not None:
                ax.axhline(one["icl_score"], color=COLOURS["1L"], ls="--", lw=1, label="1L, clean")
            ax.legend(fontsize=7, loc="best")
            ax.axhline(0, color="k", lw=0.6)
            ax.set_xticks(range(3))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_xlim(-0.5, 2.9)
            ax.set_title(f"{model}: {title}\ninduction heads {heads}\nablated - clean: "
                         f"{scores['induction_heads_change']:+.3f} ± {scores['induction_heads_change_sem']:.3f} "
                         "(paired)", fontsize=8)
    axes[0, 0].set_ylabel("ICL score (nats)\nnegative = later tokens are easier")
    fig.suptitle(titled("zero-ablating the 2-layer models' induction heads\n(error bars: standard error over "
                        "windows)", note), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plain_figure(path, runs, mode="plain", note=""):
    """--plain / --explore runs against tokens seen: one colour per run in every panel."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    for i, (label, r) in enumerate(runs.items()):
        color = plt.cm.tab10(i % 10)
        tokens = np.asarray(r["steps_over_training"]) * r["tokens_per_step"] / 1e6
        axes[0].plot(tokens, r["best_prefix_matching_over_training"], color=color, marker=".", ms=3, label=label)
        axes[0].plot(tokens, r["previous_token_over_training"], color=color, ls=":", lw=1)
        axes[1].plot(tokens, r["icl_score_over_training"], color=color, marker=".", ms=3)
        axes[2].plot(tokens[1:], np.asarray(r["loss_over_training"])[1:], color=color, marker=".", ms=3)
    axes[0].axhline(0.3, color="0.5", ls="--", lw=0.8)
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("best head: prefix matching (solid),\nlayer-0 previous token (dotted)")
    axes[1].axhline(0, color="0.6", lw=0.6)
    axes[1].set_ylabel("ICL score, plain held-out windows (nats)")
    axes[2].set_ylabel("plain held-out loss (nats per token)")
    for ax in axes:
        ax.set_xlabel("training tokens (millions)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    title = ("2-layer models on plain Python source only (no repeated spans): does an induction head form?"
             if mode == "plain" else "exploratory runs (seed 1) that chose the default setting")
    fig.suptitle(titled(title + " (dashed: prefix matching 0.3)", note), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
