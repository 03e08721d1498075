"""Run directories: one run per directory, resume that checks everything, auto-resume."""
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinyinduction.checkpoint import load_checkpoint, load_params
from tinyinduction.clamp import zero_ablate_head
from tinyinduction.jsonio import load_history
from tinyinduction.presets import preset
from tinyinduction.runs import RunDirectoryConflict, check_output_dir, check_output_file
from tinyinduction.train import train

from run_helpers import quiet, short_run as _short, without_wall_time


def snapshot(folder):
    """Every file under folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- one run per directory


def test_a_different_run_is_refused_and_the_first_is_intact(tmp_path):
    run_dir = tmp_path / "run"
    model, task, train_config = _short(steps=40)
    train(model, task, train_config, out_dir=run_dir, log=quiet)
    before = snapshot(run_dir)

    with pytest.raises(RunDirectoryConflict) as refused:
        train(model, task, train_config.replace(seed=6), out_dir=run_dir, log=quiet)
    message = str(refused.value)
    assert "\n" not in message and "train.seed: 5 there, 6 here" in message
    assert "--overwrite" in message and "--resume" in message
    with pytest.raises(RunDirectoryConflict, match="clamps"):
        train(model, task, train_config, out_dir=run_dir, clamps=[zero_ablate_head(0, 0)], log=quiet)
    # the same run again without resume would rewrite its record: refused too
    with pytest.raises(RunDirectoryConflict, match="already holds this run.*--resume auto"):
        train(model, task, train_config, out_dir=run_dir, log=quiet)
    assert snapshot(run_dir) == before

    # overwrite moves the old run aside, whole, and never deletes it
    result = train(model, task, train_config.replace(seed=6), out_dir=run_dir, overwrite=True, log=quiet)
    assert snapshot(tmp_path / "run.old") == before
    assert json.loads((run_dir / "run.json").read_text())["identity"]["train"]["seed"] == 6
    assert load_history(run_dir / "history.json")["train/loss"] == result.history["train/loss"]


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    model, task, train_config = _short(steps=20)
    for overwrite in (False, True):
        with pytest.raises(RunDirectoryConflict, match="not a run directory"):
            train(model, task, train_config, out_dir=tmp_path, overwrite=overwrite, log=quiet)
    assert snapshot(tmp_path) == {"notes.txt": b"mine"}


def test_a_run_of_an_older_version_is_refused_or_moved_aside_by_auto(tmp_path):
    old_run = tmp_path / "run"
    (old_run / "checkpoints").mkdir(parents=True)
    (old_run / "config.json").write_text("{}")
    (old_run / "history.json").write_text('{"step": [0]}')
    before = snapshot(old_run)
    model, task, train_config = _short(steps=20)
    with pytest.raises(RunDirectoryConflict, match="holds no run.json.*--resume auto moves"):
        train(model, task, train_config, out_dir=old_run, log=quiet)
    lines = []
    train(model, task, train_config, out_dir=old_run, resume="auto", log=lines.append)
    assert snapshot(tmp_path / "run.old") == before and "moved the previous run" in lines[0]
    assert json.loads((old_run / "run.json").read_text())["status"] == "finished"


def test_output_paths_are_checked(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad, reason in (("", "non-empty"), (a_file, "is a file"), (a_file / "sub", "is a file")):
        with pytest.raises(ValueError, match=reason):
            check_output_dir(bad, "--out")
    with pytest.raises(ValueError, match="is a file"):
        check_output_file(a_file / "figure.png", "--figure", ("png",))
    with pytest.raises(ValueError, match="file type"):
        check_output_file(tmp_path / "figure.txt", "--figure", ("png",))
    with pytest.raises(ValueError, match="is a directory"):
        check_output_file(tmp_path, "--figure", ("png",))
    if Path("/sys/kernel").is_dir():            # Linux: read-only even for root
        with pytest.raises(ValueError, match="cannot write into '/sys'"):
            check_output_dir("/sys/tinyinduction-run", "--out")
    assert check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()          # checking creates nothing


def test_stale_temporary_files_are_removed_when_a_run_opens_its_directory(tmp_path):
    model, task, train_config = _short(steps=20)
    train(model, task, train_config, out_dir=tmp_path, log=quiet)
    (tmp_path / "history.json.tmp").write_text("{")            # as a SIGKILL would leave
    (tmp_path / "checkpoints" / "step_40.npz.tmp").write_bytes(b"half")
    train(model, task, train_config.replace(steps=40), out_dir=tmp_path, resume="auto", log=quiet)
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- resume="auto"


def test_auto_returns_a_finished_run_at_once_and_changes_nothing(tmp_path):
    model, task, train_config = _short(steps=40)
    first = train(model, task, train_config, out_dir=tmp_path, log=quiet)
    before = snapshot(tmp_path)
    lines = []
    again = train(model, task, train_config, out_dir=tmp_path, resume="auto", log=lines.append)
    assert "nothing to do" in lines[-1] and again.status == "finished" and again.step == 40
    assert again.history == first.history
    for name, value in first.params.items():
        np.testing.assert_array_equal(again.params[name], value)
    assert snapshot(tmp_path) == before


def test_auto_starts_fresh_and_extends_a_finished_run(tmp_path):
    model, task, train_config = _short(steps=60)
    full = train(model, task, train_config, log=quiet)
    train(model, task, train_config.replace(steps=40), out_dir=tmp_path / "x", resume="auto", log=quiet)
    extended = train(model, task, train_config, out_dir=tmp_path / "x", resume="auto", log=quiet)
    assert without_wall_time(extended.history) == without_wall_time(full.history)
    record = json.loads((tmp_path / "x" / "run.json").read_text())
    assert record["status"] == "finished" and record["step"] == 60


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from tinyinduction.presets import preset
    from tinyinduction.train import train
    model, task, config = preset("small")
    config = config.replace(steps=80, eval_every=10, checkpoint_every=20, log_every=10)
    def log(line):
        if line.startswith("step     50"):
            os.kill(os.getpid(), signal.SIGKILL)     # no handler, no cleanup: a hard kill
    train(model, task, config, out_dir=sys.argv[1], resume="auto", log=log)
""")


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_history(tmp_path):
    run_dir = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(run_dir)], capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert load_history(run_dir / "history.json")["step"][-1] == 50     # written at every evaluation
    model, task, config = preset("small")
    config = config.replace(steps=80, eval_every=10, checkpoint_every=20, log_every=0)
    lines = []
    resumed = train(model, task, config, out_dir=run_dir, resume="auto", log=lines.append)
    assert any("resumed from" in line and "step_40.npz" in line for line in lines)
    full = train(model, task, config, log=quiet)
    assert without_wall_time(resumed.history) == without_wall_time(full.history)
    for name, value in full.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)


