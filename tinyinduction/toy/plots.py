"""Figures of the toy model (the `toy` command and lesson 04). Each function draws from
numbers computed elsewhere, writes one PNG and returns its path; nothing is printed.
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Optional

import numpy as np

CLAMP_COLOURS = {"none": "C0", "one_clamp": "C1", "two_clamps": "C2"}
CLAMP_NAMES = {"none": "no clamp (D=3)", "one_clamp": "one factor clamped (D=2)",
               "two_clamps": "two factors clamped (D=1)"}
VECTOR_NAMES = {"none": "no clamp", "one_clamp": "c clamped", "two_clamps": "b and c clamped"}
DEPTH_COLOURS = {1: "C2", 2: "C1", 3: "C0", 4: "C3", 5: "C4"}


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    directory = os.path.dirname(str(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def _legend_outside(ax, **kwargs):
    kwargs.setdefault("fontsize", 8)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def wants_log_time(t) -> bool:
    """True when the positive times span more than three decades (a linear axis would
    squeeze the fast curves against t = 0)."""
    positive = np.asarray(t)[np.asarray(t) > 0]
    return positive.size > 1 and positive.max() / positive.min() > 1e3


def plot_clamping_figure(path: str, t, curves: Mapping, summary: Mapping,
                         vector_histories: Optional[Mapping] = None) -> str:
    """Toy loss with 0/1/2 clamps: closed forms (lines), solve_ivp (circles), plateau ends
    (dotted); the vector model's loss on the right. Log time axis when t spans decades."""
    import matplotlib.pyplot as plt

    t = np.asarray(t)
    log_time = wants_log_time(t)
    ncols = 2 if vector_histories else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols + 1.5, 4.2), squeeze=False)
    ax = axes[0, 0]
    shown = t > 0 if log_time else np.ones(t.shape, bool)
    for label, curve in curves.items():
        colour = CLAMP_COLOURS[label]
        ax.plot(t[shown], curve["closed_form"][shown], color=colour, lw=2, label=CLAMP_NAMES[label])
        simulated = shown & np.isfinite(curve["simulation"])
        index = np.flatnonzero(simulated)[:: max(1, simulated.sum() // 40)]
        ax.plot(t[index], curve["simulation"][index], "o", ms=3.5, mfc="none", color=colour)
        end = summary["plateau_length"][label]["closed_form"]
        if end > 0 or not log_time:
            ax.axvline(end, color=colour, ls=":", lw=1)
    ax.plot([], [], "ko", mfc="none", ms=3.5, label="solve_ivp simulation")
    ax.plot([], [], "k:", lw=1, label="plateau end (u = 0.1 s)")
    if log_time:
        ax.set_xscale("log")
    ax.set_xlabel("time t / tau" + (" (log scale)" if log_time else ""))
    ax.set_ylabel("loss 1/2 (s - u)^2")
    ax.set_ylim(bottom=0)
    ax.set_title("Scalar toy: clamping shortens the plateau", fontsize=10)
    if vector_histories:
        _legend_outside(ax)
        ax = axes[0, 1]
        for label, h in vector_histories.items():
            ax.semilogy(h["step"], np.maximum(h["loss"], 1e-16), color=CLAMP_COLOURS[label],
                        lw=2, label=VECTOR_NAMES[label])
        ax.set_ylim(1e-12, None)
        ax.set_xlabel("gradient-descent step (lr 1)")
        ax.set_ylabel("loss (log scale)")
        ax.set_title("Vector toy (Singh et al., N = 20)", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    else:
        _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)


def closed_vs_sim_figure(path: str, t, curves: Mapping, s: float) -> str:
    """curves {D: (u_closed [n], u_sim [n])}: the learnt fraction u/s, and the relative
    error of the closed forms on a log scale."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(12, 4))
    every = max(1, len(t) // 30)
    for depth, (u_closed, u_sim) in curves.items():
        colour = DEPTH_COLOURS[depth]
        ax.plot(t, u_closed / s, color=colour, lw=2, label=f"D={depth} closed form")
        ax.plot(t[::every], u_sim[::every] / s, "o", color=colour, mfc="none", ms=4,
                label=f"D={depth} solve_ivp")
        rel = np.abs(u_closed - u_sim) / u_sim
        ax_err.semilogy(t[1:], np.maximum(rel[1:], 1e-17), color=colour, label=f"D={depth}")
    ax.set_xlabel("time t / tau")
    ax.set_ylabel("learnt fraction u / s")
    ax.set_ylim(0, 1.05)
    ax.set_title("Product of D factors: closed form (lines) vs ODE (circles)", fontsize=10)
    ax.legend(fontsize=8, loc="center right")
    ax_err.set_xlabel("time t / tau")
    ax_err.set_ylabel("|u_closed - u_ivp| / u_ivp (log scale)")
    ax_err.set_title("Relative error of the closed forms", fontsize=10)
    ax_err.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def depth_figure(path: str, t, losses: Mapping, gd: tuple, w0: float, lr: float) -> str:
    """losses {D: loss [n]} on a log time axis; gd = (t_gd, loss_gd) of gradient descent (D = 3)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for depth, loss in losses.items():
        ax.semilogx(t[1:], loss[1:], lw=2, color=DEPTH_COLOURS[depth], label=f"D={depth}")
    t_gd, loss_gd = gd
    ax.semilogx(t_gd, loss_gd, "ko", mfc="none", ms=4, label=f"D=3, gradient\ndescent lr {lr:g}")
    ax.set_xlabel("time t / tau (log scale)")
    ax.set_ylabel("loss 1/2 (s - u)^2")
    ax.set_ylim(bottom=0)
    ax.set_title(f"More factors: longer plateau, sharper drop (w0 = {w0:g})", fontsize=10)
    _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)


def vector_clamps_figure(path: str, histories: Mapping) -> str:
    """Singh et al. Fig. 5a: loss, misalignment of a, and a alone, with 0/1/2 clamps."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, h in histories.items():
        colour, name = CLAMP_COLOURS[label], VECTOR_NAMES[label]
        axes[0].semilogy(h["step"], np.maximum(h["loss"], 1e-16), color=colour, lw=2, label=name)
        axes[1].plot(h["step"], h["a/misalignment"], color=colour, lw=2, label=name)
        axes[2].semilogy(h["step"], np.maximum(h["a/loss_others_true"], 1e-16), color=colour,
                         lw=2, label=name)
    axes[0].set_ylabel("loss (log scale)")
    axes[1].set_ylabel("1 - cos^2(a, a*)  (0 = aligned)")
    axes[1].set_ylim(0, 1.05)
    axes[2].set_ylabel("loss with b, c set to the truth (log scale)")
    for ax, title in zip(axes, ("Loss", "Alignment of a",
                                "a alone (a = k a* still costs: scale symmetry)")):
        ax.set_xlabel("gradient-descent step (lr 1)")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[0].set_ylim(1e-12, None)
    axes[2].set_ylim(1e-12, None)
    fig.tight_layout()
    return _save(fig, path)


def plateau_scaling_figure(path: str, w0s, plateaus: Mapping, s: float, tau: float) -> str:
    """plateaus {D: [m]} against w0s [m] on log-log axes, with the D = 2, 3 asymptotes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for depth, values in plateaus.items():
        ax.loglog(w0s, values, color=DEPTH_COLOURS[depth], lw=2, label=f"D={depth} closed form")
    ax.loglog(w0s, tau / (s * w0s), "k--", lw=1, label="tau / (s w0)")
    ax.loglog(w0s, tau / (2 * s) * np.log(0.1 * s / (0.9 * w0s ** 2)), "k:", lw=1,
              label="(tau / 2s) ln(s / 9 u0)")
    ax.set_xlabel("initial factor w0 (log scale)")
    ax.set_ylabel("plateau length / tau (log scale)")
    ax.set_title("Plateau = time until u reaches 0.1 s", fontsize=10)
    _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)


def fit_figure(path: str, x, loss, fits: Mapping, best_depth: int, x_start: float,
               source: str, title: str) -> str:
    """The measured loss (dots) and each depth's fitted toy curve; fits {D: ToyFit}."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    ax.plot(x, loss, "k.", ms=4, label=f"measured:\n{source}")
    xs = np.linspace(x_start, x[-1], 400)
    for depth, fit in fits.items():
        best = depth == best_depth
        ax.plot(xs, fit.predict(xs), lw=2.2 if best else 1.2, ls="-" if best else "--",
                color=DEPTH_COLOURS[depth], label=f"toy fit D={depth} (rms {fit.rms:.3f})"
                + (", best" if best else ""))
    ax.axhline(math.log(2), color="grey", lw=0.8, ls=":", label="ln 2")
    ax.axvline(x_start, color="grey", lw=0.8, ls="-.", label="fit starts\n(plateau start)")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)
