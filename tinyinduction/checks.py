"""Argument checks shared across the package (phases.py, toy/, the tasks' configs and
feature tables): a failure names the argument, its value and what is allowed (TypeError
for the wrong kind of value, ValueError for a value out of range; check_int, for config
fields, a ValueError either way). Imports nothing from the package: anything may use it."""
from __future__ import annotations

import math
import numbers

import numpy as np


def short_repr(value) -> str:
    """repr(value), cut to 80 characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_real_number(value) -> bool:
    """A real scalar (Python or NumPy int/float, or a 0-d numeric array); not a bool or str."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


def check_number(name: str, value, allowed: str = "a finite number") -> float:
    """value as a finite float, or an error naming `name`."""
    if not is_real_number(value):
        raise TypeError(f"{name} must be {allowed}, got {short_repr(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {allowed}, got {short_repr(value)}")
    return number


def check_integer(name: str, value, minimum: int) -> int:
    """value as an int >= minimum (NumPy integers too, booleans not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {short_repr(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_int(owner: str, name: str, value, minimum: int) -> int:
    """A config field as an int >= minimum: ValueError "owner.name = value: ..." otherwise
    (bool is an int subclass, but `n_labels=True` is surely a mistake)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}.{name} = {value!r}: must be an integer >= {minimum}")
    return int(value)


def float_array(name: str, value, allowed: str) -> np.ndarray:
    """value as a float64 array; TypeError naming `name` if it holds no numbers."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {allowed}, got {short_repr(value)}")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):     # e.g. ragged nested lists
        raise TypeError(f"{name} must be {allowed}, got {short_repr(value)}") from None
    if array.dtype.kind not in "iuf":   # booleans, strings, complex numbers, objects
        raise TypeError(f"{name} must be {allowed}, got {short_repr(value)}")
    return array.astype(np.float64)


def integer_array(name: str, value) -> np.ndarray:
    """value as an integer array, or a ValueError naming `name` and its dtype."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {array.dtype}; must be integers")
    return array


def any_outside(array, low, high) -> bool:
    """Whether any element lies outside [low, high). (np.minimum.reduce: no Python
    wrapper as in array.min(), a few microseconds on every training step.)"""
    return array.size > 0 and (np.minimum.reduce(array, axis=None) < low
                               or np.maximum.reduce(array, axis=None) >= high)
