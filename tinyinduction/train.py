"""Training: the loop, evaluation schedule, history, checkpoints, resume, and what happens
when something goes wrong.

    result = train(model_config, task_config, train_config, out_dir="runs/x")

writes a run directory (see runs.py): run.json (the run's identity and status),
config.json, history.json (a dict of equal-length lists, rewritten atomically at every
evaluation, strict JSON with null for NaN) and checkpoints/step_<N>.npz (checkpoint.py).
A resumed run continues exactly as the uninterrupted one would.

Stopping: Ctrl-C or SIGTERM stops between two steps and saves a checkpoint (a second
signal during an evaluation stops at once, and still saves); any other exception saves
the history and a checkpoint when the state allows, marks the run "failed", and is
raised again. Divergence (a non-finite training loss, gradient, parameter or evaluation
loss) stops the run without saving anything non-finite, and names the last checkpoint
whose parameters are finite.

Evaluation in a second process (evaluate_in_background=True; the command line's
default): the row of step s is computed by a forked child while training goes on, and
appended (with the checkpoint of step s, if one is due) when it comes back; the files
are the same as evaluating here.

Tasks: anything with .sample(rng, batch_size) -> batch, .eval_sets() -> {name: batch},
and a data fingerprint (.fingerprint, or a .features array; see runs.data_fingerprint);
optionally .sample_many(rng, batch_size, n), equal to n calls of .sample (then training
draws its batches 16 at a time: train_state.TrainingBatches).
Batches are few-shot batches (.exemplars, .labels, .target) or model.TokenBatch(tokens
[B, T], targets [B, T], -1 = no loss). A task may check a model with
.check_model(model_config); few-shot tasks are checked here.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint, load_params, save_checkpoint  # noqa: F401 (re-exported)
from .config import ModelConfig, TrainConfig, require_config
from .tasks.fewshot import TaskConfig
from .evaluation import (EVAL_CHUNK, BackgroundEvaluator,  # noqa: F401 (re-exported)
                         background_evaluation_unavailable, batch_size_of, evaluate, evaluate_all)
from .model import training_loss_and_grads
from .optim import flatten_grads
from .jsonio import write_json
from .runs import (CONFIG_FILE, check_output_dir, checkpoint_path, make_identity, move_aside,
                   plan_start, remove_temporaries)
from .tasks.fewshot import FewShotTask
from .train_state import TrainingDiverged, TrainingRun  # noqa: F401 (TrainingDiverged re-exported)


@dataclass
class TrainResult:
    """What train() returns. status: "finished" or "interrupted"; stopped_by: "SIGINT",
    "SIGTERM" or None; step: the number of updates done."""
    params: dict
    history: dict
    interrupted: bool = False
    out_dir: Path | None = None
    stopped_by: str | None = None
    status: str = "finished"
    step: int = 0


# ---------------------------------------------------------------- model and task


def check_model_fits_task(model_config: ModelConfig, task):
    """task.check_model(model_config) if the task has it; the few-shot check otherwise."""
    if hasattr(task, "check_model"):
        task.check_model(model_config)
    elif hasattr(task, "feature_dim") and hasattr(task, "n_labels"):
        if model_config.input_kind != "fewshot" or model_config.d_feature != task.feature_dim \
                or model_config.n_labels != task.n_labels:
            raise ValueError(
                f"model and task do not fit: the task has {task.feature_dim}-d features and "
                f"{task.n_labels} labels; ModelConfig has input_kind={model_config.input_kind!r}, "
                f"d_feature={model_config.d_feature}, n_labels={model_config.n_labels} "
                "(fit_model_to_task(model_config, task) takes d_feature from the task)")


def fit_model_to_task(model_config: ModelConfig, task) -> ModelConfig:
    """The model config with d_feature taken from a few-shot task's feature table."""
    if model_config.input_kind == "fewshot" and hasattr(task, "feature_dim"):
        return model_config.replace(d_feature=int(task.feature_dim))
    return model_config


