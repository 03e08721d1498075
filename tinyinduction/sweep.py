"""The sweep runner: a grid of independent training runs, on local processes or a cluster.

    specs = [RunSpec("seed=5", model, task, train_config), RunSpec("seed=6", ...)]
    results = run_grid(specs, out="runs/my_grid", jobs=2)         # {name: RunSummary}

Every grid of training runs in the package goes through here (the `reproduce`
experiments, `python -m tinyinduction sweep`); nothing else starts processes.

- One run directory per point, `out/<dir>`: the run's name when it is a safe directory
  name, else a safe name derived from it (run_dir_name); the exact settings are in the
  run's run.json and in grid.json. A run is trained with train(..., resume="auto"): a
  finished run is skipped (its history is read back), an interrupted one resumes from
  its last checkpoint to the same history it would have had, a directory that holds a
  different run is refused.
- Everything is checked before anything is written: names, --jobs, --out, every run's
  clamps against its model and its model against its task, the scheduler. Then
  `out/grid.json` records the grid (its name and every run's settings): an `out` that
  holds another grid is refused, naming the run and the field that differ.
- `out/summary.json` and `out/summary.csv`, written once every run has finished: every
  run's learning time (first evaluation with train loss < 0.4 ln 2), final losses and
  accuracies, status, wall time. One progress line per finished run with the ETA.
- Stopping (one rule, local or on Dask): the first Ctrl-C or SIGTERM asks every running
  run to stop between two steps and save (through `out/.stop`, which runs poll, so it
  reaches workers on other machines), no queued run starts, no summary is written, and
  run_grid raises GridStopped once every run has saved: the same call continues. A run
  that stops by itself (its worker got the signal) stops the grid the same way, and so
  does a run that fails (the others save, then the error is raised).
- Where runs go: jobs=1 runs them one after another in this process; jobs=N > 1 in N
  worker processes (one BLAS thread each: tinyinduction sets that default on import);
  `executor=` takes any concurrent.futures.Executor, and `scheduler="tcp://host:8786"`
  submits to a Dask distributed cluster (`pip install ".[cluster]"`), every worker
  writing to the same shared `out`. A worker that dies loses only its run's progress
  since its last checkpoint: run the same command again and the run resumes.
"""
from __future__ import annotations

import concurrent.futures as futures
import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from .config import ModelConfig, TrainConfig
from .jsonio import write_atomic
from .runs import check_output_dir, describe_differences, identity_differences
from .tasks.fewshot import TaskConfig

SCHEDULER_TIMEOUT_S = 10
STOP_FILE = ".stop"           # in a grid's out: "SIGINT"/"SIGTERM"/...; runs poll it between steps
STOP_POLL_SECONDS = 0.2       # how often a run looks at the stop file
SAFE_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=+,-")
MAX_NAME_LENGTH = 100         # run directory names (a file system allows 255 bytes)
NOT_STARTED = "not started"
_ORPHANED = threading.Event()   # set in a worker whose parent process died


class GridStopped(BaseException):
    """A grid stopped by Ctrl-C or SIGTERM (or by a run that was): every run that had
    started has saved; nothing was summarised. A BaseException like KeyboardInterrupt, so
    that no `except Exception` on the way up turns a stop into results.

    signal: "SIGINT" or "SIGTERM" (what the command line's exit code, 130 or 143, follows)."""

    def __init__(self, signal_name: str, message: str):
        super().__init__(message)
        self.signal = signal_name


def run_dir_name(name: str) -> str:
    """The directory of run `name` under its grid: the name itself if it is a safe
    directory name (letters, digits and . _ = + , -, not starting with a dot, at most
    MAX_NAME_LENGTH characters), else its safe characters (others as _) and 8 hex digits
    of its SHA-256, so that no two names share a directory ("features=a/b.npy" ->
    "features=a_b.npy-1c9e5b0f")."""
    if set(name) <= SAFE_NAME_CHARACTERS and len(name) <= MAX_NAME_LENGTH \
            and not name.startswith("."):
        return name
    cleaned = "".join(c if c in SAFE_NAME_CHARACTERS else "_" for c in name)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned.lstrip('.')[:MAX_NAME_LENGTH - 9]}-{digest}"


