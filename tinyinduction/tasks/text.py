"""Real text for token models: the Python standard library's own source, or yours.

    task = TextTask(TextConfig())                 # the running interpreter's stdlib, BPE-1024
    task = TextTask(TextConfig(source="my/dir"))  # any text file or directory (--text PATH)
    task = TextTask(TextConfig(tokenizer="chars"))  # one token per character
    batch = task.sample(rng, 32)                  # model.TokenBatch, tokens/targets [B, T]
    task.eval_sets()                              # fixed windows: heldout, train, heldout_repeated
    task.fingerprint                              # files, characters, sha256, vocabulary hash

Corpus. source="stdlib" reads every ``*.py`` file under ``sysconfig``'s stdlib directory
except those under ``site-packages`` and test directories (``test``, ``tests``,
``idle_test``: they hold deliberately odd encodings and generated data), and except the
files that are tables rather than code (NOT_CODE: ``encodings/``, ``pydoc_data/``,
``html/entities.py``; codec tables, generated help text, a list of HTML entities):
~610 files, ~10 million characters on CPython 3.11, no download. A path reads that file, or every
text file under that directory (hidden entries skipped). A file with a NUL byte, or more
than 10% undecodable as UTF-8, is not text: skipped in a directory, refused alone.
Files are read as UTF-8; undecodable bytes become U+FFFD.

Split. A file is held out when the first 8 bytes of sha256(its relative path), as an
integer, fall below ``heldout_fraction`` of 2^64: deterministic, independent of which
other files exist, and never splits a file. A single file cannot be split by file:
its last ``heldout_fraction`` of characters is held out instead.

Tokens. Token 0 is BOS (start of text; also put before every file), token 1 is UNK;
then every character whose count in the *training* files is at least
max(2, ceil(rare_fraction x training characters)), in code-point order. Rarer characters,
and characters seen only in held-out files, become UNK (decoded as U+FFFD). With the
default 1e-5 the stdlib of CPython 3.11 keeps 96 characters (printable ASCII and
newline). tokenizer="chars" stops there (Vocabulary); tokenizer="bpe" (the default) adds
byte-pair merges learnt on the training files up to vocab_size tokens (tasks/bpe.py;
cached under a hash of its recipe, so it is learnt once per text and size).

Windows. Each split is one token stream: BOS, file 1, BOS, file 2, ... A window is
n_ctx + 1 consecutive tokens of one stream (tokens = window[:-1], targets =
window[1:]), so a window never mixes training and held-out text. Starts are uniform
over the stream; a window may cross a file boundary inside its split (the BOS between
files marks it).

Repeated windows. With repeat_fraction > 0 that share of the training windows is made
to repeat its own first r tokens (r uniform in 4 .. (n_ctx + 1) // 2, drawn per window):
real text in which copying from earlier in the window always pays (repeat_windows). The
evaluation set "heldout_repeated" holds held-out windows made that way.

Shapes: B windows, T = n_ctx positions, V vocabulary size.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batches import TokenBatch
from .bpe import cached_arrays, cached_bpe

BOS, UNK = 0, 1
UNK_CHAR = "\ufffd"
STDLIB = "stdlib"
_SKIPPED_DIRS = {"site-packages", "test", "tests", "idle_test", "__pycache__"}
NOT_CODE = ("encodings/", "pydoc_data/", "html/entities.py")   # stdlib tables: paths starting so
TOKENIZERS = ("bpe", "chars")
EVAL_SET_NAMES = ("heldout", "train")   # plain windows; eval_sets() adds "heldout_repeated"
REPEAT_MIN_SPAN = 4


def _fail(field, value, allowed):
    raise ValueError(f"TextConfig.{field} = {value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class TextConfig:
    """Which text, how it is cut into windows, and the fixed evaluation windows."""

    source: str = STDLIB            # "stdlib" or a path to a text file or directory
    n_ctx: int = 64                 # T: positions per window
    heldout_fraction: float = 0.1   # share of files (or, for one file, of characters) held out
    rare_fraction: float = 1e-5     # characters rarer than this in training text -> UNK
    eval_windows: int = 256         # windows in each fixed evaluation set
    eval_seed: int = 1234
    repeat_fraction: float = 0.0    # share of training windows that repeat a span of real text
    tokenizer: str = "bpe"          # "bpe" (byte-pair encoding of the training files) or "chars"
    vocab_size: int = 1024          # tokens of the BPE, BOS and UNK included (tokenizer="bpe" only)

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source.strip():
            _fail("source", self.source, "'stdlib' or the path of a text file or directory")
        if self.tokenizer not in TOKENIZERS:
            _fail("tokenizer", self.tokenizer, f"must be one of {', '.join(TOKENIZERS)}")
        for field, low in (("n_ctx", 2), ("eval_windows", 1), ("vocab_size", 3)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                _fail(field, value, f"must be an integer >= {low}")
            object.__setattr__(self, field, int(value))
        if isinstance(self.eval_seed, bool) or not isinstance(self.eval_seed, numbers.Integral) \
                or self.eval_seed < 0:
            _fail("eval_seed", self.eval_seed, "must be a non-negative integer")
        if not isinstance(self.heldout_fraction, numbers.Real) or not 0 < self.heldout_fraction < 1:
            _fail("heldout_fraction", self.heldout_fraction, "must be in (0, 1)")
        if not isinstance(self.rare_fraction, numbers.Real) or not 0 <= self.rare_fraction < 1:
            _fail("rare_fraction", self.rare_fraction, "must be in [0, 1)")
        if isinstance(self.repeat_fraction, bool) or not isinstance(self.repeat_fraction, numbers.Real) \
                or not 0 <= self.repeat_fraction <= 1:
            _fail("repeat_fraction", self.repeat_fraction, "must be in [0, 1]")
        if self.repeat_fraction > 0 and self.n_ctx + 1 < 2 * REPEAT_MIN_SPAN:
            _fail("n_ctx", self.n_ctx, f"must be at least {2 * REPEAT_MIN_SPAN - 1} with repeated "
                  f"windows (a span of {REPEAT_MIN_SPAN} tokens must fit twice)")

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def make_task(self) -> "TextTask":
        """The task of this config (what the sweep runner calls in each worker)."""
        return TextTask(self)


# ---------------------------------------------------------------- reading files


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


TEXT_SAMPLE_BYTES = 65536     # how much of a file decides whether it is text
MAX_UNDECODABLE = 0.1         # share of U+FFFD in that sample above which it is not text


def _is_binary(path: Path) -> bool:
    """Not text: a NUL byte in the first KiB, or mostly undecodable as UTF-8 (more than
    MAX_UNDECODABLE of the first TEXT_SAMPLE_BYTES decode to U+FFFD)."""
    with open(path, "rb") as handle:
        sample = handle.read(TEXT_SAMPLE_BYTES)
    if b"\0" in sample[:1024]:
        return True
    if len(sample) == TEXT_SAMPLE_BYTES:
        sample = sample[:-3]          # a character cut at the sample's end is not the file's fault
    decoded = sample.decode("utf-8", errors="replace")
    return decoded.count(UNK_CHAR) > MAX_UNDECODABLE * max(len(decoded), 1)


def list_files(source: str) -> tuple[Path, list[Path]]:
    """(root, files in sorted order) for a source; one-line errors for bad paths."""
    if source == STDLIB:
        root = stdlib_dir()
        files = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = [d for d in subfolders if d not in _SKIPPED_DIRS]   # prune, don't list
            files += [Path(folder) / n for n in names if n.endswith(".py")
                      and not (Path(folder) / n).relative_to(root).as_posix().startswith(NOT_CODE)]
    else:
        root = Path(source).expanduser()
        if not root.exists():
            raise ValueError(f"--text {source!r}: no such file or directory")
        if root.is_file():
            try:
                binary = _is_binary(root)
            except OSError as error:
                raise ValueError(f"--text {source!r}: cannot be read ({error.strerror})") from None
            if binary:
                raise ValueError(f"--text {source!r}: not a text file (NUL bytes, or mostly "
                                 "not UTF-8); give a text file or a directory of them")
            return root.parent, [root]
        try:
            files = [f for f in root.rglob("*") if f.is_file()
                     and not any(part.startswith(".") for part in f.relative_to(root).parts)
                     and not _is_binary(f)]
        except OSError as error:
            raise ValueError(f"--text {source!r}: cannot be read ({error.strerror})") from None
    if not files:
        raise ValueError(f"--text {source!r}: holds no text files")
    return root, sorted(files)


def _read(path: Path, source: str) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise ValueError(f"--text {source!r}: cannot read {path} ({error.strerror})") from None


def is_heldout(relative_path: str, fraction: float) -> bool:
    """The file-level split: a hash of the relative path, so it never depends on other files."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2.0 ** 64


