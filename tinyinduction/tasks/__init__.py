"""Tasks that induction heads can solve. fewshot: Singh et al. (2024)."""
from .fewshot import (
    EVAL_SET_NAMES,
    FewShotBatch,
    FewShotTask,
    TaskConfig,
    builtin_features,
    feature_statistics,
    load_features,
)

__all__ = [
    "EVAL_SET_NAMES",
    "FewShotBatch",
    "FewShotTask",
    "TaskConfig",
    "builtin_features",
    "feature_statistics",
    "load_features",
]
