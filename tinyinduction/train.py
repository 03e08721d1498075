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
and a data fingerprint (.fingerprint, or a .features array; see runs.data_fingerprint).
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
from typing import NamedTuple

import numpy as np

from .checkpoint import (checkpoint_state, load_checkpoint, load_params,  # noqa: F401 (re-exported)
                         save_checkpoint, write_checkpoint)
from .config import ModelConfig, TaskConfig, TrainConfig, require_config
from .evaluation import (EVAL_CHUNK, BackgroundEvaluationFailed,  # noqa: F401 (re-exported)
                         BackgroundEvaluator, background_evaluation_unavailable, batch_size_of,
                         evaluate, evaluate_all, loss_weight)
from .model import init_params, training_loss_and_grads
from .optim import Adam, flatten_grads, flatten_params
from .runs import (CONFIG_FILE, HISTORY_FILE, check_output_dir, checkpoint_path, checkpoint_paths,
                   make_identity, move_aside, plan_start, remove_temporaries, write_json, write_run)
from .tasks.fewshot import FewShotTask

class TrainingDiverged(RuntimeError):
    """A loss, gradient or parameter became NaN or infinite."""


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


def _format_eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# ---------------------------------------------------------------- the loop


class _Row(NamedTuple):
    """A history row before its evaluations: train = (loss, acc) averaged since the last
    row, or None at step 0."""
    step: int
    train: tuple | None
    wall: float


class _Pending(NamedTuple):
    """A row whose evaluation runs in the background, and what waits for it."""
    row: _Row
    flat: np.ndarray                # [P] the parameters it is evaluated on
    checkpoint: dict | None = None  # checkpoint_state of row.step, to write after the row
    log: bool = False               # print the progress line of row.step after the row


def _unflatten(flat, like: dict):
    """Views of flat [P] shaped as the arrays of `like`, in its order."""
    offset = 0
    for value in like.values():
        yield flat[offset:offset + value.size].reshape(value.shape)
        offset += value.size


