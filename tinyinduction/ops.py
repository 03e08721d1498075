"""Paired forward/backward primitives (llm.c style), pure NumPy.

Every primitive is a pair:
    y, saved = thing_forward(inputs...)
    dinputs..., dparams... = thing_backward(dy, saved)
Both are pure: they never write into their arguments and return fresh arrays.
In each backward a comment restates the forward line being differentiated.

Dimension letters (used in every shape comment of the package):
    B batch, T positions (Tq queries, Tk keys), H heads, E d_head, D d_model,
    F exemplar feature dim, V outputs (logits), M any flattened "columns" axis.

Internal layout: feature-major, batch innermost.
    residual stream        [D, T, B]
    q, k, v, z             [E, T, H, B]
    scores, pattern        [Tq, Tk, H, B]
    per-head result        [H, D, T, B]
    logits                 [V, T, B]
Why: at this model's size (T = 5, E = 8) NumPy spends its time on per-call and
per-inner-loop overhead, not arithmetic. With the batch (and heads) innermost every
elementwise op and every attention einsum runs long contiguous inner loops, and
reductions over features run over an outer axis; that is several times faster than
256 batched 5x8 matmuls. The cache shows the same arrays as TransformerLens-shaped
views ([B, T, D], [B, H, Tq, Tk], ...).

Long sequences (T >= HEADS_OUTER_FROM, e.g. text windows of 64): the index order above
stays, but the attention arrays (q, k, v, z, scores, pattern) are *stored* heads
outermost, [H, B, T, E] and [H, B, Tq, Tk] in memory, so that each attention
contraction is one batched BLAS matmul of [T, E] and [Tq, Tk] matrices (at T = 64 ~10x
faster than the einsum, whose cost grows as T^2). The primitives that make these arrays
(qkv_forward, the attention contractions, head_result_backward) choose by T; every
other step is elementwise or a reshape and does not care. heads_outer(T) says which.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _mean_row(n, dtype):
    """[n] of 1/n: the row vector that averages over n features by a matrix product."""
    row = np.full(n, 1.0 / n, dtype=dtype)
    row.flags.writeable = False
    return row


# ---------------------------------------------------------------- memory order of attention arrays

HEADS_OUTER_FROM = 12   # positions; measured: at T = 9 einsum and matmul are even, at 16 matmul is 5x faster


def heads_outer(n_positions) -> bool:
    """Whether attention arrays of a T-position sequence are stored heads outermost
    ([H, B, T, E], [H, B, Tq, Tk] in memory; indexed [E, T, H, B], [Tq, Tk, H, B] as always)."""
    return n_positions >= HEADS_OUTER_FROM


def _head_matrices(x):
    """x [E, T, H, B] -> the view [H, B, T, E]: one [T, E] matrix per head and sequence
    (copied only if E is not the unit-stride axis, i.e. x was stored feature-major)."""
    m = x.transpose(2, 3, 1, 0)
    return m if m.strides[-1] == m.itemsize else np.ascontiguousarray(m)


def _pattern_matrices(p):
    """p [Tq, Tk, H, B] -> the view [H, B, Tq, Tk] (copied only if Tk is not the unit stride)."""
    m = p.transpose(2, 3, 0, 1)
    return m if m.strides[-1] == m.itemsize else np.ascontiguousarray(m)


def _as_head_vectors(m):
    """[H, B, T, E] in memory -> indexed [E, T, H, B] (a view)."""
    return m.transpose(3, 2, 0, 1)


def _as_patterns(m):
    """[H, B, Tq, Tk] in memory -> indexed [Tq, Tk, H, B] (a view)."""
    return m.transpose(2, 3, 0, 1)


# ---------------------------------------------------------------- linear


def linear_forward(x, W, b=None):
    """y = W^T x + b.  x [I, M], W [I, O], b [O] or None -> y [O, M]."""
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        # Speed: x is a transposed row-major array (the exemplar rows): multiplying the
        # rows, (x^T W)^T, takes BLAS's plain kernel (40 instead of 53 us at the paper's size)
        y = x.T @ W
        if b is not None:
            y += b
        y = y.T
    else:
        y = W.T @ x
        if b is not None:
            y += b[:, None]
    return y, (x, W, b is not None)


def linear_backward(dy, saved, need_input_grad=True):
    """dy [O, M] -> (dx [I, M] or None, dW [I, O], db [O] or None)."""
    x, W, has_bias = saved
    # y = W^T x + b
    dx = W @ dy if need_input_grad else None
    dW = x @ dy.T
    db = dy.sum(axis=1) if has_bias else None
    return dx, dW, db


# ---------------------------------------------------------------- embedding by id


def embedding_forward(ids, W):
    """Row lookup.  ids [...] int, W [N, D] -> y [D, ...] (feature-major)."""
    return W.T[:, ids], (ids, W.shape[0])


ONE_HOT_MAX_ROWS = 32   # tables up to this size: a one-hot matmul; larger ones: np.bincount


def embedding_backward(dy, saved):
    """dy [D, ...] -> dW [N, D]: the gradient rows of every id, summed where ids repeat.

    Small tables (the label embedding, N = 5): a one-hot [N, M] matmul. Large ones (a
    text vocabulary, N ~ 1000, where the one-hot matrix is N x M x D of work): one
    np.bincount over (id, feature) pairs, M x D of work (np.add.at does the same, 3x slower).
    """
    ids, n_rows = saved
    # y[:, m] = W[ids[m]]
    D = dy.shape[0]
    flat_ids = ids.reshape(-1)
    dy2 = dy.reshape(D, -1)                                                        # [D, M]
    if n_rows <= ONE_HOT_MAX_ROWS:
        one_hot = (np.arange(n_rows)[:, None] == flat_ids[None, :]).astype(dy.dtype)  # [N, M]
        return one_hot @ dy2.T
    slots = flat_ids[None, :] * D + np.arange(D)[:, None]          # [D, M]: where dy2 adds in dW
    dW = np.bincount(slots.reshape(-1), dy2.reshape(-1), minlength=n_rows * D)   # float64 sums
    return dW.reshape(n_rows, D).astype(dy.dtype, copy=False)


# ---------------------------------------------------------------- layernorm


def layernorm_forward(x, w, b, eps=1e-5):
    """LayerNorm over the feature axis 0.  x [D, ...], w [D], b [D] -> y [D, ...]."""
    D = x.shape[0]
    x2 = x.reshape(D, -1)                                   # [D, M]
    # Speed: means over features as a (1/D) row times x, a BLAS matrix-vector product
    # (~3x faster than np.add.reduce over axis 0); in place on arrays made here.
    mean_row = _mean_row(D, x2.dtype)                       # [D]
    centred = x2 - mean_row @ x2
    rstd = 1.0 / np.sqrt(mean_row @ (centred * centred) + eps)   # [M]
    xhat = centred
    xhat *= rstd
    y = xhat * w[:, None]
    y += b[:, None]
    return y.reshape(x.shape), (xhat, rstd, w)


def layernorm_backward(dy, saved):
    """dy [D, ...] -> (dx [D, ...], dw [D], db [D])."""
    xhat, rstd, w = saved                                   # xhat [D, M], rstd [M]
    D = dy.shape[0]
    dy2 = dy.reshape(D, -1)
    # y = xhat * w + b  (sums over M as one einsum / matrix-vector product: no temporary)
    dw = np.einsum("dm,dm->d", dy2, xhat)
    db = dy2 @ np.ones(dy2.shape[1], dtype=dy2.dtype)
    dxhat = dy2 * w[:, None]
    # xhat = (x - mean(x)) * rstd(x): the standard three-term formula
    #   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    mean_row = _mean_row(D, dy2.dtype)
    mean_dxhat_xhat = mean_row @ (dxhat * xhat)
    dx = dxhat
    dx -= mean_row @ dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd
    return dx.reshape(dy.shape), dw, db


# ---------------------------------------------------------------- fused Q, K, V projection


def qkv_forward(x, W_Q, W_K, W_V):
    """Queries, keys and values of every head in one matmul (no biases).

    x [D, T, B]; W_Q, W_K, W_V [H, D, E] -> qkv [3, E, T, H, B] (q, k, v = qkv), stored
    [3, E, T, H, B] for short sequences and [3, H, B, T, E] for long ones (heads_outer).
    """
    D, T, B = x.shape
    H, _, E = W_Q.shape
    by_head = heads_outer(T)
    # rows ordered (which, e, h) so that one transpose of the output puts T before H;
    # heads outer: (which, h, e), the order of the output's columns
    W_all = np.empty((3, H, E, D) if by_head else (3, E, H, D), dtype=W_Q.dtype)
    for i, W in enumerate((W_Q, W_K, W_V)):
        W_all[i] = W.transpose(0, 2, 1) if by_head else W.transpose(2, 0, 1)
    W_all = W_all.reshape(3 * E * H, D)
    x2 = x.reshape(D, T * B)
    if by_head:
        rows = (x2.T @ W_all.T).reshape(T, B, 3, H, E)                # [(t, b), (which, h, e)]
        qkv = np.ascontiguousarray(rows.transpose(2, 3, 1, 0, 4))      # [3, H, B, T, E]
        qkv = qkv.transpose(0, 4, 3, 1, 2)                              # indexed [3, E, T, H, B]
    else:
        qkv = (W_all @ x2).reshape(3, E, H, T, B)
        qkv = np.ascontiguousarray(qkv.transpose(0, 1, 3, 2, 4))       # [3, E, T, H, B]
    # one array (unpacks as q, k, v): q and k can then be rotated together, as qkv[:2]
    return qkv, (x, W_all, H)


def qkv_backward(dq, dk, dv, saved):
    """dq, dk, dv [E, T, H, B] -> (dx [D, T, B], dW_Q, dW_K, dW_V [H, D, E])."""
    x, W_all, H = saved
    D, T, B = x.shape
    E = dq.shape[0]
    x2 = x.reshape(D, T * B)
    # qkv = transpose(W_all @ x)
    if heads_outer(T):   # W_all's rows are (which, h, e): gather the gradient as [(t, b), (which, h, e)]
        d_rows = np.empty((T, B, 3, H, E), dtype=dq.dtype)
        for i, d in enumerate((dq, dk, dv)):
            d_rows[:, :, i] = d.transpose(1, 3, 2, 0)
        d_all = d_rows.reshape(T * B, 3 * H * E).T                      # [3HE, TB] (a view)
        dW_all = (d_all @ x2.T).reshape(3, H, E, D).transpose(0, 1, 3, 2)
    else:                # rows (which, e, h)
        d_all = np.empty((3, E, H, T, B), dtype=dq.dtype)
        for i, d in enumerate((dq, dk, dv)):
            d_all[i] = d.transpose(0, 2, 1, 3)
        d_all = d_all.reshape(3 * E * H, T * B)
        dW_all = (d_all @ x2.T).reshape(3, E, H, D).transpose(0, 2, 3, 1)
    dx = (W_all.T @ d_all).reshape(D, T, B)
    return dx, dW_all[0], dW_all[1], dW_all[2]


def qkv_query_rows_forward(x, W_Q, W_K, W_V, queries):
    """qkv_forward for a block whose output is read at some positions only: keys and
    values at every position, queries only at `queries` (a slice of positions).

    x [D, T, B]; W_Q, W_K, W_V [H, D, E] -> (q [E, Tq, H, B], k [E, T, H, B], v).
    Speed: the query third of the projection, and of its backward, on Tq of T positions
    (the few-shot loss reads the last block at the query only). Plain version:
    qkv_forward, then q[:, queries].
    """
    D, T, B = x.shape
    H, _, E = W_Q.shape
    x_rows = np.ascontiguousarray(x[:, queries])                          # [D, Tq, B]
    W_q = W_Q.transpose(2, 0, 1).reshape(E * H, D)                        # rows (e, h)
    W_kv = np.array((W_K, W_V)).transpose(0, 3, 1, 2).reshape(2 * E * H, D)
    kv = (W_kv @ x.reshape(D, T * B)).reshape(2, E, H, T, B)
    kv = np.ascontiguousarray(kv.transpose(0, 1, 3, 2, 4))               # [2, E, T, H, B]
    q = (W_q @ x_rows.reshape(D, -1)).reshape(E, H, -1, B)
    q = np.ascontiguousarray(q.transpose(0, 2, 1, 3))                     # [E, Tq, H, B]
    return (q, kv[0], kv[1]), (x, x_rows, W_q, W_kv, queries)


def qkv_query_rows_backward(dq, dk, dv, saved):
    """dq [E, Tq, H, B], dk, dv [E, T, H, B] -> (dx [D, T, B], dW_Q, dW_K, dW_V [H, D, E])."""
    x, x_rows, W_q, W_kv, queries = saved
    D, T, B = x.shape
    E, Tq, H, _ = dq.shape
    d_kv = np.empty((2, E, H, T, B), dtype=dk.dtype)
    for i, d in enumerate((dk, dv)):
        d_kv[i] = d.transpose(0, 2, 1, 3)
    d_kv = d_kv.reshape(2 * E * H, T * B)
    d_q = np.ascontiguousarray(dq.transpose(0, 2, 1, 3)).reshape(E * H, Tq * B)
    # kv = W_kv x (every position); q = W_q x (the query positions)
    dx = (W_kv.T @ d_kv).reshape(D, T, B)
    dx[:, queries] += (W_q.T @ d_q).reshape(D, Tq, B)
    dW_kv = (d_kv @ x.reshape(D, T * B).T).reshape(2, E, H, D).transpose(0, 2, 3, 1)
    dW_q = (d_q @ x_rows.reshape(D, Tq * B).T).reshape(E, H, D).transpose(1, 2, 0)
    return dx, dW_q, dW_kv[0], dW_kv[1]


# ---------------------------------------------------------------- rotary embeddings (GPT-J)


def rope_tables(n_positions, d_head, base=10000.0, dtype=np.float64):
    """cos, signed sin [E, T] for interleaved pairs (2i, 2i+1), angle t * base^(-2i/E)."""
    inv_freq = base ** (-np.arange(0, d_head, 2) / d_head)           # [E/2]
    angles = np.repeat(inv_freq, 2)[:, None] * np.arange(n_positions)[None, :]   # [E, T]
    signed_sin = np.sin(angles)
    signed_sin[0::2] *= -1.0      # out[2i] = x[2i] cos - x[2i+1] sin
    return np.cos(angles).astype(dtype), signed_sin.astype(dtype)


def _swap_pairs(x):
    """Swap elements 2i <-> 2i+1 along the d_head axis (axis -4 of [..., E, T, H, B])."""
    pairs = x.reshape(*x.shape[:-4], x.shape[-4] // 2, 2, *x.shape[-3:])
    return pairs[..., ::-1, :, :, :].reshape(x.shape)


def rope_forward(x, cos, signed_sin):
    """Rotate pairs of features by a position-dependent angle.

    x [..., E, T, H, B]; cos, signed_sin [E, T] -> y, same shape.
    """
    c, s = cos[:, :, None, None], signed_sin[:, :, None, None]
    return x * c + _swap_pairs(x) * s, (c, s)


def rope_backward(dy, saved):
    """dy [..., E, T, H, B] -> dx. The rotation is orthogonal, so this rotates back."""
    c, s = saved
    # y = c * x + s * swap(x), and swap is its own transpose
    return dy * c + _swap_pairs(dy * s)


def rope_matrices(cos, signed_sin):
    """The same rotation as one [E, E] matrix per position: R [T, E, E] with
    R[t] @ x[:, t] = x[:, t] cos[:, t] + swap(x[:, t]) signed_sin[:, t]."""
    E, T = cos.shape
    R = np.zeros((T, E, E), dtype=cos.dtype)
    rows = np.arange(E)
    R[:, rows, rows] = cos.T
    R[:, rows, rows ^ 1] = signed_sin.T      # row 2i reads 2i+1, row 2i+1 reads 2i
    return R


def _matmul_per_position(R, x):
    """y[..., :, t] = R[t] @ x[..., :, t] for x [..., E, T, H, B], R [T, E, E]."""
    E, T, H, B = x.shape[-4:]
    x3 = x.reshape(*x.shape[:-4], E, T, H * B)
    y3 = np.empty_like(x3, dtype=np.result_type(x, R))     # stored as x3 is (heads outer or not)
    # the T axis is the batch of the product: BLAS writes straight into y's layout
    np.matmul(R, np.swapaxes(x3, -2, -3), out=np.swapaxes(y3, -2, -3))
    return y3.reshape(x.shape)                              # splitting H * B: a view


def rope_matmul_forward(x, R):
    """rope_forward as one batched matmul: x [..., E, T, H, B] (queries and keys may be
    stacked in front), R [T, E, E] from rope_matrices -> y, same shape.

    Speed: one BLAS call over every position instead of four elementwise passes with a
    copy of the swapped pairs (5.5 us instead of 2 x 11 us for the paper's q and k).
    Plain version: rope_forward.
    """
    return _matmul_per_position(R, x), R


def rope_matmul_backward(dy, R):
    """dy [..., E, T, H, B] -> dx = R[t]^T dy[:, t] (plain version: rope_backward)."""
    return _matmul_per_position(R.transpose(0, 2, 1), dy)


# ---------------------------------------------------------------- attention


def _mask_terms(causal_mask, dtype):
    """[Tq, Tk, 1, 1] arrays: 0 where visible and -inf where not (added to the scores),
    and 1 / 0 (multiplies their gradient)."""
    visible = np.asarray(causal_mask)[:, :, None, None]
    return np.where(visible, 0.0, -np.inf).astype(dtype), visible.astype(dtype)


def attention_scores_forward(q, k, scale, causal_mask):
    """Scaled dot products, future keys set to -inf.

    q [E, Tq, H, B], k [E, Tk, H, B], causal_mask [Tq, Tk] bool (True = visible)
    -> scores [Tq, Tk, H, B].
    """
    # scores[i, j] = scale * sum_e q[e, i] k[e, j]
    if heads_outer(k.shape[1]):   # one [Tq, E] @ [E, Tk] product per head and sequence
        scores = _as_patterns(np.matmul(_head_matrices(q), _head_matrices(k).swapaxes(-1, -2)))
    else:
        scores = np.einsum("eihb,ejhb->ijhb", q, k)
    hidden, visible = _mask_terms(causal_mask, scores.dtype)
    scores *= scale
    scores += hidden          # (an addition: as fast in either memory order, unlike scores[~mask])
    return scores, (q, k, scale * visible)


def attention_scores_backward(dscores, saved):
    """dscores [Tq, Tk, H, B] -> d_qk: dq [E, Tq, H, B], dk [E, Tk, H, B] as a pair, or,
    when Tq == Tk, as one [2, E, T, H, B] array (RoPE's backward then takes both at once)."""
    q, k, scale_visible = saved
    # masked entries are constants (-inf): no gradient flows through them
    ds = dscores * scale_visible
    # scores[i, j] = scale * sum_e q[e, i] k[e, j]
    dtype = np.result_type(ds, q, k)
    if heads_outer(k.shape[1]):
        ds_m = _pattern_matrices(ds)                                       # [H, B, Tq, Tk]
        q_m, k_m = _head_matrices(q), _head_matrices(k)                    # [H, B, T, E]
        if q.shape != k.shape:
            return (_as_head_vectors(np.matmul(ds_m, k_m)),
                    _as_head_vectors(np.matmul(ds_m.swapaxes(-1, -2), q_m)))
        d_qk = np.empty((2,) + q_m.shape, dtype=dtype)                    # [2, H, B, T, E]
        np.matmul(ds_m, k_m, out=d_qk[0])                    # dq[i] = sum_j ds[i, j] k[j]
        np.matmul(ds_m.swapaxes(-1, -2), q_m, out=d_qk[1])   # dk[j] = sum_i ds[i, j] q[i]
        return d_qk.transpose(0, 4, 3, 1, 2)                               # [2, E, T, H, B]
    if q.shape == k.shape:
        d_qk = np.empty((2,) + q.shape, dtype=dtype)
        dq, dk = d_qk
    else:
        d_qk = dq, dk = np.empty(q.shape, dtype=dtype), np.empty(k.shape, dtype=dtype)
    np.einsum("ijhb,ejhb->eihb", ds, k, out=dq)   # dq[e, i] = sum_j ds[i, j] k[e, j]
    np.einsum("ijhb,eihb->ejhb", ds, q, out=dk)   # dk[e, j] = sum_i ds[i, j] q[e, i]
    return d_qk


def softmax_forward(scores):
    """Softmax over keys (axis 1).  scores [Tq, Tk, H, B] -> pattern [Tq, Tk, H, B]."""
    # in place on the one new array (np.maximum.reduce / np.add.reduce: no Python wrapper)
    pattern = scores - np.maximum.reduce(scores, axis=1, keepdims=True)
    np.exp(pattern, out=pattern)
    pattern /= np.add.reduce(pattern, axis=1, keepdims=True)
    return pattern, pattern


def softmax_backward(dpattern, pattern):
    """dpattern [Tq, Tk, H, B] -> dscores [Tq, Tk, H, B]."""
    # pattern = exp(s) / sum_j exp(s_j)  =>  ds = p * (dp - sum_j dp_j p_j)
    #                                          = dp p - p sum_j dp_j p_j   (one pass fewer)
    dscores = dpattern * pattern
    dscores -= pattern * np.add.reduce(dscores, axis=1, keepdims=True)
    return dscores


def weighted_sum_forward(pattern, v):
    """z = pattern-weighted sum of values.

    pattern [Tq, Tk, H, B], v [E, Tk, H, B] -> z [E, Tq, H, B].
    """
    # z[e, i] = sum_j pattern[i, j] v[e, j]
    if heads_outer(v.shape[1]):
        z = _as_head_vectors(np.matmul(_pattern_matrices(pattern), _head_matrices(v)))
    else:
        z = np.einsum("ijhb,ejhb->eihb", pattern, v)
    return z, (pattern, v)


def weighted_sum_backward(dz, saved):
    """dz [E, Tq, H, B] -> (dpattern [Tq, Tk, H, B], dv [E, Tk, H, B])."""
    pattern, v = saved
    # z[e, i] = sum_j pattern[i, j] v[e, j]
    if heads_outer(v.shape[1]):
        dz_m, v_m = _head_matrices(dz), _head_matrices(v)
        dpattern = _as_patterns(np.matmul(dz_m, v_m.swapaxes(-1, -2)))
        dv = _as_head_vectors(np.matmul(_pattern_matrices(pattern).swapaxes(-1, -2), dz_m))
        return dpattern, dv
    dpattern = np.einsum("eihb,ejhb->ijhb", dz, v)   # dpattern[i, j] = sum_e dz[e, i] v[e, j]
    dv = np.einsum("ijhb,eihb->ejhb", pattern, dz)   # dv[e, j] = sum_i pattern[i, j] dz[e, i]
    return dpattern, dv


def _z_columns(z):
    """z [E, T, H, B] -> [H, E, T*B], columns (t, b): each head's values as a matrix.

    Short sequences: a copy stored [H, E, T, B]. Long ones (heads_outer): a view of a copy
    stored [T, B, H, E], whose E stays the unit-stride axis as the attention matmuls want.
    """
    E, T, H, B = z.shape
    if heads_outer(T):
        return np.ascontiguousarray(z.transpose(1, 3, 2, 0)).reshape(T * B, H, E).transpose(1, 2, 0)
    return np.ascontiguousarray(z.transpose(2, 0, 1, 3)).reshape(H, E, T * B)


def head_result_forward(z, W_O):
    """Each head's output written into the residual space.

    z [E, T, H, B], W_O [H, E, D] -> result [H, D, T, B].
    """
    E, T, H, B = z.shape
    z_cols = _z_columns(z)                                            # [H, E, TB]
    result = (W_O.transpose(0, 2, 1) @ z_cols).reshape(H, -1, T, B)
    return result, (z_cols, W_O, z.shape)


def attn_out_forward(z, W_O):
    """The attention block's output: head_result_forward summed over heads, fused.

    z [E, T, H, B], W_O [H, E, D] -> attn_out [D, T, B].
    Speed: one [D, HE] @ [HE, TB] matmul instead of H products that fill an [H, D, T, B]
    array (8x the output, 10 MB for a 1,000-sequence evaluation chunk) and a sum over it.
    Plain version: head_result_forward(z, W_O)[0].sum(axis=0). Its backward is
    head_result_backward_shared (every head receives the same gradient).
    """
    E, T, H, B = z.shape
    z_cols = _z_columns(z)                                            # [H, E, TB]
    # attn_out = sum_h W_O[h]^T z[h] = W_O[(h, e), :]^T z[(h, e), :]
    attn_out = W_O.reshape(H * E, -1).T @ z_cols.reshape(H * E, T * B)
    return attn_out.reshape(-1, T, B), (z_cols, W_O, z.shape)


def head_result_backward(dresult, saved):
    """dresult [H, D, T, B] -> (dz [E, T, H, B], dW_O [H, E, D])."""
    z_cols, W_O, (E, T, H, B) = saved
    dresult = dresult.reshape(H, -1, T * B)
    # result[h] = W_O[h]^T z[h]
    dz_by_head = W_O @ dresult                                        # [H, E, TB]
    dW_O = z_cols @ dresult.transpose(0, 2, 1)                        # [H, E, D]
    dz = dz_by_head.reshape(H, E, T, B).transpose(1, 2, 0, 3)
    return np.ascontiguousarray(dz), dW_O


def head_result_backward_shared(d_attn_out, saved):
    """head_result_backward when every head gets the same gradient d_attn_out [D, T, B]
    (attn_out = sum over heads of result, nothing clamped in between).

    Same maths as head_result_backward(broadcast(d_attn_out)), but two matmuls over all
    heads at once instead of building an [H, D, T, B] copy of the gradient.
    """
    z_cols, W_O, (E, T, H, B) = saved
    D = W_O.shape[2]
    d_out = d_attn_out.reshape(D, T * B)
    # result[h] = W_O[h]^T z[h], with dresult[h] = d_out for every h
    dW_O = (z_cols.reshape(H * E, T * B) @ d_out.T).reshape(H, E, D)
    if heads_outer(T):   # rows (t, b) and E the unit stride: no copy, the matmuls take it as it is
        return (d_out.T @ W_O.reshape(H * E, D).T).reshape(T, B, H, E).transpose(3, 0, 2, 1), dW_O
    dz_by_head = W_O.reshape(H * E, D) @ d_out                       # [HE, TB]
    dz = dz_by_head.reshape(H, E, T, B).transpose(1, 2, 0, 3)
    return np.ascontiguousarray(dz), dW_O


# ---------------------------------------------------------------- loss


def cross_entropy_forward(logits, targets):
    """Mean cross-entropy over columns, and which columns predict their target.

    logits [V, M], targets [M] int -> (loss, correct [M] bool, saved). correct: the
    target's logit is the column's largest (a tie counts as correct).
    """
    # (np.maximum.reduce / np.add.reduce: the array methods .max() / .sum() / .mean() add a
    # Python wrapper each, which at V = 5, M = 32 costs more than the arithmetic)
    n_columns = targets.shape[0]
    top = np.maximum.reduce(logits, axis=0)                            # [M]
    target_logits = logits[targets, np.arange(n_columns)]              # [M]
    # exp(logits - top), in place on one new array (V x M is 4 MB for a text batch);
    # the softmax is exps / total, left for the backward to divide (one pass fewer)
    exps = logits - top
    np.exp(exps, out=exps)
    total = np.add.reduce(exps, axis=0)                                # [M]
    # -log softmax(logits)[target] = log(sum_v exp(logit_v - top)) + top - logit_target
    loss = np.add.reduce(np.log(total) + (top - target_logits)) / n_columns
    return float(loss), target_logits >= top, (exps, total, targets)


def cross_entropy_backward(saved):
    """-> dlogits [V, M] for a loss of 1 (the mean over M columns)."""
    exps, total, targets = saved
    # loss = -mean_m log softmax(logits)[target_m, m]  =>  dlogits = (softmax - onehot) / M
    n_columns = targets.shape[0]
    dlogits = exps * (1.0 / n_columns / total)          # softmax / M
    dlogits[targets, np.arange(n_columns)] -= 1.0 / n_columns
    return dlogits


# ---------------------------------------------------------------- smeared key (Olsson et al. 2022)


def smear_key_forward(k, alpha):
    """Each key mixed with the previous position's key by a learned per-head weight.

    k [E, T, H, B], alpha [H] -> smeared [E, T, H, B] with s = sigmoid(alpha):
        smeared[:, j] = s k[:, j] + (1 - s) k[:, j-1]   for j >= 1;   smeared[:, 0] = k[:, 0].
    """
    s = (0.5 * (1.0 + np.tanh(0.5 * np.asarray(alpha)))).astype(k.dtype)   # [H], sigmoid without overflow
    s_b = s[None, None, :, None]
    smeared = np.empty_like(k)
    smeared[:, 0] = k[:, 0]
    smeared[:, 1:] = s_b * k[:, 1:] + (1.0 - s_b) * k[:, :-1]
    return smeared, (k, s)


def smear_key_backward(dsmeared, saved):
    """dsmeared [E, T, H, B] -> (dk [E, T, H, B], dalpha [H])."""
    k, s = saved
    s_b = s[None, None, :, None]
    # smeared[:, j] = s k[:, j] + (1 - s) k[:, j-1] (j >= 1); smeared[:, 0] = k[:, 0]
    dk = np.empty_like(dsmeared)
    dk[:, 0] = dsmeared[:, 0]
    dk[:, 1:] = s_b * dsmeared[:, 1:]
    dk[:, :-1] += (1.0 - s_b) * dsmeared[:, 1:]
    # d smeared[:, j] / d s = k[:, j] - k[:, j-1];  ds / d alpha = s (1 - s)
    ds = np.einsum("ejhb,ejhb->h", dsmeared[:, 1:], k[:, 1:] - k[:, :-1])
    return dk, (ds * s * (1.0 - s)).astype(dsmeared.dtype)
