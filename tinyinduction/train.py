"""Training: the loop, evaluation schedule, history, checkpoints, resume.

    result = train(model_config, task_config, train_config, out_dir="runs/x")

writes out_dir/config.json, out_dir/history.json (a dict of equal-length lists) and
out_dir/checkpoints/step_<N>.npz. Checkpoints hold parameters, Adam state, the data
sampler's random state, the history so far and the configs, so a resumed run continues
exactly as the uninterrupted one would. Ctrl-C stops between two steps and saves.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import ModelConfig, TaskConfig, TrainConfig
from .model import check_params, init_params, loss_and_grads, loss_from_cache, run_with_cache
from .optim import Adam, flatten_grads, flatten_params
from .tasks.fewshot import FewShotTask

EVAL_CHUNK = 1000   # sequences per forward pass during evaluation


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    params: dict
    history: dict
    interrupted: bool = False
    out_dir: Path | None = None


# ---------------------------------------------------------------- evaluation


def evaluate(params, model_config: ModelConfig, batch, clamps=()) -> tuple[float, float]:
    """(loss, accuracy) of params on a whole evaluation batch, in chunks."""
    n = len(batch.target)
    if n == 0:
        return float("nan"), float("nan")
    losses, accs, sizes = [], [], []
    for start in range(0, n, EVAL_CHUNK):
        chunk = type(batch)(*[np.asarray(field)[start:start + EVAL_CHUNK] for field in batch])
        cache = run_with_cache(params, model_config, chunk, clamps)
        loss, acc = loss_from_cache(model_config, chunk, cache)
        losses.append(loss), accs.append(acc), sizes.append(len(chunk.target))
    return float(np.average(losses, weights=sizes)), float(np.average(accs, weights=sizes))


def evaluate_all(params, model_config, eval_sets: dict, clamps=()) -> dict:
    """{"eval/<set>/loss": ..., "eval/<set>/acc": ...} for every evaluation set."""
    out = {}
    for name, batch in eval_sets.items():
        out[f"eval/{name}/loss"], out[f"eval/{name}/acc"] = evaluate(params, model_config, batch, clamps)
    return out


# ---------------------------------------------------------------- checkpoints


def _write_atomic(path: Path, write):
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)


def save_checkpoint(path, params, optimizer: Adam, data_rng, history, accum, configs):
    arrays = {f"param/{name}": value for name, value in params.items()}
    arrays.update(optimizer.state())
    arrays["accumulator"] = np.asarray(accum, dtype=np.float64)
    arrays["data_rng"] = np.array(json.dumps(data_rng.bit_generator.state))
    arrays["history"] = np.array(json.dumps(history))
    arrays["configs"] = np.array(json.dumps(configs))
    _write_atomic(Path(path), lambda handle: np.savez(handle, **arrays))


def load_checkpoint(path) -> dict:
    """Read a checkpoint without unpickling; a clear error if it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path}: no such file") from None
    except Exception as error:   # zip/format errors come in many types
        raise ValueError(f"checkpoint {path}: not a readable .npz checkpoint ({error})") from None
    needed = {"adam.m", "adam.v", "adam.t", "accumulator", "data_rng", "history", "configs"}
    missing = sorted(needed - set(contents))
    if missing:
        raise ValueError(f"checkpoint {path}: missing entries {missing}")
    return {
        "params": {k[len("param/"):]: v for k, v in contents.items() if k.startswith("param/")},
        "optimizer": {k: contents[k] for k in ("adam.m", "adam.v", "adam.t")},
        "accumulator": contents["accumulator"],
        "data_rng": json.loads(str(contents["data_rng"])),
        "history": json.loads(str(contents["history"])),
        "configs": json.loads(str(contents["configs"])),
    }


def load_params(path) -> tuple[dict, ModelConfig]:
    """Parameters and model config from a checkpoint."""
    ckpt = load_checkpoint(path)
    config = ModelConfig.from_dict(ckpt["configs"]["model"])
    check_params(ckpt["params"], config)
    return ckpt["params"], config


# ---------------------------------------------------------------- the loop


