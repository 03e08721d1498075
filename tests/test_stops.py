"""What happens when a run stops: signals, errors, a full disk, divergence, strict JSON."""
import errno
import json
import os
import signal
import warnings

import numpy as np
import pytest

from tinyinduction import evaluation as evaluation_module
from tinyinduction import train as train_module
from tinyinduction import train_state
from tinyinduction.checkpoint import load_checkpoint, load_params
from tinyinduction.clamp import Clamp, previous_token_target
from tinyinduction.cli import main
from tinyinduction.config import ModelConfig, TrainConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.evaluation import background_evaluation_unavailable
from tinyinduction.model import TokenBatch
from tinyinduction.jsonio import load_history
from tinyinduction.train import TrainingDiverged, train

from run_helpers import quiet, short_run as _short, without_wall_time


def status(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def strict_load(path):
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}: not RFC 8259 JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


# ---------------------------------------------------------------- signals


def test_sigterm_stops_between_steps_saves_and_resumes_exactly(tmp_path):
    model, task, train_config = _short(steps=100)
    calls = []

    def terminate_at_step_30(line):
        calls.append(line)
        os.kill(os.getpid(), signal.SIGTERM)

    result = train(model, task, train_config.replace(log_every=30), out_dir=tmp_path,
                   log=terminate_at_step_30)
    assert result.interrupted and result.stopped_by == "SIGTERM" and result.step == 30
    assert load_history(tmp_path / "history.json")["step"] == [0, 20]   # up to the last evaluation
    assert (tmp_path / "checkpoints" / "step_30.npz").exists()
    assert status(tmp_path)["status"] == "interrupted" and status(tmp_path)["step"] == 30
    resumed = train(model, task, train_config, out_dir=tmp_path, resume="auto", log=quiet)
    full = train(model, task, train_config, log=quiet)
    assert without_wall_time(resumed.history) == without_wall_time(full.history)


def test_a_second_ctrl_c_during_an_evaluation_stops_at_once(tmp_path, monkeypatch):
    model, task, train_config = _short(steps=60)
    real_evaluate = evaluation_module.evaluate
    evaluated = []

    def evaluate(params, config, batch, clamps=()):
        evaluated.append(len(evaluated))
        if len(evaluated) == 10:         # step 40, the second of four sets
            os.kill(os.getpid(), signal.SIGINT)      # first Ctrl-C: a flag
            os.kill(os.getpid(), signal.SIGINT)      # second: stop now
            pytest.fail("the second Ctrl-C did not stop the evaluation")
        return real_evaluate(params, config, batch, clamps)

    monkeypatch.setattr(evaluation_module, "evaluate", evaluate)
    result = train(model, task, train_config, out_dir=tmp_path, log=quiet)
    assert result.interrupted and result.stopped_by == "SIGINT" and result.step == 40
    assert len(evaluated) == 10                               # nothing after the second Ctrl-C
    assert load_history(tmp_path / "history.json")["step"] == [0, 20]
    assert int(load_checkpoint(tmp_path / "checkpoints" / "step_40.npz")["step"]) == 40
    monkeypatch.setattr(evaluation_module, "evaluate", real_evaluate)
    resumed = train(model, task, train_config, out_dir=tmp_path, resume="auto", log=quiet)
    full = train(model, task, train_config, log=quiet)
    assert without_wall_time(resumed.history) == without_wall_time(full.history)


def test_a_signal_after_the_last_step_still_finishes_the_run(tmp_path):
    model, task, train_config = _short(steps=40)
    result = train(model, task, train_config.replace(log_every=40), out_dir=tmp_path,
                   log=lambda line: os.kill(os.getpid(), signal.SIGINT))
    assert not result.interrupted and result.status == "finished" and result.step == 40
    assert status(tmp_path)["status"] == "finished"


# ---------------------------------------------------------------- errors inside the loop


def _failing_clamp(fail_at_call):
    calls = []

    def value(batch, cache):
        calls.append(1)
        if len(calls) == fail_at_call:
            raise RuntimeError("sensor failure")
        return previous_token_target(cache["hook_embed"].shape[1])
    return Clamp("blocks.0.attn.hook_pattern", value, np.s_[:, 0], label="prev-token L0H0")


