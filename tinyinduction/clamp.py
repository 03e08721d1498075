"""Clamps: replace elements of a cache array during the forward pass.

A Clamp names a cache array (TransformerLens name, see cache.py), which of its elements
to replace, and the value to put there. The model applies

    array = where(mask, value, computed)

at that site, and every later computation uses the clamped array. Clamps work the same
in training and in evaluation; any number can be active at once (several on one name
apply in order, a later one wins where they overlap).

Where the gradient goes depends on the value:
- a constant (an array, or a function value(batch, cache_so_far) -> array: ideal
  patterns, zeros, grafts from another checkpoint): the replaced elements are constants,
  so the gradient reaching them stops there;
- a Link to a site of an earlier pass of the same network on the same batch (or an
  earlier site of the same pass), optionally transformed (e.g. shifted one position):
  the gradient reaching the replaced elements is sent back to that site, and from there
  through the pass that computed it. Passes(...) orders the passes; the last one gives
  the output. This is what Singh et al.'s "layer-0 perfect" and "copy" clamps need
  (subcircuits.py builds them).

Shapes are the cache's TransformerLens shapes, e.g. hook_pattern [B, H, Tq, Tk],
hook_result [B, T, H, D], hook_v [B, T, H, E], hook_logits [B, T, V].
"""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np


# ---------------------------------------------------------------- linked values


@dataclass(frozen=True)
class Link:
    """A clamp value read from another site, with the gradient flowing back into it.

    source:      cache name of the site the value comes from.
    source_pass: name of an earlier pass (see Passes), or None for the same pass (the
                 source site must then come before the clamped site).
    transform:   None (the value is the source array itself), or an object with
                 forward(source, batch) -> value and backward(d_value, batch, source_shape)
                 -> d_source (the vector-Jacobian product), both in TransformerLens
                 layout; e.g. Gather (below). It may declare `source_positions`
                 (plan.LAST: it reads the source's last position only), so that the
                 source pass computes only that position (when nobody reads the cache).
    """

    source: str
    source_pass: str | None = None
    transform: Any = None

    def __post_init__(self):
        if not isinstance(self.source, str):
            raise TypeError(f"Link source = {self.source!r}: must be a cache name (str)")
        if self.source_pass is not None and not isinstance(self.source_pass, str):
            raise TypeError(f"Link source_pass = {self.source_pass!r}: must be a pass name or None")
        if self.transform is not None and not (hasattr(self.transform, "forward")
                                               and hasattr(self.transform, "backward")):
            raise TypeError(f"Link transform = {self.transform!r}: must have forward(source, "
                            "batch) and backward(d_value, batch, source_shape)")

    def value(self, source_array, batch):
        if self.transform is None:
            return source_array
        return self.transform.forward(source_array, batch)

    def gradient(self, d_value, batch, source_shape):
        """d loss / d source [source_shape] from d loss / d value (same shape as value)."""
        if self.transform is None:
            return d_value
        return self.transform.backward(d_value, batch, source_shape)

    def __str__(self):
        where = f"{self.source_pass}:" if self.source_pass else ""
        return f"link({where}{self.source}{'' if self.transform is None else ', ' + str(self.transform)})"


@dataclass(frozen=True)
class Gather:
    """value = take(source, index, axis): a linear re-indexing (e.g. a shift by one position).

    backward adds each value element's gradient into the source element it came from.
    """

    axis: int
    index: tuple

    def forward(self, source, batch):
        return np.take(source, np.asarray(self.index), axis=self.axis)

    def backward(self, d_value, batch, source_shape):
        d_source = np.zeros(source_shape, dtype=d_value.dtype)
        moved = np.moveaxis(d_source, self.axis, 0)             # a view: adds land in d_source
        np.add.at(moved, np.asarray(self.index), np.moveaxis(d_value, self.axis, 0))
        return d_source

    def __str__(self):
        return f"gather(axis={self.axis}, index={list(self.index)})"


# ---------------------------------------------------------------- the clamp


