# %% [markdown]
# # Lesson 04: a toy model of why induction heads appear suddenly
#
# **Learning objectives.** After this lesson you can
# - explain why a circuit whose parts only help together learns with a plateau and then
#   a sudden drop: with u = w_1 ... w_D, each factor's gradient is the product of the
#   others, so while all are small nothing moves;
# - write the gradient of the product model and the closed-form solution of its
#   gradient flow for D = 1 and 2, and check both against a numerical ODE solver;
# - predict how the plateau grows with the number of factors and with a smaller start,
#   and what clamping a factor at its target does (D = 3 -> 2 -> 1);
# - reproduce Singh et al.'s vector toy with clamping (their Fig. 5a);
# - fit the toy to a network's loss curve and say what such a fit can and cannot tell.
#
# **Exercises.** `python -m tinyinduction.exercises 04` writes
# `lessons/exercises/04_toy_dynamics.py`, in which you write `product_gradient` and
# `closed_form_product` (D = 1, 2); `python -m tinyinduction.exercises check 04` checks both.
#
# **Prints** the closed-form vs solve_ivp errors, plateau lengths and transition times
# with 0, 1, 2 clamps, the vector model's transition steps, the plateau-scaling slopes,
# and a toy fit. **Saves** `figures/toy_closed_vs_sim.png`, `figures/toy_depth.png`,
# `figures/toy_vector_clamps.png`, `figures/toy_plateau_scaling.png`, and
# `figures/toy_fit.png` for a network run. Without a network run it fits a generated
# curve and writes `figures/toy_fit_generated.png` instead, titled "generated curve", so
# the network's figure is never replaced by a stand-in. `TINYINDUCTION_QUICK=1`: coarser
# grids. Run time, prerequisites and the papers: the course guide, `lessons/README.md`.
#
# Network run: give a history.json as the first argument or in the environment variable
# `TINYINDUCTION_HISTORY` (default: `runs/demo/history.json` of this checkout, written by
# `python -m tinyinduction demo`).

# %%
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from tinyinduction import toy
from tinyinduction.exercises import check, reveal, show_solution
from tinyinduction.paths import figures_dir, lesson_root, quick_mode, runs_dir
from tinyinduction.phases import PAPER_THRESHOLD, describe_history, describe_phase_change

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()
S, TAU, W0 = 1.0, 1.0, 0.1  # target product, time constant, initial factor: times in units of tau

# %% [markdown]
# ## A circuit as a product
# The induction circuit works only when all its parts are there: a previous-token head
# (in our layer 0, the paper's layer 1), a query-key match and a copying value/output
# path. If any part is missing the circuit does nothing. The simplest model with that
# property is a product: u = w_1 w_2 ... w_D fitted to a target s with the loss
# L = 1/2 (s - u)^2, trained by gradient flow tau dw_i/dt = -dL/dw_i (Saxe et al. 2014;
# Singh et al. 2024, section 6). D = 3 stands for the three parts.
#
# ## Exercise 1: the gradient of the product model
# ### Predict first
# D = 3, s = 1. All three factors start at 0.01. How large is the gradient of each
# factor compared with when all three are 0.5?

# %%
# EXERCISE: product_gradient
from tinyinduction.toy import product_gradient  # SOLUTION
check("product_gradient", product_gradient)
small, large = product_gradient([0.01] * 3, S), product_gradient([0.5] * 3, S)
print(f"gradient at w = 0.01: {small[0]:.2e}; at w = 0.5: {large[0]:.2e}; ratio {large[0] / small[0]:.0f}")

# %%
reveal("04.gradient", ratio=f"{large[0] / small[0]:,.0f}")

# %% [markdown]
# ## Exercise 2: the closed forms
# With all factors equal to w (balanced), every one follows tau dw/dt = w^(D-1) (s - w^D).
# D = 1 is linear; for D = 2, u = w^2 follows the logistic equation
# tau du/dt = 2 u (s - u) (Saxe's sigmoid). D = 3 has an implicit closed form t(w) from
# partial fractions, inverted numerically (it is in the package). The check compares
# your u(t) with the package's ODE solver (solve_ivp at rtol 1e-11).

# %%
# EXERCISE: closed_form_product
from tinyinduction.toy import closed_form_product  # SOLUTION
check("closed_form_product", closed_form_product)
show_solution("closed_form_product")  # SOLUTION

