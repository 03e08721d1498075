"""Tasks that induction heads can solve. fewshot: Singh et al. (2024).

fewshot.py   the task: FewShotTask (sampling, evaluation sets, enumeration);
             its TaskConfig lives in fewshot_config.py
features.py  exemplar feature tables: the generated stand-in, loading, statistics
glyphs.py    a real-image table: characters of many scripts rendered and featurised
"""
from .features import builtin_features, feature_statistics, load_features
from .fewshot import EVAL_SET_NAMES, FewShotBatch, FewShotTask, TaskConfig

__all__ = [
    "EVAL_SET_NAMES",
    "FewShotBatch",
    "FewShotTask",
    "TaskConfig",
    "builtin_features",
    "feature_statistics",
    "load_features",
]
