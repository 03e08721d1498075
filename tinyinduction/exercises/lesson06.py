"""Lesson 06's exercise: Olsson et al.'s prefix-matching score from attention patterns.

Right answer: the package's text_measures.prefix_matching_from_pattern, on patterns built
to have known scores (an ideal prefix-matching head scores 1, a previous-token head 0,
a mixture its share) and on random causal patterns.
"""
from __future__ import annotations

import numpy as np

from ..text_measures import prefix_matching_from_pattern, prefix_matching_targets
from .core import Case, Exercise, Mistake, register


def _rows_to(targets):
    """[T, T]: each row uniform over its True entries, or on position 0 if it has none."""
    pattern = targets.astype(float)
    pattern[~targets.any(axis=1), 0] = 1.0
    return pattern / pattern.sum(axis=1, keepdims=True)


def _previous_token(n):
    pattern = np.zeros((n, n))
    pattern[0, 0] = 1.0
    pattern[np.arange(1, n), np.arange(n - 1)] = 1.0
    return pattern


def _random_causal(rng, n_batch, n_heads, n):
    scores = rng.standard_normal((n_batch, n_heads, n, n))
    scores[..., ~np.tril(np.ones((n, n), bool))] = -np.inf
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _cases(rng):
    cases = []
    for n_random, n_repeats, strength in ((5, 4, 1.0), (3, 3, 0.6), (6, 2, 0.25)):
        targets = prefix_matching_targets(n_random, n_repeats)
        n = targets.shape[0]
        mixed = strength * _rows_to(targets) + (1 - strength) * _previous_token(n)
        pattern = np.stack([mixed, _previous_token(n)])[None].repeat(2, axis=0)   # [B=2, H=2, T, T]
        cases.append(Case(f"L={n_random} tokens x {n_repeats} copies; head 0 puts {strength} on the "
                          "prefix-matching targets, head 1 is a previous-token head",
                          (pattern, n_random, n_repeats), prefix_matching_from_pattern(pattern, n_random, n_repeats),
                          "the package's text_measures.prefix_matching_from_pattern"))
    pattern = _random_causal(rng, 3, 4, 1 + 4 * 3)
    cases.append(Case("random causal patterns, B=3, H=4, L=4 tokens x 3 copies", (pattern, 4, 3),
                      prefix_matching_from_pattern(pattern, 4, 3),
                      "the package's text_measures.prefix_matching_from_pattern"))
    return cases


def _all_queries(pattern, n_random, n_repeats):
    """Mistake: averages over every query row, the first copy and BOS included."""
    targets = prefix_matching_targets(n_random, n_repeats)
    return (np.asarray(pattern) * targets).sum(axis=-1).mean(axis=(0, 2))


def _the_copy_itself(pattern, n_random, n_repeats):
    """Mistake: attention to the earlier copies of the token, not to what followed them."""
    n = 1 + n_random * n_repeats
    targets = np.zeros((n, n), bool)
    for copy in range(1, n_repeats):
        for m in range(n_random):
            for earlier in range(copy):
                targets[1 + copy * n_random + m, 1 + earlier * n_random + m] = True
    queries = np.flatnonzero(targets.any(axis=1))
    return (np.asarray(pattern) * targets).sum(axis=-1)[:, :, queries].mean(axis=(0, 2))


def _latest_copy_only(pattern, n_random, n_repeats):
    """Mistake: only the token after the most recent earlier copy counts as a target."""
    n = 1 + n_random * n_repeats
    targets = np.zeros((n, n), bool)
    for copy in range(1, n_repeats):
        for m in range(n_random):
            targets[1 + copy * n_random + m, 1 + (copy - 1) * n_random + m + 1] = True
    queries = np.flatnonzero(targets.any(axis=1))
    return (np.asarray(pattern) * targets).sum(axis=-1)[:, :, queries].mean(axis=(0, 2))


register(Exercise(
    name="prefix_matching_score",
    lesson="06",
    solution=prefix_matching_from_pattern,
    make_cases=_cases,
    task="""
    Olsson et al.'s prefix-matching score of every head -> [H].

    pattern [B, H, T, T] is the attention of one layer on sequences
        [BOS] r_0 ... r_{L-1} r_0 ... r_{L-1} ... (n_repeats copies of L = n_random tokens),
    so T = 1 + L * n_repeats and copy c (0-based) of token r_m sits at 1 + c L + m.

    For a query in copy c >= 1 at token r_m, the targets are the tokens that FOLLOWED the
    earlier copies of r_m: positions 1 + c' L + m + 1 for every c' < c. The query's score
    is its total attention on its targets; score[h] = mean over sequences and over the
    queries of copies 1 .. n_repeats - 1 (the first copy and BOS have no earlier copy).
    An ideal induction head scores 1; a previous-token head 0 (for L >= 3).
    """,
    output_names=("score",),
    output_axes=(("head",),),
    hint="build a [T, T] boolean target mask first; then (pattern * mask).sum(-1) per query",
    wrong_answers=(
        Mistake("averages over every query, including the first copy and BOS", _all_queries),
        Mistake("attends to the earlier copy itself rather than the token after it", _the_copy_itself),
        Mistake("counts only the token after the latest earlier copy, not after every earlier copy",
                _latest_copy_only),
    ),
))
