"""Named presets: the model, task and training configs of a setting, together.

    model_config, task_config, train_config = preset("paper")

Above config.py and tasks/ (a preset needs both), below everything that runs them.
"""
from __future__ import annotations

from .config import ModelConfig, TrainConfig
from .tasks.fewshot import TaskConfig

PRESETS = ("paper", "small")


def preset(name: str) -> tuple[ModelConfig, TaskConfig, TrainConfig]:
    """(model, task, train) configs of a named preset.

    paper: Singh et al. 2024 (2 layers x 8 heads, d_model 64, lr 1e-5, 31,250 steps).
    small: 2 layers x 2 heads, d_model 32, 10 training classes, lr 1e-3, 2,000 steps:
           the plateau near ln 2 and the phase change in well under a minute.
    """
    if name == "paper":
        return ModelConfig.paper(), TaskConfig.paper(), TrainConfig.paper()
    if name == "small":
        return (ModelConfig.small(), TaskConfig.small(),
                TrainConfig(steps=2000, lr=1e-3, eval_every=50, checkpoint_every=500, log_every=500))
    raise ValueError(f"preset = {name!r}; allowed: {PRESETS}")
