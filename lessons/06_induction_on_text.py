# %% [markdown]
# # Lesson 06: induction heads on real text (Olsson et al. 2022), on Python's own source
#
# **Learning objectives.** After this lesson you can
# - turn a directory of text into a character vocabulary, a train/held-out split by file
#   and windows a token model trains on (tasks/text.py);
# - say, with numbers measured on the text itself, when copying from context helps: an
#   induction head copies the character after an earlier copy of the current one, and on
#   plain Python source that is right less often than a bigram table already is;
# - find induction heads without looking, by Olsson et al.'s prefix-matching score
#   (you write it: the exercise), and watch them appear in a phase change;
# - read one head completing a repeated identifier in real code, off its attention;
# - compute the in-context-learning (ICL) score, before and after the phase change.
#
# **Exercise.** `python -m tinyinduction.exercises 06` writes
# `lessons/exercises/06_induction_on_text.py`, in which you write `prefix_matching_score`;
# `python -m tinyinduction.exercises check 06` checks it.
#
# It reads the 2-layer run of `python -m tinyinduction reproduce olsson` if that has
# run, otherwise it trains the same 2-layer model (4 heads, d_model 64, context 64,
# 4,000 steps of 16 windows). `TINYINDUCTION_QUICK=1` trains 300 steps of the quick
# setting (context 32), too short for induction heads: it only shows that every cell
# runs. **Prints** the corpus fingerprint, the copying-vs-bigram accuracies, the
# prefix-matching scores, the phase change, the model's completion of a held-out line and
# the ICL score before and after; **saves** `figures/06_prefix_matching.png`,
# `figures/06_attention_on_code.png` and `figures/06_icl_before_after.png`. Layers are
# 0-indexed (the paper's layer 1 is our 0). Run time, prerequisites and the papers: the
# course guide, `lessons/README.md`.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction import text_measures as tm
from tinyinduction.exercises import check, reveal
from tinyinduction.experiments.olsson import (checkpoints, make_probes, model_config, over_training,
                                              phase_change_step, setting)
from tinyinduction.model import TokenBatch, run_with_cache
from tinyinduction.paths import figures_dir, lesson_root, quick_mode, runs_dir
from tinyinduction.train import load_params, train

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()

# %% [markdown]
# ## The text
# The Python standard library's source ships with every Python: ~730 files, ~12 million
# characters. A file goes to the held-out split by a hash of its path, so no held-out
# file is ever seen in training. Characters rarer than 1 in 100,000 become UNK.

# %%
s = setting(quick=QUICK, seed=5)
task = s.text.make_task()
print("fingerprint:", task.fingerprint)
print(f"vocabulary ({task.d_vocab} tokens: BOS, UNK and these characters):", repr(task.vocab.chars))
window = task.sample(np.random.default_rng(0), 1, split="heldout", repeat_fraction=0.0)
print("a held-out window:", repr(task.vocab.decode(window.tokens[0])))

# %% [markdown]
# ## Does copying from context pay on this text?
# An induction head predicts "the character that followed the last earlier copy of the
# current character". A bigram table predicts "the character that most often follows the
# current one" (counted on the training files). Both are measured below on held-out
# windows, at the positions where the current character did occur earlier in the window.
#
# ### Predict first
# Which is right more often on Python source: copying, or the bigram table?

# %%
train_stream = task.streams["train"].astype(np.int64)
bigram = np.zeros((task.d_vocab, task.d_vocab))
np.add.at(bigram, (train_stream[:-1], train_stream[1:]), 1)
best_next = bigram.argmax(axis=1)                                # [V]
plain = task.sample(np.random.default_rng(1), 300, split="heldout", repeat_fraction=0.0)
copy_right = bigram_right = total = 0
for tokens, targets in zip(plain.tokens, plain.targets):
    last_seen = {}
    for t, (token, target) in enumerate(zip(tokens, targets)):
        if token in last_seen:                   # the last earlier copy of this character
            copy_right += tokens[last_seen[token] + 1] == target
            bigram_right += best_next[token] == target
            total += 1
        last_seen[token] = t
print(f"at {total} positions whose character occurred earlier in the window: copying is right "
      f"{copy_right / total:.0%} of the time, the bigram table {bigram_right / total:.0%}")

# %%
reveal("06.copying", copying=f"{copy_right / total:.0%}", bigram=f"{bigram_right / total:.0%}")

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
# trained here (a checkpoint every 100 steps, for the measures over training).

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
    print(f"training {steps} steps into {run_dir} (resumed or reused if it is there)")
    train(config, s.text, s.train.replace(steps=steps, log_every=1000), out_dir=run_dir, task=task,
          resume="auto")
params, _ = load_params(checkpoints(run_dir)[-1][1])

# %% [markdown]
# ## The induction heads of the trained model, and when they formed

# %%
probes = make_probes(task, s.n_eval_windows, seed=5)     # the experiment's probes
trajectory = over_training(run_dir, config, probes, s.train.seed)
best = trajectory["prefix_matching"].max(axis=(1, 2))             # [checkpoints]
phase = phase_change_step(trajectory["step"], best)
final = trajectory["prefix_matching"][-1]                         # [L, H]
print("final prefix-matching score per head (rows: layers 0, 1):\n", np.round(final, 2))
layer, head = np.unravel_index(final.argmax(), final.shape)
print(f"strongest induction head: L{layer}H{head} ({final[layer, head]:.2f}); phase change "
      f"(best head halfway up) at step {phase}")