def _check_value_array(name, value, where="value") -> np.ndarray:
    """A clamp value as a real array without NaN, or a one-line error naming what is wrong."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"clamp on {name}: {where} = {value!r}; must be a number, an array, a "
                        "function value(batch, cache) -> array, or a Link")
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"clamp on {name}: {where} has dtype {array.dtype}; must be real numbers")
    if array.dtype.kind == "c":
        raise TypeError(f"clamp on {name}: {where} is complex; must be real numbers")
    if array.dtype.kind == "b":
        raise TypeError(f"clamp on {name}: {where} is boolean; give numbers (e.g. 0.0 or 1.0)")
    # infinities are allowed: a masked attention score is -inf
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"clamp on {name}: {where} contains NaN; must be numbers (+-inf allowed)")
    return array


@dataclass(frozen=True)
class Clamp:
    """Replace `elements` of cache array `name` by `value`.

    name:     a full cache name, e.g. "blocks.0.attn.hook_pattern".
    value:    an array broadcastable to the site's shape; a function
              value(batch, cache_so_far) -> array (ideal patterns that depend on where
              the labels are); or a Link (a differentiable value from another site).
    elements: which elements to replace: None (all), a NumPy index into the site's
              array (e.g. np.s_[:, 3] = head 3 of a pattern), or a boolean mask
              broadcastable to the site's shape. Integer arrays are refused: as NumPy
              indices they would pick rows, not mark elements (use mask.astype(bool)).
    label:    a short description for printing and for a run's recorded identity.
    reads_cache: for a function value: whether it reads the cache so far. It then sees
              every array of its pass before the site, at every position (a pass that
              would skip them, because nobody else reads them, computes them for it).
              False: it reads the batch only (the paper's match and previous-token
              clamps), and the pass computes only what is read.
    """

    name: str
    value: Any
    elements: Any = None
    label: str = ""
    reads_cache: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Clamp name = {self.name!r}: must be a cache name (str), "
                            "e.g. 'blocks.0.attn.hook_pattern'")
        if not (callable(self.value) or isinstance(self.value, Link)):
            _check_value_array(self.name, self.value)
        if isinstance(self.elements, np.ndarray) and self.elements.dtype != bool:
            raise TypeError(
                f"clamp on {self.name}: elements is an array of dtype {self.elements.dtype}; "
                "give a boolean mask (e.g. mask.astype(bool)) or a NumPy index such as "
                "np.s_[:, 3]")

    @property
    def is_linked(self) -> bool:
        return isinstance(self.value, Link)

    def mask(self, shape) -> np.ndarray:
        """The boolean mask [shape] of replaced elements."""
        if self.elements is None:
            return np.ones(shape, dtype=bool)
        if isinstance(self.elements, np.ndarray):
            try:
                return np.broadcast_to(self.elements, shape)
            except ValueError:
                raise ValueError(
                    f"clamp on {self.name}: mask shape {self.elements.shape} does not "
                    f"broadcast to the array's shape {tuple(shape)}") from None
        mask = np.zeros(shape, dtype=bool)
        try:
            mask[self.elements] = True
        except (IndexError, TypeError, ValueError) as error:
            raise ValueError(
                f"clamp on {self.name}: elements {self.elements!r} do not index an array "
                f"of shape {tuple(shape)} ({error})") from None
        return mask

    def resolve_value(self, batch, cache, shape, dtype, source_array=None) -> np.ndarray:
        """The replacement value, checked to broadcast to `shape`.

        source_array: for a linked clamp, the source site's array (the model finds it).
        """
        if self.is_linked:
            value = self.value.value(source_array, batch)
        elif callable(self.value):
            value = self.value(batch, cache)
        else:
            value = self.value
        value = _check_value_array(self.name, value).astype(dtype, copy=False)
        try:   # must broadcast *to* the site's shape, not merely with it
            np.broadcast_to(value, tuple(shape))
        except ValueError:
            raise ValueError(
                f"clamp on {self.name}: value shape {value.shape} does not broadcast to the "
                f"array's shape {tuple(shape)}; give that shape or one that broadcasts") from None
        return value

    def for_rows(self, start: int, stop: int, n_total: int) -> "Clamp":
        """This clamp for sequences start..stop of a batch of n_total (evaluation chunks).

        Constant values and masks with one row per sequence ([n_total, ...], e.g. a graft
        from a clean run on the whole evaluation set) are sliced; anything else is
        shared by every chunk as it is.
        """
        def rows(array):
            if isinstance(array, np.ndarray) and array.ndim >= 1 and array.shape[0] == n_total \
                    and n_total > 1:
                return array[start:stop]
            return array
        value = self.value if callable(self.value) or self.is_linked else rows(np.asarray(self.value))
        elements = rows(self.elements) if isinstance(self.elements, np.ndarray) else self.elements
        if value is self.value and elements is self.elements:
            return self
        return Clamp(self.name, value, elements, self.label, self.reads_cache)

    def __str__(self):
        return self.label or f"Clamp({self.name}{', ' + str(self.value) if self.is_linked else ''})"


# ---------------------------------------------------------------- several passes


@dataclass(frozen=True)
class Pass:
    """One forward pass of the network on the batch, with its own clamps."""

    name: str
    clamps: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Pass name = {self.name!r}: must be a non-empty str")
        object.__setattr__(self, "clamps", tuple(self.clamps))
        for clamp in self.clamps:
            if not isinstance(clamp, Clamp):
                raise TypeError(f"pass {self.name!r}: {clamp!r} is not a Clamp")


@dataclass(frozen=True)
class Passes:
    """A forward made of passes run in order; the last pass gives the output and loss.

    A linked clamp in a pass may read a site of any earlier pass. Backward runs the
    passes in reverse, sends the gradient that reaches each linked element to its
    source site, and sums the parameter gradients of all passes.

    spec: a JSON-able description (subcircuits.py puts the condition's spec here), used
    as the clamps' identity in a run's record.
    """

    passes: tuple
    spec: Any = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "passes", tuple(self.passes))
        if not self.passes:
            raise ValueError("Passes needs at least one Pass")
        seen = set()
        for p in self.passes:
            if not isinstance(p, Pass):
                raise TypeError(f"Passes: {p!r} is not a Pass")
            if p.name in seen:
                raise ValueError(f"Passes: two passes are named {p.name!r}")
            for clamp in p.clamps:
                source = clamp.value.source_pass if clamp.is_linked else None
                if source is not None and source not in seen:
                    raise ValueError(f"pass {p.name!r}: clamp on {clamp.name} links to pass "
                                     f"{source!r}, which does not run before it "
                                     f"(earlier passes: {sorted(seen)})")
            seen.add(p.name)

    @property
    def final(self) -> Pass:
        return self.passes[-1]

    def __str__(self):
        return " | ".join(f"{p.name}: " + (", ".join(map(str, p.clamps)) or "no clamps")
                          for p in self.passes)


def as_passes(clamps) -> Passes:
    """Any clamp argument (a Clamp, a list of them, or Passes) as Passes."""
    if isinstance(clamps, Passes):
        return clamps
    if isinstance(clamps, Clamp):
        clamps = (clamps,)
    if clamps is None:
        clamps = ()
    if isinstance(clamps, (str, bytes)) or not hasattr(clamps, "__iter__"):
        raise TypeError(f"clamps = {clamps!r}: must be a Clamp, a list of Clamps, or Passes")
    return Passes((Pass("main", tuple(clamps)),))


def clamps_for_rows(clamps, start: int, stop: int, n_total: int):
    """The clamps for sequences start..stop of an n_total batch (see Clamp.for_rows)."""
    passes = as_passes(clamps)
    return Passes(tuple(Pass(p.name, tuple(c.for_rows(start, stop, n_total) for c in p.clamps))
                        for p in passes.passes), spec=passes.spec)


def describe_clamps(clamps) -> list:
    """A JSON-able description of clamps, for a run's recorded identity.

    Passes built from a spec (subcircuits.py) are described by that spec; other clamps
    by pass name and each clamp's site and label.
    """
    passes = as_passes(clamps)
    if passes.spec is not None:
        return list(passes.spec)
    described = []
    for p in passes.passes:
        for clamp in p.clamps:
            entry = {"site": clamp.name, "label": str(clamp)}
            if p.name != "main" or len(passes.passes) > 1:
                entry["pass"] = p.name
            described.append(entry)
    return described


# ---------------------------------------------------------------- ready-made clamps


def _attn_name(layer, hook):
    return f"blocks.{layer}.attn.{hook}"


def _check_index(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} = {value!r}: must be a non-negative integer")
    return int(value)


def zero_ablate_head(layer: int, head: int, where: str = "result") -> Clamp:
    """Switch head `head` of layer `layer` off by zeroing its values or its output.

    where="v" zeroes the head's values (its pattern still forms, it moves nothing; the
    paper's "ablate head"); where="result" zeroes its output in the residual stream;
    where="z" its mixed values.
    """
    if where not in ("v", "z", "result"):
        raise ValueError(f"zero_ablate_head: where = {where!r}; allowed: 'v', 'z', 'result'")
    layer, head = _check_index("layer", layer), _check_index("head", head)
    return Clamp(_attn_name(layer, f"hook_{where}"), 0.0, np.s_[:, :, head],
                 label=f"zero L{layer}H{head} {where}")


def previous_token_target(n_positions: int, strength: float = 1.0) -> np.ndarray:
    """[T, T] pattern: row i puts `strength` on i-1 and 1-strength on i; row 0 on itself."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) \
            or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength = {strength!r}: must be a number in [0, 1]")
    return _previous_token_target(int(n_positions), float(strength)).copy()


