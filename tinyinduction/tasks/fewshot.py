"""The few-shot task of Singh et al. (2024): ``x1 l1 x2 l2 xq -> label of xq``.

A sequence holds C exemplar-label pairs followed by a query exemplar (paper: C = 2,
so 5 tokens). Exactly one context pair has the query's class; the other C-1 pairs have
distinct other ("distractor") classes. Labels are abstract and re-drawn for every
sequence from a split of label combinations, so the only way to name the query is to
copy the label that follows its class in the context: an induction head.

Dimension letters used in shape comments:
    B  sequences in a batch        C  context pairs (n_context_pairs)
    F  feature dimension           K  label combinations in a split
    N  classes in the feature table, E  exemplars per class in the table

Exemplar features: the paper uses 512-d features of Omniglot images (1623 classes x
5 exemplars) from a frozen ImageNet ResNet18. Omniglot is not available here; the
tables that stand in for it (generated "builtin", rendered "glyphs", or a user's .npy
file) live in ``tinyinduction.tasks.features``. Results obtained with a stand-in
table are NOT the paper's numbers.

Everything random goes through a ``np.random.Generator`` passed in explicitly (training
batches) or a seed in the config (label split, eval sets, builtin table).
"""
from __future__ import annotations

import itertools
import math
import numbers
from typing import Iterator, NamedTuple

import numpy as np

from ..batches import FewShotBatch

# The feature tables live in .features; their public names are re-exported here so that
# `from tinyinduction.tasks.fewshot import builtin_features` keeps working.
from .features import (builtin_features, check_feature_table, feature_statistics,  # noqa: F401
                       load_features, resolve_features)
from .fewshot_config import TaskConfig

__all__ = [
    "TaskConfig",
    "FewShotBatch",
    "FewShotTask",
    "builtin_features",
    "load_features",
    "feature_statistics",
    "EVAL_SET_NAMES",
]

# Order matters: a set's index in this tuple is mixed into its seed.
EVAL_SET_NAMES = ("train", "relabel", "heldout_classes", "other_exemplars")

# Tabulate (combination x label ordering x placement) rows up to this many; beyond,
# sort random keys per batch instead.
_MAX_ORDERED_ROWS = 100_000


# --------------------------------------------------------------------------- batches
# --------------------------------------------------------------------------- task
class _LabelTable(NamedTuple):
    """Every (label ordering, placement of the items) of one label split, as rows j.

    Items: item 0 is the query's class, items 1..C-1 the distractors. Row j lists the
    labels in sequence order and which item sits at each position; a uniform row is a
    uniform combination, in uniform order, with a uniform placement of the items
    (labels and placement are independent, as if drawn one after the other).
    """

    combos: np.ndarray      # [K, C] sorted label combinations of the split
    labels: np.ndarray      # [J, C] labels in sequence order, or None if not tabulated
    item_at: np.ndarray     # [J, C] item at each position
    query_pair: np.ndarray  # [J] position of item 0 (the query's class)
    target: np.ndarray      # [J] label at that position

    @classmethod
    def build(cls, combos: np.ndarray) -> "_LabelTable":
        K, C = combos.shape
        n_perm = math.factorial(C)
        if K * n_perm * n_perm > _MAX_ORDERED_ROWS:
            return cls(combos, None, None, None, None)
        perms = np.array(list(itertools.permutations(range(C))), dtype=np.int64)  # [P, C]
        ordered = combos[:, perms].reshape(-1, C)                     # [K*P, C] label orderings
        query_at = (perms == 0).argmax(axis=1)                        # [P] where item 0 sits
        L, P = len(ordered), n_perm
        label_row = np.repeat(np.arange(L), P)                        # [J] j = l*P + a
        placement = np.tile(np.arange(P), L)                          # [J]
        labels = ordered[label_row]                                   # [J, C]
        query_pair = query_at[placement]                              # [J]
        target = labels[np.arange(L * P), query_pair]                 # [J]
        tables = (labels, perms[placement], query_pair, target)
        for arr in tables:
            arr.flags.writeable = False
        return cls(combos, *tables)


