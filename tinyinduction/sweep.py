"""The sweep runner: a grid of independent training runs, on local processes or a cluster.

    specs = [RunSpec("seed=5", model, task, train_config), RunSpec("seed=6", ...)]
    results = run_grid(specs, out="runs/my_grid", jobs=2)         # {name: RunSummary}

Every grid of training runs in the package goes through here (the `reproduce`
experiments, `python -m tinyinduction sweep`); nothing else starts processes.

- One run directory per point, `out/<name>`, named from its settings. A run is trained
  with train(..., resume="auto"): a finished run is skipped (its history is read back),
  an interrupted one resumes from its last checkpoint to the same history it would have
  had, a directory that holds a different run is refused.
- `out/grid.json` records the grid (its name and every run's settings): an `out` that
  holds another grid is refused, naming the run and the field that differ.
- `out/summary.json` and `out/summary.csv`: every run's learning time (first
  evaluation with train loss < 0.4 ln 2), final losses and accuracies, status, wall time;
  rewritten after each finished run. One progress line per finished run with the ETA.
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
import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ModelConfig, TrainConfig
from .tasks.fewshot import TaskConfig
from .jsonio import write_atomic

SCHEDULER_TIMEOUT_S = 10
_ORPHANED = threading.Event()   # set in a worker whose parent process died


@dataclass(frozen=True)
class RunSpec:
    """One training run of a grid.

    name:   its directory name under the grid's out (letters, digits, and . _ = + , -).
    task:   a TaskConfig (few-shot) or any task config with a make_task() method.
    clamps: clamp specs (see subcircuits.py), e.g. ({"kind": "A"},); JSON-able.
    """

    name: str
    model: ModelConfig
    task: Any
    train: TrainConfig
    clamps: tuple = ()

    def __post_init__(self):
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=+,-")
        if not isinstance(self.name, str) or not self.name or set(self.name) - allowed \
                or self.name in (".", ".."):
            raise ValueError(f"RunSpec name = {self.name!r}: must be a non-empty directory name "
                             "of letters, digits and . _ = + , -")
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"RunSpec {self.name}: model must be a ModelConfig, not {type(self.model).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"RunSpec {self.name}: train must be a TrainConfig, not {type(self.train).__name__}")
        object.__setattr__(self, "clamps", tuple(self.clamps))

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
    status: str                     # "finished", "interrupted", "failed"
    steps: int                      # last step trained
    learning_time: int | None       # few-shot: first evaluation with train loss < 0.4 ln 2
                                    # (None: never, or not a few-shot run)
    final: dict = field(default_factory=dict)   # last value of every eval/ and train/ entry
    wall_seconds: float = 0.0
    message: str = ""

    def history(self) -> dict:
        """The run's history.json."""
        return json.loads((Path(self.out_dir) / "history.json").read_text())


def make_task(task_config):
    """The task object of a task config (few-shot, or a config with make_task())."""
    if isinstance(task_config, TaskConfig):
        from .tasks.fewshot import FewShotTask
        return FewShotTask(task_config)
    if hasattr(task_config, "make_task"):
        return task_config.make_task()
    raise TypeError(f"task config {task_config!r}: a TaskConfig or a config with make_task()")


def train_one(spec: RunSpec, out_dir: str, log_every: bool = False) -> RunSummary:
    """Train (or resume, or read back) one run in this process; the unit of work of a grid."""
    from .measures import learning_time
    from .subcircuits import build_clamps
    from .train import train

    started = time.perf_counter()
    task = make_task(spec.task)
    clamps = build_clamps(spec.clamps, spec.model) if spec.clamps else ()
    train_config = spec.train if log_every else spec.train.replace(log_every=0)
    result = train(spec.model, spec.task, train_config, out_dir=out_dir, resume="auto",
                   clamps=clamps, task=task, log=print if log_every else (lambda *a: None))
    if _ORPHANED.is_set():   # nobody is waiting for the result: the run is saved, go
        os._exit(1)
    history = result.history
    final = {k: v[-1] for k, v in history.items() if k.startswith(("eval/", "train/")) and v}
    # Singh et al.'s learning time (loss < 0.4 ln 2) means something only for the few-shot task
    few_shot = isinstance(spec.task, TaskConfig) and "eval/train/loss" in history
    return RunSummary(spec.name, str(out_dir), "interrupted" if result.interrupted else "finished",
                      int(history["step"][-1]), learning_time(history) if few_shot else None, final,
                      time.perf_counter() - started)