# %%
t = np.linspace(0.0, 1.3 * toy.transition_time(3, S, W0, TAU), 120 if QUICK else 300)
curves = {}
for depth in (1, 2, 3):
    u_closed = (closed_form_product if depth < 3 else toy.closed_form_product)(t, depth, S, W0, TAU)
    u_sim = toy.simulate_flow(t, [W0] * depth, S, TAU).prod(axis=1)
    curves[depth] = (u_closed, u_sim)
    print(f"D={depth}: closed form vs solve_ivp, max relative error "
          f"{np.max(np.abs(u_closed - u_sim) / u_sim):.1e}")
print("figure written to", toy.closed_vs_sim_figure(FIGURES / "toy_closed_vs_sim.png", t, curves, S))

# %% [markdown]
# ## Depth makes the plateau
# ### Predict first
# Same start w0 = 0.1, one more factor each time: D = 1, 2, 3, 4, 5. By how much does
# the time to reach u = 0.6 s (the transition) grow with each extra factor: 10 %,
# 2x, or more?

# %%
t = np.concatenate(([0.0], np.geomspace(1e-2, 1500.0, 800 if QUICK else 3000)))  # log time axis
losses, transitions = {}, {}
for depth in range(1, 6):
    u = toy.simulate_flow(t, [W0] * depth, S, TAU).prod(axis=1)
    losses[depth] = 0.5 * (S - u) ** 2
    transitions[depth] = describe_phase_change(t, losses[depth], plateau_level=losses[depth][0]).transition_time
    print(f"D={depth}: transition at t = {transitions[depth]:8.2f} tau")
lr = 0.05
t_gd, W_gd = toy.gradient_descent([W0] * 3, S, lr, int(40 / lr), TAU)
gd = (t_gd[20::40], 0.5 * (S - W_gd[20::40].prod(axis=1)) ** 2)
print("figure written to", toy.depth_figure(FIGURES / "toy_depth.png", t, losses, gd, W0, lr))

# %%
reveal("04.depth", times=", ".join(f"{transitions[d]:.3g}" for d in range(1, 6)),
       ratios=", ".join(f"{transitions[d + 1] / transitions[d]:.1f}" for d in range(1, 5)))

# %% [markdown]
# ## Clamping in the toy world
# ### Predict first
# Clamp one of the D = 3 factors at its final value c = s^(1/3). What model do the two
# free factors follow, and is their plateau shorter or longer?

# %%
summary = toy.clamping_summary(S, 0.05, TAU)
print("scalar model, D = 3, s = 1, w0 = 0.05 (times in units of tau)")
for label in ("none", "one_clamp", "two_clamps"):
    p, tr = summary["plateau_length"][label], summary["transition_time"][label]
    print(f"  {label:<11} plateau {p['closed_form']:8.3f} (sim {p['simulation']:8.3f})"
          f"   transition {tr['closed_form']:8.3f} (sim {tr['simulation']:8.3f})")

# %%
plateau = {label: summary["plateau_length"][label]["closed_form"] for label in ("none", "one_clamp", "two_clamps")}
reveal("04.clamping", none=f"{plateau['none']:.3g}", one=f"{plateau['one_clamp']:.3g}",
       ratio=f"{plateau['none'] / plateau['one_clamp']:.0f}", two=f"{plateau['two_clamps']:.3g}")

# %% [markdown]
# The vector toy of Singh et al. (Fig. 5a): a, b, c in R^20 fitted to a* (x) b* (x) c*
# by gradient descent (lr 1) from N(0, I); clamped vectors are reset to the truth after
# every step.

# %%
truth, init = toy.random_factors(20, 0), toy.random_factors(20, 1)
histories = {label: toy.train_vector_model(truth, init, 1.0, 1000, clamp)
             for label, clamp in toy.VECTOR_CLAMPS.items()}
for label, h in histories.items():
    loss = np.array(h["loss"])
    phase = describe_phase_change(h["step"], loss, plateau_level=loss[5:50].max())
    print(f"  {label:<11} loss < 0.4 x plateau at step {phase.transition_time:7.1f}; at the end: "
          f"1 - cos^2(a, a*) {h['a/misalignment'][-1]:.1e}, loss with b, c set to the truth "
          f"{h['a/loss_others_true'][-1]:.1e}")
print("figure written to", toy.vector_clamps_figure(FIGURES / "toy_vector_clamps.png", histories))

# %% [markdown]
# The middle panel: `a` aligns with `a*` in every run. The right panel, the loss with
# `b, c` set to the truth, reaches 0 only when `b, c` are clamped: with `b, c` free,
# `a` may converge to `k a*` (k b, c make up for it: a scale symmetry).
#
# ## How the plateau scales with the initial size
# ### Predict first
# Halve w0. Does the D = 3 plateau double, grow by a constant, or barely change? And
# the D = 2 plateau?

