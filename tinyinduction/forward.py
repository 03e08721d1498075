"""The forward pass: every step's array goes through one site (clamps, then the cache).

Every forward step computes an array in the internal feature-major layout (see ops.py)
and passes it through `ForwardPass.site`, which applies clamps, stores a read-only
TransformerLens-shaped view in the cache and remembers which elements were replaced
(and which came from linked sites of earlier passes), so that backward.py stops or
re-routes the gradient there. There is no other path into the cache. model.py holds
the public functions; backward.py the paired backward pass.
"""
from __future__ import annotations

import functools

import numpy as np

from . import ops
from .batches import TokenBatch
from .cache import ActivationCache, unknown_name_message
from .checks import any_outside, integer_array
from .clamp import as_passes
from .config import ModelConfig
from .params import check_params

# internal layout -> TransformerLens layout, as a transpose
TO_TL = {
    "resid": (2, 1, 0),          # [D, T, B]       -> [B, T, D]
    "head_vec": (3, 1, 2, 0),    # [E, T, H, B]    -> [B, T, H, E]
    "pattern": (3, 2, 0, 1),     # [Tq, Tk, H, B]  -> [B, H, Tq, Tk]
    "result": (3, 2, 0, 1),      # [H, D, T, B]    -> [B, T, H, D]
}


# ---------------------------------------------------------------- names


def hook_names(config: ModelConfig) -> list[str]:
    """Every cache name this config's forward pass produces, in order."""
    names = ["hook_embed"]
    if config.positional == "learned":
        names.append("hook_pos_embed")
    for layer in range(config.n_layers):
        b = f"blocks.{layer}."
        names.append(b + "hook_resid_pre")
        if config.layernorm:
            names.append(b + "ln1.hook_normalized")
        names += [b + "attn.hook_q", b + "attn.hook_k", b + "attn.hook_v"]
        if config.positional == "rope":
            names += [b + "attn.hook_rot_q", b + "attn.hook_rot_k"]
        if config.smeared_key:
            names.append(b + "attn.hook_smeared_k")
        names += [b + "attn.hook_attn_scores", b + "attn.hook_pattern", b + "attn.hook_z",
                  b + "attn.hook_result", b + "hook_attn_out", b + "hook_resid_post"]
    if config.layernorm:
        names.append("ln_final.hook_normalized")
    names.append("hook_logits")
    return names


@functools.lru_cache(maxsize=64)
def _known_names(config: ModelConfig) -> frozenset:
    return frozenset(hook_names(config))


@functools.lru_cache(maxsize=64)
def _rope_tables(n_positions, d_head, base, dtype):
    return ops.rope_tables(n_positions, d_head, base, np.dtype(dtype))


@functools.lru_cache(maxsize=64)
def _rope_matrices(n_positions, d_head, base, dtype):
    R = ops.rope_matrices(*_rope_tables(n_positions, d_head, base, dtype))   # [T, E, E]
    R.flags.writeable = False
    return R


def stacked_pair(stacked, before, after):
    """The two arrays `after` as one [2, ...] array: `stacked` itself (no copy) when the
    sites passed them through unchanged (`after` is `before`, the views stacked[0] and
    stacked[1]), a new stack when a clamp replaced one."""
    if stacked is not None and after[0] is before[0] and after[1] is before[1]:
        return stacked
    return np.stack(after)


@functools.lru_cache(maxsize=64)
def _causal_mask(n_positions):
    mask = np.tril(np.ones((n_positions, n_positions), dtype=bool))   # [Tq, Tk]
    mask.flags.writeable = False
    return mask


# ---------------------------------------------------------------- input checks


def check_batch(config: ModelConfig, batch):
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


# ---------------------------------------------------------------- forward


