"""Lesson 02's exercises: the two progress measures read off a forward cache.

Right answers: the package's measures.induction_strength and
measures.label_previous_token_score, on caches of a small random network and on caches
whose patterns were clamped to known shapes (a perfect induction head scores 1).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..clamp import Clamp, previous_token_pattern
from ..presets import preset
from ..measures import induction_strength, label_previous_token_score, previous_token_score
from ..model import init_params, run_with_cache
from ..tasks.fewshot import FewShotTask
from .core import Case, Exercise, Mistake, register

REFERENCE_STRENGTH = "the package's measures.induction_strength"
REFERENCE_PREVIOUS = "the package's measures.label_previous_token_score"


@functools.lru_cache(maxsize=4)
def _model_and_batch(n_pairs=2, n_heads=2, n_batch=16):
    """A small random network (2 layers x n_heads) and n_batch few-shot sequences of
    n_pairs context pairs (T = 2 n_pairs + 1)."""
    model_config, task_config, _ = preset("small")
    model_config = model_config.replace(n_heads=n_heads)
    if n_pairs != task_config.n_context_pairs:
        task_config = dataclasses.replace(task_config, n_context_pairs=n_pairs,
                                          n_labels=max(task_config.n_labels, n_pairs + 2))
    params = init_params(model_config, seed=3)
    batch = FewShotTask(task_config).sample(np.random.default_rng(4 + n_pairs), n_batch)
    return model_config, params, batch


def _sizes(model_config, batch):
    n_batch, n_pairs = np.asarray(batch.labels).shape
    return {"C": n_pairs, "T": 2 * n_pairs + 1, "B": n_batch, "H": model_config.n_heads}


def _size_text(sizes):
    return f"C={sizes['C']} pairs (T={sizes['T']}), B={sizes['B']}, H={sizes['H']}"


def _query_row_clamp(layer, head, weight_on_right_label):
    """Clamp one head's query row: weight w on the right label, 1 - w shared by the others."""
    def value(batch, cache):
        n_batch, n_pairs = np.asarray(batch.labels).shape
        n_positions = 2 * n_pairs + 1
        pattern = np.tile(np.eye(n_positions), (n_batch, 1, 1, 1))      # [B, 1, T, T]
        pattern[:, 0, -1, :] = 0.0
        pattern[:, 0, -1, 1:-1:2] = (1.0 - weight_on_right_label) / (n_pairs - 1)
        right = 2 * np.asarray(batch.query_pair) + 1                      # [B]
        pattern[np.arange(n_batch), 0, -1, right] = weight_on_right_label
        return pattern
    return Clamp(f"blocks.{layer}.attn.hook_pattern", value, np.s_[:, head])


def _strength_cases(rng):
    cases = []
    for n_pairs, n_heads, n_batch in ((2, 2, 16), (2, 3, 10), (3, 2, 16)):
        model_config, params, batch = _model_and_batch(n_pairs, n_heads, n_batch)
        sizes = _sizes(model_config, batch)
        plain = run_with_cache(params, model_config, batch)
        clamped = run_with_cache(params, model_config, batch,
                                 [_query_row_clamp(1, 0, 1.0), _query_row_clamp(1, 1, 0.0)])
        half = run_with_cache(params, model_config, batch,
                              [_query_row_clamp(1, 0, 0.5), _query_row_clamp(1, 1, 0.8)])
        for description, cache, layer in (
                ("random network, layer 1", plain, 1), ("random network, layer 0", plain, 0),
                ("layer 1, head 0 a perfect induction head, head 1 always on the wrong label(s)",
                 clamped, 1),
                ("layer 1, head 0 split 50/50 between the right label and the others, head 1 80/20",
                 half, 1)):
            cases.append(Case(f"{_size_text(sizes)}: {description}", (cache, batch, layer),
                              induction_strength(cache, batch, layer), REFERENCE_STRENGTH,
                              rtol=1e-6, atol=1e-9, sizes=sizes))
    return cases


def _strength_hard_coded(cache, batch, layer):
    """Mistake: the labels of C = 2 pairs written out (positions 1 and 3)."""
    pattern = cache["pattern", layer]
    right = np.where(np.asarray(batch.query_pair) == 0, 1, 3)
    rows = np.arange(pattern.shape[0])
    return (pattern[rows, :, -1, right] - pattern[rows, :, -1, 4 - right]).mean(axis=0)


def _strength_on_exemplars(cache, batch, layer):
    """Mistake: off by one, the exemplar positions 2c instead of the labels 2c + 1."""
    pattern = cache["pattern", layer]
    n_pairs = (pattern.shape[-1] - 1) // 2
    on = pattern[:, :, -1, 2 * np.arange(n_pairs)]                      # [B, H, C]
    rows = np.arange(pattern.shape[0])
    right = on[rows, :, np.asarray(batch.query_pair)]
    return (right - (on.sum(-1) - right) / (n_pairs - 1)).mean(axis=0)


