"""Input that used to be silently ignored or half-read is refused in one line, naming what
is wrong, before anything is written: duplicated keys and options, text paths that are
not text."""
import pytest

from tinyinduction.cli import main


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


SMALL = ["--preset", "small", "--steps", "5", "--log-every", "0"]


@pytest.mark.parametrize("argv, words", [
    (["train", *SMALL, "--clamp", "match:head=0,head=1,s=0.8"], "head is given twice"),
    (["train", *SMALL, "--features", "builtin:rank=4:rank=8"], "rank is given twice"),
    (["train", *SMALL, "--only-head", "1:0", "--only-head", "1:1"], "more than once for layer 1"),
    (["sweep", "--preset", "small", "--grid", "train.seed=1,2", "--grid", "train.seed=3"],
     "train.seed is given twice"),
    (["sweep", "--preset", "small", "--grid", "train.seed=1,1"], "axis train.seed: 1 is given twice"),
])
def test_duplicated_keys_and_options_are_refused(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    assert main(argv + ["--out", str(out)]) == 2
    assert words in one_line_error(capsys)
    assert not out.exists()


def test_text_paths_that_are_not_text_are_refused(tmp_path, capsys):
    (tmp_path / "nul.bin").write_bytes(b"def f():\n    return 1\n\0\0\0" * 200)
    (tmp_path / "latin1.bin").write_bytes(bytes(range(128, 256)) * 100)
    (tmp_path / "fine.txt").write_text("caf\u00e9 = 1\n" * 400)
    for text, words in [("", "give the path of a text file"), ("   ", "give the path of a text file"),
                        (str(tmp_path / "nul.bin"), "not a text file"),
                        (str(tmp_path / "latin1.bin"), "not a text file")]:
        out = tmp_path / "out"
        assert main(["reproduce", "olsson", "--quick", "--text", text, "--out", str(out)]) == 2
        assert words in one_line_error(capsys)
        assert not out.exists()
    from tinyinduction.tasks.text import list_files
    assert list_files(str(tmp_path / "fine.txt"))[1] == [tmp_path / "fine.txt"]
    assert list_files(str(tmp_path))[1] == [tmp_path / "fine.txt"]    # the others skipped
