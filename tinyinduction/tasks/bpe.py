"""A byte-pair encoding (BPE) of code, trained in the package: pure Python and NumPy.

    bpe = train_bpe(texts, vocab_size=1024)        # texts: the *training* files' contents
    ids = bpe.encode("def f(x):\\n    return x")   # [N] int16
    bpe.decode(ids) == "def f(x):\\n    return x"  # exact for text in its alphabet
    bpe = cached_bpe(texts, 1024, rare_fraction)   # the same, stored under a hash of its recipe

Why BPE: an induction head copies "the token that followed the last earlier occurrence
of the current token". On characters that rarely beats a bigram table; on BPE tokens of
code, where a token is often a whole identifier, it does (the README's Olsson section
gives the numbers).

The recipe (Sennrich et al. 2016, with GPT-2's pre-split adapted to code):
1. Pre-split: PRESPLIT cuts text into pieces, and no merge ever crosses a piece's edge:
   an identifier run with at most one leading space (`` self``, ``__init__``), a digit
   run (`` 42``), a run of other symbols (`` ==``, ``("``), a newline with the
   indentation after it, a run of spaces (all but the last one before a non-space),
   any other single whitespace character. The pieces tile the text exactly.
2. Alphabet: BOS (id 0), UNK (id 1), then every character whose count in the training
   text is at least max(2, ceil(rare_fraction x characters)), in code-point order
   (rarer characters become UNK, as in the character vocabulary of tasks/text.py).
3. Merges: count every adjacent pair of symbols inside the pieces (weighted by how often
   each distinct piece occurs); merge the most frequent pair into a new symbol, update
   the counts of the pieces that held it, repeat until vocab_size symbols exist. Ties go
   to the pair of smallest ids. UNK never merges.
Encoding a piece applies the merges in the order they were learnt (lowest rank first),
as training did, so training text encodes to what training saw.

Cache: cached_bpe stores the merges as <cache_directory()>/bpe-<recipe hash>.json, the
recipe being the training text's SHA-256, vocab_size, rare_fraction, PRESPLIT and
RECIPE_VERSION: a changed text or setting never reads a stale table. tasks/text.py stores
the encoded token streams the same way (cached_arrays, keyed by the text, the split and
the BPE's hash): encoding ten million characters takes seconds, reading them back does not.
"""
from __future__ import annotations

import collections
import hashlib
import heapq
import json
import math
import os
import re

import numpy as np

from ..paths import cache_directory

BOS, UNK = 0, 1
UNK_CHAR = "\ufffd"
RECIPE_VERSION = 1
PRESPLIT = re.compile(r" ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]+| ?[^\sA-Za-z0-9_]+|\n[ \t]*|[ \t]+(?!\S)|\s")


def presplit(text: str) -> list[str]:
    """The pieces of text (module docstring, step 1); "".join(pieces) == text."""
    return PRESPLIT.findall(text)


def alphabet(counts: collections.Counter, rare_fraction: float) -> str:
    """The base characters (step 2) from a Counter of training characters."""
    total = sum(counts.values())
    threshold = max(2, math.ceil(rare_fraction * total))
    return "".join(sorted(c for c, n in counts.items() if n >= threshold and c != UNK_CHAR))


