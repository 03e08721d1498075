"""Lesson 05: a toy model of why induction heads appear suddenly.

What it teaches
    A circuit made of several parts that only help together (previous-token head,
    match, copy) learns like a product of factors u = w_1 ... w_D fitted to a target s.
    Each factor's gradient is the product of the others, so while all are small nothing
    moves: a plateau, then a sudden drop. We solve this model in closed form (D = 1, 2, 3),
    check the closed forms against a numerical ODE solver, clamp factors at their targets
    (D = 3 -> 2 -> 1: the plateau shrinks, then vanishes), reproduce the vector toy of
    Singh et al. (2024, Fig. 5a), see how the plateau scales with the initial size of
    the factors, and fit the toy to the network's own loss curve.

How long it runs
    About 10-20 seconds on a 2-core laptop.

What it prints
    The closed-form vs solve_ivp error, plateau lengths and transition times with 0, 1,
    2 clamps, the vector model's transition steps, the plateau-scaling slopes, and the
    fitted toy parameters for the network's loss curve (or for a generated curve when no
    run is available). Figures go to figures/toy_*.png.

Network run: give the path to a history.json as the first argument or in the
environment variable TINYINDUCTION_HISTORY (default runs/demo/history.json), e.g. after
    python -m tinyinduction train --preset paper --seed 5 --steps 31250 --out runs/demo
"""

# %%
import json
import math
import os
import sys

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction import toy
from tinyinduction.phases import PAPER_THRESHOLD, describe_history, describe_phase_change

FIGURES = "figures"
os.makedirs(FIGURES, exist_ok=True)
S, TAU, W0 = 1.0, 1.0, 0.1  # target product, time constant, initial factor: times in units of tau


def save(fig, name):
    path = os.path.join(FIGURES, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"  figure written to {path}")


# %% [markdown]
# ## 1. Closed form vs simulation
# Balanced factors (all equal to w): tau dw/dt = w^(D-1) (s - w^D). D = 1 is an
# exponential, D = 2 Saxe's sigmoid, D = 3 an implicit closed form t(w) that we invert
# numerically. A numerical solver (solve_ivp, rtol 1e-11) must agree to ~1e-9.

# %%
print("1. closed form vs solve_ivp (s=1, tau=1, w0=0.1)")
t = np.linspace(0.0, 1.3 * toy.transition_time(3, S, W0, TAU), 300)
fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
for depth, colour in zip((1, 2, 3), ("C2", "C1", "C0")):
    u_closed = toy.closed_form_product(t, depth, S, W0, TAU)
    u_sim = toy.simulate_flow(t, [W0] * depth, S, TAU).prod(axis=1)
    rel = np.abs(u_closed - u_sim) / u_sim
    print(f"  D={depth}: max relative error {rel.max():.1e}")
    ax.plot(t, u_closed / S, color=colour, lw=2, label=f"D={depth} closed form")
    ax.plot(t[::10], u_sim[::10] / S, "o", color=colour, mfc="none", ms=4,
            label=f"D={depth} solve_ivp")
    ax_err.semilogy(t[1:], np.maximum(rel[1:], 1e-17), color=colour, label=f"D={depth}")
ax.set_xlabel("time t / tau")
ax.set_ylabel("learnt fraction u / s")
ax.set_title("Product of D factors: closed form (lines) vs ODE (circles)")
ax.legend(fontsize=8)
ax_err.set_xlabel("time t / tau")
ax_err.set_ylabel("|u_closed - u_ivp| / u_ivp (log scale)")
ax_err.set_title("Relative error of the closed forms")
ax_err.legend(fontsize=8)
save(fig, "toy_closed_vs_sim.png")

# %% [markdown]
# ## 2. Depth makes the plateau
# Same initial factor, more factors: D = 4 and 5 have no closed form here, the ODE
# solver draws them. Circles: discrete gradient descent with lr 0.05 (time = steps * lr
# * tau) - it follows the flow.

