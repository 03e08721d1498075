"""Comparing a student's output with the right one, and central finite differences.

compare_outputs says what differs (shape, element, how far) and recognises mistakes that
show in the numbers: the opposite sign, a constant factor, axes in another order.
"""
from __future__ import annotations

import itertools
from typing import Callable, Optional

import numpy as np


def _axes_text(index, axes) -> str:
    if axes and len(axes) == len(index):
        return " (" + ", ".join(f"{a} {i}" for a, i in zip(axes, index)) + ")"
    return ""


def _shape_text(shape, axes) -> str:
    return f"{tuple(shape)}" + (f" [{', '.join(axes)}]" if axes and len(axes) == len(shape) else "")


def as_array(value):
    """value as a float64 array, or None if it is not numbers."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return None if array.dtype == object else array


def _axis_order_hint(got, expected, axes) -> Optional[str]:
    if got.ndim != expected.ndim or got.ndim > 5 or got.ndim < 2:
        return None
    for perm in itertools.permutations(range(expected.ndim)):
        if perm == tuple(range(expected.ndim)):
            continue
        moved = expected.transpose(perm)
        if moved.shape == got.shape and np.allclose(got, moved, rtol=1e-5, atol=1e-8):
            names = [axes[p] if axes else f"axis {p}" for p in perm]
            return f"your output is the right answer with its axes in the order [{', '.join(names)}]"
    return None


def compare_outputs(got, expected, names=("output",), axes=(), rtol=1e-6, atol=1e-9,
                    reference="the right answer") -> Optional[list]:
    """None if `got` matches `expected`, else lines saying what differs (shape, element, how far)."""
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            kind = type(got).__name__ if not isinstance(got, (tuple, list)) else f"{len(got)} values"
            return [f"your function returned {kind}; it must return a tuple of {len(expected)} "
                    f"arrays ({', '.join(names)})"]
        for i, (g, e) in enumerate(zip(got, expected)):
            name = names[i] if i < len(names) else f"output {i}"
            ax = axes[i] if i < len(axes) else ()
            problem = compare_outputs(g, e, (name,), (ax,), rtol, atol, reference)
            if problem is not None:
                return problem
        return None
    name = names[0] if names else "output"
    ax = tuple(axes[0]) if axes else ()
    expected = np.asarray(expected, dtype=np.float64)
    if got is None:
        return [f"your function returned None (is a `return` missing?); {name} should be "
                + ("a number" if expected.ndim == 0 else f"an array of shape {_shape_text(expected.shape, ax)}")]
    array = as_array(got)
    if array is None:
        return [f"{name} is a {type(got).__name__}, which is not a number or an array of numbers"]
    if array.ndim == 0 and expected.ndim > 0:
        return [f"your function returned a single number ({float(array):.6g}); {name} should be "
                f"an array of shape {_shape_text(expected.shape, ax)}"]
    if array.shape != expected.shape:
        lines = [f"{name} has shape {tuple(array.shape)} but should have shape {_shape_text(expected.shape, ax)}"]
        if array.size == expected.size:
            hint = _axis_order_hint(array, expected, ax)
            if hint:
                lines.append(hint)
        return lines
    finite = np.isfinite(array)
    should_be_finite = np.isfinite(expected)
    if np.any(~finite & should_be_finite):
        index = tuple(int(i) for i in np.argwhere(~finite & should_be_finite)[0])
        return [f"{name} element {list(index)}{_axes_text(index, ax)} is {array[index]} but should be "
                f"{expected[index]:.6g}; {int(np.sum(~finite & should_be_finite))} of {array.size} "
                "elements are not finite"]
    both = should_be_finite
    error = np.where(both, np.abs(array - np.where(both, expected, 0.0)), 0.0)
    allowed = atol + rtol * np.abs(np.where(both, expected, 0.0))
    over = error > allowed
    if not np.any(over) and np.array_equal(np.isfinite(array), should_be_finite):
        return None
    if not np.any(over):   # an infinity where a finite value belongs, or the reverse
        index = tuple(int(i) for i in np.argwhere(np.isfinite(array) != should_be_finite)[0])
        return [f"{name} element {list(index)}{_axes_text(index, ax)} is {array[index]} but should be "
                f"{expected[index]}"]
    index = np.unravel_index(int(np.argmax(np.where(over, error / allowed, -1.0))), array.shape)
    index = tuple(int(i) for i in index)
    if expected.ndim == 0:
        lines = [f"{name} is {float(array):.6g} but should be {float(expected):.6g} "
                 f"(from {reference}): off by {float(error):.3g}"]
    else:
        size = abs(expected[index])
        ratio = error[index] / size if size > 0 else None
        relative = "" if ratio is None else (f" ({ratio:.0%} of the right value)" if ratio < 10
                                             else f" ({ratio:.3g} times the right value)")
        lines = [f"{name} element {list(index)}{_axes_text(index, ax)} is {array[index]:.6g} but "
                 f"should be {expected[index]:.6g} (from {reference}): off by "
                 f"{error[index]:.3g}{relative}",
                 f"{int(over.sum())} of {array.size} elements are off by more than "
                 f"{atol:g} + {rtol:g} x |right value|"]
    lines += _value_hints(array, expected, ax)
    return lines


_SIMPLE_FACTORS = np.array([2, 3, 4, 8, 1 / 2, 1 / 3, 1 / 4, 1 / 8, 2 ** 0.5, 3 ** 0.5, 2 ** -0.5, 3 ** -0.5])


def _value_hints(array, expected, axes) -> list:
    """Recognisable mistakes: a flipped sign, a constant factor, swapped axes."""
    if not np.all(np.isfinite(expected)) or not np.any(expected):
        return []
    if np.allclose(array, -expected, rtol=1e-5, atol=1e-9):
        return ["it is the right answer with the opposite sign"]
    factor = float(np.vdot(array, expected) / np.vdot(expected, expected))
    # one number is always some multiple of another: name a factor there only when it is a
    # simple one (2, 1/2, sqrt(2), ...), which a missing or extra term would give
    simple = np.count_nonzero(expected) > 1 or np.any(np.isclose(abs(factor), _SIMPLE_FACTORS, rtol=1e-6))
    if abs(factor - 1) > 1e-6 and simple and np.allclose(array, factor * expected, rtol=1e-5, atol=1e-9):
        return [f"it is the right answer times {factor:.6g}: a factor is missing or extra"]
    hint = _axis_order_hint(array, expected, axes)
    return [hint] if hint else []


# ---------------------------------------------------------------- finite differences


def numerical_gradient(loss: Callable[[np.ndarray], float], x, h: float = 1e-6) -> np.ndarray:
    """Central differences (loss(x + h e_i) - loss(x - h e_i)) / 2h for every element of x.

    x [...] float64 -> gradient [...]. Entries of x that are not finite (e.g. masked
    -inf scores) are constants: their gradient is 0.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        if not np.isfinite(flat[i]):
            continue
        saved = flat[i]
        flat[i] = saved + h
        plus = loss(x)
        flat[i] = saved - h
        minus = loss(x)
        flat[i] = saved
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad
