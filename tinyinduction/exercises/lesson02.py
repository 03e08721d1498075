"""Lesson 02's exercises: the two progress measures read off a forward cache.

Right answers: the package's measures.induction_strength and
measures.label_previous_token_score, on caches of a small random network and on caches
whose patterns were clamped to known shapes (a perfect induction head scores 1).
"""
from __future__ import annotations

import functools

import numpy as np

from ..clamp import Clamp, previous_token_pattern
from ..presets import preset
from ..measures import induction_strength, label_previous_token_score, previous_token_score
from ..model import init_params, run_with_cache
from ..tasks.fewshot import FewShotTask
from .core import Case, Exercise, register

REFERENCE_STRENGTH = "the package's measures.induction_strength"
REFERENCE_PREVIOUS = "the package's measures.label_previous_token_score"


@functools.lru_cache(maxsize=1)
def _small_model_and_batch():
    """A small random network (2 layers x 2 heads) and 16 few-shot sequences."""
    model_config, task_config, _ = preset("small")
    params = init_params(model_config, seed=3)
    batch = FewShotTask(task_config).sample(np.random.default_rng(4), 16)
    return model_config, params, batch


def _query_row_clamp(layer, head, weight_on_right_label):
    """Clamp one head's query row: weight w on the right label, 1 - w on the other one."""
    def value(batch, cache):
        labels = np.asarray(batch.labels)
        n_batch, n_pairs = labels.shape
        n_positions = 2 * n_pairs + 1
        pattern = np.tile(np.eye(n_positions), (n_batch, 1, 1, 1))      # [B, 1, T, T]
        right = 2 * np.asarray(batch.query_pair) + 1                      # [B]
        other = 2 * (1 - np.asarray(batch.query_pair)) + 1                # C = 2: the other label
        rows = np.arange(n_batch)
        pattern[:, 0, -1, :] = 0.0
        pattern[rows, 0, -1, right] = weight_on_right_label
        pattern[rows, 0, -1, other] += 1.0 - weight_on_right_label
        return pattern
    return Clamp(f"blocks.{layer}.attn.hook_pattern", value, np.s_[:, head])


def _strength_cases(rng):
    model_config, params, batch = _small_model_and_batch()
    plain = run_with_cache(params, model_config, batch)
    clamped = run_with_cache(params, model_config, batch,
                             [_query_row_clamp(1, 0, 1.0), _query_row_clamp(1, 1, 0.0)])
    half = run_with_cache(params, model_config, batch,
                          [_query_row_clamp(1, 0, 0.5), _query_row_clamp(1, 1, 0.8)])
    cases = []
    for description, cache, layer in (
            ("random network, layer 1", plain, 1), ("random network, layer 0", plain, 0),
            ("layer 1, head 0 a perfect induction head, head 1 always on the wrong label",
             clamped, 1),
            ("layer 1, head 0 split 50/50 between the labels, head 1 80/20", half, 1)):
        cases.append(Case(description, (cache, batch, layer),
                          induction_strength(cache, batch, layer), REFERENCE_STRENGTH,
                          rtol=1e-6, atol=1e-9))
    return cases


register(Exercise(
    name="induction_strength",
    lesson="02",
    solution=induction_strength,
    make_cases=_strength_cases,
    task="""
    Induction strength of every head of one layer -> [H]: how much more the query
    attends to the label of its own class than to the other label.

    cache: a forward cache; cache["pattern", layer] is [B, H, Tq, Tk].
    batch: the few-shot batch; batch.query_pair [B] says which context pair the
           query's class belongs to (0 or 1).
    layer: int.
    A sequence is x1 l1 x2 l2 xq: exemplar i at position 2i, its label at 2i + 1,
    the query at the last position.

    strength[h] = mean over b of ( pattern[b, h, query, label of the right pair]
                                   - pattern[b, h, query, label of the other pair] )
    A perfect induction head scores 1, a head that ignores the labels 0, a head that
    always picks the wrong label -1. It is a difference of attentions, not an attention.
    """,
    output_names=("strength",),
    output_axes=(("head",),),
    hint="the right label of sequence b sits at position 2 * batch.query_pair[b] + 1",
    wrong_answers=(
        ("only the attention on the right label",
         lambda cache, batch, layer: cache["pattern", layer][
             np.arange(len(batch.query_pair)), :, -1, 2 * np.asarray(batch.query_pair) + 1].mean(axis=0)),
        ("always takes pair 0 as the right one",
         lambda cache, batch, layer: (cache["pattern", layer][:, :, -1, 1]
                                      - cache["pattern", layer][:, :, -1, 3]).mean(axis=0)),
    ),
))


def _previous_cases(rng):
    model_config, params, batch = _small_model_and_batch()
    plain = run_with_cache(params, model_config, batch)
    clamped = run_with_cache(params, model_config, batch,
                             [previous_token_pattern(0, 0, 1.0), previous_token_pattern(0, 1, 0.3)])
    cases = []
    for description, cache, layer in (
            ("random network, layer 0", plain, 0), ("random network, layer 1", plain, 1),
            ("layer 0 clamped: head 0 an ideal previous-token head, head 1 strength 0.3", clamped, 0)):
        cases.append(Case(description, (cache, layer), label_previous_token_score(cache, layer),
                          REFERENCE_PREVIOUS, rtol=1e-6, atol=1e-9))
    return cases


register(Exercise(
    name="label_previous_token_score",
    lesson="02",
    solution=label_previous_token_score,
    make_cases=_previous_cases,
    task="""
    How much each label token attends to its own exemplar, per head -> [H].

    cache: a forward cache; cache["pattern", layer] is [B, H, Tq, Tk]. layer: int.
    With C context pairs the label tokens sit at positions 1, 3, ..., 2C - 1 and
    each one's exemplar just before it.

    score[h] = mean over b and over the C label positions i of pattern[b, h, i, i - 1]
    This is the part of previous-token attention the induction circuit needs: the
    label token must read its exemplar, so that the query can find it later.
    """,
    output_names=("score",),
    output_axes=(("head",),),
    hint="the label positions are 2 * np.arange(C) + 1 with C = (T - 1) // 2",
    wrong_answers=(
        ("every position's previous token, not only the labels'", previous_token_score),
        ("the label's attention to itself",
         lambda cache, layer: cache["pattern", layer][:, :, [1, 3], [1, 3]].mean(axis=(0, 2))),
    ),
))