def _resolve_task(task, task_config):
    if task is None:
        require_config(task_config, TaskConfig, "task_config")
        return FewShotTask(task_config), task_config
    for method in ("sample", "eval_sets"):
        if not callable(getattr(task, method, None)):
            raise TypeError(f"task = {task!r:.80}: a task needs .sample(rng, batch_size) and "
                            ".eval_sets()")
    if task_config is None:
        task_config = getattr(task, "config", None)
    is_config = (dataclasses.is_dataclass(task_config) and not isinstance(task_config, type)) \
        or (hasattr(task_config, "to_dict") and not isinstance(task_config, dict))
    if task_config is not None and not is_config:
        raise TypeError(f"task_config = {task_config!r:.80}: must be the task's config "
                        f"(a dataclass such as TaskConfig) or None, not {type(task_config).__name__}")
    if hasattr(task, "config") and task.config != task_config:
        raise ValueError("task_config differs from the config the task was built from "
                         f"({task.config}); pass the same one")
    return task, task_config


# ---------------------------------------------------------------- signals


class _StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM become a flag checked between steps, so no update is
    cut in half. A second signal inside `interruptible()` (an evaluation) raises
    KeyboardInterrupt at once. Only the main thread can take signals; elsewhere this
    does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = None         # name of the first signal
        self._urgent = False
        self._previous = {}

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:       # not the main thread
                break
        return self

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signal.Signals(signum).name
        elif self._urgent:
            raise KeyboardInterrupt

    def interruptible(self):
        stop = self

        class _Scope:
            def __enter__(self):
                stop._urgent = True

            def __exit__(self, *exc):
                stop._urgent = False
        return _Scope()

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


# ---------------------------------------------------------------- the loop


