"""Olsson et al.'s measures on constructed patterns, losses and weight matrices with known scores."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction import text_measures as tm
from tinyinduction.clamp import Clamp
from tinyinduction.config import ModelConfig
from tinyinduction.model import TokenBatch, init_params, loss_and_grads
from tinyinduction.tasks.repeated import prefix_matching_tokens, repeated_tokens


def rows_to(targets):
    """[T, T] pattern: each row uniform over its True targets, or on position 0 if none."""
    pattern = targets.astype(float)
    pattern[~targets.any(axis=1), 0] = 1.0
    return pattern / pattern.sum(axis=1, keepdims=True)


def previous_token_rows(n):
    pattern = np.zeros((n, n))
    pattern[0, 0] = 1.0
    pattern[np.arange(1, n), np.arange(n - 1)] = 1.0
    return pattern


@given(n_random=st.integers(3, 8), n_repeats=st.integers(2, 4), strength=st.floats(0, 1))
def test_prefix_matching_of_an_ideal_head_is_its_strength(n_random, n_repeats, strength):
    # (n_random >= 3: with 2, "the token after the earlier copy" is also the previous token)
    targets = tm.prefix_matching_targets(n_random, n_repeats)
    n = targets.shape[0]
    mixed = strength * rows_to(targets) + (1 - strength) * previous_token_rows(n)
    pattern = np.stack([mixed, previous_token_rows(n)])[None].repeat(2, axis=0)   # [B=2, H=2, T, T]
    scores = tm.prefix_matching_from_pattern(pattern, n_random, n_repeats)
    assert scores[0] == pytest.approx(strength) and scores[1] == pytest.approx(0.0)


def test_prefix_matching_targets_by_hand():
    # [BOS] a b a b a b: queries in copies 2-3 attend to what followed earlier copies
    targets = tm.prefix_matching_targets(2, 3)
    expected = {3: [2], 4: [3], 5: [2, 4], 6: [3, 5]}
    for row in range(7):
        assert np.flatnonzero(targets[row]).tolist() == expected.get(row, [])


def test_prefix_matching_targets_match_the_token_layout():
    batch = prefix_matching_tokens(np.random.default_rng(0), 3, np.arange(2, 50), n_random=6, n_repeats=3)
    targets = tm.prefix_matching_targets(6, 3)
    for seq in batch.tokens:
        for query, key in zip(*np.nonzero(targets)):   # the key follows an earlier copy of the query token
            assert key - 1 < query and seq[key - 1] == seq[query]


@given(half=st.integers(3, 10), strength=st.floats(0, 1))
def test_induction_score_of_an_offset_diagonal(half, strength):
    n = 2 * half + 1
    induction = np.zeros((n, n))
    queries = np.arange(half + 1, n)
    induction[queries, queries - (half - 1)] = 1.0
    induction[: half + 1, 0] = 1.0
    pattern = (strength * induction + (1 - strength) * previous_token_rows(n))[None, None]
    assert tm.induction_from_pattern(pattern, half)[0] == pytest.approx(strength)
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    assert tm.induction_from_pattern(uniform[None, None], half)[0] == pytest.approx(
        np.mean(1.0 / (queries + 1)))


def test_previous_token_score_and_shape_errors():
    pattern = np.stack([previous_token_rows(5), np.eye(5)])[None]
    np.testing.assert_allclose(tm.previous_token_from_pattern(pattern), [1.0, 0.0])
    with pytest.raises(ValueError, match="expected"):
        tm.induction_from_pattern(pattern, 3)


def test_icl_positions_scale_the_papers_tokens():
    assert tm.icl_positions(512) == (49, 499)
    assert tm.icl_positions(64) == (5, 61)
    early, late = tm.icl_positions(8)
    assert 0 <= early < late <= 7
    losses = np.full((10, 64), 2.0)
    losses[:, 61], losses[:, 5] = 1.0, 3.0
    assert tm.icl_score(losses) == pytest.approx(-2.0)
    losses[:, 59:64], losses[:, 3:8] = 1.0, 3.0           # the +-2 bands around 61 and 5
    assert tm.icl_score(losses, band=2) == pytest.approx(-2.0)
    losses[:, 63] = 0.0                                     # inside the late band only
    assert tm.icl_score(losses, band=2) == pytest.approx(-2.2)
    assert tm.icl_score(losses, band=1) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="band"):
        tm.icl_score(losses, band=-1)
    rng = np.random.default_rng(0)
    noisy = rng.normal(2.0, 1.0, (400, 64))                # independent unit noise: sem = sqrt(2 / 400)
    assert tm.icl_score_sem(noisy) == pytest.approx(np.sqrt(2 / 400), rel=0.15)
    assert tm.icl_score_sem(noisy, band=2) == pytest.approx(np.sqrt(2 / 400 / 5), rel=0.15)


TINY = ModelConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, input_kind="tokens", d_vocab=11,
                   n_ctx=9, dtype="float64")


def test_per_position_losses_agree_with_the_training_loss():
    params = init_params(TINY, 0)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 11, (5, 9))
    targets[0, 3] = -1
    batch = TokenBatch(rng.integers(0, 11, (5, 9)), targets)
    losses = tm.per_position_losses(params, TINY, batch)
    assert np.isnan(losses[0, 3]) and np.isfinite(losses).sum() == 44
    assert np.nanmean(losses) == pytest.approx(loss_and_grads(params, TINY, batch)[0])
    pairs = tm.per_token_pairs(np.random.default_rng(1), 5, 9)
    np.testing.assert_array_equal(tm.per_token_losses(losses, pairs), losses[pairs[:, 0], pairs[:, 1]])


def test_ablation_through_clamps_changes_the_losses():
    params = init_params(TINY, 1)
    batch = repeated_tokens(np.random.default_rng(0), 4, 4, np.arange(2, 11))
    clean = tm.per_position_losses(params, TINY, batch)
    ablated = tm.per_position_losses(params, TINY, batch, [Clamp("blocks.1.attn.hook_result", 0.0)])
    assert not np.allclose(clean[:, :-1], ablated[:, :-1])


def copy_model(sign=1.0, rotate=False):
    """No LayerNorm, V = D = E: W_E = W_U = I and W_V W_O = sign * I (or a 90-degree rotation)."""
    config = ModelConfig(n_layers=1, n_heads=1, d_model=6, d_head=6, input_kind="tokens", d_vocab=6,
                         n_ctx=4, layernorm=False, dtype="float64")
    params = init_params(config, 0)
    params["embed.W_E"], params["unembed.W_U"] = np.eye(6), np.eye(6)
    ov = np.kron(np.eye(3), np.array([[0.0, 1.0], [-1.0, 0.0]])) if rotate else sign * np.eye(6)
    params["blocks.0.attn.W_V"], params["blocks.0.attn.W_O"] = np.eye(6)[None], ov[None]
    return params, config


def test_copying_scores_of_known_maps():
    for sign, expected in ((1.0, 1.0), (-1.0, -1.0)):
        params, config = copy_model(sign)
        ov = tm.ov_circuit(params, config, 0, 0)
        assert tm.copying_score_sample(ov, np.arange(6)) == pytest.approx(expected)
        assert tm.copying_score_weights(params, config, 0, 0) == pytest.approx(expected)
    params, config = copy_model(rotate=True)          # eigenvalues +-i: neither copies nor suppresses
    assert tm.copying_score_weights(params, config, 0, 0) == pytest.approx(0.0, abs=1e-12)
    scores = tm.copying_scores(params, config, np.arange(6))
    assert scores["sample"].shape == scores["weights"].shape == (1, 1)


def test_weight_copying_score_equals_the_full_eigendecomposition():
    config = TINY.replace(n_layers=1)
    params = init_params(config, 3)
    ov = tm.ov_circuit(params, config, 0, 1)                      # [V, V]
    eig = np.linalg.eigvals(ov)
    assert tm.copying_score_weights(params, config, 0, 1) == pytest.approx(eig.sum().real / np.abs(eig).sum())
    with pytest.raises(ValueError, match="L0H5"):
        tm.ov_circuit(params, config, 0, 5)


def test_whole_model_scores_read_the_clamped_heads():
    params = init_params(TINY.replace(n_ctx=13), 2)
    config = TINY.replace(n_ctx=13)
    rng = np.random.default_rng(0)
    prefix = prefix_matching_tokens(rng, 4, np.arange(2, 11), n_random=4, n_repeats=3)    # T = 13
    ideal = rows_to(tm.prefix_matching_targets(4, 3))
    clamp = Clamp("blocks.1.attn.hook_pattern", ideal, np.s_[:, 0])
    scores = tm.prefix_matching_scores(params, config, prefix, 4, [clamp])
    assert scores.shape == (2, 2) and scores[1, 0] == pytest.approx(1.0) and scores[0].max() < 0.9
    repeated = repeated_tokens(rng, 4, 6, np.arange(2, 11))                               # T = 13
    shifted = np.zeros((13, 13))
    shifted[np.arange(13), np.maximum(np.arange(13) - 5, 0)] = 1.0
    clamp = Clamp("blocks.0.attn.hook_pattern", shifted, np.s_[:, 1])
    assert tm.induction_scores(params, config, repeated, [clamp])[0, 1] == pytest.approx(1.0)
    prev = Clamp("blocks.1.attn.hook_pattern", previous_token_rows(13), np.s_[:, 1])
    assert tm.previous_token_scores(params, config, repeated, [prev])[1, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="1 \\+ copies"):
        tm.prefix_matching_scores(params, config, prefix, 5)