def test_an_error_inside_the_loop_saves_history_and_checkpoint(tmp_path):
    model, task, train_config = _short(steps=60)
    # calls: 4 evaluation sets at step 0, then one per step and 4 per evaluation
    with pytest.raises(RuntimeError, match="sensor failure"):
        train(model, task, train_config, out_dir=tmp_path, clamps=[_failing_clamp(4 + 30)], log=quiet)
    history = load_history(tmp_path / "history.json")
    assert history["step"] == [0, 20]
    record = status(tmp_path)
    assert record["status"] == "failed" and "RuntimeError: sensor failure" in record["message"]
    # the step that failed never updated, so the checkpoint is at the last whole step
    saved = sorted(tmp_path.glob("checkpoints/*.npz"))
    assert [p.name for p in saved] == ["step_25.npz"]
    ckpt = load_checkpoint(saved[0])
    assert int(ckpt["step"]) == 25 and ckpt["history"]["step"] == [0, 20]
    assert not list(tmp_path.rglob("*.tmp"))


def test_after_an_error_inside_a_step_the_resumed_run_trains_on_that_steps_batch(tmp_path, monkeypatch):
    model, task, train_config = _short(steps=60)
    real = train_module.training_loss_and_grads
    calls = []

    def failing_at_step_26(*args, **kwargs):     # mid-block: blocks hold 16 batches
        calls.append(1)
        if len(calls) == 26:
            raise MemoryError("no room for the step")
        return real(*args, **kwargs)
    monkeypatch.setattr(train_module, "training_loss_and_grads", failing_at_step_26)
    with pytest.raises(MemoryError):
        train(model, task, train_config, out_dir=tmp_path, log=quiet)
    assert int(load_checkpoint(tmp_path / "checkpoints" / "step_25.npz")["step"]) == 25
    monkeypatch.setattr(train_module, "training_loss_and_grads", real)
    resumed = train(model, task, train_config, out_dir=tmp_path, resume="auto", log=quiet)
    full = train(model, task, train_config, log=quiet)
    assert without_wall_time(resumed.history) == without_wall_time(full.history)
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name])


