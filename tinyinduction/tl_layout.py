"""Attention maths in the TransformerLens layout [batch, pos, ...], for teaching.

Lesson 01 derives the backward pass of the attention scores and of the softmax in the
layout a student sees in the cache:

    q, k            [B, T, H, E]      (hook_q / hook_k, or hook_rot_q / hook_rot_k)
    scores, pattern [B, H, Tq, Tk]    (hook_attn_scores / hook_pattern)

The model itself runs the same maths in ops/, in a feature-major layout with the
batch innermost ([E, T, H, B], [Tq, Tk, H, B]) because NumPy is faster that way at this
model's size. The two give the same numbers (tests/test_exercises.py checks it, and
lesson 01 shows it on a real cache). These functions are the solutions of lesson 01's
exercises (tinyinduction/exercises/lesson01.py).
"""
from __future__ import annotations

import numpy as np


def attention_scores(q, k, scale, causal_mask):
    """scores[b, h, i, j] = scale * sum_e q[b, i, h, e] k[b, j, h, e]; keys after the query: -inf.

    q [B, Tq, H, E], k [B, Tk, H, E], scale a number (1/sqrt(E) in the model),
    causal_mask [Tq, Tk] bool (True = the key is visible) -> scores [B, H, Tq, Tk].
    """
    scores = scale * np.einsum("bihe,bjhe->bhij", q, k)
    return np.where(causal_mask, scores, -np.inf)


def attention_scores_backward(dscores, q, k, scale, causal_mask):
    """Gradients of q and k from the gradient of the scores.

    dscores [B, H, Tq, Tk], q [B, Tq, H, E], k [B, Tk, H, E], causal_mask [Tq, Tk]
    -> (dq [B, Tq, H, E], dk [B, Tk, H, E]).

    scores[b,h,i,j] = scale * sum_e q[b,i,h,e] k[b,j,h,e] on visible entries; a masked
    entry is the constant -inf, so no gradient flows through it:
        dq[b,i,h,e] = scale * sum_j dscores[b,h,i,j] k[b,j,h,e]   (visible j only)
        dk[b,j,h,e] = scale * sum_i dscores[b,h,i,j] q[b,i,h,e]   (visible i only)
    """
    ds = scale * np.where(causal_mask, dscores, 0.0)        # [B, H, Tq, Tk]
    dq = np.einsum("bhij,bjhe->bihe", ds, k)
    dk = np.einsum("bhij,bihe->bjhe", ds, q)
    return dq, dk


def softmax(scores):
    """pattern[..., i, j] = exp(scores[..., i, j]) / sum_j' exp(scores[..., i, j']).

    scores [B, H, Tq, Tk] (may hold -inf) -> pattern [B, H, Tq, Tk], rows sum to 1.
    """
    shifted = scores - scores.max(axis=-1, keepdims=True)   # exp never overflows
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def softmax_backward(dpattern, pattern):
    """Gradient of the scores from the gradient of the pattern (softmax over keys).

    dpattern [B, H, Tq, Tk], pattern [B, H, Tq, Tk] -> dscores [B, H, Tq, Tk].

    Within one row p = softmax(s): dp_j / ds_k = p_j (delta_jk - p_k), so
        dscores_k = sum_j dpattern_j p_j (delta_jk - p_k)
                  = p_k (dpattern_k - sum_j dpattern_j p_j).
    """
    row_mean = (dpattern * pattern).sum(axis=-1, keepdims=True)    # [B, H, Tq, 1]
    return pattern * (dpattern - row_mean)
