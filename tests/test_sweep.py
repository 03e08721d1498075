"""The sweep runner: one directory per run, finished runs skipped, interrupted ones resumed
to the same history, identical results with 1 and 2 jobs, a Dask cluster when installed,
and clear refusals (another grid in --out, empty axes, unknown keys, no scheduler)."""
import json

import pytest

from tinyinduction.config import ModelConfig, TrainConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.experiments.grid import expand, spec_from_flags
from tinyinduction.sweep import RunSpec, run_grid

MODEL = ModelConfig.small(n_heads=2, d_model=16, d_feature=512)
TASK = TaskConfig.small(eval_size=50)


def tiny(seed, steps=40, **changes):
    train = TrainConfig(seed=seed, steps=steps, lr=1e-3, eval_every=10, checkpoint_every=10,
                        log_every=0, **changes)
    return RunSpec(f"seed={seed}", MODEL, TASK, train)


def quiet(*args):
    pass


def test_runs_are_skipped_when_finished_and_resumed_when_interrupted(tmp_path):
    specs = [tiny(1), tiny(2)]
    first = run_grid(specs, tmp_path / "grid", log=quiet)
    assert [s.status for s in first.values()] == ["finished", "finished"]
    reference = {name: s.history() for name, s in first.items()}
    # a second call trains nothing: the histories (and their wall times) are read back
    again = run_grid(specs, tmp_path / "grid", log=quiet)
    assert {n: s.history() for n, s in again.items()} == reference
    # cut run 2 back to its step-20 checkpoint, as if its worker had died there
    run_dir = tmp_path / "grid" / "seed=2"
    for ckpt in (run_dir / "checkpoints").glob("step_*.npz"):
        if int(ckpt.stem.split("_")[1]) > 20:
            ckpt.unlink()
    run = json.loads((run_dir / "run.json").read_text())
    run["status"], run["step"] = "interrupted", 20
    (run_dir / "run.json").write_text(json.dumps(run))
    resumed = run_grid(specs, tmp_path / "grid", log=quiet)["seed=2"].history()
    for key in reference["seed=2"]:
        if key != "wall_time":
            assert resumed[key] == reference["seed=2"][key], key
    summary = json.loads((tmp_path / "grid" / "summary.json").read_text())
    assert [row["name"] for row in summary] == ["seed=1", "seed=2"]
    assert (tmp_path / "grid" / "summary.csv").read_text().startswith("name,status,steps,learning_time")


def test_one_and_two_jobs_give_identical_results(tmp_path):
    specs = [tiny(3, steps=30), tiny(4, steps=30)]
    one = run_grid(specs, tmp_path / "one", jobs=1, log=quiet)
    two = run_grid(specs, tmp_path / "two", jobs=2, log=quiet)
    for name in one:
        a, b = one[name].history(), two[name].history()
        assert {k: v for k, v in a.items() if k != "wall_time"} == \
               {k: v for k, v in b.items() if k != "wall_time"}


def test_an_out_holding_another_grid_is_refused(tmp_path):
    run_grid([tiny(1, steps=10)], tmp_path, grid_name="first", log=quiet)
    with pytest.raises(ValueError, match="holds the grid 'first'"):
        run_grid([tiny(1, steps=10)], tmp_path, grid_name="second", log=quiet)
    with pytest.raises(ValueError, match=r"run seed=1 there has other settings \(train.lr"):
        run_grid([RunSpec("seed=1", MODEL, TASK, tiny(1, steps=10).train.replace(lr=2e-3))],
                 tmp_path, grid_name="first", log=quiet)


def test_grid_specs_expand_and_refuse_bad_input():
    runs = expand({"name": "g", "preset": "small", "grid": {"task.n_labels": [5, 6], "train.seed": [1, 2]},
                   "clamps": ["match:head=1"]})
    assert [r.name for r in runs] == ["n_labels=5,seed=1", "n_labels=5,seed=2", "n_labels=6,seed=1",
                                      "n_labels=6,seed=2"]
    assert runs[2].model.n_labels == 6 and runs[2].task.n_labels == 6
    assert runs[0].clamps == ({"kind": "match", "layer": 1, "head": 1, "s": 1.0},)
    for spec, words in [({"grid": {"train.seed": []}}, "is empty"),
                        ({"grid": {"train.sed": [1]}}, "not section.field"),
                        ({"gird": {}}, "unknown keys"), ({"preset": "huge"}, "preset"),
                        ({"train": {"lr2": 1}}, "unknown train fields")]:
        with pytest.raises(ValueError, match=words):
            expand(spec)
    assert spec_from_flags("small", ["train.seed=1,2"], [])["grid"] == {"train.seed": [1, 2]}


def test_run_specs_and_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="directory name"):
        RunSpec("a/b", MODEL, TASK, tiny(1).train)
    with pytest.raises(ValueError, match="no runs"):
        run_grid([], tmp_path)
    with pytest.raises(ValueError, match="--jobs"):
        run_grid([tiny(1)], tmp_path, jobs=0)
    with pytest.raises(ValueError, match="same name"):
        run_grid([tiny(1), tiny(1)], tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run_grid([tiny(1)], tmp_path / "file")


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    import tinyinduction.sweep
    monkeypatch.setattr(tinyinduction.sweep, "SCHEDULER_TIMEOUT_S", 2)   # 10 s by default
    with pytest.raises(ValueError, match="no Dask scheduler answered within 2 s"):
        run_grid([tiny(1)], tmp_path, scheduler="tcp://127.0.0.1:9")


def test_dask_local_cluster_runs_the_grid(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    specs = [tiny(5, steps=20), tiny(6, steps=20)]
    local = run_grid(specs, tmp_path / "local", log=quiet)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run_grid(specs, tmp_path / "dask", scheduler=cluster.scheduler_address, log=quiet)
    for name in local:
        a, b = local[name].history(), remote[name].history()
        assert a["eval/train/loss"] == b["eval/train/loss"]


def test_workers_stop_when_the_parent_dies(tmp_path):
    """A grid whose parent process is killed leaves no worker training on."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from tinyinduction.config import ModelConfig, TrainConfig
        from tinyinduction.tasks.fewshot import TaskConfig
        from tinyinduction.sweep import RunSpec, run_grid
        import os
        print(os.getpid(), flush=True)
        train = TrainConfig(steps=100000, lr=1e-3, eval_every=50, checkpoint_every=50, log_every=0)
        specs = [RunSpec(f"seed={{s}}", ModelConfig.small(n_heads=2, d_model=16), TaskConfig.small(eval_size=20),
                         train.replace(seed=s)) for s in (1, 2)]
        run_grid(specs, {str(tmp_path / 'grid')!r}, jobs=2, log=lambda *a: None)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    parent.stdout.readline()
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "grid").glob("seed=*/checkpoints/step_*.npz")):
        time.sleep(0.5)
    children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
    assert children, "the grid started no worker processes"
    parent.kill()                       # SIGKILL: the parent gets no chance to clean up
    parent.wait()
    deadline = time.time() + 90
    alive = list(children)
    while alive and time.time() < deadline:
        time.sleep(0.5)
        alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}") and
                 open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
    for pid in alive:
        os.kill(int(pid), signal.SIGKILL)
    assert not alive, "orphaned workers kept running"
