"""Head measures, head roles and the evaluation-time interventions, on constructed cases.

Each measure returns its ideal value when the attention it reads is clamped to an
ideal pattern; composition scores are 1 and 0 for weights built to compose or not;
direct logit attribution plus the other components adds up to the logit difference;
the direct-path ablation equals the residual stream rebuilt by hand; pattern- and
value-preserving ablations of heads that write nothing leave the run unchanged.
"""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyinduction.clamp import Clamp, previous_token_pattern
from tinyinduction.config import ModelConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.heads import identify_heads, induction_strength_on_train_set
from tinyinduction.interventions import (check_head_set, direct_path_ablation,
                                         pattern_preserving_ablation, value_preserving_ablation)
from tinyinduction.measures import (composition_scores, direct_logit_attribution,
                                    induction_strength, learning_time, previous_token_head_score)
from tinyinduction.model import init_params, run_with_cache
from tinyinduction.subcircuits import match
from tinyinduction.tasks.fewshot import FewShotTask

CONFIG = ModelConfig(n_heads=3, d_model=12, d_head=4, d_feature=8, dtype="float64")
TASK = FewShotTask(TaskConfig.small(n_train_classes=6, n_heldout_classes=4),
                   features=np.random.default_rng(0).random((10, 5, 8)))
PARAMS = {k: v + np.random.default_rng(1).normal(0, 0.3, v.shape) for k, v in init_params(CONFIG, 0).items()}
BATCH = TASK.eval_sets()["train"]


@given(s=st.floats(-1, 1), head=st.integers(0, 2))
@settings(max_examples=8)
def test_induction_strength_of_a_match_clamp_is_2s_minus_1_on_the_whole_train_set(s, head):
    strength = induction_strength_on_train_set(PARAMS, CONFIG, TASK, 1, [match(CONFIG, 1, head, s)], chunk=97)
    assert strength[head] == pytest.approx(2 * s - 1, abs=1e-9)
    assert TASK.n_train_sequences == 6 * 5 * 2 * 8 * 2


@given(p=st.floats(0, 1))
@settings(max_examples=8)
def test_previous_token_head_score_of_ideal_and_uniform_heads(p):
    cache = run_with_cache(PARAMS, CONFIG, BATCH, [previous_token_pattern(0, 1, p)])
    # label at 1 sees x1, l1: p - (1 - p); label at 3 sees 4 keys: p - (1 - p) / 3
    expected = ((2 * p - 1) + (p - (1 - p) / 3)) / 2
    assert previous_token_head_score(cache, 0)[1] == pytest.approx(expected, abs=1e-9)
    uniform = np.tril(np.ones((5, 5))) / np.arange(1, 6)[:, None]
    cache = run_with_cache(PARAMS, CONFIG, BATCH, [Clamp("blocks.0.attn.hook_pattern", uniform, np.s_[:, 2])])
    assert previous_token_head_score(cache, 0)[2] == pytest.approx(0.0, abs=1e-12)


def test_identify_heads_finds_the_clamped_roles():
    clamps = [previous_token_pattern(0, 2, 1.0), match(CONFIG, 1, 1, 0.9)]
    roles = identify_heads(PARAMS, CONFIG, TASK, clamps)
    assert roles.strongest_induction_head == (1, 1) and (1, 1) in roles.induction_heads
    assert roles.induction_strength[1] == pytest.approx(0.8)
    assert roles.strongest_previous_token_head == (0, 2)
    assert roles.previous_token_heads[0] == (0, 2)
    assert roles.previous_token_score[2] == pytest.approx(1.0)
    assert "baseline 0" in roles.rules["induction"]


def _unit(d, i):
    v = np.zeros(d)
    v[i] = 1.0
    return v


def test_composition_scores_of_weights_built_to_compose():
    config = ModelConfig(n_heads=2, d_model=6, d_head=2, layernorm=False, dtype="float64", d_feature=4)
    params = {k: np.zeros_like(v) for k, v in init_params(config, 0).items()}
    e = [_unit(6, i) for i in range(6)]
    # layer-0 head 0 writes direction 0 into direction 0: W_OV = e0 e0^T
    params["blocks.0.attn.W_V"][0, :, 0], params["blocks.0.attn.W_O"][0, 0, :] = e[0], e[0]
    params["blocks.0.attn.W_V"][1, :, 0], params["blocks.0.attn.W_O"][1, 0, :] = e[3], e[3]
    # layer-1 head 0 reads direction 0 with its query, key and value; head 1 direction 5
    for h, d in ((0, 0), (1, 5)):
        for w in ("W_Q", "W_K", "W_V"):
            params[f"blocks.1.attn.{w}"][h, :, 0] = e[d]
        params["blocks.1.attn.W_O"][h, 0, :] = e[d]
    scores = composition_scores(params, config)
    for kind in "QKV":
        np.testing.assert_allclose(scores[kind], [[1, 0], [0, 0]], atol=1e-12)
        assert 0 < scores["baseline"][kind] < 1


