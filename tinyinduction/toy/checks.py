"""Argument checks for the toy model: a failure names the argument, its value and what
is allowed (TypeError for the wrong kind of value, ValueError for a value out of range).
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import numpy as np

from ..checks import check_number, float_array, is_real_number, short_repr  # noqa: F401 (re-exported)


_short = short_repr


def check_positive(name: str, value) -> float:
    number = check_number(name, value, "a positive finite number")
    if number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {_short(value)}")
    return number


def check_integer(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise (TypeError if not is_real_number(value) else ValueError)(
            f"{name} must be {allowed}, got {_short(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {_short(value)}")
    return int(value)


def check_depth(depth, allowed: Optional[Sequence[int]] = None) -> int:
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (numbers.Integral, np.integer)) \
            or depth < 1:
        error = TypeError if not is_real_number(depth) else ValueError
        raise error(f"depth must be an integer >= 1, got {_short(depth)}")
    if allowed is not None and depth not in allowed:
        raise ValueError(
            f"depth must be one of {tuple(allowed)} for the closed forms, got {depth}; "
            "use simulate_flow for other depths")
    return int(depth)


def check_fraction(name: str, value) -> float:
    number = check_number(name, value, "a number in (0, 1)")
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {_short(value)}")
    return number


def check_w0(w0, s: float, depth: int) -> float:
    c = s ** (1.0 / depth)
    allowed = f"in (0, s^(1/D)) = (0, {c:.6g}) for s={s:g}, depth={depth}"
    number = check_number("w0", w0, f"a number {allowed}")
    if not 0.0 < number < c:
        where = "not above 0" if not number > 0 else "at or above the target factor s^(1/D)"
        raise ValueError(f"w0 must be {allowed}; got {number} ({where})")
    return number


def check_balanced(depth, s, w0, tau, allowed=(1, 2, 3)) -> tuple[int, float, float, float]:
    """(depth, s, w0, tau) of a balanced model with a closed form, checked."""
    depth = check_depth(depth, allowed)
    s = check_positive("s", s)
    tau = check_positive("tau", tau)
    w0 = check_w0(w0, s, depth)
    return depth, s, w0, tau


def check_times(t) -> np.ndarray:
    """Times t [...] (finite, >= 0) as float64."""
    t = float_array("t", t, "an array of finite times >= 0")
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"t must be finite and >= 0, got {_short(t)}")
    return t


def check_factors(name: str, w) -> np.ndarray:
    """Factors w [D] (D >= 1, finite) as a float64 1-D array."""
    w = np.atleast_1d(float_array(name, w, "a 1-D array of D >= 1 finite factors"))
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"{name} must be a 1-D array of D >= 1 factors, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite, got {_short(w)}")
    return w
