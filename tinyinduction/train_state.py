"""The state of one training run, and the files it keeps up to date.

TrainingRun holds the parameters (views of one flat vector [P]), Adam, the training
batches, the history, and writes history rows and checkpoints; train.py's loop drives
it. A row is evaluated here, or by a BackgroundEvaluator (evaluation.py): then the row
of step s, and the checkpoint of step s if one is due, are written when the numbers come
back, a few steps later.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .checkpoint import checkpoint_state, load_params, write_checkpoint
from .evaluation import BackgroundEvaluationFailed, evaluate_all, loss_weight
from .model import init_params
from .optim import Adam, flatten_params, param_views
from .jsonio import write_json
from .runs import HISTORY_FILE, checkpoint_path, checkpoint_paths, write_run


class TrainingDiverged(RuntimeError):
    """A loss, gradient or parameter became NaN or infinite."""


def _format_eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


SAMPLE_BLOCK = 16   # training batches drawn at once, when the task has sample_many


class TrainingBatches:
    """The run's training batches, drawn SAMPLE_BLOCK at a time by task.sample_many if
    the task has it (speed: ~25 us a step, see FewShotTask.sample_many), else one at a
    time by task.sample. Either way the same batches: sample_many(rng, B, n) must equal
    n calls of sample(rng, B), so blocks need not line up with checkpoints or resumes.

    state(): the sampler state after the batches taken so far, the state a checkpoint
    keeps; inside a block it is found by drawing the block's first batches again from
    the state the block started at."""

    def __init__(self, task, rng: np.random.Generator, batch_size: int):
        self.task, self.rng, self.batch_size = task, rng, batch_size
        self.sample_many = getattr(task, "sample_many", None)
        self.block, self.taken, self.block_start = [], 0, None

    def take(self):
        if self.taken == len(self.block):
            self.block_start = self.rng.bit_generator.state
            self.block = (self.sample_many(self.rng, self.batch_size, SAMPLE_BLOCK)
                          if self.sample_many is not None else [self.task.sample(self.rng, self.batch_size)])
            self.taken = 0
        self.taken += 1
        return self.block[self.taken - 1]

    def put_back(self):
        """The last batch taken was not trained on: it is the next one again."""
        self.taken -= 1

    def state(self) -> dict:
        if self.taken == len(self.block):
            return self.rng.bit_generator.state
        replay = np.random.Generator(type(self.rng.bit_generator)())
        replay.bit_generator.state = self.block_start
        if self.taken:
            self.sample_many(replay, self.batch_size, self.taken)
        return replay.bit_generator.state


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


class TrainingRun:
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
        self.batches = TrainingBatches(task, self.data_rng, tc.batch_size)
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
        self.batches = TrainingBatches(self.task, self.data_rng, self.tc.batch_size)
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
            params_at_row = param_views(pending.flat, self.params)
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
        state = checkpoint_state(self.params, self.optimizer, self.batches.state(), self.accum)
        if self.pending is not None and self.pending.row.step == self.step:
            self.pending = self.pending._replace(checkpoint=state)
            return
        self.finish_pending()                       # its row belongs in this checkpoint
        self.write_checkpoint(self.step, state)

    def write_checkpoint(self, step, state):
        write_checkpoint(checkpoint_path(self.out_dir, step), state, self.history, self.identity, step)
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


__all__ = ["TrainingRun", "TrainingBatches", "TrainingDiverged", "SAMPLE_BLOCK"]