class BPE:
    """Token ids <-> text. Id 0 = BOS, 1 = UNK, 2 .. 2 + len(chars) - 1 the characters,
    then one id per merge, in the order learnt. Has the interface of text.Vocabulary
    (size, counts, hash, encode, decode, token_labels, to_dict)."""

    def __init__(self, chars: str, merges, counts=None):
        if len(set(chars)) != len(chars) or UNK_CHAR in chars:
            raise ValueError("BPE: chars must be distinct and exclude U+FFFD (the UNK character)")
        self.chars = chars
        self.merges = [tuple(int(i) for i in pair) for pair in merges]    # [(left id, right id)]
        self.strings = ["", UNK_CHAR] + list(chars)                       # id -> its text
        for left, right in self.merges:
            if not (2 <= left < len(self.strings) and 2 <= right < len(self.strings)):
                raise ValueError(f"BPE: merge ({left}, {right}) names an id that does not exist yet")
            self.strings.append(self.strings[left] + self.strings[right])
        self.size = len(self.strings)                                     # V
        self.rank = {pair: rank for rank, pair in enumerate(self.merges)}
        self.char_id = {c: i + 2 for i, c in enumerate(chars)}
        self.counts = np.zeros(self.size, np.int64) if counts is None else np.asarray(counts, np.int64)
        recipe = json.dumps({"chars": chars, "merges": self.merges}).encode("utf-8")
        self.hash = hashlib.sha256(recipe).hexdigest()[:16]
        self._piece_ids = {}                                              # piece -> tuple of ids

    def encode_piece(self, piece: str) -> tuple:
        """The ids of one pre-split piece: its characters, then the merges by rank."""
        known = self._piece_ids.get(piece)
        if known is not None:
            return known
        symbols = [self.char_id.get(c, UNK) for c in piece]
        while len(symbols) > 1:
            ranked = [(self.rank.get(pair, math.inf), i)
                      for i, pair in enumerate(zip(symbols[:-1], symbols[1:]))]
            best, _ = min(ranked)
            if best == math.inf:
                break
            symbols = _merge(symbols, self.merges[best], len(self.chars) + 2 + best)
        self._piece_ids[piece] = ids = tuple(symbols)
        return ids

    def encode(self, text: str) -> np.ndarray:
        """[N] int16 ids of text; characters outside the alphabet -> UNK."""
        pieces = [self.encode_piece(p) for p in presplit(text)]
        return np.fromiter((i for ids in pieces for i in ids), dtype=np.int16,
                           count=sum(map(len, pieces)))

    def decode(self, ids) -> str:
        """Text of ids; BOS decodes to nothing, UNK to U+FFFD."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"decode: ids must lie in [0, {self.size}); got {ids.min()}..{ids.max()}")
        return "".join(self.strings[i] for i in ids)

    def token_labels(self, ids) -> list[str]:
        """A short printable label per id, for figure axes (BOS, newline, space visible)."""
        shown = {"\n": "\\n", " ": "\u2423", "\t": "\\t"}
        labels = ["<s>", "?"] + ["".join(shown.get(c, c) for c in s) for s in self.strings[2:]]
        return [labels[int(i)] for i in np.asarray(ids).reshape(-1)]

    def to_dict(self):
        return {"kind": "bpe", "chars": self.chars, "merges": [list(m) for m in self.merges],
                "hash": self.hash, "size": self.size}


def _merge(symbols: list, pair: tuple, new: int) -> list:
    """symbols with every non-overlapping occurrence of pair (left to right) -> new."""
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i + 1 < n and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_merges(piece_counts: dict, chars: str, vocab_size: int) -> list:
    """The merges (step 3) on {piece: count}: up to vocab_size - 2 - len(chars) of them
    (fewer if the pieces run out of pairs). Incremental: a merge re-counts only the
    distinct pieces that hold its pair; a heap with lazy deletion finds the best pair."""
    char_id = {c: i + 2 for i, c in enumerate(chars)}
    unknown = re.compile(f"[^{re.escape(chars)}]+" if chars else "(?s:.)+")
    words, weights = [], []               # the runs of known characters of every piece
    for piece, weight in piece_counts.items():
        for run in unknown.split(piece):
            if len(run) > 1:                  # UNK never merges: a run ends at it
                words.append([char_id[c] for c in run])
                weights.append(weight)
    pair_count = collections.Counter()
    holders = collections.defaultdict(set)    # pair -> the words that hold (or held) it
    for index, (word, weight) in enumerate(zip(words, weights)):
        for pair in zip(word[:-1], word[1:]):
            pair_count[pair] += weight
            holders[pair].add(index)
    heap = [(-n, pair) for pair, n in pair_count.items()]
    heapq.heapify(heap)
    merges, new = [], len(chars) + 2
    while new < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if pair_count.get(pair) != -negative:
            continue                          # stale: the pair's count changed since it was pushed
        merges.append(pair)
        changed = set()
        for index in holders.pop(pair):
            word, weight = words[index], weights[index]
            old = list(zip(word[:-1], word[1:]))
            if pair not in old:
                continue                      # an earlier merge took the pair out of this word
            words[index] = merged = _merge(word, pair, new)
            for p in old:
                pair_count[p] -= weight
            for p in zip(merged[:-1], merged[1:]):
                pair_count[p] += weight
                if new in p:                  # the only pairs this word did not hold before
                    holders[p].add(index)
                    changed.add(p)
            changed.update(old)
        changed.discard(pair)
        del pair_count[pair]
        for p in changed:
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
            else:
                del pair_count[p]
        new += 1
    return merges


def train_bpe(texts, vocab_size: int = 1024, rare_fraction: float = 1e-5) -> BPE:
    """A BPE of vocab_size tokens (BOS and UNK included) learnt on texts (an iterable of
    strings: the training files), with token counts on those texts."""
    texts = list(texts)
    characters = collections.Counter()
    pieces = collections.Counter()
    for text in texts:
        characters.update(text)
        pieces.update(presplit(text))
    chars = alphabet(characters, rare_fraction)
    check_vocab_size(vocab_size, len(chars))
    bpe = BPE(chars, learn_merges(pieces, chars, vocab_size))
    bpe.counts = token_counts(bpe, pieces, n_texts=len(texts))
    return bpe


def token_counts(bpe: BPE, pieces: dict, n_texts: int) -> np.ndarray:
    """[V] how often each token occurs in the text whose pieces are {piece: count}
    (BOS: once per text, as the streams put it before every file)."""
    counts = np.zeros(bpe.size, np.int64)
    for piece, n in pieces.items():
        for i in bpe.encode_piece(piece):
            counts[i] += n
    counts[BOS] = n_texts
    return counts


def check_vocab_size(vocab_size, n_chars: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < n_chars + 2:
        raise ValueError(f"TextConfig.vocab_size = {vocab_size!r} is invalid: the text has {n_chars} "
                         f"characters, so a BPE needs at least {n_chars + 2} tokens (BOS, UNK and "
                         "each character) and more to learn any merge")


def recipe(texts_sha256: str, vocab_size: int, rare_fraction: float) -> dict:
    return {"version": RECIPE_VERSION, "texts_sha256": texts_sha256, "vocab_size": vocab_size,
            "rare_fraction": rare_fraction, "presplit": PRESPLIT.pattern}


def cached_bpe(texts, vocab_size: int, rare_fraction: float, cache: bool = True) -> BPE:
    """train_bpe(texts, ...), stored under a hash of its recipe and read back from there
    on later calls (module docstring). texts: a list of strings."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    rec = recipe(digest.hexdigest(), vocab_size, rare_fraction)
    key = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_directory() / f"bpe-{key}.json"
    if cache and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("recipe") == rec:
                return BPE(stored["chars"], stored["merges"], stored["counts"])
        except (OSError, ValueError, KeyError, TypeError):
            pass                                       # unreadable or stale: learn it again
    bpe = train_bpe(texts, vocab_size, rare_fraction)
    if cache:
        _save_atomic(path, {"recipe": rec, "chars": bpe.chars, "merges": [list(m) for m in bpe.merges],
                            "counts": bpe.counts.tolist()})
    return bpe


def cached_arrays(name: str, make) -> tuple:
    """make() -> a tuple of int16 arrays, stored as <cache_directory()>/<name>.npz and read
    back from there on later calls (name must hold a hash of everything they depend on)."""
    path = cache_directory() / f"{name}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return tuple(stored[f"a{i}"] for i in range(len(stored.files)))
        except (OSError, ValueError, KeyError):
            pass                                       # unreadable: make them again
    arrays = tuple(np.asarray(a, dtype=np.int16) for a in make())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, **{f"a{i}": a for i, a in enumerate(arrays)})
    os.replace(temporary, path)
    return arrays


def _save_atomic(path, data: dict) -> None:
    """Write to a temporary name and rename, so a crash never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)
