"""Validated configuration dataclasses: the model and the training run.

The task's configuration (TaskConfig) lives with the task, in tasks/fewshot_config.py; the
named presets, which combine all three, in presets.py. Every field is checked when the
object is made; a bad value raises a one-line ValueError naming the field, the value and
what is allowed. This module imports nothing from the package: everything may use it.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np


POSITIONAL_KINDS = ("rope", "learned", "none")
INPUT_KINDS = ("fewshot", "tokens")
DTYPES = ("float32", "float64")


def _fail(owner, field, value, allowed):
    raise ValueError(f"{owner}.{field} = {value!r} is invalid: {allowed}")


def _set(config, field, value):
    object.__setattr__(config, field, value)   # frozen dataclass: store the normalised value


def _integer(config, field, minimum, allowed=None):
    """An integer >= minimum (NumPy integers accepted and stored as int; booleans refused)."""
    value = getattr(config, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        default = "must be a positive integer" if minimum == 1 else f"must be an integer >= {minimum}"
        _fail(type(config).__name__, field, value, allowed or default)
    _set(config, field, int(value))


def _real(config, field, low, high=math.inf, low_open=True, high_open=True, allowed=None):
    """A finite real number in the interval (stored as float; booleans and NaN/inf refused)."""
    value = getattr(config, field)
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        _fail(type(config).__name__, field, value, allowed or "must be a finite positive number")
    _set(config, field, float(value))


def _choice(config, field, choices):
    value = getattr(config, field)
    if not isinstance(value, str) or value not in choices:
        _fail(type(config).__name__, field, value, f"allowed: {choices}")
    _set(config, field, str(value))


def require_config(value, cls, argument: str):
    """Raise a TypeError naming `argument` unless value is a `cls` (e.g. a plain dict)."""
    if not isinstance(value, cls):
        hint = f"; build one with {cls.__name__}.from_dict(d)" if isinstance(value, dict) else ""
        raise TypeError(f"{argument} = {value!r:.80}: must be a {cls.__name__}, "
                        f"not {type(value).__name__}{hint}")
    return value


def config_from_dict(cls, data: dict):
    """Rebuild any of the config dataclasses from its JSON dict (validated again)."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict: data = {data!r:.80} must be a dict, "
                        f"not {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}; allowed: {sorted(known)}")
    values = dict(data)
    for f in dataclasses.fields(cls):   # JSON turns tuples into lists
        if isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


class _Replaceable:
    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"{type(self).__name__}.replace: unknown fields {unknown}; "
                            f"allowed: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class ModelConfig(_Replaceable):
    """An attention-only transformer. Defaults are the Singh et al. (2024) network."""

    n_layers: int = 2
    n_heads: int = 8
    d_model: int = 64
    d_head: int = 8
    positional: str = "rope"        # "rope" (GPT-J interleaved), "learned" (absolute), "none"
    rope_base: float = 10000.0
    layernorm: bool = True          # pre-LayerNorm before each block and before the unembedding
    layernorm_eps: float = 1e-5
    dtype: str = "float32"          # float64 for gradient checks
    input_kind: str = "fewshot"     # "fewshot" (exemplar features + labels) or "tokens" (ids)
    d_feature: int = 512            # fewshot: exemplar feature size
    n_labels: int = 5               # fewshot: label vocabulary, also the output size
    d_vocab: int = 0                # tokens: input vocabulary (and output size)
    n_ctx: int = 5                  # longest sequence (the learned position table's length)
    smeared_key: bool = False       # Olsson et al.: key_j = s k_j + (1 - s) k_{j-1}, s = sigmoid(alpha) per head

    def __post_init__(self):
        for field in ("n_layers", "n_heads", "d_model", "d_head", "n_ctx"):
            _integer(self, field, 1)
        _choice(self, "positional", POSITIONAL_KINDS)
        if self.positional == "rope" and self.d_head % 2:
            _fail("ModelConfig", "d_head", self.d_head,
                  "RoPE rotates pairs of features, so d_head must be even")
        _real(self, "rope_base", 0.0)
        _real(self, "layernorm_eps", 0.0)
        if not isinstance(self.layernorm, (bool, np.bool_)):
            _fail("ModelConfig", "layernorm", self.layernorm, "must be True or False")
        _set(self, "layernorm", bool(self.layernorm))
        if isinstance(self.dtype, (np.dtype, type)):    # np.float32, np.dtype("float64")
            try:
                _set(self, "dtype", np.dtype(self.dtype).name)
            except TypeError:
                pass
        _choice(self, "dtype", DTYPES)
        _choice(self, "input_kind", INPUT_KINDS)
        fewshot = self.input_kind == "fewshot"
        _integer(self, "d_feature", 1)
        _integer(self, "n_labels", 2 if fewshot else 0,
                 "needs at least 2 labels" if fewshot else None)
        _integer(self, "d_vocab", 0 if fewshot else 2,
                 None if fewshot else "token inputs need a vocabulary of at least 2")
        if type(self.smeared_key).__name__ not in ("bool", "bool_"):
            _fail("ModelConfig", "smeared_key", self.smeared_key, "must be True or False")
        object.__setattr__(self, "smeared_key", bool(self.smeared_key))
        # hashed once: every step looks the config up in a few caches (plans, shapes)
        object.__setattr__(self, "_hash", hash(dataclasses.astuple(self)))

    def __hash__(self):
        return self._hash

    def __getstate__(self):   # a pickled copy hashes anew: str hashes differ between processes
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        object.__setattr__(self, "_hash", hash(dataclasses.astuple(self)))

    @property
    def n_outputs(self) -> int:
        """V: the number of logits (labels for the few-shot task, the vocabulary otherwise)."""
        return self.n_labels if self.input_kind == "fewshot" else self.d_vocab

    @classmethod
    def paper(cls, **changes) -> "ModelConfig":
        """Singh et al. 2024: 2 layers x 8 heads, d_model 64, d_head 8, RoPE, pre-LN."""
        return cls(**changes)

    @classmethod
    def small(cls, **changes) -> "ModelConfig":
        """A reduced network for tests and quick lessons (2 layers x 2 heads, d_model 32)."""
        return cls(**{"n_heads": 2, "d_model": 32, "d_head": 8, **changes})


@dataclass(frozen=True)
class TrainConfig(_Replaceable):
    """Optimiser, schedule and bookkeeping. Defaults are the paper's main run."""

    seed: int = 5                   # initialisation and data order
    steps: int = 31_250             # 1e6 sequences at batch 32
    batch_size: int = 32
    lr: float = 1e-5
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    eval_every: int = 500           # steps between evaluations (~16 points across the drop)
    checkpoint_every: int = 2500    # steps between checkpoints (the last step is always saved)
    log_every: int = 1000           # steps between progress lines (0 = silent)

    def __post_init__(self):
        _integer(self, "seed", 0)
        for field in ("steps", "batch_size", "eval_every", "checkpoint_every"):
            _integer(self, field, 1)
        _integer(self, "log_every", 0, "must be an integer >= 0 (0 = silent)")
        _real(self, "lr", 0.0)
        _real(self, "adam_eps", 0.0)
        for field in ("beta1", "beta2"):
            _real(self, field, 0.0, 1.0, low_open=False, allowed="must be a number in [0, 1)")

    @classmethod
    def paper(cls, **changes) -> "TrainConfig":
        return cls(**changes)


__all__ = ["ModelConfig", "TrainConfig", "config_from_dict", "require_config"]