class _Run:
    """The state of one training run and the files it keeps up to date."""

    def __init__(self, model_config, train_config, task, clamps, out_dir, identity, configs, log):
        self.model_config, self.tc, self.task, self.clamps = model_config, train_config, task, clamps
        self.out_dir, self.identity, self.configs, self.log = out_dir, identity, configs, log
        flat, params = flatten_params(init_params(model_config, train_config.seed))
        self.flat, self.params, self.names = flat, params, list(params)
        self.flat_grads = np.empty_like(flat)     # reused by every step
        tc = train_config
        self.optimizer = Adam(flat.size, tc.lr, tc.beta1, tc.beta2, tc.adam_eps, dtype=flat.dtype)
        self.data_rng = np.random.default_rng([tc.seed, 1])
        self.history, self.accum, self.step = {}, np.zeros(3), 0   # accum: loss, acc, count
        self.saved_step = None          # step of the last checkpoint written in out_dir
        self.eval_sets = None
        self.evaluator = None           # a BackgroundEvaluator, or None: evaluate here
        self.pending = None             # the _Pending row it is computing
        self.start_step, self.started = 0, time.perf_counter()   # for the progress rate

    def load(self, ckpt, step):
        for name in self.names:
            self.params[name][...] = ckpt["params"][name]
        self.optimizer.load_state(ckpt["optimizer"])
        self.data_rng.bit_generator.state = ckpt["data_rng"]
        self.history = {k: list(v) for k, v in ckpt["history"].items()}
        self.accum = np.array(ckpt["accumulator"], dtype=np.float64)
        self.step = step

    def due_for_evaluation(self, step):
        return step % self.tc.eval_every == 0 or step == self.tc.steps

    def record(self, wall, stop):
        """Evaluate at self.step and append one history row (all or nothing). With a
        background evaluator the row is appended later, by finish_pending."""
        self.finish_pending()                       # one evaluation in flight at a time
        train = tuple(self.accum[:2] / self.accum[2]) if self.accum[2] > 0 else None
        row = _Row(self.step, train, wall)
        if self.evaluator is not None:
            snapshot = self.flat.copy()             # [P] training changes self.flat meanwhile
            try:
                self.evaluator.submit(snapshot)
            except BackgroundEvaluationFailed as error:
                self.stop_background(error)
            else:
                self.pending, self.accum[:] = _Pending(row, snapshot), 0
                return
        with stop.interruptible():
            evals = evaluate_all(self.params, self.model_config, self.eval_sets, self.clamps)
        self.append_row(row, evals)
        self.accum[:] = 0

    def append_row(self, row, evals):
        for name, batch in self.eval_sets.items():
            loss = evals[f"eval/{name}/loss"]
            if not np.isfinite(loss) and loss_weight(batch) > 0:
                raise TrainingDiverged(f"the evaluation loss on {name!r} became {loss} at step {row.step}")
        values = {"step": row.step, "sequences": row.step * self.tc.batch_size, **evals}
        if row.train is not None:
            values["train/loss"], values["train/acc"] = row.train
        else:   # step 0: nothing trained yet, report the fixed training set
            values["train/loss"] = evals.get("eval/train/loss", float("nan"))
            values["train/acc"] = evals.get("eval/train/acc", float("nan"))
        values["wall_time"] = row.wall
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        self.write_history()

    def finish_pending(self, wait=True):
        """Append the row a background evaluation was computing (waiting for it unless
        wait=False), then write the checkpoint and progress line that waited for it."""
        pending = self.pending
        if pending is None or not (wait or self.evaluator.ready()):
            return
        self.pending = None
        try:
            evals = self.evaluator.result()
        except BackgroundEvaluationFailed as error:
            self.stop_background(error)
            params_at_row = dict(zip(self.names, _unflatten(pending.flat, self.params)))
            evals = evaluate_all(params_at_row, self.model_config, self.eval_sets, self.clamps)
        self.append_row(pending.row, evals)
        if pending.checkpoint is not None:
            self.write_checkpoint(pending.row.step, pending.checkpoint)
        if pending.log:
            self.progress(pending.row.step)

    def stop_background(self, error):
        self.log(f"evaluating in this process from now on: the evaluation process failed ({error})")
        self.evaluator.close()
        self.evaluator = None

    def write_history(self):
        if self.out_dir is not None:
            write_json(self.out_dir / HISTORY_FILE, self.history)

    def save(self):
        """A checkpoint at self.step (never of non-finite parameters). If the row of this
        step is still being evaluated, the checkpoint is written when it comes in."""
        if self.out_dir is None or self.saved_step == self.step:
            return
        if not np.isfinite(self.flat).all():
            raise TrainingDiverged(f"the parameters are not finite at step {self.step}")
        state = checkpoint_state(self.params, self.optimizer, self.data_rng, self.accum)
        if self.pending is not None and self.pending.row.step == self.step:
            self.pending = self.pending._replace(checkpoint=state)
            return
        self.finish_pending()                       # its row belongs in this checkpoint
        self.write_checkpoint(self.step, state)

    def write_checkpoint(self, step, state):
        write_checkpoint(checkpoint_path(self.out_dir, step), state, self.history,
                         self.configs, self.identity, step)
        self.saved_step = step
        self.set_status("running")

    def set_status(self, status, message=""):
        if self.out_dir is not None:
            write_run(self.out_dir, self.identity, status, self.saved_step, message)

    def last_good_checkpoint(self) -> str:
        if self.out_dir is None:
            return "no checkpoint exists (no run directory)"
        for step, path in checkpoint_paths(self.out_dir):
            try:
                params, _ = load_params(path)
            except ValueError:
                continue
            if all(np.isfinite(value).all() for value in params.values()):
                return f"the last checkpoint with finite parameters is {path}"
        return f"no checkpoint with finite parameters exists in {self.out_dir}"

    def progress(self, step=None):
        """One progress line at `step` (default: now) with the latest history row."""
        tc, last = self.tc, {k: v[-1] for k, v in self.history.items()}
        step = self.step if step is None else step
        rate = (self.step - self.start_step) / max(time.perf_counter() - self.started, 1e-9)
        evals = "  ".join(f"{key[5:-5]} {last[key]:.3f}" for key in last
                          if key.startswith("eval/") and key.endswith("/loss"))
        self.log(f"step {step:>6}/{tc.steps} ({100 * step / tc.steps:3.0f}%)  "
                 f"train loss {last['train/loss']:.3f} acc {last['train/acc']:.2f}  |  eval loss "
                 f"{evals}  |  {rate:,.0f} steps/s, ETA {_format_eta((tc.steps - self.step) / max(rate, 1e-9))}")


