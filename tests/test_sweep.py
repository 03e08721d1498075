"""The sweep runner: one directory per run, finished runs skipped, interrupted ones resumed
to the same history, identical results with 1 and 2 jobs, a Dask cluster when installed,
run names that hold any value, and clear refusals (another grid in --out, malformed
specs with the key named and nothing written, no scheduler)."""
import contextlib
import dataclasses
import io
import json
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyinduction.cli import main

from tinyinduction.config import ModelConfig, TrainConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.experiments.grid import expand, spec_from_flags
from tinyinduction.sweep import RunSpec, run_dir_name, run_grid

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


def test_an_out_holding_another_grid_is_refused_and_a_grid_continues_to_more_steps(tmp_path):
    run_grid([tiny(1, steps=10)], tmp_path, grid_name="first", log=quiet)
    with pytest.raises(ValueError, match="holds the grid 'first'"):
        run_grid([tiny(1, steps=10)], tmp_path, grid_name="second", log=quiet)
    with pytest.raises(ValueError, match=r"run seed=1 there has other settings \(train.lr: 0.001 there, 0.002 here"):
        run_grid([RunSpec("seed=1", MODEL, TASK, tiny(1, steps=10).train.replace(lr=2e-3))],
                 tmp_path, grid_name="first", log=quiet)
    # steps (like checkpoint_every and log_every) do not change a run: the grid goes on
    longer = run_grid([tiny(1, steps=20)], tmp_path, grid_name="first", log=quiet)["seed=1"]
    assert longer.status == "finished" and longer.history()["step"] == [0, 10, 20]
    assert json.loads((tmp_path / "grid.json").read_text())["runs"]["seed=1"]["train"]["steps"] == 20


def test_a_failing_run_stops_the_others_which_save(tmp_path):
    """One run diverges: the other, far from done, stops between two steps and saves
    (so nothing outlives the grid), then the divergence is reported."""
    from tinyinduction.train import TrainingDiverged
    diverging = RunSpec("diverges", MODEL, TASK, tiny(1, steps=50).train.replace(lr=1e12))
    long = tiny(2, steps=5_000)           # ~10 s if nothing stopped it
    with pytest.raises(TrainingDiverged):
        run_grid([diverging, long], tmp_path / "grid", jobs=2, log=quiet)
    record = json.loads((tmp_path / "grid" / "seed=2" / "run.json").read_text())
    assert record["status"] == "interrupted" and "the failure of run diverges" in record["message"]
    assert record["step"] < 5_000 and not (tmp_path / "grid" / "summary.json").exists()


def test_grid_specs_expand():
    runs = expand({"name": "g", "preset": "small", "grid": {"task.n_labels": [5, 6], "train.seed": [1, 2]},
                   "clamps": ["match:head=1"]})
    assert [r.name for r in runs] == ["n_labels=5,seed=1", "n_labels=5,seed=2", "n_labels=6,seed=1",
                                      "n_labels=6,seed=2"]
    assert runs[2].model.n_labels == 6 and runs[2].task.n_labels == 6
    assert runs[0].clamps == ({"kind": "match", "layer": 1, "head": 1, "s": 1.0},)
    assert spec_from_flags("small", ["train.seed=1,2"], [])["grid"] == {"train.seed": [1, 2]}


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("spec_text, words", [
    ('[{"train.seed": [1, 2]}]', "must be a JSON object"),
    ('{"train": "steps=20", "grid": {"train.seed": [1]}}', "train must be an object"),
    ('{"clamps": "copy:head=1", "grid": {"train.seed": [1]}}', "clamps must be a list"),
    ('{"grid": {"train.seed": [1]}, "grid": {"train.seed": [2]}}', "key 'grid' is given twice"),
    ('{"train": {"steps": "20"}, "grid": {"train.seed": [1]}}', "TrainConfig.steps"),
])
def test_malformed_specs_name_the_key(tmp_path, capsys, spec_text, words):
    (tmp_path / "spec.json").write_text(spec_text)
    assert main(["sweep", str(tmp_path / "spec.json"), "--out", str(tmp_path / "out")]) == 2
    assert words in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_run_names_hold_any_value_a_setting_allows(tmp_path, capsys):
    """--grid task.features=builtin:rank=4,builtin:rank=8 (a value with ':' and '=') runs:
    the directory's name is made safe, run.json keeps the exact setting."""
    assert main(["sweep", "--preset", "small", "--grid", "task.features=builtin:rank=4,builtin:rank=8",
                 "--grid", "train.steps=4", "--out", str(tmp_path / "grid")]) == 0
    summary = json.loads((tmp_path / "grid" / "summary.json").read_text())
    assert [row["name"] for row in summary] == ["features=builtin:rank=4,steps=4",
                                                "features=builtin:rank=8,steps=4"]
    for row, rank in zip(summary, (4, 8)):
        run_dir = Path(row["out_dir"])
        assert run_dir.parent == tmp_path / "grid" and ":" not in run_dir.name
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "finished"
        assert record["identity"]["task"]["features"] == f"builtin:rank={rank}"
    assert run_dir_name("features=builtin:rank=4") != run_dir_name("features=builtin_rank=4")
    assert run_dir_name("a/b") != run_dir_name("a_b") and "/" not in run_dir_name("a/b")
    assert run_dir_name("seed=5") == "seed=5" and len(run_dir_name("x" * 300)) <= 100


# ------------------------------------------------- hypothesis: malformed specs are refused

