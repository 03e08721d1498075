"""Evaluation in a second process: the same history, checkpoints and stops as evaluating
in the training process, and a failing child costs nothing but speed."""
import os
import signal

import numpy as np
import pytest

from tinyinduction import evaluation
from tinyinduction import train as train_module
from tinyinduction.checkpoint import load_checkpoint
from tinyinduction.presets import preset
from tinyinduction.evaluation import (BackgroundEvaluationFailed, BackgroundEvaluator,
                                      background_evaluation_unavailable, evaluate_all)
from tinyinduction.model import init_params
from tinyinduction.optim import flatten_params
from tinyinduction.jsonio import load_history
from tinyinduction.tasks.fewshot import FewShotTask
from tinyinduction.train import train

from run_helpers import short_run as _short, without_wall_time

pytestmark = pytest.mark.skipif(background_evaluation_unavailable() is not None,
                                reason=f"no background evaluation here: "
                                       f"{background_evaluation_unavailable()}")


@pytest.fixture
def started(monkeypatch):
    """Counts the BackgroundEvaluators train() starts (so a test knows it ran one)."""
    count = []

    class Counted(BackgroundEvaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            count.append(self)
    monkeypatch.setattr(train_module, "BackgroundEvaluator", Counted)
    return count


def test_the_child_gives_the_numbers_evaluate_all_gives_here():
    model, task_config, _ = preset("small")
    eval_sets = FewShotTask(task_config).eval_sets()
    flat, params = flatten_params(init_params(model, 3))
    evaluator = BackgroundEvaluator(model, eval_sets, (), params)
    try:
        for seed in (3, 4):
            snapshot, _ = flatten_params(init_params(model, seed))
            evaluator.submit(snapshot)
            with pytest.raises(RuntimeError, match="already in flight"):
                evaluator.submit(snapshot)
            flat[:] = snapshot
            assert evaluator.result() == evaluate_all(params, model, eval_sets)
        with pytest.raises(RuntimeError, match="no evaluation in flight"):
            evaluator.result()
        with pytest.raises(ValueError, match="bytes"):
            evaluator.submit(flat[:-1])
    finally:
        evaluator.close()


def test_history_checkpoints_and_progress_lines_equal_evaluating_here(tmp_path, started):
    model, task, train_config = _short(steps=100, log_every=20)
    lines = {True: [], False: []}
    runs = {}
    for background in (False, True):
        runs[background] = train(model, task, train_config, out_dir=tmp_path / str(background),
                                 log=lines[background].append, evaluate_in_background=background)
    assert len(started) == 1
    assert without_wall_time(runs[True].history) == without_wall_time(runs[False].history)
    for step in (40, 80, 100):
        here, there = (load_checkpoint(tmp_path / str(b) / "checkpoints" / f"step_{step}.npz")
                       for b in (False, True))
        assert without_wall_time(here["history"]) == without_wall_time(there["history"])
        assert here["history"]["step"][-1] == step          # the row of its own step is in it
        for name in here["params"]:
            np.testing.assert_array_equal(here["params"][name], there["params"][name])
        assert here["data_rng"] == there["data_rng"]
        np.testing.assert_array_equal(here["optimizer"]["adam.m"], there["optimizer"]["adam.m"])
    # the same progress lines, in the same order (up to the speed they report)
    assert [line.split("|")[:2] for line in lines[True]] == [line.split("|")[:2] for line in lines[False]]
    assert len(lines[True]) == 5


def test_a_child_that_raises_or_dies_costs_only_speed(tmp_path, monkeypatch, started):
    model, task, train_config = _short()
    reference = train(model, task, train_config)
    real = evaluation.evaluate_all
    for failure in ("raises", "dies"):
        calls = []

        def failing(*args, **kwargs):          # runs in the child (it is forked after this)
            calls.append(1)
            if len(calls) == 2:
                if failure == "dies":
                    os._exit(3)
                raise RuntimeError("out of memory, say")
            return real(*args, **kwargs)
        monkeypatch.setattr(evaluation, "evaluate_all", failing)
        lines = []
        result = train(model, task, train_config, out_dir=tmp_path / failure, log=lines.append,
                       evaluate_in_background=True)
        assert without_wall_time(result.history) == without_wall_time(reference.history)
        said = [line for line in lines if "evaluating in this process from now on" in line]
        assert len(said) == 1
        assert ("RuntimeError: out of memory, say" if failure == "raises" else "exit code 3") in said[0]
    assert len(started) == 2


def test_ctrl_c_while_an_evaluation_is_in_flight_saves_a_whole_state(tmp_path, monkeypatch, started):
    model, task, train_config = _short(steps=60)
    real_step = train_module.training_loss_and_grads
    calls = []

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 21:                # the step after step 20's evaluation was sent
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)
    monkeypatch.setattr(train_module, "training_loss_and_grads", step_then_signal)
    result = train(model, task, train_config, out_dir=tmp_path, evaluate_in_background=True,
                   log=lambda line: None)
    assert result.interrupted and result.step == 21
    assert load_history(tmp_path / "history.json")["step"] == [0, 20]
    assert load_checkpoint(tmp_path / "checkpoints" / "step_21.npz")["history"]["step"] == [0, 20]
    monkeypatch.setattr(train_module, "training_loss_and_grads", real_step)
    resumed = train(model, task, train_config, out_dir=tmp_path, resume="auto",
                    evaluate_in_background=True, log=lambda line: None)
    full = train(model, task, train_config)
    assert without_wall_time(resumed.history) == without_wall_time(full.history)
    assert len(started) == 2


def test_evaluate_in_background_must_be_a_bool():
    model, task, train_config = _short(steps=1)
    with pytest.raises(TypeError, match="evaluate_in_background"):
        train(model, task, train_config, evaluate_in_background="yes")


def test_a_child_left_alone_by_its_parent_leaves(tmp_path):
    model, task_config, _ = preset("small")
    eval_sets = FewShotTask(task_config).eval_sets()
    _, params = flatten_params(init_params(model, 3))
    evaluator = BackgroundEvaluator(model, eval_sets, (), params)
    process = evaluator._process
    evaluator._conn.close()                 # as when the parent dies
    process.join(timeout=10)
    assert not process.is_alive()
    with pytest.raises(BackgroundEvaluationFailed):
        evaluator.busy = True
        evaluator.result(timeout=1)


def test_clamped_runs_evaluate_the_same_in_the_child(started):
    """The child evaluates through the run's clamps (here the two-pass clamp A, whose
    links reach into another pass): forked, not pickled."""
    from tinyinduction.subcircuits import build_clamps, parse_clamp_option
    model, task, train_config = _short(steps=60)
    clamps = build_clamps([parse_clamp_option("A")], model)
    here, there = (train(model, task, train_config, clamps=clamps, log=lambda line: None,
                         evaluate_in_background=background) for background in (False, True))
    assert without_wall_time(here.history) == without_wall_time(there.history)
    assert len(started) == 1
