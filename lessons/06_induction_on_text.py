# %% [markdown]
# # Lesson 06: induction heads on real text (Olsson et al. 2022), on Python's own source
#
# **Learning objectives.** After this lesson you can
# - cut a directory of code into tokens with a byte-pair encoding (BPE) learnt on its
#   training files, split it by file into training and held-out text, and cut windows a
#   token model trains on (tasks/bpe.py, tasks/text.py);
# - say, with numbers measured on the text itself, when copying from context pays: an
#   induction head copies the token after an earlier copy of the current one, which on
#   characters is worse than a bigram table and on BPE tokens of code much better;
# - find induction heads without looking, by Olsson et al.'s prefix-matching score
#   (you write it: the exercise), and watch them appear in a phase change;
# - read one head completing a repeated identifier in held-out code, off its attention;
# - compute the in-context-learning (ICL) score on plain held-out code before and after
#   the phase change, with standard errors, and see it change.
#
# **Exercise.** `python -m tinyinduction.exercises 06` writes
# `lessons/exercises/06_induction_on_text.py`, in which you write `prefix_matching_score`;
# `python -m tinyinduction.exercises check 06` checks it.
#
# It reads the 2-layer run of `python -m tinyinduction reproduce olsson` if that has
# run, otherwise it trains the same 2-layer model itself. `TINYINDUCTION_QUICK=1` trains
# a few hundred steps of the quick setting instead, too short for induction heads: it
# only shows that every cell runs. **Prints** the tokenizer on a line of code, the
# copying-vs-bigram accuracies, the prefix-matching scores, the phase change, a head
# completing an identifier and the ICL score before and after; **saves**
# `figures/06_prefix_matching.png`, `figures/06_attention_on_code.png` and
# `figures/06_icl_before_after.png`. Layers are 0-indexed (the paper's layer 1 is our 0).
# Run time, prerequisites and the papers: the course guide, `lessons/README.md`.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction import text_measures as tm
from tinyinduction.exercises import check, reveal
from tinyinduction.experiments.olsson_analysis import paired_change, phase_window, tiled_windows
from tinyinduction.experiments.olsson_common import (checkpoints, make_probes, model_config, over_training,
                                                     params_at, setting)
from tinyinduction.model import TokenBatch, run_with_cache
from tinyinduction.paths import figures_dir, lesson_root, quick_mode, runs_dir
from tinyinduction.tasks.text import TextConfig
from tinyinduction.train import train

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()

# %% [markdown]
# ## The text, and its tokens
# The Python standard library's source ships with every Python: about 600 files and
# 10 million characters once the test directories and the data tables are left out. A
# file goes to the held-out split by a hash of its path (a fifth of them here), so no
# held-out file is ever seen in training.
#
# Olsson et al.'s models read *tokens*, pieces of words. We learn a byte-pair encoding
# (BPE) on the training files: start from single characters, and merge the most frequent
# adjacent pair into a new token, again and again, up to 1,024 tokens. A pre-split keeps
# merges inside identifier runs, numbers, runs of symbols or indentation, so a token is
# often a whole name or a common part of one. (It is learnt once, then read back from
# ~/.cache/tinyinduction.)

# %%
s = setting(quick=QUICK, seed=5)
task = s.text.make_task()
fp = task.fingerprint
print(f"{fp['files']} files ({fp['train_files']} for training, {fp['heldout_files']} held out), "
      f"{fp['characters']:,} characters; {task.d_vocab} BPE tokens, "
      f"{fp['chars_per_token_heldout']:.2f} characters per token on the held-out files")
line = "\n        if self.returncode is None:\n            self.returncode = returncode\n"
ids = task.vocab.encode(line)
print(f"a line of code, {len(line)} characters -> {len(ids)} tokens:")
print(" | ".join(repr(task.vocab.strings[i]) for i in ids))
longest = sorted(range(2, task.d_vocab), key=lambda i: -len(task.vocab.strings[i].strip()))[:12]
print("some of the longest tokens:", [task.vocab.strings[i] for i in longest])

