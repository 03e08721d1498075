"""Paired forward/backward primitives (llm.c style), pure NumPy: `ops.x_forward`,
`ops.x_backward`, from two files: residual.py (linear maps, embeddings, LayerNorm, the
loss) and heads.py (the attention heads: projections, RoPE, scores, softmax, values).

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

Long sequences (T >= heads.HEADS_OUTER_FROM, e.g. text windows of 64): the index order above
stays, but the attention arrays (q, k, v, z, scores, pattern) are *stored* heads
outermost, [H, B, T, E] and [H, B, Tq, Tk] in memory, so that each attention
contraction is one batched BLAS matmul of [T, E] and [Tq, Tk] matrices (at T = 64 ~10x
faster than the einsum, whose cost grows as T^2). The primitives that make these arrays
(qkv_forward, the attention contractions, head_result_backward) choose by T; every
other step is elementwise or a reshape and does not care. heads_outer(T) says which.
"""
from .heads import (heads_outer, QKVSaved, qkv_forward, qkv_backward,
                    rope_tables, rope_forward, rope_backward, rope_matrices, rope_matmul_forward,
                    rope_matmul_backward, attention_scores_forward, attention_scores_backward,
                    softmax_forward, softmax_backward, weighted_sum_forward, weighted_sum_backward,
                    head_result_forward, attn_out_forward, head_result_backward,
                    head_result_backward_shared, smear_key_forward, smear_key_backward)
from .residual import (linear_forward, linear_backward, embedding_forward, ONE_HOT_MAX_ROWS,
                       embedding_backward, layernorm_forward, layernorm_backward,
                       cross_entropy_forward, cross_entropy_backward)