class _StopFlag:
    """Turns Ctrl-C into a flag checked between steps, so no update is cut in half."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:      # not in the main thread: Ctrl-C is not ours to catch
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _format_eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def train(model_config: ModelConfig, task_config: TaskConfig, train_config: TrainConfig,
          out_dir=None, resume=None, clamps=(), task: FewShotTask | None = None,
          log=print) -> TrainResult:
    """Train a few-shot model; see the module docstring for what is written.

    resume: a checkpoint path; the run continues from it (configs must match).
    clamps: Clamp objects active in every training step and every evaluation.
    """
    task = task or FewShotTask(task_config)
    if model_config.input_kind != "fewshot" or model_config.d_feature != task.feature_dim \
            or model_config.n_labels != task.n_labels:
        raise ValueError(
            f"model and task do not fit: the task has {task.feature_dim}-d features and "
            f"{task.n_labels} labels; ModelConfig has input_kind={model_config.input_kind!r}, "
            f"d_feature={model_config.d_feature}, n_labels={model_config.n_labels}")
    tc = train_config
    configs = {"model": model_config.to_dict(), "task": dataclasses.asdict(task_config),
               "train": tc.to_dict()}
    configs = json.loads(json.dumps(configs))   # as stored: tuples become lists
    out_dir = Path(out_dir) if out_dir is not None else None

    params = init_params(model_config, tc.seed)
    data_rng = np.random.default_rng([tc.seed, 1])
    flat, params = flatten_params(params)
    names = list(params)
    optimizer = Adam(flat.size, tc.lr, tc.beta1, tc.beta2, tc.adam_eps, dtype=flat.dtype)
    history = {}
    accum = np.zeros(3)          # running sums since the last evaluation: loss, acc, count
    start_step = 0
    if resume is not None:
        ckpt = load_checkpoint(resume)
        for kind in ("model", "task"):
            if ckpt["configs"][kind] != configs[kind]:
                raise ValueError(f"checkpoint {resume}: its {kind} config differs from this run's")
        check_params(ckpt["params"], model_config)
        for name in names:
            params[name][...] = ckpt["params"][name]
        optimizer.load_state(ckpt["optimizer"])
        data_rng.bit_generator.state = ckpt["data_rng"]
        history, accum = ckpt["history"], ckpt["accumulator"].copy()
        start_step = optimizer.t
        log(f"resumed from {resume} at step {start_step}")
    eval_sets = task.eval_sets()

    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(out_dir / "config.json", lambda h: h.write(json.dumps(configs, indent=2).encode()))

    def record(step, wall):
        row = {"step": step, "sequences": step * tc.batch_size}
        row.update(evaluate_all(params, model_config, eval_sets, clamps))
        if accum[2] > 0:
            row["train/loss"], row["train/acc"] = accum[0] / accum[2], accum[1] / accum[2]
        else:   # step 0: nothing trained yet, report the fixed training set
            row["train/loss"], row["train/acc"] = row["eval/train/loss"], row["eval/train/acc"]
        row["wall_time"] = wall
        for key, value in row.items():
            history.setdefault(key, []).append(value)
        accum[:] = 0

    def save(step):
        if out_dir is None:
            return
        save_checkpoint(out_dir / "checkpoints" / f"step_{step}.npz", params, optimizer,
                        data_rng, history, accum, configs)
        _write_atomic(out_dir / "history.json", lambda h: h.write(json.dumps(history).encode()))

    t_start = time.perf_counter()
    wall_before = history["wall_time"][-1] if history.get("wall_time") else 0.0
    if start_step == 0:
        record(0, 0.0)
    step = start_step
    interrupted = False
    with _StopFlag() as stop:
        while step < tc.steps:
            batch = task.sample(data_rng, tc.batch_size)
            loss, acc, grads, _ = loss_and_grads(params, model_config, batch, clamps)
            if not np.isfinite(loss):
                if out_dir is not None:
                    _write_atomic(out_dir / "history.json", lambda h: h.write(json.dumps(history).encode()))
                raise TrainingDiverged(
                    f"loss became {loss} at step {step + 1}; the update was not applied; "
                    f"last good checkpoint is the latest in {out_dir / 'checkpoints' if out_dir else '(none)'}")
            optimizer.step(flat, flatten_grads(grads, names))
            step += 1
            accum += (loss, acc, 1)
            wall = wall_before + time.perf_counter() - t_start
            if step % tc.eval_every == 0 or step == tc.steps:
                record(step, wall)
            if tc.log_every and (step % tc.log_every == 0 or step == tc.steps):
                rate = (step - start_step) / max(time.perf_counter() - t_start, 1e-9)
                last = {k: v[-1] for k, v in history.items()}
                log(f"step {step:>6}/{tc.steps} ({100 * step / tc.steps:3.0f}%)  "
                    f"train loss {last['train/loss']:.3f} acc {last['train/acc']:.2f}  "
                    f"relabel {last['eval/relabel/loss']:.3f}  held-out classes "
                    f"{last['eval/heldout_classes/loss']:.3f}  |  {rate:,.0f} steps/s, "
                    f"ETA {_format_eta((tc.steps - step) / rate)}")
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                save(step)
            if stop.raised:
                interrupted = True
                save(step)   # no extra history row: a resumed run matches an uninterrupted one
                log(f"interrupted at step {step}: history and checkpoint saved"
                    + (f" in {out_dir}" if out_dir else ""))
                break
    return TrainResult({n: params[n].copy() for n in names}, history, interrupted, out_dir)
