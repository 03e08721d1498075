"""Which heads do what: measures over the whole training set, and head roles found by rule.

    roles = identify_heads(params, config, task)
    roles.induction_heads        # [(1, h), ...] strongest first
    roles.previous_token_heads   # [(0, h), ...] strongest first

No experiment hard-codes a head index: they all ask identify_heads.

Rules (a threshold against a stated baseline; both baselines are 0 for a head that does
not prefer the right key at all):
- induction head (layer 1): induction strength over the whole enumerated training set
  (mean of attention(query -> correct label) - attention(query -> other label)) of at
  least INDUCTION_THRESHOLD. Baseline: 0 for equal attention to both labels (and
  1 would be an ideal induction head).
- previous-token head (layer 0): previous-token score (measures.previous_token_head_score:
  a label token's attention to its own exemplar minus its mean attention to the other
  positions it sees) on the fixed training evaluation set of at least
  PREVIOUS_TOKEN_THRESHOLD. Baseline: 0 for uniform attention (1 for an ideal
  previous-token head).
The strongest head of each kind is reported even when none passes its threshold
(strongest_induction_head, strongest_previous_token_head), because the clamping
experiments need one head of each role.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .config import ModelConfig
from .measures import induction_strength, previous_token_head_score
from .model import check_params, run_with_cache

INDUCTION_THRESHOLD = 0.3
PREVIOUS_TOKEN_THRESHOLD = 0.3
TRAIN_SET_CHUNK = 1024      # sequences per forward pass: ~60 MB of cache per pass


def _check_roles_model(config: ModelConfig, task):
    if config.input_kind != "fewshot" or config.n_layers < 2:
        raise ValueError(f"head roles need a few-shot model with at least 2 layers; this one has "
                         f"input_kind={config.input_kind!r}, n_layers={config.n_layers}")
    if task.n_context_pairs != 2:
        raise ValueError(f"head roles need the paper's 2 context pairs; the task has "
                         f"n_context_pairs = {task.n_context_pairs}")


def induction_strength_on_train_set(params, config: ModelConfig, task, layer: int = 1,
                                    clamps=(), chunk: int = TRAIN_SET_CHUNK) -> np.ndarray:
    """Induction strength per head [H] of `layer` over every distinct training sequence
    (the paper's 78,400 with 50 classes), streamed in chunks so memory stays small."""
    total, count = np.zeros(config.n_heads), 0
    for batch in task.iter_train_set(chunk):
        cache = run_with_cache(params, config, batch, clamps)
        total += induction_strength(cache, batch, layer) * batch.batch_size
        count += batch.batch_size
    return total / count


@dataclass(frozen=True)
class HeadRoles:
    """Head roles of a trained few-shot model; lists are (layer, head), strongest first."""

    induction_heads: list
    previous_token_heads: list
    induction_strength: list          # [H] layer-1 heads, whole training set
    previous_token_score: list        # [H] layer-0 heads, training evaluation set
    strongest_induction_head: tuple
    strongest_previous_token_head: tuple
    rules: dict

    def as_dict(self) -> dict:
        return asdict(self)


def identify_heads(params, config: ModelConfig, task, clamps=()) -> HeadRoles:
    """Previous-token heads of layer 0 and induction heads of layer 1 (see module docstring)."""
    check_params(params, config)
    _check_roles_model(config, task)
    strength = induction_strength_on_train_set(params, config, task, 1, clamps)
    eval_batch = task.eval_sets()["train"]
    prev = previous_token_head_score(run_with_cache(params, config, eval_batch, clamps), 0)
    by_strength = [int(h) for h in np.argsort(-strength)]
    by_prev = [int(h) for h in np.argsort(-prev)]
    rules = {
        "induction": f"layer-1 head with induction strength >= {INDUCTION_THRESHOLD} over the "
                     "whole training set (baseline 0: equal attention to both labels)",
        "previous_token": f"layer-0 head whose label tokens attend to their exemplar at least "
                          f"{PREVIOUS_TOKEN_THRESHOLD} more than to an average other visible "
                          "position (baseline 0: uniform attention)",
    }
    return HeadRoles(
        induction_heads=[(1, h) for h in by_strength if strength[h] >= INDUCTION_THRESHOLD],
        previous_token_heads=[(0, h) for h in by_prev if prev[h] >= PREVIOUS_TOKEN_THRESHOLD],
        induction_strength=[float(v) for v in strength],
        previous_token_score=[float(v) for v in prev],
        strongest_induction_head=(1, by_strength[0]),
        strongest_previous_token_head=(0, by_prev[0]),
        rules=rules)