class ForwardPass:
    """One forward pass: the cache it fills, clamp masks, links, and what backward needs.

    earlier: the finished passes before this one (name -> ForwardPass), for linked clamps.
    """

    def __init__(self, params, config: ModelConfig, batch, clamps, pass_name="main", earlier=None):
        self.params, self.config, self.batch = params, config, batch
        self.pass_name = pass_name
        self.earlier = earlier or {}
        self.dtype = np.dtype(config.dtype)
        self.cache = ActivationCache()
        self.saved = {}          # primitive -> saved values for its backward
        self.masks = {}          # site name -> replaced elements, internal layout
        self.links = {}          # site name -> [(owned mask TL, clamp, value shape, source run)]
        self.layouts = {}        # site name -> layout key of TO_TL
        self.pending = {}        # site name -> gradient sent here by links (internal layout)
        self.clamps = {}
        known = _known_names(config) if clamps else ()
        for clamp in clamps:
            if clamp.name not in known:
                raise ValueError(unknown_name_message(clamp.name, known))
            self.clamps.setdefault(clamp.name, []).append(clamp)

    def _link_source(self, clamp):
        """(the run that computed a linked clamp's source, the source array TL)."""
        link = clamp.value
        if link.source_pass is None:
            run, where = self, f"this pass ({self.pass_name!r})"
            if link.source not in run.cache:
                raise ValueError(f"clamp on {clamp.name} links to {link.source}, which is not "
                                 f"computed before it in {where}")
        else:
            run = self.earlier.get(link.source_pass)
            if run is None:
                raise ValueError(f"clamp on {clamp.name} links to pass {link.source_pass!r}; "
                                 f"passes run before: {sorted(self.earlier)}")
            if link.source not in run.cache:
                raise ValueError(unknown_name_message(link.source, run.cache))
        return run, run.cache[link.source]

    def site(self, name, internal, layout):
        """Apply clamps to an array, store its read-only view, return the array to use."""
        perm = TO_TL[layout]
        self.layouts[name] = layout
        clamps = self.clamps.get(name) if self.clamps else None
        if clamps:
            tl = internal.transpose(perm)
            replaced = np.zeros(tl.shape, dtype=bool)
            applied = []
            for clamp in clamps:
                mask = clamp.mask(tl.shape)
                source_run, source = self._link_source(clamp) if clamp.is_linked else (None, None)
                value = clamp.resolve_value(self.batch, self.cache, tl.shape, self.dtype, source)
                tl = np.where(mask, value, tl)
                replaced |= mask
                applied.append((clamp, mask, value.shape, source_run))
            # a linked clamp owns the elements no later clamp on this site overwrote
            covered = np.zeros(tl.shape, dtype=bool)
            for clamp, mask, value_shape, source_run in reversed(applied):
                if clamp.is_linked:
                    self.links.setdefault(name, []).append(
                        (mask & ~covered, clamp, value_shape, source_run))
                covered |= mask
            inverse = np.argsort(perm)
            internal = np.ascontiguousarray(tl.transpose(inverse))
            self.masks[name] = replaced.transpose(inverse)
        internal.flags.writeable = False   # primitives are pure: nothing writes into it
        self.cache._store(name, internal.transpose(perm))
        return internal

    def lazy_site(self, name, compute, layout):
        """A site that nothing downstream reads (it has no clamp): its array is computed by
        compute() [internal layout] only if someone reads it from the cache."""
        perm = TO_TL[layout]
        self.layouts[name] = layout
        self.cache._store_lazy(name, lambda: compute().transpose(perm))

    def send_gradient(self, name, grad_tl):
        """Add a linked clamp's gradient [TL layout] to site `name` of this pass."""
        internal = grad_tl.transpose(np.argsort(TO_TL[self.layouts[name]]))
        previous = self.pending.get(name)
        self.pending[name] = internal if previous is None else previous + internal


