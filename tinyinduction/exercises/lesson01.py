"""Lesson 01's exercises: an ideal previous-token pattern, and the backward pass of the
softmax and of the attention scores in the TransformerLens layout.

Right answers: the package's clamp.previous_token_target, and central finite
differences of the package's own forward ops (ops/, feature-major layout).
"""
from __future__ import annotations

import numpy as np

from .. import ops, tl_layout
from ..clamp import previous_token_target
from .compare import numerical_gradient
from .core import Case, Exercise, Mistake, register

PATTERN_AXES = ("batch", "head", "query_pos", "key_pos")
HEAD_VECTOR_AXES = ("batch", "pos", "head", "d_head")
FINITE_DIFFERENCES = "central finite differences of the package's forward (ops/)"


# ---------------------------------------------------------------- previous-token pattern


def _previous_token_cases(rng):
    cases = []
    for n_positions, strength in ((5, 1.0), (5, 0.7), (3, 0.3), (5, 0.0), (1, 0.4), (7, 0.25),
                                  (6, float(rng.uniform(0.1, 0.9)))):
        cases.append(Case(f"n_positions={n_positions}, strength={strength:.3g}",
                          (n_positions, strength), previous_token_target(n_positions, strength),
                          "the package's clamp.previous_token_target", rtol=1e-12, atol=1e-12,
                          sizes={"T": n_positions} if n_positions > 1 else {}))
    return cases


register(Exercise(
    name="previous_token_target",
    lesson="01",
    solution=previous_token_target,
    make_cases=_previous_token_cases,
    task="""
    The ideal previous-token attention pattern [T, T] (rows: query position i,
    columns: key position j).

    n_positions T >= 1, strength s in [0, 1] -> pattern [T, T] (float) with
        pattern[i, i - 1] = s and pattern[i, i] = 1 - s   for i >= 1,
        pattern[0, 0] = 1   (the first token has nothing before it),
    and 0 everywhere else. Every row sums to 1 and no row looks at a later position.
    """,
    output_names=("pattern",),
    output_axes=(("query_pos", "key_pos"),),
    hint="row i puts s on column i-1 and 1-s on column i; row 0 has only itself",
    wrong_answers=(
        Mistake("no weight left on the diagonal", lambda n, s=1.0: np.eye(n, k=-1) * s),
        Mistake("attends to the next token (the pattern transposed)",
                lambda n, s=1.0: previous_token_target(n, s).T, named_by="[key_pos, query_pos]"),
        Mistake("s and 1 - s swapped (s on the token itself)",
                lambda n, s=1.0: previous_token_target(n, 1.0 - s) if n > 1 else np.ones((1, 1))),
        Mistake("off by one: s two tokens back, on i - 2",
                lambda n, s=1.0: (1 - s) * np.eye(n) + s * np.eye(n, k=-2) + s * np.diag(np.arange(n) < 2)),
        Mistake("row 0 left empty (nothing before the first token, so no attention at all)",
                lambda n, s=1.0: previous_token_target(n, s) - np.diag(np.arange(n) == 0) * 1.0),
        Mistake("a hard-coded size: always a 5 x 5 pattern", lambda n, s=1.0: previous_token_target(5, s),
                named_by="only work for T = 5"),
    ),
))


# ---------------------------------------------------------------- softmax backward


def _tl_to_internal_pattern(x):      # [B, H, Tq, Tk] -> [Tq, Tk, H, B]
    return np.ascontiguousarray(x.transpose(2, 3, 1, 0))


def _random_scores(rng, n_batch, n_heads, n_positions, causal, spread=1.0):
    scores = spread * rng.standard_normal((n_batch, n_heads, n_positions, n_positions))
    if causal:
        scores = np.where(np.tril(np.ones((n_positions, n_positions), bool)), scores, -np.inf)
    return scores