# ---------------------------------------------------------------- resume checks everything


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    model, task, train_config = _short(steps=40)
    train(model, task, train_config, out_dir=run_dir, log=quiet)
    return run_dir


@pytest.mark.parametrize("change, field", [
    ({"seed": 6}, "train.seed"), ({"batch_size": 16}, "train.batch_size"),
    ({"lr": 2e-3}, "train.lr"), ({"eval_every": 10}, "train.eval_every"),
])
def test_resume_refuses_a_setting_that_shapes_the_trajectory(finished_run, tmp_path, change, field):
    model, task, train_config = _short(steps=80)
    with pytest.raises(ValueError, match=f"different run.*{field}"):
        train(model, task, train_config.replace(**change), out_dir=tmp_path / "next",
              resume=finished_run / "checkpoints" / "step_40.npz", log=quiet)
    assert not (tmp_path / "next").exists()


def test_resume_refuses_other_clamps_and_other_features(finished_run, tmp_path):
    model, task, train_config = _short(steps=80)
    ckpt = finished_run / "checkpoints" / "step_40.npz"
    with pytest.raises(ValueError, match="clamps"):
        train(model, task, train_config, resume=ckpt, clamps=[zero_ablate_head(0, 1)], log=quiet)
    table = np.random.default_rng(0).random((30, 5, 512)).astype(np.float32)
    np.save(tmp_path / "table.npy", table)
    with pytest.raises(ValueError, match="task.features|features.sha256"):
        train(model, dataclasses.replace(task, features=str(tmp_path / "table.npy")),
              train_config, resume=ckpt, log=quiet)


def test_steps_below_the_checkpoint_is_an_error_and_the_record_is_untouched(finished_run):
    model, task, train_config = _short(steps=20)
    before = snapshot(finished_run)
    for resume in (finished_run / "checkpoints" / "step_40.npz", "auto"):
        with pytest.raises(ValueError, match=r"steps = 20 .*below .*\(40\).*cannot be shortened"):
            train(model, task, train_config, out_dir=finished_run, resume=resume, log=quiet)
    assert snapshot(finished_run) == before


