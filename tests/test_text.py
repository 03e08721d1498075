"""The text corpus: the character tokenizer's round trip, the file-level split, windows,
fingerprint, errors (the BPE tokenizer: test_bpe.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction.config import ModelConfig
from tinyinduction.tasks.text import (BOS, UNK, UNK_CHAR, TextConfig, TextTask, Vocabulary,
                                      is_heldout)

ALPHABET = "abcdefghij \n:()_=0123456789"
VOCAB = Vocabulary("".join(sorted(set(ALPHABET))))


@given(text=st.text(alphabet=ALPHABET, max_size=200))
def test_round_trip_inside_the_vocabulary(text):
    ids = VOCAB.encode(text)
    assert ids.shape == (len(text),) and ids.min(initial=2) >= 2
    assert VOCAB.decode(ids) == text


@given(text=st.text(max_size=100))
def test_round_trip_replaces_exactly_the_unknown_characters(text):
    expected = "".join(c if c in VOCAB.chars else UNK_CHAR for c in text)
    assert VOCAB.decode(VOCAB.encode(text)) == expected
    assert np.sum(VOCAB.encode(text) == UNK) == sum(c not in VOCAB.chars for c in text)


def test_bos_decodes_to_nothing_and_labels_are_printable():
    assert VOCAB.decode([BOS, 2, BOS]) == VOCAB.chars[0]
    assert VOCAB.token_labels([BOS, UNK]) == ["<s>", "?"]
    with pytest.raises(ValueError, match="ids must lie"):
        VOCAB.decode([VOCAB.size])


def write_files(root, n_files=24):
    """File i holds 'fileNN ' repeated: any 7-character piece names its file."""
    texts = {}
    for i in range(n_files):
        name = f"dir{i % 3}/f{i:02d}.txt"
        texts[name] = f"file{i:02d} " * 40
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(texts[name])
    return texts


def test_windows_never_cross_the_train_heldout_split(tmp_path):
    texts = write_files(tmp_path)
    fraction = 0.3
    heldout = {n for n in texts if is_heldout(n, fraction)}
    assert 0 < len(heldout) < len(texts)      # the drawn names fall on both sides
    task = TextTask(TextConfig(source=str(tmp_path), n_ctx=16, heldout_fraction=fraction,
                               eval_windows=64))
    assert task.fingerprint["heldout_files"] == len(heldout)
    batches = {"train": task.sample(np.random.default_rng(0), 200),
               "heldout": task.sample(np.random.default_rng(0), 200, split="heldout")}
    batches.update({f"eval {k}": v for k, v in task.eval_sets().items() if k != "heldout_repeated"})
    for label, batch in batches.items():
        own = heldout if "heldout" in label else set(texts) - heldout
        np.testing.assert_array_equal(batch.tokens[:, 1:], batch.targets[:, :-1])
        for window in np.concatenate([batch.tokens, batch.targets[:, -1:]], axis=1):
            for piece in task.vocab.decode(np.where(window == BOS, 2, window)).split(task.vocab.chars[0]):
                if len(piece) >= 7:   # long enough to name its file
                    assert any(piece in texts[n] for n in own), (label, piece)
                    assert not any(piece in texts[n] for n in set(texts) - own), (label, piece)


def test_split_is_by_file_hash_and_stable():
    names = [f"pkg/module_{i}.py" for i in range(2000)]
    share = np.mean([is_heldout(n, 0.1) for n in names])
    assert 0.07 < share < 0.13
    assert [is_heldout(n, 0.1) for n in names[:50]] == [is_heldout(n, 0.1) for n in names[:50]]


def test_sampler_is_seeded_and_eval_sets_fixed(tmp_path):
    write_files(tmp_path)
    task = TextTask(TextConfig(source=str(tmp_path), n_ctx=8, heldout_fraction=0.3, eval_windows=5))
    a, b = (task.sample(np.random.default_rng(3), 4) for _ in range(2))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.tokens.shape == a.targets.shape == (4, 8)
    e1, e2 = task.eval_sets(), task.eval_sets()
    np.testing.assert_array_equal(e1["heldout"].tokens, e2["heldout"].tokens)
    assert set(e1) == {"heldout", "train", "heldout_repeated"}


def test_single_file_is_split_by_position(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("abcdefghij" * 100)
    task = TextTask(TextConfig(source=str(path), n_ctx=8, heldout_fraction=0.2, tokenizer="chars"))
    assert task.fingerprint["files"] == 1
    assert task.streams["heldout"].size == 1 + 200 and task.streams["train"].size == 1 + 800


def test_rare_characters_become_unk(tmp_path):
    (tmp_path / "a.txt").write_text("ab" * 500 + "\u00e9")      # one e-acute in 1001 characters
    task = TextTask(TextConfig(source=str(tmp_path / "a.txt"), n_ctx=4, rare_fraction=0.01, tokenizer="chars"))
    assert "\u00e9" not in task.vocab.chars and set(task.vocab.chars) == {"a", "b"}


def test_stdlib_corpus_fingerprint():
    task = TextTask(TextConfig())
    fp = task.fingerprint
    assert fp["source"].startswith("stdlib:") and fp["files"] > 100 and fp["characters"] > 10**6
    assert fp["train_files"] + fp["heldout_files"] == fp["files"]
    assert set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n()[]{}:=._") \
        <= set(task.vocab.chars)
    assert len(fp["sha256"]) == 16 and fp["vocab_hash"] == task.vocab.hash
    assert task.vocab.decode(task.vocab.encode("def f(x):\n    return x")) == "def f(x):\n    return x"


@pytest.mark.parametrize("make, match", [
    (lambda p: TextConfig(source=str(p / "missing")), "no such file"),
    (lambda p: TextConfig(source=str(p / "empty")), "holds no text files"),
    (lambda p: TextConfig(source=str(p / "short.txt"), n_ctx=64), "fewer than one window"),
])
def test_bad_text_sources_fail_in_one_line(tmp_path, make, match):
    (tmp_path / "empty").mkdir()
    (tmp_path / "short.txt").write_text("x = 1\n" * 5)
    with pytest.raises(ValueError, match=match) as error:
        TextTask(make(tmp_path))
    assert "\n" not in str(error.value) and "--text" in str(error.value)


@pytest.mark.parametrize("field, value", [("n_ctx", 1), ("n_ctx", 3.5), ("heldout_fraction", 1.0),
                                          ("rare_fraction", -0.1), ("source", ""), ("eval_windows", 0)])
def test_bad_text_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TextConfig.{field}"):
        TextConfig(**{field: value})


def test_model_that_does_not_fit_the_text_is_refused(tmp_path):
    write_files(tmp_path)
    task = TextTask(TextConfig(source=str(tmp_path), n_ctx=16, heldout_fraction=0.3))
    good = ModelConfig(input_kind="tokens", d_vocab=task.d_vocab, n_ctx=16, positional="learned")
    task.check_model(good)
    with pytest.raises(ValueError, match="vocabulary"):
        task.check_model(good.replace(d_vocab=task.d_vocab + 1))
    with pytest.raises(ValueError, match="position table"):
        task.check_model(good.replace(n_ctx=8))


def period_of(window):
    """The smallest r >= 4 with window[i] == window[i - r] everywhere, or None."""
    for r in range(4, len(window) // 2 + 1):
        if np.array_equal(window[r:], window[:-r]):
            return r
    return None


def test_repeated_windows_repeat_real_text_at_a_random_period(tmp_path):
    rng = np.random.default_rng(0)   # aperiodic text, so that the only period is the repeat's
    texts = {f"f{i}.txt": "".join(rng.choice(list("abcdefghij"), 300)) for i in range(12)}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    task = TextTask(TextConfig(source=str(tmp_path), n_ctx=31, heldout_fraction=0.3, repeat_fraction=1.0, tokenizer="chars"))
    batch = task.sample(np.random.default_rng(0), 300)
    windows = np.concatenate([batch.tokens, batch.targets[:, -1:]], axis=1)          # [B, 32]
    periods = [period_of(w) for w in windows]
    assert None not in periods and set(periods) == set(range(4, 17))           # every span 4..16 drawn
    train_text = "".join(t for n, t in texts.items() if not is_heldout(n, 0.3))
    for window, period in zip(windows[:50], periods):
        span = task.vocab.decode(window[:period])
        assert BOS in window[:period] or span in train_text
    half = TextTask(TextConfig(source=str(tmp_path), n_ctx=31, heldout_fraction=0.3, repeat_fraction=0.5, tokenizer="chars"))
    mixed = half.sample(np.random.default_rng(1), 400)
    share = np.mean([period_of(w) is not None for w in np.concatenate([mixed.tokens, mixed.targets[:, -1:]], 1)])
    assert 0.4 < share < 0.6
    repeated = task.eval_sets()["heldout_repeated"]
    assert all(period_of(w) for w in np.concatenate([repeated.tokens, repeated.targets[:, -1:]], 1))
