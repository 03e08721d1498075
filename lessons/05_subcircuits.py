# %% [markdown]
# # Lesson 05: artificial optogenetics, clamping the subcircuits of an induction head
#
# **Learning objectives.** After this lesson you can
# - name the three subcircuits an induction head needs (A: the label token reads its
#   exemplar; B: the query matches that label's key; C: the head copies the label to the
#   output) and the clamp that hands each one to the network ready-made;
# - build a clamp whose value comes from another forward pass, with the gradient flowing
#   back through it, and write the backward of the shift that clamp A uses;
# - predict which clamps remove the plateau, and hold each loss curve against the toy
#   model of lesson 04 with the matching number of factors;
# - see one of Singh et al.'s data results: more training classes slow down learning the
#   match (B) much more than the copy (C).
#
# **Prerequisite:** lesson 04 (the toy model), whose factors this lesson takes away one
# by one.
#
# **Exercises.** `python -m tinyinduction.exercises 05` writes
# `lessons/exercises/05_subcircuits.py`, in which you write `match_target` and
# `shift_middle_backward`; `python -m tinyinduction.exercises check 05` checks both
# without training anything.
#
# Trains 1 + 6 + 12 short runs of the quick setting (2 layers x 4 heads, d_model 32),
# two at a time (`TINYINDUCTION_QUICK=1`: fewer steps, one seed for the data sweep). Layers: ours start at 0; Singh et
# al. call our layer 0 "layer 1". **Prints** each condition's learning time, plateau and
# fitted toy depth, and the data sweep; **saves** `figures/05_subcircuits.png` and
# `figures/05_data.png`. The paper-setting experiments: `python -m tinyinduction
# reproduce subcircuits` and `reproduce data`. Run time and the papers: the course
# guide, `lessons/README.md`.

# %%
import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tinyinduction.exercises import check, reveal
from tinyinduction.experiments import plots
from tinyinduction.experiments.base import Context
from tinyinduction.experiments.subcircuits import plateau_steps, reference_heads, toy_fit
from tinyinduction.model import init_params, loss_and_grads
from tinyinduction.paths import figures_dir, lesson_root, quick_mode
from tinyinduction.subcircuits import CONDITIONS, build_clamps, condition_specs
from tinyinduction.sweep import RunSpec
from tinyinduction.tasks.fewshot import FewShotTask

ROOT = lesson_root()                  # the checkout this lesson is in, found from its own file
FIGURES = figures_dir(root=ROOT)      # ROOT/figures
QUICK = quick_mode()
work = Path(tempfile.mkdtemp(prefix="tinyinduction-lesson05-"))
ctx = Context("lesson05", seed=5, out=work, jobs=2, quick=True, figures=work)

# %% [markdown]
# ## The heads to clamp
# Clamps act on one induction head and one previous-token head. We find them as in
# lesson 03, on a quick reference run.

# %%
model_config, task_config, train_config, roles = reference_heads(ctx)
induction_head = roles.strongest_induction_head[1]
previous_token_head = roles.strongest_previous_token_head[1]

# %% [markdown]
# ## Clamp B: a perfect match (exercise)
# B hands the network the query-key match: the induction head's query row is clamped to
# s on the correct label and 1 - s on the other one. The value is a constant, so no
# gradient flows into W_Q, W_K of that head. With the match given, A no longer matters
# (it only serves the match) and only C, the copy, has to be learned.

# %%
# EXERCISE: match_target
from tinyinduction.subcircuits import match_target  # SOLUTION
check("match_target", match_target)

# %% [markdown]
# ## Clamp A: perfect previous tokens, from a second pass (exercise)
# A hands the network subcircuit A: layer 1 should see, at each label, the exemplar
# before it. The paper does it with two passes of the same network on the same batch:
# - a **pattern pass** whose block-0 output is the embeddings shifted one position to
#   the right (the label position holds its exemplar): layer 1's attention patterns
#   there are those of a perfect previous-token layer;
# - the **final pass**, whose block-0 output is the plain embeddings and whose layer-1
#   patterns are the pattern pass's.
# The patterns are *linked*, not constants: the loss's gradient flows through them back
# into the pattern pass, so W_Q and W_K of layer 1 still learn. The backward has to
# send the gradient through the shift as well: that is your exercise.

# %%
# EXERCISE: shift_middle_backward
from tinyinduction.subcircuits import shift_middle_backward  # SOLUTION
check("shift_middle_backward", shift_middle_backward)

# %%
passes = build_clamps(condition_specs("A", induction_head), model_config)
print(passes)
task = FewShotTask(task_config)
params = init_params(model_config, 5)
loss, _, grads, cache = loss_and_grads(params, model_config, task.sample(np.random.default_rng(0), 32), passes)
print(f"passes: {list(cache.passes)}; |grad W_K of layer 1| = {np.abs(grads['blocks.1.attn.W_K']).sum():.3g} "
      f"(not 0: the gradient reaches it through the pattern pass); |grad of layer 0| = "
      f"{np.abs(grads['blocks.0.attn.W_Q']).sum():.3g} (0: layer 0 is replaced in both passes)")