def _broken(ckpt, entry):
    """The checkpoint's arrays with one entry made wrong."""
    arrays = {f"param/{k}": v for k, v in ckpt["params"].items()}
    arrays.update(ckpt["optimizer"])
    arrays.update(accumulator=ckpt["accumulator"], data_rng=np.array(json.dumps(ckpt["data_rng"])),
                  history=np.array(json.dumps(ckpt["history"])),
                  identity=np.array(json.dumps(ckpt["identity"])), step=ckpt["step"])
    m = ckpt["optimizer"]["adam.m"]
    broken = {
        "adam.m": m[:-3],
        "adam.v": -np.ones_like(m),
        "adam.t": np.array(2.5),
        "data_rng": np.array('{"bit_generator": "PCG64", "state": 3}'),
        "history": np.array('{"step": [0, 20, 40], "train/loss": [1.0]}'),
        "accumulator": np.zeros(2),
        "param/unembed.W_U": np.full_like(ckpt["params"]["unembed.W_U"], np.nan),
        "param/blocks.0.attn.W_Q": ckpt["params"]["blocks.0.attn.W_Q"][:1],
        "identity": np.array("[1, 2"),
    }
    arrays[entry] = broken[entry]
    return arrays


def test_a_checkpoint_holds_its_configs_once_and_refuses_one_without_a_model(finished_run, tmp_path):
    """The configs live in the identity only; a checkpoint whose identity lacks the model
    is refused by --resume and by load_params alike."""
    path = finished_run / "checkpoints" / "step_40.npz"
    with np.load(path) as data:
        assert "configs" not in data.files
    ckpt = load_checkpoint(path)
    assert ckpt["configs"] == {key: ckpt["identity"][key] for key in ("model", "task", "train")}
    arrays = _broken(ckpt, "adam.m")
    arrays["adam.m"] = ckpt["optimizer"]["adam.m"]
    arrays["identity"] = np.array(json.dumps({k: v for k, v in ckpt["identity"].items() if k != "model"}))
    bad = tmp_path / "no_model.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="entry identity has no model config"):
        load_params(bad)
    model, task, train_config = _short(steps=60)
    with pytest.raises(ValueError, match="no model config"):
        train(model, task, train_config, out_dir=tmp_path / "resumed", resume=bad, log=quiet)


@pytest.mark.parametrize("entry", ["adam.m", "adam.v", "adam.t", "data_rng", "history", "accumulator",
                                   "param/unembed.W_U", "param/blocks.0.attn.W_Q", "identity"])
def test_a_malformed_checkpoint_entry_is_refused_before_anything_is_touched(finished_run, tmp_path, entry):
    ckpt = load_checkpoint(finished_run / "checkpoints" / "step_40.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, **_broken(ckpt, entry))
    model, task, train_config = _short(steps=80)
    with pytest.raises(ValueError) as refused:
        train(model, task, train_config, out_dir=tmp_path / "next", resume=bad, log=quiet)
    message = str(refused.value)
    assert "\n" not in message and entry.split("/")[-1] in message, message
    assert not (tmp_path / "next").exists()


def test_the_unbroken_checkpoint_resumes(finished_run, tmp_path):
    """The control for the test above: the same rebuilt arrays, nothing broken, resume."""
    ckpt = load_checkpoint(finished_run / "checkpoints" / "step_40.npz")
    arrays = _broken(ckpt, "identity")
    arrays["identity"] = np.array(json.dumps(ckpt["identity"]))
    np.savez(tmp_path / "good.npz", **arrays)
    model, task, train_config = _short(steps=60)
    result = train(model, task, train_config, resume=tmp_path / "good.npz", log=quiet)
    assert result.history["step"] == [0, 20, 40, 60]


def test_a_checkpoint_from_another_model_is_refused(finished_run):
    model, task, train_config = _short(steps=80)
    with pytest.raises(ValueError, match="parameter|missing"):
        train(model.replace(d_model=16), task, train_config,
              resume=finished_run / "checkpoints" / "step_40.npz", log=quiet)


def test_a_checkpoint_records_its_identity_and_step(finished_run):
    ckpt = load_checkpoint(finished_run / "checkpoints" / "step_40.npz")
    assert int(ckpt["step"]) == 40 and ckpt["identity"]["train"]["seed"] == 5
    assert ckpt["identity"]["features"]["shape"] == [1623, 5, 512]
    assert len(ckpt["identity"]["features"]["sha256"]) == 64
