# %% [markdown]
# # Lesson 01: the forward pass, the cache, and a backward pass you write yourself
#
# **Learning objectives.** After this lesson you can
# - say what an induction head is, and which two heads in which layers form the circuit
#   on the few-shot task;
# - find every intermediate array of the forward pass in the cache by its
#   TransformerLens name, and read its shape;
# - write an ideal previous-token pattern, clamp a head to it, and predict what changes
#   downstream;
# - derive the backward pass of the softmax and of the attention scores in the
#   TransformerLens layout [batch, pos, ...] and check it against finite differences;
# - explain why the package computes the same numbers in another layout, and show that
#   both agree.
#
# **Exercises.** `python -m tinyinduction.exercises 01` writes
# `lessons/exercises/01_forward_and_gradients.py`, in which you write
# `previous_token_target`, `softmax_backward_tl` and `attention_scores_backward_tl`; a
# check under each says what is wrong or that it is right, and
# `python -m tinyinduction.exercises check 01` checks all three at once.
#
# **Prints** the cache's names and shapes, a clamp's effect, the agreement of your
# backward pass with the package's, and the finite-difference errors; **saves**
# `figures/01_cache_patterns.png` and `figures/01_gradient_check.png`.
# `TINYINDUCTION_QUICK=1` checks fewer gradient entries. Run time, prerequisites and the
# papers: the course guide, `lessons/README.md`.
#
# **Predict first.** When a cell asks you to predict, write your prediction down, run
# the cells that compute the result, then run the `reveal(...)` cell for the answer.

# %%
import matplotlib.pyplot as plt
import numpy as np

from tinyinduction import tl_layout
from tinyinduction.clamp import previous_token_pattern
from tinyinduction.config import ModelConfig
from tinyinduction.exercises import check, reveal, show_solution
from tinyinduction.model import init_params, loss_and_grads, run_with_cache
from tinyinduction.paths import figures_dir, lesson_root, quick_mode
from tinyinduction.plots import add_attention_colorbar, fewshot_token_names, plot_patterns
from tinyinduction.tasks.fewshot import FewShotTask, TaskConfig

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()

# %% [markdown]
# ## What an induction head is
# An induction head completes a pattern seen earlier in the context: after `... A B ... A`
# it predicts `B`. No single head can do this; it takes two heads in two layers:
#
# 1. a **previous-token head** (layer 0) writes into each token's residual stream
#    something about the token before it, so that `B` now carries "I came after `A`";
# 2. the **induction head** (layer 1), at the second `A`, sends a query that matches
#    the key "I came after `A`", attends to `B`, and copies `B` into the output.
#
# Our task (Singh et al. 2024) is the few-shot version: a sequence `x1 l1 x2 l2 xq`
# holds two exemplar-label pairs and a query exemplar of the same class as one of the
# two exemplars. The right answer is that pair's label. The circuit: `l1` reads `x1`
# (previous-token head), the query `xq` matches `l1`'s key (which now carries `x1`'s
# class), and `l1`'s label is copied to the output. Lesson 02 trains a network and
# watches this circuit form.
#
# Layer numbers: ours start at 0. The paper's "layer 1" is our layer 0.

# %%
task = FewShotTask(TaskConfig.paper())
batch = task.sample(np.random.default_rng(0), 4)
print("exemplars", batch.exemplars.shape, "[batch, pair + query, feature]; labels",
      batch.labels.shape, "[batch, pair]; target", batch.target)
print("sequence 0: classes", batch.classes[0], "labels", batch.labels[0],
      "-> the query's class is pair", batch.query_pair[0], "so the answer is label", batch.target[0])

# %% [markdown]
# ## The forward pass and its cache
# `run_with_cache` returns every intermediate array under its TransformerLens name, in
# TransformerLens shapes: [batch, pos, d_model] for the residual stream, [batch, pos,
# head, d_head] for queries, keys and values, [batch, head, query_pos, key_pos] for
# attention scores and patterns. The arrays are read-only: nobody can change a cache
# by accident.

# %%
config = ModelConfig.paper()
params = init_params(config, seed=0)
cache = run_with_cache(params, config, batch)
for name, array in cache.items():
    print(f"{name:34s} {tuple(array.shape)}")
