"""Run directories: what a run is (its identity) and which run a directory belongs to.

A run directory holds one run:

    run.json                 {"identity": {...}, "status": ..., "step": ..., "message": ...}
    config.json              the model, task and train configs (for people and older tools)
    history.json             every evaluation so far (strict JSON: NaN and inf written as null)
    checkpoints/step_<N>.npz parameters, Adam state, sampler state, history, identity

identity (make_identity) is a JSON dict:

    model      ModelConfig.to_dict()
    task       the task's config as a dict (TaskConfig for the few-shot task)
    train      TrainConfig.to_dict()
    task_type  type(task).__name__, e.g. "FewShotTask"
    clamps     tinyinduction.clamp.describe_clamps(clamps) (a JSON-able list)
    features   the task's data fingerprint: for the few-shot task {"shape": [N, E, F],
               "sha256": hash of the float32 feature table}; another task gives its own
               as a .fingerprint attribute or method (data_fingerprint)
    version    tinyinduction.__version__

Two identities are the same run when they agree everywhere except the bookkeeping
fields of the train config (BOOKKEEPING_FIELDS: steps, checkpoint_every, log_every),
which do not change the trajectory: a finished run may be continued to more steps.

status is "running" (being written now, or its process was killed), "finished",
"interrupted" (Ctrl-C or SIGTERM; a checkpoint was saved) or "failed" (diverged or an
error; `message` says what happened). `step` is the step of the last checkpoint saved
(null before the first one).

Every file is written through a temporary file (<name>.tmp) that is renamed into place
(jsonio.py), so a crash never leaves half a file; temporaries left by a killed process
are removed when a run next opens its directory.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .jsonio import strict_json, to_jsonable, write_json

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"
STATUSES = ("running", "finished", "interrupted", "failed")
BOOKKEEPING_FIELDS = ("steps", "checkpoint_every", "log_every")
IDENTITY_KEYS = ("model", "task", "train", "task_type", "clamps", "features", "version")
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.npz")


class RunDirectoryConflict(ValueError):
    """The output directory holds another run (or something that is not a run)."""


# ---------------------------------------------------------------- temporaries


def remove_temporaries(out_dir):
    """Delete the <name>.tmp files our atomic writes leave when a process is killed."""
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / CHECKPOINT_DIR):
        if folder.is_dir():
            for tmp in folder.glob("*.tmp"):
                if tmp.is_file():
                    tmp.unlink()


# ---------------------------------------------------------------- output paths


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable(path: Path, what: str, kind: str):
    """The nearest existing ancestor must be a directory we can write into."""
    ancestor = _nearest_existing(path.parent if path != Path(".") else path)
    if not ancestor.is_dir():
        raise ValueError(f"{what} = {str(path)!r}: cannot create the {kind} because "
                         f"{str(ancestor)!r} is a file, not a directory")
    try:    # a real write: permission bits say nothing for root or read-only mounts
        with tempfile.TemporaryFile(dir=ancestor, prefix=".tinyinduction-probe-"):
            pass
    except OSError as error:
        raise ValueError(f"{what} = {str(path)!r}: cannot write into {str(ancestor)!r} "
                         f"({error.strerror or error})") from None


def check_output_dir(path, what="out_dir") -> Path:
    """A directory we can create or write into; a one-line ValueError otherwise."""
    if not isinstance(path, (str, os.PathLike)) or not str(os.fspath(path)).strip():
        raise ValueError(f"{what} = {path!r}: must name a directory (a non-empty path)")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} = {str(path)!r} is a file, not a directory")
    _check_creatable(path / "x" if path.is_dir() else path, what, "directory")
    return path


def check_output_file(path, what="path", suffixes=None) -> Path:
    """A file path we can write (its directory creatable), with one of `suffixes`."""
    if not isinstance(path, (str, os.PathLike)) or not str(os.fspath(path)).strip():
        raise ValueError(f"{what} = {path!r}: must name a file (a non-empty path)")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} = {str(path)!r} is a directory, not a file")
    if suffixes is not None and path.suffix.lower().lstrip(".") not in suffixes:
        raise ValueError(f"{what} = {str(path)!r}: the file type must be one of "
                         f"{sorted(suffixes)} (from the name's suffix)")
    _check_creatable(path, what, "file")
    return path


# ---------------------------------------------------------------- identity


def describe_clamps(clamps) -> list:
    """JSON-able description of the clamps (clamps are otherwise opaque here)."""
    from .clamp import describe_clamps as describe
    return to_jsonable(describe(clamps))


def data_fingerprint(task) -> dict:
    """The task's data, for the run's identity: task.fingerprint (a JSON-able value, or a
    method returning one) if the task has it, else its .features table's shape and a
    SHA-256 of its float32 bytes (the few-shot task)."""
    fingerprint = getattr(task, "fingerprint", None)
    if fingerprint is not None:
        return to_jsonable(fingerprint() if callable(fingerprint) else fingerprint)
    features = getattr(task, "features", None)
    if not isinstance(features, np.ndarray):
        raise TypeError(f"task {type(task).__name__}: a task needs a .fingerprint (or a "
                        ".features array) so that a run directory can record its data")
    table = np.ascontiguousarray(features, dtype=np.float32)
    return {"shape": list(table.shape), "sha256": hashlib.sha256(table.data).hexdigest()}


def config_dict(config) -> dict | None:
    """A config dataclass as a JSON dict (tuples become lists, as stored); None stays None."""
    if config is None:
        return None
    data = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
    return json.loads(strict_json(data))


def make_identity(model_config, task_config, train_config, task, clamps) -> dict:
    """The identity of a run (see the module docstring)."""
    from . import __version__
    return {"model": config_dict(model_config), "task": config_dict(task_config),
            "train": config_dict(train_config), "task_type": type(task).__name__,
            "clamps": describe_clamps(clamps), "features": data_fingerprint(task),
            "version": __version__}


def _differences(old, new, where=""):
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in list(old) + [k for k in new if k not in old]:
            found += _differences(old.get(key, "(absent)"), new.get(key, "(absent)"),
                                  f"{where}.{key}" if where else str(key))
        return found
    return [] if old == new else [(where, old, new)]


def identity_differences(recorded: dict, wanted: dict) -> list[tuple[str, object, object]]:
    """[(field, recorded value, wanted value)] where two identities are different runs
    (the bookkeeping fields of the train config are ignored)."""
    def trajectory(identity):
        identity = dict(identity)
        train = identity.get("train")
        if isinstance(train, dict):
            identity["train"] = {k: v for k, v in train.items() if k not in BOOKKEEPING_FIELDS}
        return identity
    return _differences(trajectory(recorded), trajectory(wanted))


def describe_differences(differences, there="there", here="here", limit=3) -> str:
    def short(value):
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    parts = [f"{field}: {short(a)} {there}, {short(b)} {here}" for field, a, b in differences[:limit]]
    more = len(differences) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# ---------------------------------------------------------------- run.json and the directory


def read_run(out_dir) -> dict | None:
    """run.json of a run directory (None if there is none); a ValueError if it is damaged."""
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable run record ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("identity"), dict) \
            or record.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a run record (needs an identity dict and a status "
                         f"in {STATUSES})")
    return record


def write_run(out_dir, identity, status, step, message=""):
    """Write run.json atomically (see the module docstring for its fields)."""
    if status not in STATUSES:
        raise ValueError(f"status = {status!r}; allowed: {STATUSES}")
    write_json(Path(out_dir) / RUN_FILE, {"identity": identity, "status": status,
                                          "step": step, "message": message}, indent=2)


def looks_like_run(out_dir) -> bool:
    out_dir = Path(out_dir)
    return any((out_dir / name).exists() for name in (RUN_FILE, CONFIG_FILE, HISTORY_FILE, CHECKPOINT_DIR))


def is_empty_dir(out_dir) -> bool:
    out_dir = Path(out_dir)
    return not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir()))


def aside_name(out_dir) -> Path:
    """Where --overwrite would move a run: <dir>.old, <dir>.old-2, ... (first free name)."""
    out_dir = Path(out_dir)
    candidate, n = out_dir.with_name(out_dir.name + ".old"), 1
    while candidate.exists():
        n += 1
        candidate = out_dir.with_name(f"{out_dir.name}.old-{n}")
    return candidate


def move_aside(out_dir) -> Path:
    """Rename a run directory out of the way (never delete it); return where it went."""
    target = aside_name(out_dir)
    os.replace(out_dir, target)
    return target


def checkpoint_paths(out_dir) -> list[tuple[int, Path]]:
    """[(step, path)] of the checkpoints in a run directory, latest first."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)


