"""The few-shot task's configuration: TaskConfig, checked when it is made.

Re-exported by tasks/fewshot.py (the task) and config.py (with the model's and the
training's configs).
"""
from __future__ import annotations

import functools
import math
import numbers
import os
from dataclasses import dataclass

from ..checks import check_int
from .features import FEATURE_SOURCES, parse_feature_source

# The small preset's features: the built-in recipe before `reproduce features` tuned
# the defaults for the paper preset (see TaskConfig.small).
SMALL_FEATURES = "builtin:rank=16:mean_scale=1.0:latent_scale=0.6"

# Enumerating label combinations is only sensible while the table stays small.
_MAX_LABEL_COMBOS = 1_000_000
# --------------------------------------------------------------------------- checks
def _check_index_tuple(owner: str, name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{owner}.{name} = {value!r}: must be a non-empty tuple of "
                         "distinct exemplar indices >= 0, e.g. (0,)")
    items = tuple(value)
    ok = len(items) > 0 and all(
        not isinstance(i, bool) and isinstance(i, numbers.Integral) and i >= 0 for i in items)
    if not ok or len(set(items)) != len(items):
        raise ValueError(f"{owner}.{name} = {value!r}: must be a non-empty tuple of "
                         "distinct exemplar indices >= 0, e.g. (0,)")
    return tuple(int(i) for i in items)


def _n_heldout_combos(n_combos: int, fraction: float) -> int:
    # At least one held-out combination as soon as any is asked for: a relabel set
    # is the point of asking.
    if fraction <= 0.0:
        return 0
    return max(1, int(round(fraction * n_combos)))


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TaskConfig:
    """What sequences the few-shot task produces. Defaults = the paper's setting."""

    n_train_classes: int = 50        # classes used in training (first n of the table)
    n_heldout_classes: int = 100     # held-out test classes (taken after the training classes)
    train_exemplars: tuple = (0,)    # exemplar indices used in training and in train/relabel/heldout eval sets
    other_exemplars: tuple = (1, 2, 3, 4)  # exemplar indices of the "other exemplars" eval set
    n_labels: int = 5
    n_context_pairs: int = 2         # exemplar-label pairs before the query (paper: 2)
    heldout_label_fraction: float = 0.2  # fraction of label combinations held out (paper: 10 -> 8 train / 2 held out)
    label_split_seed: int = 0
    noise_std: float = 0.0           # Gaussian noise added to exemplar features (paper: 0)
    features: str = "builtin"        # "builtin[:settings]", "glyphs[:settings]" or a .npy path (features.parse_feature_source)
    eval_size: int = 1000
    eval_seed: int = 1234

    def __post_init__(self):
        own = "TaskConfig"
        # frozen dataclass: normalise (e.g. numpy ints, lists) through object.__setattr__
        set_ = functools.partial(object.__setattr__, self)
        set_("n_context_pairs", check_int(own, "n_context_pairs", self.n_context_pairs, 2))
        C = self.n_context_pairs
        # The query's class plus C-1 distinct distractors must fit in each class range.
        set_("n_train_classes", check_int(own, "n_train_classes", self.n_train_classes, C))
        set_("n_heldout_classes", check_int(own, "n_heldout_classes", self.n_heldout_classes, C))
        set_("train_exemplars", _check_index_tuple(own, "train_exemplars", self.train_exemplars))
        set_("other_exemplars", _check_index_tuple(own, "other_exemplars", self.other_exemplars))
        set_("n_labels", check_int(own, "n_labels", self.n_labels, 2))
        if self.n_labels < C:
            raise ValueError(f"{own}.n_labels = {self.n_labels}: must be >= n_context_pairs "
                             f"= {C} (every context pair needs its own label)")
        n_combos = math.comb(self.n_labels, C)
        if n_combos > _MAX_LABEL_COMBOS:
            raise ValueError(f"{own}.n_labels = {self.n_labels}: with n_context_pairs = {C} "
                             f"that makes {n_combos} label combinations; at most "
                             f"{_MAX_LABEL_COMBOS} are allowed")
        f = self.heldout_label_fraction
        if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0.0 <= f < 1.0:
            raise ValueError(f"{own}.heldout_label_fraction = {f!r}: must be a number in [0, 1)")
        set_("heldout_label_fraction", float(f))
        n_held = _n_heldout_combos(n_combos, float(f))
        if n_combos - n_held < 1:
            raise ValueError(f"{own}.heldout_label_fraction = {f!r}: holds out {n_held} of the "
                             f"{n_combos} label combinations (n_labels = {self.n_labels}, "
                             f"n_context_pairs = {C}), leaving none to train on; lower it "
                             "or raise n_labels")
        set_("label_split_seed", check_int(own, "label_split_seed", self.label_split_seed, 0))
        s = self.noise_std
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not (0.0 <= s < math.inf):
            raise ValueError(f"{own}.noise_std = {s!r}: must be a finite number >= 0")
        set_("noise_std", float(s))
        if isinstance(self.features, os.PathLike):
            set_("features", os.fspath(self.features))
        if not isinstance(self.features, str) or not self.features:
            raise ValueError(f"{own}.features = {self.features!r}: must be one of "
                             f"{', '.join(FEATURE_SOURCES)} or the path of a .npy file of "
                             "shape (classes, exemplars, dim)")
        try:
            parse_feature_source(self.features)     # generator settings checked now, not at use
        except ValueError as error:
            raise ValueError(f"{own}.{error}") from None
        set_("eval_size", check_int(own, "eval_size", self.eval_size, 1))
        set_("eval_seed", check_int(own, "eval_seed", self.eval_seed, 0))

    @property
    def n_label_combos(self) -> int:
        """All C-subsets of the labels, before the train / held-out split."""
        return math.comb(self.n_labels, self.n_context_pairs)

    @property
    def n_heldout_label_combos(self) -> int:
        return _n_heldout_combos(self.n_label_combos, self.heldout_label_fraction)

    @classmethod
    def paper(cls, **overrides) -> "TaskConfig":
        """Singh et al. 2024: 50 train / 100 held-out classes, 5 labels, 2 pairs, 8/2 split."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> "TaskConfig":
        """A quick variant for tests and smoke runs: 10 + 10 classes, 200-sequence eval
        sets, and the built-in generator's recipe from before it was tuned for the paper
        preset (SMALL_FEATURES): on the tuned table the small network leaves its plateau
        after ~400 steps, on this one after ~1,300, so the plateau stays visible."""
        base = dict(n_train_classes=10, n_heldout_classes=10, eval_size=200,
                    features=SMALL_FEATURES)
        base.update(overrides)
        return cls(**base)
