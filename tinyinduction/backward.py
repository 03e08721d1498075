"""The backward pass, paired with forward.py: the same steps in reverse, for the arrays the
plan computed. At each site the gradient is gathered (from every step that read the
site, and from later passes through links), re-routed at linked elements to their
sources, and stopped at clamped elements: a replaced array's gradient goes no further,
since nothing computed it. Parameter gradients are summed over the passes; a parameter a
pass never used gets zeros from it."""
from __future__ import annotations

import numpy as np

from . import ops
from .forward import ForwardPass
from .plan import POSITION_AXIS, TL_POSITION_AXIS, TO_TL, at_positions


def _sum_to_shape(grad, shape):
    """Sum a gradient [site shape] down to a broadcast value's shape."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def stacked_pair(stacked, before, after):
    """The two arrays `after` as one [2, ...] array: `stacked` itself (no copy) when the
    sites passed them through unchanged (`after` is `before`, the views stacked[0] and
    stacked[1]), a new stack when a clamp replaced one."""
    if isinstance(stacked, np.ndarray) and after[0] is before[0] and after[1] is before[1]:
        return stacked
    return np.stack(after)


class BackwardPass:
    """The backward of one ForwardPass: the gradient at every site it computed."""

    def __init__(self, run: ForwardPass, record):
        self.run, self.record = run, record
        self.grads = {}
        # sites where a gradient may be added (links), re-routed or stopped (clamps), or
        # recorded: elsewhere a gradient from one step passes on as it is
        self.special = set(run.sites) if record else set(run.plan.clamps) | run.plan.link_sources

    def site(self, name, *grads):
        """d loss / d (site `name`'s array) [internal layout], from the steps that read it
        (each at the positions it read, None: no gradient) and from links -> the gradient
        that flows on into the site's own step (None: none does)."""
        run = self.run
        if len(grads) == 1 and name not in self.special:
            return grads[0]
        layout = run.sites[name][1].layout
        axis = POSITION_AXIS[layout]
        total = run.pending.pop(name, None)
        for grad in grads:
            if grad is None:
                continue
            n_here = len(range(run.n_positions)[run.plan.positions[name]])
            if grad.shape[axis] != n_here:   # read at the last position only: place it there
                placed = np.zeros(grad.shape[:axis] + (n_here,) + grad.shape[axis + 1:], dtype=grad.dtype)
                at_positions(placed, slice(-1, None), axis)[...] = grad
                grad = placed
            total = grad if total is None else total + grad
        if total is None:
            if self.record and name in run.cache:    # no gradient reaches it: zero
                run.cache._store(name + "_grad", np.zeros(run.cache[name].shape, dtype=run.dtype))
            return None
        site_clamps = run.plan.clamps.get(name)
        if site_clamps is not None:
            grad_tl = total.transpose(TO_TL[layout])
            for clamp, owned, value_shape, source_pass in run.links.get(name, ()):
                link = clamp.value
                if value_shape == grad_tl.shape and owned.all():
                    d_value = grad_tl              # the value fills the site: no reshaping
                else:   # the value was broadcast to the full shape, taken at the site's positions
                    d_full = np.zeros(site_clamps.full_shape, dtype=total.dtype)
                    at_positions(d_full, site_clamps.positions, TL_POSITION_AXIS[layout])[...] = \
                        np.where(owned, grad_tl, 0.0)
                    d_value = _sum_to_shape(d_full, value_shape)
                source_shape = source_pass.cache[link.source].shape
                d_source = link.gradient(d_value, run.batch, source_shape)
                source_pass.send_gradient(link.source, np.broadcast_to(d_source, source_shape))
            total = np.where(site_clamps.replaced, 0.0, total).astype(total.dtype, copy=False)
        if self.record:
            run.cache._store(name + "_grad", np.array(total).transpose(TO_TL[layout]))
        if site_clamps is not None and site_clamps.entire:
            return None             # made by its clamps: nothing computed it
        return total

    def step(self, name, backward, *grads):
        """backward(the gradient at site `name`, what its forward step saved): the
        gradients of the step's inputs (and parameters); None if none reaches the site."""
        grad = grads[0] if len(grads) == 1 and name not in self.special else self.site(name, *grads)
        if grad is None or name not in self.run.saved:
            return None
        return backward(grad, self.run.saved[name])

    def add(self, name, grad):
        """A parameter's gradient (a parameter may be used by several steps)."""
        if grad is not None:
            self.grads[name] = grad if name not in self.grads else self.grads[name] + grad


def _layer_backward(bw: BackwardPass, layer, d_resid_post):
    """One block in reverse: d loss / d (block output) -> d loss / d (block input), or None."""
    run, c = bw.run, bw.run.config
    b = f"blocks.{layer}."
    a = b + "attn."
    plan = run.plan
    # resid_post = resid_pre + attn_out: both get its gradient
    d_resid_post = bw.site(b + "hook_resid_post", d_resid_post)
    if a + "hook_result" in plan.clamps or a + "hook_result" in plan.link_sources or (
            bw.record and a + "hook_result" in plan.positions):
        # attn_out = sum over heads of result: every head's result gets d_attn_out
        d_attn_out = bw.site(b + "hook_attn_out", d_resid_post)
        d_result = None if d_attn_out is None else np.broadcast_to(d_attn_out, (c.n_heads,) + d_attn_out.shape)
        saved_name = a + "hook_result" if a + "hook_result" in run.saved else b + "hook_attn_out"
        d_result = bw.site(a + "hook_result", d_result)
        out = None if d_result is None else ops.head_result_backward(d_result, run.saved[saved_name])
    else:   # nothing to stop or record at the result: skip the [H, D, T, B] copy
        out = bw.step(b + "hook_attn_out", ops.head_result_backward_shared, d_resid_post)
    dz = None
    if out is not None:
        dz, d_W_O = out
        bw.add(a + "W_O", d_W_O)
    d_pattern, dv = bw.step(a + "hook_z", ops.weighted_sum_backward, dz) or (None, None)
    d_scores = bw.step(a + "hook_pattern", ops.softmax_backward, d_pattern)
    d_qk = bw.step(a + "hook_attn_scores", ops.attention_scores_backward, d_scores)
    dq, dk = d_halves = (None, None) if d_qk is None else tuple(d_qk)
    if c.smeared_key:
        dk, d_alpha = bw.step(a + "hook_smeared_k", ops.smear_key_backward, dk) or (None, None)
        bw.add(a + "smear_alpha", d_alpha)
    if c.positional == "rope":
        rotated_together = run.saved.get(a + "hook_rot_qk")
        if rotated_together is not None:
            # queries and keys rotated back together, as in the forward pass
            dq_rot, dk_rot = bw.site(a + "hook_rot_q", dq), bw.site(a + "hook_rot_k", dk)
            if dq_rot is None and dk_rot is None:
                dq = dk = None
            else:
                dq_rot = np.zeros_like(dk_rot) if dq_rot is None else dq_rot
                dk_rot = np.zeros_like(dq_rot) if dk_rot is None else dk_rot
                dq, dk = ops.rope_matmul_backward(stacked_pair(d_qk, d_halves, (dq_rot, dk_rot)),
                                                  rotated_together)
        else:
            dq = bw.step(a + "hook_rot_q", ops.rope_matmul_backward, dq)
            dk = bw.step(a + "hook_rot_k", ops.rope_matmul_backward, dk)
    dq, dk, dv = bw.site(a + "hook_q", dq), bw.site(a + "hook_k", dk), bw.site(a + "hook_v", dv)
    dx = None
    if a + "qkv" in run.saved and not (dq is None and dk is None and dv is None):
        dx, d_W_Q, d_W_K, d_W_V = ops.qkv_backward(dq, dk, dv, run.saved[a + "qkv"])
        for name, grad in (("W_Q", d_W_Q), ("W_K", d_W_K), ("W_V", d_W_V)):
            bw.add(a + name, grad)
    if c.layernorm:
        dx, d_w, d_b = bw.step(b + "ln1.hook_normalized", ops.layernorm_backward, dx) or (None,) * 3
        bw.add(b + "ln1.w", d_w)
        bw.add(b + "ln1.b", d_b)
    return bw.site(b + "hook_resid_pre", dx, d_resid_post)


def _fewshot_embed_backward(d_embed, saved):
    """d embed [D, 2C+1, B] -> (d W_exemplar, d b_exemplar, d W_label)."""
    saved_ex, saved_label = saved
    d_model = d_embed.shape[0]
    # embed[:, 0::2] = exemplars, embed[:, 1::2] = labels
    # gathered as rows [(b, item), D], so that dW = exemplars^T @ rows multiplies
    # row-major arrays (BLAS's plain kernel: 41 instead of 47 us at the paper's size)
    d_ex_rows = np.ascontiguousarray(d_embed[:, 0::2].transpose(2, 1, 0)).reshape(-1, d_model)
    _, d_W_ex, d_b_ex = ops.linear_backward(d_ex_rows.T, saved_ex, need_input_grad=False)
    return d_W_ex, d_b_ex, ops.embedding_backward(d_embed[:, 1::2], saved_label)


def _unembed_backward(d_logits, saved):
    """d logits [V, T, B] -> (dx [D, T, B], d W_U, d b_U)."""
    n_outputs, n_positions, n_batch = d_logits.shape
    dx, d_W_U, d_b_U = ops.linear_backward(d_logits.reshape(n_outputs, -1), saved)
    return dx.reshape(-1, n_positions, n_batch), d_W_U, d_b_U


def backward(run: ForwardPass, d_logits, record_activation_grads=False) -> dict:
    """Gradients of the loss for the parameters this pass used (a parameter it did not
    use is left out: its gradient from this pass is zero), from d loss / d logits
    [V, T, B] at the positions the pass computed its logits at (None: the pass's output
    is not read; its gradient comes only through links).

    With record_activation_grads, each activation's gradient is stored in the cache as
    name + "_grad" (TransformerLens shapes).
    """
    c, p = run.config, run.params
    bw = BackwardPass(run, record_activation_grads)
    # logits = W_U^T x + b_U
    dx, d_W_U, d_b_U = bw.step("hook_logits", _unembed_backward, d_logits) or (None,) * 3
    bw.add("unembed.W_U", d_W_U)
    bw.add("unembed.b_U", d_b_U)
    if c.layernorm:
        dx, d_w, d_b = bw.step("ln_final.hook_normalized", ops.layernorm_backward, dx) or (None,) * 3
        bw.add("ln_final.w", d_w)
        bw.add("ln_final.b", d_b)
    for layer in reversed(range(c.n_layers)):
        dx = _layer_backward(bw, layer, dx)
    # resid_pre of block 0 = embed (+ pos)
    if c.positional == "learned":
        d_pos = bw.site("hook_pos_embed", dx)
        if d_pos is not None:
            grad = np.zeros_like(p["pos_embed.W_pos"])
            grad[:d_pos.shape[1]] = d_pos.sum(axis=2).T
            bw.add("pos_embed.W_pos", grad)
    if c.input_kind == "fewshot":
        d_embed = bw.step("hook_embed", _fewshot_embed_backward, dx) or (None,) * 3
        for name, grad in zip(("embed.W_exemplar", "embed.b_exemplar", "embed.W_label"), d_embed):
            bw.add(name, grad)
    else:
        bw.add("embed.W_E", bw.step("hook_embed", ops.embedding_backward, dx))
    return bw.grads
