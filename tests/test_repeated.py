"""Repeated random tokens and Olsson's prefix-matching input: layout, distinctness, candidates."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction.tasks.repeated import (fitting_prefix_length, prefix_matching_candidates,
                                          prefix_matching_tokens, repeated_tokens)


@given(seed=st.integers(0, 10**6), half=st.integers(2, 20), n_batch=st.integers(1, 5))
def test_repeated_tokens_layout(seed, half, n_batch):
    candidates = np.arange(2, 40)
    batch = repeated_tokens(np.random.default_rng(seed), n_batch, half, candidates, bos=0)
    tokens, targets = batch.tokens, batch.targets
    assert tokens.shape == targets.shape == (n_batch, 2 * half + 1)
    assert np.all(tokens[:, 0] == 0)
    np.testing.assert_array_equal(tokens[:, 1:half + 1], tokens[:, half + 1:])      # r r
    assert np.isin(tokens[:, 1:], candidates).all()
    assert all(len(set(row)) == half for row in tokens[:, 1:half + 1])               # distinct
    np.testing.assert_array_equal(targets[:, :-1], tokens[:, 1:])
    assert np.all(targets[:, -1] == -1)


def test_prefix_matching_tokens_layout_and_seed():
    candidates = np.arange(5, 60)
    a = prefix_matching_tokens(np.random.default_rng(1), 3, candidates, n_random=25, n_repeats=4)
    b = prefix_matching_tokens(np.random.default_rng(1), 3, candidates, n_random=25, n_repeats=4)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.tokens.shape == (3, 101)
    first = a.tokens[:, 1:26]
    for copy in range(1, 4):   # copy c of token m sits at 1 + 25 c + m
        np.testing.assert_array_equal(a.tokens[:, 1 + 25 * copy:26 + 25 * copy], first)


def test_few_candidates_are_drawn_with_replacement():
    batch = prefix_matching_tokens(np.random.default_rng(0), 2, [3, 4], n_random=6, n_repeats=2)
    assert np.isin(batch.tokens[:, 1:], [3, 4]).all()


def test_candidates_drop_special_most_and_least_common():
    counts = np.array([1000, 5, 900, 800, 700, 600, 500, 400, 300, 200, 100, 50])   # ids 0..11
    kept = prefix_matching_candidates(counts, exclude_fraction=0.1, special=(0, 1))
    assert kept.tolist() == [3, 4, 5, 6, 7, 8, 9, 10]    # 10 ordinary ids: drop id 2 (top), id 11 (bottom)
    with pytest.raises(ValueError, match="exclude_fraction"):
        prefix_matching_candidates(counts, exclude_fraction=0.5)


def test_fitting_prefix_length_and_bad_sizes():
    assert fitting_prefix_length(512) == 25 and fitting_prefix_length(64) == 15
    assert 1 + 4 * fitting_prefix_length(64) <= 64
    with pytest.raises(ValueError, match="half_length"):
        repeated_tokens(np.random.default_rng(0), 2, 1, np.arange(10))
    with pytest.raises(ValueError, match="n_batch"):
        prefix_matching_tokens(np.random.default_rng(0), 0, np.arange(10))