print("shorthand: cache['pattern', 1] has shape", cache["pattern", 1].shape)
try:
    cache["pattern", 1][0, 0, 0, 0] = 1.0
except ValueError as error:
    print("writing into the cache fails:", error)

# %% [markdown]
# ### Predict first
# The loss is taken only at the query position `xq` (the last one). After the backward
# pass, which rows (query positions) of d loss / d pattern can be non-zero in
# layer 1? And in layer 0? Decide before running the next cell.

# %%
config64 = config.replace(dtype="float64")          # float64: gradient checks need the digits
params64 = init_params(config64, seed=1)
loss, accuracy, grads, cache64 = loss_and_grads(params64, config64, batch,
                                                record_activation_grads=True)
names = fewshot_token_names(task.n_context_pairs)
for layer in (1, 0):
    row_size = np.abs(cache64["pattern_grad", layer]).max(axis=(0, 1, 3))   # [Tq]
    print(f"layer {layer}: largest |d loss / d pattern| per query row:",
          ", ".join(f"{n} {v:.1e}" for n, v in zip(names, row_size)))

# %%
reveal("01.gradient-rows")

# %% [markdown]
# ## Exercise 1: an ideal previous-token pattern
# A perfect previous-token head puts all its attention on the token just before. With a
# strength s it puts s on the previous token and 1 - s on itself. Write the [T, T]
# pattern (the docstring of the exercise version says exactly what is wanted).

# %%
# EXERCISE: previous_token_target
from tinyinduction.clamp import previous_token_target  # SOLUTION
check("previous_token_target", previous_token_target)
print(previous_token_target(5, 0.8))

# %% [markdown]
# A clamp puts such a pattern into the cache in place of what head 3 of layer 0
# computed; everything downstream then uses it (lesson 05 uses clamps to take the
# circuit apart).
#
# ### Predict first
# We clamp head 3 of layer 0 to the ideal previous-token pattern. Which of these
# change: the pattern of head 2 in layer 0? The patterns of layer 1? The logits?

# %%
clamped = run_with_cache(params, config, batch, clamps=[previous_token_pattern(0, 3)])
print("layer 0 head 3 after the clamp, sequence 0:\n", clamped["pattern", 0][0, 3].round(2))
print("layer 0 head 2 unchanged:", np.allclose(clamped["pattern", 0][:, 2], cache["pattern", 0][:, 2]))
print("layer 1 patterns changed:", not np.allclose(clamped["pattern", 1], cache["pattern", 1]))
print("logits changed:", not np.allclose(clamped["logits"], cache["logits"]))

# %%
reveal("01.clamp-effects")

# %%
wide_batch = task.sample(np.random.default_rng(1), 256)      # a mean over many sequences
plain_mean = run_with_cache(params, config, wide_batch)["pattern", 0].mean(axis=0)
clamped_mean = run_with_cache(params, config, wide_batch,
                              clamps=[previous_token_pattern(0, 3)])["pattern", 0].mean(axis=0)
fig, axes = plt.subplots(2, config.n_heads, figsize=(14, 4.6))
image = plot_patterns(axes[0], plain_mean, names, "L0 ")
add_attention_colorbar(fig, image, axes[0])
image = plot_patterns(axes[1], clamped_mean, names, "L0 ")
add_attention_colorbar(fig, image, axes[1])
axes[1, 3].set_title("L0 H3 (clamped)", fontsize=9, color="tab:red")
axes[0, 0].set_ylabel("untrained\nquery", fontsize=9)
axes[1, 0].set_ylabel("head 3 clamped\nquery", fontsize=9)
fig.suptitle("Layer-0 attention of an untrained network (top) and with head 3 clamped to an ideal "
             "previous-token pattern (bottom)\nrows: query position, columns: key position; "
             "mean over 256 sequences", fontsize=10)
