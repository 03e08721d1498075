"""The forward pass: one way through the network, computing what is read.

The one rule. Before a pass runs it knows what will be read from it: the loss's
positions (the last pass only: a few-shot model's query, a token model's every
position), the sites a later pass's clamps link to, and the whole cache when the caller
asks for it (run_with_cache, loss_and_grads). It also knows which arrays its clamps
replace entirely and which in part. plan.py turns these facts into a plan, and the plan
decides what is computed:

    an array nobody reads is not computed, and neither is anything that only feeds it;
    an array a clamp replaces entirely is not computed at all (its value is the clamp's);
    an array a clamp replaces in part is computed, then replaced;
    positions nobody reads are not computed (a few-shot loss reads the last block at the
        query only: its queries, patterns and output are made for that position alone);
    a cache view exists only when someone reads the cache.

Training, evaluation, run_with_cache and the multi-pass clamps all run through this one
rule: a student reading this file finds one way through a layer. Each step of it is

    array = run.step(site_name, primitive, inputs...)

which calls the primitive (ops/) only if the plan computes that site, then passes the
array through the site: the site's clamps (where(mask, value, computed)), then the cache.
There is no other path into the cache. backward.py walks the same steps in reverse. The
arrays are in the internal feature-major layout (ops/); the cache shows TransformerLens
views. model.py holds the public functions.
"""
from __future__ import annotations

import functools

import numpy as np

from . import ops
from .batches import TokenBatch
from .cache import ActivationCache
from .checks import any_outside, integer_array
from .clamp import as_passes
from .config import ModelConfig
from .params import check_params
from .plan import ALL, TO_TL, at_positions, hook_names, plan_passes, site_index, site_to_tl

__all__ = ["TO_TL", "hook_names", "check_batch", "forward_passes", "run_with_cache", "ForwardPass",
           "TokenBatch", "ALL"]


@functools.lru_cache(maxsize=64)
def _rope_matrices(n_positions, d_head, base, dtype):
    R = ops.rope_matrices(*ops.rope_tables(n_positions, d_head, base, np.dtype(dtype)))   # [T, E, E]
    R.flags.writeable = False
    return R


@functools.lru_cache(maxsize=64)
def _causal_mask(n_positions):
    mask = np.tril(np.ones((n_positions, n_positions), dtype=bool))   # [Tq, Tk]
    mask.flags.writeable = False
    return mask


# ---------------------------------------------------------------- input checks


def check_batch(config: ModelConfig, batch) -> int:
    """Fail with a clear message if the batch does not fit the config; its length T."""
    if config.input_kind == "fewshot":
        if not hasattr(batch, "exemplars") or not hasattr(batch, "labels"):
            raise ValueError("few-shot models take a batch with .exemplars [B, C+1, F] and .labels [B, C]")
        ex, labels = np.asarray(batch.exemplars), integer_array("batch.labels", batch.labels)
        if ex.ndim != 3 or ex.shape[2] != config.d_feature:
            raise ValueError(f"batch.exemplars has shape {ex.shape}; expected [B, C+1, {config.d_feature}]")
        if ex.dtype.kind not in "fiu":
            raise ValueError(f"batch.exemplars has dtype {ex.dtype}; must be real numbers")
        if ex.shape[0] == 0:
            raise ValueError("the batch has no sequences (B = 0)")
        if labels.shape != (ex.shape[0], ex.shape[1] - 1):
            raise ValueError(f"batch.labels has shape {labels.shape}; expected [B, C] = "
                             f"{(ex.shape[0], ex.shape[1] - 1)}")
        if any_outside(labels, 0, config.n_labels):
            raise ValueError(f"batch.labels must lie in [0, {config.n_labels}); got "
                             f"{labels.min()}..{labels.max()}")
        n_positions = 2 * labels.shape[1] + 1
    else:
        if not isinstance(batch, TokenBatch):
            raise ValueError("token models take a TokenBatch(tokens [B, T], targets [B, T])")
        tokens = integer_array("batch.tokens", batch.tokens)
        targets = integer_array("batch.targets", batch.targets)
        if tokens.ndim != 2 or tokens.size == 0:
            raise ValueError(f"batch.tokens has shape {tokens.shape}; must be [B, T] with B, T >= 1")
        if tokens.min() < 0 or tokens.max() >= config.d_vocab:
            raise ValueError(f"batch.tokens must be [B, T] ints in [0, {config.d_vocab})")
        if targets.shape != tokens.shape or targets.min() < -1 or targets.max() >= config.d_vocab:
            raise ValueError(f"batch.targets must be [B, T] = {tokens.shape} ints in "
                             f"[-1, {config.d_vocab}) (-1 = no loss at that position)")
        n_positions = tokens.shape[1]
    if config.positional == "learned" and n_positions > config.n_ctx:
        raise ValueError(f"sequence length {n_positions} is longer than the learned position "
                         f"table (ModelConfig.n_ctx = {config.n_ctx})")
    return n_positions


