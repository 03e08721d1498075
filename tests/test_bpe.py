"""The BPE tokenizer: pre-split tiling, merges on a corpus worked by hand, the round trip,
determinism and the on-disk cache."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction.tasks import bpe as bpe_module
from tinyinduction.tasks.bpe import BOS, UNK, UNK_CHAR, BPE, cached_bpe, presplit, train_bpe
from tinyinduction.tasks.text import TextConfig, TextTask

CODE = '''import os


def read_config(path, default=None):
    """Return the parsed config at path."""
    if not os.path.exists(path):
        return default
    with open(path) as handle:
        return handle.read().split("\\n")


class ConfigError(Exception):
    def __init__(self, path):
        self.path = path
        super().__init__(f"bad config: {path}")
'''
SAMPLE = train_bpe([CODE] * 3, vocab_size=200)


@given(text=st.text(max_size=200))
def test_presplit_tiles_any_text(text):
    assert "".join(presplit(text)) == text


def test_presplit_keeps_identifiers_whole_with_one_leading_space():
    assert presplit("    self.max_len = x1+ 42\n        return") == \
        ["   ", " self", ".", "max_len", " =", " x1", "+", " 42", "\n        ", "return"]


@given(text=st.text(alphabet=SAMPLE.chars, max_size=200))
def test_round_trip_inside_the_alphabet(text):
    ids = SAMPLE.encode(text)
    assert ids.dtype == np.int16 and (ids.size == 0 or ids.min() >= 2)
    assert SAMPLE.decode(ids) == text


@given(text=st.text(max_size=100))
def test_round_trip_replaces_exactly_the_unknown_characters(text):
    expected = "".join(c if c in SAMPLE.chars else UNK_CHAR for c in text)
    assert SAMPLE.decode(SAMPLE.encode(text)) == expected
    assert np.sum(SAMPLE.encode(text) == UNK) == sum(c not in SAMPLE.chars for c in text)


def test_merges_on_a_corpus_worked_by_hand():
    # pieces: "ab" x1, " ab" x2 (x2 texts); ids: " "=2, a=3, b=4.
    # pair counts (a,b)=6, (" ",a)=4: first ab -> 5; then (" ", ab)=4 -> 6; nothing is left.
    bpe = train_bpe(["ab ab ab"] * 2, vocab_size=50, rare_fraction=0.0)
    assert bpe.chars == " ab" and bpe.merges == [(3, 4), (2, 5)] and bpe.size == 7
    assert bpe.strings[5:] == ["ab", " ab"]
    assert bpe.encode("ab ab").tolist() == [5, 6]
    assert bpe.counts.tolist() == [2, 0, 0, 0, 0, 2, 4]            # BOS once per text
    # a tie goes to the pair of smallest ids: (" ", c) = (2, 5) before (a, b) = (3, 4)
    tie = train_bpe(["ab cd ab cd"], vocab_size=8, rare_fraction=0.0)
    assert tie.merges[0] == (2, 5) and tie.size == 8                 # vocab_size caps the merges
    # merges never cross a piece's edge: "a.b" never merges a with "." or "." with b
    edge = train_bpe(["a.b a.b a.b"], vocab_size=50, rare_fraction=0.0)
    assert all("." not in s or set(s) <= {".", " "} for s in edge.strings[2:])


def test_rare_characters_become_unk_and_never_merge():
    bpe = train_bpe(["xyxyxy\u00e9xy"], vocab_size=20, rare_fraction=0.0)   # e-acute occurs once
    assert "\u00e9" not in bpe.chars
    ids = bpe.encode("xy\u00e9xy")
    assert UNK in ids.tolist() and bpe.decode(ids) == "xy" + UNK_CHAR + "xy"
    assert all(UNK not in pair for pair in bpe.merges)


def test_training_is_deterministic_and_labels_are_printable():
    again = train_bpe([CODE] * 3, vocab_size=200)
    assert again.merges == SAMPLE.merges and again.hash == SAMPLE.hash
    assert SAMPLE.token_labels([BOS, UNK]) == ["<s>", "?"]
    assert SAMPLE.decode([BOS]) == ""
    with pytest.raises(ValueError, match="ids must lie"):
        SAMPLE.decode([SAMPLE.size])


def test_cache_is_keyed_by_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(bpe_module, "cache_directory", lambda: tmp_path)
    first = cached_bpe([CODE], 150, 1e-5)
    files = list(tmp_path.glob("bpe-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["recipe"]["vocab_size"] == 150
    calls = []
    monkeypatch.setattr(bpe_module, "train_bpe", lambda *a, **k: calls.append(a))
    again = cached_bpe([CODE], 150, 1e-5)                    # read back, not learnt again
    assert calls == [] and again.merges == first.merges and again.counts.tolist() == first.counts.tolist()
    monkeypatch.undo()
    monkeypatch.setattr(bpe_module, "cache_directory", lambda: tmp_path)
    cached_bpe([CODE], 160, 1e-5)                            # another size: another file
    cached_bpe([CODE + "x = 1\n"], 150, 1e-5)               # another text: another file
    assert len(list(tmp_path.glob("bpe-*.json"))) == 3
    files[0].write_text("{not json")                         # a damaged file is learnt again
    assert cached_bpe([CODE], 150, 1e-5).merges == first.merges


def test_cached_arrays_are_made_once(tmp_path, monkeypatch):
    monkeypatch.setattr(bpe_module, "cache_directory", lambda: tmp_path)
    calls = []

    def make():
        calls.append(1)
        return np.arange(5), np.arange(3)
    first = bpe_module.cached_arrays("streams-abc", make)
    again = bpe_module.cached_arrays("streams-abc", make)
    assert calls == [1] and [a.tolist() for a in again] == [[0, 1, 2, 3, 4], [0, 1, 2]]
    assert all(a.dtype == np.int16 for a in first + again)


def test_a_vocabulary_smaller_than_the_alphabet_is_refused(tmp_path):
    (tmp_path / "a.py").write_text(CODE * 4)
    (tmp_path / "b.py").write_text(CODE * 4)
    with pytest.raises(ValueError, match="TextConfig.vocab_size"):
        TextTask(TextConfig(source=str(tmp_path / "a.py"), n_ctx=8, vocab_size=10))
    with pytest.raises(ValueError, match="TextConfig.tokenizer"):
        TextConfig(tokenizer="words")


def test_stdlib_bpe_keeps_identifiers_and_compresses():
    task = TextTask(TextConfig())            # the default: BPE-1024 of the stdlib's training files
    fp = task.fingerprint
    assert task.d_vocab == 1024 and fp["tokenizer"] == "bpe" and 2.5 < fp["chars_per_token_heldout"] < 3.5
    assert fp["unk_rate_heldout"] < 1e-3
    line = "        if self.returncode is None:\n"
    assert task.vocab.decode(task.vocab.encode(line)) == line
    assert " self" in [task.vocab.strings[i] for i in task.vocab.encode(line)]
    train_text = task.vocab.decode(task.streams["train"][:5000])
    assert task.vocab.encode(train_text).size < 5000 + 10        # BOS decodes to nothing
