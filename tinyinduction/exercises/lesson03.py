"""Lesson 03's exercises: a previous-token score that finds heads, and composition scores.

Right answers: the package's measures.previous_token_head_score (on caches whose
layer-0 patterns are clamped to known shapes: an ideal previous-token head scores 1,
uniform attention 0) and measures.composition_score (on matrices built to compose
fully, not at all, or at random).
"""
from __future__ import annotations

import functools

import numpy as np

from ..clamp import Clamp, previous_token_pattern
from ..config import ModelConfig
from ..tasks.fewshot import TaskConfig
from ..measures import composition_score, previous_token_head_score, previous_token_score
from ..model import init_params, run_with_cache
from ..tasks.fewshot import FewShotTask
from .core import Case, Exercise, register


@functools.lru_cache(maxsize=1)
def _model_and_batch():
    """A small random network (2 layers x 3 heads) and 12 few-shot sequences."""
    config = ModelConfig.small(n_heads=3)
    task = FewShotTask(TaskConfig.small())
    return config, init_params(config, 7), task.sample(np.random.default_rng(8), 12)


def _uniform_pattern(n_positions):
    """Each query spreads its attention evenly over the keys it can see [T, T]."""
    return np.tril(np.ones((n_positions, n_positions))) / np.arange(1, n_positions + 1)[:, None]


def _previous_cases(rng):
    config, params, batch = _model_and_batch()
    cases = []
    for description, clamps in (
            ("random network", []),
            ("head 0 an ideal previous-token head (score 1), head 2 uniform (score 0)",
             [previous_token_pattern(0, 0, 1.0),
              Clamp("blocks.0.attn.hook_pattern", _uniform_pattern(5), np.s_[:, 2])]),
            ("head 1 puts 0.6 on the previous token, 0.4 on itself",
             [previous_token_pattern(0, 1, 0.6)])):
        cache = run_with_cache(params, config, batch, clamps)
        cases.append(Case(description, (cache, 0), previous_token_head_score(cache, 0),
                          "the package's measures.previous_token_head_score", rtol=1e-6, atol=1e-9))
    return cases


register(Exercise(
    name="previous_token_head_score",
    lesson="03",
    solution=previous_token_head_score,
    make_cases=_previous_cases,
    task="""
    Previous-token score of every head of one layer -> [H]: how much more each label
    token attends to its own exemplar than to an average other position it can see.

    cache["pattern", layer] is [B, H, Tq, Tk]; a sequence is x1 l1 x2 l2 xq, so the
    labels sit at positions i = 1, 3 (2C - 1 in general) and each one's exemplar at i - 1.
    Label i sees the keys 0..i: its exemplar and i other positions.

    score[h] = mean over sequences b and label positions i of
               A[b, h, i, i - 1] - (sum of A[b, h, i, j] over j <= i, j != i - 1) / i
    An ideal previous-token head scores 1, uniform attention 0 (the baseline).
    """,
    output_names=("score",),
    output_axes=(("head",),),
    hint="each row sums to 1, so the other positions' total is 1 - A[i, i-1]; divide by i",
    wrong_answers=(
        ("every position's previous token, nothing subtracted", lambda cache, layer: previous_token_score(cache, layer)),
        ("divides by the number of keys (i + 1) instead of the other keys (i)",
         lambda cache, layer: (lambda p: (p[:, :, [1, 3], [0, 2]] - (1 - p[:, :, [1, 3], [0, 2]])
                                          / np.array([2, 4])).mean(axis=(0, 2)))(cache["pattern", layer])),
    ),
))


def _composition_cases(rng):
    d = 6
    e0 = np.zeros((d, d))
    e0[0, 0] = 1.0                                    # writes direction 0 into direction 0
    reads0, reads5 = e0.copy(), np.zeros((d, d))
    reads5[5, 5] = 1.0
    random = [rng.standard_normal((d, 2)) @ rng.standard_normal((2, d)) for _ in range(4)]
    cases = []
    for kind in "QKV":
        for description, first, second in (
                (f"{kind}: the second head reads exactly what the first writes (score 1)", e0, reads0),
                (f"{kind}: it reads another direction (score 0)", e0, reads5),
                (f"{kind}: random rank-2 circuits", random[0], random[1]),
                (f"{kind}: a stack of 2 pairs (leading axis broadcasts)", np.stack(random[:2]),
                 np.stack(random[2:]))):
            cases.append(Case(description, (first, second, kind), composition_score(first, second, kind),
                              "the package's measures.composition_score", rtol=1e-9, atol=1e-12))
    return cases


register(Exercise(
    name="composition_score",
    lesson="03",
    solution=composition_score,
    make_cases=_composition_cases,
    task="""
    Elhage et al.'s composition score of a first head into a second head.

    first_ov [..., D, D]: the first head's OV circuit, row-vector convention (its output
      for a residual vector x [1, D] is x @ first_ov).
    second [..., D, D]: the second head's W_QK (kind "Q" or "K"; its score for query x
      and key y is x @ W_QK @ y^T) or its W_OV (kind "V").
    kind: "Q" (the first head's output feeds the second's query), "K" (its key),
      "V" (its value). Leading axes broadcast. -> score [...]

    composed = first_ov @ second          for Q and V
               second @ first_ov^T        for K (the output enters the key side, y)
    score = |composed|_F / (|first_ov|_F |second|_F)    (Frobenius norms)
    """,
    output_names=("score",),
    hint="np.linalg.norm(M, axis=(-2, -1)) is the Frobenius norm of the last two axes",
    wrong_answers=(
        ("K composed like Q", lambda first, second, kind: composition_score(
            first, second, "Q" if kind == "K" else kind)),
    ),
))
