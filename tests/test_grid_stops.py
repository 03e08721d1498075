"""One stop rule for every multi-run command: the first Ctrl-C or SIGTERM stops every
running run between two steps (saved), starts no queued run, writes no results from an
incomplete set and exits 130/143 with one line saying how to continue; the same command
then ends with the results of an uninterrupted run, and no process is left."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyinduction.cli import main

REPOSITORY = Path(__file__).resolve().parent.parent
SPEC = {"name": "stops", "preset": "small", "task": {"eval_size": 50},
        "train": {"steps": 160, "eval_every": 20, "checkpoint_every": 20, "log_every": 0},
        "grid": {"train.seed": [1, 2, 3]}}


def comparable(out: Path) -> dict:
    """Every run's history and the summary, without wall times."""
    rows = json.loads((out / "summary.json").read_text())
    for row in rows:
        row.pop("wall_seconds")
        row.pop("out_dir")
    histories = {}
    for seed in (1, 2, 3):
        history = json.loads((out / f"seed={seed}" / "history.json").read_text())
        history.pop("wall_time")
        histories[seed] = history
    return {"summary": rows, "histories": histories}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "stops.json"
    path.write_text(json.dumps(SPEC))
    return path


@pytest.fixture(scope="module")
def uninterrupted(spec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "grid"
    assert main(["sweep", str(spec_file), "--out", str(out)]) == 0
    return comparable(out)


def alive(pids):
    """Those of pids still running (zombies count as gone)."""
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.append(pid)
    return left


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find processes")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_stopped_sweep_saves_its_runs_and_the_same_command_finishes_it(
        spec_file, uninterrupted, tmp_path, signum, jobs):
    out = tmp_path / "grid"
    argv = [sys.executable, "-m", "tinyinduction", "sweep", str(spec_file), "--out", str(out),
            "--jobs", str(jobs)]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    # a session of its own: a terminal's Ctrl-C goes to the whole process group, as here
    command = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list(out.glob("seed=*/checkpoints/step_*.npz")):
        assert command.poll() is None and time.time() < deadline, command.communicate()
        time.sleep(0.05)
    if signum == signal.SIGINT:
        os.killpg(command.pid, signal.SIGINT)          # Ctrl-C: parent and workers
    else:
        command.send_signal(signal.SIGTERM)            # SIGTERM: the parent only
    stdout, stderr = command.communicate(timeout=60)
    assert command.returncode == (130 if signum == signal.SIGINT else 143), stdout + stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "Traceback" not in stderr
    assert "run the same command again to continue" in stderr
    left = subprocess.run(["pgrep", "-s", str(command.pid)], capture_output=True, text=True).stdout.split()
    assert not alive(left), f"processes left after the stop: {left}"
    # no results from an incomplete set; every run that started was saved; queued ones never started
    assert not (out / "summary.json").exists() and not (out / "summary.csv").exists()
    assert not (out / ".stop").exists()
    started = sorted(p.parent.name for p in out.glob("seed=*/run.json"))
    statuses = {name: json.loads((out / name / "run.json").read_text())["status"] for name in started}
    assert "interrupted" in statuses.values() and "running" not in statuses.values(), statuses
    assert "seed=3" not in started                     # queued behind one (jobs 1) or two (jobs 2)
    # the same command continues: the results of an uninterrupted sweep
    assert main(["sweep", str(spec_file), "--out", str(out), "--jobs", str(jobs)]) == 0
    assert comparable(out) == uninterrupted


def test_a_grid_on_dask_stops_the_same_way(spec_file, uninterrupted, tmp_path):
    """On a Dask cluster the runs are told through the grid's stop file (they may be on
    other machines): SIGTERM to the command stops them between two steps, saved."""
    distributed = pytest.importorskip("dask.distributed")
    import threading
    from tinyinduction.experiments.grid import expand, load_spec
    from tinyinduction.sweep import GridStopped, run_grid
    specs, out = expand(load_spec(spec_file)), tmp_path / "grid"

    def terminate_once_training():
        deadline = time.time() + 120
        while not list(out.glob("seed=*/checkpoints/step_*.npz")) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        threading.Thread(target=terminate_once_training, daemon=True).start()
        with pytest.raises(GridStopped, match="stopped by SIGTERM") as stopped:
            run_grid(specs, out, scheduler=cluster.scheduler_address, grid_name="stops", log=print)
        assert stopped.value.signal == "SIGTERM" and not (out / "summary.json").exists()
        statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("seed=*/run.json")}
        assert set(statuses.values()) == {"interrupted"} and "seed=3" not in statuses, statuses
        run_grid(specs, out, scheduler=cluster.scheduler_address, grid_name="stops", log=print)
    assert comparable(out) == uninterrupted
