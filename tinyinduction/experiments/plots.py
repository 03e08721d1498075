"""Figures of the paper experiments (files only; matplotlib's object API, no pyplot state)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

LN2 = math.log(2.0)
KEY_NAMES = ["x1", "l1", "x2", "l2", "xq"]


def titled(title: str, note: str = "") -> str:
    """A figure's title with the run's setting when it is not the paper's (note: the
    reproduce Context's figure_note, e.g. "seed 7, features glyphs"; "" adds nothing)."""
    return f"{title} [{note}]" if note else title


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _head_colours(n, cmap):
    """n distinct colours from one colour map (layer 0 and layer 1 use different maps, so
    no colour suggests a link between a layer-0 and a layer-1 head)."""
    return [matplotlib.colormaps[cmap](0.25 + 0.7 * i / max(n - 1, 1)) for i in range(n)]


def _mark_phase(ax, phase):
    if phase is not None and phase.transition_time is not None:
        ax.axvline(phase.transition_time, color="tab:purple", ls="--", lw=1)


def _head_scores(ax, steps, scores, role_heads, layer, role, cmap, ylabel):
    """One line per head of `layer` ([checkpoints, H] scores), its role's heads bold."""
    scores = np.asarray(scores)
    chosen = {h for _, h in role_heads}
    for h, colour in enumerate(_head_colours(scores.shape[1], cmap)):
        strong = h in chosen
        ax.plot(steps, scores[:, h], color=colour, lw=2.2 if strong else 1.0, ls="-" if strong else "--",
                label=f"L{layer}H{h}" + (f" ({role})" if strong else ""))
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-1, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=f"layer {layer}",
              title_fontsize=8)


def heads_over_training(path, history, trajectory, roles, phase, note=""):
    """Loss (top), induction strength of layer-1 heads, previous-token score of layer-0 heads."""
    fig = Figure(figsize=(9, 8.5))
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.1, 1.3, 1.3]})
    steps = np.asarray(trajectory["step"])
    ax = axes[0]
    ax.plot(history["step"], history["eval/train/loss"], color="black", lw=1.5, label="train set loss")
    ax.axhline(LN2, color="grey", ls=":", lw=1, label="ln 2 (copy a random context label)")
    _mark_phase(ax, phase)
    ax.set_ylabel("loss (nats)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(titled("Heads over training: the circuit forms during the drop", note), fontsize=11)

    _head_scores(axes[1], steps, trajectory["induction_strength"], roles.induction_heads, 1,
                 "induction", "winter", "induction strength\nA(q->correct label) - A(q->other)")
    _head_scores(axes[2], steps, trajectory["previous_token_score"], roles.previous_token_heads, 0,
                 "prev-token", "autumn_r", "previous-token score\nA(label->its exemplar) - mean other")
    for ax in axes[1:]:
        _mark_phase(ax, phase)
    axes[2].set_xlabel("training step (batch of 32 sequences)")
    _mark_phase(axes[2], phase)
    axes[2].text(1.0, -0.32, "dashed purple: first evaluation with loss < 0.4 ln 2; dotted: "
                 "0 = no preference (baseline)", transform=axes[2].transAxes, ha="right", fontsize=7)
    return _save(fig, path)


def heads_ablations(path, results, paper=None, note=""):
    """Single-head accuracy and single-head ablations; heads switched on one by one; wiring."""
    fig = Figure(figsize=(13, 4.4))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.4, 1, 1.2]})
    n = len(results["only_head_acc"])
    x = np.arange(n)
    ax = axes[0]
    ax.bar(x - 0.2, results["only_head_acc"], 0.4, color="tab:blue", label="only this head active")
    ax.bar(x + 0.2, results["ablate_one_acc"], 0.4, color="tab:gray", label="this head ablated")
    ax.axhline(0.5, color="black", lw=0.8, ls=":", label="chance (two labels in context)")
    ax.set_xticks(x, [f"L1H{h}\ns={s:.2f}" for h, s in enumerate(results["induction_strength"])], fontsize=7)
    ax.set_ylabel("accuracy (train set)")
    ax.set_ylim(0, 1.05)
    ax.set_title(titled("Redundant heads: each alone does part of the job", note), fontsize=10, y=1.13)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=3)

    ax = axes[1]
    k = np.arange(1, len(results["switch_on_loss"]) + 1)
    ax.plot(k, results["switch_on_loss"], "o-", color="tab:blue", label="ours")
    if paper:
        ax.plot(np.arange(1, len(paper["switch_on_loss"]) + 1), paper["switch_on_loss"], "s--",
                color="tab:orange", label="Singh et al. (their features)")
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2)
    ax.set_yscale("log")
    ax.set_xlabel("layer-1 heads active (strongest first)")
    ax.set_ylabel("loss (nats, log scale)")
    ax.set_title("Additive heads: each one lowers the loss", fontsize=10, y=1.13)

    ax = axes[2]
    wiring = results["wiring"]
    groups = [("pattern_preserving", "previous_token_heads"), ("value_preserving", "previous_token_heads"),
              ("pattern_preserving", "other_heads"), ("value_preserving", "other_heads")]
    labels = ["PT heads,\npatterns kept", "PT heads,\nvalues kept", "other heads,\npatterns kept",
              "other heads,\nvalues kept"]
    ours = [wiring[a][b] if wiring[a][b] is not None else np.nan for a, b in groups]
    x = np.arange(len(groups))
    ax.bar(x - (0.2 if paper else 0), ours, 0.4, color="tab:blue", label="ours")
    if paper:
        ax.bar(x + 0.2, [paper["wiring"][a][b] for a, b in groups], 0.4, color="tab:orange",
               label="Singh et al.")
    ax.axhline(0.5, color="black", lw=0.8, ls=":", label="chance")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("accuracy with the layer-0 heads ablated")
    ax.set_ylim(0, 1.05)
    ax.set_title("Wiring: which path needs which layer-0 heads", fontsize=10, y=1.13)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=3)
    fig.tight_layout()
    return _save(fig, path)


