"""Checkpoints: one .npz per saved step, read without unpickling and checked entry by entry.

A checkpoint holds everything a resumed run needs to continue exactly as the
uninterrupted one would:

    param/<name>   every parameter                       adam.m, adam.v [P], adam.t
    accumulator    [3] training loss, accuracy, steps summed since the last evaluation
    data_rng       the training sampler's bit-generator state (JSON)
    history        the evaluations so far (strict JSON)
    identity       the run's identity (runs.make_identity): its model, task and train
                   configs, clamps, data fingerprint and version; the configs are held
                   here once (checkpoints written before this held a `configs` entry too,
                   and the oldest only that: both still load)
    step           the number of updates done

`validate_checkpoint` checks every entry against the model and against each other before
anything is touched, so a damaged or foreign checkpoint is refused with one line that
names the entry.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .model import check_params, param_shapes
from .jsonio import history_from_json, strict_json, write_atomic

REQUIRED = ("adam.m", "adam.v", "adam.t", "accumulator", "data_rng", "history")
CONFIG_KEYS = ("model", "task", "train")


def save_checkpoint(path, params, optimizer, data_rng, history, accum, identity, step=None):
    """Write a checkpoint atomically (parameters must be finite: checked by the caller)."""
    write_checkpoint(path, checkpoint_state(params, optimizer, data_rng.bit_generator.state, accum),
                     history, identity, optimizer.t if step is None else step)


def checkpoint_state(params, optimizer, data_rng_state: dict, accum) -> dict:
    """The training state of a checkpoint, copied: training may go on while it waits to
    be written (train() holds it until the history row of its step is in).
    data_rng_state: the sampler's bit_generator.state after the batches trained on."""
    state = {f"param/{name}": np.array(value) for name, value in params.items()}
    state.update({key: np.array(value) for key, value in optimizer.state().items()})
    state["accumulator"] = np.array(accum, dtype=np.float64)
    state["data_rng"] = np.array(json.dumps(data_rng_state))
    return state


def write_checkpoint(path, state: dict, history, identity, step):
    """Write checkpoint_state(...) with the history, identity (configs included) and step,
    atomically."""
    if not isinstance(identity, dict) or not all(isinstance(identity.get(key), dict) for key in ("model", "train")):
        raise ValueError("a checkpoint's identity must hold the run's model and train configs")
    arrays = dict(state)
    arrays["history"] = np.array(strict_json(history))
    arrays["identity"] = np.array(strict_json(identity))
    arrays["step"] = np.array(step)
    write_atomic(Path(path), lambda handle: np.savez(handle, **arrays))


def _json_entry(path, contents, key):
    try:
        return json.loads(str(contents[key]))
    except (ValueError, TypeError) as error:
        raise ValueError(f"checkpoint {path}: entry {key} is not valid JSON ({error})") from None


def load_checkpoint(path) -> dict:
    """Read a checkpoint without unpickling; a clear error if it is not one.

    Returns {"params", "optimizer", "accumulator", "data_rng", "history", "configs" (the
    identity's model, task and train configs), "identity" (None for checkpoints written
    before identities: their configs come from their `configs` entry), "step"}.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"checkpoint {path}: is a directory, not a .npz file") from None
    except Exception as error:   # zip/format errors come in many types
        raise ValueError(f"checkpoint {path}: not a readable .npz checkpoint ({error})") from None
    missing = sorted(set(REQUIRED) - set(contents))
    if not {"identity", "configs"} & set(contents):
        missing.append("identity")
    if missing:
        raise ValueError(f"checkpoint {path}: missing entries {missing}")
    for key in ("data_rng", "history", "configs", "identity"):
        if key in contents and contents[key].dtype.kind != "U":
            raise ValueError(f"checkpoint {path}: entry {key} is not text")
    history = _json_entry(path, contents, "history")
    if isinstance(history, dict) and all(isinstance(v, list) for v in history.values()):
        history = history_from_json(history)
    identity = _json_entry(path, contents, "identity") if "identity" in contents else None
    if identity is not None:
        if not isinstance(identity, dict):
            raise ValueError(f"checkpoint {path}: entry identity is not a JSON object")
        configs = {key: identity.get(key) for key in CONFIG_KEYS}
    else:
        configs = _json_entry(path, contents, "configs")
    return {
        "params": {k[len("param/"):]: v for k, v in contents.items() if k.startswith("param/")},
        "optimizer": {k: contents[k] for k in ("adam.m", "adam.v", "adam.t")},
        "accumulator": contents["accumulator"],
        "data_rng": _json_entry(path, contents, "data_rng"),
        "history": history,
        "configs": configs,
        "identity": identity,
        "step": contents.get("step"),
        "path": path,
    }


def load_params(path) -> tuple[dict, ModelConfig]:
    """Parameters and model config from a checkpoint."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt["configs"], dict) or not isinstance(ckpt["configs"].get("model"), dict):
        entry = "configs" if ckpt["identity"] is None else "identity"
        raise ValueError(f"checkpoint {path}: entry {entry} has no model config")
    config = ModelConfig.from_dict(ckpt["configs"]["model"])
    check_params(ckpt["params"], config)
    return ckpt["params"], config


