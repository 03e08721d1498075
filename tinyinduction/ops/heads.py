"""The heads' primitives: Q/K/V projections, rotary embeddings, the smeared key, attention
scores, softmax, the weighted sum of values and the heads' outputs; and the memory order of
their arrays (heads_outer). The conventions are in the package docstring (ops/__init__.py).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np


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


# ---------------------------------------------------------------- fused Q, K, V projection


def _project(x, weights):
    """Several heads' projections of x in one matmul (no biases).

    x [D, T, B]; weights: n arrays [H, D, E] -> (out [n, E, T, H, B], W_all [nHE, D]),
    out stored [n, E, T, H, B] for short sequences and [n, H, B, T, E] for long ones
    (heads_outer), W_all's rows ordered to match: (which, e, h) or (which, h, e).
    """
    D, T, B = x.shape
    H, _, E = weights[0].shape
    n = len(weights)
    by_head = heads_outer(T)
    W_all = np.empty((n, H, E, D) if by_head else (n, E, H, D), dtype=weights[0].dtype)
    for i, W in enumerate(weights):
        W_all[i] = W.transpose(0, 2, 1) if by_head else W.transpose(2, 0, 1)
    W_all = W_all.reshape(n * E * H, D)
    x2 = x.reshape(D, T * B)
    if by_head:
        rows = (x2.T @ W_all.T).reshape(T, B, n, H, E)                 # [(t, b), (which, h, e)]
        out = np.ascontiguousarray(rows.transpose(2, 3, 1, 0, 4))      # [n, H, B, T, E]
        return out.transpose(0, 4, 3, 1, 2), W_all                      # indexed [n, E, T, H, B]
    out = (W_all @ x2).reshape(n, E, H, T, B)
    return np.ascontiguousarray(out.transpose(0, 1, 3, 2, 4)), W_all   # [n, E, T, H, B]


def _project_backward(grads, x, W_all):
    """grads: n arrays [E, T, H, B] (None: zero) -> (dx [D, T, B], dW [n, H, D, E])."""
    D, T, B = x.shape
    n = len(grads)
    H = W_all.shape[0] // n
    missing = any(g is None for g in grads)
    some = grads[0] if grads[0] is not None else next(g for g in grads if g is not None)
    E = some.shape[0]
    H //= E
    x2 = x.reshape(D, T * B)
    allocate = np.zeros if missing else np.empty
    # out = transpose(W_all @ x)
    if heads_outer(T):   # W_all's rows are (which, h, e): gather the gradient as [(t, b), (which, h, e)]
        d_rows = allocate((T, B, n, H, E), dtype=some.dtype)
        for i, d in enumerate(grads):
            if d is not None:
                d_rows[:, :, i] = d.transpose(1, 3, 2, 0)
        d_all = d_rows.reshape(T * B, n * H * E).T                      # [nHE, TB] (a view)
        dW_all = (d_all @ x2.T).reshape(n, H, E, D).transpose(0, 1, 3, 2)
    else:                # rows (which, e, h)
        d_all = allocate((n, E, H, T, B), dtype=some.dtype)
        for i, d in enumerate(grads):
            if d is not None:
                d_all[i] = d.transpose(0, 2, 1, 3)
        d_all = d_all.reshape(n * E * H, T * B)
        dW_all = (d_all @ x2.T).reshape(n, E, H, D).transpose(0, 2, 3, 1)
    return (W_all.T @ d_all).reshape(D, T, B), dW_all


class QKVSaved(NamedTuple):
    x: np.ndarray              # [D, T, B] the input
    together: tuple            # which of (0 q, 1 k, 2 v) came from the one product over every position
    W_together: object         # their stacked weights [nHE, D] (None if none)
    query_rows: object         # None, or the slice of positions where q was projected on its own
    x_rows: object             # x at those positions [D, Tq, B]
    W_q: object                # the query weights stacked as _project does [HE, D]
    qk: object                 # [2, E, T, H, B]: q and k as halves of one array, if one product made both


def qkv_forward(x, W_Q, W_K, W_V, query_rows=slice(None)):
    """Queries, keys and values of every head in one matmul (no biases).

    x [D, T, B]; W_Q, W_K, W_V [H, D, E], or None for a projection nobody reads (None is
    returned in its place); query_rows: the positions where queries are read (a slice).
    -> ((q [E, Tq, H, B], k [E, T, H, B], v [E, T, H, B]), saved). Stored
    [E, T, H, B] for short sequences and [H, B, T, E] for long ones (heads_outer).
    Speed: q and k come out as the halves of one array when both cover every position
    (saved.qk: RoPE rotates them together), and queries read at a few positions only (the
    few-shot loss reads the last block at the query) are projected there only.
    """
    T = x.shape[1]
    n_queries = len(range(T)[query_rows])
    wanted = (W_Q, W_K, W_V)
    together = tuple(i for i, W in enumerate(wanted) if W is not None and (i > 0 or n_queries == T))
    out = [None, None, None]
    W_together, qk = None, None
    if together:
        stacked, W_together = _project(x, [wanted[i] for i in together])
        for j, i in enumerate(together):
            out[i] = stacked[j]
        if together[:2] == (0, 1):
            qk = stacked[:2]
    x_rows = W_q = None
    if W_Q is not None and 0 not in together:   # queries at their positions only
        x_rows = np.ascontiguousarray(x[:, query_rows])                  # [D, Tq, B]
        q, W_q = _project(x_rows, [W_Q])
        out[0] = q[0]
    return tuple(out), QKVSaved(x, together, W_together, None if x_rows is None else query_rows,
                                x_rows, W_q, qk)


def qkv_backward(dq, dk, dv, saved: QKVSaved):
    """dq [E, Tq, H, B], dk, dv [E, T, H, B] (None: zero or not computed)
    -> (dx [D, T, B], dW_Q, dW_K, dW_V [H, D, E], None for a projection not computed)."""
    x = saved.x
    grads = (dq, dk, dv)
    d_weights = [None, None, None]
    dx = None
    # (q, k, v)[i] = transpose(W_i x): every position, or q at the query rows only
    together = [grads[i] for i in saved.together]
    if together and not all(g is None for g in together):
        dx, dW = _project_backward(together, x, saved.W_together)
        for j, i in enumerate(saved.together):
            d_weights[i] = dW[j]
    if saved.query_rows is not None and dq is not None:
        dx_rows, dW = _project_backward([dq], saved.x_rows, saved.W_q)
        d_weights[0] = dW[0]
        if dx is None:
            dx = np.zeros(x.shape, dtype=dx_rows.dtype)
        dx[:, saved.query_rows] += dx_rows
    if dx is None:
        dx = np.zeros(x.shape, dtype=x.dtype)
    return dx, *d_weights


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
    and 1 / 0 (multiplies their gradient); made once per mask."""
    mask = np.asarray(causal_mask, dtype=bool)
    return _mask_terms_of(mask.shape, mask.tobytes(), np.dtype(dtype))


@functools.lru_cache(maxsize=64)
def _mask_terms_of(shape, mask_bytes, dtype):
    visible = np.frombuffer(mask_bytes, dtype=bool).reshape(shape)[:, :, None, None]
    hidden, keep = np.where(visible, 0.0, -np.inf).astype(dtype), visible.astype(dtype)
    hidden.flags.writeable = keep.flags.writeable = False
    return hidden, keep


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
