# %% [markdown]
# # Lesson 02: train a network, watch the plateau and the phase change, and say why
#
# **Learning objectives.** After this lesson you can
# - explain the induction circuit of the few-shot task in words and in a diagram;
# - predict the loss levels of training and say why: ln 5 at the start, a plateau at
#   ln 2, relabel loss above ln 2 on the plateau, then an abrupt drop;
# - write two progress measures (induction strength, label -> exemplar attention) and
#   watch them jump at the phase change;
# - explain why, on this small preset, the loss on held-out classes rises after the drop
#   while its accuracy improves.
#
# **Exercises.** `python -m tinyinduction.exercises 02` writes
# `lessons/exercises/02_phase_change.py`, in which you write `induction_strength` and
# `label_previous_token_score`; `python -m tinyinduction.exercises check 02` checks both.
#
# Uses the `small` preset (2 layers x 2 heads, 10 training classes, 2,000 steps);
# `python -m tinyinduction demo` runs the paper's network. **Prints** the loss levels,
# the measures and a summary; **saves** `figures/02_circuit.png`,
# `figures/02_phase_change.png` and `figures/02_patterns_before_after.png`. The run's
# checkpoints go to a temporary directory that the last cell deletes.
# `TINYINDUCTION_QUICK=1` reads every second checkpoint. Run time, prerequisites and
# the papers: the course guide, `lessons/README.md`.

# %%
import math
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction.presets import preset
from tinyinduction.demo import mean_patterns
from tinyinduction.exercises import check, reveal
from tinyinduction.model import init_params, run_with_cache
from tinyinduction.paths import figures_dir, lesson_root, quick_mode
from tinyinduction.phases import PAPER_THRESHOLD, describe_history
from tinyinduction.plots import (add_attention_colorbar, circuit_diagram, fewshot_token_names,
                                 legend_outside, plot_loss_history, plot_patterns, save_figure)
from tinyinduction.tasks.fewshot import FewShotTask
from tinyinduction.train import load_params, train

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()

# %% [markdown]
# ## The circuit the network has to find
# A sequence `x1 l1 x2 l2 xq`: two exemplar-label pairs and a query whose class is that
# of one exemplar. Labels are arbitrary: the same class gets different labels in
# different sequences, so the network cannot memorise class -> label. It has to read
# the answer out of the context. The induction circuit does it in two steps:
#
# 1. a **previous-token head** in layer 0: each label token attends to the exemplar
#    just before it, so `l1` now carries `x1`'s class;
# 2. an **induction head** in layer 1: at `xq`, its query (`xq`'s class) matches the
#    key of `l1` (`x1`'s class, copied there in step 1), so it attends to `l1`, and its
#    value/output path copies `l1`'s label to the output.
#
# Layers: ours start at 0. Singh et al. (2024) call our layer 0 "layer 1".

# %%
fig, ax = plt.subplots(figsize=(9, 4.8))
circuit_diagram(ax)
ax.set_title("The induction circuit when xq has the class of x1", fontsize=11)
save_figure(fig, FIGURES / "02_circuit.png")

# %% [markdown]
# ## Two progress measures (exercises)
# We will watch the circuit form through two numbers per head:
# - **induction strength** of a layer-1 head: attention from `xq` to the right label
#   minus attention to the other label. It is a difference, between -1 and 1, and 0
#   for a head that does not tell the labels apart;
# - **label -> exemplar attention** of a layer-0 head: how much the label tokens
#   attend to their own exemplar (step 1 of the circuit).

# %%
model_config, task_config, train_config = preset("small")
task = FewShotTask(task_config)
eval_sets = task.eval_sets()
eval_batch = eval_sets["train"]
untrained = run_with_cache(init_params(model_config, train_config.seed), model_config, eval_batch)

# %%
# EXERCISE: induction_strength
from tinyinduction.measures import induction_strength  # SOLUTION
check("induction_strength", induction_strength)

