"""Every primitive of tinyinduction.ops against central finite differences (float64).

For a primitive y = f(x, params) we draw random weights W of y's shape and check the
analytic backward of the scalar L = sum(W * y) (i.e. backward(dy = W)) against

    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2 h),      h = 1e-6,

on a random subset of coordinates of every input and parameter separately. Shapes and
seeds are drawn by hypothesis; values come from np.random.default_rng(seed).

Also: structural facts that finite differences cannot see (RoPE is a rotation by the
right angle, masked scores are -inf and pass no gradient, repeated embedding ids sum).
Every test runs twice (conftest.memory_order): with the attention arrays stored as they
are indexed, and stored heads outermost, as long sequences store them (ops.heads_outer).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction import ops

# every test twice: attention arrays stored feature-major and heads outermost (conftest.py)
pytestmark = pytest.mark.usefixtures("memory_order")

H_STEP = 1e-6
RTOL = 1e-6
ATOL = 3e-8          # absolute floor for round-off (~1e-16 |L| / h), scaled by |L| and |grad|

seeds = st.integers(0, 2**32 - 1)
small = st.integers(1, 4)


# ---------------------------------------------------------------- helpers


def numeric_grad(loss, x, coords, h=H_STEP):
    """Central differences of scalar loss() w.r.t. x at flat coordinates `coords`.

    `loss` reads x (which is perturbed in place and restored)."""
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so the perturbation reaches it"
    out = np.empty(len(coords))
    for n, i in enumerate(coords):
        old = flat[i]
        flat[i] = old + h
        plus = loss()
        flat[i] = old - h
        minus = loss()
        flat[i] = old
        out[n] = (plus - minus) / (2 * h)
    return out


def sample_coords(rng, x, n=12, allowed=None):
    """Up to n distinct flat indices of x (only where `allowed`, if given)."""
    candidates = np.flatnonzero(np.ones(x.shape, bool) if allowed is None else allowed)
    if len(candidates) == 0:
        return candidates
    return rng.choice(candidates, size=min(n, len(candidates)), replace=False)


def assert_grad_matches(analytic, loss, x, rng, n=12, allowed=None, what=""):
    """analytic: dL/dx (x's shape); loss: closure computing L from the current x."""
    assert analytic.shape == x.shape, f"{what}: gradient shape {analytic.shape} != {x.shape}"
    coords = sample_coords(rng, x, n, allowed)
    numeric = numeric_grad(loss, x, coords)
    got = analytic.reshape(-1)[coords]
    scale = max(1.0, abs(loss()), float(np.abs(numeric).max(initial=0.0)))
    err = np.abs(got - numeric)
    bad = err > RTOL * np.abs(numeric) + ATOL * scale
    assert not bad.any(), (
        f"{what}: analytic {got[bad]} vs finite differences {numeric[bad]} at flat "
        f"indices {coords[bad]} (max abs error {err.max():.3g})")


def weighted(y, w):
    """L = sum(w * y) as a float (the scalar every check differentiates)."""
    return float((w * y).sum())


# ---------------------------------------------------------------- linear


@given(seed=seeds, n_in=small, n_out=small, n_cols=st.integers(1, 6), bias=st.booleans())
def test_linear_grads(seed, n_in, n_out, n_cols, bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_in, n_cols))
    W = rng.standard_normal((n_in, n_out))
    b = rng.standard_normal(n_out) if bias else None
    y, saved = ops.linear_forward(x, W, b)
    assert y.shape == (n_out, n_cols)
    w = rng.standard_normal(y.shape)
    dx, dW, db = ops.linear_backward(w, saved)
    loss = lambda: weighted(ops.linear_forward(x, W, b)[0], w)
    assert_grad_matches(dx, loss, x, rng, what="linear dx")
    assert_grad_matches(dW, loss, W, rng, what="linear dW")
    if bias:
        assert_grad_matches(db, loss, b, rng, what="linear db")
    else:
        assert db is None
    dx_none, dW2, _ = ops.linear_backward(w, saved, need_input_grad=False)
    assert dx_none is None
    np.testing.assert_array_equal(dW2, dW)


