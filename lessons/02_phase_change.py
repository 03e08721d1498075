"""Lesson 02: train a network, watch the plateau and the phase change, look inside.

What it teaches
- the loss falls fast to ~ln 2 (copy one of the two context labels at random), sits on
  that plateau, then drops abruptly: the induction circuit has formed;
- at the same time a layer-1 head starts attending from the query to the correct label
  (induction strength) and a layer-0 head from each label to its exemplar
  (previous-token attention);
- the attention patterns before and after.
Uses the `small` preset (2 layers x 2 heads) so it runs in about 30 seconds on a 2-core
laptop; `python -m tinyinduction demo` runs the paper's network. Prints a progress line
every 500 steps and a summary; saves figures/02_phase_change.png and
figures/02_patterns_before_after.png.
"""
# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinyinduction.config import preset
from tinyinduction.measures import induction_strength, label_previous_token_score
from tinyinduction.demo import mean_patterns
from tinyinduction.model import run_with_cache
from tinyinduction.phases import PAPER_THRESHOLD, describe_history
from tinyinduction.plots import fewshot_token_names, plot_loss_history, plot_patterns
from tinyinduction.tasks.fewshot import FewShotTask
from tinyinduction.train import load_params, train

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
RUN = ROOT / "runs" / "lesson02"

# %% [markdown]
# ## Train
# Checkpoints every 100 steps let us look at the network at any point afterwards.

# %%
model_config, task_config, train_config = preset("small")
train_config = train_config.replace(steps=2000, checkpoint_every=100)
task = FewShotTask(task_config)
result = train(model_config, task_config, train_config, out_dir=RUN, task=task, resume="auto")
history = result.history
phase = describe_history(history, loss_key="eval/train/loss", threshold=PAPER_THRESHOLD)
print(f"plateau at loss {phase.plateau_level:.3f} from step {phase.plateau_start:.0f} "
      f"to {phase.plateau_end:.0f}; loss below 0.4 ln 2 at step {phase.transition_time:.0f}")

# %% [markdown]
# ## What the heads do, checkpoint by checkpoint

# %%
eval_batch = task.eval_sets()["train"]
steps, strength, prev_token = [], [], []
for step in range(100, train_config.steps + 1, 100):
    params, _ = load_params(RUN / "checkpoints" / f"step_{step}.npz")
    cache = run_with_cache(params, model_config, eval_batch)
    steps.append(step)
    strength.append(induction_strength(cache, eval_batch, layer=1))
    prev_token.append(label_previous_token_score(cache, layer=0))
strength, prev_token = np.array(strength), np.array(prev_token)

fig, (ax_loss, ax_heads) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
plot_loss_history(ax_loss, history, phase)
ax_loss.set_title("small preset: plateau near ln 2, then the phase change", fontsize=10)
for head in range(model_config.n_heads):
    ax_heads.plot(steps, strength[:, head], label=f"induction strength, layer 1 head {head}")
    ax_heads.plot(steps, prev_token[:, head], "--", label=f"label -> its exemplar, layer 0 head {head}")
if phase.transition_time is not None:
    ax_heads.axvline(phase.transition_time, color="tab:purple", ls="--", lw=1.2)
ax_heads.set_xlabel("step")
ax_heads.set_ylabel("attention")
ax_heads.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIGURES / "02_phase_change.png", dpi=110)
plt.close(fig)
print("final induction strength per layer-1 head:", strength[-1].round(2))

# %% [markdown]
# ## Attention patterns on the plateau and after the drop

# %%
plateau_step = int(round(phase.plateau_end / 100) * 100) - 100 if phase.plateau_end else 500
names = fewshot_token_names(task.n_context_pairs)
fig, axes = plt.subplots(2, 2 * model_config.n_heads, figsize=(8, 5.4))
for row, step in enumerate((max(plateau_step, 100), train_config.steps)):
    params, _ = load_params(RUN / "checkpoints" / f"step_{step}.npz")
    patterns = mean_patterns(params, model_config, eval_batch, query_pair=0)   # [L, H, T, T]
    for layer in range(2):
        heads = axes[row, layer * model_config.n_heads:(layer + 1) * model_config.n_heads]
        plot_patterns(heads, patterns[layer], names, f"step {step} L{layer} ")
fig.suptitle("attention (rows: query, columns: key), mean over sequences whose query matches x1:\n"
             "on the plateau (top) and after the phase change (bottom), where the query row of an "
             "induction head points at l1", fontsize=8)
fig.tight_layout(rect=(0, 0, 1, 0.93), h_pad=2.0)
fig.savefig(FIGURES / "02_patterns_before_after.png", dpi=110)
plt.close(fig)