def checkpoint_path(out_dir, step) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"step_{step}.npz"


# ---------------------------------------------------------------- how a run starts


@dataclass
class StartPlan:
    """How train() starts in a run directory (plan_start)."""

    kind: str                  # "fresh", "resume" or "finished"
    ckpt: dict | None = None   # a validated checkpoint for "resume" and "finished"
    step: int = 0
    move_aside: bool = False


class StepsBelowCheckpoint(ValueError):
    """train_config.steps is below the step of the checkpoint a run would resume from."""


def _steps_below(train_config, step, where):
    return StepsBelowCheckpoint(f"train_config.steps = {train_config.steps} (--steps) is below the step of "
                      f"{where} ({step}): a run cannot be shortened; ask for {step} or more")


def checked_checkpoint(path, identity, model_config, train_config) -> tuple[dict, int]:
    """Load and validate a checkpoint of this run; refuse with the differing field."""
    from .checkpoint import load_checkpoint, validate_checkpoint   # checkpoint.py imports this module
    ckpt = load_checkpoint(path)
    step = validate_checkpoint(ckpt, model_config)
    if ckpt["identity"] is None:
        raise ValueError(f"checkpoint {path} was written before runs recorded their identity, so "
                         "it cannot be checked against this run; start a new run")
    differences = identity_differences(ckpt["identity"], identity)
    if differences:
        raise ValueError(f"checkpoint {path} belongs to a different run ("
                         + describe_differences(differences, "there", "here")
                         + "); resume it with its own settings")
    if step > train_config.steps:
        raise _steps_below(train_config, step, f"checkpoint {path}")
    return ckpt, step