def _codepoints(text: str) -> np.ndarray:
    """[N] uint32 code points of a string, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


# ---------------------------------------------------------------- vocabulary


class Vocabulary:
    """Characters <-> token ids. Id 0 = BOS, 1 = UNK, then `chars` in order."""

    def __init__(self, chars: str, counts=None):
        if len(set(chars)) != len(chars) or UNK_CHAR in chars:
            raise ValueError("Vocabulary: chars must be distinct and exclude U+FFFD (the UNK character)")
        self.chars = chars
        self.size = len(chars) + 2                                   # V
        # training-text count of each token [V] (BOS counts files; UNK counts rare characters)
        self.counts = np.zeros(self.size, np.int64) if counts is None else np.asarray(counts, np.int64)
        # code point -> id, one entry per Unicode code point (2.2 MB): encoding is one take
        self._table = np.full(0x110000, UNK, dtype=np.int16)
        self._table[[ord(c) for c in chars]] = np.arange(2, len(chars) + 2)
        self.hash = hashlib.sha256(chars.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_counts(cls, counts: np.ndarray, rare_fraction: float) -> "Vocabulary":
        """Keep code points counted >= max(2, ceil(rare_fraction * total)). counts [max code + 1]."""
        total = int(counts.sum())
        threshold = max(2, math.ceil(rare_fraction * total))
        kept = np.flatnonzero(counts >= threshold)
        kept = kept[kept != ord(UNK_CHAR)]
        chars = "".join(chr(c) for c in kept)
        token_counts = np.zeros(len(chars) + 2, np.int64)
        token_counts[2:] = counts[kept]
        token_counts[UNK] = total - token_counts[2:].sum()
        return cls(chars, token_counts)

    def encode(self, text: str) -> np.ndarray:
        """[N] int16 ids; characters outside the vocabulary -> UNK."""
        return self.encode_codepoints(_codepoints(text))

    def encode_codepoints(self, codes: np.ndarray) -> np.ndarray:
        return self._table[codes]

    def decode(self, ids) -> str:
        """Text of ids; BOS decodes to nothing, UNK to U+FFFD."""
        table = ["", UNK_CHAR] + list(self.chars)
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"decode: ids must lie in [0, {self.size}); got {ids.min()}..{ids.max()}")
        return "".join(table[i] for i in ids)

    def token_labels(self, ids) -> list[str]:
        """A short printable label per id, for figure axes (BOS, newline, space visible)."""
        shown = {"\n": "\\n", " ": "\u2423", "\t": "\\t"}
        table = ["<s>", "?"] + [shown.get(c, c) for c in self.chars]
        return [table[int(i)] for i in np.asarray(ids).reshape(-1)]

    def to_dict(self):
        return {"kind": "chars", "chars": self.chars, "hash": self.hash, "size": self.size}


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Corpus:
    """Both token streams, the vocabulary and the fingerprint of the text they came from."""

    train: np.ndarray          # [N_train] int16
    heldout: np.ndarray        # [N_heldout] int16
    vocab: Vocabulary
    fingerprint: dict


@functools.lru_cache(maxsize=4)
def load_corpus(source: str, heldout_fraction: float, rare_fraction: float, tokenizer: str = "bpe",
                vocab_size: int = 1024) -> Corpus:
    """Read, split, build the tokens on the training files, encode. Cached per process
    (and the BPE on disk: tasks/bpe.py)."""
    root, files = list_files(source)
    texts = [(f.relative_to(root).as_posix(), _read(f, source)) for f in files]
    digest = hashlib.sha256()
    for relative, text in texts:
        digest.update(relative.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
    if len(texts) == 1:   # one file: split by position instead of by file
        relative, text = texts[0]
        cut = int(round(len(text) * (1 - heldout_fraction)))
        train_texts, heldout_texts = [text[:cut]], [text[cut:]]
    else:
        train_texts = [t for r, t in texts if not is_heldout(r, heldout_fraction)]
        heldout_texts = [t for r, t in texts if is_heldout(r, heldout_fraction)]
    if not train_texts or not heldout_texts:
        raise ValueError(f"--text {source!r}: its {len(texts)} files all fall on one side of the "
                         f"train/held-out split (heldout_fraction {heldout_fraction}); give more files")
    if tokenizer == "bpe":
        vocab = cached_bpe(train_texts, vocab_size, rare_fraction)
        encode = vocab.encode
    else:
        train_codes = [_codepoints(t) for t in train_texts]
        counts = np.bincount(np.concatenate(train_codes), minlength=0x110000)   # [code points]
        vocab = Vocabulary.from_counts(counts, rare_fraction)
        vocab.counts[BOS] = len(train_texts)
        encode = vocab.encode

    def stream(parts):
        pieces = []
        for text in parts:
            pieces += [np.array([BOS], np.int16), encode(text)]
        return np.concatenate(pieces)

    if tokenizer == "bpe":   # encoding takes seconds: stored beside the BPE, keyed by text, split and BPE
        key = hashlib.sha256(f"{digest.hexdigest()}|{heldout_fraction!r}|{vocab.hash}".encode()).hexdigest()[:16]
        train, heldout = cached_arrays(f"bpe-streams-{key}", lambda: (stream(train_texts), stream(heldout_texts)))
    else:
        train, heldout = stream(train_texts), stream(heldout_texts)
    for array in (train, heldout):
        array.flags.writeable = False
    heldout_characters = sum(len(t) for t in heldout_texts)
    fingerprint = {
        "source": source if source != STDLIB else f"stdlib:{root}",
        "files": len(texts), "train_files": len(train_texts), "heldout_files": len(heldout_texts),
        "characters": sum(len(t) for _, t in texts),
        "train_tokens": int(train.size), "heldout_tokens": int(heldout.size),
        "sha256": digest.hexdigest()[:16], "tokenizer": tokenizer, "vocab_size": vocab.size,
        "vocab_hash": vocab.hash,
        "chars_per_token_heldout": heldout_characters / max(heldout.size - len(heldout_texts), 1),
        "unk_rate_heldout": float(np.mean(heldout == UNK)),
    }
    return Corpus(train, heldout, vocab, fingerprint)


# ---------------------------------------------------------------- the task


def windows_at(stream: np.ndarray, starts: np.ndarray, n_ctx: int) -> TokenBatch:
    """TokenBatch of the windows of stream starting at `starts` [B]: tokens/targets [B, T]."""
    index = np.asarray(starts)[:, None] + np.arange(n_ctx + 1)[None, :]     # [B, T+1]
    window = stream[index].astype(np.int64)
    return TokenBatch(window[:, :-1], window[:, 1:])


def repeat_windows(rng: np.random.Generator, batch: TokenBatch, rows) -> TokenBatch:
    """Make the chosen rows [B] bool repeat their own first r tokens, r uniform in
    [REPEAT_MIN_SPAN, (T + 1) // 2] per row: window = s s s ... (cut to T + 1 tokens).
    Real text, repeated at a random period, so that only copying from earlier in the
    window (not a fixed offset) predicts the repeats."""
    window = np.concatenate([batch.tokens, batch.targets[:, -1:]], axis=1)        # [B, T+1]
    n_window = window.shape[1]
    spans = rng.integers(REPEAT_MIN_SPAN, n_window // 2 + 1, size=window.shape[0])  # [B]
    index = np.arange(n_window)[None, :] % spans[:, None]                         # [B, T+1]
    repeated = np.take_along_axis(window, index, axis=1)
    window = np.where(np.asarray(rows)[:, None], repeated, window)
    return TokenBatch(window[:, :-1], window[:, 1:])


class TextTask:
    """Next-token prediction on windows of real text (see the module docstring)."""

    def __init__(self, config: TextConfig = TextConfig()):
        if not isinstance(config, TextConfig):
            raise ValueError(f"TextTask takes a TextConfig; got {type(config).__name__}")
        self.config = config
        corpus = load_corpus(config.source, float(config.heldout_fraction), float(config.rare_fraction),
                             config.tokenizer, config.vocab_size)
        self.vocab, self.fingerprint = corpus.vocab, corpus.fingerprint
        self.streams = {"train": corpus.train, "heldout": corpus.heldout}
        for split, stream in self.streams.items():
            if stream.size < config.n_ctx + 1:
                raise ValueError(
                    f"--text {config.source!r}: its {split} text has {stream.size} tokens, fewer "
                    f"than one window of n_ctx + 1 = {config.n_ctx + 1}; use a longer text or a "
                    f"smaller context")

    @property
    def d_vocab(self) -> int:
        return self.vocab.size

    def n_starts(self, split: str) -> int:
        return self.streams[split].size - self.config.n_ctx

    def sample(self, rng: np.random.Generator, batch_size: int, split: str = "train",
               repeat_fraction: float | None = None) -> TokenBatch:
        """batch_size windows at uniform random starts of one split; a share
        repeat_fraction of them (default: the config's) made repeated (repeat_windows)."""
        starts = rng.integers(0, self.n_starts(split), size=batch_size)
        batch = windows_at(self.streams[split], starts, self.config.n_ctx)
        fraction = self.config.repeat_fraction if repeat_fraction is None else repeat_fraction
        if fraction > 0:
            batch = repeat_windows(rng, batch, rng.random(batch_size) < fraction)
        return batch

    def eval_sets(self) -> dict:
        """Fixed by eval_seed: "heldout" and "train" (plain windows of held-out and
        training files) and "heldout_repeated" (held-out windows, every one repeated;
        when a repeat fits, n_ctx >= 7)."""
        out = {}
        for index, split in enumerate(EVAL_SET_NAMES):
            rng = np.random.default_rng([self.config.eval_seed, index])
            out[split] = self.sample(rng, self.config.eval_windows, split, repeat_fraction=0.0)
        if self.config.n_ctx + 1 >= 2 * REPEAT_MIN_SPAN:
            rng = np.random.default_rng([self.config.eval_seed, len(EVAL_SET_NAMES)])
            out["heldout_repeated"] = self.sample(rng, self.config.eval_windows, "heldout",
                                                  repeat_fraction=1.0)
        return out

    def check_model(self, model_config):
        """One-line error if a model's vocabulary or context cannot take this text."""
        if model_config.input_kind != "tokens" or model_config.d_vocab != self.d_vocab:
            raise ValueError(
                f"the model's vocabulary (input_kind={model_config.input_kind!r}, d_vocab="
                f"{model_config.d_vocab}) does not match the text's {self.d_vocab} tokens "
                f"(vocabulary {self.vocab.hash} of --text {self.config.source!r})")
        if model_config.positional == "learned" and self.config.n_ctx > model_config.n_ctx:
            raise ValueError(f"TextConfig.n_ctx = {self.config.n_ctx} is longer than the model's "
                             f"learned position table (ModelConfig.n_ctx = {model_config.n_ctx})")

    def describe(self) -> dict:
        """What a run records about its data: the config, the fingerprint, the vocabulary."""
        return {"config": self.config.to_dict(), "fingerprint": dict(self.fingerprint),
                "vocab": self.vocab.to_dict()}