def _strength_sum_of_others(cache, batch, layer):
    """Mistake: subtracts the sum over the other labels, not their mean."""
    pattern = cache["pattern", layer]
    n_pairs = (pattern.shape[-1] - 1) // 2
    on = pattern[:, :, -1, 2 * np.arange(n_pairs) + 1]
    rows = np.arange(pattern.shape[0])
    right = on[rows, :, np.asarray(batch.query_pair)]
    return (right - (on.sum(-1) - right)).mean(axis=0)


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
    A sequence is x1 l1 x2 l2 ... xC lC xq: exemplar c (0-based) at position 2c, its
    label at 2c + 1, the query at the last position; T = 2C + 1.

    strength[h] = mean over b of ( pattern[b, h, query, label of the right pair]
                                   - mean over the other pairs c of pattern[b, h, query, label of c] )
    With the paper's C = 2 pairs there is one other label. A perfect induction head
    scores 1, a head that ignores the labels 0, a head that always picks a wrong label
    -1. It is a difference of attentions, not an attention. Write it for any C.
    """,
    output_names=("strength",),
    output_axes=(("head",),),
    hint="the right label of sequence b sits at position 2 * batch.query_pair[b] + 1",
    wrong_answers=(
        Mistake("only the attention on the right label, nothing subtracted",
                lambda cache, batch, layer: cache["pattern", layer][
                    np.arange(len(batch.query_pair)), :, -1, 2 * np.asarray(batch.query_pair) + 1].mean(axis=0)),
        Mistake("always takes pair 0 as the right one",
                lambda cache, batch, layer: (cache["pattern", layer][:, :, -1, 1]
                                             - cache["pattern", layer][:, :, -1, 3]).mean(axis=0)),
        Mistake("the label positions of C = 2 pairs hard-coded (1 and 3)", _strength_hard_coded,
                named_by="only work for C = 2"),
        Mistake("off by one: the exemplars (2c) instead of their labels (2c + 1)", _strength_on_exemplars),
        Mistake("subtracts the sum over the other labels, not their mean", _strength_sum_of_others),
        Mistake("opposite sign (wrong label minus right label)",
                lambda cache, batch, layer: -induction_strength(cache, batch, layer),
                named_by="opposite sign"),
    ),
))


def _graded_previous_token(layer, head, n_positions):
    """Clamp: row i puts i / T on position i - 1 and the rest on itself (a different
    weight on every row, so that leaving out a label row changes the mean)."""
    weight = np.arange(n_positions) / n_positions
    pattern = np.diag(1.0 - weight) + np.diag(weight[1:], k=-1)
    return Clamp(f"blocks.{layer}.attn.hook_pattern", pattern, np.s_[:, head])


def _previous_cases(rng):
    cases = []
    for n_pairs, n_heads, n_batch in ((2, 2, 16), (2, 3, 10), (3, 2, 16)):
        model_config, params, batch = _model_and_batch(n_pairs, n_heads, n_batch)
        sizes = _sizes(model_config, batch)
        plain = run_with_cache(params, model_config, batch)
        clamped = run_with_cache(params, model_config, batch,
                                 [previous_token_pattern(0, 0, 1.0), _graded_previous_token(0, 1, sizes["T"])])
        for description, cache, layer in (
                ("random network, layer 0", plain, 0), ("random network, layer 1", plain, 1),
                ("layer 0 clamped: head 0 an ideal previous-token head, head 1 puts i / T on "
                 "the token before position i", clamped, 0)):
            cases.append(Case(f"{_size_text(sizes)}: {description}", (cache, layer),
                              label_previous_token_score(cache, layer), REFERENCE_PREVIOUS,
                              rtol=1e-6, atol=1e-9, sizes=sizes))
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
        Mistake("every position's previous token, not only the labels'", previous_token_score),
        Mistake("off by one: the label's attention to itself (pattern[i, i])",
                lambda cache, layer: (lambda p, i: p[:, :, i, i].mean(axis=(0, 2)))(
                    cache["pattern", layer], np.arange(1, cache["pattern", layer].shape[-1] - 1, 2))),
        Mistake("the positions of C = 2 pairs hard-coded: pattern[:, :, [1, 3], [0, 2]]",
                lambda cache, layer: cache["pattern", layer][:, :, [1, 3], [0, 2]].mean(axis=(0, 2)),
                named_by="only work for C = 2"),
        Mistake("the exemplars' attention to the token before them (rows 2c, not 2c + 1)",
                lambda cache, layer: (lambda p, i: p[:, :, i, i - 1].mean(axis=(0, 2)))(
                    cache["pattern", layer], np.arange(2, cache["pattern", layer].shape[-1] - 1, 2))),
        Mistake("query and key axes swapped: pattern[i - 1, i]",
                lambda cache, layer: (lambda p, i: p[:, :, i - 1, i].mean(axis=(0, 2)))(
                    cache["pattern", layer], np.arange(1, cache["pattern", layer].shape[-1] - 1, 2))),
    ),
))