# %% [markdown]
# ## Does copying from context pay on this text?
# An induction head predicts "the token that followed the last earlier copy of the
# current token". A bigram table predicts "the token that most often follows the
# current one" (counted on the training files). Both are measured below on plain
# held-out windows, at the positions whose token did occur earlier in the window: once
# with one token per character, once with the BPE.
#
# ### Predict first
# Which is right more often on characters, copying or the bigram table? And on BPE tokens?


# %%
def copying_and_bigram(task, n_windows=300):
    """(share copying is right, share the bigram table is right, positions counted) at
    the positions of plain held-out windows whose token occurred earlier in the window."""
    stream = task.streams["train"].astype(np.int64)
    V = task.d_vocab
    pair_counts = np.bincount(stream[:-1] * V + stream[1:], minlength=V * V).reshape(V, V)
    best_next = pair_counts.argmax(axis=1)                                        # [V]
    windows = task.sample(np.random.default_rng(1), n_windows, split="heldout", repeat_fraction=0.0)
    copy_right = bigram_right = total = 0
    for tokens, targets in zip(windows.tokens, windows.targets):
        last_seen = {}
        for t, (token, target) in enumerate(zip(tokens, targets)):
            if token in last_seen:                          # the last earlier copy of this token
                copy_right += tokens[last_seen[token] + 1] == target
                bigram_right += best_next[token] == target
                total += 1
            last_seen[token] = t
    return copy_right / total, bigram_right / total, total


characters = TextConfig(heldout_fraction=s.text.heldout_fraction, n_ctx=s.text.n_ctx, tokenizer="chars").make_task()
for name, t in (("characters", characters), ("BPE tokens", task)):
    copy_share, bigram_share, n = copying_and_bigram(t)
    print(f"{name:>10} ({t.d_vocab} tokens): at {n:,} positions copying is right {copy_share:.0%}, "
          f"the bigram table {bigram_share:.0%}")
    if name == "characters":
        char_copy, char_bigram = copy_share, bigram_share
bpe_copy, bpe_bigram = copy_share, bigram_share

# %%
reveal("06.copying", char_copy=f"{char_copy:.0%}", char_bigram=f"{char_bigram:.0%}",
       bpe_copy=f"{bpe_copy:.0%}", bpe_bigram=f"{bpe_bigram:.0%}")

# %% [markdown]
# Even so, on plain code alone a small model needs far more training before induction
# heads form (`reproduce olsson --plain` measures how much). So half of the training
# windows repeat a span of real text (`repeat_fraction=0.5`): in those, copying is always
# right. Everything below is measured on *plain* held-out windows.

# %%
print(f"training windows: {s.text.repeat_fraction:.0%} repeat a span, e.g.",
      repr(task.vocab.decode(task.sample(np.random.default_rng(2), 1, repeat_fraction=1.0).tokens[0])))

# %% [markdown]
# ## Finding induction heads by prefix matching (exercise)
# Olsson et al.'s probe: `[BOS]` and L random tokens repeated four times. A head's
# prefix-matching score is its attention, from each token of copies 2-4, to the tokens
# that *followed* the earlier copies of the same token: 1 for an ideal induction head.

# %%
# EXERCISE: prefix_matching_score
from tinyinduction.text_measures import prefix_matching_from_pattern as prefix_matching_score  # SOLUTION
check("prefix_matching_score", prefix_matching_score)

# %% [markdown]
# ## A two-layer model
# The 2-layer model of `reproduce olsson` if that has run, otherwise the same model
# trained here (a checkpoint every few hundred steps, for the measures over training).

# %%
config = model_config("2L", task.d_vocab, s)
experiment_run = runs_dir(root=ROOT) / "reproduce" / ("olsson_quick" if QUICK else "olsson") / "runs" / "2L"
record = experiment_run / "run.json"
if record.exists() and json.loads(record.read_text()).get("status") == "finished":
    run_dir = experiment_run
    print(f"reading the experiment's run in {run_dir}")
else:
    run_dir = runs_dir(root=ROOT) / ("lesson06_quick" if QUICK else "lesson06")
    steps = 300 if QUICK else s.train.steps      # quick: just enough to run every cell
    print(f"training {steps:,} steps into {run_dir} (resumed or reused if it is there)")
    train(config, s.text, s.train.replace(steps=steps, log_every=1000), out_dir=run_dir, task=task,
          resume="auto")
