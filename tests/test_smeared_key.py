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


# ---------------------------------------------------------------- the whole model with a smeared key

from test_model_gradients import Setup, check_activation_grads, check_param_grads, setups  # noqa: E402

from tinyinduction.config import ModelConfig  # noqa: E402
from tinyinduction.model import TokenBatch, hook_names, init_params, run_with_cache  # noqa: E402


def smeared(setup):
    """The same drawn model and batch with a smeared key and non-trivial alphas."""
    config = setup.config.replace(smeared_key=True)
    params = dict(setup.params)
    for layer in range(config.n_layers):
        params[f"blocks.{layer}.attn.smear_alpha"] = setup.rng.normal(0.0, 1.5, config.n_heads)
    return Setup(config, params, setup.batch, setup.rng)


@given(setup=setups(max_layers=2).map(smeared))
def test_model_gradients_with_smeared_key_match_finite_differences(setup):
    check_param_grads(setup)        # smear_alpha included (its gradient can be ~0 for T = 2)
    check_activation_grads(setup)


def test_smeared_key_config_params_and_cache():
    config = ModelConfig(n_layers=2, n_heads=3, d_model=8, d_head=4, input_kind="tokens",
                         d_vocab=7, n_ctx=6, smeared_key=True, dtype="float64")
    params = init_params(config, 0)
    assert params["blocks.1.attn.smear_alpha"].shape == (3,)
    assert np.all(params["blocks.0.attn.smear_alpha"] == 0.0)          # sigmoid(0) = 1/2 at start
    batch = TokenBatch(np.arange(12).reshape(2, 6) % 7, np.ones((2, 6), np.int64))
    cache = run_with_cache(params, config, batch)
    assert "blocks.0.attn.hook_smeared_k" in hook_names(config)
    rot_k, smeared_k = cache["blocks.0.attn.hook_rot_k"], cache["blocks.0.attn.hook_smeared_k"]
    np.testing.assert_allclose(smeared_k[:, 1:], 0.5 * rot_k[:, 1:] + 0.5 * rot_k[:, :-1])
    assert "blocks.0.attn.hook_smeared_k" not in hook_names(config.replace(smeared_key=False))
    with pytest.raises(ValueError, match="smeared_key"):
        config.replace(smeared_key="yes")


def test_training_path_equals_the_cached_path_with_a_smeared_key():
    from tinyinduction.model import loss_and_grads, training_loss_and_grads
    config = ModelConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, input_kind="tokens", d_vocab=9,
                         n_ctx=7, smeared_key=True, dtype="float64")
    rng = np.random.default_rng(0)
    params = {k: v + rng.normal(0, 0.3, v.shape) for k, v in init_params(config, 1).items()}
    batch = TokenBatch(rng.integers(0, 9, (3, 7)), rng.integers(0, 9, (3, 7)))
    loss, acc, grads, _ = loss_and_grads(params, config, batch)
    fast_loss, fast_acc, fast_grads = training_loss_and_grads(params, config, batch)
    assert fast_loss == pytest.approx(loss, rel=1e-12) and fast_acc == acc
    for name in grads:
        np.testing.assert_allclose(fast_grads[name], grads[name], rtol=1e-10, atol=1e-14)
    assert min(np.abs(grads[f"blocks.{l}.attn.smear_alpha"]).min() for l in range(2)) > 1e-6
