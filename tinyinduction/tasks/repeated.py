"""Synthetic probes for induction heads on token models.

repeated_tokens: ``[BOS] r r`` with r a sequence of uniform random tokens (Elhage et al.
    2021, Olsson et al. 2022): the second copy is predictable only by looking back at the
    first, and an induction head's query in the second half attends to the token after
    the first copy of its own token (offset -(L - 1)).
prefix_matching_tokens: Olsson et al.'s prefix-matching input, ``[BOS]`` then n_random
    random tokens repeated n_repeats times (paper: 25 tokens x 4 repeats, drawn from the
    vocabulary without its most and least common tokens).

Both return a model.TokenBatch (tokens [B, T], targets [B, T]: the next token, -1 at the
last position) and put the random tokens at known positions: ``first_position(i)`` etc.
are simple arithmetic, documented on each function. The random tokens of one sequence
are distinct (drawn without replacement) whenever the candidate set is large enough, so
"the earlier copy of the current token" is a single position.

Shapes: B sequences, L = n_random tokens per copy, T = 1 + L x copies.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..batches import TokenBatch


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} = {value!r} is invalid: must be an integer >= {low}")
    return int(value)


def _random_rows(rng, candidates, n_batch, n_random):
    """[B, L] tokens from `candidates`, distinct within a row when there are enough."""
    candidates = np.asarray(candidates, dtype=np.int64).reshape(-1)
    if candidates.size == 0:
        raise ValueError("candidate tokens: the set is empty")
    if candidates.size >= n_random:   # argsort of uniform keys = a random permutation per row
        keys = rng.random((n_batch, candidates.size))
        return candidates[np.argsort(keys, axis=1)[:, :n_random]]
    return candidates[rng.integers(0, candidates.size, size=(n_batch, n_random))]


def _repeat_batch(rows, n_copies, bos):
    """[BOS] rows rows ... as TokenBatch; targets = next token, -1 at the end."""
    n_batch = rows.shape[0]
    tokens = np.concatenate([np.full((n_batch, 1), bos, np.int64)] + [rows] * n_copies, axis=1)
    targets = np.concatenate([tokens[:, 1:], np.full((n_batch, 1), -1, np.int64)], axis=1)
    return TokenBatch(tokens, targets)


def repeated_tokens(rng: np.random.Generator, n_batch: int, half_length: int,
                    candidates, bos: int = 0) -> TokenBatch:
    """``[BOS] r r``, r = half_length tokens from `candidates`: tokens [B, 2L + 1].

    Positions: BOS at 0, first copy at 1..L, second copy at L+1..2L; token r_m sits at
    1 + m and L + 1 + m.
    """
    n_batch = _check_int("n_batch", n_batch, 1)
    half_length = _check_int("half_length", half_length, 2)
    return _repeat_batch(_random_rows(rng, candidates, n_batch, half_length), 2, bos)


def prefix_matching_candidates(counts, exclude_fraction: float = 0.1, special=(0, 1)) -> np.ndarray:
    """Token ids ranked by their training count, without the `special` ids (BOS, UNK),
    the most common `exclude_fraction` and the least common `exclude_fraction` of the
    rest (ties broken by id). Olsson et al. exclude "the most and least common tokens"
    without a share in our notes; 10% each way is our choice."""
    counts = np.asarray(counts)
    if not 0 <= exclude_fraction < 0.5:
        raise ValueError(f"exclude_fraction = {exclude_fraction!r} is invalid: must be in [0, 0.5)")
    ids = np.array([i for i in range(counts.size) if i not in set(special)], dtype=np.int64)
    ranked = ids[np.lexsort((ids, -counts[ids]))]                  # most common first
    n_drop = int(np.floor(exclude_fraction * ranked.size))
    kept = ranked[n_drop:ranked.size - n_drop]
    if kept.size == 0:
        raise ValueError("prefix_matching_candidates: no token left after the exclusions")
    return np.sort(kept)


def prefix_matching_tokens(rng: np.random.Generator, n_batch: int, candidates,
                           n_random: int = 25, n_repeats: int = 4, bos: int = 0) -> TokenBatch:
    """``[BOS]`` then n_random tokens repeated n_repeats times: tokens [B, 1 + L x R].

    Positions: copy c (0-based) of token r_m sits at 1 + c L + m.
    """
    n_batch = _check_int("n_batch", n_batch, 1)
    n_random = _check_int("n_random", n_random, 2)
    n_repeats = _check_int("n_repeats", n_repeats, 2)
    return _repeat_batch(_random_rows(rng, candidates, n_batch, n_random), n_repeats, bos)


def fitting_prefix_length(n_ctx: int, n_repeats: int = 4, paper_length: int = 25) -> int:
    """The paper's 25 random tokens, or fewer so that 1 + L x n_repeats fits n_ctx."""
    return max(2, min(paper_length, (n_ctx - 1) // n_repeats))