last_step = checkpoints(run_dir)[-1][0]
params = params_at(run_dir, config, s.train.seed, last_step)

# %% [markdown]
# ## The induction heads of the trained model, and when they formed

# %%
probes = make_probes(task, s.n_trajectory_windows, 5, s.n_final_windows)   # the experiment's probes
trajectory = over_training(run_dir, config, probes, s.train.seed)          # read back if stored
steps = trajectory["step"]
best = trajectory["prefix_matching"].max(axis=(1, 2))                      # [checkpoints]
window = phase_window(steps, best)
final = trajectory["prefix_matching"][-1]                                  # [L, H]
print("final prefix-matching score per head (rows: layers 0, 1):\n", np.round(final, 2))
layer, head = (int(i) for i in np.unravel_index(final.argmax(), final.shape))
print(f"strongest induction head: L{layer}H{head} ({final[layer, head]:.2f})")
print("phase change: none" if window is None else
      f"phase change: the best head rises from step {window[0]:,} to step {window[1]:,}")
previous_token = trajectory["previous_token"][-1][0]                       # [H] of layer 0
previous_head = int(previous_token.argmax())
print("previous-token score on text, layer 0:", np.round(previous_token, 2),
      f"-> previous-token head L0H{previous_head}")

fig, ax = plt.subplots(figsize=(7, 3.8))
for l in range(config.n_layers):
    for h in range(config.n_heads):
        ax.plot(steps, trajectory["prefix_matching"][:, l, h], ls=":" if l == 0 else "-", label=f"L{l}H{h}")
if window is not None:
    ax.axvspan(*window, color="0.85", zorder=0, label="phase change")
ax.set_xlabel("training step")
ax.set_ylabel("prefix-matching score")
ax.set_ylim(-0.02, 1.02)
ax.set_title("2-layer model on Python source (BPE): induction heads appear together (dotted: layer 0)",
             fontsize=9)
ax.legend(fontsize=7, ncol=3, loc="upper left")
fig.tight_layout()
fig.savefig(FIGURES / "06_prefix_matching.png", dpi=110)

# %% [markdown]
# ## One head completing a repeated identifier in held-out code
# We look through held-out windows for a place where the model needs the context: the
# current token occurred earlier in the window, the token after that earlier copy comes
# next, the bigram table would have guessed something else, and the model gets it right.
#
# ### Predict first
# At that place, which earlier token does the induction head attend to: the earlier
# copy of the current token, or the token after it?


# %%
def find_completion(params, config, windows, layer, head, best_next, vocab):
    """(window, query position t, earlier copy) in the middle of a repeated identifier:
    token t (a piece of a name) occurred earlier in the window, the token after it there
    continues the name and comes next here too, the bigram table guesses otherwise, the
    model's top guess is right and the head's strongest key is the one after the copy."""
    def name_piece(i, continuing):
        text = vocab.strings[i]
        body = text if continuing else text.lstrip(" ")
        return body.replace("_", "a").isalnum() and len(text) >= 2
    for start in range(0, len(windows.tokens), 64):
        chunk = TokenBatch(windows.tokens[start:start + 64], windows.targets[start:start + 64])
        cache = run_with_cache(params, config, chunk)
        predicted = cache["logits"].argmax(axis=-1)                           # [b, T]
        pattern = cache["pattern", layer][:, head]                            # [b, Tq, Tk]
        for b, (tokens, targets) in enumerate(zip(chunk.tokens, chunk.targets)):
            last_seen = {}
            for t, token in enumerate(tokens):
                earlier = last_seen.get(token)
                last_seen[token] = t
                if earlier is None or earlier + 1 >= t or tokens[earlier + 1] != targets[t]:
                    continue
                if (name_piece(token, False) and name_piece(targets[t], True) and best_next[token] != targets[t]
                        and predicted[b, t] == targets[t] and pattern[b, t].argmax() == earlier + 1):
                    return start + b, t, earlier
    return None