def _embed(run: ForwardPass):
    """The input sequence as [D, T, B] (plus learned positions)."""
    p, c, batch = run.params, run.config, run.batch
    if c.input_kind == "fewshot":
        exemplars = np.asarray(batch.exemplars, dtype=run.dtype)        # [B, C+1, F]
        labels = np.asarray(batch.labels)                                # [B, C]
        n_batch, n_items, _ = exemplars.shape
        # one matmul for every exemplar: [F, B(C+1)] columns ordered (b, item)
        ex, run.saved["embed_exemplar"] = ops.linear_forward(
            exemplars.reshape(n_batch * n_items, -1).T, p["embed.W_exemplar"], p["embed.b_exemplar"])
        ex = ex.reshape(-1, n_batch, n_items).transpose(0, 2, 1)         # [D, C+1, B]
        lab, run.saved["embed_label"] = ops.embedding_forward(labels.T, p["embed.W_label"])  # [D, C, B]
        embed = np.empty((c.d_model, 2 * n_items - 1, n_batch), dtype=run.dtype)
        embed[:, 0::2] = ex      # x1, x2, ..., xq at even positions
        embed[:, 1::2] = lab     # l1, l2, ... at odd positions
    else:
        embed, run.saved["embed_token"] = ops.embedding_forward(
            np.asarray(batch.tokens).T, p["embed.W_E"])                    # [D, T, B]
    embed = run.site("hook_embed", embed, "resid")
    if c.positional == "learned":
        n_positions, n_batch = embed.shape[1], embed.shape[2]
        pos = np.broadcast_to(p["pos_embed.W_pos"][:n_positions].T[:, :, None], embed.shape)
        pos = run.site("hook_pos_embed", pos, "resid")
        return embed + pos
    return embed


def _layer_forward(run: ForwardPass, layer, resid, queries=None):
    """One attention block. queries: None, or a slice of the query positions whose output
    is needed (the loss-only pass computes the last block for the loss positions only)."""
    p, c = run.params, run.config
    b = f"blocks.{layer}."
    saved = run.saved.setdefault(layer, {})
    resid = run.site(b + "hook_resid_pre", resid, "resid")
    x = resid
    if c.layernorm:
        x, saved["ln1"] = ops.layernorm_forward(resid, p[b + "ln1.w"], p[b + "ln1.b"], c.layernorm_eps)
        x = run.site(b + "ln1.hook_normalized", x, "resid")
    W_Q, W_K, W_V = p[b + "attn.W_Q"], p[b + "attn.W_K"], p[b + "attn.W_V"]
    if queries is None:
        qkv, saved["qkv"] = ops.qkv_forward(x, W_Q, W_K, W_V)
        q_computed, k_computed, v = qkv                     # views [E, T, H, B]
    else:   # queries only at the rows read later (no cache: the sites below pass through)
        (q_computed, k_computed, v), saved["qkv"] = ops.qkv_query_rows_forward(x, W_Q, W_K, W_V, queries)
    q = run.site(b + "attn.hook_q", q_computed, "head_vec")
    k = run.site(b + "attn.hook_k", k_computed, "head_vec")
    v = run.site(b + "attn.hook_v", v, "head_vec")
    n_positions = resid.shape[1]
    if c.positional == "rope":
        R = saved["rope"] = _rope_matrices(n_positions, c.d_head, c.rope_base, c.dtype)
        if queries is None:
            # Speed: queries and keys rotated together, [2, E, T, H, B], by one batched
            # matmul (ops.rope_matmul_forward; the plain, elementwise version: rope_forward)
            rot, _ = ops.rope_matmul_forward(stacked_pair(qkv[:2], (q_computed, k_computed), (q, k)), R)
            q, k = rot
        else:
            q, k = ops.rope_matmul_forward(q, R[queries])[0], ops.rope_matmul_forward(k, R)[0]
        q = run.site(b + "attn.hook_rot_q", q, "head_vec")
        k = run.site(b + "attn.hook_rot_k", k, "head_vec")
    if c.smeared_key:
        k, saved["smear"] = ops.smear_key_forward(k, p[b + "attn.smear_alpha"])
        k = run.site(b + "attn.hook_smeared_k", k, "head_vec")
    causal_mask = _causal_mask(n_positions)                 # [Tq, Tk]
    if queries is not None:   # rows no one reads are not computed (backward knows: "queries")
        resid, causal_mask = resid[:, queries], causal_mask[queries]
        saved["queries"] = queries
    # the scale is a Python float: a NumPy float64 scalar would turn float32 arrays into
    # float64 under NumPy 2 (it did: half the backward pass ran in float64, ~30% of a step)
    scores, saved["scores"] = ops.attention_scores_forward(q, k, c.d_head ** -0.5, causal_mask)
    scores = run.site(b + "attn.hook_attn_scores", scores, "pattern")
    pattern, saved["softmax"] = ops.softmax_forward(scores)
    pattern = run.site(b + "attn.hook_pattern", pattern, "pattern")
    z, saved["mix"] = ops.weighted_sum_forward(pattern, v)
    z = run.site(b + "attn.hook_z", z, "head_vec")
    if b + "attn.hook_result" in run.clamps:   # the per-head outputs are clamped: make them
        result, saved["result"] = ops.head_result_forward(z, p[b + "attn.W_O"])
        result = run.site(b + "attn.hook_result", result, "result")
        attn_out = result.sum(axis=0)
    else:
        # Speed: attn_out in one matmul, without the [H, D, T, B] per-head array (8x its
        # size); hook_result is computed only if read, from z and a copy of W_O (the
        # optimizer updates the parameters in place after the step).
        attn_out, saved["result"] = ops.attn_out_forward(z, p[b + "attn.W_O"])
        W_O = p[b + "attn.W_O"].copy()
        run.lazy_site(b + "attn.hook_result", lambda: ops.head_result_forward(z, W_O)[0], "result")
    attn_out = run.site(b + "hook_attn_out", attn_out, "resid")
    return run.site(b + "hook_resid_post", resid + attn_out, "resid")