def test_linear_forward_values():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])          # [I=2, M=2]
    W = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])  # [I=2, O=3]
    b = np.array([0.5, 0.0, 1.0])
    y, _ = ops.linear_forward(x, W, b)
    np.testing.assert_allclose(y, np.einsum("io,im->om", W, x) + b[:, None])


# ---------------------------------------------------------------- embedding


# small tables take a one-hot matmul, large ones (> ops.ONE_HOT_MAX_ROWS) np.bincount
table_rows = st.one_of(st.integers(1, 5), st.integers(ops.ONE_HOT_MAX_ROWS + 1, ops.ONE_HOT_MAX_ROWS + 4))


@given(seed=seeds, n_rows=table_rows, d=small, ids_shape=st.lists(st.integers(1, 4), min_size=1, max_size=2))
def test_embedding_grads(seed, n_rows, d, ids_shape):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, n_rows, ids_shape)        # few rows, many ids: repeats are common
    W = rng.standard_normal((n_rows, d))
    y, saved = ops.embedding_forward(ids, W)
    assert y.shape == (d, *ids_shape)
    np.testing.assert_array_equal(np.moveaxis(y, 0, -1), W[ids])
    w = rng.standard_normal(y.shape)
    dW = ops.embedding_backward(w, saved)
    loss = lambda: weighted(ops.embedding_forward(ids, W)[0], w)
    assert_grad_matches(dW, loss, W, rng, what="embedding dW")


@pytest.mark.parametrize("n_rows", [4, ops.ONE_HOT_MAX_ROWS + 1])
def test_embedding_repeated_ids_sum(n_rows):
    W = np.arange(3.0 * n_rows).reshape(n_rows, 3)  # [N, D=3]
    ids = np.array([[2, 2], [0, 2]])                # id 2 three times, id 1 and 3 never
    y, saved = ops.embedding_forward(ids, W)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dW = ops.embedding_backward(dy, saved)
    assert dW.shape == W.shape and dW.dtype == W.dtype
    np.testing.assert_allclose(dW[2], dy[:, 0, 0] + dy[:, 0, 1] + dy[:, 1, 1])
    np.testing.assert_allclose(dW[0], dy[:, 1, 0])
    np.testing.assert_array_equal(dW[1], 0.0)
    np.testing.assert_array_equal(dW[3:], 0.0)


# ---------------------------------------------------------------- layernorm


@given(seed=seeds, d=st.integers(2, 6), rest=st.lists(st.integers(1, 3), min_size=1, max_size=2))
def test_layernorm_grads(seed, d, rest):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((d, *rest)) * rng.uniform(0.3, 3.0) + rng.standard_normal()
    w = rng.standard_normal(d)
    b = rng.standard_normal(d)
    y, saved = ops.layernorm_forward(x, w, b)
    # forward against the textbook formula
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    expand = (slice(None),) + (None,) * len(rest)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * w[expand] + b[expand], rtol=1e-12)
    wt = rng.standard_normal(y.shape)
    dx, dw, db = ops.layernorm_backward(wt, saved)
    loss = lambda: weighted(ops.layernorm_forward(x, w, b)[0], wt)
    assert_grad_matches(dx, loss, x, rng, what="layernorm dx")
    assert_grad_matches(dw, loss, w, rng, what="layernorm dw")
    assert_grad_matches(db, loss, b, rng, what="layernorm db")


# ---------------------------------------------------------------- fused QKV


@given(seed=seeds, D=small, T=small, B=small, H=small, E=small)
def test_qkv_grads(seed, D, T, B, H, E):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((D, T, B))
    W_Q, W_K, W_V = (rng.standard_normal((H, D, E)) for _ in range(3))
    (q, k, v), saved = ops.qkv_forward(x, W_Q, W_K, W_V)
    for out, W in ((q, W_Q), (k, W_K), (v, W_V)):   # q[e, t, h, b] = sum_d x[d, t, b] W[h, d, e]
        np.testing.assert_allclose(out, np.einsum("dtb,hde->ethb", x, W), rtol=1e-12, atol=1e-12)
    wq, wk, wv = (rng.standard_normal(q.shape) for _ in range(3))
    grads = ops.qkv_backward(wq, wk, wv, saved)

    def loss():
        (q, k, v), _ = ops.qkv_forward(x, W_Q, W_K, W_V)
        return weighted(q, wq) + weighted(k, wk) + weighted(v, wv)

    for g, arr, what in zip(grads, (x, W_Q, W_K, W_V), ("dx", "dW_Q", "dW_K", "dW_V")):
        assert_grad_matches(g, loss, arr, rng, what="qkv " + what)