def plan_start(out_dir, identity, resume, overwrite, model_config, train_config, log) -> StartPlan:
    """Decide how train() starts: "fresh", "resume" (from a validated checkpoint) or
    "finished" (nothing to do); or refuse with a RunDirectoryConflict or ValueError.
    Reads and validates; writes nothing (see train() for what resume and overwrite mean)."""
    record = read_run(out_dir) if out_dir is not None and out_dir.is_dir() else None
    if out_dir is not None and record is None and not is_empty_dir(out_dir):
        if (overwrite or resume == "auto") and looks_like_run(out_dir):
            return StartPlan("fresh", move_aside=True)     # a run of an older version: keep it aside
        raise RunDirectoryConflict(
            f"run directory {str(out_dir)!r} is not empty and holds no run.json, so it is not a run "
            "directory of this version; choose a new or empty directory"
            + (" (--overwrite or --resume auto moves an old-style run aside)"
               if looks_like_run(out_dir) else ""))
    same = record is not None and not identity_differences(record["identity"], identity)
    where = f"run directory {str(out_dir)!r}"
    if record is not None and not same and not overwrite:
        raise RunDirectoryConflict(
            f"{where} holds a different run ("
            + describe_differences(identity_differences(record["identity"], identity))
            + "); use another --out, --resume auto with that run's settings to continue it, or "
            f"--overwrite to move it aside to {aside_name(out_dir)}")
    if overwrite:
        return StartPlan("fresh", move_aside=record is not None)

    if resume is None:
        if same:
            raise RunDirectoryConflict(
                f"{where} already holds this run ({record['status']}, last checkpoint at step "
                f"{record['step']}); --resume auto continues or reuses it, --overwrite moves it "
                f"aside to {aside_name(out_dir)} and starts again")
        return StartPlan("fresh")

    if resume != "auto":
        ckpt, step = checked_checkpoint(Path(resume), identity, model_config, train_config)
        return StartPlan("resume", ckpt, step)

    if record is None:
        return StartPlan("fresh")
    for step, path in checkpoint_paths(out_dir):   # the latest checkpoint that checks out
        try:
            ckpt, step = checked_checkpoint(path, identity, model_config, train_config)
        except StepsBelowCheckpoint:
            raise
        except ValueError as error:
            log(f"skipping {path}: {error}")
            continue
        done = record["status"] == "finished" and step == train_config.steps
        return StartPlan("finished" if done else "resume", ckpt, step)
    return StartPlan("fresh")


__all__ = [
    "RUN_FILE", "CONFIG_FILE", "HISTORY_FILE", "CHECKPOINT_DIR", "STATUSES", "BOOKKEEPING_FIELDS",
    "RunDirectoryConflict",
    "check_output_dir", "check_output_file", "make_identity", "identity_differences",
    "read_run", "write_run", "move_aside", "checkpoint_paths", "data_fingerprint",
    "plan_start", "StartPlan",
]
