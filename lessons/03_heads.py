# %% [markdown]
# # Lesson 03: which heads do what, found without looking
#
# **Learning objectives.** After this lesson you can
# - score every head for the role it plays (previous-token score in layer 0, induction
#   strength in layer 1) and pick the heads by a rule with a stated baseline;
# - predict and explain what ablating heads does: one induction head is not missed
#   (redundancy), and each head switched on lowers the loss further (additivity);
# - read composition scores (Elhage et al.) off the weights alone, and see K-composition
#   from the previous-token head into the induction heads;
# - run the paper's wiring test: ablate layer-0 heads while keeping either the clean
#   attention patterns (only value paths change) or the clean layer-1 values (only
#   query/key paths change), and say which path needs the previous-token heads.
#
# **Exercises.** `python -m tinyinduction.exercises 03` writes `lessons/exercises/03_heads.py`,
# in which you write `previous_token_head_score` and `composition_score`;
# `python -m tinyinduction.exercises check 03` checks both.
#
# It analyses the paper-preset demo in `runs/demo` when there is a finished one
# (`python -m tinyinduction demo`), otherwise it trains the quick setting (2 layers x 4
# heads, d_model 32, 1,500 steps); `TINYINDUCTION_QUICK=1` always trains the quick
# setting. Layers: ours start at 0; Singh et al. (2024) call our layer 0 "layer 1".
# **Prints** the head scores, the ablation results and the wiring test; **saves**
# `figures/03_heads_over_training.png`, `figures/03_ablations.png` and
# `figures/03_composition.png`. `python -m tinyinduction reproduce heads` is the full
# experiment at the paper's setting, with the paper's numbers beside ours. Run time,
# prerequisites and the papers: the course guide, `lessons/README.md`.

# %%
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tinyinduction.config import ModelConfig
from tinyinduction.exercises import check, reveal
from tinyinduction.experiments import plots
from tinyinduction.experiments.heads import checkpoints, over_training, redundancy, switch_on, wiring
from tinyinduction.experiments.setups import setting
from tinyinduction.heads import identify_heads
from tinyinduction.measures import composition_scores, induction_strength
from tinyinduction.model import run_with_cache
from tinyinduction.paths import figures_dir, lesson_root, quick_mode, runs_dir
from tinyinduction.phases import describe_history
from tinyinduction.subcircuits import ablate_heads
from tinyinduction.tasks.fewshot import FewShotTask, TaskConfig
from tinyinduction.train import evaluate, load_params, train

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures

# %% [markdown]
# ## A trained network
# The paper's demo run if there is one, otherwise a quick one.

# %%
demo = runs_dir(root=ROOT) / "demo"
run_json = demo / "run.json"
use_demo = not quick_mode() and run_json.exists() and json.loads(run_json.read_text()).get("status") == "finished"
if use_demo:
    run_dir = demo
    identity = json.loads(run_json.read_text())["identity"]
    model_config = ModelConfig.from_dict(identity["model"])
    task_config = TaskConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in identity["task"].items()})
    print(f"analysing the paper-preset demo in {demo}")
else:
    run_dir = Path(tempfile.mkdtemp(prefix="tinyinduction-lesson03-"))
    model_config, task_config, train_config = setting(quick=True, seed=5)
    train(model_config, task_config, train_config.replace(log_every=500), out_dir=run_dir)
task = FewShotTask(task_config)
batch = task.eval_sets()["train"]
history = json.loads((run_dir / "history.json").read_text())
params, _ = load_params(checkpoints(run_dir)[-1][1])
print(f"{model_config.n_layers} layers x {model_config.n_heads} heads; final train-set loss "
      f"{history['eval/train/loss'][-1]:.4f}")

# %% [markdown]
# ## Scoring heads for their roles (exercise)
# The circuit needs a **previous-token head** in layer 0 (each label token reads the
# exemplar just before it) and an **induction head** in layer 1 (the query attends to
# the label after its matching exemplar). A score for each role, with a baseline that
# says what "no role" looks like:
# - induction strength (lesson 02): attention(xq -> right label) - attention(xq ->
#   other label); 0 for a head that does not tell the labels apart;
# - previous-token score: a label's attention to its own exemplar minus its mean
#   attention to the other positions it can see; 0 for uniform attention, 1 for an
#   ideal previous-token head. (Lesson 02's label -> exemplar attention has no such
#   baseline: 1/2 for l1 is already what uniform attention gives.)

# %%
# EXERCISE: previous_token_head_score
from tinyinduction.measures import previous_token_head_score  # SOLUTION
check("previous_token_head_score", previous_token_head_score)

# %% [markdown]
# ### Predict first
# `identify_heads` calls a layer-0 head a previous-token head if its score is at least
# 0.3, and a layer-1 head an induction head if its strength over the whole training
# set is at least 0.3. How many of each do you expect: one, or several?

