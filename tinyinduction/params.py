"""Parameters of the attention-only transformer: names, shapes, initialisation, checks.

A flat dict with TransformerLens names and shapes (config.py has the sizes):
    embed.W_exemplar [F, D], embed.b_exemplar [D], embed.W_label [V, D]  (few-shot)
    embed.W_E [V, D] (tokens), pos_embed.W_pos [n_ctx, D] (learned positions)
    blocks.{l}.ln1.w|b [D], blocks.{l}.attn.W_Q|W_K|W_V [H, D, E], W_O [H, E, D],
    blocks.{l}.attn.smear_alpha [H] (smeared key), ln_final.w|b [D],
    unembed.W_U [D, V], unembed.b_U [V]
"""
from __future__ import annotations

import functools

import numpy as np

from .config import ModelConfig


def _truncated_normal(rng, shape, std):
    """Normal truncated to +-2 std, rescaled to keep variance std^2 (LeCun-normal as in flax)."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * (std / 0.87962566103423978)


def param_shapes(config: ModelConfig) -> dict[str, tuple]:
    """Every parameter's name and shape, in a fixed order."""
    return dict(_param_shapes(config))


@functools.lru_cache(maxsize=64)
def _param_shapes(config: ModelConfig) -> tuple:
    c = config
    shapes = {}
    if c.input_kind == "fewshot":
        shapes["embed.W_exemplar"] = (c.d_feature, c.d_model)
        shapes["embed.b_exemplar"] = (c.d_model,)
        shapes["embed.W_label"] = (c.n_labels, c.d_model)
    else:
        shapes["embed.W_E"] = (c.d_vocab, c.d_model)
    if c.positional == "learned":
        shapes["pos_embed.W_pos"] = (c.n_ctx, c.d_model)
    for layer in range(c.n_layers):
        p = f"blocks.{layer}."
        if c.layernorm:
            shapes[p + "ln1.w"] = (c.d_model,)
            shapes[p + "ln1.b"] = (c.d_model,)
        for w in ("W_Q", "W_K", "W_V"):
            shapes[p + "attn." + w] = (c.n_heads, c.d_model, c.d_head)
        shapes[p + "attn.W_O"] = (c.n_heads, c.d_head, c.d_model)
        if c.smeared_key:
            shapes[p + "attn.smear_alpha"] = (c.n_heads,)
    if c.layernorm:
        shapes["ln_final.w"] = (c.d_model,)
        shapes["ln_final.b"] = (c.d_model,)
    shapes["unembed.W_U"] = (c.d_model, c.n_outputs)
    shapes["unembed.b_U"] = (c.n_outputs,)
    return tuple(shapes.items())


@functools.lru_cache(maxsize=64)
def _names_and_shapes(config: ModelConfig) -> tuple:
    """([names], [shapes]) of the parameters, for check_params' quick path."""
    return [name for name, _ in _param_shapes(config)], [shape for _, shape in _param_shapes(config)]


def init_params(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Initialise as Singh et al.: LeCun-normal (truncated) weights, zero biases,
    label/token/position embeddings normal(0, 0.02), LayerNorm gain 1 and bias 0."""
    rng = np.random.default_rng([seed, 0])
    params = {}
    for name, shape in param_shapes(config).items():
        leaf = name.rsplit(".", 1)[1]
        if leaf in ("b_exemplar", "b_U", "b", "smear_alpha"):   # smear_alpha 0: sigmoid 1/2
            value = np.zeros(shape)
        elif leaf == "w":
            value = np.ones(shape)
        elif leaf in ("W_label", "W_E", "W_pos"):
            value = rng.normal(0.0, 0.02, shape)
        elif leaf == "W_O":   # fan-in of the output projection is all heads' values
            value = _truncated_normal(rng, shape, (shape[0] * shape[1]) ** -0.5)
        elif leaf in ("W_Q", "W_K", "W_V"):
            value = _truncated_normal(rng, shape, shape[1] ** -0.5)
        else:                 # W_exemplar [F, D], W_U [D, V]: fan-in is the first axis
            value = _truncated_normal(rng, shape, shape[0] ** -0.5)
        params[name] = value.astype(config.dtype)
    return params


def check_params(params, config: ModelConfig):
    """Fail with a clear message if params do not fit the config."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config = {config!r}: must be a ModelConfig")
    if not isinstance(params, dict):
        raise TypeError(f"params is a {type(params).__name__}; must be a dict name -> array "
                        "(init_params, load_params)")
    names, shapes = _names_and_shapes(config)
    if len(params) == len(names):   # the common case, checked cheaply (every training step calls this)
        try:
            if [params[name].shape for name in names] == shapes:
                return
        except (KeyError, AttributeError):
            pass
    expected = dict(_param_shapes(config))
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise ValueError(f"parameters do not match the config: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if not isinstance(params[name], np.ndarray):
            raise TypeError(f"parameter {name} is a {type(params[name]).__name__}; must be a "
                            f"NumPy array of shape {shape}")
        if tuple(params[name].shape) != shape:
            raise ValueError(f"parameter {name} has shape {params[name].shape}; the config needs {shape}")