def test_composition_scores_of_random_weights_sit_at_the_baseline():
    config = ModelConfig()
    scores = composition_scores(init_params(config, 3), config)
    for kind in "QKV":
        assert abs(np.mean(scores[kind]) - scores["baseline"][kind]) < 0.01


@pytest.mark.parametrize("layernorm", [True, False])
def test_direct_logit_attribution_adds_up_to_the_logit_difference(layernorm):
    config = CONFIG.replace(layernorm=layernorm)
    params = {k: v + np.random.default_rng(2).normal(0, 0.3, v.shape) for k, v in init_params(config, 4).items()}
    cache = run_with_cache(params, config, BATCH)
    dla = direct_logit_attribution(cache, params, config, BATCH)             # [L, H]
    logits = cache["logits"][:, -1]                                           # [B, V]
    rows = np.arange(len(BATCH.target))
    other = BATCH.labels[rows, 1 - BATCH.query_pair]
    difference = (logits[rows, BATCH.target] - logits[rows, other]).mean()
    # the rest: the embedding's direct path, the LayerNorm bias and the unembedding bias
    W_U, b_U = params["unembed.W_U"], params["unembed.b_U"]
    direction = W_U[:, BATCH.target].T - W_U[:, other].T                     # [B, D]
    embed = cache["blocks.0.hook_resid_pre"][:, -1]
    bias = b_U[BATCH.target] - b_U[other]
    if layernorm:
        final = cache["blocks.1.hook_resid_post"][:, -1]
        scale = 1 / np.sqrt(final.var(axis=1) + config.layernorm_eps)
        embed_part = ((embed - embed.mean(1, keepdims=True)) * params["ln_final.w"] * direction).sum(1) * scale
        bias = bias + (direction * params["ln_final.b"]).sum(1)
    else:
        embed_part = (embed * direction).sum(1)
    assert dla.sum() + (embed_part + bias).mean() == pytest.approx(difference, rel=1e-9)


def test_direct_path_ablation_equals_the_hand_built_residual_stream():
    clean = run_with_cache(PARAMS, CONFIG, BATCH)
    cache = run_with_cache(PARAMS, CONFIG, BATCH, [direct_path_ablation(CONFIG)])
    # layer 1 still reads layer 0: everything up to layer 1's attention output is unchanged
    np.testing.assert_array_equal(cache["attn_out", 1], clean["attn_out", 1])
    np.testing.assert_allclose(cache["resid_post", 1], clean["resid_pre", 0] + clean["attn_out", 1], atol=1e-12)
    np.testing.assert_allclose(clean["resid_post", 1] - cache["resid_post", 1], clean["attn_out", 0], atol=1e-12)
    # it composes: with a layer-1 head zeroed first, the rebuilt stream uses the zeroed output
    zero = Clamp("blocks.1.attn.hook_result", 0.0, np.s_[:, :, 0])
    both = run_with_cache(PARAMS, CONFIG, BATCH, [zero, direct_path_ablation(CONFIG)])
    np.testing.assert_allclose(both["resid_post", 1], clean["resid_pre", 0] + both["attn_out", 1], atol=1e-12)
    with pytest.raises(ValueError, match="needs a later layer"):
        direct_path_ablation(CONFIG.replace(n_layers=1))


@pytest.mark.parametrize("ablation", [pattern_preserving_ablation, value_preserving_ablation])
def test_preserving_ablations_of_silent_heads_equal_the_clean_run(ablation):
    params = {k: v.copy() for k, v in PARAMS.items()}
    params["blocks.0.attn.W_O"][[0, 2]] = 0.0        # heads 0 and 2 of layer 0 write nothing
    clean = run_with_cache(params, CONFIG, BATCH)
    cache = run_with_cache(params, CONFIG, BATCH, ablation(CONFIG, [(0, 0), (0, 2)], clean))
    np.testing.assert_allclose(cache["logits"], clean["logits"], atol=1e-12)
    # and ablating a head that writes something changes the run
    changed = run_with_cache(params, CONFIG, BATCH, ablation(CONFIG, [(0, 1)], clean))
    assert not np.allclose(changed["logits"], clean["logits"])