class _NoCacheForward(ForwardPass):
    """A pass without clamps whose cache no one reads (training, evaluation): its sites
    store nothing. Speed: ~27 views and flag changes fewer per pass."""

    def site(self, name, internal, layout):
        return internal

    def lazy_site(self, name, compute, layout):
        pass


def forward_pass(params, config, batch, clamps=(), pass_name="main", earlier=None,
             keep_cache=True) -> ForwardPass:
    """One pass of the network over the batch, with the clamps of that pass.

    keep_cache=False (no clamps, only the loss is read: training and evaluation) stores
    nothing in the cache, and runs a few-shot model's last block for the query position
    only: the loss reads nothing else (run.logits is then [V, 1, B]). Speed: a fifth of
    the last block's attention, of the final LayerNorm, and of their backward passes.
    """
    run = (ForwardPass if keep_cache else _NoCacheForward)(params, config, batch, clamps, pass_name, earlier)
    resid = _embed(run)
    query_only = not keep_cache and config.input_kind == "fewshot"
    for layer in range(config.n_layers):
        last = layer == config.n_layers - 1
        resid = _layer_forward(run, layer, resid, slice(-1, None) if query_only and last else None)
    x = resid
    if config.layernorm:
        x, run.saved["ln_final"] = ops.layernorm_forward(
            resid, params["ln_final.w"], params["ln_final.b"], config.layernorm_eps)
        x = run.site("ln_final.hook_normalized", x, "resid")
    d_model, n_positions, n_batch = x.shape
    logits, run.saved["unembed"] = ops.linear_forward(
        x.reshape(d_model, -1), params["unembed.W_U"], params["unembed.b_U"])
    run.logits = run.site("hook_logits", logits.reshape(-1, n_positions, n_batch), "resid")   # [V, T, B]
    return run


_ONE_PASS = as_passes(())   # no clamps: built once (as_passes validates, on every step)


def no_clamps(clamps) -> bool:
    return isinstance(clamps, (tuple, list)) and not clamps


def forward_passes(params, config, batch, clamps) -> list[ForwardPass]:
    """Every pass of a (possibly multi-pass) clamped forward, in order."""
    check_params(params, config)
    check_batch(config, batch)
    passes = _ONE_PASS if no_clamps(clamps) else as_passes(clamps)
    runs = {}
    for p in passes.passes:
        runs[p.name] = forward_pass(params, config, batch, p.clamps, p.name, dict(runs))
    final = runs[passes.final.name]
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


