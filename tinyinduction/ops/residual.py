"""The residual stream's primitives: linear maps, embeddings by id, LayerNorm, the loss.
Arrays [D, T, B] and [V, M] (the package docstring, ops/__init__.py, has the conventions)."""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def _mean_row(n, dtype):
    """[n] of 1/n: the row vector that averages over n features by a matrix product."""
    row = np.full(n, 1.0 / n, dtype=dtype)
    row.flags.writeable = False
    return row


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
