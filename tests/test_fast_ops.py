"""The speed work's guarantees that finite differences cannot see.

- float32 stays float32: a float64 NumPy scalar (e.g. 1 / np.sqrt(d_head)) promotes a
  float32 array to float64 under NumPy 2, which once made half of the backward pass run
  in float64 (and its matmuls on mixed types, outside the float32 BLAS kernels).
"""
import json
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from test_model_gradients import setups
from tinyinduction import ops
from tinyinduction.clamp import Clamp
from tinyinduction.config import ModelConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.model import (TokenBatch, init_params, loss_and_accuracy, loss_and_grads,
                                 loss_from_cache, run_with_cache, training_loss_and_grads)
from tinyinduction.optim import Adam
from tinyinduction.tasks.fewshot import FewShotTask


def _text_model(T, d_vocab=40, dtype="float32", **changes):
    """A token model on T-position windows with a target everywhere (as text), and a batch."""
    config = ModelConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, input_kind="tokens",
                         d_vocab=d_vocab, n_ctx=T, dtype=dtype, **changes)
    window = np.random.default_rng(T).integers(0, d_vocab, (3, T + 1))
    return config, TokenBatch(window[:, :-1], window[:, 1:])


def test_float32_model_keeps_float32_everywhere():
    config = ModelConfig.small()
    batch = FewShotTask(TaskConfig.small()).sample(np.random.default_rng(0), 4)
    text = _text_model(ops.heads.HEADS_OUTER_FROM + 1)     # heads outer, a large embedding table
    for config, batch in ((config, batch), text):
        params = init_params(config, seed=0)
        _, _, grads, cache = loss_and_grads(params, config, batch, record_activation_grads=True)
        assert {name: g.dtype for name, g in grads.items() if g.dtype != np.float32} == {}
        assert {name: a.dtype for name, a in cache.items() if a.dtype != np.float32} == {}
        _, _, grads = training_loss_and_grads(params, config, batch)
        assert {name: g.dtype for name, g in grads.items() if g.dtype != np.float32} == {}


@given(setup=setups(max_layers=2), long=st.booleans(), clamped=st.booleans())
def test_heads_outer_memory_order_gives_the_same_model(setup, long, clamped):
    """Long sequences store attention arrays heads outermost and contract them by batched
    matmuls (ops.heads_outer): the same loss, accuracy, parameter and activation
    gradients as the feature-major einsums, in float64, with and without clamps (a clamp's
    site stores its array feature-major: the two orders meet)."""
    config, batch, params = setup.config, setup.batch, setup.params
    if long:   # a text-like window past the threshold
        config, batch = _text_model(ops.heads.HEADS_OUTER_FROM + 3, dtype="float64",
                                    positional=config.positional, layernorm=config.layernorm)
        params = init_params(config, 4)
    clamps = [Clamp("blocks.0.attn.hook_pattern", 0.25, np.s_[:, 0]),
              Clamp("blocks.0.attn.hook_v", 0.0, np.s_[:, :, -1])] if clamped else []
    saved = ops.heads.HEADS_OUTER_FROM
    results = []
    try:
        for threshold in (10**9, 1):    # feature-major everywhere; heads outer everywhere
            ops.heads.HEADS_OUTER_FROM = threshold
            loss, acc, grads, cache = loss_and_grads(params, config, batch, clamps, True)
            results.append((loss, acc, grads, cache, training_loss_and_grads(params, config, batch, clamps)))
    finally:
        ops.heads.HEADS_OUTER_FROM = saved
    (loss, acc, grads, cache, lean), (loss_h, acc_h, grads_h, cache_h, lean_h) = results
    np.testing.assert_allclose((loss_h, acc_h, lean_h[0]), (loss, acc, lean[0]), rtol=1e-12)
    for name in grads:
        scale = np.abs(grads[name]).max()
        np.testing.assert_allclose(grads_h[name], grads[name], rtol=0, atol=1e-12 * scale, err_msg=name)
        np.testing.assert_allclose(lean_h[2][name], grads[name], rtol=0, atol=1e-12 * scale, err_msg=name)
    for name in cache:
        np.testing.assert_allclose(cache_h[name], cache[name], rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(cache[name][np.isfinite(cache[name])]).max(initial=0)),
                                   err_msg=name)