# ---------------------------------------------------------------- RoPE


even_heads = st.integers(1, 4).map(lambda n: 2 * n)


@given(seed=seeds, E=even_heads, T=st.integers(1, 6), H=small, B=small)
def test_rope_grads(seed, E, T, H, B):
    rng = np.random.default_rng(seed)
    cos, sin = ops.rope_tables(T, E, base=rng.uniform(2.0, 10000.0))
    x = rng.standard_normal((E, T, H, B))
    y, saved = ops.rope_forward(x, cos, sin)
    w = rng.standard_normal(y.shape)
    dx = ops.rope_backward(w, saved)
    loss = lambda: weighted(ops.rope_forward(x, cos, sin)[0], w)
    assert_grad_matches(dx, loss, x, rng, what="rope dx")


@given(seed=seeds, E=even_heads, T=st.integers(1, 6), H=small, B=small)
def test_rope_is_the_gpt_j_rotation(seed, E, T, H, B):
    """Pair (2i, 2i+1) is the complex number x[2i] + i x[2i+1] multiplied by
    exp(i t base^(-2i/E)); norms of pairs are kept; position 0 is the identity."""
    rng = np.random.default_rng(seed)
    base = 10000.0
    cos, sin = ops.rope_tables(T, E, base)
    x = rng.standard_normal((E, T, H, B))
    y, _ = ops.rope_forward(x, cos, sin)
    theta = np.arange(T)[None, :] * base ** (-np.arange(0, E, 2) / E)[:, None]    # [E/2, T]
    zx = x[0::2] + 1j * x[1::2]                                                   # [E/2, T, H, B]
    zy = zx * np.exp(1j * theta)[:, :, None, None]
    np.testing.assert_allclose(y[0::2], zy.real, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y[1::2], zy.imag, rtol=1e-12, atol=1e-12)
    pair_norm = lambda a: np.hypot(a[0::2], a[1::2])
    np.testing.assert_allclose(pair_norm(y), pair_norm(x), rtol=1e-12)
    np.testing.assert_array_equal(y[:, 0], x[:, 0])


