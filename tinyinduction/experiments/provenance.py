"""Where and how an experiment ran: the machine, its load, the commit, and its runs.

base.run_experiment stores these in results.json's "meta", so the results page
(report.py) states each experiment's wall time, machine and commit from what the run
itself recorded, never from numbers copied by hand.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from ..runs import read_run

REPOSITORY = Path(__file__).resolve().parents[2]     # the checkout holding tinyinduction/


def cpu_name() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages; None where the system has none (Windows)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine() -> dict:
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__}


def _git(*args) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit() -> dict | None:
    """{"commit": short hash, "changed": the package's code differs from it}; None outside
    a git checkout (an installed copy). Only tinyinduction/ counts: a result depends on
    the code, not on the documents or figures beside it."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "tinyinduction")
    return {"commit": head, "changed": bool(changed)}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def finished_before(run_dir, steps: int) -> bool:
    """Did `run_dir` hold this run, finished to `steps`, before we started (a reused run)?"""
    try:
        record = read_run(run_dir)
    except ValueError:
        return False
    return record is not None and record["status"] == "finished" and record["step"] >= steps


def training_seconds(summary) -> float:
    """A run's own training time: the last wall_time of its history (counted across
    resumes), whenever it was trained."""
    wall = summary.history().get("wall_time") or [0.0]
    return float(wall[-1] or 0.0)