# %% [markdown]
# ## Six conditions
# none: only the induction head active; PT: a layer-0 head clamped to a perfect
# previous-token pattern; A; B; C (copy: the query's logits are the head's scores to
# the two labels, so only the match has to be learned); A + C.
#
# ### Predict first
# Lesson 04's toy model: a circuit of D factors that must all grow has a plateau that
# lengthens steeply with D. Clamping a factor removes it. Which conditions keep a
# plateau, and which lose it?

# %%
steps = 600 if QUICK else 3000
clamped = train_config.replace(steps=steps, eval_every=steps // 100, checkpoint_every=steps)
specs = [RunSpec(name, model_config, task_config, clamped,
                 condition_specs(name, induction_head, previous_token_head)) for name in CONDITIONS]
runs = ctx.train_runs(specs, grid="conditions")
results = {"learning_time": {}, "plateau_steps": {}, "curves": {}, "toy_fit": {}}
for name in CONDITIONS:
    history = runs[name].history()
    curve = {"step": history["step"], "loss": history["eval/train/loss"]}
    results["curves"][name] = curve
    results["learning_time"][name] = runs[name].learning_time
    results["plateau_steps"][name] = plateau_steps(curve["step"], curve["loss"])
    results["toy_fit"][name] = toy_fit(curve["step"], curve["loss"], runs[name].learning_time is not None)
    fit = results["toy_fit"][name]
    print(f"{name:4s} learning time {results['learning_time'][name]}, plateau "
          f"{results['plateau_steps'][name]} steps, toy fit: D = {fit.get('depth')}")
plots.subcircuits_figure(FIGURES / "05_subcircuits.png", results)

# %%
reveal("05.conditions", every=clamped.eval_every, table="\n".join(
    f"  {name:4s} learning time {results['learning_time'][name]}, plateau {results['plateau_steps'][name]} "
    f"steps, best toy depth D = {results['toy_fit'][name].get('depth')}" for name in CONDITIONS))

# %% [markdown]
# ## Data act through different subcircuits
# ### Predict first
# More training classes mean more exemplars the match (B) must tell apart; more labels
# mean more outputs the copy (C) must keep apart. Train with 10 or 40 classes, letting
# only B evolve (A and C clamped) or only C evolve (B clamped). Which is slowed by the
# extra classes?
#
# These clamped runs learn within a few dozen steps, so they are evaluated after every
# step (a learning time is then exact to the step), and each setting is trained from
# three seeds.

# %%
data_steps = 80 if QUICK else 150
seeds = (5,) if QUICK else (5, 6, 7)
data_train = train_config.replace(steps=data_steps, eval_every=1, checkpoint_every=data_steps)
specs = []
for condition in ("B_evolves", "C_evolves"):
    for classes in (10, 40):
        task = dataclasses.replace(task_config, n_train_classes=classes)
        for seed in seeds:
            specs.append(RunSpec(f"{condition},classes={classes},seed={seed}", model_config, task,
                                 data_train.replace(seed=seed),
                                 condition_specs(condition, induction_head, previous_token_head)))
runs = ctx.train_runs(specs, grid="data")
times, data = {}, {"curves": {}}          # times[condition][classes]: learning time of each seed
for spec in specs:
    condition, rest = spec.name.split(",classes=")
    classes, seed = rest.split(",seed=")
    times.setdefault(condition, {}).setdefault(classes, []).append(runs[spec.name].learning_time)
    if int(seed) == seeds[0]:             # the figure shows the first seed's curves
        history = runs[spec.name].history()
        data["curves"].setdefault(condition, {}).setdefault("classes", {})[classes] = {
            "step": history["step"], "loss": history["eval/train/loss"]}
        data.setdefault(condition, {}).setdefault("classes", {})[classes] = runs[spec.name].learning_time
slowdown = {}
for condition in ("B_evolves", "C_evolves"):
    learned = all(None not in times[condition][c] for c in ("10", "40"))
    slowdown[condition] = np.mean(times[condition]["40"]) / np.mean(times[condition]["10"]) if learned else None
    print(f"{condition}: learning times (seeds {', '.join(map(str, seeds))}) with 10 classes "
          f"{times[condition]['10']}, with 40 classes {times[condition]['40']}; 40 classes / 10 classes: "
          + ("did not learn in every run" if slowdown[condition] is None else f"{slowdown[condition]:.2f}"))

# %%
reveal("05.data", slowdown_b="-" if slowdown["B_evolves"] is None else f"{slowdown['B_evolves']:.1f}",
       slowdown_c="-" if slowdown["C_evolves"] is None else f"{slowdown['C_evolves']:.1f}",
       n_seeds=len(seeds))

# %%
plots.data_figure(FIGURES / "05_data.png", data)
shutil.rmtree(work, ignore_errors=True)   # the quick runs were only needed above