# ---------------------------------------------------------------- fused primitives = plain ones

seeds = st.integers(0, 2**32 - 1)
small = st.integers(1, 4)


def _rand(rng, *shape):
    return rng.standard_normal(shape)


@given(seed=seeds, E=small, T=small, H=small, B=small, D=small)
def test_attn_out_is_the_sum_of_head_results(seed, E, T, H, B, D):
    rng = np.random.default_rng(seed)
    z, W_O = _rand(rng, E, T, H, B), _rand(rng, H, E, D)
    fused, saved = ops.attn_out_forward(z, W_O)
    plain, plain_saved = ops.head_result_forward(z, W_O)
    np.testing.assert_allclose(fused, plain.sum(axis=0), rtol=1e-12, atol=1e-12)
    # the backward of the fused op is head_result_backward with every head given d_out
    d_out = _rand(rng, D, T, B)
    dz, dW_O = ops.head_result_backward_shared(d_out, saved)
    dz_plain, dW_O_plain = ops.head_result_backward(np.broadcast_to(d_out, (H, D, T, B)), plain_saved)
    np.testing.assert_allclose(dz, dz_plain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW_O, dW_O_plain, rtol=1e-12, atol=1e-12)


def test_lazy_head_results_equal_eager_ones():
    """hook_result is computed only when read, unless clamped; both give the same array,
    and reading it after the parameters changed in place still gives the forward's value."""
    config = ModelConfig.small(dtype="float64")
    batch = FewShotTask(TaskConfig.small()).sample(np.random.default_rng(1), 3)
    params = init_params(config, seed=1)
    name = "blocks.1.attn.hook_result"
    lazy = loss_and_grads(params, config, batch)[3]
    # a clamp that replaces no element forces the eager path
    eager = loss_and_grads(params, config, batch, [Clamp(name, 0.0, np.zeros((3, 5, 2, 32), bool))])[3]
    params["blocks.1.attn.W_O"] += 1.0
    np.testing.assert_allclose(lazy[name], eager[name], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lazy[name].sum(axis=2), lazy["attn_out", 1], rtol=1e-12, atol=1e-12)


even_heads = st.sampled_from([2, 4, 6, 8])


@given(seed=seeds, E=even_heads, T=st.integers(1, 6), H=small, B=small, stacked=st.booleans())
def test_rope_as_a_matmul_equals_the_elementwise_rotation(seed, E, T, H, B, stacked):
    rng = np.random.default_rng(seed)
    shape = ((2,) if stacked else ()) + (E, T, H, B)     # queries and keys stacked, or one
    x, dy = _rand(rng, *shape), _rand(rng, *shape)
    cos, signed_sin = ops.rope_tables(T, E, dtype=np.float64)
    fused, R = ops.rope_matmul_forward(x, ops.rope_matrices(cos, signed_sin))
    plain, plain_saved = ops.rope_forward(x, cos, signed_sin)
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ops.rope_matmul_backward(dy, R), ops.rope_backward(dy, plain_saved),
                               rtol=1e-12, atol=1e-12)


@given(setup=setups(max_layers=2), smeared_key=st.booleans())
def test_loss_only_pass_equals_the_full_forward(setup, smeared_key):
    """Evaluation's lean pass (no cache; a few-shot model's last block for the query
    only) gives the loss and accuracy of run_with_cache + loss_from_cache."""
    config = setup.config.replace(smeared_key=smeared_key)
    params = init_params(config, 3) if smeared_key else setup.params
    lean = loss_and_accuracy(params, config, setup.batch)
    full = loss_from_cache(config, setup.batch, run_with_cache(params, config, setup.batch))
    np.testing.assert_allclose(lean, full, rtol=1e-12, atol=1e-14)