# %%
roles = identify_heads(params, model_config, task)
print("previous-token score, layer 0:", np.round(roles.previous_token_score, 2))
print("induction strength, layer 1: ", np.round(roles.induction_strength, 2))
print("previous-token heads:", roles.previous_token_heads, " induction heads:", roles.induction_heads)
for kind, rule in roles.rules.items():
    print(f"  rule ({kind}): {rule}")

# %%
reveal("03.how-many", n_previous=len(roles.previous_token_heads), n_induction=len(roles.induction_heads),
       n_heads=model_config.n_heads)

# %%
trajectory = over_training(run_dir, model_config, task, roles.strongest_induction_head[1],
                           roles.strongest_previous_token_head[1])
phase = describe_history(history, loss_key="eval/train/loss")
plots.heads_over_training(FIGURES / "03_heads_over_training.png", history, trajectory, roles, phase)

# %% [markdown]
# ## Redundant and additive
# ### Predict first
# Ablate (zero the values of) the strongest induction head only. Does the accuracy
# fall to chance (0.5), a little, or not at all? And with only that one head left?

# %%
ablations = redundancy(params, model_config, batch)
order = [int(h) for h in np.argsort(roles.induction_strength)[::-1]]
losses = switch_on(params, model_config, batch, order)
strongest = order[0]
print(f"accuracy with head {strongest} ablated: {ablations['ablate_one_acc'][strongest]:.3f}; "
      f"with only head {strongest} left: {ablations['only_head_acc'][strongest]:.3f}")
print("accuracy with each head ablated:", np.round(ablations["ablate_one_acc"], 3))
print("accuracy with only each head:   ", np.round(ablations["only_head_acc"], 3))
print("loss as heads switch on, strongest first:", np.round(losses, 4))
every_induction_head = [h for _, h in roles.induction_heads] or [strongest]
every_ablated = evaluate(params, model_config, batch, ablate_heads(model_config, 1, every_induction_head))[1]
print(f"accuracy with every induction head ablated: {every_ablated:.3f}")

# %%
reveal("03.redundant", strongest=strongest, ablate_one=f"{ablations['ablate_one_acc'][strongest]:.3f}",
       only_one=f"{ablations['only_head_acc'][strongest]:.3f}",
       losses=", ".join(f"{v:.3f}" for v in losses), every_ablated=f"{every_ablated:.3f}")

# %%
results = {**ablations, "induction_strength": roles.induction_strength, "switch_on_loss": losses,
           "wiring": wiring(params, model_config, batch, [h for _, h in roles.previous_token_heads])}
plots.heads_ablations(FIGURES / "03_ablations.png", results)

# %% [markdown]
# ## Composition, read off the weights (exercise)
# A layer-1 head can read what a layer-0 head wrote in three places: its query
# (Q-composition), its key (K-composition), its value (V-composition). Elhage et al.
# measure how much by the norm of the product of the two circuits, relative to the
# product of their norms. The induction circuit is K-composition: the label's key
# carries the exemplar that the previous-token head copied there.

# %%
# EXERCISE: composition_score
from tinyinduction.measures import composition_score  # SOLUTION
check("composition_score", composition_score)

# %%
composition = composition_scores(params, model_config)
prev_heads = [h for _, h in roles.previous_token_heads]
induction_heads = [h for _, h in roles.induction_heads]
for kind in "QKV":
    scores = np.asarray(composition[kind])
    block = scores[np.ix_(prev_heads, induction_heads)] if prev_heads and induction_heads else scores
    print(f"{kind}-composition: previous-token -> induction heads mean {block.mean():.3f}, all pairs "
          f"{scores.mean():.3f}, random baseline {composition['baseline'][kind]:.3f}")
plots.composition_figure(FIGURES / "03_composition.png", composition, prev_heads, induction_heads)

# %% [markdown]
# ## Wiring: which path needs the previous-token heads?
# Ablate a set of layer-0 heads (zero their outputs) in two ways:
# - **patterns kept**: every attention pattern is pinned to the clean run's, so layer
#   1 still attends where it did; only what flows through the values changes;
# - **values kept**: layer 1's values are pinned to the clean run's, so only its
#   queries and keys (where it attends) change.
#
# ### Predict first
# Ablating the previous-token heads: which way hurts, patterns kept or values kept?

# %%
w = results["wiring"]
for name in ("previous_token_heads", "other_heads"):
    print(f"{name:21s} {w['heads'][name]}: accuracy with patterns kept "
          f"{w['pattern_preserving'][name]}, with layer-1 values kept {w['value_preserving'][name]}")

# %%
reveal("03.wiring", heads=w["heads"]["previous_token_heads"],
       patterns_kept=w["pattern_preserving"]["previous_token_heads"],
       values_kept=w["value_preserving"]["previous_token_heads"],
       other_patterns_kept=w["pattern_preserving"]["other_heads"],
       other_values_kept=w["value_preserving"]["other_heads"])

# %%
if not use_demo:
    shutil.rmtree(run_dir, ignore_errors=True)   # the quick run was only needed above