fig.savefig(FIGURES / "01_cache_patterns.png", dpi=110, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# ## The backward pass of the softmax, in [batch, head, query_pos, key_pos]
# Each row of a pattern is a softmax over keys: p_j = exp(s_j) / sum_k exp(s_k), where
# s is that row of the scores. Its derivative is
#
#     dp_j / ds_k = p_j (delta_jk - p_k)
#
# (differentiate the quotient: the numerator gives p_j delta_jk, the denominator
# -p_j p_k). The chain rule sums over j:
#
#     dscores_k = sum_j dpattern_j p_j (delta_jk - p_k) = p_k (dpattern_k - sum_j dpattern_j p_j)
#
# Every row is separate, so in the layout [batch, head, query_pos, key_pos] the sums run
# over the last axis. Masked keys have p_k = 0, so their gradient is 0 by itself.
#
# ## Exercise 2: softmax_backward_tl
# Write it; the check compares it with central finite differences of the package's
# softmax forward, (L(s + h) - L(s - h)) / 2h for every element.

# %%
# EXERCISE: softmax_backward_tl
from tinyinduction.tl_layout import softmax_backward as softmax_backward_tl  # SOLUTION
check("softmax_backward_tl", softmax_backward_tl)
show_solution("softmax_backward_tl")  # SOLUTION

# %% [markdown]
# ## The backward pass of the attention scores
# Forward, for the visible keys j <= i:
#
#     scores[b, h, i, j] = scale * sum_e q[b, i, h, e] k[b, j, h, e]
#
# with scale = 1 / sqrt(d_head). Masked entries are the constant -inf. Differentiating
# the product, each q[b, i, h, e] appears in the scores of row i (every visible j),
# and each k[b, j, h, e] in column j (every query i that sees it):
#
#     dq[b, i, h, e] = scale * sum_j dscores[b, h, i, j] k[b, j, h, e]
#     dk[b, j, h, e] = scale * sum_i dscores[b, h, i, j] q[b, i, h, e]
#
# where dscores is set to 0 on masked entries first (a constant passes no gradient).
#
# ## Exercise 3: attention_scores_backward_tl

# %%
# EXERCISE: attention_scores_backward_tl
from tinyinduction.tl_layout import attention_scores_backward as attention_scores_backward_tl  # SOLUTION
check("attention_scores_backward_tl", attention_scores_backward_tl)
show_solution("attention_scores_backward_tl")  # SOLUTION

# %% [markdown]
# ## Your backward pass against the package's
# The model's backward pass recorded d loss / d(every cache array) above
# (`record_activation_grads=True`). Feed your functions the cache's pattern gradient
# and the rotated queries and keys of layer 1 (the paper's network uses RoPE, so the
# scores are made from `rot_q` and `rot_k`).
#
# ### Predict first
# The package computes these gradients with its own code, in another memory layout.
# Will your results agree with it to about 1e-6 (like finite differences), or to about
# 1e-16?

# %%
n_positions = cache64["pattern", 0].shape[-1]
mask = np.tril(np.ones((n_positions, n_positions), dtype=bool))      # [Tq, Tk], True = visible
scale = 1.0 / np.sqrt(config.d_head)
largest = 0.0
for layer in range(config.n_layers):
    rot_q, rot_k = cache64["rot_q", layer], cache64["rot_k", layer]
    scores = tl_layout.attention_scores(rot_q, rot_k, scale, mask)
    dscores = softmax_backward_tl(cache64["pattern_grad", layer], cache64["pattern", layer])
    dq, dk = attention_scores_backward_tl(cache64["attn_scores_grad", layer], rot_q, rot_k, scale, mask)
    visible = np.broadcast_to(mask, scores.shape)           # -inf - (-inf) is not a number
    differences = {"scores": np.abs(scores[visible] - cache64["attn_scores", layer][visible]).max(),
                   "d scores": np.abs(dscores - cache64["attn_scores_grad", layer]).max(),
                   "d rot_q": np.abs(dq - cache64["rot_q_grad", layer]).max(),
                   "d rot_k": np.abs(dk - cache64["rot_k_grad", layer]).max()}
    largest = max(largest, *differences.values())
    print(f"layer {layer}: largest difference from the package's "
          + ", ".join(f"{name} {value:.1e}" for name, value in differences.items()))

# %%
reveal("01.layouts-agree", largest=f"{largest:.0e}")

# %% [markdown]
# **Why the package uses another layout.** Inside `ops/` the same arrays are stored
# feature-major with the batch innermost: q, k, v as [d_head, pos, head, batch] and
# patterns as [query_pos, key_pos, head, batch]. At this model's size (5 positions,
# d_head 8) NumPy spends its time on the overhead of each call and each inner loop, not
# on arithmetic. With the batch innermost, every elementwise operation and every
# attention einsum runs over long contiguous rows, which was several times faster than
# batched 5 x 8 matrix products on our machine. The cache shows the same numbers as
# TransformerLens-shaped views, and the cell above shows the two layouts agree.

# %% [markdown]
# ## The whole model against finite differences
# For a sample of entries of every parameter, compare the backward pass with
# (L(p + h) - L(p - h)) / 2h, h = 1e-6, in float64.
#
# ### Predict first
# What relative error |analytic - numeric| / max(|analytic|, |numeric|) should a
# correct backward pass show: about 1e-2, 1e-6, or 1e-15? Will it be the same for
# every entry?

# %%
rng = np.random.default_rng(2)
per_parameter = 3 if QUICK else 12
h = 1e-6
analytic, numeric = [], []
for name, value in params64.items():
    flat = value.reshape(-1)
    for i in rng.choice(flat.size, size=min(per_parameter, flat.size), replace=False):
        saved = flat[i]
        flat[i] = saved + h
        loss_plus = loss_and_grads(params64, config64, batch)[0]
        flat[i] = saved - h
        loss_minus = loss_and_grads(params64, config64, batch)[0]
        flat[i] = saved
        numeric.append((loss_plus - loss_minus) / (2 * h))
        analytic.append(grads[name].reshape(-1)[i])
analytic, numeric = np.array(analytic), np.array(numeric)
size = np.maximum(np.abs(analytic), np.abs(numeric))
measurable = size > 1e-12                       # entries whose gradient is not ~0
relative = np.abs(analytic - numeric)[measurable] / size[measurable]
print(f"loss {loss:.4f}; {len(analytic)} entries of {len(params64)} parameter arrays; "
      f"{(~measurable).sum()} have gradient ~0; relative error: median {np.median(relative):.1e}, "
      f"worst {relative.max():.1e}")

# rounding floor of a central difference: about eps * |L| / h, relative to |gradient|
floor_size = np.geomspace(size[measurable].min(), size[measurable].max(), 50)
fig, (ax_hist, ax_size) = plt.subplots(1, 2, figsize=(11, 4))
bins = np.arange(-13, 0.5, 0.5)
ax_hist.hist(np.log10(relative), bins=bins, color="tab:blue", edgecolor="white")
ax_hist.axvspan(-4, 0, color="tab:red", alpha=0.12, label="above 1e-4: a bug would land here")
ax_hist.set_xticks(range(-13, 1), [f"1e{e}" for e in range(-13, 1)], fontsize=8, rotation=45)
ax_hist.set_xlabel("relative error |analytic - finite difference| / |gradient|")
ax_hist.set_ylabel("number of parameter entries")
ax_hist.set_title(f"{len(relative)} gradient entries, worst {relative.max():.0e}", fontsize=10)
ax_hist.legend(fontsize=8, loc="upper left")
ax_size.loglog(size[measurable], relative, "o", ms=3.5, alpha=0.7, label="one parameter entry")
ax_size.loglog(floor_size, np.finfo(float).eps * abs(loss) / h / floor_size, "k--", lw=1,
               label="rounding error of the finite difference\n(eps |L| / h) / |gradient|")
ax_size.set_xlabel("|gradient| of the entry")
ax_size.set_ylabel("relative error")
ax_size.set_title("small gradients show larger relative errors", fontsize=10)
ax_size.legend(fontsize=8, loc="upper right")
fig.suptitle("Hand-written backward pass vs central finite differences (float64, h = 1e-6), "
             "paper network at initialisation", fontsize=10)
fig.tight_layout()
fig.savefig(FIGURES / "01_gradient_check.png", dpi=110)
plt.close(fig)

# %%
reveal("01.finite-differences", median=f"{np.median(relative):.0e}",
       low=f"{np.percentile(relative, 10):.0e}", high=f"{np.percentile(relative, 90):.0e}",
       worst=f"{relative.max():.0e}", loss=f"{loss:.2f}",
       rounding=f"{np.finfo(float).eps * abs(loss) / h:.0e}")
