"""The whole model's hand-written backward against central finite differences (float64).

Configs are drawn by hypothesis: 1-3 layers, 1-4 heads, d_head 2-8 (even with RoPE),
d_model 4-8, every positional kind, LayerNorm on and off, few-shot inputs (C = 1..3
context pairs, T = 3, 5, 7; the batch is built by hand because FewShotTask needs C >= 2)
and token inputs (T = 2..8, targets with -1 = no loss). Parameters are perturbed away
from their initial values first, so that LayerNorm gains and biases, the unembedding
bias etc. are non-trivial.

Three kinds of check:

* Parameter gradients: a few sampled coordinates of every parameter, perturbed in
  place, (L(p + h e_i) - L(p - h e_i)) / 2h against grads[name].

* Activation ("input") gradients: backward with record_activation_grads=True stores
  dL/dA for every cache array A as A + "_grad". To differentiate L with respect to A
  numerically we clamp A: a Clamp(A, a) with all elements replaced makes the forward use
  the constant a in place of the computed A, so L_clamped(a) is the loss as a function
  of that activation with everything upstream held fixed, and at a = A (the computed
  value) the forward is exactly the unclamped one. Hence dL_clamped/da at a = A is the
  total derivative dL/dA that backward records. This checks every recorded activation
  gradient, from hook_logits back to hook_embed, with the model's own clamp machinery
  doing nothing more than substituting an array. For few-shot inputs we also check
  d loss / d exemplar features, by finite differences on batch.exemplars themselves
  (no clamps involved), against the chain rule through the exemplar embedding:
  dL/dx[b, i, f] = sum_d W_exemplar[f, d] * hook_embed_grad[b, 2 i, d] (the exemplars
  sit at even positions). With learned positions hook_embed_grad is dL/d(embed + pos),
  which is also dL/d embed.

* The same with clamps in place (ideal previous-token pattern with strength in (0, 1),
  zero-ablation of a head's values, mixed values or result, partial clamps on attention
  scores, queries, the attention output and the residual stream): the backward must match finite differences of the
  clamped loss. At a clamped element itself the gradient is deliberately not passed
  upstream (backward records 0 there), so activation gradients are compared on the
  elements no clamp replaces.
"""
from typing import NamedTuple

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from tinyinduction.clamp import Clamp, previous_token_pattern, zero_ablate_head
from tinyinduction.config import ModelConfig
from tinyinduction.model import (TokenBatch, hook_names, init_params, loss_and_grads,
                                 loss_from_cache, run_with_cache)
from tinyinduction.tasks.fewshot import FewShotBatch

# The step of the fourth-order stencil: its truncation error ~h^4 stays far below ATOL,
# while a larger h than the usual 1e-6 keeps rounding (~1e-16 |loss| / h) small too:
# with h = 1e-6 a setup whose loss was ~100 differed from the (right) analytic
# gradient by 1.2e-8 from rounding alone.
H_STEP = 1e-4
RTOL = 1e-5
ATOL = 1e-8


class Setup(NamedTuple):
    config: ModelConfig
    params: dict
    batch: object
    rng: np.random.Generator


@st.composite
def setups(draw, max_layers=3):
    positional = draw(st.sampled_from(["rope", "learned", "none"]))
    input_kind = draw(st.sampled_from(["fewshot", "tokens"]))
    n_layers = draw(st.integers(1, max_layers))
    n_heads = draw(st.integers(1, 4))
    d_head = 2 * draw(st.integers(1, 4)) if positional == "rope" else draw(st.integers(2, 8))
    d_model = draw(st.integers(4, 8))
    layernorm = draw(st.booleans())
    n_batch = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if input_kind == "fewshot":
        n_pairs = draw(st.integers(1, 3))
        n_positions = 2 * n_pairs + 1
        d_feature, n_labels = draw(st.integers(2, 5)), draw(st.integers(2, 5))
        kinds = dict(d_feature=d_feature, n_labels=n_labels)
        batch = FewShotBatch(
            exemplars=rng.standard_normal((n_batch, n_pairs + 1, d_feature)),
            labels=rng.integers(0, n_labels, (n_batch, n_pairs)),
            target=rng.integers(0, n_labels, n_batch),
            query_pair=np.zeros(n_batch, np.int64),               # not used by the model
            classes=np.zeros((n_batch, n_pairs + 1), np.int64))   # not used by the model
    else:
        n_positions = draw(st.integers(2, 8))
        d_vocab = draw(st.integers(5, 7))
        kinds = dict(d_vocab=d_vocab)
        targets = rng.integers(0, d_vocab, (n_batch, n_positions))
        targets[rng.random(targets.shape) < 0.3] = -1
        targets[0, -1] = rng.integers(0, d_vocab)                # at least one loss position
        batch = TokenBatch(rng.integers(0, d_vocab, (n_batch, n_positions)), targets)
    config = ModelConfig(
        n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head,
        positional=positional, layernorm=layernorm, dtype="float64", input_kind=input_kind,
        n_ctx=n_positions + draw(st.integers(0, 2)), **kinds)
    params = init_params(config, seed % 1000)
    params = {name: value + rng.normal(0.0, 0.3, value.shape) for name, value in params.items()}
    return Setup(config, params, batch, rng)