def posthoc_figure(path, trajectory, note=""):
    """Loss of each checkpoint, plain and with a subcircuit clamped only at evaluation."""
    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    steps = trajectory["step"]
    ax.plot(steps, trajectory["loss"], color="black", lw=2, label="no clamp")
    styles = {"A": ("tab:green", "A clamped (layer-0 perfect: the trained layer 1\nloses what layer 0 wrote into its values)"),
              "B": ("tab:red", "B clamped (match, s = 1)"), "C": ("tab:blue", "C clamped (copy)")}
    for name, losses in trajectory["clamped_eval_loss"].items():
        colour, label = styles.get(name, (None, name))
        ax.plot(steps, losses, color=colour, lw=1.3, label=label)
    ax.axhline(LN2, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("checkpoint step")
    ax.set_ylabel("train-set loss (nats, log scale)")
    ax.set_title(titled("Clamping only at evaluation still shows the plateau and the jump", note), fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def query_row_animation(path, trajectory, phase, fps=4, note=""):
    """GIF: layer-1 query-row attention of every head, checkpoint by checkpoint."""
    from matplotlib.animation import FuncAnimation, PillowWriter
    rows = np.asarray(trajectory["query_rows"])                         # [checkpoints, H, Tk]
    steps, losses = trajectory["step"], trajectory["loss"]
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    image = ax.imshow(rows[0], vmin=0, vmax=1, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="attention from the query (xq)")
    ax.set_xticks(range(rows.shape[2]), KEY_NAMES[:rows.shape[2]])
    ax.set_yticks(range(rows.shape[1]), [f"L1H{h}" for h in range(rows.shape[1])])
    ax.set_xlabel("key (sequences whose answer is l1)")
    title = ax.set_title("")

    def draw(i):
        image.set_data(rows[i])
        title.set_text(titled(f"step {steps[i]:,}  loss {losses[i]:.3f}", note))
        return image, title

    animation = FuncAnimation(fig, draw, frames=len(steps), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.save(path, writer=PillowWriter(fps=fps), dpi=80)
    return path


def composition_figure(path, composition, previous_token_heads, induction_heads, note=""):
    """Q-, K-, V-composition of layer-0 heads (rows) into layer-1 heads (columns)."""
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    vmax = max(float(np.max(composition[k])) for k in "QKV")
    for ax, kind in zip(axes, "QKV"):
        scores = np.asarray(composition[kind])
        image = ax.imshow(scores, vmin=0, vmax=vmax, cmap="magma")
        ax.set_title(titled(f"{kind}-composition (random baseline {composition['baseline'][kind]:.3f})",
                            note if kind == "Q" else ""), fontsize=9)
        ax.set_xticks(range(scores.shape[1]),
                      [f"{h}{'*' if h in induction_heads else ''}" for h in range(scores.shape[1])])
        ax.set_yticks(range(scores.shape[0]),
                      [f"{h}{'*' if h in previous_token_heads else ''}" for h in range(scores.shape[0])])
        ax.set_xlabel("layer-1 head (* induction)")
    axes[0].set_ylabel("layer-0 head (* previous-token)")
    fig.colorbar(image, ax=axes, label="|composed| / (|first| |second|)")
    return _save(fig, path)


def race_figure(path, curves, learning_time, note=""):
    """Loss curves of every layer-1 head trained alone, and of all heads together."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.subplots()
    heads = sorted((k for k in curves if k != "all"), key=int)
    colours = [matplotlib.colormaps["tab10"](i % 10) for i in range(len(heads))]   # all layer 1
    for h, colour in zip(heads, colours):
        lt = learning_time[h]
        ax.plot(curves[h]["step"], curves[h]["loss"], color=colour, lw=1.2,
                label=f"L1H{h} alone" + (f" (learns at {lt:,})" if lt is not None else " (never)"))
    lt = learning_time["all"]
    ax.plot(curves["all"]["step"], curves["all"]["loss"], color="black", lw=2.4,
            label="all heads" + (f" (learns at {lt:,})" if lt is not None else ""))
    ax.axhline(LN2, color="grey", ls=":", lw=1, label="ln 2")
    ax.axhline(0.4 * LN2, color="tab:purple", ls="--", lw=0.8, label="0.4 ln 2 (learning time)")
    ax.set_xlabel("training step")
    ax.set_ylabel("train-set loss (nats)")
    ax.set_ylim(0, max(1.0, LN2 * 1.3))
    ax.set_title(titled("Heads race: each layer-1 head trained alone, and all together", note), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


CONDITION_COLOURS = {"none": "black", "PT": "tab:orange", "A": "tab:green", "B": "tab:red",
                     "C": "tab:blue", "A+C": "tab:purple"}
CONDITION_NAMES = {"none": "none (one induction head active)", "PT": "PT: previous-token pattern",
                   "A": "A: layer-0 perfect", "B": "B: match (s = 1)", "C": "C: copy",
                   "A+C": "A + C"}


def subcircuits_figure(path, results, note=""):
    """One panel per clamped condition: its loss curve, the unclamped one for reference,
    and the toy model with the best number of factors D fitted to it."""
    from ..toy import toy_loss_curve
    names = list(results["curves"])
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    base = results["curves"]["none"]
    for ax, name in zip(axes, names):
        curve = results["curves"][name]
        if name != "none":
            ax.plot(base["step"], base["loss"], color="lightgrey", lw=2, label="none (for reference)")
        ax.plot(curve["step"], curve["loss"], color=CONDITION_COLOURS.get(name), lw=1.6, label="network")
        fit = results["toy_fit"][name]
        if fit.get("depth") is not None:
            x = np.asarray(curve["step"], float)
            x = x[x >= fit["x_start"]]
            y = toy_loss_curve(x, fit["depth"], fit["tau"], fit["w0"], fit["floor"], fit["height"],
                               fit["x_start"])
            ax.plot(x, y, "k--", lw=1, label=f"toy fit with D = {fit['depth']}")
        ax.axhline(LN2, color="grey", ls=":", lw=0.8)
        if "n_labels" in results:     # chance among all labels: A's plateau sits there
            ax.axhline(math.log(results["n_labels"]), color="grey", ls=":", lw=0.8)
        lt = results["learning_time"][name]
        ax.set_title(f"{CONDITION_NAMES.get(name, name)}\nlearning time "
                     + ("never" if lt is None else f"{lt:,}") + f", plateau {results['plateau_steps'][name]:,} steps",
                     fontsize=9)
        ax.set_ylim(0, max(1.2, 1.1 * math.log(results.get("n_labels", 2))))
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[3:]:
        ax.set_xlabel("training step")
    for ax in axes[::3]:
        ax.set_ylabel("train-set loss (nats)")
    chance = f" and ln {results['n_labels']}" if "n_labels" in results else ""
    fig.suptitle(titled("Clamping subcircuits through training: with B or C given, the plateau goes "
                        f"(dotted: ln 2{chance})", note), fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def data_figure(path, results, note=""):
    """Loss curves of each data setting (rows: classes, labels) under each condition."""
    conditions = [c for c in ("unclamped", "B_evolves", "C_evolves", "BC_evolve") if c in results["curves"]]
    titles = {"unclamped": "unclamped (nothing given)", "B_evolves": "B evolves (A + C clamped)",
              "C_evolves": "C evolves (B clamped)", "BC_evolve": "B and C evolve (A clamped)"}
    sweeps = [a for a in ("classes", "labels") if any(results["curves"][c].get(a) for c in conditions)]
    fig = Figure(figsize=(3.8 * len(conditions), 3.3 * len(sweeps)))
    axes = fig.subplots(len(sweeps), len(conditions), sharey=True, squeeze=False)
    for row, axis in enumerate(sweeps):
        for col, condition in enumerate(conditions):
            ax = axes[row, col]
            settings = results["curves"][condition][axis]
            colours = _head_colours(len(settings), "plasma_r")
            for (value, curve), colour in zip(settings.items(), colours):
                lt = results[condition][axis][value]
                steps, loss = np.asarray(curve["step"], float), np.asarray(curve["loss"], float)
                if condition != "unclamped":   # fast clamped curves: a log axis shows the start
                    steps, loss = steps[steps > 0], loss[steps > 0]
                ax.plot(steps, loss, color=colour, lw=1.3,
                        label=f"{value} {axis}" + (f" (learns at {lt:,})" if lt is not None else " (never)"))
            if condition != "unclamped":
                ax.set_xscale("log")
            ax.axhline(LN2, color="grey", ls=":", lw=0.8)
            ax.set_ylim(0, 1.3)
            # clamped curves start high and fall late on a log axis: the lower left is free
            ax.legend(fontsize=7, loc="upper right" if condition == "unclamped" else "lower left")
            if row == 0:
                ax.set_title(titles[condition], fontsize=10)
            if row == len(sweeps) - 1:
                ax.set_xlabel("training step" + (" (log scale)" if condition != "unclamped" else ""))
            if col == 0:
                ax.set_ylabel(f"train-set loss (nats)\nsweep over {axis}")
    fig.suptitle(titled("Data properties act through different subcircuits (only one layer-1 head "
                        "active)", note), fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def seeds_figure(path, results, note=""):
    """Final induction strength of every layer-1 head of every seed against its single-head
    accuracy (left) and against its run's learning time (right)."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    colours = [matplotlib.colormaps["tab10"](i) for i in range(len(results["seeds"]))]
    for seed, lt, strength, acc, colour in zip(results["seeds"], results["learning_time"],
                                               results["final_induction_strength"],
                                               results["only_head_acc"], colours):
        axes[0].scatter(strength, acc, color=colour, s=25, label=f"seed {seed}")
        if lt is not None:
            axes[1].scatter(strength, [lt] * len(strength), color=colour, s=25, label=f"seed {seed}")
    corr = results["corr_strength_acc"]
    axes[0].set_title(titled("strength predicts single-head accuracy"
                             + (f" (r = {corr:.2f})" if corr is not None else ""), note), fontsize=10)
    axes[0].axhline(0.5, color="grey", ls=":", lw=0.8)
    axes[0].set_xlabel("final induction strength of a layer-1 head")
    axes[0].set_ylabel("accuracy with only that head active")
    corr = results["corr_strength_learning_time"]
    axes[1].set_title("... and the learning time only weakly" + (f" (r = {corr:.2f})" if corr is not None else ""),
                      fontsize=10)
    axes[1].set_xlabel("final induction strength of a layer-1 head")
    axes[1].set_ylabel("learning time of its run (steps)")
    if axes[1].collections:          # no seed learned: nothing to mark
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def strength_figure(path, results, note=""):
    """Final train and relabel loss against the clamped match strength."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    s = results["induction_strength"]
    ax = axes[0]
    ax.plot(s, results["train_loss"], "o-", color="tab:blue", label="training set")
    ax.plot(s, [np.nan if v is None else v for v in results["relabel_loss"]], "s-", color="tab:orange",
            label="held-out label pairs (relabel)")
    ax.axhline(LN2, color="grey", ls=":", lw=0.8, label="ln 2")
    ax.axvline(0.0, color="black", lw=0.6, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("clamped induction strength 2s - 1 (< 0: the head looks more at the wrong label)")
    ax.set_ylabel("final loss (nats, log scale)")
    ax.set_title(titled("A wrong-label head still fits training pairs, not new ones", note), fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    for (key, curve), colour in zip(results["curves"].items(), _head_colours(len(results["curves"]), "viridis")):
        ax.plot(curve["step"], [np.nan if v is None else v for v in curve["relabel"]], color=colour,
                lw=1.2, label=f"strength {key}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("relabel loss (nats, log scale)")
    ax.set_title("Relabel loss during training", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)