def _softmax_backward_cases(rng):
    cases = []
    for n_batch, n_heads, n_positions, causal, spread in ((1, 1, 3, False, 1.0), (2, 3, 4, True, 1.0),
                                                          (2, 2, 5, True, 4.0), (3, 1, 7, True, 1.0)):
        scores = _random_scores(rng, n_batch, n_heads, n_positions, causal, spread)
        dpattern = rng.standard_normal(scores.shape)
        pattern = ops.softmax_forward(_tl_to_internal_pattern(scores))[0].transpose(3, 2, 0, 1)

        def loss(s, dpattern=dpattern):   # L = sum(dpattern * softmax(s)): dL/dpattern = dpattern
            p, _ = ops.softmax_forward(_tl_to_internal_pattern(s))
            return float((_tl_to_internal_pattern(dpattern) * p).sum())

        expected = numerical_gradient(loss, scores)
        cases.append(Case(f"B={n_batch}, H={n_heads}, T={n_positions}"
                          + (", causal mask" if causal else ", no mask")
                          + (f", scores spread x{spread:g}" if spread != 1 else ""),
                          (dpattern, np.ascontiguousarray(pattern)), expected, FINITE_DIFFERENCES,
                          rtol=1e-5, atol=1e-8, sizes={"B": n_batch, "H": n_heads, "T": n_positions}))
    return cases


register(Exercise(
    name="softmax_backward_tl",
    lesson="01",
    solution=tl_layout.softmax_backward,
    make_cases=_softmax_backward_cases,
    task="""
    Backward of the softmax over keys, in the TransformerLens layout.

    dpattern [B, H, Tq, Tk]: d loss / d pattern; pattern [B, H, Tq, Tk]: the forward's
    output, pattern[..., i, :] = softmax(scores[..., i, :]) (each row sums to 1)
    -> dscores [B, H, Tq, Tk] = d loss / d scores.

    Within one row, p = softmax(s) has dp_j / ds_k = p_j (delta_jk - p_k).
    Use the chain rule: dscores_k = sum_j dpattern_j dp_j / ds_k. Simplify it to
    two NumPy lines without loops. Masked keys have p = 0: check that your
    formula gives them a zero gradient by itself.
    """,
    output_names=("dscores",),
    output_axes=(PATTERN_AXES,),
    hint="the chain rule gives p_k dpattern_k minus p_k times (sum over the row of dpattern_j p_j)",
    wrong_answers=(
        Mistake("forgets the row term (returns pattern * dpattern)", lambda dp, p: p * dp),
        Mistake("sums over queries instead of keys",
                lambda dp, p: p * (dp - (dp * p).sum(axis=-2, keepdims=True))),
        Mistake("the row sum without the pattern: p (dpattern - sum dpattern)",
                lambda dp, p: p * (dp - dp.sum(axis=-1, keepdims=True))),
        Mistake("returns the forward's derivative dp/ds only, no chain rule: p (1 - p)",
                lambda dp, p: p * (1 - p)),
        Mistake("opposite sign", lambda dp, p: -tl_layout.softmax_backward(dp, p), named_by="opposite sign"),
        Mistake("query and key axes swapped",
                lambda dp, p: np.swapaxes(tl_layout.softmax_backward(dp, p), -1, -2),
                named_by="axes in the order [batch, head, key_pos, query_pos]"),
    ),
))


# ---------------------------------------------------------------- attention-scores backward


