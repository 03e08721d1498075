"""The batch types the model reads (the tasks make them, the model and measures read them).

    FewShotBatch   B sequences x1 l1 ... xC lC xq of Singh et al.'s task (tasks/fewshot.py)
    TokenBatch     B windows of token ids and their next-token targets (text, repeated tokens)

Below the model and the tasks, so that neither has to import the other for them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FewShotBatch(NamedTuple):
    """B sequences ``x_1 l_1 ... x_C l_C x_q``, kept as separate arrays (tokens are built by the model)."""

    exemplars: np.ndarray   # [B, C+1, F] float32 features: context exemplars (in sequence order) then the query
    labels: np.ndarray      # [B, C] int64 label ids of the context pairs, in sequence order
    target: np.ndarray      # [B] int64 correct label of the query (= labels[b, query_pair[b]])
    query_pair: np.ndarray  # [B] int64 index (0..C-1) of the context pair whose class is the query's class
    classes: np.ndarray     # [B, C+1] int64 class ids (context..., query)

    @property
    def batch_size(self) -> int:
        """Number of sequences B (len(batch) is the number of fields, as for any tuple)."""
        return int(self.target.shape[0])


class TokenBatch(NamedTuple):
    tokens: np.ndarray    # [B, T] int
    targets: np.ndarray   # [B, T] int, -1 where no loss is taken
