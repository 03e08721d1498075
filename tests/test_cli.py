"""The command line's one error path: one line on stderr, a documented exit code, and
every output path checked before any work."""
import json
import os
import signal

import pytest

from tinyinduction import cli
from tinyinduction import train_state
from tinyinduction.cli import main
from tinyinduction.train import TrainingDiverged

SMALL = ["--preset", "small", "--log-every", "0"]


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a directory")
    return path


@pytest.mark.parametrize("argv, expected", [
    (["train", *SMALL, "--steps", "0", "--out", "{tmp}/run"], "steps = 0"),
    (["train", *SMALL, "--lr", "inf", "--out", "{tmp}/run"], "lr = inf"),
    (["train", *SMALL, "--out", ""], "--out = ''"),
    (["train", *SMALL, "--out", "{file}"], "is a file, not a directory"),
    (["train", *SMALL, "--out", "{file}/run"], "is a file, not a directory"),
    (["train", *SMALL, "--steps", "abc", "--out", "{tmp}/run"], "invalid int value"),
    (["train", *SMALL, "--features", "{tmp}/missing.npy", "--out", "{tmp}/run"], "does not exist"),
    (["train", *SMALL, "--resume", "{tmp}/missing.npz", "--out", "{tmp}/run"], "no such file"),
    (["train", *SMALL, "--resume", "auto", "--overwrite", "--out", "{tmp}/run"], "choose one"),
    (["demo", *SMALL, "--out", "{tmp}/run", "--figure", "{file}/demo.png"], "is a file"),
    (["demo", *SMALL, "--out", "{tmp}/run", "--figure", "{tmp}/demo.txt"], "file type"),
    (["demo", *SMALL, "--out", "{file}", "--figure", "{tmp}/demo.png"], "is a file"),
    (["bench", "--preset", "small", "--repeats", "0"], "n_steps = 0"),
    (["nonsense"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_is_written(tmp_path, a_file, capsys, argv, expected):
    argv = [a.format(tmp=tmp_path, file=a_file) for a in argv]
    assert main(argv) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("raised, code, words", [
    (OSError(28, "No space left on device"), 1, "No space left"),
    (MemoryError(), 1, "out of memory"),
    (PermissionError(13, "Permission denied"), 1, "Permission denied"),
    (TypeError("model_config = {}: must be a ModelConfig"), 2, "model_config"),
    (TrainingDiverged("training diverged: the loss became nan at step 3"), 3, "step 3"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (cli.Terminated(), 143, "SIGTERM"),
    (RuntimeError("a bug"), 4, "internal error, please report it: RuntimeError: a bug"),
])
def test_every_failure_goes_through_one_error_path(monkeypatch, capsys, raised, code, words):
    def command(args):
        raise raised
    monkeypatch.setattr(cli, "cmd_bench", command)
    assert main(["bench"]) == code
    assert words in one_line_error(capsys)


def test_sigterm_outside_training_is_exit_143(monkeypatch, capsys):
    def command(args):
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not stop the command")
    monkeypatch.setattr(cli, "cmd_bench", command)
    assert main(["bench"]) == 143
    assert "SIGTERM" in one_line_error(capsys)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL     # restored afterwards


def test_sigterm_during_training_saves_and_exits_143(tmp_path, monkeypatch, capsys):
    real = train_state.evaluate_all
    calls = []

    def evaluate_all(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_state, "evaluate_all", evaluate_all)
    out = tmp_path / "run"
    # --eval-here: the evaluations (and the signal above) in this process
    assert main(["train", *SMALL, "--steps", "40", "--eval-every", "10", "--out", str(out),
                 "--eval-here"]) == 143
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["step"] == 10
    assert json.loads((out / "history.json").read_text())["step"] == [0, 10]
    monkeypatch.setattr(train_state, "evaluate_all", real)
    assert main(["train", *SMALL, "--steps", "40", "--eval-every", "10", "--out", str(out),
                 "--resume", "auto"]) == 0
    assert json.loads((out / "history.json").read_text())["step"] == [0, 10, 20, 30, 40]


def test_a_second_run_into_the_same_directory_is_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *SMALL, "--steps", "10", "--out", out]) == 0
    history = (tmp_path / "run" / "history.json").read_bytes()
    assert main(["train", *SMALL, "--steps", "10", "--seed", "6", "--out", out]) == 2
    err = one_line_error(capsys)
    assert "train.seed: 5 there, 6 here" in err and "--overwrite" in err
    assert (tmp_path / "run" / "history.json").read_bytes() == history
    assert main(["train", *SMALL, "--steps", "10", "--seed", "6", "--out", out, "--overwrite"]) == 0
    assert (tmp_path / "run.old" / "history.json").read_bytes() == history


def test_a_short_demo_summarises_and_a_second_demo_reuses_it(tmp_path, capsys):
    argv = ["demo", *SMALL, "--steps", "10", "--eval-every", "5", "--out", str(tmp_path / "run"),
            "--figure", str(tmp_path / "fig" / "demo.png")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "phase change          not described" in out and "eval relabel" in out
    assert (tmp_path / "fig" / "demo.png").stat().st_size > 10_000
    history = (tmp_path / "run" / "history.json").read_bytes()
    assert main(argv) == 0
    assert "finished at step 10: nothing to do" in capsys.readouterr().out
    assert (tmp_path / "run" / "history.json").read_bytes() == history


def test_a_ctrl_c_demo_still_summarises_and_continues_next_time(tmp_path, monkeypatch, capsys):
    real = train_state.evaluate_all
    calls = []

    def evaluate_all(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_state, "evaluate_all", evaluate_all)
    argv = ["demo", *SMALL, "--steps", "20", "--eval-every", "5", "--out", str(tmp_path / "run"),
            "--figure", str(tmp_path / "demo.png"), "--eval-here"]   # the signal above, here
    assert main(argv) == 130
    out = capsys.readouterr().out
    assert "interrupted at step 5" in out and "final training loss" in out
    assert (tmp_path / "demo.png").exists()
    monkeypatch.setattr(train_state, "evaluate_all", real)
    assert main(argv) == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "history.json").read_text())["step"] == [0, 5, 10, 15, 20]


def test_a_figure_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "demo.png").mkdir()        # a directory where the file would go
    assert main(["demo", *SMALL, "--steps", "10", "--out", str(tmp_path / "run"),
                 "--figure", str(tmp_path / "figures" / "demo.png")]) == 2
    assert "is a directory" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_parser_lists_every_command_and_exit_codes():
    parser = cli.build_parser()
    text = parser.format_help()
    for command in ("demo", "train", "bench", "toy"):
        assert command in text
    assert "143 SIGTERM" in text and "2 bad input" in text