def clamped_loss(setup, clamps=()):
    cache = run_with_cache(setup.params, setup.config, setup.batch, clamps)
    return loss_from_cache(setup.config, setup.batch, cache)[0]


def central_difference(loss_at):
    """d loss / dx from loss_at(offset), by the fourth-order central stencil (see H_STEP)."""
    h = H_STEP
    return (8 * (loss_at(h) - loss_at(-h)) - (loss_at(2 * h) - loss_at(-2 * h))) / (12 * h)


def assert_close(analytic, numeric, what):
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    err = np.abs(analytic - numeric)
    bad = err > RTOL * np.abs(numeric) + ATOL
    assert not bad.any(), (
        f"{what}: analytic {analytic[bad]} vs finite differences {numeric[bad]} "
        f"(max abs error {err.max():.3g})")


def check_param_grads(setup, clamps=(), per_param=3):
    """Every parameter: a few sampled coordinates against central differences."""
    loss, _, grads, _ = loss_and_grads(setup.params, setup.config, setup.batch, clamps)
    assert np.isclose(loss, clamped_loss(setup, clamps), rtol=1e-13)
    assert set(grads) == set(setup.params)
    rows = []
    for name, value in setup.params.items():
        assert grads[name].shape == value.shape, name
        flat = value.reshape(-1)
        for i in setup.rng.choice(flat.size, size=min(per_param, flat.size), replace=False):
            old = flat[i]

            def loss_at(offset):
                flat[i] = old + offset
                return clamped_loss(setup, clamps)
            numeric = central_difference(loss_at)
            flat[i] = old
            rows.append((f"{name}[{np.unravel_index(i, value.shape)}]",
                         grads[name].reshape(-1)[i], numeric))
    names, analytic, numeric = zip(*rows)
    analytic, numeric = np.array(analytic), np.array(numeric)
    bad = np.abs(analytic - numeric) > RTOL * np.abs(numeric) + ATOL
    assert not bad.any(), "parameter gradients differ from finite differences:\n" + "\n".join(
        f"  {n}: analytic {a:.10g}, numeric {m:.10g}" for n, a, m, b in zip(names, analytic, numeric, bad) if b)
    return grads


def clamp_mask(clamps, name, shape):
    """Elements of cache array `name` that some clamp replaces."""
    mask = np.zeros(shape, bool)
    for clamp in clamps:
        if clamp.name == name:
            mask |= clamp.mask(shape)
    return mask


def check_activation_grads(setup, clamps=(), per_name=2):
    """Recorded name_grad against finite differences through a whole-array clamp."""
    _, _, _, cache = loss_and_grads(setup.params, setup.config, setup.batch, clamps,
                                    record_activation_grads=True)
    checked = 0
    for name in hook_names(setup.config):
        base = np.array(cache[name])                 # writable copy, TransformerLens shape
        grad = cache[name + "_grad"]
        assert grad.shape == base.shape, name
        replaced = clamp_mask(clamps, name, base.shape)
        allowed = np.isfinite(base) & ~replaced      # -inf scores cannot be perturbed
        # masked (future) attention scores: the loss cannot depend on them
        assert np.all(grad[~np.isfinite(base)] == 0.0), name
        candidates = np.flatnonzero(allowed)
        if len(candidates) == 0:
            continue
        coords = setup.rng.choice(candidates, size=min(per_name, len(candidates)), replace=False)
        numeric = []
        for i in coords:
            def loss_at(offset):
                value = base.copy()
                value.reshape(-1)[i] += offset
                return clamped_loss(setup, (*clamps, Clamp(name, value)))
            numeric.append(central_difference(loss_at))
        assert_close(grad.reshape(-1)[coords], numeric, f"{name}_grad at flat {coords}")
        checked += 1
    assert checked >= 3
    return cache


# ---------------------------------------------------------------- without clamps


