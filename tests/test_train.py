"""Training: the phase change itself, determinism, resume, Ctrl-C, divergence, the CLI."""
import json
import math
import os
import signal

import numpy as np
import pytest

from tinyinduction.clamp import Clamp
from tinyinduction.cli import main
from tinyinduction.presets import preset
from tinyinduction.tasks.fewshot import FewShotTask
from tinyinduction.train import TrainingDiverged, load_checkpoint, load_params, train

from run_helpers import quiet, short_run as _short

LN2 = math.log(2)


@pytest.fixture(scope="module")
def small_run():
    """The small preset, long enough to pass the phase change (~15 s)."""
    model, task, train_config = preset("small")
    return train(model, task, train_config.replace(steps=1800, log_every=0), log=quiet).history


def test_small_run_has_a_plateau_near_ln2_then_drops(small_run):
    steps = np.array(small_run["step"])
    loss = np.array(small_run["eval/train/loss"])
    acc = np.array(small_run["eval/train/acc"])
    plateau = loss[(steps >= 300) & (steps <= 1000)]
    # a plateau: the copy-a-random-context-label solution, loss ~ ln 2, accuracy ~ 1/2
    assert abs(np.median(plateau) - LN2) < 0.1
    assert np.all(np.abs(plateau - LN2) < 0.2)
    assert abs(np.median(acc[(steps >= 300) & (steps <= 1000)]) - 0.5) < 0.1
    # then the drop: the induction circuit solves the task
    assert loss[-1] < 0.1 and acc[-1] > 0.95
    # and the drop is abrupt: from the plateau to below 0.4 ln 2 within a few hundred steps
    left_plateau = steps[np.argmax((steps > 300) & (loss < LN2 - 0.1))]
    solved = steps[np.argmax(loss < 0.4 * LN2)]
    assert 0 < solved - left_plateau <= 600


def test_history_is_a_dict_of_equal_length_lists(small_run):
    lengths = {len(values) for values in small_run.values()}
    assert len(lengths) == 1
    for key in ("step", "sequences", "train/loss", "train/acc"):
        assert key in small_run
    for name in ("train", "relabel", "heldout_classes", "other_exemplars"):
        assert f"eval/{name}/loss" in small_run and f"eval/{name}/acc" in small_run
    assert small_run["sequences"][-1] == small_run["step"][-1] * 32


def test_same_seed_same_history_different_seed_different_history():
    model, task, train_config = _short()
    first = train(model, task, train_config, log=quiet)
    second = train(model, task, train_config, log=quiet)
    other = train(model, task, train_config.replace(seed=6), log=quiet)
    hist = {k: v for k, v in first.history.items() if k != "wall_time"}
    assert hist == {k: v for k, v in second.history.items() if k != "wall_time"}
    assert hist["train/loss"] != other.history["train/loss"]


def test_resume_equals_uninterrupted(tmp_path):
    model, task, train_config = _short(steps=100)
    full = train(model, task, train_config, out_dir=tmp_path / "full", log=quiet)
    resumed = train(model, task, train_config, out_dir=tmp_path / "resumed",
                    resume=tmp_path / "full" / "checkpoints" / "step_40.npz", log=quiet)
    for key in full.history:
        if key != "wall_time":
            assert resumed.history[key] == full.history[key], key
    for name, value in full.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)


