"""Strict JSON and atomic files: the one way tinyinduction writes run records.

Every file is written through a temporary file (<name>.tmp) that is renamed into place,
so a crash never leaves half a file. JSON is RFC 8259 JSON: NaN and inf are written as
null (json.dumps would write NaN, which other tools refuse) and read back as NaN where a
history expects numbers. Below runs.py, checkpoint.py, train.py and the experiments,
which all write through it.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def to_jsonable(value):
    """value with NaN/inf as None, NumPy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def strict_json(value, indent=None) -> str:
    """RFC 8259 JSON: non-finite numbers become null (json.dumps would write NaN)."""
    return json.dumps(to_jsonable(value), allow_nan=False, indent=indent)


def write_atomic(path, write):
    """Write through path.tmp and rename, so a crash never leaves half a file; the
    temporary file is removed whatever goes wrong. write(handle) gets a binary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path, value, indent=None):
    text = strict_json(value, indent).encode()
    write_atomic(path, lambda handle: handle.write(text))


def history_from_json(history):
    """A history as stored (null for NaN) back to floats with NaN, as training keeps it."""
    return {key: [float("nan") if v is None else v for v in values]
            for key, values in history.items()}


def load_history(path) -> dict:
    """Read a history.json (a dict of equal-length lists; null read back as NaN)."""
    return history_from_json(json.loads(Path(path).read_text()))