@given(setup=setups())
def test_parameter_gradients_match_finite_differences(setup):
    grads = check_param_grads(setup)
    # the check above is only meaningful if the gradients are not all ~0 (a rare draw, e.g.
    # two labels and a confidently right model, has them ~1e-7: hypothesis draws another)
    assume(max(np.abs(g).max() for g in grads.values()) > 1e-4)
    if setup.config.positional == "learned":   # rows of the table beyond T are never used
        n_positions = setup.batch.exemplars.shape[1] * 2 - 1 if setup.config.input_kind == "fewshot" \
            else setup.batch.tokens.shape[1]
        assert np.all(grads["pos_embed.W_pos"][n_positions:] == 0.0)


@given(setup=setups())
def test_activation_gradients_match_finite_differences(setup):
    check_activation_grads(setup)


@given(setup=setups().filter(lambda s: s.config.input_kind == "fewshot"))
def test_exemplar_feature_gradients_match_finite_differences(setup):
    c, p = setup.config, setup.params
    _, _, _, cache = loss_and_grads(p, c, setup.batch, record_activation_grads=True)
    d_embed = cache["hook_embed_grad"]                                   # [B, T, D]
    # embed[b, 2 i] = exemplars[b, i] @ W_exemplar + b_exemplar
    chain = np.einsum("fd,bid->bif", p["embed.W_exemplar"], d_embed[:, 0::2])   # [B, C+1, F]
    exemplars = setup.batch.exemplars          # float64, contiguous: perturbed in place
    flat = exemplars.reshape(-1)
    coords = setup.rng.choice(flat.size, size=min(6, flat.size), replace=False)
    numeric = []
    for i in coords:
        old = flat[i]

        def loss_at(offset):
            flat[i] = old + offset
            return clamped_loss(setup)
        numeric.append(central_difference(loss_at))
        flat[i] = old
    assert_close(chain.reshape(-1)[coords], numeric, "d loss / d exemplars")
    # the query exemplar (last item) always matters; its gradient is not zero
    assert np.abs(chain[:, -1]).max() > 0.0


# ---------------------------------------------------------------- with clamps


@st.composite
def clamped_setups(draw):
    setup = draw(setups())
    c = setup.config
    B = setup.batch.exemplars.shape[0] if c.input_kind == "fewshot" else setup.batch.tokens.shape[0]
    T = setup.batch.exemplars.shape[1] * 2 - 1 if c.input_kind == "fewshot" else setup.batch.tokens.shape[1]
    layer = st.integers(0, c.n_layers - 1)
    head = st.integers(0, c.n_heads - 1)
    pos = st.integers(0, T - 1)
    rng = setup.rng
    kinds = draw(st.lists(st.sampled_from(["prev", "zero_v", "zero_result", "zero_z", "scores", "q",
                                                          "attn_out", "resid_pre"]),
                          min_size=1, max_size=4, unique=True))
    clamps = []
    for kind in kinds:
        l, h = draw(layer), draw(head)
        if kind == "prev":
            clamps.append(previous_token_pattern(l, h, draw(st.floats(0.05, 0.95))))
        elif kind == "zero_v":
            clamps.append(zero_ablate_head(l, h, "v"))
        elif kind == "zero_result":
            clamps.append(zero_ablate_head(l, h, "result"))
        elif kind == "zero_z":
            clamps.append(zero_ablate_head(l, h, "z"))
        elif kind == "attn_out":  # the attention output at one position, a constant vector
            clamps.append(Clamp(f"blocks.{l}.hook_attn_out", rng.standard_normal(c.d_model), np.s_[:, draw(pos)]))
        elif kind == "scores":   # one query row of one head, visible keys only or the whole row
            i = draw(pos)
            keys = slice(None) if draw(st.booleans()) else slice(0, i + 1)
            value = rng.standard_normal((B, c.n_heads, T, T))
            clamps.append(Clamp(f"blocks.{l}.attn.hook_attn_scores", value, np.s_[:, h, i, keys]))
        elif kind == "q":        # every head's query at one position
            value = rng.standard_normal((B, T, c.n_heads, c.d_head))
            clamps.append(Clamp(f"blocks.{l}.attn.hook_q", value, np.s_[:, draw(pos)]))
        else:                    # one sequence's residual stream at one position
            value = rng.standard_normal((B, T, c.d_model))
            clamps.append(Clamp(f"blocks.{l}.hook_resid_pre", value, (draw(st.integers(0, B - 1)), draw(pos))))
    return setup, tuple(clamps)


@given(case=clamped_setups())
def test_parameter_gradients_with_clamps_match_finite_differences(case):
    setup, clamps = case
    check_param_grads(setup, clamps)


@given(case=clamped_setups())
def test_activation_gradients_with_clamps_match_finite_differences(case):
    setup, clamps = case
    check_activation_grads(setup, clamps)
