"""The activation cache and the clamping framework.

Cache: names and TransformerLens shapes, values against an independent einsum forward
written here in TransformerLens layout, read-only arrays, shorthand lookup, helpful
KeyErrors, and the structural identities (pattern rows sum to 1 and are causal, heads
sum to attn_out, resid_post = resid_pre + attn_out).

Clamps: replaced elements hold the clamp value, everything else at that site and
upstream is bit-for-bit the unclamped run, downstream changes; the gradient stops at
replaced elements (checked on what reaches the parameters upstream); several clamps,
callable values, ready-made clamps, grafts, clamps in evaluation; error messages.
"""
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction import train
from tinyinduction.cache import SHORTHANDS
from tinyinduction.clamp import (Clamp, graft, mean_ablate_head, previous_token_pattern,
                                 previous_token_target, zero_ablate_head)
from tinyinduction.config import ModelConfig
from tinyinduction.model import TokenBatch, hook_names, init_params, loss_and_grads, run_with_cache
from tinyinduction.tasks.fewshot import FewShotBatch, FewShotTask, TaskConfig


class Case(NamedTuple):
    config: ModelConfig
    params: dict
    batch: object
    B: int
    T: int


def make_case(seed, n_batch=3, n_positions=5, perturb=0.3, **config):
    """Config (float64 by default), perturbed params and a hand-built batch."""
    rng = np.random.default_rng(seed)
    config = {"n_layers": 2, "n_heads": 3, "d_model": 6, "d_head": 4, "dtype": "float64",
              "d_feature": 4, "n_labels": 4, "n_ctx": 8, **config}
    cfg = ModelConfig(**config)
    if cfg.input_kind == "fewshot":
        assert n_positions % 2 == 1
        C = n_positions // 2
        batch = FewShotBatch(rng.standard_normal((n_batch, C + 1, cfg.d_feature)),
                             rng.integers(0, cfg.n_labels, (n_batch, C)),
                             rng.integers(0, cfg.n_labels, n_batch),
                             np.zeros(n_batch, np.int64), np.zeros((n_batch, C + 1), np.int64))
    else:
        targets = rng.integers(0, cfg.d_vocab, (n_batch, n_positions))
        targets[:, 0] = -1
        tokens = rng.integers(0, cfg.d_vocab, (n_batch, n_positions))
        if n_positions > 1:   # distinct first two tokens: attention at position 1 matters
            tokens[:, 1] = (tokens[:, 0] + rng.integers(1, cfg.d_vocab, n_batch)) % cfg.d_vocab
        batch = TokenBatch(tokens, targets)
    params = init_params(cfg, seed % 1000)
    params = {k: (v + rng.normal(0.0, perturb, v.shape)).astype(cfg.dtype) for k, v in params.items()}
    return Case(cfg, params, batch, n_batch, n_positions)