# ---------------------------------------------------------------- one pass


class ForwardPass:
    """One forward pass: its plan, the arrays it computed (cache), what backward needs
    (saved, per site), and the gradients later passes send back through links (pending).

    earlier: the finished passes before this one (name -> ForwardPass), for linked clamps.
    """

    def __init__(self, params, config: ModelConfig, batch, plan, n_positions, earlier):
        self.params, self.config, self.batch, self.plan = params, config, batch, plan
        self.pass_name = plan.name
        self.n_positions = n_positions
        self.earlier = earlier
        self.dtype = np.dtype(config.dtype)
        self.cache = ActivationCache()
        self.saved = {}          # site name -> what its primitive's backward needs
        self.links = {}          # site name -> [(clamp, owned mask TL, value shape, source pass)]
        self.pending = {}        # site name -> gradient sent here by links (internal layout)
        self.sites = site_index(config)
        self.to_tl = site_to_tl(config)

    def positions(self, name):
        """The positions the plan computes `name` at (ALL or LAST)."""
        return self.plan.positions[name]

    def step(self, name, primitive, *inputs):
        """primitive(*inputs) -> (array, saved) if the plan computes site `name`; then the
        site (as site(): written out here, the hot path of every step)."""
        plan = self.plan
        array = None
        if name in plan.computed:
            array, self.saved[name] = primitive(*inputs)
        if name in plan.clamps:
            array = self._apply_clamps(name, plan.clamps[name], array)
        if array is not None and name in plan.stored:
            self.cache._store_internal(name, array, self.to_tl[name])
        return array

    def site(self, name, array):
        """The site's clamps applied to its computed array (None: not computed; a clamp
        replaces all of it, or nobody reads it), the result stored in the cache (its
        TransformerLens view is made when someone reads it); returns the array the next
        steps use (None: nobody reads it)."""
        plan = self.plan
        if name in plan.clamps:
            array = self._apply_clamps(name, plan.clamps[name], array)
        if array is not None and name in plan.stored:
            self.cache._store_internal(name, array, self.to_tl[name])
        return array

    def _apply_clamps(self, name, site_clamps, array):
        """where(mask, value, array), clamp by clamp (constant ones prepared by the plan)."""
        if array is None:       # replaced entirely: every element will come from the clamps
            array = np.zeros(site_clamps.shape, dtype=self.dtype)
        for mask, value in site_clamps.steps:
            if not isinstance(value, np.ndarray):        # a Clamp whose value is made per batch
                clamp, source_pass, source = value, None, None
                if clamp.is_linked:
                    link = clamp.value
                    source_pass = self if link.source_pass is None else self.earlier[link.source_pass]
                    source = source_pass.cache[link.source]
                value_tl = clamp.resolve_value(self.batch, self.cache, site_clamps.full_shape,
                                               self.dtype, source)
                value = site_clamps.fit(value_tl)
                if clamp.is_linked:
                    owned = next(owned for linked, owned in site_clamps.links if linked is clamp)
                    self.links.setdefault(name, []).append((clamp, owned, value_tl.shape, source_pass))
            array = np.where(mask, value, array)
        return array

    def at(self, array, name, axis=1):
        """array at the positions site `name` is computed at (a view; axis: the positions
        axis, 1 for [D, T, B] and [E, T, H, B], 0 for patterns)."""
        positions = self.plan.positions.get(name, ALL)
        if positions is ALL or array is None:
            return array
        return at_positions(array, positions, axis)

    def send_gradient(self, name, grad_tl):
        """Add a linked clamp's gradient [TL layout] to site `name` of this pass."""
        internal = grad_tl.transpose(np.argsort(TO_TL[self.sites[name][1].layout]))
        previous = self.pending.get(name)
        self.pending[name] = internal if previous is None else previous + internal


# ---------------------------------------------------------------- the steps of a pass


def fewshot_embed_forward(exemplars, labels, W_exemplar, b_exemplar, W_label, dtype):
    """The few-shot sequence x1 l1 x2 l2 ... xq embedded: exemplars [B, C+1, F] through a
    linear map, labels [B, C] through a table -> embed [D, 2C+1, B] and what backward needs."""
    exemplars = np.asarray(exemplars, dtype=dtype)
    n_batch, n_items, _ = exemplars.shape
    # one matmul for every exemplar: [F, B(C+1)] columns ordered (b, item)
    ex, saved_ex = ops.linear_forward(exemplars.reshape(n_batch * n_items, -1).T, W_exemplar, b_exemplar)
    ex = ex.reshape(-1, n_batch, n_items).transpose(0, 2, 1)            # [D, C+1, B]
    lab, saved_label = ops.embedding_forward(np.asarray(labels).T, W_label)   # [D, C, B]
    embed = np.empty((W_exemplar.shape[1], 2 * n_items - 1, n_batch), dtype=dtype)
    embed[:, 0::2] = ex      # x1, x2, ..., xq at even positions
    embed[:, 1::2] = lab     # l1, l2, ... at odd positions
    return embed, (saved_ex, saved_label)