# %%
# EXERCISE: label_previous_token_score
from tinyinduction.measures import label_previous_token_score  # SOLUTION
check("label_previous_token_score", label_previous_token_score)

# %% [markdown]
# ### Predict first
# For the untrained network: what induction strength do the layer-1 heads have? And
# how much does a label attend to its exemplar if the attention is spread evenly
# over what it can see (l1 sees x1 and itself; l2 sees x1 l1 x2 and itself)?

# %%
untrained_strength = induction_strength(untrained, eval_batch, 1)
untrained_previous = label_previous_token_score(untrained, 0)
print("untrained: induction strength, layer 1 heads:", untrained_strength.round(3))
print("untrained: label -> exemplar attention, layer 0 heads:", untrained_previous.round(3))

# %%
reveal("02.untrained", strength=", ".join(f"{v:+.3f}" for v in untrained_strength),
       previous=", ".join(f"{v:.3f}" for v in untrained_previous))

# %% [markdown]
# ## Train
# ### Predict first
# An untrained network's arbitrary first guesses are worse than a uniform guess over
# the 5 labels (loss ln 5 = 1.61), which it soon learns to beat. Before the
# circuit exists, the network can learn one more thing: the answer is one of the two
# labels in the context. Where will the loss sit while it knows only that?

# %%
run_dir = tempfile.mkdtemp(prefix="tinyinduction-lesson02-")
checkpoint_every = 100
train_config = train_config.replace(steps=2000, checkpoint_every=checkpoint_every, log_every=500)
result = train(model_config, task_config, train_config, out_dir=run_dir, task=task)
history = result.history
phase = describe_history(history, loss_key="eval/train/loss", threshold=PAPER_THRESHOLD)
print(f"start {history['eval/train/loss'][0]:.2f} (uniform guess: ln 5 = {math.log(5):.2f}); plateau at "
      f"{phase.plateau_level:.3f} (ln 2 = {math.log(2):.3f}) from step {phase.plateau_start:.0f} "
      f"to {phase.plateau_end:.0f}; loss below 0.4 ln 2 at step {phase.transition_time:.0f}")

# %%
reveal("02.plateau", start=f"{history['eval/train/loss'][0]:.2f}", level=f"{phase.plateau_level:.3f}")

# %% [markdown]
# ### Predict first
# The relabel set uses label pairs that never appear together in training (the
# classes and exemplars are the training ones). On the plateau, is its loss at ln 2,
# below, or above?