# %%
w0s = np.logspace(-4, -1.2, 12 if QUICK else 30)    # D = 1 starts past 0.1 s once w0 > 0.1
plateaus = {d: np.array([toy.plateau_length(d, S, w, TAU) for w in w0s]) for d in (1, 2, 3)}
small = slice(0, len(w0s) // 3)
slope3 = np.polyfit(np.log(w0s[small]), np.log(plateaus[3][small]), 1)[0]
slope2 = np.polyfit(np.log(w0s[small]), plateaus[2][small], 1)[0]
print(f"D=3: d ln(plateau) / d ln(w0) = {slope3:.3f} (theory -1 for small w0)")
print(f"D=2: d plateau / d ln(w0)      = {slope2:.3f} (theory -tau/s = -1: u0 = w0^2)")
print("figure written to",
      toy.plateau_scaling_figure(FIGURES / "toy_plateau_scaling.png", w0s, plateaus, S, TAU))

# %%
reveal("04.scaling", slope3=f"{slope3:.3f}", factor=f"{2 ** -slope3:.2f}", slope2=f"{slope2:.3f}",
       added=f"{-slope2 * math.log(2):.2f}")

# %% [markdown]
# ## The toy against the network
# Fit loss ~ floor + height (1 - u/s) of the D = 1, 2, 3 toy to a network's train-set
# loss after its fast initial fall (from the plateau start on). Floor and height are
# kept >= 0, so no fitted curve goes below zero loss.
#
# ### Predict first
# Which D fits the network's drop best, and could the fit tell D = 2 from D = 3?

# %%
default_history = runs_dir(root=ROOT) / "demo" / "history.json"
in_notebook = "ipykernel" in sys.modules          # a kernel's argv is not ours
arguments = [] if in_notebook else [a for a in sys.argv[1:] if not a.startswith("-")]
path = Path(arguments[0] if arguments else os.environ.get("TINYINDUCTION_HISTORY", default_history))
if path.exists():
    history = json.loads(path.read_text())
    loss_key = "eval/train/loss" if "eval/train/loss" in history else "train/loss"
    x = np.asarray(history["step"], dtype=float)
    loss = np.asarray(history[loss_key], dtype=float)
    phase = describe_history(history, loss_key=loss_key, threshold=PAPER_THRESHOLD)
    print(f"network run {path} ({loss_key}): plateau {phase.plateau_level:.3f} from step "
          f"{phase.plateau_start:.0f} to {phase.plateau_end:.0f}, loss < 0.4 ln 2 at step "
          f"{phase.transition_time:.0f}")
    source, figure_name = f"{path.parent.name}/{path.name} ({loss_key})", "toy_fit.png"
    title = "Network loss vs fitted toy (loss = floor + height (1 - u/s))"
else:
    print(f"no network run at {path}: fitting a generated D=3 curve with noise instead "
          "(run `python -m tinyinduction demo` for the network's)")
    rng = np.random.default_rng(0)
    x = np.arange(0.0, 31250.0, 250.0)
    loss = (toy.toy_loss_curve(x, 3, 1500.0, 0.1, 0.0, math.log(2), x_start=1500.0)
            + (math.log(5) - math.log(2)) * np.exp(-x / 400.0)
            + 0.01 * rng.standard_normal(x.size))
    source, figure_name = "generated D=3 curve (tau 1500, w0 0.1) + noise", "toy_fit_generated.png"
    title = "generated curve, not a network: fitted toy (loss = floor + height (1 - u/s))"
fit = toy.fit_scalar_model(x, loss)
fits = {d: toy.fit_scalar_model(x, loss, depths=(d,), x_start=fit.x_start) for d in fit.rms_by_depth}
print(f"best D={fit.depth}: tau={fit.tau:.0f} steps, w0={fit.w0:.3f}, floor={fit.floor:.3f}, "
      f"height={fit.height:.3f}, rms={fit.rms:.4f}")
print("rms by D: " + ", ".join(f"D={d}: {r:.4f}" for d, r in fit.rms_by_depth.items()))
print("figure written to", toy.fit_figure(FIGURES / figure_name, x, loss, fits, fit.depth,
                                          fit.x_start, source, title))

# %%
reveal("04.fit-network" if figure_name == "toy_fit.png" else "04.fit-generated",
       source=source, best=fit.depth, rms=", ".join(f"D = {d}: {r:.4f}" for d, r in fit.rms_by_depth.items()))

# %% [markdown]
# What the toy does not model: the network's fast initial fall to ln 2, the slow creep
# along the plateau, noise, Adam, interactions between heads, or which head plays which
# factor. Its tau and w0 are fitted numbers, not predictions, and s cannot be
# identified from a curve (only tau / s^((2D-2)/D) and w0 / s^(1/D) enter), so it is 1.
