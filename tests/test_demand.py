"""The demand-driven forward (training and evaluation: only the loss is read, so the passes
compute only what it needs) equals the cached reference path (run_with_cache /
loss_and_grads, every array of every pass at every position; the path the
finite-difference tests check), in float64: the loss, the accuracy and every parameter
gradient to a relative 1e-12, over hypothesis-drawn configs, clamp sets and multi-pass
links. Also what the plan leaves out, for the paper's clamps (plan.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_model_gradients import setups
from test_multipass import fewshot_setup, linked_setups

from tinyinduction.clamp import Clamp, Link, Pass, Passes, as_passes, previous_token_pattern, zero_ablate_head
from tinyinduction.config import ModelConfig
from tinyinduction.interventions import direct_path_ablation
from tinyinduction.model import (init_params, loss_and_accuracy, loss_and_grads, run_with_cache,
                                 training_loss_and_grads)
from tinyinduction.plan import ALL, LAST, plan_passes
from tinyinduction.subcircuits import build_clamps, condition_specs
from tinyinduction.tasks.fewshot import FewShotTask, TaskConfig


def assert_demand_equals_reference(config, params, batch, clamps):
    loss, acc, grads, _ = loss_and_grads(params, config, batch, clamps)
    lean_loss, lean_acc, lean_grads = training_loss_and_grads(params, config, batch, clamps)
    np.testing.assert_allclose(lean_loss, loss, rtol=1e-12, atol=1e-15)
    assert lean_acc == acc
    assert lean_grads.keys() == grads.keys()
    for name, grad in grads.items():   # relative to the parameter's largest gradient
        scale = max(np.abs(grad).max(), 1e-300)
        np.testing.assert_allclose(lean_grads[name], grad, rtol=0, atol=1e-12 * scale, err_msg=name)
    np.testing.assert_allclose(loss_and_accuracy(params, config, batch, clamps), (loss, acc),
                               rtol=1e-12, atol=1e-15)


def _single_pass_clamps(draw, setup):
    """0-3 constant or function clamps on sites of every kind, partial or whole."""
    c = setup.config
    clamps = []
    for _ in range(draw(st.integers(0, 3))):
        layer = draw(st.integers(0, c.n_layers - 1))
        head = draw(st.integers(0, c.n_heads - 1))
        kind = draw(st.sampled_from(["v", "pattern_head", "pattern_all", "scores_last_row", "resid",
                                     "result", "z", "logits_last", "q_all", "ln", "direct"]))
        if kind == "v":
            clamps.append(zero_ablate_head(layer, head, "v"))
        elif kind == "pattern_head":
            clamps.append(previous_token_pattern(layer, head, draw(st.floats(0.0, 1.0))))
        elif kind == "pattern_all":      # replaced entirely: q, k, scores not computed
            clamps.append(Clamp(f"blocks.{layer}.attn.hook_pattern",
                                lambda batch, cache: np.tril(np.ones((cache["embed"].shape[1],) * 2))
                                / np.arange(1, cache["embed"].shape[1] + 1)[:, None]))
        elif kind == "scores_last_row":
            clamps.append(Clamp(f"blocks.{layer}.attn.hook_attn_scores", 0.3, np.s_[:, head, -1, :]))
        elif kind == "resid":
            clamps.append(Clamp(f"blocks.{layer}.hook_resid_post", 0.1, np.s_[:, 0]))
        elif kind == "result":
            clamps.append(zero_ablate_head(layer, head, "result"))
        elif kind == "z":
            clamps.append(zero_ablate_head(layer, head, "z"))
        elif kind == "logits_last":      # the whole read row of the logits: nothing upstream is read
            clamps.append(Clamp("hook_logits", 0.5, np.s_[:, -1, :]))
        elif kind == "direct" and c.n_layers >= 2:   # a function of the cache, the last block replaced
            clamps.append(direct_path_ablation(c, 0))
        elif kind == "q_all":
            clamps.append(Clamp(f"blocks.{layer}.attn.hook_q", 0.2))
        elif c.layernorm:
            clamps.append(Clamp(f"blocks.{layer}.ln1.hook_normalized", -0.4, np.s_[:, :, 0]))
    return clamps


@given(setup=setups(max_layers=3), data=st.data())
def test_demand_driven_step_equals_the_reference_with_clamps(setup, data):
    clamps = _single_pass_clamps(data.draw, setup)
    assert_demand_equals_reference(setup.config, setup.params, setup.batch, clamps)


@given(case=linked_setups())
def test_demand_driven_step_equals_the_reference_with_links(case):
    setup, passes = case
    assert_demand_equals_reference(setup.config, setup.params, setup.batch, passes)


@pytest.mark.parametrize("condition", ["none", "PT", "A", "B", "C", "A+C"])
@pytest.mark.parametrize("positional", ["rope", "learned"])
def test_demand_driven_step_equals_the_reference_for_the_papers_conditions(condition, positional):
    setup = fewshot_setup(7, n_heads=3, d_model=6)
    config = setup.config.replace(positional=positional, n_ctx=5)
    params = init_params(config, 7)
    params = {k: v + setup.rng.normal(0, 0.3, v.shape) for k, v in params.items()}
    passes = build_clamps(condition_specs(condition, induction_head=1, previous_token_head=0), config)
    assert_demand_equals_reference(config, params, setup.batch, passes)


def test_plan_computes_only_what_the_papers_clamps_read():
    """Under A the final pass computes no layer 0, the pattern pass nothing after layer 1's
    patterns (at the query row); under C nothing after layer 1's scores; under A+C the
    final pass computes nothing at all."""
    config = ModelConfig(n_heads=3, d_model=6, d_head=4, d_feature=6)

    def plans(condition):
        passes = build_clamps(condition_specs(condition, induction_head=1, previous_token_head=0), config)
        return {plan.name: plan for plan in plan_passes(config, passes, 4, 5, read_cache=False)}

    computed = lambda plan: {name for name in plan.positions if plan.computes(name)}
    a = plans("A")
    assert not any(name.startswith("blocks.0.attn") for name in computed(a["main"]))
    assert "blocks.1.attn.hook_attn_scores" not in computed(a["main"])       # patterns linked
    assert computed(a["pattern"]) >= {"blocks.1.attn.hook_pattern", "blocks.1.attn.hook_k"}
    assert a["pattern"].positions["blocks.1.attn.hook_pattern"] == LAST
    assert not computed(a["pattern"]) & {"blocks.1.attn.hook_v", "blocks.1.attn.hook_z",
                                          "blocks.1.hook_resid_post", "hook_logits"}
    assert not any(name.startswith("blocks.0.attn") for name in computed(a["pattern"]))
    c = plans("C")["main"]
    assert c.positions["blocks.1.attn.hook_attn_scores"] == LAST
    assert not computed(c) & {"blocks.1.attn.hook_v", "blocks.1.attn.hook_pattern", "ln_final.hook_normalized",
                              "hook_logits", "blocks.1.hook_resid_post"}
    assert "hook_logits" in c.replaced
    a_c = plans("A+C")
    assert computed(a_c["main"]) == set()
    assert computed(a_c["pattern"]) >= {"blocks.1.attn.hook_attn_scores"}
    assert "blocks.1.attn.hook_pattern" not in computed(a_c["pattern"])
    plain = {plan.name: plan for plan in plan_passes(config, as_passes(()), 4, 5, read_cache=False)}["main"]
    assert plain.positions["blocks.1.attn.hook_q"] == LAST and plain.positions["blocks.1.attn.hook_k"] == ALL
    cached = plan_passes(config, as_passes(()), 4, 5, read_cache=True)[0]
    assert all(cached.positions[name] == ALL for name in cached.positions)


def test_a_function_value_that_reads_the_cache_sees_what_it_replaces():
    """A function value reads the cache so far: its pass computes every array before the
    site for it, even arrays that only feed what the value replaces entirely."""
    setup = fewshot_setup(10)
    seen = {}

    def value(batch, cache):
        seen["names"] = sorted(cache)
        return np.asarray(cache["blocks.1.attn.hook_z"]).sum() * 0 + np.asarray(cache["resid_pre", 0])

    clamps = [Clamp("blocks.1.hook_resid_post", value)]
    loss = training_loss_and_grads(setup.params, setup.config, setup.batch, clamps)[0]
    assert "blocks.1.attn.hook_z" in seen["names"] and "blocks.1.attn.hook_result" in seen["names"]
    assert loss == loss_and_grads(setup.params, setup.config, setup.batch, clamps)[0]
    blind = [Clamp("blocks.1.hook_resid_post", lambda batch, cache: 0.5, reads_cache=False)]
    plan = plan_passes(setup.config, as_passes(blind), 4, 5, read_cache=False)[0]
    assert not plan.computes("blocks.1.attn.hook_z")       # nothing reads it: not computed


def test_a_uses_the_whole_input_to_block_0_with_learned_positions():
    """Layer-0-perfect shifts the input to block 0, as the authors' code does: the
    embeddings plus the learned position embeddings."""
    setup = fewshot_setup(8)
    config = setup.config.replace(positional="learned", n_ctx=5)
    params = init_params(config, 8)
    params = {k: v + setup.rng.normal(0, 0.3, v.shape) for k, v in params.items()}
    cache = run_with_cache(params, config, setup.batch, build_clamps([{"kind": "A"}], config))
    pattern_pass, final = cache.passes["pattern"], cache.passes["main"]
    block_input = np.asarray(final["embed"]) + np.asarray(final["pos_embed"])
    np.testing.assert_allclose(final["resid_post", 0], block_input, rtol=1e-12)
    shifted = pattern_pass["resid_post", 0]
    np.testing.assert_allclose(shifted[:, 1:4], block_input[:, 0:3], rtol=1e-12)
    np.testing.assert_allclose(shifted[:, [0, 4]], block_input[:, [0, 4]], rtol=1e-12)


def test_entirely_replaced_arrays_are_not_computed(monkeypatch):
    """A clamp that replaces a whole array means its primitive is never called (here: a
    whole layer-1 pattern from a reference pass: layer 1's scores are not computed)."""
    from tinyinduction import ops
    setup = fewshot_setup(9)
    calls = []
    original = ops.attention_scores_forward
    monkeypatch.setattr(ops, "attention_scores_forward", lambda *a: calls.append(a[0].shape) or original(*a))
    passes = Passes((Pass("ref"), Pass("main", [
        Clamp("blocks.1.attn.hook_pattern", Link("blocks.1.attn.hook_pattern", "ref"))])))
    training_loss_and_grads(setup.params, setup.config, setup.batch, passes)
    # ref: layers 0 and 1 (layer 1 at the query row, which is all the link reads); main: layer 0
    assert len(calls) == 3 and calls[1][1] == 1


def test_float32_clamped_training_stays_close_to_float64():
    """A clamped run's numbers move only by float32 rounding on the demand-driven path."""
    task = FewShotTask(TaskConfig.small())
    batch = task.sample(np.random.default_rng(0), 8)
    for condition in ("A+C", "B"):
        losses = []
        for dtype in ("float32", "float64"):
            config = ModelConfig.small(dtype=dtype)
            passes = build_clamps(condition_specs(condition, induction_head=1, previous_token_head=0), config)
            params = init_params(config, 0)
            losses.append(training_loss_and_grads(params, config, batch, passes)[0])
        assert abs(losses[0] - losses[1]) < 1e-5
