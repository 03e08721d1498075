"""Training settings shared by the Singh et al. experiments: the paper's, and --quick's.

paper: Singh et al.'s network and run (2 layers x 8 heads, d_model 64, lr 1e-5, batch
       32, 31,250 steps), evaluation every 500 steps, a checkpoint every 500 steps (the
       heads experiment reads them back).
quick: 2 layers x 4 heads, d_model 32, 10 training classes, lr 1e-3, 1,500 steps: the
       plateau and the drop in ~5 s, for lessons and tests. Its numbers are not the
       paper's and are never compared with them.
features (`reproduce NAME --features F`): another exemplar table in either setting; the
       model's d_feature follows the table.
"""
from __future__ import annotations

import dataclasses

from ..config import ModelConfig, TrainConfig
from ..presets import preset
from ..sweep import make_task
from ..tasks.fewshot import FewShotTask, TaskConfig
from ..train import fit_model_to_task

QUICK_STEPS = 1500


def setting(quick: bool, seed: int, features: str | None = None,
            **train_changes) -> tuple[ModelConfig, TaskConfig, TrainConfig]:
    """(model, task, train) configs of the paper's or the quick setting (features: another
    exemplar table, None for the setting's own)."""
    if quick:
        model, task = ModelConfig.small(n_heads=4), TaskConfig.small()
        train = TrainConfig(seed=seed, steps=QUICK_STEPS, lr=1e-3, eval_every=50,
                            checkpoint_every=100, log_every=0)
    else:
        model, task, train = preset("paper")
        train = train.replace(seed=seed, eval_every=500, checkpoint_every=500, log_every=0)
    if features is not None:
        task = dataclasses.replace(task, features=features)
        model = fit_model_to_task(model, task_of(task))
    return model, task, train.replace(**train_changes)


def task_of(task_config: TaskConfig) -> FewShotTask:
    """One FewShotTask per task config in this process (its evaluation sets are cached);
    the sweep runner's, so the grid's check and its runs share it."""
    return make_task(task_config)