def _full_disk(monkeypatch, after_bytes=100):
    """np.savez that writes a little and then finds the disk full."""
    def savez(handle, **arrays):
        handle.write(b"\0" * after_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", savez)


def test_a_full_disk_leaves_no_temporary_files_and_keeps_the_history(tmp_path, monkeypatch):
    model, task, train_config = _short(steps=60)
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        train(model, task, train_config, out_dir=tmp_path, log=quiet)
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.npz"))
    assert load_history(tmp_path / "history.json")["step"] == [0, 20, 40]
    record = status(tmp_path)
    assert record["status"] == "failed" and "checkpoint step_40 not saved" in record["message"]


def test_a_full_disk_is_one_line_and_exit_code_1(tmp_path, monkeypatch, capsys):
    _full_disk(monkeypatch)
    code = main(["train", "--preset", "small", "--steps", "20", "--eval-every", "10",
                 "--log-every", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "No space left" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("in_background", [False, True])
def test_a_non_finite_evaluation_is_caught_and_never_recorded(tmp_path, monkeypatch, in_background):
    if in_background and background_evaluation_unavailable():
        pytest.skip(f"no background evaluation here: {background_evaluation_unavailable()}")
    model, task, train_config = _short(steps=60, checkpoint_every=20)
    real_evaluate_all = train_state.evaluate_all
    calls = []

    def evaluate_all(*args, **kwargs):
        calls.append(1)
        out = real_evaluate_all(*args, **kwargs)
        if len(calls) == 3:                          # the evaluation at step 40
            out["eval/heldout_classes/loss"] = float("inf")
        return out

    monkeypatch.setattr(train_state, "evaluate_all", evaluate_all)        # evaluating here
    monkeypatch.setattr(evaluation_module, "evaluate_all", evaluate_all)  # in the child
    with pytest.raises(TrainingDiverged) as diverged:
        train(model, task, train_config, out_dir=tmp_path, log=quiet,
              evaluate_in_background=in_background)
    message = str(diverged.value)
    good = tmp_path / "checkpoints" / "step_20.npz"
    assert "'heldout_classes'" in message and "step 40" in message and str(good) in message
    assert good.exists() and not (tmp_path / "checkpoints" / "step_40.npz").exists()
    assert load_history(tmp_path / "history.json")["step"] == [0, 20]
    assert status(tmp_path)["status"] == "failed"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("lr, caught", [
    (1e39, "the parameters became non-finite at step 1"),   # the first float32 update overflows
    (1e30, "the training loss became non-finite"),          # huge but finite parameters, then NaN
])
def test_divergence_never_checkpoints_non_finite_parameters(tmp_path, lr, caught):
    model, task, train_config = _short(steps=30, lr=lr, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=caught) as diverged:
        train(model, task, train_config, out_dir=tmp_path, log=quiet)
    saved = list(tmp_path.glob("checkpoints/*.npz"))
    for path in saved:
        params, _ = load_params(path)
        assert all(np.isfinite(v).all() for v in params.values())
    message = str(diverged.value)
    if saved:
        latest = max(saved, key=lambda p: int(p.stem.split("_")[1]))
        assert f"the last checkpoint with finite parameters is {latest}" in message
    else:
        assert "no checkpoint with finite parameters" in message


@pytest.mark.parametrize("in_background", [False, True])
def test_divergence_says_so_once_without_numpy_warnings(tmp_path, capsys, in_background):
    """A diverging run ends in its one-line error, not after a dozen RuntimeWarnings."""
    if in_background and background_evaluation_unavailable():
        pytest.skip(f"no background evaluation here: {background_evaluation_unavailable()}")
    from tinyinduction.cli import main
    args = ["train", "--preset", "small", "--lr", "1e30", "--steps", "30", "--log-every", "0",
            "--out", str(tmp_path / "run")] + ([] if in_background else ["--eval-here"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)      # a warning would fail the run
        assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training diverged" in err


def test_a_non_finite_gradient_under_a_finite_loss_is_caught_and_named(tmp_path, monkeypatch):
    model, task, train_config = _short(steps=30, checkpoint_every=2)
    real = train_module.training_loss_and_grads
    calls = []

    def nan_gradient_at_step_3(*args, **kwargs):
        calls.append(1)
        loss, acc, grads = real(*args, **kwargs)
        if len(calls) == 3:
            grads = dict(grads)
            grads["blocks.0.attn.W_Q"] = np.full_like(grads["blocks.0.attn.W_Q"], np.nan)
        return loss, acc, grads
    monkeypatch.setattr(train_module, "training_loss_and_grads", nan_gradient_at_step_3)
    with pytest.raises(TrainingDiverged, match=r"parameters became non-finite at step 3 "
                                               r"\(a gradient was not finite\)") as diverged:
        train(model, task, train_config, out_dir=tmp_path, log=quiet)
    assert sorted(p.name for p in tmp_path.glob("checkpoints/*.npz")) == ["step_2.npz"]
    assert "step_2.npz" in str(diverged.value)


def test_infinite_settings_are_refused_before_any_work():
    for build in (lambda: TrainConfig(lr=float("inf")), lambda: TrainConfig(adam_eps=float("inf")),
                  lambda: ModelConfig(rope_base=float("inf")),
                  lambda: ModelConfig(layernorm_eps=float("inf"))):
        with pytest.raises(ValueError, match="inf is invalid: must be a finite"):
            build()


def test_history_json_is_strict_json_with_null_for_nan(tmp_path):
    model, _, train_config = _short(steps=20)
    task = TaskConfig.small(heldout_label_fraction=0.0)      # no held-out labels: empty relabel set
    result = train(model, task, train_config, out_dir=tmp_path, log=quiet)
    stored = strict_load(tmp_path / "history.json")
    assert stored["eval/relabel/loss"] == [None, None] and np.isnan(result.history["eval/relabel/loss"]).all()
    strict_load(tmp_path / "run.json"), strict_load(tmp_path / "config.json")
    # read back, null is NaN again, so a resumed history equals the uninterrupted one
    assert np.isnan(load_history(tmp_path / "history.json")["eval/relabel/loss"]).all()
    assert np.isnan(load_checkpoint(tmp_path / "checkpoints" / "step_20.npz")["history"]["eval/relabel/loss"]).all()


# ---------------------------------------------------------------- task protocol and features


class CopyTask:
    """Tokens: a random first half, repeated; the loss is on the second half (induction)."""

    def __init__(self, vocab=8, half=4):
        self.vocab, self.half = vocab, half
        self.fingerprint = {"name": "copy", "vocab": vocab, "half": half}
        self.checked = []

    def sample(self, rng, batch_size):
        first = rng.integers(0, self.vocab, size=(batch_size, self.half))
        tokens = np.concatenate([first, first], axis=1)
        targets = np.full_like(tokens, -1)
        targets[:, self.half:-1] = tokens[:, self.half + 1:]
        return TokenBatch(tokens, targets)

    def eval_sets(self):
        return {"copy": self.sample(np.random.default_rng(0), 64)}

    def check_model(self, model_config):
        self.checked.append(model_config)
        if model_config.d_vocab != self.vocab:
            raise ValueError(f"d_vocab = {model_config.d_vocab}: the copy task has {self.vocab} tokens")


def test_a_token_task_trains_through_the_same_loop(tmp_path):
    task = CopyTask()
    model = ModelConfig.small(input_kind="tokens", d_vocab=8, n_ctx=8, positional="learned")
    lines = []
    config = TrainConfig(steps=20, lr=1e-2, eval_every=10, checkpoint_every=10, log_every=10)
    result = train(model, None, config, out_dir=tmp_path, task=task, log=lines.append)
    assert task.checked == [model]
    assert set(result.history) >= {"eval/copy/loss", "eval/copy/acc", "train/loss"}
    assert result.history["eval/copy/loss"][-1] < result.history["eval/copy/loss"][0]
    assert "copy" in lines[-1]
    assert status(tmp_path)["identity"]["features"] == task.fingerprint
    with pytest.raises(ValueError, match="the copy task has 8 tokens"):
        train(model.replace(d_vocab=9), None, config, task=task, log=quiet)


def test_evaluation_weighs_token_batches_by_their_loss_positions():
    task = CopyTask()
    model = ModelConfig.small(input_kind="tokens", d_vocab=8, n_ctx=8, positional="learned",
                              dtype="float64")
    from tinyinduction.model import init_params, loss_and_grads
    params = init_params(model, 0)
    batch = task.eval_sets()["copy"]
    whole, _ = train_module.evaluate(params, model, batch)
    expected, _, _, _ = loss_and_grads(params, model, batch)
    assert whole == pytest.approx(expected, rel=1e-12)
    assert train_module.batch_size_of(batch) == 64


def test_features_of_another_dimension_just_work_from_the_command_line(tmp_path, capsys):
    table = np.random.default_rng(0).random((30, 5, 64)).astype(np.float32)
    np.save(tmp_path / "table.npy", table)
    code = main(["train", "--preset", "small", "--features", str(tmp_path / "table.npy"),
                 "--steps", "10", "--eval-every", "5", "--log-every", "0", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    identity = status(tmp_path / "run")["identity"]
    assert identity["model"]["d_feature"] == 64 and identity["features"]["shape"] == [30, 5, 64]


def test_a_plain_dict_where_a_config_belongs_is_a_type_error():
    model, task, train_config = _short(steps=10)
    for args, name in (((model.to_dict(), task, train_config), "model_config"),
                       ((model, task, train_config.to_dict()), "train_config"),
                       ((model, {"n_labels": 5}, train_config), "task_config")):
        with pytest.raises(TypeError, match=f"{name} = .*must be a"):
            train(*args, log=quiet)
