"""Argument checks shared by the maths modules (phases.py, toy/): a failure names the
argument, its value and what is allowed (TypeError for the wrong kind of value,
ValueError for a value out of range)."""
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