print("previous-token score on text, layer 0:", np.round(trajectory["previous_token"][-1][0], 2))

fig, ax = plt.subplots(figsize=(7, 3.8))
for l in range(config.n_layers):
    for h in range(config.n_heads):
        ax.plot(trajectory["step"], trajectory["prefix_matching"][:, l, h], ls=":" if l == 0 else "-",
                label=f"L{l}H{h}")
if phase is not None:
    ax.axvline(phase, color="k", ls="--", lw=0.8, label="phase change")
ax.set_xlabel("training step")
ax.set_ylabel("prefix-matching score")
ax.set_ylim(-0.02, 1.02)
ax.set_title("2-layer model on Python source: induction heads appear together (dotted: layer 0)", fontsize=9)
ax.legend(fontsize=7, ncol=3, loc="upper left")
fig.tight_layout()
fig.savefig(FIGURES / "06_prefix_matching.png", dpi=110)

# %% [markdown]
# ## One head completing a repeated identifier in real code
# A held-out line of `subprocess.py`. At the second `returncode`, the induction head
# should attend to the character *after* the same character in the first
# `returncode`, and the model should complete the word.
#
# ### Predict first
# Which row of the attention picture will light up off the diagonal: the first
# `returncode` or the second?

# %%
snippet = "self.returncode = returncode"
ids = np.concatenate([[0], task.vocab.encode(snippet)]).astype(np.int64)[:config.n_ctx]   # BOS first
batch = TokenBatch(ids[None, :], np.full((1, len(ids)), -1))
cache = run_with_cache(params, config, batch)
pattern = cache["pattern", int(layer)][0, head]                     # [Tq, Tk]
predicted = cache["logits"][0].argmax(axis=-1)                     # [T]
first = snippet.index("returncode") + 1                             # + 1 for BOS
second = snippet.index("returncode", first) + 1
print("the line:          ", repr(snippet))
print(f"after {snippet[:second]!r} the model predicts, character by character:")
print("  model:", repr(task.vocab.decode(predicted[second:-1])))
print("  right:", repr(snippet[second:]))
labels = task.vocab.token_labels(ids)
fig, ax = plt.subplots(figsize=(7.5, 6.5))
image = ax.imshow(pattern, cmap="viridis", vmin=0, vmax=1)
queries = np.arange(second, len(ids))                              # the second "returncode"
ax.scatter(first + (queries - second) + 1, queries, s=60, marker="s", facecolors="none",
           edgecolors="red", lw=0.8, label="induction target: the character after the\nsame "
                                             "character of the first returncode")
ax.legend(fontsize=7, loc="upper right")
ax.set_xticks(range(len(ids)))
ax.set_xticklabels(labels, fontsize=7)
ax.set_yticks(range(len(ids)))
ax.set_yticklabels(labels, fontsize=7)
ax.set_xlabel("key (attended-to character)")
ax.set_ylabel("query (current character)")
ax.set_title(f"induction head L{layer}H{head} on a held-out line of subprocess.py", fontsize=9)
fig.colorbar(image, ax=ax, fraction=0.046, label="attention")
fig.tight_layout()
fig.savefig(FIGURES / "06_attention_on_code.png", dpi=110)

# %%
reveal("06.returncode")

# %% [markdown]
# ## The ICL score before and after the phase change
# Olsson's ICL score: the loss at token 500 minus the loss at token 50 of a 512-token
# context. Scaled to our context (here 64: positions 61 and 5, each averaged over +-2
# positions to cut the noise of a few hundred windows), on plain held-out windows.

# %%
steps = trajectory["step"]
early, late = tm.icl_positions(s.text.n_ctx)
before_index = 1 if phase is None else max(int(np.searchsorted(steps, phase)) - 5, 1)
moments = {"before": before_index, "end": len(steps) - 1}
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for label, index in moments.items():
    ax.plot(trajectory["loss_by_position"][index], label=f"step {steps[index]:,} ({label})")
    print(f"step {steps[index]:>5,} ({label}): ICL score {trajectory['icl_score'][index]:+.3f} "
          f"+- {trajectory['icl_score_sem'][index]:.3f}, held-out loss {trajectory['loss'][index]:.3f}")
for position in (early, late):
    ax.axvline(position, color="0.5", ls=":", lw=0.8)
ax.set_xlabel("position in the window")
ax.set_ylabel("held-out loss (nats per character)")
ax.set_title("loss by position, plain held-out windows", fontsize=9)
ax.legend(fontsize=8)
ax2.errorbar(steps, trajectory["icl_score"], yerr=trajectory["icl_score_sem"], marker=".", lw=1)
if phase is not None:
    ax2.axvline(phase, color="k", ls="--", lw=0.8, label="phase change")
    ax2.legend(fontsize=8)
ax2.axhline(0, color="0.6", lw=0.6)
ax2.set_xlabel("training step")
ax2.set_ylabel(f"ICL score: loss@{late}±2 − loss@{early}±2 (nats)")
ax2.set_title("ICL score over training (error bars: standard error)", fontsize=9)
fig.tight_layout()
fig.savefig(FIGURES / "06_icl_before_after.png", dpi=110)

# %% [markdown]
# **What to take away.** The induction heads form together, in a few hundred steps,
# after a long stretch in which nothing in the prefix-matching scores moves: the phase
# change. The ICL score on plain text improves only a little at the same time (our
# characters are not Olsson's words: see the README's Olsson section, and
# `reproduce olsson` for all four models, the smeared key and the ablations).
