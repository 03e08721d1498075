"""Evaluation-time interventions for the heads experiments, as clamps (compose with others).

- head sets ablated: zero_ablate_heads (the output, hook_result) or the paper's values
  (subcircuits.ablate_heads);
- pattern-preserving ablation: every layer's attention pattern is pinned to the clean
  run's, and the heads' outputs are zeroed, so only value (V-composition) paths change;
- value-preserving ablation: the layer-1 heads' values are pinned to the clean run's, and
  the heads' outputs are zeroed, so only the query/key (Q/K-composition) paths change;
- the direct path of layer 0 to the output: the final residual stream loses layer 0's
  attention output while layer 1 still reads it.

Pinned arrays are grafts from a clean cache of the same batch (constants: no gradient).
Head sets are lists of (layer, head) pairs; every function checks them against the config.
"""
from __future__ import annotations

import numbers

import numpy as np

from .clamp import Clamp, graft, zero_ablate_head
from .config import ModelConfig


def check_head_set(config: ModelConfig, heads, what="heads", allow_empty=False) -> list[tuple[int, int]]:
    """[(layer, head), ...] validated against the config; a one-line error otherwise."""
    try:
        pairs = [tuple(pair) for pair in heads]
    except TypeError:
        raise ValueError(f"{what} = {heads!r}: must be a list of (layer, head) pairs") from None
    if not pairs and not allow_empty:
        raise ValueError(f"{what} is empty: give at least one (layer, head) pair")
    for pair in pairs:
        ok = len(pair) == 2 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                    for v in pair)
        if not ok or not 0 <= pair[0] < config.n_layers or not 0 <= pair[1] < config.n_heads:
            raise ValueError(f"{what}: {pair!r} is not a (layer, head) of this model; layers "
                             f"0..{config.n_layers - 1}, heads 0..{config.n_heads - 1}")
    return [(int(layer), int(head)) for layer, head in pairs]


def zero_ablate_heads(config: ModelConfig, heads, where: str = "result") -> list[Clamp]:
    """Zero the output (or values, where="v") of every (layer, head) in `heads`."""
    return [zero_ablate_head(layer, head, where) for layer, head in check_head_set(config, heads)]


def pattern_preserving_ablation(config: ModelConfig, heads, clean_cache) -> list[Clamp]:
    """Every layer's patterns from the clean run, then the heads' outputs zeroed."""
    heads = check_head_set(config, heads)
    pins = [graft(f"blocks.{layer}.attn.hook_pattern", clean_cache) for layer in range(config.n_layers)]
    return pins + zero_ablate_heads(config, heads)


def value_preserving_ablation(config: ModelConfig, heads, clean_cache, value_layer: int = 1) -> list[Clamp]:
    """The values of layer `value_layer` from the clean run, then the heads' outputs zeroed."""
    heads = check_head_set(config, heads)
    if not 0 <= value_layer < config.n_layers:
        raise ValueError(f"value_layer = {value_layer}: the model has layers 0..{config.n_layers - 1}")
    return [graft(f"blocks.{value_layer}.attn.hook_v", clean_cache)] + zero_ablate_heads(config, heads)


def direct_path_ablation(config: ModelConfig, layer: int = 0) -> Clamp:
    """The final residual stream without layer `layer`'s attention output; later layers
    still read it. Final resid = resid_pre(0) + sum of the other layers' attn_out, read
    from this pass's own cache, so it composes with any other clamp."""
    if config.n_layers < 2 or not 0 <= layer < config.n_layers - 1:
        raise ValueError(f"direct path of layer {layer}: needs a later layer to read it; the model "
                         f"has layers 0..{config.n_layers - 1}")
    last = config.n_layers - 1

    def value(batch, cache):
        resid = np.array(cache["blocks.0.hook_resid_pre"])                 # [B, T, D]
        for other in range(config.n_layers):
            if other != layer:
                resid += cache[f"blocks.{other}.hook_attn_out"]
        return resid

    return Clamp(f"blocks.{last}.hook_resid_post", value,
                 label=f"direct path of layer {layer} removed")