def _positions_forward(W_pos, n_positions, n_batch):
    """Learned position embeddings as [D, T, B] (a broadcast view of the table)."""
    return np.broadcast_to(W_pos[:n_positions].T[:, :, None], (W_pos.shape[1], n_positions, n_batch)), None


def _sum(arrays):
    """embeddings + positions (None: the model has no learned positions)."""
    total = None
    for array in arrays:
        if array is not None:
            total = array if total is None else total + array
    return total


def _unembed_forward(x, W_U, b_U):
    """logits [V, T, B] = W_U^T x + b_U for x [D, T, B]."""
    d_model, n_positions, n_batch = x.shape
    logits, saved = ops.linear_forward(x.reshape(d_model, -1), W_U, b_U)
    return logits.reshape(-1, n_positions, n_batch), saved


def _embed(run: ForwardPass):
    """The input to block 0: token (or exemplar and label) embeddings, plus learned
    positions where the model has them. [D, T, B]"""
    p, c, batch = run.params, run.config, run.batch
    if c.input_kind == "fewshot":
        embed = run.step("hook_embed", fewshot_embed_forward, batch.exemplars, batch.labels,
                         p["embed.W_exemplar"], p["embed.b_exemplar"], p["embed.W_label"], run.dtype)
    else:
        embed = run.step("hook_embed", ops.embedding_forward, np.asarray(batch.tokens).T, p["embed.W_E"])
    pos = None
    if c.positional == "learned":
        pos = run.step("hook_pos_embed", _positions_forward, p["pos_embed.W_pos"], run.n_positions,
                       run.plan.n_batch)
    return embed, pos


def _layer_forward(run: ForwardPass, layer, inputs):
    """One attention block: what run.plan says is read of it, at the positions it says."""
    p, c = run.params, run.config
    b = f"blocks.{layer}."
    a = b + "attn."
    computes = run.plan.computes
    # the block's input: the previous block's output, or the embeddings (+ positions)
    resid = run.site(b + "hook_resid_pre", _sum(run.at(x, b + "hook_resid_pre") for x in inputs)
                     if computes(b + "hook_resid_pre") else None)
    x = resid
    if c.layernorm:
        x = run.step(b + "ln1.hook_normalized", ops.layernorm_forward,
                     run.at(resid, b + "ln1.hook_normalized"), p[b + "ln1.w"], p[b + "ln1.b"],
                     c.layernorm_eps)
    # queries, keys and values: one product for those read (queries at their positions)
    weights = [p[a + W] if computes(a + hook) else None
               for W, hook in (("W_Q", "hook_q"), ("W_K", "hook_k"), ("W_V", "hook_v"))]
    qkv = (None, None, None)
    if any(W is not None for W in weights):
        query_rows = run.positions(a + "hook_q") if weights[0] is not None else ALL
        qkv, run.saved[a + "qkv"] = ops.qkv_forward(x, *weights, query_rows=query_rows)
    q, k, v = (run.site(a + hook, array) for hook, array in zip(("hook_q", "hook_k", "hook_v"), qkv))
    if c.positional == "rope":
        R = _rope_matrices(run.n_positions, c.d_head, c.rope_base, c.dtype)
        both = computes(a + "hook_rot_q") and computes(a + "hook_rot_k")
        joint = run.saved.get(a + "qkv")
        if both and joint is not None and joint.qk is not None and q is qkv[0] and k is qkv[1]:
            # Speed: queries and keys rotated together, [2, E, T, H, B], by one batched
            # matmul (ops.rope_matmul_forward; the plain, elementwise version: rope_forward)
            rotated, run.saved[a + "hook_rot_qk"] = ops.rope_matmul_forward(joint.qk, R)
            q = run.site(a + "hook_rot_q", rotated[0])
            k = run.site(a + "hook_rot_k", rotated[1])
        else:
            q = run.step(a + "hook_rot_q", ops.rope_matmul_forward, q,
                         R[run.positions(a + "hook_rot_q")] if computes(a + "hook_rot_q") else R)
            k = run.step(a + "hook_rot_k", ops.rope_matmul_forward, k, R)
    if c.smeared_key:
        k = run.step(a + "hook_smeared_k", ops.smear_key_forward, k, p[a + "smear_alpha"])
    # the scale is a Python float: a NumPy float64 scalar would turn float32 arrays into
    # float64 under NumPy 2 (it did: half the backward pass ran in float64, ~30% of a step)
    scores = run.step(a + "hook_attn_scores", ops.attention_scores_forward,
                      run.at(q, a + "hook_attn_scores"), k, c.d_head ** -0.5,
                      run.at(_causal_mask(run.n_positions), a + "hook_attn_scores", axis=0))
    pattern = run.step(a + "hook_pattern", ops.softmax_forward, scores)
    z = run.step(a + "hook_z", ops.weighted_sum_forward, run.at(pattern, a + "hook_z", axis=0), v)
    W_O = p[a + "W_O"]
    if a + "hook_result" in run.plan.clamps or a + "hook_result" in run.plan.link_sources:
        result = run.step(a + "hook_result", ops.head_result_forward, z, W_O)   # read: made
        attn_out = run.step(b + "hook_attn_out", _sum_heads_forward, result)
    else:
        # Speed: attn_out in one matmul, without the [H, D, T, B] per-head array (8x its
        # size); hook_result is made only if the cache is read, from z and a copy of W_O
        # (the optimizer updates the parameters in place after the step).
        if a + "hook_result" in run.plan.stored and z is not None:
            W_O_now, perm = W_O.copy(), TO_TL["result"]
            run.cache._store_lazy(a + "hook_result",
                                  lambda: ops.head_result_forward(z, W_O_now)[0].transpose(perm))
        attn_out = run.step(b + "hook_attn_out", ops.attn_out_forward, z, W_O)
    return run.site(b + "hook_resid_post", run.at(resid, b + "hook_resid_post") + attn_out
                    if computes(b + "hook_resid_post") else None)