@st.composite
def cases(draw, min_heads=1, min_positions=1):
    positional = draw(st.sampled_from(["rope", "learned", "none"]))
    input_kind = draw(st.sampled_from(["fewshot", "tokens"]))
    if input_kind == "fewshot":
        T = 2 * draw(st.integers(min_positions // 2, 3)) + 1
        kinds = {}
    else:
        T = draw(st.integers(max(min_positions, 1), 7))
        kinds = {"d_vocab": draw(st.integers(3, 6))}
    return make_case(
        draw(st.integers(0, 2**32 - 1)), n_batch=draw(st.integers(1, 3)), n_positions=T,
        n_layers=draw(st.integers(1, 3)), n_heads=draw(st.integers(min_heads, 3)),
        d_model=draw(st.integers(2, 6)),
        d_head=2 * draw(st.integers(1, 3)) if positional == "rope" else draw(st.integers(1, 5)),
        positional=positional, layernorm=draw(st.booleans()), input_kind=input_kind, n_ctx=T, **kinds)


# ---------------------------------------------------------------- reference forward


def reference_forward(case):
    """An independent forward in TransformerLens layout with einsum (no ops, no cache)."""
    c, p, batch = case.config, case.params, case.batch
    out = {}

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + c.layernorm_eps) * w + b

    if c.input_kind == "fewshot":
        ex = batch.exemplars @ p["embed.W_exemplar"] + p["embed.b_exemplar"]       # [B, C+1, D]
        lab = p["embed.W_label"][batch.labels]                                    # [B, C, D]
        embed = np.zeros((case.B, case.T, c.d_model))
        embed[:, 0::2], embed[:, 1::2] = ex, lab
    else:
        embed = p["embed.W_E"][batch.tokens]
    out["hook_embed"] = embed
    resid = embed
    if c.positional == "learned":
        out["hook_pos_embed"] = np.broadcast_to(p["pos_embed.W_pos"][:case.T], embed.shape)
        resid = embed + out["hook_pos_embed"]
    causal = np.tril(np.ones((case.T, case.T), bool))
    for layer in range(c.n_layers):
        b = f"blocks.{layer}."
        out[b + "hook_resid_pre"] = resid
        x = resid
        if c.layernorm:
            x = out[b + "ln1.hook_normalized"] = ln(resid, p[b + "ln1.w"], p[b + "ln1.b"])
        q, k, v = (np.einsum("btd,hde->bthe", x, p[b + "attn." + w]) for w in ("W_Q", "W_K", "W_V"))
        out[b + "attn.hook_q"], out[b + "attn.hook_k"], out[b + "attn.hook_v"] = q, k, v
        if c.positional == "rope":   # GPT-J: pairs (2i, 2i+1) as complex numbers, angle t base^(-2i/E)
            theta = np.arange(case.T)[:, None] * c.rope_base ** (-np.arange(0, c.d_head, 2) / c.d_head)
            rot = lambda a: a[..., 0::2] + 1j * a[..., 1::2]
            unrot = lambda z: np.stack([z.real, z.imag], axis=-1).reshape(z.shape[:-1] + (-1,))
            phase = np.exp(1j * theta)[None, :, None, :]                             # [1, T, 1, E/2]
            q = out[b + "attn.hook_rot_q"] = unrot(rot(q) * phase)
            k = out[b + "attn.hook_rot_k"] = unrot(rot(k) * phase)
        scores = np.einsum("bqhe,bkhe->bhqk", q, k) / np.sqrt(c.d_head)
        scores = out[b + "attn.hook_attn_scores"] = np.where(causal, scores, -np.inf)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        pattern = out[b + "attn.hook_pattern"] = e / e.sum(-1, keepdims=True)
        z = out[b + "attn.hook_z"] = np.einsum("bhqk,bkhe->bqhe", pattern, v)
        result = out[b + "attn.hook_result"] = np.einsum("bqhe,hed->bqhd", z, p[b + "attn.W_O"])
        attn_out = out[b + "hook_attn_out"] = result.sum(2)
        resid = out[b + "hook_resid_post"] = resid + attn_out
    if c.layernorm:
        resid = out["ln_final.hook_normalized"] = ln(resid, p["ln_final.w"], p["ln_final.b"])
    out["hook_logits"] = resid @ p["unembed.W_U"] + p["unembed.b_U"]
    return out


def expected_shape(case, name):
    c, B, T = case.config, case.B, case.T
    if name.endswith(("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_z")):
        return (B, T, c.n_heads, c.d_head)
    if name.endswith(("hook_attn_scores", "hook_pattern")):
        return (B, c.n_heads, T, T)
    if name.endswith("hook_result"):
        return (B, T, c.n_heads, c.d_model)
    if name == "hook_logits":
        return (B, T, c.n_outputs)
    return (B, T, c.d_model)     # embed, pos_embed, resid_*, attn_out, normalized


# ---------------------------------------------------------------- the cache


@given(case=cases())
def test_cache_names_shapes_and_values(case):
    cache = run_with_cache(case.params, case.config, case.batch)
    names = hook_names(case.config)
    assert len(set(names)) == len(names)
    assert set(cache) == set(names)
    ref = reference_forward(case)
    assert set(ref) == set(names)
    for name in names:
        assert cache[name].shape == expected_shape(case, name), name
        assert cache[name].dtype == np.float64, name
        np.testing.assert_allclose(cache[name], ref[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_cache_shapes_spelled_out():
    case = make_case(0, n_batch=2, n_positions=5, n_heads=3, d_model=6, d_head=4, n_labels=4)
    cache = run_with_cache(case.params, case.config, case.batch)
    assert cache["hook_embed"].shape == (2, 5, 6)
    assert cache["blocks.1.attn.hook_q"].shape == (2, 5, 3, 4)
    assert cache["blocks.0.attn.hook_attn_scores"].shape == (2, 3, 5, 5)
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 3, 5, 5)
    assert cache["blocks.0.attn.hook_result"].shape == (2, 5, 3, 6)
    assert cache["hook_logits"].shape == (2, 5, 4)


def test_float32_model_caches_float32():
    case = make_case(1, dtype="float32")
    clamp = Clamp("blocks.0.attn.hook_pattern", np.eye(case.T), np.s_[:, 0])
    cache = run_with_cache(case.params, case.config, case.batch, [clamp])
    assert {cache[name].dtype for name in cache} == {np.dtype(np.float32)}


@pytest.mark.parametrize("positional", ["rope", "learned"])
def test_cache_arrays_are_read_only(positional):
    case = make_case(2, positional=positional)
    clamp = Clamp("blocks.0.hook_resid_pre", 0.0, np.s_[:, 1])
    *_, cache = loss_and_grads(case.params, case.config, case.batch, [clamp],
                               record_activation_grads=True)
    assert any(name.endswith("_grad") for name in cache)
    for name in cache:
        array = cache[name]
        with pytest.raises(ValueError):
            array[...] = 0.0
        with pytest.raises(ValueError):
            array[(0,) * array.ndim] += 1.0
    with pytest.raises(TypeError):
        cache["hook_embed"] = np.zeros(3)


def test_shorthand_lookup_equals_full_names():
    case = make_case(3, positional="rope")
    *_, cache = loss_and_grads(case.params, case.config, case.batch, record_activation_grads=True)
    looked_up = 0
    for short, template in SHORTHANDS.items():
        for layer in range(case.config.n_layers):
            full = template.format(l=layer)
            if full not in cache:
                continue
            if "{l}" in template:
                assert cache[short, layer] is cache[full]
                assert cache[short + "_grad", layer] is cache[full + "_grad"]
            else:
                assert cache[short] is cache[full]
            looked_up += 1
    assert looked_up >= 2 * 12
    np.testing.assert_array_equal(cache["pattern", 1], cache["blocks.1.attn.hook_pattern"])
    assert cache["resid_pre", 0] is cache["blocks.0.hook_resid_pre"]
    assert cache["scores", 1] is cache["blocks.1.attn.hook_attn_scores"]


def test_unknown_names_raise_key_error_with_close_names():
    case = make_case(4)
    cache = run_with_cache(case.params, case.config, case.batch)
    with pytest.raises(KeyError, match=r"blocks\.0\.attn\.hook_pattern"):
        cache["blocks.0.attn.hook_patern"]
    with pytest.raises(KeyError, match="hook_logits"):
        cache["hook_logit"]
    with pytest.raises(KeyError, match="pattern"):
        cache["patern", 0]
    with pytest.raises(KeyError):
        cache["pattern", 7]            # no such layer
    with pytest.raises(KeyError):
        cache["hook_embed_grad"]       # no backward was recorded


@given(case=cases())
def test_cache_identities(case):
    cache = run_with_cache(case.params, case.config, case.batch)
    c = case.config
    first = cache["hook_embed"] + (cache["hook_pos_embed"] if c.positional == "learned" else 0.0)
    np.testing.assert_allclose(cache["resid_pre", 0], first, rtol=1e-14)
    future = ~np.tril(np.ones((case.T, case.T), bool))
    for layer in range(c.n_layers):
        pattern = cache["pattern", layer]
        np.testing.assert_allclose(pattern.sum(-1), 1.0, rtol=1e-12)
        assert np.all(pattern >= 0.0)
        assert np.all(pattern[..., future] == 0.0)
        assert np.all(cache["attn_scores", layer][..., future] == -np.inf)
        assert np.all(np.isfinite(cache["attn_scores", layer][..., ~future]))
        np.testing.assert_allclose(cache["result", layer].sum(axis=2), cache["attn_out", layer],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cache["resid_post", layer],
                                   cache["resid_pre", layer] + cache["attn_out", layer], rtol=1e-14)
        if layer + 1 < c.n_layers:
            np.testing.assert_array_equal(cache["resid_pre", layer + 1], cache["resid_post", layer])


# ---------------------------------------------------------------- clamps: forward


def site_clamp(case, draw_int, which):
    """A partial clamp on one of several kinds of site, with a random full-shape value."""
    c = case.config
    rng = np.random.default_rng(draw_int)
    layer, head, pos = draw_int % c.n_layers, draw_int % c.n_heads, draw_int % case.T
    later = 1 + draw_int % (case.T - 1)    # a query that sees at least two keys
    name, elements = {
        "pattern": (f"blocks.{layer}.attn.hook_pattern", np.s_[:, head]),
        "scores": (f"blocks.{layer}.attn.hook_attn_scores", np.s_[:, head, later, : later + 1]),
        "q": (f"blocks.{layer}.attn.hook_q", np.s_[:, later]),
        "v": (f"blocks.{layer}.attn.hook_v", np.s_[:, :, head]),
        "resid_pre": (f"blocks.{layer}.hook_resid_pre", np.s_[:, pos]),
        "result": (f"blocks.{layer}.attn.hook_result", np.s_[:, :, head]),
        "embed": ("hook_embed", np.s_[:, pos]),
    }[which]
    return Clamp(name, rng.standard_normal(expected_shape(case, name)), elements)


@given(case=cases(min_positions=2), which=st.sampled_from(["pattern", "scores", "q", "v", "resid_pre", "result", "embed"]),
       draw_int=st.integers(0, 1000))
def test_clamp_replaces_only_its_elements(case, which, draw_int):
    clamp = site_clamp(case, draw_int, which)
    clean = run_with_cache(case.params, case.config, case.batch)
    clamped = run_with_cache(case.params, case.config, case.batch, [clamp])
    names = hook_names(case.config)
    site = names.index(clamp.name)
    mask = clamp.mask(clean[clamp.name].shape)
    value = np.broadcast_to(clamp.value, mask.shape)
    np.testing.assert_array_equal(clamped[clamp.name][mask], value[mask])
    np.testing.assert_array_equal(clamped[clamp.name][~mask], clean[clamp.name][~mask])
    for name in names[:site]:                          # upstream: bit-for-bit the same
        np.testing.assert_array_equal(clamped[name], clean[name], err_msg=name)
    # downstream: the arrays computed from the clamped one change
    changed = [name for name in names[site + 1:]
               if not np.allclose(clamped[name], clean[name], rtol=1e-9, atol=1e-12)]
    assert changed, f"nothing downstream of {clamp.name} changed"
    assert not np.array_equal(clamped["hook_logits"], clean["hook_logits"])


def test_downstream_of_a_clamp_is_recomputed_from_the_clamped_array():
    case = make_case(5, positional="none", layernorm=False, n_layers=1)
    uniform = np.tril(np.ones((case.T, case.T)))
    uniform /= uniform.sum(1, keepdims=True)
    cache = run_with_cache(case.params, case.config, case.batch,
                           [Clamp("blocks.0.attn.hook_pattern", uniform)])
    # z must be the uniform causal average of v
    np.testing.assert_allclose(cache["z", 0], np.einsum("qk,bkhe->bqhe", uniform, cache["v", 0]), rtol=1e-12)
    np.testing.assert_allclose(cache["hook_logits"],
                               cache["resid_post", 0] @ case.params["unembed.W_U"] + case.params["unembed.b_U"],
                               rtol=1e-12)


def test_several_clamps_apply_in_order():
    case = make_case(6)
    first = Clamp("blocks.0.attn.hook_pattern", 0.25, np.s_[:, 0])
    second = Clamp("blocks.0.attn.hook_pattern", 0.75, np.s_[:, 0, 2])
    other = Clamp("blocks.1.attn.hook_v", 0.0, np.s_[:, :, 1])
    third = Clamp("hook_embed", 3.0, np.s_[0, 0, 0])
    cache = run_with_cache(case.params, case.config, case.batch, [first, second, other, third])
    head0 = cache["pattern", 0][:, 0]
    assert np.all(head0[:, 2] == 0.75)
    assert np.all(np.delete(head0, 2, axis=1) == 0.25)
    assert np.all(cache["v", 1][:, :, 1] == 0.0)
    assert np.any(cache["v", 1][:, :, 0] != 0.0)
    assert cache["hook_embed"][0, 0, 0] == 3.0
    # the same result whatever clamps on *other* sites are listed with them
    alone = run_with_cache(case.params, case.config, case.batch, [other])
    np.testing.assert_array_equal(alone["v", 1][:, :, 1], 0.0)


def test_callable_value_receives_batch_and_cache_so_far():
    case = make_case(7, positional="rope")
    seen = {}

    def sharpen(batch, cache):
        seen["batch"], seen["names"] = batch, list(cache)
        seen["scores"] = np.array(cache["blocks.1.attn.hook_attn_scores"])
        s = 2.0 * cache["blocks.1.attn.hook_attn_scores"]
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    cache = run_with_cache(case.params, case.config, case.batch,
                           [Clamp("blocks.1.attn.hook_pattern", sharpen, label="sharpen")])
    assert seen["batch"] is case.batch
    names = hook_names(case.config)
    assert seen["names"] == names[: names.index("blocks.1.attn.hook_pattern")]
    np.testing.assert_array_equal(seen["scores"], cache["attn_scores", 1])
    s = 2.0 * cache["attn_scores", 1]
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(cache["pattern", 1], e / e.sum(-1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("strength", [0.0, 0.3, 1.0])
def test_previous_token_pattern(strength):
    case = make_case(8, n_positions=7, n_heads=2)
    clean = run_with_cache(case.params, case.config, case.batch)
    cache = run_with_cache(case.params, case.config, case.batch, [previous_token_pattern(1, 1, strength)])
    target = previous_token_target(case.T, strength)
    for i in range(case.T):
        expected = np.zeros(case.T)
        expected[max(i - 1, 0)] += strength if i else 1.0
        if i:
            expected[i] += 1.0 - strength
        np.testing.assert_allclose(target[i], expected)
    np.testing.assert_array_equal(cache["pattern", 1][:, 1], np.broadcast_to(target, (case.B, case.T, case.T)))
    np.testing.assert_array_equal(cache["pattern", 1][:, 0], clean["pattern", 1][:, 0])
    np.testing.assert_array_equal(cache["pattern", 0], clean["pattern", 0])


def test_ready_made_ablations():
    case = make_case(9)
    clean = run_with_cache(case.params, case.config, case.batch)
    for where in ("v", "z", "result"):
        cache = run_with_cache(case.params, case.config, case.batch, [zero_ablate_head(0, 2, where)])
        assert np.all(cache[where, 0][:, :, 2] == 0.0)
        np.testing.assert_array_equal(cache["result", 0][:, :, :2], clean["result", 0][:, :, :2])
        assert np.all(cache["result", 0][:, :, 2] == 0.0)   # no values, no mixed values: no output
    cache = run_with_cache(case.params, case.config, case.batch, [mean_ablate_head(1, 0, clean)])
    mean = clean["result", 1][:, :, 0].mean(axis=0)
    np.testing.assert_allclose(cache["result", 1][:, :, 0], np.broadcast_to(mean, cache["result", 1][:, :, 0].shape))
    np.testing.assert_array_equal(cache["result", 1][:, :, 1:], clean["result", 1][:, :, 1:])


def test_graft_reproduces_the_source_run_downstream():
    case = make_case(10, positional="rope", n_layers=3)
    rng = np.random.default_rng(99)
    other = dict(case.params)
    for w in ("W_Q", "W_K", "W_V", "W_O"):          # a different layer 0, same later layers
        other[f"blocks.0.attn.{w}"] = rng.standard_normal(other[f"blocks.0.attn.{w}"].shape)
    source = run_with_cache(other, case.config, case.batch)
    target = run_with_cache(case.params, case.config, case.batch)
    names = hook_names(case.config)
    for graft_name in ("blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"):
        grafted = run_with_cache(case.params, case.config, case.batch, [graft(graft_name, source)])
        for name in names[names.index(graft_name):]:
            np.testing.assert_allclose(grafted[name], source[name], rtol=1e-13, atol=1e-15, err_msg=name)
            if name.startswith("blocks.2"):
                assert not np.allclose(grafted[name], target[name]), name
    # only W_Q, W_K differ: grafting the pattern carries everything else over too
    other = dict(case.params, **{"blocks.0.attn.W_Q": -case.params["blocks.0.attn.W_Q"] * 3})
    source = run_with_cache(other, case.config, case.batch)
    grafted = run_with_cache(case.params, case.config, case.batch,
                             [graft("blocks.0.attn.hook_pattern", source)])
    np.testing.assert_allclose(grafted["hook_logits"], source["hook_logits"], rtol=1e-12)
    assert not np.allclose(grafted["hook_logits"], target["hook_logits"])


# ---------------------------------------------------------------- clamps: backward


@given(case=cases(min_heads=2, min_positions=2), layer_pick=st.integers(0, 2), head_pick=st.integers(0, 2))
def test_gradient_stops_at_a_clamped_head_pattern(case, layer_pick, head_pick):
    c = case.config
    layer, head = layer_pick % c.n_layers, head_pick % c.n_heads
    b = f"blocks.{layer}.attn."
    clamp = previous_token_pattern(layer, head, 0.6)
    _, _, grads, cache = loss_and_grads(case.params, c, case.batch, [clamp], record_activation_grads=True)
    others = [h for h in range(c.n_heads) if h != head]
    for w in ("W_Q", "W_K"):
        assert np.all(grads[b + w][head] == 0.0), w
        assert np.abs(grads[b + w][others]).max() > 0.0, w
    assert np.abs(grads[b + "W_V"][head]).max() > 0.0   # the head still moves its values
    assert np.all(cache["pattern_grad", layer][:, head] == 0.0)
    assert np.all(cache["attn_scores_grad", layer][:, head] == 0.0)
    assert np.abs(cache["pattern_grad", layer][:, others]).max() > 0.0
    # and without the clamp the head's W_Q does get a gradient
    _, _, clean_grads, _ = loss_and_grads(case.params, c, case.batch)
    assert np.abs(clean_grads[b + "W_Q"][head]).max() > 0.0


@pytest.mark.parametrize("positional", ["rope", "learned", "none"])
def test_whole_pattern_clamped_gives_no_query_key_gradient(positional):
    case = make_case(11, positional=positional, n_layers=2)
    uniform = np.tril(np.ones((case.T, case.T)))
    uniform /= uniform.sum(1, keepdims=True)
    _, _, grads, cache = loss_and_grads(case.params, case.config, case.batch,
                                        [Clamp("blocks.1.attn.hook_pattern", uniform)],
                                        record_activation_grads=True)
    assert np.all(grads["blocks.1.attn.W_Q"] == 0.0)
    assert np.all(grads["blocks.1.attn.W_K"] == 0.0)
    assert np.abs(grads["blocks.1.attn.W_V"]).max() > 0.0
    assert np.abs(grads["blocks.0.attn.W_Q"]).max() > 0.0
    assert np.all(cache["q_grad", 1] == 0.0) and np.all(cache["k_grad", 1] == 0.0)


def test_gradient_stops_at_ablated_values_and_results():
    case = make_case(12, n_heads=3)
    _, _, grads, cache = loss_and_grads(case.params, case.config, case.batch,
                                        [zero_ablate_head(0, 1, "v")], record_activation_grads=True)
    assert np.all(grads["blocks.0.attn.W_V"][1] == 0.0)
    assert np.all(grads["blocks.0.attn.W_O"][1] == 0.0)     # z of head 1 is zero
    assert np.all(cache["v_grad", 0][:, :, 1] == 0.0)
    assert np.abs(grads["blocks.0.attn.W_V"][[0, 2]]).max() > 0.0
    _, _, grads, cache = loss_and_grads(case.params, case.config, case.batch,
                                        [zero_ablate_head(1, 2, "result")], record_activation_grads=True)
    for w in ("W_Q", "W_K", "W_V", "W_O"):
        assert np.all(grads["blocks.1.attn." + w][2] == 0.0), w
        assert np.abs(grads["blocks.1.attn." + w][:2]).max() > 0.0, w
    assert np.all(cache["result_grad", 1][:, :, 2] == 0.0)
    assert np.abs(cache["result_grad", 1][:, :, :2]).max() > 0.0


def test_gradient_stops_at_a_clamped_residual_position():
    """Clamping every layer-0 input at positions >= 1 leaves only position 0 to reach the
    embedding: the embedding gradient is zero exactly at the clamped positions."""
    case = make_case(13, input_kind="tokens", d_vocab=5, positional="learned")
    clamp = Clamp("blocks.0.hook_resid_pre", 0.5, np.s_[:, 1:])
    _, _, grads, cache = loss_and_grads(case.params, case.config, case.batch, [clamp],
                                        record_activation_grads=True)
    assert np.all(cache["hook_embed_grad"][:, 1:] == 0.0)
    assert np.abs(cache["hook_embed_grad"][:, 0]).max() > 0.0
    assert np.all(grads["pos_embed.W_pos"][1:] == 0.0)
    assert np.abs(grads["pos_embed.W_pos"][0]).max() > 0.0
    tokens = case.batch.tokens
    only_later = np.setdiff1d(np.unique(tokens[:, 1:]), np.unique(tokens[:, 0]))
    assert np.all(grads["embed.W_E"][only_later] == 0.0)


# ---------------------------------------------------------------- clamps in evaluation


def test_clamps_change_the_evaluation_loss():
    rng = np.random.default_rng(14)
    features = rng.standard_normal((20, 2, 8)).astype(np.float32)
    task = FewShotTask(TaskConfig.small(eval_size=40, other_exemplars=(1,)), features=features)
    config = ModelConfig.small(d_model=8, d_head=4, d_feature=8, dtype="float64")
    params = init_params(config, 0)
    params = {k: v + rng.normal(0.0, 0.3, v.shape) for k, v in params.items()}
    batch = task.eval_sets()["train"]
    clamps = [previous_token_pattern(0, 0, 1.0), zero_ablate_head(1, 1, "result")]
    clean_loss, _ = train.evaluate(params, config, batch)
    clamped_loss, _ = train.evaluate(params, config, batch, clamps)
    assert np.isfinite(clean_loss) and np.isfinite(clamped_loss)
    assert abs(clamped_loss - clean_loss) > 1e-6
    expected, _, _, _ = loss_and_grads(params, config, batch, clamps)
    assert clamped_loss == pytest.approx(expected, rel=1e-10)
    assert clean_loss == pytest.approx(loss_and_grads(params, config, batch)[0], rel=1e-10)


# ---------------------------------------------------------------- errors


def test_clamp_on_unknown_name_lists_close_names():
    case = make_case(15)
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.hook_pattern"):
        run_with_cache(case.params, case.config, case.batch, [Clamp("blocks.0.attn.hook_patterns", 0.0)])
    # a name that exists in other configs but not in this one (no RoPE here)
    case = make_case(15, positional="none")
    with pytest.raises(ValueError, match="hook_rot_q"):
        run_with_cache(case.params, case.config, case.batch, [Clamp("blocks.0.attn.hook_rot_q", 0.0)])


def test_clamp_value_of_wrong_shape_names_the_expected_shape():
    case = make_case(16, n_batch=2, n_positions=5, n_heads=3)
    bad = Clamp("blocks.0.attn.hook_pattern", np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3, 5, 5\)") as info:
        run_with_cache(case.params, case.config, case.batch, [bad])
    assert "blocks.0.attn.hook_pattern" in str(info.value)
    with pytest.raises(ValueError, match=r"\(2, 3, 5, 5\)"):
        run_with_cache(case.params, case.config, case.batch,
                       [Clamp("blocks.0.attn.hook_pattern", lambda batch, cache: np.zeros(7))])
    with pytest.raises(ValueError, match="index"):
        run_with_cache(case.params, case.config, case.batch,
                       [Clamp("blocks.0.attn.hook_pattern", 0.0, np.s_[:, 9])])


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_previous_token_strength_outside_unit_interval(strength):
    with pytest.raises(ValueError, match="strength"):
        previous_token_pattern(0, 0, strength)
    with pytest.raises(ValueError, match="strength"):
        previous_token_target(4, strength)


def test_zero_ablate_head_rejects_unknown_site():
    with pytest.raises(ValueError, match="where"):
        zero_ablate_head(0, 0, "pattern")


@pytest.mark.parametrize("field, value, words", [
    ("n_layers", 0, ["n_layers", "0", "positive"]),
    ("n_heads", -2, ["n_heads", "-2", "positive"]),
    ("d_model", 0, ["d_model", "positive"]),
    ("d_head", 0, ["d_head", "positive"]),
    ("n_ctx", 0, ["n_ctx", "positive"]),
    ("d_model", 2.5, ["d_model", "2.5"]),
    ("positional", "sinusoidal", ["positional", "sinusoidal", "rope", "learned", "none"]),
    ("dtype", "float16", ["dtype", "float16", "float32"]),
    ("input_kind", "pixels", ["input_kind", "pixels", "fewshot", "tokens"]),
])
def test_model_config_validation_messages(field, value, words):
    with pytest.raises(ValueError) as info:
        ModelConfig(**{field: value})
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_model_config_odd_d_head_only_fails_with_rope():
    with pytest.raises(ValueError) as info:
        ModelConfig(d_head=5, positional="rope")
    assert "d_head" in str(info.value) and "5" in str(info.value) and "even" in str(info.value)
    ModelConfig(d_head=5, positional="learned")
    ModelConfig(d_head=5, positional="none")


def test_fewshot_batch_longer_than_learned_position_table():
    case = make_case(17, n_positions=7, positional="learned", n_ctx=5)
    with pytest.raises(ValueError, match="n_ctx") as info:
        run_with_cache(case.params, case.config, case.batch)
    assert "7" in str(info.value) and "5" in str(info.value)
    with pytest.raises(ValueError, match="n_ctx"):
        loss_and_grads(case.params, case.config, case.batch)
    # RoPE and no positions have no table: the same batch runs
    for positional in ("rope", "none"):
        ok = make_case(17, n_positions=7, positional=positional, n_ctx=5)
        assert run_with_cache(ok.params, ok.config, ok.batch)["hook_logits"].shape == (3, 7, 4)


def test_clamp_value_that_only_broadcasts_with_the_site_is_rejected():
    """A value must broadcast *to* the site's shape, not merely with it: a [2, 1, T, T]
    pattern for a batch of 1 would otherwise grow every downstream array."""
    case = make_case(18, n_batch=1, n_positions=3, n_heads=2)
    site_shape = r"\(1, 2, 3, 3\)"
    for value in (np.full((2, 1, 3, 3), 1 / 3), np.full((1, 1, 2, 3, 3), 1 / 3)):
        with pytest.raises(ValueError, match=site_shape):
            run_with_cache(case.params, case.config, case.batch,
                           [Clamp("blocks.0.attn.hook_pattern", value)])


def test_token_targets_and_numpy_layer_keys():
    config = ModelConfig(n_layers=1, n_heads=2, d_model=4, d_head=2, input_kind="tokens",
                         d_vocab=5, dtype="float64")
    params = init_params(config, 0)
    tokens = np.array([[1, 2, 3]])
    with pytest.raises(ValueError, match="batch.targets"):
        loss_and_grads(params, config, TokenBatch(tokens, np.array([[-1, 2, 7]])))
    with pytest.raises(ValueError, match="batch.targets"):
        loss_and_grads(params, config, TokenBatch(tokens, np.array([2, 3])))
    cache = run_with_cache(params, config, TokenBatch(tokens, np.array([[-1, 2, 3]])))
    assert cache["pattern", np.int64(0)] is cache["pattern", 0]
