"""`reproduce olsson`: its helpers on constructed inputs, and the quick setting end to end,
asserting the effect it exists to show (a 2-layer model forms a prefix-matching head that
a 1-layer model cannot)."""
import json
from pathlib import Path

import numpy as np
import pytest

from tinyinduction.cli import main
from tinyinduction.config import ModelConfig
from tinyinduction.experiments import olsson, olsson_claims, olsson_common, olsson_plain
from tinyinduction.experiments import olsson_analysis as oa
from tinyinduction.model import TokenBatch, init_params


def test_phase_change_is_halfway_up_and_none_without_a_formed_head():
    steps = [0, 100, 200, 300, 400]
    assert oa.phase_change_step(steps, [0.05, 0.06, 0.2, 0.6, 0.7]) == 300   # halfway = 0.375
    assert oa.phase_change_step(steps, [0.05, 0.4, 0.5, 0.55, 0.5]) == 100
    assert oa.phase_change_step(steps, [0.05, 0.1, 0.2, 0.25, 0.29]) is None


def test_phase_window_runs_from_ten_to_ninety_percent_of_the_rise():
    steps = np.arange(0, 1100, 100)
    best = [0.0, 0.01, 0.05, 0.08, 0.2, 0.5, 0.8, 0.95, 1.0, 0.98, 1.0]   # start 0, top 1
    assert oa.phase_window(steps, best) == (300, 700)     # last <= 0.1 before halfway; first >= 0.9 after
    assert oa.phase_window(steps, [0.0] * 11) is None
    assert oa.phase_window([0, 100, 200], [0.0, 0.6, 0.6]) == (0, 100)


def test_loss_shape_sees_a_bump_and_a_steeper_descent():
    steps = np.arange(0, 1100, 100)
    bump = [7.0, 4.0, 3.9, 3.8, 3.7, 3.8, 3.85, 3.6, 3.5, 3.45, 3.4]       # onset 400, end 700
    shape = oa.loss_shape(steps, bump, 400, 700)
    assert shape["bump"] == pytest.approx(0.15) and shape["before_from_step"] == 100
    assert shape["slope_during"] == pytest.approx(-0.1 / 300 * 1000)
    assert shape["slope_before"] == pytest.approx(-0.3 / 300 * 1000)
    steeper = [7.0, 4.0, 3.98, 3.96, 3.94, 3.84, 3.74, 3.64, 3.62, 3.6, 3.58]
    shape = oa.loss_shape(steps, steeper, 400, 700)
    assert shape["bump"] == 0 and shape["slope_during"] < 2 * shape["slope_before"] < 0


def test_pca_turn_measures_the_angle_between_before_and_after():
    steps = np.arange(100, 1100, 100)
    points = np.array([[s, 0.0] if s <= 500 else [500.0, s - 500.0] for s in steps])   # turns at 500
    assert oa.pca_turn_degrees(points, steps, 400, 600) == pytest.approx(90, abs=1e-6)
    straight = np.stack([steps, 2.0 * steps], axis=1).astype(float)
    assert oa.pca_turn_degrees(straight, steps, 400, 600) == pytest.approx(0, abs=1e-6)


def test_pca_path_lengths_see_a_jump_that_does_not_turn():
    steps = np.arange(0, 1100, 100)
    x = np.where(steps < 400, steps * 0.01, np.where(steps <= 600, 4 + (steps - 400) * 0.5, 104 + (steps - 600) * 0.01))
    points = np.stack([x, np.zeros_like(x)], axis=1)                  # one direction, fast from 400 to 600
    lengths = oa.pca_path_lengths(points, steps, 400, 600)
    assert lengths == pytest.approx({"before": 2.0, "during": 100.0, "after": 2.0})
    assert oa.pca_turn_degrees(points, steps, 400, 600) == pytest.approx(0, abs=1e-6)


def test_tiled_windows_do_not_overlap():
    stream = np.arange(1000)
    batch = oa.tiled_windows(stream, 9)
    assert batch.tokens.shape == (99, 9)          # (1000 - 1) // 10 windows
    np.testing.assert_array_equal(batch.tokens[:, 0], np.arange(99) * 10)
    np.testing.assert_array_equal(batch.targets, batch.tokens + 1)
    subset = oa.tiled_windows(stream, 9, limit=20)
    assert subset.tokens.shape == (20, 9) and set(subset.tokens[:, 0]) <= set(batch.tokens[:, 0])