def _sum_heads_forward(result):
    """attn_out [D, T, B] = the per-head outputs [H, D, T, B] summed over heads."""
    return result.sum(axis=0), result.shape[0]


def _final_forward(run: ForwardPass, resid):
    """The final LayerNorm and the unembedding: logits [V, T, B] at the positions read."""
    p, c = run.params, run.config
    x = resid
    if c.layernorm:
        x = run.step("ln_final.hook_normalized", ops.layernorm_forward,
                     run.at(resid, "ln_final.hook_normalized"), p["ln_final.w"], p["ln_final.b"],
                     c.layernorm_eps)
    return run.step("hook_logits", _unembed_forward, run.at(x, "hook_logits"),
                    p["unembed.W_U"], p["unembed.b_U"])


def forward_pass(params, config, batch, plan, n_positions, earlier) -> ForwardPass:
    """One pass of the network over the batch, as its plan says."""
    run = ForwardPass(params, config, batch, plan, n_positions, earlier)
    embed, pos = _embed(run)
    inputs = (embed, pos)
    for layer in range(config.n_layers):
        inputs = (_layer_forward(run, layer, inputs),)
    run.logits = _final_forward(run, inputs[0])         # [V, T or 1, B], or None
    return run


_ONE_PASS = as_passes(())   # no clamps: built once (as_passes validates, on every step)


def no_clamps(clamps) -> bool:
    return isinstance(clamps, (tuple, list)) and not clamps


def forward_passes(params, config, batch, clamps, read_cache=True) -> list[ForwardPass]:
    """Every pass of a (possibly multi-pass) clamped forward, in order.

    read_cache: the caller reads the cache (every array of every pass, at every position);
    False: only the loss is read (training, evaluation).
    """
    check_params(params, config)
    n_positions = check_batch(config, batch)
    passes = _ONE_PASS if no_clamps(clamps) else as_passes(clamps)
    n_batch = np.asarray(batch.labels if config.input_kind == "fewshot" else batch.tokens).shape[0]
    plans = plan_passes(config, passes, n_batch, n_positions, read_cache)
    runs = {}
    for plan in plans:
        runs[plan.name] = forward_pass(params, config, batch, plan, n_positions, dict(runs))
    final = runs[plans[-1].name]
    # the earlier passes only: cache.passes adds the final cache itself, so no reference
    # cycle keeps every cache of a long evaluation alive until the garbage collector runs
    final.cache._earlier_passes = {name: run.cache for name, run in runs.items() if run is not final}
    final.cache._pass_name = final.pass_name
    return list(runs.values())


def run_with_cache(params, config: ModelConfig, batch, clamps=()) -> ActivationCache:
    """Forward pass; returns the cache (logits are cache["hook_logits"] [B, T, V]).

    clamps: a list of Clamps, or Passes (a multi-pass forward: the cache is the last
    pass's, and cache.passes maps every pass's name to its cache).
    """
    return forward_passes(params, config, batch, clamps)[-1].cache