@dataclass(frozen=True)
class RunSpec:
    """One training run of a grid.

    name:   any non-empty text naming the run (its directory: run_dir_name(name)).
    task:   a TaskConfig (few-shot) or any task config with a make_task() method.
    clamps: clamp specs (see subcircuits.py), e.g. ({"kind": "A"},); JSON-able.
    """

    name: str
    model: ModelConfig
    task: Any
    train: TrainConfig
    clamps: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"RunSpec name = {self.name!r}: must be a non-empty string")
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"RunSpec {self.name}: model must be a ModelConfig, not {type(self.model).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"RunSpec {self.name}: train must be a TrainConfig, not {type(self.train).__name__}")
        if isinstance(self.clamps, (str, dict)):
            raise TypeError(f"RunSpec {self.name}: clamps must be a list of clamp specs, not a "
                            f"{type(self.clamps).__name__}")
        object.__setattr__(self, "clamps", tuple(self.clamps))

    @property
    def dir_name(self) -> str:
        return run_dir_name(self.name)

    def settings(self) -> dict:
        """Everything that defines the run, as JSON (what grid.json records)."""
        task = dataclasses.asdict(self.task) if dataclasses.is_dataclass(self.task) else repr(self.task)
        return json.loads(json.dumps({"model": self.model.to_dict(), "task": task,
                                      "task_type": type(self.task).__name__,
                                      "train": self.train.to_dict(), "clamps": list(self.clamps)}))


@dataclass
class RunSummary:
    """What a finished (or stopped) run left: enough for tables without reading files."""

    name: str
    out_dir: str
    status: str                     # "finished", "interrupted" or "not started"
    steps: int                      # last step trained
    learning_time: int | None       # few-shot: first evaluation with train loss < 0.4 ln 2
                                    # (None: never, or not a few-shot run)
    final: dict = field(default_factory=dict)   # last value of every eval/ and train/ entry
    wall_seconds: float = 0.0
    message: str = ""
    stopped_by: str | None = None   # interrupted: "SIGINT", "SIGTERM", or why the grid stopped

    def history(self) -> dict:
        """The run's history.json."""
        return json.loads((Path(self.out_dir) / "history.json").read_text())


def make_task(task_config):
    """The task object of a task config (few-shot, or a config with make_task()); one per
    (hashable) config in a process: a feature table or a corpus takes a while to build."""
    if isinstance(task_config, Hashable):
        return _cached_task(task_config)
    return _build_task(task_config)


@functools.lru_cache(maxsize=8)
def _cached_task(task_config):
    return _build_task(task_config)


def _build_task(task_config):
    if isinstance(task_config, TaskConfig):
        from .tasks.fewshot import FewShotTask
        return FewShotTask(task_config)
    if hasattr(task_config, "make_task"):
        return task_config.make_task()
    raise TypeError(f"task config {task_config!r}: a TaskConfig or a config with make_task()")


def check_spec(spec: RunSpec):
    """Refuse a run that cannot start, before anything is written: its clamps against its
    model, its model against its task."""
    from .subcircuits import build_clamps
    from .train import check_model_fits_task
    try:
        if spec.clamps:
            build_clamps(spec.clamps, spec.model)
        check_model_fits_task(spec.model, make_task(spec.task))
    except (ValueError, TypeError) as error:
        raise type(error)(f"run {spec.name}: {error}") from None


