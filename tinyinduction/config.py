"""Validated configuration dataclasses: the model and the training run.

The task's configuration (TaskConfig) lives with the task in tasks/fewshot.py and is
re-exported here. Every field is checked when the object is made; a bad value raises a
one-line ValueError naming the field, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .tasks.fewshot import TaskConfig

POSITIONAL_KINDS = ("rope", "learned", "none")
INPUT_KINDS = ("fewshot", "tokens")
DTYPES = ("float32", "float64")


def _fail(owner, field, value, allowed):
    raise ValueError(f"{owner}.{field} = {value!r} is invalid: {allowed}")


def _positive_int(owner, field, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        _fail(owner, field, value, "must be a positive integer")


def _positive_float(owner, field, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        _fail(owner, field, value, "must be a positive number")


def config_from_dict(cls, data: dict):
    """Rebuild any of the config dataclasses from its JSON dict (validated again)."""
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
        name = "ModelConfig"
        for field in ("n_layers", "n_heads", "d_model", "d_head", "n_ctx"):
            _positive_int(name, field, getattr(self, field))
        if self.positional not in POSITIONAL_KINDS:
            _fail(name, "positional", self.positional, f"allowed: {POSITIONAL_KINDS}")
        if self.positional == "rope" and self.d_head % 2:
            _fail(name, "d_head", self.d_head, "RoPE rotates pairs of features, so d_head must be even")
        _positive_float(name, "rope_base", self.rope_base)
        _positive_float(name, "layernorm_eps", self.layernorm_eps)
        if not isinstance(self.layernorm, bool):
            _fail(name, "layernorm", self.layernorm, "must be True or False")
        if self.dtype not in DTYPES:
            _fail(name, "dtype", self.dtype, f"allowed: {DTYPES}")
        if self.input_kind not in INPUT_KINDS:
            _fail(name, "input_kind", self.input_kind, f"allowed: {INPUT_KINDS}")
        if self.input_kind == "fewshot":
            _positive_int(name, "d_feature", self.d_feature)
            if not isinstance(self.n_labels, int) or self.n_labels < 2:
                _fail(name, "n_labels", self.n_labels, "needs at least 2 labels")
        else:
            if not isinstance(self.d_vocab, int) or self.d_vocab < 2:
                _fail(name, "d_vocab", self.d_vocab, "token inputs need a vocabulary of at least 2")
        if type(self.smeared_key).__name__ not in ("bool", "bool_"):
            _fail("ModelConfig", "smeared_key", self.smeared_key, "must be True or False")
        object.__setattr__(self, "smeared_key", bool(self.smeared_key))

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
        name = "TrainConfig"
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            _fail(name, "seed", self.seed, "must be a non-negative integer")
        for field in ("steps", "batch_size", "eval_every", "checkpoint_every"):
            _positive_int(name, field, getattr(self, field))
        if not isinstance(self.log_every, int) or self.log_every < 0:
            _fail(name, "log_every", self.log_every, "must be a non-negative integer (0 = silent)")
        _positive_float(name, "lr", self.lr)
        _positive_float(name, "adam_eps", self.adam_eps)
        for field in ("beta1", "beta2"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                _fail(name, field, value, "must be in [0, 1)")

    @classmethod
    def paper(cls, **changes) -> "TrainConfig":
        return cls(**changes)


PRESETS = ("paper", "small")


def preset(name: str) -> tuple[ModelConfig, TaskConfig, TrainConfig]:
    """(model, task, train) configs of a named preset.

    paper: Singh et al. 2024 (2 layers x 8 heads, d_model 64, lr 1e-5, 31,250 steps).
    small: 2 layers x 2 heads, d_model 32, 10 training classes, lr 1e-3, 2,000 steps:
           the plateau near ln 2 and the phase change in well under a minute.
    """
    if name == "paper":
        return ModelConfig.paper(), TaskConfig.paper(), TrainConfig.paper()
    if name == "small":
        return (ModelConfig.small(), TaskConfig.small(),
                TrainConfig(steps=2000, lr=1e-3, eval_every=50, checkpoint_every=500, log_every=500))
    raise ValueError(f"preset = {name!r}; allowed: {PRESETS}")


__all__ = ["ModelConfig", "TrainConfig", "TaskConfig", "config_from_dict", "preset", "PRESETS"]
