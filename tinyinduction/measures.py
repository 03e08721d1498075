"""Progress measures read off a forward cache (few-shot task).

Positions of a few-shot sequence: exemplar i at 2i, its label at 2i + 1, query at 2C.
"""
from __future__ import annotations

import numpy as np


def induction_strength(cache, batch, layer: int) -> np.ndarray:
    """Per head [H]: mean over sequences of attention(query -> correct label token)
    minus attention(query -> the other label tokens) (Singh et al.; 2s - 1 for a
    "match" clamp of strength s). Only meaningful with C = 2 context pairs, where
    there is exactly one other label."""
    pattern = cache["pattern", layer]                       # [B, H, Tq, Tk]
    query_row = pattern[:, :, -1, :]                        # [B, H, Tk]
    n_pairs = (pattern.shape[-1] - 1) // 2
    label_positions = 2 * np.arange(n_pairs) + 1            # [C]
    on_labels = query_row[:, :, label_positions]            # [B, H, C]
    rows = np.arange(pattern.shape[0])
    correct = on_labels[rows, :, np.asarray(batch.query_pair)]   # [B, H]
    others = (on_labels.sum(axis=2) - correct) / max(n_pairs - 1, 1)
    return (correct - others).mean(axis=0)


def previous_token_score(cache, layer: int) -> np.ndarray:
    """Per head [H]: mean attention from each position i >= 1 to i - 1."""
    pattern = cache["pattern", layer]                       # [B, H, Tq, Tk]
    rows = np.arange(1, pattern.shape[-1])
    return pattern[:, :, rows, rows - 1].mean(axis=(0, 2))


def label_previous_token_score(cache, layer: int) -> np.ndarray:
    """Per head [H]: mean attention from each label token to its own exemplar — the
    part of previous-token attention the induction circuit needs (subcircuit A)."""
    pattern = cache["pattern", layer]
    n_pairs = (pattern.shape[-1] - 1) // 2
    labels = 2 * np.arange(n_pairs) + 1
    return pattern[:, :, labels, labels - 1].mean(axis=(0, 2))
