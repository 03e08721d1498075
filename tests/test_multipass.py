"""Clamps whose value comes from another pass (or an earlier site), with gradients through it.

The loss of a multi-pass forward is a function of the parameters through every pass;
the hand-written backward (last pass first, each linked gradient sent to its source
site, parameter gradients summed) must equal central finite differences of that whole
function. Also: each paper clamp puts exactly its ideal values in place, constant clamps
stop the gradient while linked ones pass it on, and the named conditions resolve to the
clamps the paper describes.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_model_gradients import Setup, check_param_grads, clamped_loss, setups

from tinyinduction.clamp import Clamp, Gather, Link, Pass, Passes, as_passes, describe_clamps
from tinyinduction.config import ModelConfig
from tinyinduction.model import init_params, loss_and_grads, run_with_cache
from tinyinduction.subcircuits import (CONDITIONS, MASKED_LOGIT, ShiftMiddle, build_clamps,
                                       condition_specs, match_target, parse_clamp_option,
                                       parse_only_head_option)
from tinyinduction.tasks.fewshot import FewShotBatch, FewShotTask, TaskConfig


def fewshot_setup(seed, n_heads=3, d_model=6, n_batch=4, n_labels=5, perturb=0.3):
    """A 2-layer float64 few-shot model on a real task batch (C = 2, 5 labels)."""
    rng = np.random.default_rng(seed)
    task = FewShotTask(TaskConfig.small(n_labels=n_labels), features=rng.random((25, 5, 6)))
    config = ModelConfig(n_heads=n_heads, d_model=d_model, d_head=4, dtype="float64",
                         d_feature=6, n_labels=n_labels)
    params = init_params(config, seed)
    params = {k: v + rng.normal(0, perturb, v.shape) for k, v in params.items()}
    batch = task.sample(rng, n_batch)
    batch = batch._replace(exemplars=batch.exemplars.astype(np.float64))
    return Setup(config, params, batch, rng)


# ---------------------------------------------------------------- generic links


@st.composite
def linked_setups(draw):
    """Any model config, and two passes: a reference pass (maybe with a constant clamp)
    and a main pass with linked clamps of every kind the mechanism offers."""
    setup = draw(setups())
    c = setup.config
    T = setup.batch.exemplars.shape[1] * 2 - 1 if c.input_kind == "fewshot" else setup.batch.tokens.shape[1]
    layer = draw(st.integers(0, c.n_layers - 1))
    ref_clamps = []
    if draw(st.booleans()):   # a constant clamp in the reference pass changes what it exports
        ref_clamps.append(Clamp(f"blocks.{layer}.attn.hook_attn_scores", 0.5,
                                np.s_[:, 0, T - 1, :]))
    main = []
    kind = draw(st.sampled_from(["pattern", "resid_shift", "same_pass", "values"]))
    if kind == "pattern":      # a whole layer's patterns from the reference pass
        main.append(Clamp(f"blocks.{layer}.attn.hook_pattern",
                          Link(f"blocks.{layer}.attn.hook_pattern", "ref")))
    elif kind == "resid_shift":  # the residual stream, shifted by one position, from ref
        index = tuple(max(i - 1, 0) for i in range(T))
        main.append(Clamp(f"blocks.{layer}.hook_resid_post",
                          Link(f"blocks.{layer}.hook_resid_pre", "ref", Gather(axis=1, index=index)),
                          np.s_[:, 1:]))
    elif kind == "same_pass":  # a later site of this pass takes an earlier one's value
        main.append(Clamp(f"blocks.{layer}.hook_resid_post", Link("hook_embed"),
                          np.s_[:, :, : c.d_model // 2 + 1]))
    else:                      # one head's values from the reference pass, one position shifted
        main.append(Clamp(f"blocks.{layer}.attn.hook_v",
                          Link(f"blocks.{layer}.attn.hook_v", "ref", ShiftMiddle()),
                          np.s_[:, :, draw(st.integers(0, c.n_heads - 1))]))
    if draw(st.booleans()):   # a constant clamp after the link overrides part of it
        main.append(Clamp(f"blocks.{layer}.hook_resid_post", 0.1, np.s_[:, 0]))
    return setup, Passes((Pass("ref", ref_clamps), Pass("main", main)))


@given(case=linked_setups())
def test_multi_pass_parameter_gradients_match_finite_differences(case):
    setup, passes = case
    check_param_grads(setup, passes)


def _some_grad(grads, prefix):
    return max(np.abs(v).max() for k, v in grads.items() if k.startswith(prefix))


def test_linked_value_passes_the_gradient_that_a_constant_stops():
    setup = fewshot_setup(0)
    c, p, batch = setup.config, setup.params, setup.batch
    clean = run_with_cache(p, c, batch)
    # layer 1's patterns replaced: as a constant graft, W_Q/W_K of layer 1 get nothing
    constant = [Clamp("blocks.1.attn.hook_pattern", np.array(clean["pattern", 1]))]
    _, _, grads_constant, _ = loss_and_grads(p, c, batch, constant)
    assert _some_grad(grads_constant, "blocks.1.attn.W_Q") == 0.0
    # as a link to a reference pass, the same values carry the gradient into W_Q, W_K
    linked = Passes((Pass("ref"), Pass("main", [
        Clamp("blocks.1.attn.hook_pattern", Link("blocks.1.attn.hook_pattern", "ref"))])))
    loss_linked, _, grads_linked, cache = loss_and_grads(p, c, batch, linked)
    loss_plain, _, grads_plain, _ = loss_and_grads(p, c, batch)
    # the forward is unchanged (same values), and so is the total gradient
    assert np.isclose(loss_linked, loss_plain, rtol=1e-12)
    for name in p:
        np.testing.assert_allclose(grads_linked[name], grads_plain[name], rtol=1e-9, atol=1e-12)
    assert set(cache.passes) == {"ref", "main"}


def test_same_pass_link_must_point_backwards():
    setup = fewshot_setup(1)
    bad = [Clamp("hook_embed", Link("blocks.1.hook_resid_post"))]
    with pytest.raises(ValueError, match="not computed before it"):
        run_with_cache(setup.params, setup.config, setup.batch, bad)
    with pytest.raises(ValueError, match="does not run before it"):
        Passes((Pass("main", [Clamp("hook_embed", Link("hook_embed", "later"))]), Pass("later")))


# ---------------------------------------------------------------- the paper's clamps


@pytest.mark.parametrize("s", [1.0, 0.8, 0.5, 0.0, -1.0])
def test_match_row_is_exactly_the_ideal_one(s):
    setup = fewshot_setup(2)
    passes = build_clamps([{"kind": "match", "layer": 1, "head": 2, "s": s}], setup.config)
    pattern = run_with_cache(setup.params, setup.config, setup.batch, passes)["pattern", 1]
    qp = setup.batch.query_pair
    rows = np.arange(len(qp))
    row = pattern[:, 2, -1, :]                                            # [B, Tk]
    np.testing.assert_array_equal(row[rows, 2 * qp + 1], s)
    np.testing.assert_array_equal(row[rows, 2 * (1 - qp) + 1], 1 - s)
    np.testing.assert_array_equal(row[:, 0::2], 0.0)                      # exemplars and query
    assert np.allclose(pattern[:, :2, -1].sum(-1), 1.0)                   # other heads untouched


def test_layer0_perfect_puts_shifted_embeddings_and_pattern_pass_patterns_in_place():
    setup = fewshot_setup(3)
    passes = build_clamps([{"kind": "A"}], setup.config)
    cache = run_with_cache(setup.params, setup.config, setup.batch, passes)
    pattern_pass, final = cache.passes["pattern"], cache.passes["main"]
    embed = np.asarray(final["embed"])                                    # [B, T, D]
    shifted = pattern_pass["resid_post", 0]
    np.testing.assert_array_equal(shifted[:, 1:4], embed[:, 0:3])         # x1->l1, l1->x2, x2->l2
    np.testing.assert_array_equal(shifted[:, [0, 4]], embed[:, [0, 4]])   # first and query keep
    np.testing.assert_array_equal(final["resid_post", 0], embed)          # layer 0 adds nothing
    np.testing.assert_array_equal(final["pattern", 1], pattern_pass["pattern", 1])
    # and the final pass's own layer-1 scores are computed from the plain embeddings
    assert not np.allclose(final["scores", 1], pattern_pass["scores", 1])


def test_copy_logits_are_the_heads_label_scores():
    setup = fewshot_setup(4)
    passes = build_clamps([{"kind": "copy", "layer": 1, "head": 1}], setup.config)
    cache = run_with_cache(setup.params, setup.config, setup.batch, passes)
    logits, scores = cache["logits"][:, -1], cache["scores", 1][:, 1, -1]  # [B, V], [B, Tk]
    labels = setup.batch.labels
    rows = np.arange(len(labels))[:, None]
    np.testing.assert_array_equal(logits[rows, labels], scores[:, [1, 3]])
    others = np.ones_like(logits, dtype=bool)
    others[rows, labels] = False
    assert np.all(logits[others] == MASKED_LOGIT)


@pytest.mark.parametrize("condition", ["C", "A+C", "A"])
def test_paper_conditions_gradients_match_finite_differences(condition):
    setup = fewshot_setup(5, n_heads=2, d_model=5)
    passes = build_clamps(condition_specs(condition, induction_head=1, previous_token_head=0),
                          setup.config)
    grads = check_param_grads(setup, passes, per_param=4)
    if "C" in condition:   # only the match is learned: the layer-1 value path gets nothing
        assert _some_grad(grads, "blocks.1.attn.W_V") == 0.0
        assert _some_grad(grads, "unembed") == 0.0
        assert _some_grad(grads, "blocks.1.attn.W_Q") > 1e-6
    if condition == "A":   # layer 0 contributes nothing in either pass
        assert _some_grad(grads, "blocks.0.attn") == 0.0
        assert _some_grad(grads, "blocks.1.attn.W_K") > 1e-6


def test_named_conditions_resolve_to_the_papers_clamps():
    config = ModelConfig()   # the paper's 2 x 8 network
    kinds = {name: [s["kind"] for s in condition_specs(name, 3, 2)] for name in CONDITIONS}
    assert kinds == {"none": ["only_head"], "PT": ["only_head", "prev_token"],
                     "A": ["A", "only_head"], "B": ["only_head", "match"], "C": ["copy"],
                     "A+C": ["A", "copy"]}
    labels = {name: str(build_clamps(condition_specs(name, 3, 2), config)) for name in CONDITIONS}
    assert labels["none"].count("zero L1H") == 7 and "L1H3" not in labels["none"]
    assert "pattern:" in labels["A+C"] and "copy from L1H3 scores (pattern pass)" in labels["A+C"]
    assert "prev-token L0H2" in labels["PT"]
    assert condition_specs("C_evolves", 3) == condition_specs("B", 3)
    # the spec is the run's recorded identity
    assert describe_clamps(build_clamps(condition_specs("B", 3), config)) == condition_specs("B", 3)


def test_clamp_option_grammar():
    assert parse_clamp_option("A") == {"kind": "A"}
    assert parse_clamp_option("match:head=3,s=0.8") == {"kind": "match", "layer": 1, "head": 3, "s": 0.8}
    assert parse_clamp_option("prev_token:head=2,label_rows_only=1")["label_rows_only"] is True
    assert parse_only_head_option("1:3") == {"kind": "only_head", "layer": 1, "head": 3}
    for bad, words in [("mach:head=3", "unknown; choices: A, match"), ("match", "needs head"),
                       ("match:head=x", "not a valid int"), ("match:head=3,t=1", "unknown fields"),
                       ("match:head", "not field=value"), ("", "expected KIND")]:
        with pytest.raises(ValueError, match=words):
            parse_clamp_option(bad)
    config = ModelConfig()
    for specs, words in [([{"kind": "match", "head": 8}], "head = 8 is out of range; allowed 0..7"),
                         ([{"kind": "match", "head": 1, "s": 1.5}], r"s = 1.5; must be a number in \[-1, 1\]"),
                         ([{"kind": "A"}, {"kind": "A"}], "once")]:
        with pytest.raises(ValueError, match=words):
            build_clamps(specs, config)
    with pytest.raises(ValueError, match="2-layer"):
        build_clamps([{"kind": "A"}], ModelConfig(n_layers=3))


def test_match_target_for_longer_contexts_shares_the_rest():
    batch = FewShotBatch(None, None, None, np.array([2]), None)
    row = match_target(batch, 0.7, 7)[0, 0, 0]
    np.testing.assert_allclose(row, [0, 0.15, 0, 0.15, 0, 0.7, 0])


def test_plain_clamp_lists_are_one_pass():
    passes = as_passes([Clamp("hook_embed", 0.0)])
    assert [p.name for p in passes.passes] == ["main"]
    assert describe_clamps([Clamp("hook_embed", 0.0, label="zero")]) == [{"site": "hook_embed", "label": "zero"}]


def test_train_command_records_clamps_and_refuses_others(tmp_path, capsys):
    import json
    from tinyinduction.cli import main
    out = tmp_path / "run"
    argv = ["train", "--preset", "small", "--steps", "20", "--eval-every", "10", "--log-every", "0",
            "--out", str(out)]
    assert main(argv + ["--clamp", "A", "--clamp", "copy:head=1"]) == 0
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert identity["clamps"] == [{"kind": "A"}, {"kind": "copy", "layer": 1, "head": 1}]
    capsys.readouterr()
    assert main(argv + ["--resume", "auto", "--clamp", "match:head=1"]) == 2
    assert "clamps" in capsys.readouterr().err
    assert main(argv + ["--clamp", "mach:head=1"]) == 2
    assert "choices: A, match, copy" in capsys.readouterr().err
    assert main(argv[:-1] + [str(tmp_path / "other"), "--only-head", "1:9"]) == 2
    assert "allowed 0..1" in capsys.readouterr().err


def test_previous_token_clamp_on_label_rows_only():
    setup = fewshot_setup(6)
    spec = {"kind": "prev_token", "layer": 0, "head": 1, "p": 0.8, "label_rows_only": True}
    clean = run_with_cache(setup.params, setup.config, setup.batch)["pattern", 0]
    pattern = run_with_cache(setup.params, setup.config, setup.batch,
                             build_clamps([spec], setup.config))["pattern", 0]
    for row in (1, 3):                                     # l1 and l2: 0.8 on the exemplar
        expected = np.zeros(5)
        expected[row - 1], expected[row] = 0.8, 1 - 0.8
        np.testing.assert_array_equal(pattern[:, 1, row], np.broadcast_to(expected, (len(pattern), 5)))
    np.testing.assert_array_equal(pattern[:, 1, [0, 2, 4]], clean[:, 1, [0, 2, 4]])   # untouched
    np.testing.assert_array_equal(pattern[:, [0, 2]], clean[:, [0, 2]])
