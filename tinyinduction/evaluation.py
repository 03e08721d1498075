"""Evaluation: loss and accuracy on fixed sets, here or in a second process.

evaluate / evaluate_all measure the model in this process. BackgroundEvaluator does the
same in a child process, so that on a machine with a second core free the evaluations
overlap training: train() sends it a copy of the flat parameter vector [P] at step s,
trains on, and writes the history row of step s a few steps later, when the numbers are
back. They are the numbers evaluate_all gives here (the same code on the same arrays;
tested). Speed: at the paper's size an evaluation (4 sets x 1,000 sequences) takes
~40 ms, 6% of the demo's wall time, which this takes off the training core.

The child is forked, so it shares the evaluation sets and the clamps without copying or
pickling them. It ignores Ctrl-C (the parent decides when to stop), and leaves when the
parent closes the pipe or dies. Whatever goes wrong with it costs only speed: the
caller evaluates the same snapshot in-process instead (train() does).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

import numpy as np

from .clamp import clamps_for_rows
from .model import TokenBatch, loss_and_accuracy
from .optim import flatten_params

EVAL_CHUNK = 1000   # sequences per forward pass during evaluation
RESULT_TIMEOUT_S = 120.0   # longest wait for one evaluation in the child; then it is evaluated here
ORPHAN_POLL_S = 1.0        # how often the idle child checks that its parent still lives


def batch_size_of(batch) -> int:
    """B, the number of sequences of a few-shot batch or a TokenBatch."""
    if isinstance(batch, TokenBatch) or hasattr(batch, "tokens"):
        return int(np.shape(batch.tokens)[0])
    if hasattr(batch, "exemplars"):
        return int(np.shape(batch.exemplars)[0])
    raise TypeError(f"batch of type {type(batch).__name__}: expected a few-shot batch "
                    "(.exemplars, .labels, .target) or a TokenBatch(tokens, targets)")


def loss_weight(batch) -> int:
    """How many loss terms a batch has: one per sequence (few-shot) or per target >= 0."""
    if isinstance(batch, TokenBatch) or hasattr(batch, "targets"):
        return int((np.asarray(batch.targets) >= 0).sum())
    return batch_size_of(batch)


def evaluate(params, model_config, batch, clamps=()) -> tuple[float, float]:
    """(loss, accuracy) of params on a whole evaluation batch, in chunks of EVAL_CHUNK
    sequences, averaged over loss terms; (nan, nan) for a batch without any."""
    n = batch_size_of(batch)
    losses, accs, weights = [], [], []
    for start in range(0, n, EVAL_CHUNK):
        chunk = type(batch)(*[np.asarray(field)[start:start + EVAL_CHUNK] for field in batch])
        weight = loss_weight(chunk)
        if weight == 0:
            continue
        # per-sequence clamp values (a graft from the whole set) are cut to the chunk
        chunk_clamps = clamps if n <= EVAL_CHUNK else clamps_for_rows(
            clamps, start, min(start + EVAL_CHUNK, n), n)
        # without clamps a lean pass: no cache kept, the last block only where the loss reads
        loss, acc = loss_and_accuracy(params, model_config, chunk, chunk_clamps)
        losses.append(loss), accs.append(acc), weights.append(weight)
    if not weights:
        return float("nan"), float("nan")
    return float(np.average(losses, weights=weights)), float(np.average(accs, weights=weights))


def evaluate_all(params, model_config, eval_sets: dict, clamps=()) -> dict:
    """{"eval/<set>/loss": ..., "eval/<set>/acc": ...} for every evaluation set."""
    out = {}
    for name, batch in eval_sets.items():
        out[f"eval/{name}/loss"], out[f"eval/{name}/acc"] = evaluate(params, model_config, batch, clamps)
    return out


# ---------------------------------------------------------------- in a second process


class BackgroundEvaluationFailed(RuntimeError):
    """The child could not evaluate (it died, raised, or never answered)."""


def background_evaluation_unavailable() -> str | None:
    """Why evaluations cannot overlap training here (None if they can): the child needs
    a second CPU, the fork start method (Linux and other POSIX systems but macOS), and
    no other threads in this process (forking a threaded process can leave a lock held
    in the child)."""
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:            # not Linux
        n_cpus = os.cpu_count() or 1
    if n_cpus < 2:
        return "one CPU"
    if "fork" not in multiprocessing.get_all_start_methods():
        return "no fork start method on this system"
    if sys.platform == "darwin":    # Apple's system libraries (Accelerate's BLAS) may hang after fork
        return "forking is not safe on macOS"
    if threading.active_count() > 1:
        return "other threads are running in this process"
    if multiprocessing.current_process().daemon:
        return "this is a daemonic process, which may not start children"
    return None


class BackgroundEvaluator:
    """evaluate_all(params, model_config, eval_sets, clamps) in a forked child process.

        evaluator = BackgroundEvaluator(model_config, eval_sets, clamps, params)
        evaluator.submit(flat_snapshot)     # [P], the layout of flatten_params(params)
        ...                                  # train on
        evals = evaluator.result()           # or poll evaluator.ready() first
        evaluator.close()

    One evaluation is in flight at a time. Any failure raises BackgroundEvaluationFailed
    and leaves the evaluator closed.
    """

    def __init__(self, model_config, eval_sets: dict, clamps, params: dict):
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe(duplex=True)
        self._n_bytes = sum(np.asarray(value).nbytes for value in params.values())
        self._process = context.Process(
            target=_serve, args=(child_end, self._conn, model_config, eval_sets, clamps, params),
            name="tinyinduction-evaluation", daemon=True)
        self._process.start()
        child_end.close()
        self.busy = False

    def submit(self, flat: np.ndarray):
        """Start evaluating the parameters in flat [P] (a copy the caller will not change)."""
        if self.busy:
            raise RuntimeError("an evaluation is already in flight; take its result() first")
        if flat.nbytes != self._n_bytes:
            raise ValueError(f"flat has {flat.nbytes} bytes; the parameters have {self._n_bytes}")
        try:
            self._conn.send_bytes(np.ascontiguousarray(flat))
        except (OSError, ValueError) as error:
            self.close()
            raise BackgroundEvaluationFailed(f"could not send the parameters ({error})") from None
        self.busy = True

    def ready(self) -> bool:
        """True when result() would not wait (the answer, or an end of the pipe, is there)."""
        try:
            return self.busy and self._conn.poll()
        except (OSError, ValueError):
            return True                 # result() will report it

    def result(self, timeout: float = RESULT_TIMEOUT_S) -> dict:
        """The evals dict of the evaluation in flight (waits for it)."""
        if not self.busy:
            raise RuntimeError("no evaluation in flight")
        self.busy = False
        try:
            if not self._conn.poll(timeout):
                raise BackgroundEvaluationFailed(f"no answer within {timeout:.0f} s")
            status, payload = self._conn.recv()
        except (EOFError, OSError, ValueError) as error:
            code = self._process.exitcode
            self.close()
            raise BackgroundEvaluationFailed(
                f"the evaluation process ended (exit code {code}; {type(error).__name__})") from None
        except BackgroundEvaluationFailed:
            self.close()
            raise
        if status != "ok":
            self.close()
            raise BackgroundEvaluationFailed(payload)
        return payload

    def close(self):
        """Stop the child (closing the pipe ends its loop) and wait for it briefly."""
        self.busy = False
        self._conn.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)


def _serve(conn, parent_end, model_config, eval_sets, clamps, params):
    """The child's loop: receive a flat parameter vector, answer ("ok", evals) or
    ("error", message); leave when the pipe closes or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to act on
    signal.signal(signal.SIGTERM, signal.SIG_DFL)    # the parent's handler came with the fork
    parent_end.close()                               # else the pipe never reads as closed
    parent = os.getppid()
    flat, views = flatten_params(params)             # our own buffer [P], same layout
    while True:
        try:
            while not conn.poll(ORPHAN_POLL_S):
                if os.getppid() != parent:
                    return
            conn.recv_bytes_into(flat)
        except (EOFError, OSError):
            return
        try:
            answer = ("ok", evaluate_all(views, model_config, eval_sets, clamps))
        except Exception as error:                  # reported; the parent evaluates itself
            answer = ("error", f"{type(error).__name__}: {error}")
        try:
            conn.send(answer)
        except (OSError, ValueError):
            return