# %%
print("2. depth: transition time (u = 0.6 s) for D = 1..5, w0 = 0.1")
t = np.concatenate(([0.0], np.geomspace(1e-2, 1500.0, 3000)))  # log-spaced: log time axis
fig, ax = plt.subplots(figsize=(7, 4.2))
for depth in range(1, 6):
    u = toy.simulate_flow(t, [W0] * depth, S, TAU).prod(axis=1)
    loss = 0.5 * (S - u) ** 2
    pc = describe_phase_change(t, loss, plateau_level=loss[0])
    print(f"  D={depth}: transition at t = {pc.transition_time:8.2f} tau")
    ax.semilogx(t[1:], loss[1:], lw=2, label=f"D={depth}")
lr = 0.05
t_gd, W_gd = toy.gradient_descent([W0] * 3, S, lr, int(40 / lr), TAU)
ax.semilogx(t_gd[20::40], 0.5 * (S - W_gd[20::40].prod(axis=1)) ** 2, "ko", mfc="none",
            ms=4, label="D=3, gradient descent lr 0.05")
ax.set_xlabel("time t / tau (log scale)")
ax.set_ylabel("loss 1/2 (s - u)^2")
ax.set_title("More factors: longer plateau, sharper drop (w0 = 0.1)")
ax.legend(fontsize=8)
save(fig, "toy_depth.png")

# %% [markdown]
# ## 3. Clamping in the toy world (Singh et al. Fig. 5a)
# Scalar picture: clamping a factor at its target removes it from the product,
# D = 3 -> 2 -> 1. Vector picture: a, b, c in R^20, target a* (x) b* (x) c*, gradient
# descent with lr 1 from N(0, I); clamped vectors are reset to the truth after every
# step. Progress measures: 1 - cos^2(a, a*) and the loss with b, c set to the truth.

# %%
print("3. clamping: scalar model (D=3, s=1, w0=0.05), times in units of tau")
summary = toy.clamping_summary(S, 0.05, TAU)
for label in ("none", "one_clamp", "two_clamps"):
    p = summary["plateau_length"][label]
    tr = summary["transition_time"][label]
    print(f"  {label:<11} plateau {p['closed_form']:8.3f} (sim {p['simulation']:8.3f})"
          f"   transition {tr['closed_form']:8.3f} (sim {tr['simulation']:8.3f})")

truth, init = toy.random_factors(20, 0), toy.random_factors(20, 1)
names = {"none": "no clamp", "one_clamp": "c clamped", "two_clamps": "b and c clamped"}
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
print("   vector model (N=20, lr 1, 1000 steps): first step with loss < 0.4 x plateau")
for (label, clamp), colour in zip(toy.VECTOR_CLAMPS.items(), ("C0", "C1", "C2")):
    h = toy.train_vector_model(truth, init, 1.0, 1000, clamp)
    loss = np.array(h["loss"])
    pc = describe_phase_change(h["step"], loss, plateau_level=loss[5:50].max())
    print(f"  {names[label]:<16} transition at step {pc.transition_time:7.1f}")
    axes[0].semilogy(h["step"], np.maximum(loss, 1e-16), color=colour, lw=2, label=names[label])
    axes[1].plot(h["step"], h["a/misalignment"], color=colour, lw=2, label=names[label])
    axes[2].semilogy(h["step"], np.maximum(h["a/loss_others_true"], 1e-16), color=colour,
                     lw=2, label=names[label])
axes[0].set_ylabel("loss (log scale)")
axes[1].set_ylabel("1 - cos^2(a, a*)")
axes[2].set_ylabel("loss with b, c set to the truth (log scale)")
for ax, title in zip(axes, ("Loss", "Alignment of a",
                             "a alone (a = k a* still costs: scale symmetry)")):
    ax.set_xlabel("gradient-descent step")
    ax.set_title(title)
    ax.legend(fontsize=8)
axes[0].set_ylim(1e-12, None)
axes[2].set_ylim(1e-12, None)
save(fig, "toy_vector_clamps.png")

# %% [markdown]
# ## 4. How the plateau scales with the initial size
# Smaller initial factors -> longer plateau. D = 2 grows like (tau / 2s) ln(1/u0):
# a straight line against log w0. D = 3 grows like tau / (s w0): slope -1 on log-log
# axes, so it dominates everything for small initialisations.

