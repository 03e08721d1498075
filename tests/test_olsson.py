"""`reproduce olsson`: its helpers on constructed inputs, and the quick setting end to end,
asserting the effect it exists to show (a 2-layer model forms a prefix-matching head that
a 1-layer model cannot)."""
import json

import numpy as np
import pytest

from tinyinduction.cli import main
from tinyinduction.config import ModelConfig
from tinyinduction.experiments import olsson
from tinyinduction.model import TokenBatch, init_params


def test_phase_change_is_halfway_up_and_none_without_a_formed_head():
    steps = [0, 100, 200, 300, 400]
    assert olsson.phase_change_step(steps, [0.05, 0.06, 0.2, 0.6, 0.7]) == 300   # halfway = 0.375
    assert olsson.phase_change_step(steps, [0.05, 0.4, 0.5, 0.55, 0.5]) == 100
    assert olsson.phase_change_step(steps, [0.05, 0.1, 0.2, 0.25, 0.29]) is None


def test_loss_pca_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(50)
    trajectories = {}
    for name, speed in (("a", 1.0), ("b", -2.0)):
        t = np.linspace(0, 1, 12)[:, None]
        trajectories[name] = {"per_token": 5.0 + speed * t * direction + 1e-3 * rng.standard_normal((12, 50))}
    pca = olsson.loss_pca(trajectories, first=1)
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
    probes = olsson.Probes(windows, windows, None, None, 0, None, 0, None)
    prefix = np.array([[0.1, 0.2], [0.9, 0.05]])                 # [L, H]: only L1H0 is an induction head
    result = olsson.ablation(params, config, probes, prefix)
    assert result["induction_heads"] == [[1, 0]]
    assert len(result["other_head_sets"]) == 3 and [1, 0] not in sum(result["other_head_sets"], [])
    assert result["other_heads_icl_score"] == pytest.approx(np.mean(result["other_heads_icl_scores"]))
    assert result["induction_heads_icl_score"] != result["clean_icl_score"]
    assert result["repeated"]["clean_icl_score"] == pytest.approx(result["clean_icl_score"])   # same windows here
    weak = olsson.ablation(params, config, probes, prefix * 0.1)   # nobody reaches the threshold
    assert weak["induction_heads"] == [[1, 0]] and "best head" in weak["rule"]


def test_icl_around_a_step():
    steps, icl = [0, 100, 200, 300, 400, 500, 600, 700], [0, -1, -2, -3, -4, -5, -6, -7]
    assert olsson.icl_around(steps, icl, 400, lo=100, hi=200) == (-2.5, -5.5)
    assert olsson.icl_around(steps, icl, 700, lo=100, hi=200) == (-5.5, None)


def test_settings_and_specs():
    default, quick = olsson.setting(False, 5), olsson.setting(True, 5)
    assert default.text.n_ctx >= 64 and default.control and not quick.control
    specs = olsson.run_specs(default, 98)
    assert [s.name for s in specs] == ["1L", "2L", "1L_smeared", "2L_smeared", olsson.CONTROL]
    assert specs[-1].task.repeat_fraction == 0.0 and specs[1].task.repeat_fraction > 0
    assert [s.model.smeared_key for s in specs] == [False, False, True, True, False]
    assert [s.model.n_layers for s in specs] == [1, 2, 1, 2, 2]


def test_reproduce_olsson_quick_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "olsson", "--quick", "--out", str(tmp_path), "--jobs", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    models = results["models"]
    assert set(models) == {"1L", "2L", "1L_smeared", "2L_smeared"}
    for m in models.values():
        assert {"icl_score", "max_prefix_matching", "phase_change_step", "loss"} <= set(m)
    assert set(results["ablation"]) >= {"induction_heads_icl_score", "other_heads_icl_score", "clean_icl_score"}
    # the effect: the 2-layer model forms a prefix-matching (induction) head, the 1-layer one cannot
    assert models["2L"]["max_prefix_matching"] > models["1L"]["max_prefix_matching"] + 0.2
    assert models["1L"]["phase_change_step"] is None and models["2L"]["phase_change_step"] is not None
    # ... and the smeared key lets even one layer form it, earlier than two plain layers
    assert models["1L_smeared"]["phase_change_step"] < models["2L"]["phase_change_step"]
    for stem in ("olsson_training_quick", "olsson_pca_quick", "olsson_heads_quick", "olsson_ablation_quick"):
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 10_000


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


def test_paired_differences_use_the_same_windows():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1.0, 400)                       # window-to-window spread, common to both
    trajectories = {"1L": {"icl_per_window": [shared]},
                    "2L": {"icl_per_window": [shared - 0.1 + rng.normal(0, 0.05, 400)]}}
    difference, error = olsson.paired_differences(trajectories)["2L - 1L"]
    assert difference == pytest.approx(-0.1, abs=0.01) and error < 0.005   # unpaired it would be ~0.07
