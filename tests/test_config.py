"""Config validation: every invalid value raises with its field named; NumPy numbers are
accepted and stored as plain Python numbers; booleans never pass as integers."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyinduction.config import ModelConfig, TrainConfig, config_from_dict

NOT_NUMBERS = st.sampled_from([None, "3", b"3", [1], {"a": 1}, 1j, object()])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), -float("inf"), np.float32("inf")])
BOOLEANS = st.sampled_from([True, False, np.bool_(True)])


def bad_integers(minimum):
    return st.one_of(NOT_NUMBERS, NON_FINITE, BOOLEANS,
                     st.integers(max_value=minimum - 1),
                     st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)),
                     st.integers(min_value=-2**62, max_value=minimum - 1).map(np.int64))


def bad_positive_reals():
    return st.one_of(NOT_NUMBERS, NON_FINITE, BOOLEANS, st.floats(max_value=0.0, allow_nan=False),
                     st.integers(max_value=0))


def bad_unit_interval():
    return st.one_of(NOT_NUMBERS, NON_FINITE, BOOLEANS,
                     st.floats(min_value=1.0, allow_infinity=False),
                     st.floats(max_value=0.0, exclude_max=True, allow_infinity=False))


TRAIN_FIELDS = {
    "seed": bad_integers(0), "steps": bad_integers(1), "batch_size": bad_integers(1),
    "eval_every": bad_integers(1), "checkpoint_every": bad_integers(1), "log_every": bad_integers(0),
    "lr": bad_positive_reals(), "adam_eps": bad_positive_reals(),
    "beta1": bad_unit_interval(), "beta2": bad_unit_interval(),
}
MODEL_FIELDS = {
    "n_layers": bad_integers(1), "n_heads": bad_integers(1), "d_model": bad_integers(1),
    "d_head": bad_integers(1), "n_ctx": bad_integers(1), "d_feature": bad_integers(1),
    "n_labels": bad_integers(2), "rope_base": bad_positive_reals(),
    "layernorm_eps": bad_positive_reals(),
    "positional": st.one_of(NOT_NUMBERS, st.sampled_from(["RoPE", "", "alibi"])),
    "dtype": st.sampled_from([None, "float16", "int32", [1], "", 3, np.int32, np.dtype("float16")]),
    "input_kind": st.one_of(NOT_NUMBERS, st.sampled_from(["text", ""])),
    "layernorm": st.one_of(NOT_NUMBERS, st.sampled_from([0, 1, "yes", 1.0])),
}


def _field_and_bad_value(fields):
    return st.sampled_from(sorted(fields)).flatmap(lambda f: st.tuples(st.just(f), fields[f]))


@settings(max_examples=200)   # each example takes microseconds
@given(_field_and_bad_value(TRAIN_FIELDS))
def test_every_invalid_train_setting_raises_with_its_field_named(case):
    field, value = case
    with pytest.raises((ValueError, TypeError), match=f"TrainConfig.{field} = "):
        TrainConfig(**{field: value})


@settings(max_examples=200)
@given(_field_and_bad_value(MODEL_FIELDS))
def test_every_invalid_model_setting_raises_with_its_field_named(case):
    field, value = case
    with pytest.raises((ValueError, TypeError), match=f"ModelConfig.{field} = "):
        ModelConfig(**{field: value})


def test_d_vocab_of_a_token_model_is_checked():
    for value in (True, 1, 2.5, None):
        with pytest.raises(ValueError, match="ModelConfig.d_vocab = "):
            ModelConfig(input_kind="tokens", d_vocab=value)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    config = TrainConfig(seed=np.int64(3), steps=np.int32(10), batch_size=np.uint8(8),
                         lr=np.float32(1e-3), beta1=np.float64(0.9), log_every=np.int16(0))
    assert config.seed == 3 and type(config.seed) is int and type(config.steps) is int
    assert type(config.lr) is float and type(config.beta1) is float
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()   # JSON-able as it is
    model = ModelConfig(n_heads=np.int64(4), d_head=np.int64(8), rope_base=np.float32(500),
                        dtype=np.float64, layernorm=np.bool_(False))
    assert type(model.n_heads) is int and model.dtype == "float64" and model.layernorm is False
    assert config_from_dict(TrainConfig, config.to_dict()) == config


def test_replace_and_from_dict_say_what_is_wrong():
    with pytest.raises(TypeError, match="unknown fields \\['step'\\]"):
        TrainConfig().replace(step=3)
    with pytest.raises(TypeError, match="must be a dict"):
        ModelConfig.from_dict([("n_heads", 2)])
    with pytest.raises(ValueError, match="unknown fields \\['heads'\\]"):
        ModelConfig.from_dict({"heads": 2})


def test_model_config_hash_is_cached_and_pickles_anew():
    """ModelConfig hashes once (training looks it up in caches every step); a pickled copy
    (a sweep worker's) hashes as a config made in its own process does."""
    import pickle
    import subprocess
    import sys
    config = ModelConfig(n_heads=4, dtype="float64")
    assert hash(config) == hash(ModelConfig(n_heads=4, dtype="float64")) != hash(config.replace(n_heads=2))
    assert "_hash" not in config.to_dict()
    script = ("import pickle, sys; from tinyinduction.config import ModelConfig; "
              "c = pickle.loads(sys.stdin.buffer.read()); "
              "print(hash(c) == hash(ModelConfig(n_heads=4, dtype='float64')) and c == ModelConfig(n_heads=4, dtype='float64'))")
    out = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(config), capture_output=True,
                         env={**__import__("os").environ, "PYTHONHASHSEED": "123"}, check=True)
    assert out.stdout.strip() == b"True"

