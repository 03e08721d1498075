"""Lesson 01: the forward pass, the cache, clamps, and checking gradients by hand.

What it teaches
- how a few-shot sequence `x1 l1 x2 l2 xq` becomes a [batch, pos, d_model] array;
- every intermediate array of the forward pass, by its TransformerLens name;
- how a clamp replaces part of one array and what that changes downstream;
- that the hand-written backward pass is right: analytic gradients against central
  finite differences, in float64.
Runs in about 10 seconds on a 2-core laptop. Prints the cache's names and shapes, a
clamp's effect, and the worst relative gradient error; saves
figures/01_cache_patterns.png and figures/01_gradient_check.png.
"""
# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction.clamp import previous_token_pattern
from tinyinduction.config import ModelConfig, TaskConfig
from tinyinduction.model import init_params, loss_and_grads, run_with_cache
from tinyinduction.plots import fewshot_token_names, plot_patterns
from tinyinduction.tasks.fewshot import FewShotTask

FIGURES = Path(__file__).resolve().parent.parent / "figures"
FIGURES.mkdir(exist_ok=True)

# %% [markdown]
# ## A batch of the few-shot task
# Each sequence holds two exemplar-label pairs and a query exemplar. The query's class is
# one of the two context classes; the right answer is that pair's label.

# %%
task = FewShotTask(TaskConfig.paper())
batch = task.sample(np.random.default_rng(0), 4)
print("exemplars", batch.exemplars.shape, "labels", batch.labels.shape, "target", batch.target)
print("first sequence: classes", batch.classes[0], "labels", batch.labels[0],
      "-> the query matches pair", batch.query_pair[0], "so the answer is", batch.target[0])

# %% [markdown]
# ## The forward pass and its cache
# `run_with_cache` returns every intermediate array under its TransformerLens name.
# They are read-only: nobody can change a cache by accident.

# %%
config = ModelConfig.paper()
params = init_params(config, seed=0)
cache = run_with_cache(params, config, batch)
for name, array in cache.items():
    print(f"{name:34s} {tuple(array.shape)}")
print("shorthand: cache['pattern', 1] is", cache["pattern", 1].shape)
try:
    cache["pattern", 1][0, 0, 0, 0] = 1.0
except ValueError as error:
    print("writing into the cache fails:", error)

# %% [markdown]
# ## A clamp: make head 3 of layer 0 an ideal previous-token head
# The clamp replaces that head's pattern; everything downstream sees the new pattern.

# %%
clamped = run_with_cache(params, config, batch, clamps=[previous_token_pattern(0, 3)])
print("layer 0 head 3, clamped pattern of sequence 0:\n", clamped["pattern", 0][0, 3].round(2))
print("head 2 untouched:", np.allclose(clamped["pattern", 0][:, 2], cache["pattern", 0][:, 2]))
print("layer 1 changed downstream:",
      not np.allclose(clamped["pattern", 1], cache["pattern", 1]))

fig, axes = plt.subplots(2, config.n_heads, figsize=(12, 4.2))
names = fewshot_token_names(task.n_context_pairs)
plot_patterns(axes[0], cache["pattern", 0].mean(axis=0), names, "L0 ")
plot_patterns(axes[1], clamped["pattern", 0].mean(axis=0), names, "clamped L0 ")
fig.suptitle("Layer-0 attention at initialisation (top) and with head 3 clamped to an ideal "
             "previous-token pattern (bottom); rows = query, columns = key", fontsize=9)
fig.tight_layout()
fig.savefig(FIGURES / "01_cache_patterns.png", dpi=110)
plt.close(fig)

# %% [markdown]
# ## Are the gradients right? Central finite differences in float64
# For a few entries of every parameter: (L(p + h) - L(p - h)) / 2h against the
# hand-written backward pass.

# %%
config64 = config.replace(dtype="float64")
params64 = {k: v.astype(np.float64) for k, v in init_params(config64, seed=1).items()}
loss, acc, grads, _ = loss_and_grads(params64, config64, batch)
rng = np.random.default_rng(2)
analytic, numeric, worst = [], [], 0.0
h = 1e-6
for name, value in params64.items():
    flat = value.reshape(-1)
    for i in rng.choice(flat.size, size=min(4, flat.size), replace=False):
        saved = flat[i]
        flat[i] = saved + h
        loss_plus = loss_and_grads(params64, config64, batch)[0]
        flat[i] = saved - h
        loss_minus = loss_and_grads(params64, config64, batch)[0]
        flat[i] = saved
        estimate = (loss_plus - loss_minus) / (2 * h)
        exact = grads[name].reshape(-1)[i]
        analytic.append(exact), numeric.append(estimate)
        worst = max(worst, abs(exact - estimate) / max(abs(exact) + abs(estimate), 1e-8))
print(f"loss {loss:.4f}; {len(analytic)} gradient entries checked; worst relative error {worst:.1e}")

fig, ax = plt.subplots(figsize=(4.2, 4))
ax.scatter(numeric, analytic, s=10)
lim = max(np.abs(numeric).max(), np.abs(analytic).max()) * 1.5
ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
ax.set_xscale("symlog", linthresh=1e-4)   # gradients span several orders of magnitude
ax.set_yscale("symlog", linthresh=1e-4)
ax.set_xlabel("finite-difference estimate")
ax.set_ylabel("hand-written backward")
ax.set_title(f"gradient check: worst relative error {worst:.0e}", fontsize=9)
fig.tight_layout()
fig.savefig(FIGURES / "01_gradient_check.png", dpi=110)
plt.close(fig)