class FewShotTask:
    """Samples few-shot sequences; holds the feature table, label split and eval sets.

    Classes: training classes are rows [0, n_train_classes) of the table, held-out
    classes the next n_heldout_classes rows. Label combinations: all C-subsets of
    range(n_labels), shuffled with label_split_seed; the first
    round(heldout_label_fraction * K) (at least 1 if the fraction is > 0) are held out.
    """

    def __init__(self, config: TaskConfig, features: np.ndarray | None = None):
        if not isinstance(config, TaskConfig):
            raise ValueError(f"FewShotTask config = {config!r}: must be a TaskConfig")
        self.config = config
        if features is not None:
            table = check_feature_table(features, "FewShotTask features")
            source = "the given feature table"
        else:
            table, source = resolve_features(config.features)
        n_table_classes, n_table_exemplars, dim = table.shape
        need = config.n_train_classes + config.n_heldout_classes
        if need > n_table_classes:
            raise ValueError(
                f"TaskConfig.n_train_classes + n_heldout_classes = {config.n_train_classes} + "
                f"{config.n_heldout_classes} = {need}: {source} has only {n_table_classes} classes")
        for name in ("train_exemplars", "other_exemplars"):
            indices = getattr(config, name)
            if max(indices) >= n_table_exemplars:
                raise ValueError(
                    f"TaskConfig.{name} = {indices}: {source} has {n_table_exemplars} "
                    f"exemplars per class, so indices must be in 0..{n_table_exemplars - 1}")
        self.features = table                                        # [N, E, F] read-only float32
        self._flat_features = table.reshape(-1, dim)                 # [N*E, F] for one 1-D gather
        self._n_table_exemplars = n_table_exemplars

        self.n_labels = config.n_labels
        self.n_context_pairs = config.n_context_pairs
        self.feature_dim = dim
        self.seq_len = 2 * config.n_context_pairs + 1               # x1 l1 ... xC lC xq
        self.n_train_classes = config.n_train_classes
        self.n_heldout_classes = config.n_heldout_classes
        self.train_class_range = (0, config.n_train_classes)         # [lo, hi)
        self.heldout_class_range = (config.n_train_classes, need)

        combos = np.array(list(itertools.combinations(range(config.n_labels),
                                                      config.n_context_pairs)),
                          dtype=np.int64)                             # [K, C], rows sorted
        order = np.random.default_rng(config.label_split_seed).permutation(len(combos))
        n_held = config.n_heldout_label_combos
        # Each split is listed in lexicographic order so that it reads well when printed.
        self.heldout_label_combos = combos[np.sort(order[:n_held])]   # [K_held, C]
        self.train_label_combos = combos[np.sort(order[n_held:])]     # [K_train, C]
        for arr in (self.heldout_label_combos, self.train_label_combos):
            arr.flags.writeable = False

        # Label orderings x placements are tabulated once per split (a _LabelTable), so a
        # batch needs one uniform index per sequence instead of sorting random keys.
        # Long contexts (C!^2 K too large to tabulate) fall back to sorting keys in _draw.
        self._train_table = _LabelTable.build(self.train_label_combos)
        self._heldout_table = _LabelTable.build(self.heldout_label_combos)
        self._single_exemplar_tables: dict[int, np.ndarray] = {}

        self._train_exemplars = np.array(config.train_exemplars, dtype=np.int64)
        self._other_exemplars = np.array(config.other_exemplars, dtype=np.int64)
        self._eval_sets: dict[str, FewShotBatch] | None = None
        # Row offsets for flat gathers, reused by every training batch of the usual size.
        self._row_cache: dict[tuple[int, int], np.ndarray] = {}

    def __repr__(self) -> str:
        return (f"FewShotTask(features={self.features.shape}, "
                f"train label combos={len(self.train_label_combos)}, "
                f"held-out={len(self.heldout_label_combos)}, config={self.config})")

    # ------------------------------------------------------------------ sampling core
    def _rows(self, n: int, width: int) -> np.ndarray:
        key = (n, width)
        rows = self._row_cache.get(key)
        if rows is None:
            rows = (np.arange(n, dtype=np.int64) * width)[:, None]    # [B, 1]
            if len(self._row_cache) < 16:
                self._row_cache[key] = rows
        return rows

    def _draw(self, rng: np.random.Generator, n: int, class_range: tuple[int, int],
              exemplar_ids: np.ndarray, label_table: "_LabelTable") -> FewShotBatch:
        """n sequences from the given classes, exemplar indices and label split."""
        C = self.n_context_pairs
        lo, hi = class_range
        n_classes = hi - lo
        several_exemplars = len(exemplar_ids) > 1
        # One uniform draw feeds every choice: Generator.integers costs ~5-15 us a call,
        # while floor(u * m) is uniform on 0..m-1 (u < 1 keeps it below m) for ~1 us.
        # Columns: [query class | C-1 distractor offsets | label table row
        # | C+1 exemplar choices (only if there is a choice)]
        u = rng.random((n, C + 1 + (C + 1 if several_exemplars else 0)))   # [B, width]

        # item 0 is the query's class, items 1..C-1 the distractors (relative class ids)
        items = np.empty((n, C), dtype=np.int64)                             # [B, C]
        items[:, 0] = u[:, 0] * n_classes
        # Distinct nonzero offsets from the query class give distinct distractors that
        # differ from the query, with no rejection loop.
        offsets = self._distinct_offsets(u[:, 1:C], n_classes - 1)           # [B, C-1] in 0..N-2
        offsets += items[:, :1]
        offsets += 1
        np.remainder(offsets, n_classes, out=items[:, 1:])

        rows = self._rows(n, C)                                              # [B, 1] = b*C
        if label_table.labels is not None:
            j = (u[:, C] * len(label_table.labels)).astype(np.int64)         # [B] table row
            labels = label_table.labels[j]                                   # [B, C]
            item_at = label_table.item_at[j]                                 # [B, C] item at position
            query_pair = label_table.query_pair[j]                           # [B]
            target = label_table.target[j]                                   # [B]
        else:
            # Long contexts: too many orderings to tabulate, so sort random keys instead.
            combo = label_table.combos[(u[:, C] * len(label_table.combos)).astype(np.int64)]
            keys = rng.random((2, n, C))
            labels = combo.ravel()[rows + keys[0].argsort(axis=1)]           # [B, C]
            item_at = keys[1].argsort(axis=1)                                # [B, C]
            query_pair = (item_at == 0).argmax(axis=1)                       # [B]
            target = labels.ravel()[rows[:, 0] + query_pair]                 # [B]
        flat_at = rows + item_at                                             # [B, C] b*C + item at j

        classes = np.empty((n, C + 1), dtype=np.int64)                       # [B, C+1]
        classes[:, :C] = items.ravel()[flat_at]
        classes[:, C] = items[:, 0]
        if lo:
            classes += lo
        if several_exemplars:
            choice = (u[:, C + 1:] * len(exemplar_ids)).astype(np.int64)    # [B, C+1]
            exemplars = self._gather(classes, exemplar_ids[choice])          # [B, C+1, F]
        else:
            exemplars = self._one_exemplar_table(int(exemplar_ids[0])).take(classes, axis=0)
        if self.config.noise_std > 0:
            noise = rng.standard_normal(exemplars.shape, dtype=np.float32)
            noise *= np.float32(self.config.noise_std)
            exemplars += noise
        return FewShotBatch(exemplars, labels, target, query_pair, classes)

    def _one_exemplar_table(self, exemplar: int) -> np.ndarray:
        """[N, F] contiguous copy of one exemplar of every class: a gather by class id alone."""
        table = self._single_exemplar_tables.get(exemplar)
        if table is None:
            table = np.ascontiguousarray(self.features[:, exemplar])
            table.flags.writeable = False
            self._single_exemplar_tables[exemplar] = table
        return table

    @staticmethod
    def _distinct_offsets(u: np.ndarray, m: int) -> np.ndarray:
        """[B, k] int64 from uniforms u [B, k]: each row k distinct values from range(m).

        Floyd's algorithm: for j in m-k..m-1 take t ~ U{0..j}; if t is taken, take j.
        A uniform k-subset; its order does not matter, positions are permuted later.
        """
        n, k = u.shape
        if k == 1:
            return (u * m).astype(np.int64)
        chosen = np.empty((n, k), dtype=np.int64)
        for i, j in enumerate(range(m - k, m)):
            t = (u[:, i] * (j + 1)).astype(np.int64)
            taken = (chosen[:, :i] == t[:, None]).any(axis=1)
            chosen[:, i] = np.where(taken, j, t)
        return chosen

    def _gather(self, classes: np.ndarray, exemplar: np.ndarray) -> np.ndarray:
        # One 1-D take over the flattened table is faster than 2-D fancy indexing.
        index = classes * self._n_table_exemplars + exemplar                # [B, C+1]
        return self._flat_features.take(index, axis=0)                      # [B, C+1, F]

    # ------------------------------------------------------------------ public
    def sample(self, rng: np.random.Generator, batch_size: int) -> FewShotBatch:
        """A training batch: training classes, training exemplars, training label combos."""
        if type(rng) is not np.random.Generator and not isinstance(rng, np.random.Generator):
            raise ValueError(f"sample rng = {rng!r}: must be a np.random.Generator "
                             "(np.random.default_rng(seed))")
        # `type(...) is int` first: the numbers.Integral check is an ABC lookup (~3 us).
        if type(batch_size) is not int and (isinstance(batch_size, bool) or not isinstance(
                batch_size, numbers.Integral)) or batch_size < 1:
            raise ValueError(f"sample batch_size = {batch_size!r}: must be an integer >= 1")
        return self._draw(rng, int(batch_size), self.train_class_range,
                          self._train_exemplars, self._train_table)

    def sample_many(self, rng: np.random.Generator, batch_size: int, n_batches: int) -> list[FewShotBatch]:
        """n_batches training batches: the same batches, and the same rng state after
        them, as n_batches calls of sample(rng, batch_size) (tested).

        Speed: when every choice comes from the one uniform draw of _draw (no noise, a
        tabulated label order), one draw of n_batches * batch_size sequences is that
        stream, cut in slices: ~25 us a step less in the training loop, whose first
        NumPy calls after a step are slow (their data has left the cache)."""
        if (self.config.noise_std > 0 or self._train_table.labels is None
                or type(self).sample is not FewShotTask.sample):     # a subclass's own stream
            return [self.sample(rng, batch_size) for _ in range(n_batches)]
        block = self.sample(rng, batch_size * n_batches)
        return [FewShotBatch(*(field[i * batch_size:(i + 1) * batch_size] for field in block))
                for i in range(n_batches)]

    def eval_sets(self) -> dict[str, FewShotBatch]:
        """The four fixed evaluation sets of the paper, eval_size sequences each.

        train:           training classes, training exemplars, training label combos
        relabel:         training classes, training exemplars, HELD-OUT label combos
        heldout_classes: held-out classes, training exemplars, training label combos
        other_exemplars: training classes, other exemplars,    training label combos
        Each set is drawn from default_rng([eval_seed, index of its name]), so sets
        differ from each other and are identical across task objects. Built once and
        cached; the arrays are read-only because every caller shares them. With
        heldout_label_fraction = 0 there are no held-out combos and "relabel" is an
        empty batch (0 sequences).
        """
        if self._eval_sets is None:
            recipes = {
                "train": (self.train_class_range, self._train_exemplars,
                          self._train_table),
                "relabel": (self.train_class_range, self._train_exemplars,
                            self._heldout_table),
                "heldout_classes": (self.heldout_class_range, self._train_exemplars,
                                    self._train_table),
                "other_exemplars": (self.train_class_range, self._other_exemplars,
                                    self._train_table),
            }
            sets = {}
            for index, name in enumerate(EVAL_SET_NAMES):
                class_range, exemplar_ids, label_table = recipes[name]
                rng = np.random.default_rng([self.config.eval_seed, index])
                if len(label_table.combos) == 0:
                    batch = self._empty_batch()
                else:
                    batch = self._draw(rng, self.config.eval_size, class_range, exemplar_ids,
                                       label_table)
                for arr in batch:
                    arr.flags.writeable = False
                sets[name] = batch
            self._eval_sets = sets
        return dict(self._eval_sets)

    def _empty_batch(self) -> FewShotBatch:
        C, F = self.n_context_pairs, self.feature_dim
        i64 = np.int64
        return FewShotBatch(np.zeros((0, C + 1, F), np.float32), np.zeros((0, C), i64),
                            np.zeros(0, i64), np.zeros(0, i64), np.zeros((0, C + 1), i64))

    # ------------------------------------------------------------------ enumeration
    @property
    def n_train_sequences(self) -> int:
        """How many distinct training sequences exist (C = 2): N(N-1) x 2K x 2."""
        n = self.n_train_classes
        return n * (n - 1) * 2 * len(self.train_label_combos) * 2

    def _enumeration_indices(self) -> tuple[np.ndarray, ...]:
        """Index arrays (classes [S, 3], labels [S, 2], query_pair [S], target [S])."""
        if self.n_context_pairs != 2:
            raise ValueError(f"TaskConfig.n_context_pairs = {self.n_context_pairs}: enumerating "
                             "the training set is only implemented for 2 context pairs")
        if len(self._train_exemplars) != 1:
            raise ValueError(f"TaskConfig.train_exemplars = {self.config.train_exemplars}: "
                             "enumerating the training set needs exactly one training "
                             "exemplar per class (as in the paper); use sample() instead")
        n = self.n_train_classes
        combos = self.train_label_combos                                   # [K, 2]
        # Axes, outermost first: query class, distractor, label combo, which label the
        # query gets, position of the query's pair. All ordered pairs of distinct classes.
        q, d, k, swap, pos = np.meshgrid(np.arange(n), np.arange(n - 1), np.arange(len(combos)),
                                         np.arange(2), np.arange(2), indexing="ij")
        q, d, k, swap, pos = (a.ravel() for a in (q, d, k, swap, pos))     # each [S]
        d = d + (d >= q)                                                   # skip the query class
        label_q = combos[k, swap]                                          # [S] query's label
        label_d = combos[k, 1 - swap]                                      # [S] distractor's label
        first_is_query = pos == 0
        classes = np.stack([np.where(first_is_query, q, d), np.where(first_is_query, d, q), q],
                           axis=1).astype(np.int64)                        # [S, 3]
        labels = np.stack([np.where(first_is_query, label_q, label_d),
                           np.where(first_is_query, label_d, label_q)], axis=1).astype(np.int64)
        return classes, labels, pos.astype(np.int64), label_q.astype(np.int64)

    def _assemble(self, classes, labels, query_pair, target) -> FewShotBatch:
        exemplars = self._one_exemplar_table(int(self._train_exemplars[0])).take(
            classes, axis=0)                                                # [S, 3, F]
        return FewShotBatch(exemplars, labels, target, query_pair, classes)

    def enumerate_train_set(self) -> FewShotBatch:
        """Every distinct training sequence, in a fixed order (C = 2 only, no noise).

        Paper config: 50 x 49 ordered (query, distractor) classes x 8 label pairs x 2
        label orders x 2 query positions = 78,400 sequences. The exemplar array is
        S x 3 x F float32 (~480 MB for the paper with 512-d features): use
        iter_train_set(batch_size) to walk through it in chunks instead.
        """
        return self._assemble(*self._enumeration_indices())

    def iter_train_set(self, batch_size: int = 4096) -> Iterator[FewShotBatch]:
        """enumerate_train_set() in consecutive chunks of at most batch_size sequences."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"iter_train_set batch_size = {batch_size!r}: must be an integer >= 1")
        classes, labels, query_pair, target = self._enumeration_indices()
        for start in range(0, len(target), batch_size):
            chunk = slice(start, start + batch_size)
            yield self._assemble(classes[chunk], labels[chunk], query_pair[chunk], target[chunk])
