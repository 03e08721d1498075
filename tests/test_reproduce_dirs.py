"""`reproduce` never overwrites, mislabels or half-writes its results: a DIR belongs to one
experiment at one setting, figures of any run but the paper's default go under its DIR
with the setting in their titles, everything is checked before anything is written, and
a stop writes no results (the same command finishes)."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from tinyinduction.cli import main
from tinyinduction.experiments import heads as heads_experiment
from tinyinduction.experiments import setups

SHORT_QUICK_STEPS = 200      # the quick setting's 1,500 steps are not needed to test directories


@pytest.fixture
def short_quick(monkeypatch):
    monkeypatch.setattr(setups, "QUICK_STEPS", SHORT_QUICK_STEPS)


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file()}


def test_a_dir_of_another_experiment_or_setting_is_refused_and_figures_say_their_seed(
        tmp_path, capsys, monkeypatch, short_quick):
    titles = []
    real_savefig = Figure.savefig

    def savefig(fig, *args, **kwargs):       # every figure (and GIF frame) the run draws
        titles.append(" | ".join([fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]))
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "heads"
    assert main(["reproduce", "heads", "--quick", "--seed", "7", "--out", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["meta"]["figures"] and all(Path(f).parent == out / "figures"
                                              for f in results["meta"]["figures"])
    assert titles and all("seed 7" in title for title in titles), titles
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    before = snapshot(out)
    for argv, words in [(["heads", "--quick", "--seed", "6"], "seed: 7 there, 6 here"),
                        (["strength", "--quick", "--seed", "7"], "experiment: 'heads' there, 'strength' here"),
                        (["heads", "--quick", "--seed", "7", "--features", "builtin:rank=8"],
                         "features: null there, 'builtin:rank=8' here"),
                        (["heads", "--seed", "7"], "quick: true there, false here")]:
        assert main(["reproduce", *argv, "--out", str(out)]) == 2
        assert words in one_line_error(capsys)
        assert snapshot(out) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a reproduce directory")
    assert main(["reproduce", "heads", "--quick", "--out", str(other)]) == 2
    assert "holds no reproduce.json" in one_line_error(capsys)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("options, figures", [
    ([], "figures"),                                       # the paper's setting: the repository's
    (["--seed", "6"], "runs/reproduce/heads_seed=6/figures"),
    (["--out", "mine"], "mine/figures"),
    (["--features", "builtin:rank=8"], "runs/reproduce/heads_features=builtin_rank=8-{hash}/figures"),
    (["--seed", "6", "--figures", "chosen"], "chosen"),
])
def test_only_the_default_run_draws_the_repository_figures(tmp_path, monkeypatch, capsys, options, figures):
    seen = {}

    def run(ctx):      # where base.run_experiment routes this setting's figures; no training
        seen["figures"], seen["note"] = ctx.figures, ctx.figure_note
        return {}

    monkeypatch.setattr(heads_experiment, "run", run)
    monkeypatch.setattr(heads_experiment, "table", lambda results: [])
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "heads", *options]) == 0
    from tinyinduction.sweep import run_dir_name
    expected = figures.replace("heads_features=builtin_rank=8-{hash}",
                               run_dir_name("heads_features=builtin:rank=8"))
    assert seen["figures"] == Path(expected)
    assert seen["note"] == {"": "", "6": "seed 6", "builtin:rank=8": "features builtin:rank=8",
                            "mine": ""}.get(options[1] if options else "", "seed 6")


def test_a_refused_command_leaves_the_directory_as_it_found_it(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "g", "preset": "small", "clamps": ["match:head=9"],
                                "train": {"steps": 5, "eval_every": 5},
                                "grid": {"train.seed": [1, 2]}}))
    out = tmp_path / "grid"
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert "head = 9 is out of range" in one_line_error(capsys)
    assert not out.exists()
    spec.write_text(spec.read_text().replace("head=9", "head=1"))      # corrected: same --out
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    before = snapshot(out)
    for argv, words in [(["sweep", str(spec), "--scheduler", "tcp://127.0.0.1:9"], "--scheduler"),
                        (["sweep", str(spec), "--jobs", "0"], "--jobs"),
                        (["sweep", str(spec), "--clamp", "A"], "not both")]:
        assert main(argv + ["--out", str(out)]) == 2
        assert words in one_line_error(capsys)
        assert snapshot(out) == before
    fresh = tmp_path / "fresh"
    assert main(["reproduce", "heads", "--quick", "--scheduler", "tcp://127.0.0.1:9", "--out",
                 str(fresh)]) == 2
    assert "--scheduler" in one_line_error(capsys) and not fresh.exists()


def test_a_stopped_reproduce_writes_no_results_and_the_same_command_finishes(tmp_path, capsys, short_quick):
    reference = tmp_path / "reference"
    assert main(["reproduce", "seeds", "--quick", "--out", str(reference)]) == 0
    out = tmp_path / "stopped"

    def terminate_once_training():
        deadline = time.time() + 60
        while not (out / "runs" / "seed=5" / "history.json").exists() and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_training, daemon=True).start()
    assert main(["reproduce", "seeds", "--quick", "--out", str(out)]) == 143
    err = one_line_error(capsys)
    assert "stopped by SIGTERM" in err and "run the same command again to continue" in err
    assert not (out / "results.json").exists() and not (out / "table.md").exists()
    assert json.loads((out / "runs" / "seed=5" / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "runs" / "seed=6").exists() and not (out / "runs" / "seed=7").exists()
    assert main(["reproduce", "seeds", "--quick", "--out", str(out)]) == 0

    def results(directory):
        value = json.loads((directory / "results.json").read_text())
        value.pop("meta")
        return value

    assert results(out) == results(reference)


def test_a_stop_ends_reproduce_all_and_the_same_command_continues(tmp_path, short_quick):
    from tinyinduction.experiments import report
    from tinyinduction.sweep import GridStopped
    names = ["seeds", "heads"]

    def terminate_once_training():
        deadline = time.time() + 60
        while not (tmp_path / "seeds_quick" / "runs" / "seed=5" / "history.json").exists() \
                and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_training, daemon=True).start()
    with pytest.raises(GridStopped, match="stopped by SIGTERM"):
        report.run_all(quick=True, out=tmp_path, names=names, log=lambda *a: None)
    assert not (tmp_path / "seeds_quick" / "results.json").exists()
    assert not (tmp_path / "heads_quick").exists() and not (tmp_path / "REPORT.md").exists()
    page = report.run_all(quick=True, out=tmp_path, names=names, log=lambda *a: None)
    assert page == tmp_path / "REPORT.md" and page.exists()
    assert (tmp_path / "seeds_quick" / "results.json").exists() and (tmp_path / "heads_quick" / "results.json").exists()