# %%
# the last checkpoint well inside the plateau
plateau_step = max(checkpoint_every, int(phase.plateau_end // checkpoint_every - 1) * checkpoint_every)
plateau_params, _ = load_params(f"{run_dir}/checkpoints/step_{plateau_step}.npz")


def context_label_shares(params, batch):
    """(probability on the two context labels, share of the larger of the two) per sequence."""
    logits = run_with_cache(params, model_config, batch)["logits"][:, -1, :]   # [B, V] at xq
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    on_context = np.take_along_axis(probs, np.asarray(batch.labels), axis=1)   # [B, 2]
    return on_context.sum(axis=1), on_context.max(axis=1) / on_context.sum(axis=1)


on_plateau = {}
index = int(np.argmin(np.abs(np.array(history["step"]) - plateau_step)))
for name in ("train", "relabel"):
    mass, larger = context_label_shares(plateau_params, eval_sets[name])
    on_plateau[name] = (history[f"eval/{name}/loss"][index], mass.mean(), larger.mean())
    print(f"step {plateau_step}, {name:8s}: loss {on_plateau[name][0]:.3f}; "
          f"probability on the two context labels {on_plateau[name][1]:.3f}; "
          f"larger share of the two {on_plateau[name][2]:.2f}")

# %%
reveal("02.relabel", step=plateau_step, train_loss=f"{on_plateau['train'][0]:.3f}",
       relabel_loss=f"{on_plateau['relabel'][0]:.3f}", train_larger=f"{on_plateau['train'][2]:.2f}",
       relabel_larger=f"{on_plateau['relabel'][2]:.2f}", relabel_mass=f"{on_plateau['relabel'][1]:.3f}")

# %% [markdown]
# ## What the heads do, checkpoint by checkpoint
# ### Predict first
# Which rises first: label -> exemplar attention in layer 0, or induction strength in
# layer 1? Or together?

# %%
every = 2 * checkpoint_every if QUICK else checkpoint_every
steps, strength, label_to_exemplar = [], [], []
for step in range(every, train_config.steps + 1, every):
    params, _ = load_params(f"{run_dir}/checkpoints/step_{step}.npz")
    cache = run_with_cache(params, model_config, eval_batch)
    pattern = cache["pattern", 0]                                    # [B, H, Tq, Tk]
    steps.append(step)
    strength.append(induction_strength(cache, eval_batch, layer=1))
    # per label token: l1 (position 1) -> x1 (0), l2 (3) -> x2 (2)
    label_to_exemplar.append([pattern[:, :, 1, 0].mean(axis=0), pattern[:, :, 3, 2].mean(axis=0)])
strength, label_to_exemplar = np.array(strength), np.array(label_to_exemplar)   # [S, H], [S, 2, H]
print("final induction strength per layer-1 head:", strength[-1].round(2))
print("final label -> exemplar attention per layer-0 head (mean of l1, l2):",
      label_to_exemplar[-1].mean(axis=0).round(2))


def halfway_step(values):
    """The first checkpoint at which a curve [S] is past half its way from start to end."""
    half = (values[0] + values[-1]) / 2
    past = values >= half if values[-1] >= values[0] else values <= half
    return steps[int(np.argmax(past))]


induction_head = int(np.argmax(strength[-1]))
previous_head = int(np.argmax(label_to_exemplar[-1].mean(axis=0)))
rise = {"induction": halfway_step(strength[:, induction_head]),
        "previous": halfway_step(label_to_exemplar[:, :, previous_head].mean(axis=1))}
print(f"halfway up: induction strength of layer-1 head {induction_head} at step {rise['induction']}, "
      f"label -> exemplar attention of layer-0 head {previous_head} at step {rise['previous']} "
      f"(checkpoints every {every} steps); loss below 0.4 ln 2 at step {phase.transition_time:.0f}")

fig, (ax_loss, ax_strength, ax_prev) = plt.subplots(3, 1, figsize=(10, 10), sharex=True,
                                                     height_ratios=[1.3, 1, 1])
plot_loss_history(ax_loss, history, phase, n_labels=task_config.n_labels)
ax_loss.set_title("small preset: loss falls to ln 2, sits on a plateau, then drops "
                  "when the circuit forms", fontsize=10)
layer1_colours, layer0_colours = ("tab:blue", "tab:cyan"), ("tab:red", "tab:brown")
for head in range(model_config.n_heads):
    ax_strength.plot(steps, strength[:, head], color=layer1_colours[head], lw=2,
                     label=f"layer 1, head {head}")
    for token, style in ((0, "-"), (1, "--")):
        ax_prev.plot(steps, label_to_exemplar[:, token, head], style, color=layer0_colours[head],
                     lw=2, label=f"layer 0, head {head}: l{token + 1} -> x{token + 1}")
ax_strength.axhline(0.0, color="grey", lw=0.9, ls=":", label="0: no preference\nbetween the labels")
ax_strength.set_ylabel("induction strength\nattention(xq -> right label)\n"
                       "- attention(xq -> other label)", fontsize=9)
ax_strength.set_ylim(-0.2, 1.0)
ax_prev.axhline(0.5, color="grey", lw=0.9, ls=":", label="chance for l1: 1/2\n(it sees x1 and itself)")
ax_prev.axhline(0.25, color="grey", lw=0.9, ls="-.", label="chance for l2: 1/4\n(it sees 4 tokens)")
ax_prev.set_ylabel("attention from a label\nto its own exemplar", fontsize=9)
ax_prev.set_ylim(0, 1)
ax_prev.set_xlabel("training step")
ax_loss.set_xlabel("")
for ax in (ax_strength, ax_prev):
    if phase.transition_time is not None:
        ax.axvline(phase.transition_time, color="tab:purple", ls="--", lw=1.2)
    legend_outside(ax, fontsize=7)
fig.tight_layout()
save_figure(fig, FIGURES / "02_phase_change.png")

# %%
reveal("02.together", induction=rise["induction"], previous=rise["previous"], every=every,
       drop=f"{phase.transition_time:.0f}", induction_head=induction_head, previous_head=previous_head)

# %% [markdown]
# ## Attention patterns on the plateau and after the drop

# %%
names = fewshot_token_names(task.n_context_pairs)
fig, axes = plt.subplots(2, model_config.n_layers * model_config.n_heads, figsize=(10, 5.6))
for row, step in enumerate((plateau_step, train_config.steps)):
    params, _ = load_params(f"{run_dir}/checkpoints/step_{step}.npz")
    patterns = mean_patterns(params, model_config, eval_batch, query_pair=0)   # [L, H, T, T]
    for layer in range(model_config.n_layers):
        heads = axes[row, layer * model_config.n_heads:(layer + 1) * model_config.n_heads]
        image = plot_patterns(heads, patterns[layer], names, f"L{layer} ")
    axes[row, 0].set_ylabel(f"step {step}\n" + ("(plateau)" if row == 0 else "(after the drop)")
                            + "\nquery", fontsize=9)
    add_attention_colorbar(fig, image, axes[row])
fig.suptitle("Attention (rows: query, columns: key), mean over sequences whose query matches x1.\n"
             "After the drop a layer-1 head's xq row points at l1 and a layer-0 head's l1, l2 rows "
             "at x1, x2", fontsize=9)
save_figure(fig, FIGURES / "02_patterns_before_after.png")

# %% [markdown]
# ## Held-out classes: the loss rises after the drop
# ### Predict first
# On the figure, the held-out-class loss (green) rises after the drop. Is the network
# getting worse at new classes, i.e. is its accuracy falling?

# %%
for name in ("train", "heldout_classes"):
    print(f"{name:16s} at step {history['step'][index]}: loss {history[f'eval/{name}/loss'][index]:.3f} "
          f"accuracy {history[f'eval/{name}/acc'][index]:.2f};  at step {history['step'][-1]}: "
          f"loss {history[f'eval/{name}/loss'][-1]:.3f} accuracy {history[f'eval/{name}/acc'][-1]:.2f}")
final_params = result.params
heldout = eval_sets["heldout_classes"]
logits = run_with_cache(final_params, model_config, heldout)["logits"][:, -1, :]
log_probs = logits - logits.max(axis=1, keepdims=True)
log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
right = log_probs[np.arange(len(heldout.target)), heldout.target]
wrong = log_probs.argmax(axis=1) != heldout.target
print(f"held-out classes, step {train_config.steps}: loss on the sequences it gets right "
      f"{-right[~wrong].mean():.2f}, on the ones it gets wrong {-right[wrong].mean():.2f} nats")

# %%
reveal("02.heldout", plateau_acc=f"{history['eval/heldout_classes/acc'][index]:.2f}",
       final_acc=f"{history['eval/heldout_classes/acc'][-1]:.2f}",
       plateau_loss=f"{history['eval/heldout_classes/loss'][index]:.3f}",
       final_loss=f"{history['eval/heldout_classes/loss'][-1]:.3f}",
       wrong_share=f"{wrong.mean():.0%}", wrong_cost=f"{-right[wrong].mean():.1f}")

# %%
shutil.rmtree(run_dir, ignore_errors=True)   # the checkpoints were only needed above