@functools.lru_cache(maxsize=32)
def _previous_token_target(n_positions, strength):
    """previous_token_target, made once per size (a clamp asks for it on every step)."""
    pattern = np.zeros((n_positions, n_positions))
    rows = np.arange(1, n_positions)
    pattern[rows, rows - 1] = strength
    pattern[rows, rows] = 1.0 - strength
    pattern[0, 0] = 1.0
    pattern.flags.writeable = False
    return pattern


def previous_token_pattern(layer: int, head: int, strength: float = 1.0,
                           label_rows_only: bool = False) -> Clamp:
    """Force head `head` of layer `layer` to be an ideal previous-token head.

    label_rows_only: clamp only the rows of the label tokens (few-shot positions 1, 3,
    ...), leaving the exemplar rows to the network.
    """
    previous_token_target(2, strength)  # a bad strength fails here, not mid-training
    layer, head = _check_index("layer", layer), _check_index("head", head)

    def value(batch, cache):
        return _previous_token_target(batch_positions(batch), float(strength))  # [T, T] broadcasts

    # label tokens of a few-shot sequence sit at the odd positions 1, 3, ..., 2C-1
    elements = np.s_[:, head, 1::2] if label_rows_only else np.s_[:, head]
    return Clamp(_attn_name(layer, "hook_pattern"), value, elements,
                 label=f"prev-token L{layer}H{head} p={strength:g}"
                       + (" label rows" if label_rows_only else ""), reads_cache=False)


def batch_positions(batch) -> int:
    """T of a batch: a token batch's window, or a few-shot batch's 2C + 1 items."""
    if hasattr(batch, "tokens"):
        return int(np.asarray(batch.tokens).shape[1])
    return 2 * int(np.asarray(batch.labels).shape[1]) + 1


def graft(name: str, source_cache, elements=None) -> Clamp:
    """Copy array `name` from another forward pass on the same batch (a constant graft).

    The source batch may be a whole evaluation set: evaluation slices per-sequence
    values chunk by chunk (Clamp.for_rows).
    """
    source = np.asarray(source_cache[name])
    return Clamp(name, source, elements, label=f"graft {name}")


def mean_ablate_head(layer: int, head: int, source_cache, where: str = "result") -> Clamp:
    """Replace a head's output by its mean over the batch of `source_cache`."""
    layer, head = _check_index("layer", layer), _check_index("head", head)
    name = _attn_name(layer, f"hook_{where}")
    mean = np.asarray(source_cache[name]).mean(axis=0, keepdims=True)
    return Clamp(name, mean, np.s_[:, :, head], label=f"mean L{layer}H{head} {where}")