def train(model_config: ModelConfig, task_config, train_config: TrainConfig, out_dir=None,
          resume=None, clamps=(), task=None, log=print, overwrite=False,
          evaluate_in_background=False) -> TrainResult:
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
    out_dir = check_output_dir(out_dir, "out_dir") if out_dir is not None else None
    if resume == "auto" and out_dir is None:
        raise ValueError("resume = 'auto' needs an out_dir to look for the run in")
    tc = train_config
    if out_dir is not None or resume is not None:
        identity = make_identity(model_config, task_config, tc, task, clamps)
    else:
        identity = None
    plan = plan_start(out_dir, identity, resume, overwrite, model_config, tc, log)
    run = _Run(model_config, tc, task, clamps, out_dir, identity,
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
    if evaluate_in_background:
        run.evaluator = _start_background_evaluation(run, clamps, log)
    try:
        return _loop(run)
    finally:
        if run.evaluator is not None:
            run.evaluator.close()


def _start_background_evaluation(run: _Run, clamps, log):
    """A BackgroundEvaluator for the run, or None (and a line saying why)."""
    reason = background_evaluation_unavailable()
    if reason is None:
        try:
            return BackgroundEvaluator(run.model_config, run.eval_sets, clamps, run.params)
        except Exception as error:      # e.g. no processes left: evaluating here still works
            reason = f"{type(error).__name__}: {error}"
    log(f"evaluating in this process ({reason})")
    return None


def _loop(run: _Run) -> TrainResult:
    tc = run.tc
    run.start_step, run.started = run.step, time.perf_counter()
    started = run.started
    wall_before = run.history["wall_time"][-1] if run.history.get("wall_time") else 0.0
    rng_before = None      # the sampler's state while a step is under way (None between steps)
    with _StopSignals() as stop:
        try:
            if not run.history.get("step") or (run.history["step"][-1] < run.step
                                               and run.due_for_evaluation(run.step)):
                run.record(wall_before, stop)          # step 0, or an evaluation cut short
            while run.step < tc.steps and stop.received is None:
                rng_before = run.data_rng.bit_generator.state
                batch = run.task.sample(run.data_rng, tc.batch_size)
                loss, acc, grads = training_loss_and_grads(run.params, run.model_config, batch, run.clamps)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"the training loss became non-finite (loss {loss}) at "
                                           f"step {run.step + 1}; the update was not applied")
                flat_grads = flatten_grads(grads, run.names, out=run.flat_grads)
                run.optimizer.step(run.flat, flat_grads, overwrite_grads=True)   # not read again
                run.step += 1
                rng_before = None
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
            if rng_before is not None:
                run.data_rng.bit_generator.state = rng_before
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
            _save_after_error(run, error, rng_before)
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


def _save_after_error(run: _Run, error: BaseException, rng_before):
    """After an exception: save the history and, if the state is whole, a checkpoint."""
    if run.out_dir is None:
        return
    if rng_before is not None:           # the step never updated: undo its batch draw
        run.data_rng.bit_generator.state = rng_before
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