class StopFile:
    """stop_when for train(): the reason written in a grid's stop file (or "SIGTERM" when
    this worker's parent died), read at most every STOP_POLL_SECONDS; None while absent.
    Picklable, so it travels to worker processes and Dask workers."""

    def __init__(self, path):
        self.path = str(path)
        self.reason = None
        self._next_look = 0.0

    def __call__(self) -> str | None:
        if self.reason is None and _ORPHANED.is_set():
            self.reason = "SIGTERM"
        now = time.monotonic()
        if self.reason is None and now >= self._next_look:
            self._next_look = now + STOP_POLL_SECONDS
            try:
                with open(self.path) as handle:
                    self.reason = handle.read().strip() or "SIGTERM"
            except OSError:             # absent (the usual case) or unreadable: go on
                pass
        return self.reason


def train_one(spec: RunSpec, out_dir: str, stop_when=None, log_every: bool = False) -> RunSummary:
    """Train (or resume, or read back) one run in this process; the unit of work of a grid.
    stop_when: a callable polled between steps (StopFile); a run asked to stop before it
    starts returns at once with status "not started" and writes nothing."""
    from .measures import learning_time
    from .subcircuits import build_clamps
    from .train import train

    started = time.perf_counter()
    reason = stop_when() if stop_when is not None else None
    if reason is not None:
        return RunSummary(spec.name, str(out_dir), NOT_STARTED, 0, None, stopped_by=reason)
    task = make_task(spec.task)
    clamps = build_clamps(spec.clamps, spec.model) if spec.clamps else ()
    train_config = spec.train if log_every else spec.train.replace(log_every=0)
    result = train(spec.model, spec.task, train_config, out_dir=out_dir, resume="auto",
                   clamps=clamps, task=task, log=print if log_every else (lambda *a: None),
                   stop_when=stop_when)
    if _ORPHANED.is_set():   # nobody is waiting for the result: the run is saved, go
        os._exit(1)
    history = result.history
    final = {k: v[-1] for k, v in history.items() if k.startswith(("eval/", "train/")) and v}
    # Singh et al.'s learning time (loss < 0.4 ln 2) means something only for the few-shot task
    few_shot = isinstance(spec.task, TaskConfig) and "eval/train/loss" in history
    return RunSummary(spec.name, str(out_dir), "interrupted" if result.interrupted else "finished",
                      int(history["step"][-1]), learning_time(history) if few_shot else None, final,
                      time.perf_counter() - started, stopped_by=result.stopped_by)


def grid_record(out: Path, grid_name: str, specs) -> dict:
    """What out/grid.json will hold for this grid; refuses an out that holds another grid
    (or a run of this one with other settings: the bookkeeping fields steps,
    checkpoint_every and log_every may change, as for a run, so a grid can be continued
    to more steps). Reads only."""
    path = out / "grid.json"
    record = {"grid": grid_name, "runs": {spec.name: spec.settings() for spec in specs}}
    if not path.exists():
        return record
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--out {out}: grid.json is unreadable ({error}); choose another --out") from None
    if not isinstance(old, dict) or not isinstance(old.get("runs"), dict):
        raise ValueError(f"--out {out}: grid.json is not a grid record; choose another --out")
    if old.get("grid") != grid_name:
        raise ValueError(f"--out {out} holds the grid {old.get('grid')!r}, not {grid_name!r}; "
                         "choose another --out")
    for name, settings in record["runs"].items():
        differences = identity_differences(old["runs"][name], settings) if name in old["runs"] else []
        if differences:
            raise ValueError(f"--out {out}: run {name} there has other settings ("
                             f"{describe_differences(differences)}); choose another --out")
    return {"grid": grid_name, "runs": {**old["runs"], **record["runs"]}}


def _write_text(path: Path, text: str):
    data = text.encode()
    write_atomic(path, lambda handle: handle.write(data))


