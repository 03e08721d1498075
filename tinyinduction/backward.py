"""The backward pass, paired with forward.py: gradients of every parameter, through
clamps (stopped at constant ones, re-routed through linked ones) and across passes."""
from __future__ import annotations

import numpy as np

from . import ops
from .forward import TO_TL, ForwardPass, stacked_pair

# ---------------------------------------------------------------- backward


def _sum_to_shape(grad, shape):
    """Sum a gradient [site shape] down to a broadcast value's shape."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class _Backward:
    def __init__(self, run: ForwardPass, record):
        self.run, self.record = run, record

    def site(self, name, grad, layout):
        """Add linked gradients, route linked elements to their sources, stop the gradient
        at clamped elements; optionally record it in the cache."""
        run = self.run
        if not (run.pending or run.links or run.masks or self.record):
            return grad             # the common case: nothing to add, route, stop or record
        pending = run.pending.pop(name, None)
        if pending is not None:
            grad = grad + pending
        links = run.links.get(name)
        if links:
            grad_tl = grad.transpose(TO_TL[layout])
            for owned, clamp, value_shape, source_run in links:
                link = clamp.value
                d_value = _sum_to_shape(np.where(owned, grad_tl, 0.0), value_shape)
                source_shape = source_run.cache[link.source].shape
                d_source = link.gradient(d_value, run.batch, source_shape)
                source_run.send_gradient(link.source, np.broadcast_to(d_source, source_shape))
        mask = run.masks.get(name)
        if mask is not None:
            grad = np.where(mask, 0.0, grad).astype(grad.dtype, copy=False)
        if self.record:
            run.cache._store(name + "_grad", np.array(grad).transpose(TO_TL[layout]))
        return grad


def _layer_backward(bw: _Backward, layer, d_resid_post, grads):
    run, c = bw.run, bw.run.config
    b = f"blocks.{layer}."
    saved = run.saved[layer]
    d_resid_post = bw.site(b + "hook_resid_post", d_resid_post, "resid")
    # resid_post = resid_pre + attn_out
    d_attn_out = bw.site(b + "hook_attn_out", d_resid_post, "resid")
    # attn_out = sum over heads of result: every head's result gets d_attn_out
    name = b + "attn.hook_result"
    if name in run.masks or name in run.pending or bw.record:
        d_result = bw.site(b + "attn.hook_result",
                           np.broadcast_to(d_attn_out, (c.n_heads,) + d_attn_out.shape), "result")
        dz, grads[b + "attn.W_O"] = ops.head_result_backward(d_result, saved["result"])
    else:   # nothing to stop or record at the result: skip the [H, D, T, B] copy
        dz, grads[b + "attn.W_O"] = ops.head_result_backward_shared(d_attn_out, saved["result"])
    dz = bw.site(b + "attn.hook_z", dz, "head_vec")
    d_pattern, dv = ops.weighted_sum_backward(dz, saved["mix"])
    d_pattern = bw.site(b + "attn.hook_pattern", d_pattern, "pattern")
    d_scores = bw.site(b + "attn.hook_attn_scores", ops.softmax_backward(d_pattern, saved["softmax"]),
                       "pattern")
    d_both = ops.attention_scores_backward(d_scores, saved["scores"])   # [2, E, T, H, B] (or a pair)
    dq, dk = d_computed = tuple(d_both)
    if c.smeared_key:
        dk = bw.site(b + "attn.hook_smeared_k", dk, "head_vec")
        dk, grads[b + "attn.smear_alpha"] = ops.smear_key_backward(dk, saved["smear"])
    queries = saved.get("queries")      # the forward computed these query rows only
    if c.positional == "rope" and queries is None:
        dq_rot = bw.site(b + "attn.hook_rot_q", dq, "head_vec")
        dk_rot = bw.site(b + "attn.hook_rot_k", dk, "head_vec")
        # queries and keys rotated back together, as in the forward pass
        d_rot = ops.rope_matmul_backward(stacked_pair(d_both, d_computed, (dq_rot, dk_rot)), saved["rope"])
        dq, dk = d_rot
    elif c.positional == "rope":        # (no cache, no clamps: no site to pass through)
        dq = ops.rope_matmul_backward(dq, saved["rope"][queries])
        dk = ops.rope_matmul_backward(dk, saved["rope"])
    dq = bw.site(b + "attn.hook_q", dq, "head_vec")
    dk = bw.site(b + "attn.hook_k", dk, "head_vec")
    dv = bw.site(b + "attn.hook_v", dv, "head_vec")
    qkv_backward = ops.qkv_backward if queries is None else ops.qkv_query_rows_backward
    dx, grads[b + "attn.W_Q"], grads[b + "attn.W_K"], grads[b + "attn.W_V"] = qkv_backward(
        dq, dk, dv, saved["qkv"])
    if c.layernorm:
        dx = bw.site(b + "ln1.hook_normalized", dx, "resid")
        dx, grads[b + "ln1.w"], grads[b + "ln1.b"] = ops.layernorm_backward(dx, saved["ln1"])
    if queries is None:
        return bw.site(b + "hook_resid_pre", d_resid_post + dx, "resid")
    dx[:, queries] += d_resid_post      # resid_post = resid_pre + attn_out at those rows only
    return dx


def _unembed_backward_last_position(run, d_logits, grads):
    """The unembedding's and final LayerNorm's backward when d_logits [V, T, B] is zero
    except at the last position (a few-shot loss reads only the query) and nothing is
    recorded or clamped at ln_final: everything they send back is zero elsewhere too.

    Speed: both run on the last position's B columns instead of all T * B (a fifth of the
    final LayerNorm's backward). Same maths as the full path; returns dx [D, T, B].
    """
    c = run.config
    _, n_positions, n_batch = d_logits.shape
    last = np.s_[:, (n_positions - 1) * n_batch:]             # columns (t, b) with t = T-1
    x, W_U, has_bias = run.saved["unembed"]
    d_last, grads["unembed.W_U"], grads["unembed.b_U"] = ops.linear_backward(
        d_logits[:, -1], (x[last], W_U, has_bias))            # [D, B]
    if c.layernorm:
        xhat, rstd, w = run.saved["ln_final"]
        d_last, grads["ln_final.w"], grads["ln_final.b"] = ops.layernorm_backward(
            d_last, (xhat[last], rstd[last[1]], w))
    dx = np.zeros((c.d_model, n_positions, n_batch), dtype=d_last.dtype)
    dx[:, -1] = d_last
    return dx


def backward(run: ForwardPass, d_logits, record_activation_grads=False) -> dict:
    """Gradients of the loss for every parameter, from d loss / d logits [V, T, B] (None:
    zero, for a pass whose output is only read through links).

    With record_activation_grads, each activation's gradient is stored in the cache as
    name + "_grad" (TransformerLens shapes).
    """
    c, p = run.config, run.params
    bw = _Backward(run, record_activation_grads)
    grads = {}
    d_model = c.d_model
    if d_logits is None:
        d_logits = np.zeros(run.logits.shape, dtype=run.dtype)
    d_logits = bw.site("hook_logits", d_logits, "resid")
    n_outputs, n_positions, n_batch = d_logits.shape
    ln_site = "ln_final.hook_normalized"
    if n_positions > 1 and not (bw.record or ln_site in run.masks or ln_site in run.pending) \
            and not d_logits[:, :-1].any():
        dx = _unembed_backward_last_position(run, d_logits, grads)
    else:
        # logits = W_U^T x + b_U
        dx, grads["unembed.W_U"], grads["unembed.b_U"] = ops.linear_backward(
            d_logits.reshape(n_outputs, -1), run.saved["unembed"])
        dx = dx.reshape(d_model, n_positions, n_batch)
        if c.layernorm:
            dx = bw.site(ln_site, dx, "resid")
            dx, grads["ln_final.w"], grads["ln_final.b"] = ops.layernorm_backward(dx, run.saved["ln_final"])
    for layer in reversed(range(c.n_layers)):
        dx = _layer_backward(bw, layer, dx, grads)
    if c.positional == "learned":
        d_pos = bw.site("hook_pos_embed", dx, "resid")
        grads["pos_embed.W_pos"] = np.zeros_like(p["pos_embed.W_pos"])
        grads["pos_embed.W_pos"][:d_pos.shape[1]] = d_pos.sum(axis=2).T
    d_embed = bw.site("hook_embed", dx, "resid")
    if c.input_kind == "fewshot":
        # embed[:, 0::2] = exemplars, embed[:, 1::2] = labels
        # gathered as rows [(b, item), D], so that dW = exemplars^T @ rows multiplies
        # row-major arrays (BLAS's plain kernel: 41 instead of 47 us at the paper's size)
        d_ex_rows = np.ascontiguousarray(d_embed[:, 0::2].transpose(2, 1, 0)).reshape(-1, d_model)
        _, grads["embed.W_exemplar"], grads["embed.b_exemplar"] = ops.linear_backward(
            d_ex_rows.T, run.saved["embed_exemplar"], need_input_grad=False)
        grads["embed.W_label"] = ops.embedding_backward(d_embed[:, 1::2], run.saved["embed_label"])
    else:
        grads["embed.W_E"] = ops.embedding_backward(d_embed, run.saved["embed_token"])
    return {name: grads[name] for name in p}