def test_loss_pca_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(50)
    per_token = {}
    for name, speed in (("a", 1.0), ("b", -2.0)):
        t = np.linspace(0, 1, 12)[:, None]
        per_token[name] = 5.0 + speed * t * direction + 1e-3 * rng.standard_normal((12, 50))
    pca = oa.loss_pca(per_token, first=1)
    assert pca["a"].shape == (11, 2) and pca["explained_variance"][0] > 0.99
    pc1_a, pc1_b = pca["a"][:, 0], pca["b"][:, 0]
    assert abs(np.corrcoef(pc1_a, np.linspace(0, 1, 12)[1:])[0, 1]) > 0.99
    assert np.sign(np.diff(pc1_a).mean()) == -np.sign(np.diff(pc1_b).mean())     # opposite directions


def test_ablation_compares_the_induction_heads_with_every_other_set():
    config = ModelConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, input_kind="tokens", d_vocab=12,
                         n_ctx=16, dtype="float64")
    params = init_params(config, 0)
    rng = np.random.default_rng(0)
    windows = TokenBatch(rng.integers(0, 12, (8, 16)), rng.integers(0, 12, (8, 16)))
    prefix = np.array([[0.1, 0.2], [0.9, 0.05]])                 # [L, H]: only L1H0 is an induction head
    result = oa.ablation(params, config, windows, prefix, {"repeated": windows})
    assert result["induction_heads"] == [[1, 0]]
    assert len(result["other_head_sets"]) == 3 and [1, 0] not in sum(result["other_head_sets"], [])
    assert result["other_heads_icl_score"] == pytest.approx(np.mean(result["other_heads_icl_scores"]))
    assert result["induction_heads_icl_score"] != result["clean_icl_score"]
    assert result["induction_heads_change"] == pytest.approx(
        result["induction_heads_icl_score"] - result["clean_icl_score"])
    assert result["repeated"]["clean_icl_score"] == pytest.approx(result["clean_icl_score"])   # same windows here
    weak = oa.ablation(params, config, windows, prefix * 0.1)   # nobody reaches the threshold
    assert weak["induction_heads"] == [[1, 0]] and "best head" in weak["rule"]


def test_copying_ablation_zeroes_the_copying_heads_then_the_others():
    config = ModelConfig(n_layers=1, n_heads=3, d_model=8, d_head=4, input_kind="tokens", d_vocab=12,
                         n_ctx=16, dtype="float64")
    params = init_params(config, 0)
    rng = np.random.default_rng(0)
    windows = TokenBatch(rng.integers(0, 12, (8, 16)), rng.integers(0, 12, (8, 16)))
    result = oa.copying_ablation(params, config, windows, [[0.9, -0.3, 0.7]])
    assert result["copying_heads"] == [[0, 0], [0, 2]] and result["other_heads"] == [[0, 1]]
    zeroed = oa.icl_with_heads_zeroed(params, config, windows, [(0, 0), (0, 2)])
    assert result["copying_heads_icl_score"] == pytest.approx(np.nanmean(zeroed))
    assert result["copying_heads_change"] == pytest.approx(np.nanmean(zeroed) - result["clean_icl_score"])
    assert result["other_heads_icl_score"] != result["clean_icl_score"]
    none = oa.copying_ablation(params, config, windows, [[0.1, 0.2, 0.3]])       # no copying head
    assert none["copying_heads"] == [] and none["copying_heads_change"] == 0


def test_settings_and_specs():
    default, quick = olsson_common.setting(False, 5), olsson_common.setting(True, 5)
    assert default.text.tokenizer == "bpe" and default.text.vocab_size == 1024 and default.second_seed
    assert default.text.repeat_fraction == 0.5 == quick.text.repeat_fraction and not quick.second_seed
    assert quick.models == ("1L", "2L") and quick.text.vocab_size == 256
    specs = olsson_common.run_specs(default, 1024)
    assert [s.name for s in specs] == ["1L", "2L", "1L_smeared", "2L_smeared", olsson_common.SECOND_SEED]
    assert [s.train.seed for s in specs] == [5, 5, 5, 5, 6]
    assert [s.model.smeared_key for s in specs] == [False, False, True, True, False]
    assert [s.model.n_layers for s in specs] == [1, 2, 1, 2, 2]
    plain = olsson_plain.single_runs("plain", False, 5)
    assert all(s.text.repeat_fraction == 0 and s.train.seed == 5 for _, s in plain.values())
    products = sorted(s.train.batch_size * s.text.n_ctx for _, s in plain.values())
    assert len(products) >= 2 and products[-1] >= 2 * products[0]        # batch x context differs
    explore = olsson_plain.single_runs("explore", False, 5)
    assert all(s.train.seed == olsson_plain.EXPLORATION_SEED != 5 for _, s in explore.values())