# %%
print("4. plateau length vs w0")
w0s = np.logspace(-4, -1.2, 30)  # D=1 starts past 0.1 s once w0 > 0.1
plateaus = {d: np.array([toy.plateau_length(d, S, w, TAU) for w in w0s]) for d in (1, 2, 3)}
slope3 = np.polyfit(np.log(w0s[:10]), np.log(plateaus[3][:10]), 1)[0]
slope2 = np.polyfit(np.log(w0s[:10]), plateaus[2][:10], 1)[0]
print(f"  D=3: d ln(plateau) / d ln(w0) = {slope3:.3f} (theory -1 for small w0)")
print(f"  D=2: d plateau / d ln(w0)      = {slope2:.3f} (theory -tau/s = -1: u0 = w0^2)")
fig, ax = plt.subplots(figsize=(7, 4.2))
for d, colour in zip((1, 2, 3), ("C2", "C1", "C0")):
    ax.loglog(w0s, plateaus[d], color=colour, lw=2, label=f"D={d} closed form")
ax.loglog(w0s, TAU / (S * w0s), "k--", lw=1, label="tau / (s w0)")
ax.loglog(w0s, TAU / (2 * S) * np.log(0.1 * S / (0.9 * w0s ** 2)), "k:", lw=1,
          label="(tau / 2s) ln(s / 9 u0)")
ax.set_xlabel("initial factor w0 (log scale)")
ax.set_ylabel("plateau length / tau (log scale)")
ax.set_title("Plateau = time until u reaches 0.1 s")
ax.legend(fontsize=8)
save(fig, "toy_plateau_scaling.png")

# %% [markdown]
# ## 5. The toy against the network
# Fit loss ~ floor + height (1 - u/s) of the D = 1, 2, 3 toy to the network's train-set
# loss after its fast initial fall (from the plateau start on); the best D wins.

# %%
path = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else \
    os.environ.get("TINYINDUCTION_HISTORY", "runs/demo/history.json")
if os.path.exists(path):
    with open(path) as f:
        history = json.load(f)
    loss_key = "eval/train/loss" if "eval/train/loss" in history else "train/loss"
    x = np.asarray(history["step"], dtype=float)
    loss = np.asarray(history[loss_key], dtype=float)
    source = f"{path} ({loss_key})"
    pc = describe_history(history, loss_key=loss_key, threshold=PAPER_THRESHOLD)
    print(f"5. network run {source}: plateau {pc.plateau_level:.3f} from step "
          f"{pc.plateau_start:.0f} to {pc.plateau_end:.0f}, loss < 0.4 ln 2 at step "
          f"{pc.transition_time:.0f}")
else:
    print(f"5. no network run at {path}: fitting a generated D=3 curve with noise instead")
    rng = np.random.default_rng(0)
    x = np.arange(0.0, 31250.0, 250.0)
    loss = (toy.toy_loss_curve(x, 3, 1500.0, 0.1, 0.0, math.log(2), x_start=1500.0)
            + (math.log(5) - math.log(2)) * np.exp(-x / 400.0)
            + 0.01 * rng.standard_normal(x.size))
    source = "generated D=3 curve (tau 1500, w0 0.1) + noise"
fit = toy.fit_scalar_model(x, loss)
print(f"  best D={fit.depth}: tau={fit.tau:.0f} steps, w0={fit.w0:.3f}, floor={fit.floor:.3f}, "
      f"height={fit.height:.3f}, rms={fit.rms:.4f}")
print("  rms by D: " + ", ".join(f"D={d}: {r:.4f}" for d, r in fit.rms_by_depth.items()))
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(x, loss, "k.", ms=4, label=f"measured: {source}")
xs = np.linspace(fit.x_start, x[-1], 400)
for d in fit.rms_by_depth:
    alt = toy.fit_scalar_model(x, loss, depths=(d,), x_start=fit.x_start)
    ax.plot(xs, alt.predict(xs), lw=2 if d == fit.depth else 1,
            ls="-" if d == fit.depth else "--", label=f"toy fit D={d} (rms {alt.rms:.3f})")
ax.axhline(math.log(2), color="grey", lw=0.8, ls=":", label="ln 2")
ax.axvline(fit.x_start, color="grey", lw=0.8, ls="-.", label="fit starts (plateau start)")
ax.set_xlabel("training step")
ax.set_ylabel("cross-entropy loss")
ax.set_title("Network loss vs fitted toy (loss = floor + height (1 - u/s))")
ax.legend(fontsize=7)
save(fig, "toy_fit.png")