def _describe_difference(old: dict, new: dict, prefix="") -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                return _describe_difference(old[key], new[key], f"{prefix}{key}.")
            return f"{prefix}{key}: {old.get(key)!r} there, {new.get(key)!r} here"
    return ""


def claim_grid(out: Path, grid_name: str, specs) -> None:
    """Record the grid in out/grid.json, or refuse an out that holds another grid."""
    path = out / "grid.json"
    record = {"grid": grid_name, "runs": {spec.name: spec.settings() for spec in specs}}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"--out {out}: grid.json is unreadable ({error}); choose another --out") from None
        if old.get("grid") != grid_name:
            raise ValueError(f"--out {out} holds the grid {old.get('grid')!r}, not {grid_name!r}; "
                             "choose another --out")
        for name, settings in record["runs"].items():
            if name in old.get("runs", {}) and old["runs"][name] != settings:
                raise ValueError(f"--out {out}: run {name} there has other settings ("
                                 f"{_describe_difference(old['runs'][name], settings)}); choose "
                                 "another --out")
        record["runs"] = {**old.get("runs", {}), **record["runs"]}
    out.mkdir(parents=True, exist_ok=True)
    _write_text(path, json.dumps(record, indent=1))


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
    its parent's BLAS, which may run several), and stop when orphaned."""
    from .blas import limit_blas_threads
    limit_blas_threads(1)
    _stop_when_orphaned()


def _stop_when_orphaned(poll_seconds: float = 1.0, grace_seconds: float = 60.0):
    """Worker initializer: if the parent process dies (killed, or a timeout), ask this
    worker to stop like on SIGTERM (a training run saves its checkpoint between two
    steps), and exit after a grace period, so no orphaned worker trains on forever."""
    import signal

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
    return client.get_executor()


def run_grid(specs, out, jobs: int = 1, scheduler: str | None = None, executor=None,
             grid_name: str = "sweep", log=print) -> dict:
    """Run every spec (see the module docstring); returns {name: RunSummary} in spec order."""
    specs = list(specs)
    if not specs:
        raise ValueError("the grid has no runs")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"the grid has runs with the same name: {sorted({n for n in names if names.count(n) > 1})}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs = {jobs!r}: must be an integer >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    claim_grid(out, grid_name, specs)
    own_executor = None
    if executor is None and scheduler is not None:
        executor = connect_scheduler(scheduler)
    elif executor is None and jobs > 1:
        executor = own_executor = futures.ProcessPoolExecutor(max_workers=min(jobs, len(specs)),
                                                              initializer=_worker_start)
    summaries, started = {}, time.perf_counter()
    by_name = {spec.name: spec for spec in specs}

    def finished(summary: RunSummary):
        summaries[summary.name] = summary
        write_summary(out, {n: summaries[n] for n in names if n in summaries})
        done = len(summaries)
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

    try:
        if executor is None:
            for spec in specs:
                finished(train_one(spec, str(out / spec.name)))
        else:
            pending = {executor.submit(train_one, spec, str(out / spec.name)): spec for spec in specs}
            for future in futures.as_completed(pending):
                spec = pending[future]
                try:
                    finished(future.result())
                except futures.process.BrokenProcessPool:
                    raise RuntimeError(f"a worker process died while running {spec.name}; run the "
                                       "same command again to resume the unfinished runs") from None
    except KeyboardInterrupt:
        log("interrupted: the runs save their checkpoints; run the same command again to resume")
        raise
    finally:
        if own_executor is not None:
            own_executor.shutdown(wait=True, cancel_futures=True)
    return {name: summaries[name] for name in names}