stream = task.streams["train"].astype(np.int64)
pair_counts = np.bincount(stream[:-1] * task.d_vocab + stream[1:], minlength=task.d_vocab ** 2)
best_next = pair_counts.reshape(task.d_vocab, task.d_vocab).argmax(axis=1)
found = find_completion(params, config, probes.all_windows, layer, head, best_next, task.vocab)
if found is None:
    print("no such place in the held-out windows (a model without induction heads: the quick setting?)")
    found = (0, config.n_ctx - 2, 0)
index, t, earlier = found
tokens = probes.all_windows.tokens[index]
cache = run_with_cache(params, config, TokenBatch(tokens[None], probes.all_windows.targets[index][None]))
shown = np.arange(max(earlier - 3, 0), min(t + 2, config.n_ctx))                  # positions on the axes
labels = task.vocab.token_labels(tokens[shown])
print("held-out code:", repr(task.vocab.decode(tokens[shown[0]:t + 1])), "-> next:",
      repr(task.vocab.strings[probes.all_windows.targets[index][t]]))
print(f"the current token {task.vocab.strings[tokens[t]]!r} (position {t}) occurred at position {earlier}; "
      f"L{layer}H{head} puts {cache['pattern', layer][0, head, t, earlier + 1]:.2f} of its attention on position "
      f"{earlier + 1} ({task.vocab.strings[tokens[earlier + 1]]!r}) and {cache['pattern', layer][0, head, t, earlier]:.2f} on "
      f"position {earlier}")
probabilities = np.exp(cache["logits"][0, t] - cache["logits"][0, t].max())
probabilities /= probabilities.sum()
print(f"the model gives the right token {task.vocab.strings[tokens[earlier + 1]]!r} probability "
      f"{probabilities[tokens[earlier + 1]]:.2f}; the bigram table would say {task.vocab.strings[best_next[tokens[t]]]!r}")

fig, ax = plt.subplots(figsize=(7.5, 6.5))
pattern = cache["pattern", layer][0, head][np.ix_(shown, shown)]
image = ax.imshow(pattern, cmap="viridis", vmin=0, vmax=1)
row = int(np.flatnonzero(shown == t)[0])
ax.scatter([int(np.flatnonzero(shown == earlier + 1)[0])], [row], s=160, marker="s", facecolors="none",
           edgecolors="red", lw=1.2, label="the token after the earlier copy")
ax.legend(fontsize=7, loc="upper right")
ax.set_xticks(range(len(shown)))
ax.set_xticklabels(labels, fontsize=7, rotation=90)
ax.set_yticks(range(len(shown)))
ax.set_yticklabels(labels, fontsize=7)
ax.set_xlabel("key (attended-to token)")
ax.set_ylabel("query (current token)")
ax.set_title(f"induction head L{layer}H{head} on held-out code (BPE tokens)", fontsize=9)
fig.colorbar(image, ax=ax, fraction=0.046, label="attention")
fig.tight_layout()
fig.savefig(FIGURES / "06_attention_on_code.png", dpi=110)

# %%
reveal("06.completion", after=f"{cache['pattern', layer][0, head, t, earlier + 1]:.2f}",
       copy=f"{cache['pattern', layer][0, head, t, earlier]:.2f}", previous_head=f"L0H{previous_head}",
       previous_score=f"{previous_token[previous_head]:.2f}")

# %% [markdown]
# ## The ICL score before and after the phase change
# Olsson's ICL score: the loss at token 500 minus the loss at token 50 of a 512-token
# context; negative means later tokens are predicted better, because the model uses its
# context. Scaled to our 64 tokens: positions 61 and 5, each averaged over ±2 positions.
# We measure it on *every* non-overlapping plain held-out window, at the checkpoint
# where the phase change starts and at the one where it ends, and give its standard
# error over windows; the change is paired (the same windows at both steps).
#
# ### Predict first
# By how much does the ICL score change across the phase change: within the error bars,
# or far outside them?