@given(seed=seeds, E=even_heads, T=st.integers(2, 6), shift=st.integers(1, 3))
def test_rope_scores_depend_on_relative_position(seed, E, T, shift):
    """<rope(q)_i, rope(k)_j> depends only on i - j: shifting both by `shift` keeps it."""
    rng = np.random.default_rng(seed)
    cos, sin = ops.rope_tables(T + shift, E)
    q = rng.standard_normal((E, 1, 1, 1))
    k = rng.standard_normal((E, 1, 1, 1))
    rq, _ = ops.rope_forward(np.broadcast_to(q, (E, T + shift, 1, 1)), cos, sin)
    rk, _ = ops.rope_forward(np.broadcast_to(k, (E, T + shift, 1, 1)), cos, sin)
    dots = np.einsum("eiab,ejab->ij", rq, rk)
    np.testing.assert_allclose(dots[shift:, shift:], dots[:T, :T], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- attention scores


@given(seed=seeds, E=small, Tq=st.integers(1, 5), Tk=st.integers(1, 5), H=small, B=st.integers(1, 3),
       causal=st.booleans())
def test_attention_scores_grads(seed, E, Tq, Tk, H, B, causal):
    rng = np.random.default_rng(seed)
    if causal:
        mask = np.tril(np.ones((Tq, Tk), bool), k=Tk - Tq)
    else:
        mask = rng.random((Tq, Tk)) < 0.6
    q = rng.standard_normal((E, Tq, H, B))
    k = rng.standard_normal((E, Tk, H, B))
    scale = rng.uniform(0.2, 2.0)
    scores, saved = ops.attention_scores_forward(q, k, scale, mask)
    expected = np.einsum("eihb,ejhb->ijhb", q, k) * scale
    visible = np.broadcast_to(mask[:, :, None, None], scores.shape)
    np.testing.assert_allclose(scores[visible], expected[visible], rtol=1e-12, atol=1e-12)
    assert np.all(scores[~visible] == -np.inf)
    # weights everywhere, masked entries included: they must not reach q or k
    w = rng.standard_normal(scores.shape)
    dq, dk = ops.attention_scores_backward(w, saved)
    loss = lambda: float((w * np.where(visible, ops.attention_scores_forward(q, k, scale, mask)[0], 0.0)).sum())
    assert_grad_matches(dq, loss, q, rng, what="scores dq")
    assert_grad_matches(dk, loss, k, rng, what="scores dk")
    dq0, dk0 = ops.attention_scores_backward(np.where(visible, w, 0.0), saved)
    np.testing.assert_allclose(dq, dq0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dk, dk0, rtol=1e-12, atol=1e-15)


def test_masked_scores_pass_no_gradient():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((2, 3, 3, 1, 1))
    mask = np.tril(np.ones((3, 3), bool))
    _, saved = ops.attention_scores_forward(q, k, 1.0, mask)
    dscores = np.zeros((3, 3, 1, 1))
    dscores[0, 2] = 1.0                      # only a masked (future) entry has a gradient
    dq, dk = ops.attention_scores_backward(dscores, saved)
    np.testing.assert_array_equal(dq, 0.0)
    np.testing.assert_array_equal(dk, 0.0)


# ---------------------------------------------------------------- softmax


@given(seed=seeds, T=st.integers(1, 5), H=small, B=st.integers(1, 3), spread=st.floats(0.1, 10.0))
def test_softmax_grads(seed, T, H, B, spread):
    rng = np.random.default_rng(seed)
    mask = np.tril(np.ones((T, T), bool))[:, :, None, None]
    scores = np.where(mask, rng.standard_normal((T, T, H, B)) * spread, -np.inf)
    pattern, saved = ops.softmax_forward(scores)
    np.testing.assert_allclose(pattern.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(pattern[~np.broadcast_to(mask, pattern.shape)] == 0.0)
    e = np.exp(np.where(mask, scores, -np.inf))
    np.testing.assert_allclose(pattern, e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-300)
    w = rng.standard_normal(pattern.shape)
    dscores = ops.softmax_backward(w, saved)
    loss = lambda: weighted(ops.softmax_forward(scores)[0], w)
    finite = np.isfinite(scores)           # -inf entries cannot be perturbed
    assert_grad_matches(dscores, loss, scores, rng, allowed=finite, what="softmax dscores")
    assert np.all(dscores[~finite] == 0.0)


# ---------------------------------------------------------------- weighted sum of values


@given(seed=seeds, E=small, Tq=st.integers(1, 5), Tk=st.integers(1, 5), H=small, B=st.integers(1, 3))
def test_weighted_sum_grads(seed, E, Tq, Tk, H, B):
    rng = np.random.default_rng(seed)
    pattern = rng.random((Tq, Tk, H, B))   # any array: the primitive does not need a softmax
    v = rng.standard_normal((E, Tk, H, B))
    z, saved = ops.weighted_sum_forward(pattern, v)
    np.testing.assert_allclose(z, np.einsum("ijhb,ejhb->eihb", pattern, v), rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(z.shape)
    dpattern, dv = ops.weighted_sum_backward(w, saved)
    loss = lambda: weighted(ops.weighted_sum_forward(pattern, v)[0], w)
    assert_grad_matches(dpattern, loss, pattern, rng, what="weighted_sum dpattern")
    assert_grad_matches(dv, loss, v, rng, what="weighted_sum dv")


# ---------------------------------------------------------------- per-head result


@given(seed=seeds, E=small, T=small, H=small, B=small, D=small)
def test_head_result_grads(seed, E, T, H, B, D):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((E, T, H, B))
    W_O = rng.standard_normal((H, E, D))
    result, saved = ops.head_result_forward(z, W_O)
    np.testing.assert_allclose(result, np.einsum("ethb,hed->hdtb", z, W_O), rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(result.shape)
    dz, dW_O = ops.head_result_backward(w, saved)
    loss = lambda: weighted(ops.head_result_forward(z, W_O)[0], w)
    assert_grad_matches(dz, loss, z, rng, what="head_result dz")
    assert_grad_matches(dW_O, loss, W_O, rng, what="head_result dW_O")
    # every head receiving the same gradient (attn_out = sum of results): the fused path
    d_attn_out = rng.standard_normal(result.shape[1:])
    dz_shared, dW_O_shared = ops.head_result_backward_shared(d_attn_out, saved)
    dz_full, dW_O_full = ops.head_result_backward(np.broadcast_to(d_attn_out, result.shape), saved)
    np.testing.assert_allclose(dz_shared, dz_full, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW_O_shared, dW_O_full, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- cross-entropy


@given(seed=seeds, V=st.integers(2, 6), M=st.integers(1, 6), spread=st.floats(0.1, 10.0))
def test_cross_entropy_grads(seed, V, M, spread):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((V, M)) * spread
    targets = rng.integers(0, V, M)
    loss_value, correct, saved = ops.cross_entropy_forward(logits, targets)
    log_p = logits - np.log(np.exp(logits).sum(axis=0))
    np.testing.assert_allclose(loss_value, -log_p[targets, np.arange(M)].mean(), rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(correct, logits.argmax(axis=0) == targets)   # no ties here
    dlogits = ops.cross_entropy_backward(saved)
    loss = lambda: ops.cross_entropy_forward(logits, targets)[0]
    assert_grad_matches(dlogits, loss, logits, rng, what="cross_entropy dlogits")
    np.testing.assert_allclose(dlogits.sum(axis=0), 0.0, atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0], [0.0, 0.0]])
    loss, correct, saved = ops.cross_entropy_forward(logits, np.array([0, 1]))
    assert np.isfinite(loss) and list(correct) == [True, True]
    assert np.all(np.isfinite(ops.cross_entropy_backward(saved)))


# ---------------------------------------------------------------- purity


def test_primitives_do_not_write_into_their_arguments():
    rng = np.random.default_rng(3)
    E, T, H, B, D = 2, 3, 2, 2, 4
    arrays = dict(x=rng.standard_normal((D, T, B)), W=rng.standard_normal((H, D, E)),
                  q=rng.standard_normal((E, T, H, B)), W_O=rng.standard_normal((H, E, D)))
    for a in arrays.values():
        a.flags.writeable = False          # any in-place write raises
    (q, k, v), s_qkv = ops.qkv_forward(arrays["x"], arrays["W"], arrays["W"], arrays["W"])
    cos, sin = ops.rope_tables(T, E)
    rq, s_rope = ops.rope_forward(arrays["q"], cos, sin)
    scores, s_scores = ops.attention_scores_forward(arrays["q"], arrays["q"], 0.5, np.tril(np.ones((T, T), bool)))
    pattern, s_soft = ops.softmax_forward(scores)
    z, s_mix = ops.weighted_sum_forward(pattern, arrays["q"])
    result, s_res = ops.head_result_forward(z, arrays["W_O"])
    ln, s_ln = ops.layernorm_forward(arrays["x"], np.ones(D), np.zeros(D))
    dy = np.ones((E, T, H, B))
    dy.flags.writeable = False
    ops.qkv_backward(dy, dy, dy, s_qkv)
    ops.rope_backward(dy, s_rope)
    ops.weighted_sum_backward(dy, s_mix)
    ops.head_result_backward(np.ones(result.shape), s_res)
    ops.layernorm_backward(np.ones(ln.shape), s_ln)
    ops.softmax_backward(np.ones(pattern.shape), s_soft)
    ops.attention_scores_backward(np.ones(scores.shape), s_scores)