def write_summary(out: Path, summaries: dict) -> None:
    """out/summary.json and out/summary.csv, one row per run."""
    rows = [dataclasses.asdict(s) for s in summaries.values()]
    _write_text(out / "summary.json", json.dumps(rows, indent=1, allow_nan=False,
                                                 default=lambda v: None))
    final_keys = sorted({k for row in rows for k in row["final"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "status", "steps", "learning_time", "wall_seconds"] + final_keys)
    for row in rows:
        writer.writerow([row["name"], row["status"], row["steps"], row["learning_time"],
                         f"{row['wall_seconds']:.1f}"] + [row["final"].get(k) for k in final_keys])
    _write_text(out / "summary.csv", buffer.getvalue())


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def _worker_start():
    """Initializer of local worker processes: one BLAS thread (a forked worker inherits
    its parent's BLAS, which may run several); a terminal's Ctrl-C reaches a training run
    (train() takes it between two steps) but not an idle worker, whose parent decides;
    SIGTERM as usual (the pool's own shutdown uses it); stop when orphaned."""
    from .blas import limit_blas_threads
    limit_blas_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # not the handler a forked parent had
    _stop_when_orphaned()


def _stop_when_orphaned(poll_seconds: float = 1.0, grace_seconds: float = 60.0):
    """Worker initializer: if the parent process dies (killed, or a timeout), ask this
    worker to stop like on SIGTERM (a training run saves its checkpoint between two
    steps), and exit after a grace period, so no orphaned worker trains on forever."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        _ORPHANED.set()                        # train_one exits once its run has saved
        os.kill(os.getpid(), signal.SIGTERM)   # idle worker: dies; training: stops and saves
        time.sleep(grace_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def connect_scheduler(address: str):
    """A concurrent.futures Executor on a Dask distributed cluster, or a one-line error."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"--scheduler {address!r}: give the scheduler's address, e.g. tcp://host:8786")
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError(f"--scheduler {address}: Dask is not installed; "
                         "pip install \".[cluster]\" (or run without --scheduler)") from None
    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ValueError(f"--scheduler {address}: no Dask scheduler answered within "
                         f"{SCHEDULER_TIMEOUT_S} s ({type(error).__name__}: {error})") from None
    return client.get_executor(pure=False)   # never a result cached from an earlier call


class _StopSignals:
    """In run_grid's (main) thread: the first Ctrl-C or SIGTERM is noted, not raised, so
    that the grid can stop its runs in order, and on_first(signal name) is called at once
    (it writes the stop file, before a worker that took the signal itself can pick up a
    queued run); later signals are ignored (a worker still gets a terminal's second
    Ctrl-C itself). Elsewhere than the main thread: nothing."""

    def __init__(self, on_first=None):
        self.received = None
        self._on_first = on_first
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signal.Signals(signum).name
            if self._on_first is not None:
                self._on_first(self.received)

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _ask_to_stop(stop_path: Path, reason: str):
    """Write the stop file in one system call (safe inside a signal handler)."""
    try:
        handle = os.open(stop_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(handle, reason.encode())
        finally:
            os.close(handle)
    except OSError:                    # nothing better to do: the runs go on to their end
        pass


def _describe_stop(reason: str, summaries: dict, names: list) -> str:
    counts = {}
    for name in names:
        status = summaries[name].status if name in summaries else NOT_STARTED
        counts[status] = counts.get(status, 0) + 1
    done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    what = {"SIGINT": "interrupted (Ctrl-C)", "SIGTERM": "stopped by SIGTERM"}.get(reason, f"stopped ({reason})")
    return (f"{what}: the runs saved where they stopped ({done}); no summary or results "
            "written; run the same command again to continue")


def run_grid(specs, out, jobs: int = 1, scheduler: str | None = None, executor=None,
             grid_name: str = "sweep", log=print) -> dict:
    """Run every spec (see the module docstring); returns {name: RunSummary} in spec order,
    every run finished. Raises GridStopped if it was stopped (a signal, or a run that was)."""
    specs = list(specs)
    if not specs:
        raise ValueError("the grid has no runs")
    if not all(isinstance(spec, RunSpec) for spec in specs):
        raise TypeError("run_grid: specs must be RunSpec objects")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"the grid has runs with the same name: {sorted({n for n in names if names.count(n) > 1})}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs = {jobs!r}: must be an integer >= 1")
    out = check_output_dir(out, "--out")
    for spec in specs:
        check_spec(spec)
    record = grid_record(out, grid_name, specs)
    own_executor = None
    if executor is None and scheduler is not None:
        executor = connect_scheduler(scheduler)
    # everything is checked: now write
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "grid.json", json.dumps(record, indent=1))
    stop_path = out / STOP_FILE
    stop_path.unlink(missing_ok=True)            # left by a grid whose process was killed
    if executor is None and jobs > 1 and len(specs) > 1:
        executor = own_executor = futures.ProcessPoolExecutor(max_workers=min(jobs, len(specs)),
                                                              initializer=_worker_start)
    summaries, started = {}, time.perf_counter()
    by_name = {spec.name: spec for spec in specs}

    def finished(summary: RunSummary):
        summaries[summary.name] = summary
        if summary.status != "finished":
            return
        done = sum(s.status == "finished" for s in summaries.values())
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (len(specs) - done)
        timing = ""
        if isinstance(by_name[summary.name].task, TaskConfig):   # few-shot: Singh et al.'s
            timing = ", learning time " + ("never" if summary.learning_time is None
                                           else f"{summary.learning_time:,}")
        loss = summary.final.get("eval/train/loss")
        log(f"[{done}/{len(specs)}] {summary.name}: {summary.status} at step {summary.steps:,}"
            + timing + ("" if loss is None or not math.isfinite(loss) else f", final train loss {loss:.3f}")
            + f" ({_format_seconds(summary.wall_seconds)}; grid ETA {_format_seconds(eta)})")

    stop_reason, error, failed = None, None, None
    ask = None if executor is None else (lambda reason: _ask_to_stop(stop_path, reason))
    with _StopSignals(on_first=ask) as signals:
        def reason_to_stop():          # a signal here, or a run that stopped (or failed)
            return signals.received or stop_reason

        try:
            if executor is None:
                for spec in specs:
                    summary = train_one(spec, str(out / spec.dir_name), stop_when=reason_to_stop)
                    finished(summary)
                    if summary.status != "finished":
                        stop_reason = stop_reason or summary.stopped_by or "SIGINT"
                    if reason_to_stop():
                        break
            else:
                pending = {executor.submit(train_one, spec, str(out / spec.dir_name),
                                           StopFile(stop_path)): spec for spec in specs}
                asked = False
                while pending:
                    done, _ = futures.wait(pending, timeout=STOP_POLL_SECONDS,
                                           return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        spec = pending.pop(future)
                        try:
                            summary = future.result()
                        except futures.process.BrokenProcessPool:
                            error = error or ChildProcessError(
                                f"a worker process died while running {spec.name}; run the same "
                                "command again to resume the unfinished runs")
                            failed = failed or spec.name
                            continue
                        except BaseException as raised:     # the run failed: the others save
                            error, failed = error or raised, failed or spec.name
                            continue
                        finished(summary)
                        if summary.status != "finished":
                            stop_reason = stop_reason or summary.stopped_by or "SIGINT"
                    reason = reason_to_stop() or (failed and f"the failure of run {failed}")
                    if reason and not asked:     # running runs stop and save; queued ones skip
                        _ask_to_stop(stop_path, reason)
                        asked = True
        except BaseException:          # a bug or a full disk here: still stop the runs first
            if executor is not None:
                _ask_to_stop(stop_path, "an error in the grid's process")
            raise
        finally:
            if own_executor is not None:
                own_executor.shutdown(wait=True, cancel_futures=True)
            stop_path.unlink(missing_ok=True)
    if error is not None:
        raise error
    reason = reason_to_stop()
    if reason is not None:
        if reason not in ("SIGINT", "SIGTERM"):
            reason = "SIGINT"
        raise GridStopped(reason, _describe_stop(reason, summaries, names))
    write_summary(out, {n: summaries[n] for n in names})
    return {name: summaries[name] for name in names}