def _integer_scalar(array):
    array = np.asarray(array)
    if array.shape != () or array.dtype.kind not in "iu":
        return None
    return int(array)


def validate_checkpoint(ckpt: dict, model_config: ModelConfig) -> int:
    """Check every entry of a loaded checkpoint against the model and each other; return
    its step. Raises a one-line ValueError naming the entry; changes nothing."""
    where = f"checkpoint {ckpt['path']}"

    def bad(entry, problem):
        raise ValueError(f"{where}: entry {entry} {problem}")

    # parameters: names, shapes, floating point, finite
    try:
        check_params(ckpt["params"], model_config)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    n_params = 0
    for name, shape in param_shapes(model_config).items():
        value = ckpt["params"][name]
        if value.dtype.kind != "f":
            bad(f"param/{name}", f"has dtype {value.dtype}; parameters are floating point")
        if not np.isfinite(value).all():
            bad(f"param/{name}", "holds NaN or infinite values")
        n_params += math.prod(shape)
    # Adam: one moment per parameter, finite, v >= 0, t = the step
    step = _integer_scalar(ckpt["optimizer"]["adam.t"])
    if step is None or step < 0:
        bad("adam.t", f"= {ckpt['optimizer']['adam.t']!r}: must be an integer step count >= 0")
    for key in ("adam.m", "adam.v"):
        value = ckpt["optimizer"][key]
        if value.shape != (n_params,) or value.dtype.kind != "f":
            bad(key, f"has shape {value.shape} and dtype {value.dtype}; the model needs "
                     f"({n_params},) floating point (one entry per parameter)")
        if not np.isfinite(value).all():
            bad(key, "holds NaN or infinite values")
    if (ckpt["optimizer"]["adam.v"] < 0).any():
        bad("adam.v", "holds negative second moments")
    if ckpt["step"] is not None and _integer_scalar(ckpt["step"]) != step:
        bad("step", f"= {ckpt['step']!r} differs from adam.t = {step}")
    # the sampler's state
    state = ckpt["data_rng"]
    try:
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise TypeError("not a PCG64 state")
        np.random.default_rng(0).bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        bad("data_rng", f"is not a PCG64 generator state ({error})")
    # the history: a dict of equal-length lists with increasing steps up to this one
    history = ckpt["history"]
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        bad("history", "must be a dict of lists")
    if history:
        lengths = {len(v) for v in history.values()}
        steps = history.get("step")
        if len(lengths) != 1 or not isinstance(steps, list) or not steps:
            bad("history", "must hold equal-length lists including 'step'")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps) \
                or any(b <= a for a, b in zip(steps, steps[1:])) or steps[-1] > step or steps[0] < 0:
            bad("history", f"has steps {steps[:3]}...{steps[-1:]}; they must increase and "
                           f"end at or before the checkpoint's step {step}")
        for key, values in history.items():
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                bad("history", f"column {key!r} holds values that are not numbers")
    # the running sums since the last evaluation
    accum = np.asarray(ckpt["accumulator"])
    if accum.shape != (3,) or accum.dtype.kind != "f" or not np.isfinite(accum).all():
        bad("accumulator", f"= {accum!r}: must be 3 finite numbers")
    last_eval = history["step"][-1] if history else 0
    if accum[2] != step - last_eval:
        bad("accumulator", f"counts {accum[2]:g} steps since the last evaluation (step "
                           f"{last_eval}); the checkpoint is at step {step}")
    configs_entry = "configs" if ckpt["identity"] is None else "identity"
    if not isinstance(ckpt["configs"], dict) or not isinstance(ckpt["configs"].get("model"), dict):
        bad(configs_entry, "has no model config")     # (load_params refuses it too)
    if ModelConfig.from_dict(ckpt["configs"]["model"]) != model_config:
        bad(configs_entry, "holds another model config than the run's")
    return step


__all__ = ["save_checkpoint", "checkpoint_state", "write_checkpoint", "load_checkpoint", "load_params", "validate_checkpoint"]