VALID = {"name": "h", "preset": "small", "train": {"steps": 3, "eval_every": 3},
         "grid": {"train.seed": [1, 2]}}
NOT_AN_OBJECT = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(),
                          st.lists(st.integers(), max_size=2))
NOT_A_LIST = st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
CONFIG_FIELDS = {f.name for c in (ModelConfig, TaskConfig, TrainConfig) for f in dataclasses.fields(c)}
NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
NOT_A_POSITIVE_INTEGER = st.one_of(st.text(max_size=3), st.floats(allow_nan=True), st.booleans(),
                                   st.none(), st.integers(max_value=0), st.lists(st.integers(), max_size=2))


def _set(path, value):
    def change(spec):
        target = spec
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
        return spec
    return change


@st.composite
def malformed_specs(draw):
    """(the spec's JSON text, a word its refusal must contain): one fault in a valid spec."""
    kind = draw(st.sampled_from(["top", "unknown key", "section type", "unknown field", "value",
                                 "clamps type", "clamp item", "grid type", "axis key", "axis values",
                                 "axis repeat", "fixed and varied", "axis value", "duplicate key",
                                 "preset", "name"]))
    spec = json.loads(json.dumps(VALID))
    if kind == "top":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5),
                                         st.integers(), st.none()))), "grid spec"
    if kind == "unknown key":
        key = draw(NAMES.filter(lambda k: k not in ("name", "preset", "model", "task", "train",
                                                    "clamps", "grid")))
        return json.dumps(_set([key], 1)(spec)), key
    if kind == "section type":
        section = draw(st.sampled_from(["model", "task", "train"]))
        return json.dumps(_set([section], draw(NOT_AN_OBJECT))(spec)), section
    if kind == "unknown field":
        section = draw(st.sampled_from(["model", "task", "train"]))
        field = draw(NAMES.filter(lambda f: f not in CONFIG_FIELDS))
        return json.dumps(_set([section, field], 1)(spec)), field
    if kind == "value":
        field = draw(st.sampled_from(["steps", "batch_size", "eval_every"]))
        return json.dumps(_set(["train", field], draw(NOT_A_POSITIVE_INTEGER))(spec)), field
    if kind == "clamps type":
        return json.dumps(_set(["clamps"], draw(st.one_of(st.text(max_size=8), st.integers(),
                                                          st.dictionaries(NAMES, st.integers(), max_size=2))))(spec)), "clamps"
    if kind == "clamp item":
        item = draw(st.one_of(st.integers(), st.none(), st.just("nonsense"), st.just("match:head=0,head=1"),
                              st.just({"kind": "copy", "head": "x"}), st.just("copy:head=7")))
        return json.dumps(_set(["clamps"], ["A", item])(spec)), "clamps[1]" if item != "copy:head=7" else "head"
    if kind == "grid type":
        return json.dumps(_set(["grid"], draw(st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=5),
                                                        st.integers())))(spec)), "grid"
    if kind == "axis key":
        key = draw(st.one_of(NAMES, st.builds(lambda a, b: f"{a}.{b}", NAMES, NAMES)))
        spec["grid"] = {key: [1, 2]}
        return json.dumps(spec), key
    if kind == "axis values":
        spec["grid"] = {"train.seed": draw(st.one_of(NOT_A_LIST, st.just([])))}
        return json.dumps(spec), "train.seed"
    if kind == "axis repeat":
        value = draw(st.integers(0, 9))
        spec["grid"] = {"train.seed": [value, 11, value]}
        return json.dumps(spec), "train.seed"
    if kind == "fixed and varied":
        spec["train"]["seed"] = 3
        return json.dumps(spec), "train.seed"
    if kind == "axis value":
        spec["grid"] = {"train.steps": [3, draw(NOT_A_POSITIVE_INTEGER)]}
        return json.dumps(spec), "steps"
    if kind == "duplicate key":
        section = draw(st.sampled_from(["train", "grid"]))
        text = json.dumps(spec)
        return text[:-1] + f', "{section}": {json.dumps(spec[section])}}}', section
    if kind == "preset":
        spec["preset"] = draw(st.one_of(NAMES.filter(lambda n: n not in ("paper", "small")), st.integers(),
                                        st.none(), st.lists(st.just("paper"), max_size=1)))
        return json.dumps(spec), "preset"
    spec["name"] = draw(st.one_of(st.just(""), st.just("  "), st.integers(), st.none(),
                                  st.lists(st.just("a"), max_size=1)))
    return json.dumps(spec), "name"


@settings(max_examples=80)        # 16 kinds of fault; each is refused in milliseconds
@given(malformed_specs())
def test_malformed_specs_are_refused_with_the_key_named_and_nothing_written(case):
    text, words = case
    with tempfile.TemporaryDirectory() as folder:
        spec, out = Path(folder) / "spec.json", Path(folder) / "out"
        spec.write_text(text)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["sweep", str(spec), "--out", str(out)])
        message = err.getvalue()
        assert code == 2 and message.count("\n") == 1 and message.startswith("error: "), (text, message)
        assert words in message, (text, message)
        assert not out.exists() and sorted(p.name for p in Path(folder).iterdir()) == ["spec.json"]


def test_run_specs_and_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="non-empty string"):
        RunSpec(" ", MODEL, TASK, tiny(1).train)
    with pytest.raises(TypeError, match="clamps must be a list"):
        RunSpec("x", MODEL, TASK, tiny(1).train, "copy:head=1")
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
        from tinyinduction.sweep import RunSpec, run_dir_name, run_grid
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