def test_paired_change_uses_the_same_windows():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1.0, 400)                       # window-to-window spread, common to both
    difference, error = oa.paired_change(shared - 0.1 + rng.normal(0, 0.05, 400), shared)
    assert difference == pytest.approx(-0.1, abs=0.01) and error < 0.005   # unpaired it would be ~0.07


def test_reproduce_olsson_quick_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "olsson", "--quick", "--out", str(tmp_path), "--jobs", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    models = results["models"]
    assert set(models) == {"1L", "2L"}
    for m in models.values():
        assert {"repeat_fraction", "max_prefix_matching", "phase_change_step", "icl_score", "icl_score_sem",
                "icl_score_before", "icl_score_before_sem", "icl_score_after", "icl_score_after_sem",
                "icl_diff_vs_1L", "icl_diff_vs_1L_sem"} <= set(m)
    assert set(results["tokenizer"]) == {"kind", "vocab_size", "chars_per_token", "unk_rate_heldout"}
    assert results["tokenizer"]["kind"] == "bpe" and results["plain"] is None
    # the effect: the 2-layer model forms a prefix-matching (induction) head, the 1-layer one cannot ...
    assert models["2L"]["max_prefix_matching"] >= 0.3 > models["1L"]["max_prefix_matching"]
    assert models["1L"]["phase_change_step"] is None and models["2L"]["phase_change_step"] is not None
    # ... and ablating it raises the ICL score on plain held-out windows more than ablating other heads
    a = results["ablation"]
    assert a["rule"].startswith("prefix matching")
    assert a["induction_heads_change"] > 0
    assert a["induction_heads_icl_score"] > a["other_heads_icl_score"]          # the mean over sets
    assert set(results["ablation_1L"]) >= {"copying_heads", "copying_heads_change", "other_heads_change"}
    assert set(models["2L"]["pca_path_lengths"]) == {"before", "during", "after"}
    for stem in ("olsson_training_quick", "olsson_pca_quick", "olsson_heads_quick", "olsson_ablation_quick"):
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 10_000
    table = (tmp_path / "table.md").read_text()
    assert "claim 2" in table and "claim 5" in table and "not measured" in table   # no smeared models


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "heads", "--quick", "--text", "somewhere"], "only the olsson experiment"),
    (["reproduce", "olsson", "--quick", "--text", "/no/such/text"], "no such file"),
])
def test_bad_text_arguments_fail_in_one_line(argv, needle, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert needle in error and "--text" in error and len(error.splitlines()) == 1


def test_short_user_text_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "tiny.py").write_text("x = 1\n" * 3)
    assert main(["reproduce", "olsson", "--quick", "--text", str(tmp_path / "tiny.py"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "fewer than one window" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("argv, needle", [
    (["reproduce", "heads", "--quick", "--plain"], "does not take --plain"),
    (["reproduce", "heads", "--quick", "--vocab", "512"], "does not take --vocab"),
    (["reproduce", "olsson", "--quick", "--plain", "--explore"], "--plain or --explore, not both"),
    (["reproduce", "olsson", "--quick", "--vocab", "8", "--text", "CODE"], "TextConfig.vocab_size"),
])
def test_olsson_options_are_checked_in_one_line(argv, needle, tmp_path, capsys):
    (tmp_path / "code.py").write_text("def f(x):\n    return x + 1\n" * 200)
    argv = [str(tmp_path / "code.py") if a == "CODE" else a for a in argv]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert needle in error and len(error.splitlines()) == 1


def test_plain_runs_end_to_end_and_are_read_beside_the_default(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(olsson_plain, "QUICK_PLAIN", (olsson_plain.SingleRun("B8_T32", 8, 32, 60, 30),
                                                      olsson_plain.SingleRun("B16_T32", 16, 32, 30, 30)))
    out = tmp_path / "olsson_plain"
    assert main(["reproduce", "olsson", "--quick", "--plain", "--out", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    runs = results["runs"]
    assert results["mode"] == "plain" and set(runs) == {"B8_T32", "B16_T32"}
    assert runs["B8_T32"]["tokens"] == 60 * 8 * 32 and runs["B16_T32"]["steps"] == 30
    assert runs["B8_T32"]["steps_over_training"] == [0, 30, 60]
    assert all(r["repeat_fraction"] == 0 for r in runs.values())
    assert (out / "figures" / "olsson_plain_quick.png").stat().st_size > 10_000
    outcome = olsson_plain.read_outcome(out)                  # what the default run puts in results["plain"]
    assert outcome["B8_T32"]["max_prefix_matching"] == runs["B8_T32"]["max_prefix_matching"]
    assert "B16_T32" in olsson.report({"mode": "plain", "runs": outcome})
    assert olsson_plain.read_outcome(tmp_path / "nothing") is None
    assert olsson_plain.outcome_status(out) == "finished"
    assert olsson_plain.outcome_status(tmp_path / "nothing") == "not run"
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "reproduce.json").write_text("{}")        # a --plain run still going
    assert olsson_plain.outcome_status(tmp_path / "started") == "unfinished"


def test_measures_over_training_are_stored_and_only_new_checkpoints_measured(tmp_path, monkeypatch):
    config = ModelConfig(n_layers=2, n_heads=2, d_model=8, d_head=4, input_kind="tokens", d_vocab=40, n_ctx=17)
    rng = np.random.default_rng(0)
    windows = TokenBatch(rng.integers(0, 40, (8, 17)), rng.integers(0, 40, (8, 17)))
    from tinyinduction.tasks.repeated import prefix_matching_tokens, repeated_tokens
    probes = olsson_common.Probes(windows, windows, windows, windows, np.stack([np.arange(8), np.arange(8)], 1),
                                  prefix_matching_tokens(rng, 4, np.arange(2, 40), 4), 4,
                                  repeated_tokens(rng, 4, 8, np.arange(2, 40)), 8, np.arange(2, 27))
    calls = []
    real = olsson_common.measure
    monkeypatch.setattr(olsson_common, "measure", lambda *a: calls.append(1) or real(*a))
    found = []
    monkeypatch.setattr(olsson_common, "checkpoints", lambda d: found)
    first = olsson_common.over_training(tmp_path, config, probes, seed=0)          # step 0 only
    assert first["step"].tolist() == [0] and len(calls) == 1
    again = olsson_common.over_training(tmp_path, config, probes, seed=0)
    assert len(calls) == 1 and np.array_equal(again["prefix_matching"], first["prefix_matching"])
    monkeypatch.setattr(olsson_common, "load_params", lambda p: (init_params(config, 1), None))
    found.append((5, tmp_path / "step_5.npz"))                               # a new checkpoint
    later = olsson_common.over_training(tmp_path, config, probes, seed=0)
    assert later["step"].tolist() == [0, 5] and len(calls) == 2                    # only step 5 is new
    assert later["loss"][0] == first["loss"][0]


QUICK_RESULTS = Path(__file__).parent / "data" / "quick_results" / "olsson.json"


def _summary(phase_step, why="", status="finished"):
    """A --plain/--explore run's outcome as results["plain"] holds it (olsson_plain.SUMMARY_KEYS)."""
    return {"why": why, "n_layers": 2, "vocab_size": 1024, "batch_size": 16, "n_ctx": 64, "repeat_fraction": 0.0,
            "heldout_fraction": 0.2, "seed": 5, "steps": 40_000, "tokens": 40_000 * 1024, "planned_steps": 40_000,
            "status": status, "max_prefix_matching": 0.1 if phase_step is None else 0.6,
            "phase_change_step": phase_step, "phase_change_tokens": None if phase_step is None else phase_step * 1024,
            "phase_change_onset_step": None, "phase_change_end_step": None, "icl_score": -0.3,
            "icl_score_sem": 0.05, "loss": 3.5, "wall_seconds": 7200.0}


def test_table_rows_every_claim_with_theirs_the_gap_and_the_standard_error_target():
    results = json.loads(QUICK_RESULTS.read_text())
    results["models"]["2L_second_seed"] = dict(results["models"]["2L"], seed=6)
    results["second_seed_model"] = "2L_second_seed"
    rows = olsson.table(results)
    claims = [r for r in rows if r.quantity.startswith("claim ")]
    assert [r.quantity.split()[1] for r in claims] == ["1", "2", "3", "4", "5", "6", "7", "2", "3", "4", "6"]
    assert all(r.paper == olsson_claims.PAPER[int(r.quantity.split()[1])] for r in claims)          # theirs
    assert all(r.note.startswith(("agrees", "DISAGREES", "not measured")) for r in claims)
    assert [r.quantity for r in claims[7:]] == [f"claim {n} (2L_second_seed, seed 6)" for n in (2, 3, 4, 6)]
    gap = next(r for r in rows if r.quantity.startswith("2L - 1L"))
    assert gap.ours == results["models"]["2L"]["icl_diff_vs_1L"] and "paired" in gap.note
    assert any("induction heads" in r.quantity and "zeroed" in r.quantity for r in rows)
    final, around = rows[-2:]
    assert final.quantity.startswith("largest standard error of a final")
    assert final.ours == max(m[k] for m in results["models"].values() for k in ("icl_score_sem", "icl_diff_vs_1L_sem")
                             if m[k] is not None)
    assert around.ours == max(m[k] for m in results["models"].values() for k in m
                              if k.startswith(("icl_score_before", "icl_score_after", "icl_change"))
                              and k.endswith("_sem") and m[k] is not None)
    for m in results["models"].values():
        for key in m:
            if key.endswith("_sem") and m[key] is not None:
                m[key] = 0.01
    assert olsson.table(results)[-2].note.endswith("(met)")
    results["models"]["2L"]["icl_diff_vs_1L_sem"] = 0.03
    assert olsson.table(results)[-2].ours == 0.03 and "2L icl_diff_vs_1L_sem" in olsson.table(results)[-2].note
    assert "NOT met" in olsson.table(results)[-2].note
    results["models"]["2L"]["icl_change_at_phase_change_sem"] = 0.05          # not a final score: no target
    assert olsson.table(results)[-1].ours == 0.05 and olsson.table(results)[-2].ours == 0.03


def test_report_puts_plain_and_exploration_beside_the_default_or_says_why_not():
    results = json.loads(QUICK_RESULTS.read_text())
    results["plain"] = {"B16_T64": _summary(None), "B64_T64": _summary(6_000, status="stopped")}
    results["exploration"] = {"2L_V1024_T32_B32_r0.9": _summary(900, why="its ICL went up: failed")}
    text = olsson.report(results)
    plain_part, explore_part = text.split("(`--plain`)")[1].split("(`--explore`")
    assert "| B16_T64 |" not in explore_part and "r0.9" not in plain_part
    assert "| B16_T64 |" in plain_part and "| none |" in plain_part
    assert "| B64_T64 |" in plain_part and "(stopped)" in plain_part and "6.1M tokens" in plain_part
    assert "its ICL went up: failed" in explore_part                       # the failed runs are shown
    assert "(figures/olsson_plain.png)" in plain_part and "(figures/olsson_exploration.png)" in explore_part
    results["plain"] = results["exploration"] = None
    results["beside_status"] = {"plain": "unfinished", "exploration": "not run"}
    text = olsson.report(results)
    assert "not finished when this ran" in text and "Not run beside this one" in text


def test_report_says_where_ours_differ_with_the_measured_explanations():
    results = json.loads(QUICK_RESULTS.read_text())
    two = results["models"]["2L"]
    two.update(pca_turn_degrees=11.0, pca_turn_degrees_1L_same_steps=15.0,
               pca_path_lengths={"before": 3.5, "during": 27.0, "after": 4.3},
               pca_path_lengths_1L_same_steps={"before": 3.1, "during": 2.3, "after": 0.5})
    results["ablation_1L"] = {"copying_heads": [[0, 1], [0, 2]], "other_heads": [[0, 0], [0, 3]],
                              "clean_icl_score": -0.3, "copying_heads_icl_score": -0.032,
                              "copying_heads_change": 0.268, "copying_heads_change_sem": 0.019,
                              "other_heads_icl_score": -0.461}
    text = olsson.report(results)
    assert "Zeroing its copying heads (L0H1, L0H2) takes its ICL score from -0.300 to -0.032" in text
    assert "turns by 11 degrees" in text and "moves 27.0" in text and "3.1, 2.3, 0.5" in text
    assert f"{two['icl_score_over_training'][-1]:+.3f} on the subset" in text
    two.update(pca_turn_degrees=80.0)                                       # claim 7 agrees: nothing to explain
    assert "Claim 7" not in olsson.report(results)