def test_loss_only_pass_with_clamps_is_the_clamped_forward():
    config = ModelConfig.small(dtype="float64")
    batch = FewShotTask(TaskConfig.small()).sample(np.random.default_rng(2), 5)
    params = init_params(config, seed=2)
    clamps = [Clamp("blocks.0.attn.hook_pattern", 0.2)]
    clamped = loss_and_accuracy(params, config, batch, clamps)
    assert clamped == loss_from_cache(config, batch, run_with_cache(params, config, batch, clamps))
    assert clamped != loss_and_accuracy(params, config, batch)


@given(setup=setups(max_layers=2), smeared_key=st.booleans())
def test_training_step_without_cache_equals_loss_and_grads(setup, smeared_key):
    """train's step (no cache; a few-shot model's last block for the query row only,
    forward and backward) gives loss_and_grads' loss, accuracy and gradients."""
    config = setup.config.replace(smeared_key=smeared_key)
    params = init_params(config, 3) if smeared_key else setup.params
    loss, acc, grads, _ = loss_and_grads(params, config, setup.batch)
    lean_loss, lean_acc, lean_grads = training_loss_and_grads(params, config, setup.batch)
    np.testing.assert_allclose((lean_loss, lean_acc), (loss, acc), rtol=1e-12)
    assert lean_grads.keys() == grads.keys()
    for name in grads:
        np.testing.assert_allclose(lean_grads[name], grads[name], rtol=1e-10, atol=1e-14, err_msg=name)