def test_pattern_preserving_keeps_patterns_value_preserving_keeps_values():
    clean = run_with_cache(PARAMS, CONFIG, BATCH)
    kept = run_with_cache(PARAMS, CONFIG, BATCH, pattern_preserving_ablation(CONFIG, [(0, 1)], clean))
    np.testing.assert_array_equal(kept["pattern", 1], clean["pattern", 1])
    assert not np.allclose(kept["v", 1], clean["v", 1])
    kept = run_with_cache(PARAMS, CONFIG, BATCH, value_preserving_ablation(CONFIG, [(0, 1)], clean))
    np.testing.assert_array_equal(kept["v", 1], clean["v", 1])
    assert not np.allclose(kept["pattern", 1], clean["pattern", 1])


def test_head_sets_are_checked():
    for heads, words in [([], "empty"), ([(0, 3)], r"\(0, 3\) is not a \(layer, head\)"),
                         ([(2, 0)], "layers 0..1"), (5, "list of"), ([(0, True)], "not a")]:
        with pytest.raises(ValueError, match=words):
            check_head_set(CONFIG, heads)
    with pytest.raises(ValueError, match="at least 2 layers"):
        identify_heads(init_params(CONFIG.replace(n_layers=1), 0), CONFIG.replace(n_layers=1), TASK)


def test_learning_time_is_the_first_evaluation_below_0_4_ln2():
    history = {"step": [0, 10, 20, 30, 40, 50], "eval/train/loss": [1.6, 0.7, 0.69, 0.27, 0.1, 0.0]}
    assert learning_time(history) == 30
    assert learning_time({"step": [0, 10], "eval/train/loss": [0.7, 0.2]}) == 10
    assert learning_time({"step": [0, 10, 20], "eval/train/loss": [0.7, None, 0.69]}) is None


def test_reproduce_heads_quick_end_to_end(tmp_path, capsys):
    from tinyinduction.cli import main
    code = main(["reproduce", "heads", "--quick", "--out", str(tmp_path), "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    H = 4   # the quick setting's heads
    for key in ("induction_strength", "ablate_one_acc", "only_head_acc", "switch_on_loss"):
        assert len(results[key]) == H
    assert set(results["wiring"]) >= {"pattern_preserving", "value_preserving"}
    assert set(results["direct_path"]) >= {"plateau_loss_increase", "final_loss_increase"}
    assert len(results["posthoc"]["steps"]) == len(results["posthoc"]["clamped_eval_loss"]["B"])
    assert {"Q", "K", "V", "baseline"} <= set(results["composition"])
    # the effects: the trained network solves the task, its induction heads carry it
    assert results["learning_time"] is not None and results["final_train_loss"] < 0.1
    assert results["induction_heads"] and results["previous_token_heads"]
    assert results["ablate_induction_heads_acc"] < 0.65            # chance is 0.5
    assert max(results["only_head_acc"]) > 0.9                       # one head alone suffices
    assert results["switch_on_loss"][-1] <= results["switch_on_loss"][0]
    assert (tmp_path / "results.json").exists() and (tmp_path / "figures").is_dir()
    assert not any(p.startswith("figures/") for p in results["meta"]["figures"])


def test_reproduce_unknown_name_lists_the_experiments(capsys):
    from tinyinduction.cli import main
    assert main(["reproduce", "hedas"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment" in err and "heads" in err and "race" in err and len(err.splitlines()) == 1


def test_streaming_the_whole_training_set_stays_small():
    """The paper's 78,400 training sequences in chunks: traced memory stays < 200 MB (as
    one array the exemplars alone would be 482 MB; a cache kept alive per chunk, e.g. by
    a reference cycle, would pass 2 GB)."""
    import tracemalloc
    config = ModelConfig()
    task = FewShotTask(TaskConfig.paper())
    params = init_params(config, 0)
    tracemalloc.start()
    try:
        strength = induction_strength_on_train_set(params, config, task)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert strength.shape == (8,) and np.all(np.abs(strength) < 0.2)   # untrained: no preference
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
