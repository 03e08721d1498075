"""Clamps: replace elements of a cache array during the forward pass.

A Clamp names a cache array (TransformerLens name, see cache.py), which of its elements
to replace, and the value to put there. The model applies

    array = where(mask, value, computed)

at that site, and every later computation uses the clamped array. In the backward pass
the gradient reaching a replaced element stops there: the element is a constant.
Clamps work the same in training and in evaluation; any number can be active at once
(several on one name apply in order).

Shapes are the cache's TransformerLens shapes, e.g. hook_pattern [B, H, Tq, Tk],
hook_result [B, T, H, D], hook_v [B, T, H, E].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Clamp:
    """Replace `elements` of cache array `name` by `value`.

    name:     a full cache name, e.g. "blocks.0.attn.hook_pattern".
    value:    an array broadcastable to the site's shape, or a function
              value(batch, cache_so_far) -> array (ideal patterns that depend on where
              the labels are; grafts from another model's forward on the same batch).
    elements: which elements to replace: None (all), a NumPy index into the site's
              array (e.g. np.s_[:, 3] = head 3 of a pattern), or a boolean mask
              broadcastable to the site's shape.
    label:    a short description for printing.
    """

    name: str
    value: Any
    elements: Any = None
    label: str = ""

    def mask(self, shape) -> np.ndarray:
        """The boolean mask [shape] of replaced elements."""
        if self.elements is None:
            return np.ones(shape, dtype=bool)
        if isinstance(self.elements, np.ndarray) and self.elements.dtype == bool:
            try:
                return np.broadcast_to(self.elements, shape)
            except ValueError:
                raise ValueError(
                    f"clamp on {self.name}: mask shape {self.elements.shape} does not "
                    f"broadcast to the array's shape {tuple(shape)}") from None
        mask = np.zeros(shape, dtype=bool)
        try:
            mask[self.elements] = True
        except (IndexError, TypeError) as error:
            raise ValueError(
                f"clamp on {self.name}: elements {self.elements!r} do not index an array "
                f"of shape {tuple(shape)} ({error})") from None
        return mask

    def resolve_value(self, batch, cache, shape, dtype) -> np.ndarray:
        """The replacement value, checked to broadcast to `shape`."""
        value = self.value(batch, cache) if callable(self.value) else self.value
        value = np.asarray(value, dtype=dtype)
        try:   # must broadcast *to* the site's shape, not merely with it
            np.broadcast_to(value, tuple(shape))
        except ValueError:
            raise ValueError(
                f"clamp on {self.name}: value shape {value.shape} does not broadcast to the "
                f"array's shape {tuple(shape)}; give that shape or one that broadcasts") from None
        return value

    def __str__(self):
        return self.label or f"Clamp({self.name})"


# ---------------------------------------------------------------- ready-made clamps


def _attn_name(layer, hook):
    return f"blocks.{layer}.attn.{hook}"


def zero_ablate_head(layer: int, head: int, where: str = "result") -> Clamp:
    """Switch head `head` of layer `layer` off by zeroing its values or its output.

    where="v" zeroes the head's values (its pattern still forms, it moves nothing);
    where="result" zeroes its output in the residual stream; where="z" its mixed values.
    """
    if where not in ("v", "z", "result"):
        raise ValueError(f"zero_ablate_head: where = {where!r}; allowed: 'v', 'z', 'result'")
    return Clamp(_attn_name(layer, f"hook_{where}"), 0.0, np.s_[:, :, head],
                 label=f"zero L{layer}H{head} {where}")


def previous_token_target(n_positions: int, strength: float = 1.0) -> np.ndarray:
    """[T, T] pattern: row i puts `strength` on i-1 and 1-strength on i; row 0 on itself."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength = {strength!r}: must be in [0, 1]")
    pattern = np.zeros((n_positions, n_positions))
    rows = np.arange(1, n_positions)
    pattern[rows, rows - 1] = strength
    pattern[rows, rows] = 1.0 - strength
    pattern[0, 0] = 1.0
    return pattern


def previous_token_pattern(layer: int, head: int, strength: float = 1.0) -> Clamp:
    """Force head `head` of layer `layer` to be an ideal previous-token head."""
    previous_token_target(2, strength)  # a bad strength fails here, not mid-training

    def value(batch, cache):
        n_positions = cache["hook_embed"].shape[1]
        return previous_token_target(n_positions, strength)          # [T, T] broadcasts

    return Clamp(_attn_name(layer, "hook_pattern"), value, np.s_[:, head],
                 label=f"prev-token L{layer}H{head} s={strength:g}")


def graft(name: str, source_cache, elements=None) -> Clamp:
    """Copy array `name` from another forward pass on the same batch (a graft)."""
    source = source_cache[name]
    return Clamp(name, source, elements, label=f"graft {name}")


def mean_ablate_head(layer: int, head: int, source_cache, where: str = "result") -> Clamp:
    """Replace a head's output by its mean over the batch of `source_cache`."""
    name = _attn_name(layer, f"hook_{where}")
    mean = np.asarray(source_cache[name]).mean(axis=0, keepdims=True)
    return Clamp(name, mean, np.s_[:, :, head], label=f"mean L{layer}H{head} {where}")