def test_run_directory_contents(tmp_path):
    model, task, train_config = _short(steps=40)
    train(model, task, train_config, out_dir=tmp_path, log=quiet)
    configs = json.loads((tmp_path / "config.json").read_text())
    assert configs["model"]["n_heads"] == model.n_heads and configs["train"]["steps"] == 40
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["step"] == [0, 20, 40]
    params, loaded_config = load_params(tmp_path / "checkpoints" / "step_40.npz")
    assert loaded_config == model and set(params) >= {"unembed.W_U", "blocks.1.attn.W_Q"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_ctrl_c_stops_between_steps_and_saves(tmp_path):
    model, task, train_config = _short(steps=200)
    train_config = train_config.replace(log_every=30)
    lines = []

    def log_then_interrupt(line):
        lines.append(line)
        os.kill(os.getpid(), signal.SIGINT)   # as if the user pressed Ctrl-C now

    result = train(model, task, train_config, out_dir=tmp_path, log=log_then_interrupt)
    assert result.interrupted
    assert (tmp_path / "checkpoints" / "step_30.npz").exists()
    assert "interrupted at step 30" in lines[-1]
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "step_30.npz")
    assert ckpt["history"]["step"][-1] == 20


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_loss_stops_with_the_step_named(tmp_path):
    model, task, train_config = _short(steps=50)
    poison = Clamp("hook_logits", np.inf, np.s_[:, -1, :])   # inf - inf = NaN in the loss
    # the clamp also poisons the evaluation at step 0, which is where it is caught
    with pytest.raises(TrainingDiverged, match="at step 0.*no checkpoint with finite parameters"):
        train(model, task, train_config, out_dir=tmp_path, clamps=[poison], log=quiet)
    assert not list(tmp_path.rglob("*.npz"))
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    # without evaluations in the way, the training loss is caught at the first step
    with pytest.raises(TrainingDiverged, match="training loss became non-finite .* at step 1"):
        train(model, task, train_config, clamps=[poison], log=quiet,
              task=_EvalFree(FewShotTask(task)))


class _EvalFree:
    """A few-shot task without evaluation sets (the protocol allows an empty dict)."""

    def __init__(self, task):
        self.task, self.config, self.features = task, task.config, task.features
        self.feature_dim, self.n_labels = task.feature_dim, task.n_labels

    def sample(self, rng, batch_size):
        return self.task.sample(rng, batch_size)

    def eval_sets(self):
        return {}


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz")


def test_cli_train_writes_the_contract(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "small", "--seed", "3", "--steps", "20", "--eval-every", "10",
                 "--out", str(out)])
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [0, 10, 20]
    assert (out / "checkpoints" / "step_20.npz").exists()
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 3


def test_cli_bad_input_is_one_line(capsys):
    assert main(["train", "--preset", "small", "--steps", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "steps" in err and "0" in err


def test_cli_bench_json(capsys):
    assert main(["bench", "--preset", "small", "--repeats", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ms_per_step"] > 0 and result["repeats"] == 5


def test_cli_demo_small_preset_reports_the_phase_change(tmp_path, capsys):
    figure = tmp_path / "demo.png"
    code = main(["demo", "--preset", "small", "--log-every", "0", "--out", str(tmp_path / "run"),
                 "--figure", str(figure)])
    assert code == 0
    out = capsys.readouterr().out
    assert "phase change          step" in out and "not reached" not in out
    plateau = float(out.split("plateau loss")[1].split()[0])
    assert abs(plateau - LN2) < 0.1
    assert figure.stat().st_size > 10_000
    assert json.loads((tmp_path / "run" / "history.json").read_text())["step"][-1] == 2000


def test_evaluation_in_chunks_equals_one_pass_also_with_a_graft_from_the_whole_set():
    from tinyinduction.clamp import graft
    from tinyinduction.config import ModelConfig
    from tinyinduction.tasks.fewshot import TaskConfig
    from tinyinduction.model import init_params, loss_and_grads, run_with_cache
    from tinyinduction.train import EVAL_CHUNK, evaluate
    model = ModelConfig.small(dtype="float64")
    batch = FewShotTask(TaskConfig.small(eval_size=EVAL_CHUNK + 300)).eval_sets()["train"]
    params, other = init_params(model, 0), init_params(model, 1)
    donor = graft("blocks.0.attn.hook_pattern", run_with_cache(other, model, batch))
    for clamps in ((), [donor]):
        whole = loss_and_grads(params, model, batch, clamps)[:2]
        assert evaluate(params, model, batch, clamps) == pytest.approx(whole, rel=1e-12)
    assert evaluate(params, model, batch, [donor])[0] != pytest.approx(evaluate(params, model, batch)[0])


def test_where_it_cannot_fork_safely_the_evaluations_run_here_and_a_line_says_why(monkeypatch):
    import sys
    monkeypatch.setattr(sys, "platform", "darwin")
    model, task, train_config = _short(steps=40)
    lines = []
    result = train(model, task, train_config, log=lines.append, evaluate_in_background=True)
    assert "evaluating in this process (forking is not safe on macOS)" in lines
    assert result.history["step"] == [0, 20, 40]
