"""The smeared key (Olsson et al. 2022): ops primitive against finite differences (float64,
hypothesis shapes), its defining identities, and the whole model with it."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction import ops

H_STEP = 1e-6
seeds = st.integers(0, 2**32 - 1)


def numeric_grad(loss, x, h=H_STEP):
    """Central differences of loss() w.r.t. every entry of x (perturbed in place)."""
    flat = x.reshape(-1)
    out = np.empty(flat.size)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = loss()
        flat[i] = old - h
        minus = loss()
        flat[i] = old
        out[i] = (plus - minus) / (2 * h)
    return out.reshape(x.shape)


@given(seed=seeds, e=st.integers(1, 3), t=st.integers(1, 5), h=st.integers(1, 3), b=st.integers(1, 3),
       alpha_scale=st.sampled_from([0.1, 1.0, 4.0]))
def test_smear_key_gradients_match_finite_differences(seed, e, t, h, b, alpha_scale):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((e, t, h, b))
    alpha = alpha_scale * rng.standard_normal(h)
    weights = rng.standard_normal((e, t, h, b))           # L = sum(weights * smeared)

    def loss():
        return float((weights * ops.smear_key_forward(k, alpha)[0]).sum())

    smeared, saved = ops.smear_key_forward(k, alpha)
    dk, dalpha = ops.smear_key_backward(weights, saved)
    np.testing.assert_allclose(dk, numeric_grad(loss, k), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dalpha, numeric_grad(loss, alpha), rtol=1e-6, atol=1e-7)


@given(seed=seeds, alpha=st.floats(-30, 30))
def test_smear_key_is_the_stated_mixture(seed, alpha):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((2, 4, 1, 3))
    smeared, _ = ops.smear_key_forward(k, np.array([alpha]))
    s = 1 / (1 + np.exp(-alpha))
    np.testing.assert_allclose(smeared[:, 0], k[:, 0])                       # first position unchanged
    np.testing.assert_allclose(smeared[:, 1:], s * k[:, 1:] + (1 - s) * k[:, :-1], atol=1e-12)


def test_smear_key_limits_and_purity():
    k = np.arange(24, dtype=np.float64).reshape(2, 4, 3, 1)
    frozen = k.copy()
    keep, _ = ops.smear_key_forward(k, np.full(3, 50.0))       # s -> 1: the key itself
    shift, _ = ops.smear_key_forward(k, np.full(3, -50.0))     # s -> 0: the previous key
    np.testing.assert_allclose(keep, k)
    np.testing.assert_allclose(shift[:, 1:], k[:, :-1])
    np.testing.assert_array_equal(k, frozen)                   # pure: input untouched
    assert ops.smear_key_forward(k.astype(np.float32), np.zeros(3))[0].dtype == np.float32