# %%
early, late = tm.icl_positions(s.text.n_ctx)
before_step, after_step = window if window is not None else (steps[1], steps[-1])
icl = {}
for label, step in (("before", before_step), ("after", after_step)):
    losses = tm.per_position_losses(params_at(run_dir, config, s.train.seed, step), config, probes.all_windows)
    icl[label] = tm.icl_per_window(losses, band=2)                           # [windows]
    print(f"step {step:>6,} ({label}): ICL score {np.nanmean(icl[label]):+.3f} ± "
          f"{tm.standard_error(icl[label]):.3f} on {len(icl[label]):,} held-out windows; loss "
          f"{np.nanmean(losses):.3f}")
change, change_sem = paired_change(icl["after"], icl["before"])
print(f"change: {change:+.3f} ± {change_sem:.3f} (paired), {abs(change) / change_sem:.0f} standard errors")
curve = {label: trajectory["icl_score"][int(np.searchsorted(steps, step))]
         for label, step in (("before", before_step), ("after", after_step))}
print(f"the curve's fixed subset of {probes.windows.tokens.shape[0]:,} windows at the same steps: "
      f"{curve['before']:+.3f} -> {curve['after']:+.3f} (change {curve['after'] - curve['before']:+.3f})")

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax.bar([f"step {before_step:,}\n(before)", f"step {after_step:,}\n(after)"],
       [np.nanmean(icl["before"]), np.nanmean(icl["after"])],
       yerr=[tm.standard_error(icl["before"]), tm.standard_error(icl["after"])], capsize=6,
       color=["0.6", "tab:red"])
ax.axhline(0, color="k", lw=0.6)
ax.set_ylabel(f"ICL score: loss@{late}±2 − loss@{early}±2 (nats)")
ax.set_title(f"plain held-out code, {len(icl['before']):,} windows (error bars: standard error)", fontsize=9)
ax2.fill_between(steps, trajectory["icl_score"] - trajectory["icl_score_sem"],
                 trajectory["icl_score"] + trajectory["icl_score_sem"], alpha=0.3, lw=0)
ax2.plot(steps, trajectory["icl_score"], marker=".", lw=1)
if window is not None:
    ax2.axvspan(*window, color="0.85", zorder=0, label="phase change")
    ax2.legend(fontsize=8)
ax2.axhline(0, color="0.6", lw=0.6)
ax2.set_xlabel("training step")
ax2.set_ylabel("ICL score (nats)")
ax2.set_title(f"ICL score over training ({probes.windows.tokens.shape[0]:,} windows, ± s.e.)", fontsize=9)
fig.tight_layout()
fig.savefig(FIGURES / "06_icl_before_after.png", dpi=110)

# %%
reveal("06.icl", before=f"{np.nanmean(icl['before']):+.3f}", after=f"{np.nanmean(icl['after']):+.3f}",
       change=f"{change:+.3f}", sem=f"{change_sem:.3f}", n_se=f"{abs(change) / change_sem:.0f}")

# %% [markdown]
# The curve on the right reads a fixed subset of the windows at every checkpoint; the
# bars read all of them. A subset is one sample of windows: its level can sit off the
# full set's by a couple of its own standard errors, and since the same windows are read
# at every step, it sits off by about as much at every step. The change across the phase
# change, which pairs each window with itself, comes out much the same on both (the two
# printed lines above).
#
# **What to take away.** On BPE tokens of code, copying what followed an earlier copy is
# right far more often than a bigram table (on characters it is not), so an induction
# head has something to give on ordinary code. The induction heads form together, after
# a long plateau in which no prefix-matching score moves, over far fewer steps than the
# plateau took: the phase change. Across it the ICL score on plain held-out code drops
# by many times its standard error. But not all of the ICL score is the induction
# heads': it was already falling during the plateau, before any head formed, and a
# 1-layer model, which cannot form induction heads, gets part of it too, from other uses
# of the context (Olsson et al. find skip-trigrams in one-layer models: a token seen
# earlier raises the odds of tokens that go with it). `reproduce olsson` measures the
# induction heads' share: the 2-layer minus 1-layer difference on the same windows, and
# ablating the heads; and the smeared key, the PCA, a second seed and Olsson's own
# plain-text regime.