def _attention_scores_backward_cases(rng):
    cases = []
    for n_batch, n_positions, n_heads, d_head, causal, masked_gradient in (
            (1, 3, 1, 2, False, False), (2, 4, 2, 3, True, False), (2, 5, 3, 4, True, True),
            (3, 6, 1, 2, True, True)):
        q = rng.standard_normal((n_batch, n_positions, n_heads, d_head))
        k = rng.standard_normal((n_batch, n_positions, n_heads, d_head))
        scale = 1.0 / np.sqrt(d_head)
        mask = np.tril(np.ones((n_positions, n_positions), bool)) if causal \
            else np.ones((n_positions, n_positions), bool)
        dscores = rng.standard_normal((n_batch, n_heads, n_positions, n_positions))
        if not masked_gradient:
            dscores = np.where(mask, dscores, 0.0)   # what the softmax backward sends there

        def loss(q_, k_, dscores=dscores, mask=mask, scale=scale):
            # L = sum over visible entries of dscores * scores(q, k), with the package's op
            to_internal = (3, 1, 2, 0)                            # [B, T, H, E] -> [E, T, H, B]
            scores, _ = ops.attention_scores_forward(q_.transpose(to_internal),
                                                     k_.transpose(to_internal), scale, mask)
            visible = np.broadcast_to(mask[:, :, None, None], scores.shape)
            return float((_tl_to_internal_pattern(dscores)[visible] * scores[visible]).sum())

        expected = (numerical_gradient(lambda x: loss(x, k), q),
                    numerical_gradient(lambda x: loss(q, x), k))
        description = (f"B={n_batch}, T={n_positions}, H={n_heads}, E={d_head}, scale={scale:.3g}"
                       + (", causal mask" if causal else ", no mask")
                       + (", dscores nonzero on masked entries (they must not count)"
                          if masked_gradient else ""))
        cases.append(Case(description, (dscores, q, k, scale, mask), expected, FINITE_DIFFERENCES,
                          rtol=1e-5, atol=1e-8,
                          sizes={"B": n_batch, "T": n_positions, "H": n_heads, "E": d_head}))
    return cases


def _dk_untransposed(dscores, q, k, scale, mask):
    """Mistake: dk[b, j] = scale sum_i dscores[b, h, j, i] q[b, i] (rows and columns mixed up)."""
    dscores = np.where(mask, dscores, 0.0)
    dq = scale * np.einsum("bhij,bjhe->bihe", dscores, k)
    dk = scale * np.einsum("bhji,bihe->bjhe", dscores, q)
    return dq, dk


register(Exercise(
    name="attention_scores_backward_tl",
    lesson="01",
    solution=tl_layout.attention_scores_backward,
    make_cases=_attention_scores_backward_cases,
    task="""
    Backward of the attention scores, in the TransformerLens layout.

    Forward: scores[b, h, i, j] = scale * sum_e q[b, i, h, e] k[b, j, h, e] where
    causal_mask[i, j] is True; elsewhere scores = -inf, a constant.

    dscores [B, H, Tq, Tk], q [B, Tq, H, E], k [B, Tk, H, E], scale (a number),
    causal_mask [Tq, Tk] bool (True = visible)
    -> (dq [B, Tq, H, E], dk [B, Tk, H, E]).

    Differentiate the forward line: dq[b, i, h, e] is a sum over j, dk[b, j, h, e]
    a sum over i. Masked entries are constants: they send no gradient back, whatever
    dscores holds there. One np.where and two np.einsum calls are enough.
    """,
    output_names=("dq", "dk"),
    output_axes=(HEAD_VECTOR_AXES, HEAD_VECTOR_AXES),
    hint="dq sums dscores[b, h, i, j] k[b, j, h, e] over j; dk sums dscores[b, h, i, j] q[b, i, h, e] over i",
    wrong_answers=(
        Mistake("forgets the scale",
                lambda ds, q, k, scale, mask: tl_layout.attention_scores_backward(ds, q, k, 1.0, mask)),
        Mistake("ignores the mask (masked entries send gradient back)",
                lambda ds, q, k, scale, mask: tl_layout.attention_scores_backward(
                    ds, q, k, scale, np.ones_like(mask))),
        Mistake("returns dk, dq swapped",
                lambda ds, q, k, scale, mask: tl_layout.attention_scores_backward(ds, q, k, scale, mask)[::-1]),
        Mistake("dk sums over the wrong index: dscores not transposed",
                lambda ds, q, k, scale, mask: _dk_untransposed(ds, q, k, scale, mask)),
        Mistake("opposite sign",
                lambda ds, q, k, scale, mask: tuple(-g for g in tl_layout.attention_scores_backward(
                    ds, q, k, scale, mask)), named_by="opposite sign"),
    ),
))