def train(model_config: ModelConfig, task_config, train_config: TrainConfig, out_dir=None,
          resume=None, clamps=(), task=None, log=print, overwrite=False,
          evaluate_in_background=False, stop_when=None) -> TrainResult:
    """Train a model on a task; see the module docstring for what is written.

    task_config: the TaskConfig; with task=None the few-shot task is built from it. With
        a task: its config (default task.config; None if it has none), recorded in the
        run's identity.
    out_dir:   the run directory (None: nothing is written). A directory holding a
        different run (identity, see runs.py) is refused with a RunDirectoryConflict
        (a ValueError) that names the differing field; so is a second start of the same
        run without resume.
    resume:    None; a checkpoint path (its identity must match this run's in every field
        but steps, checkpoint_every and log_every); or "auto": continue from the latest
        valid checkpoint in out_dir if it holds an unfinished run of this identity, start
        fresh if out_dir is absent or empty (or holds a run of an older version without
        run.json, which is moved aside), and return at once (final parameters and history)
        if the run there is finished. train_config.steps below the checkpoint's step is
        an error.
    clamps:    passed as given to every training step and every evaluation (opaque here).
    overwrite: move a run already in out_dir aside (to <out_dir>.old, .old-2, ...) and
        start fresh; never deletes anything. Cannot be combined with resume.
    evaluate_in_background: run the evaluations in a second process (evaluation.py), so
        they overlap training on a second core; the history is the same. Where that
        cannot work (one CPU, no fork, threads, see background_evaluation_unavailable)
        a log line says so and evaluations run here.
    stop_when: None, or a function polled between two steps that returns None to go on
        or a reason (e.g. "SIGTERM") to stop there as on that signal: save and return an
        interrupted result (the sweep runner stops a grid's runs this way).
    Returns a TrainResult; raises TrainingDiverged on divergence and re-raises any other
    error after saving what can be saved.
    """
    model_config = require_config(model_config, ModelConfig, "model_config")
    train_config = require_config(train_config, TrainConfig, "train_config")
    task, task_config = _resolve_task(task, task_config)
    check_model_fits_task(model_config, task)
    for name, flag in (("overwrite", overwrite), ("evaluate_in_background", evaluate_in_background)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} = {flag!r}: must be True or False")
    if resume is not None and not isinstance(resume, (str, os.PathLike)) or resume == "":
        raise ValueError(f"resume = {resume!r}: must be None, 'auto' or a checkpoint path")
    if overwrite and resume is not None:
        raise ValueError(f"resume = {resume!r} and overwrite = True: overwrite starts the run "
                         "again, resume continues it; choose one")
    if not callable(log):
        raise TypeError(f"log = {log!r}: must be a function taking one line of text")
    if stop_when is not None and not callable(stop_when):
        raise TypeError(f"stop_when = {stop_when!r}: must be None or a function returning a reason to stop")
    out_dir = check_output_dir(out_dir, "out_dir") if out_dir is not None else None
    if resume == "auto" and out_dir is None:
        raise ValueError("resume = 'auto' needs an out_dir to look for the run in")
    tc = train_config
    if out_dir is not None or resume is not None:
        identity = make_identity(model_config, task_config, tc, task, clamps)
    else:
        identity = None
    plan = plan_start(out_dir, identity, resume, overwrite, model_config, tc, log)
    run = TrainingRun(model_config, tc, task, clamps, out_dir, identity,
               {k: identity[k] for k in ("model", "task", "train")} if identity else None, log)
    if plan.kind in ("resume", "finished"):
        run.load(plan.ckpt, plan.step)
    if plan.kind == "finished":
        log(f"{out_dir} holds this run, finished at step {plan.step}: nothing to do")
        return TrainResult({n: run.params[n].copy() for n in run.names}, run.history, False,
                           out_dir, None, "finished", plan.step)

    run.eval_sets = task.eval_sets()
    if out_dir is not None:                         # everything checked: now take the directory
        if plan.move_aside:
            log(f"moved the previous run in {out_dir} to {move_aside(out_dir)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(out_dir)
        write_json(out_dir / CONFIG_FILE, run.configs, indent=2)
        in_dir = plan.kind == "resume" and Path(plan.ckpt["path"]).resolve() == \
            checkpoint_path(out_dir, plan.step).resolve()
        run.saved_step = plan.step if in_dir else None
        run.set_status("running")
    if plan.kind == "resume":
        log(f"resumed from {plan.ckpt['path']} at step {plan.step}")
    # a diverging run ends in one TrainingDiverged line: the loop checks every loss, gradient
    # and parameter, so NumPy's overflow warnings before it (a dozen) would only repeat it
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if evaluate_in_background:      # (the forked evaluator inherits the setting)
            run.evaluator = _start_background_evaluation(run, clamps, log)
        try:
            return _loop(run, stop_when)
        finally:
            if run.evaluator is not None:
                run.evaluator.close()


def _start_background_evaluation(run: TrainingRun, clamps, log):
    """A BackgroundEvaluator for the run, or None (and a line saying why)."""
    reason = background_evaluation_unavailable()
    if reason is None:
        try:
            return BackgroundEvaluator(run.model_config, run.eval_sets, clamps, run.params)
        except Exception as error:      # e.g. no processes left: evaluating here still works
            reason = f"{type(error).__name__}: {error}"
    log(f"evaluating in this process ({reason})")
    return None


def _loop(run: TrainingRun, stop_when=None) -> TrainResult:
    tc = run.tc
    run.start_step, run.started = run.step, time.perf_counter()
    started = run.started
    wall_before = run.history["wall_time"][-1] if run.history.get("wall_time") else 0.0
    under_way = False      # a batch was taken and its update not yet applied
    with _StopSignals() as stop:
        try:
            if not run.history.get("step") or (run.history["step"][-1] < run.step
                                               and run.due_for_evaluation(run.step)):
                run.record(wall_before, stop)          # step 0, or an evaluation cut short
            while run.step < tc.steps and stop.received is None:
                reason = stop_when() if stop_when is not None else None
                if reason is not None:          # asked to stop as on a signal (a grid's stop)
                    stop.received = stop.received or reason
                    break
                batch, under_way = run.batches.take(), True
                loss, acc, grads = training_loss_and_grads(run.params, run.model_config, batch, run.clamps)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"the training loss became non-finite (loss {loss}) at "
                                           f"step {run.step + 1}; the update was not applied")
                flat_grads = flatten_grads(grads, run.names, out=run.flat_grads)
                run.optimizer.step(run.flat, flat_grads, overwrite_grads=True)   # not read again
                run.step += 1
                under_way = False
                # Speed: one finiteness pass per step, over the parameters. A non-finite
                # gradient makes Adam's update NaN, so it is caught here too (and named by
                # the first moment, non-finite exactly when a gradient was); the run then
                # fails without saving these parameters.
                if not np.isfinite(run.flat).all():
                    cause = "" if np.isfinite(run.optimizer.m).all() else " (a gradient was not finite)"
                    raise TrainingDiverged(f"the parameters became non-finite at step {run.step}{cause}")
                run.accum += (loss, acc, 1)
                if run.pending is not None:
                    run.finish_pending(wait=False)     # a background evaluation came back
                if run.due_for_evaluation(run.step):
                    run.record(wall_before + time.perf_counter() - started, stop)
                if tc.log_every and (run.step % tc.log_every == 0 or run.step == tc.steps):
                    if run.pending is not None and run.pending.row.step == run.step:
                        run.pending = run.pending._replace(log=True)   # printed with its row
                    else:
                        run.progress()
                if run.step % tc.checkpoint_every == 0 or run.step == tc.steps:
                    run.save()
            run.finish_pending()
        except KeyboardInterrupt:        # a second signal during an evaluation
            stop.received = stop.received or "SIGINT"
            if under_way:
                run.batches.put_back()
        except TrainingDiverged as error:
            try:
                run.finish_pending()             # an earlier step's row (and checkpoint)
            except Exception:
                pass
            run.write_history()
            message = f"training diverged: {error}; {run.last_good_checkpoint()}"
            run.set_status("failed", message)
            raise TrainingDiverged(message) from None
        except BaseException as error:
            _save_after_error(run, error, under_way)
            raise
        complete = run.step >= tc.steps and run.history.get("step", [None])[-1] == run.step
        if stop.received is None or complete:
            run.save()                   # a finished run always has its last checkpoint
            run.set_status("finished")
            return TrainResult({n: run.params[n].copy() for n in run.names}, run.history, False,
                               run.out_dir, None, "finished", run.step)
        # stopped by a signal: the state is consistent at run.step; save it
        run.write_history()
        run.save()
        run.set_status("interrupted", f"stopped by {stop.received} at step {run.step}")
        run.log(f"interrupted at step {run.step} ({stop.received}): history and checkpoint saved"
                + (f" in {run.out_dir}" if run.out_dir else ""))
        return TrainResult({n: run.params[n].copy() for n in run.names}, run.history, True,
                           run.out_dir, stop.received, "interrupted", run.step)


def _save_after_error(run: TrainingRun, error: BaseException, under_way: bool):
    """After an exception: save the history and, if the state is whole, a checkpoint."""
    if run.out_dir is None:
        return
    if under_way:                        # the step never updated: its batch comes next again
        run.batches.put_back()
    saved, problems = [], []
    def history():
        try:
            run.finish_pending()         # the row of an earlier step (and its checkpoint)
        finally:
            run.write_history()
    for what, action in (("history", history), (f"checkpoint step_{run.step}", run.save)):
        try:
            action()
            saved.append(what)
        except Exception as second:
            problems.append(f"{what} not saved ({type(second).__name__}: {second})")
    cause = f"{type(error).__name__}: {error}".rstrip(": ")
    message = f"stopped by {cause} at step {run.step}; " + ", ".join(
        ([f"saved {' and '.join(saved)}"] if saved else []) + problems)
    try:
        run.set_status("failed", message)
    except Exception:
        pass
    run.log(message)


__all__ = ["train", "evaluate", "evaluate_all", "batch_size_of", "TrainResult", "TrainingDiverged",
           "check_model_fits_task", "fit_model_to_task", "load_checkpoint", "load_params",
           "save_checkpoint", "EVAL_CHUNK"]