def test_bench_prints_where_the_step_goes(capsys):
    """bench splits the step into forward, backward, Adam and the matrix-product floor."""
    from tinyinduction.cli import main
    assert main(["bench", "--preset", "small", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("forward", "backward", "Adam", "matrix products"))
    assert main(["bench", "--preset", "small", "--repeats", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    parts = [result[key] for key in ("ms_forward", "ms_backward", "ms_adam", "ms_matmuls_only")]
    assert all(part > 0 for part in parts)


def test_bench_times_a_clamped_step_against_the_plain_one(capsys):
    """bench --clamp / --condition: the ratios as JSON (no timing asserted: speed is
    measured, not tested), and a clear refusal of both at once."""
    from tinyinduction.cli import main
    assert main(["bench", "--preset", "small", "--repeats", "3", "--clamp", "A", "--only-head", "1:1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"ms_per_step", "plain_ms_per_step", "ratio", "eval_ms", "plain_eval_ms",
            "eval_ratio"} <= set(result) and result["repeats"] == 10    # one block of 10
    assert "pattern" in result["clamps"] and result["ratio"] > 0 and result["eval_ratio"] > 0
    assert main(["bench", "--preset", "small", "--repeats", "2", "--condition", "C", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["condition"] for row in rows] == ["C"] and rows[0]["ratio"] > 0
    assert main(["bench", "--condition", "A", "--clamp", "A"]) == 2
    assert "--condition names its own clamps" in capsys.readouterr().err


def test_the_speed_sections_bench_commands_build_their_conditions_clamps():
    """The reference manual's clamp-ratio table: one `bench --clamp/--only-head` command per
    condition of subcircuits.condition_specs (induction head 3, previous-token head 2, as
    `bench --condition`), each building that condition's clamps (in any order within a pass)."""
    import re
    import shlex
    from pathlib import Path
    from tinyinduction.cli import _clamps_from_options, build_parser
    from tinyinduction.presets import preset
    from tinyinduction.subcircuits import CONDITIONS, build_clamps, condition_specs
    text = (Path(__file__).resolve().parent.parent / "tinyinduction" / "README.md").read_text()
    rows = dict(re.findall(r"^\| ([\w+]+) \| `python -m tinyinduction (bench [^`]*)` \|", text, re.M))
    assert sorted(rows) == sorted(CONDITIONS)
    model = preset("paper")[0]

    def clamps_by_pass(passes):
        return {p.name: sorted(map(str, p.clamps)) for p in passes.passes}

    for name, command in rows.items():
        args = build_parser().parse_args(shlex.split(command))
        assert args.json and not args.condition
        built = _clamps_from_options(args, model, announce=False)
        expected = build_clamps(condition_specs(name, induction_head=3, previous_token_head=2), model)
        assert clamps_by_pass(built) == clamps_by_pass(expected), name


@given(seed=seeds, n=st.integers(1, 50), steps=st.integers(1, 5), overwrite=st.booleans())
def test_adam_in_place_equals_the_textbook_update(seed, n, steps, overwrite):
    """The in-place update (m = b1 (m - g) + g, corrections folded into two scalars,
    gradients optionally used as scratch) is Kingma & Ba's Adam."""
    rng = np.random.default_rng(seed)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    params = rng.standard_normal(n)
    expected, m, v = params.copy(), np.zeros(n), np.zeros(n)
    optimizer = Adam(n, lr, b1, b2, eps, dtype=np.float64)
    for t in range(1, steps + 1):
        g = rng.standard_normal(n)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        expected -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        given_g = g.copy()
        optimizer.step(params, given_g, overwrite_grads=overwrite)
        if not overwrite:
            np.testing.assert_array_equal(given_g, g)          # the caller's gradients kept
    np.testing.assert_allclose(params, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(optimizer.m, m, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(optimizer.v, v, rtol=1e-10, atol=1e-15)


@given(seed=seeds, D=small, T=st.integers(1, 14), H=small, B=small, E=small, first=st.integers(0, 13),
       wanted=st.sampled_from([(1, 1, 1), (1, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 0)]))
def test_projections_of_some_rows_and_some_kinds_equal_the_full_one(seed, D, T, H, B, E, first, wanted):
    """Queries at some positions only, and only the projections read (None for the others):
    the same numbers as the full projection, and the same gradients as its backward with
    zero gradient elsewhere (T past ops.heads.HEADS_OUTER_FROM too: both memory orders)."""
    rng = np.random.default_rng(seed)
    queries = slice(min(first, T - 1), None)
    x, W_Q, W_K, W_V = _rand(rng, D, T, B), _rand(rng, H, D, E), _rand(rng, H, D, E), _rand(rng, H, D, E)
    weights = [W if want else None for W, want in zip((W_Q, W_K, W_V), wanted)]
    (q, k, v), saved = ops.qkv_forward(x, *weights, query_rows=queries)
    (q_all, k_all, v_all), saved_all = ops.qkv_forward(x, W_Q, W_K, W_V)
    for fast, plain, want in ((q, q_all[:, queries], wanted[0]), (k, k_all, wanted[1]), (v, v_all, wanted[2])):
        if want:
            np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12)
        else:
            assert fast is None
    grads = [_rand(rng, *a.shape) if a is not None else None for a in (q, k, v)]
    full = [np.zeros_like(q_all), np.zeros_like(k_all), np.zeros_like(v_all)]
    if wanted[0]:
        full[0][:, queries] = grads[0]
    for i in (1, 2):
        if wanted[i]:
            full[i] = grads[i]
    fast = ops.qkv_backward(*grads, saved)
    plain = ops.qkv_backward(*full, saved_all)
    np.testing.assert_allclose(fast[0], plain[0], rtol=1e-12, atol=1e-12)
    for d_fast, d_plain, want in zip(fast[1:], plain[1:], wanted):
        if want:
            np.testing.assert_allclose(d_fast, d_plain, rtol=1e-12, atol=1e-12)
        else:
            assert d_fast is None


def test_freed_memory_is_kept_for_reuse(monkeypatch):
    """glibc keeps freed memory for NumPy's big temporaries, unless the user chose."""
    import platform

    from tinyinduction import memory
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert memory.keep_freed_memory() is False            # the user's choice stands
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert memory.keep_freed_memory() is expected
