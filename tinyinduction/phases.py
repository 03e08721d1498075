"""Descriptors of a phase change in any loss curve: plateau, transition, drop.

The same functions describe a toy-model curve (time in units of tau) and a network's
loss history (x = history["step"], loss = history["train/loss"]). Curves are losses:
they fall over training. To describe a rising measure (accuracy, induction strength)
pass its negation or ``1 - measure``.

Definitions (all x values are in the units of ``x``):

- ``final_level``: median of the last ``FINAL_POINTS`` loss values.
- ``plateau_level``: given, or estimated as the loss value around which the most
  points lie (within +-band of the curve's full range) among the points before the
  curve first comes within 10 % of its range of the final level. A flat stretch
  collects many points, so it wins; the fast initial fall of a network (ln 5 -> ln 2)
  collects few. It needs the plateau to hold at least as many points as the drop: a
  short plateau before a slow drop is read a little low.
- ``drop = plateau_level - final_level`` (with an explicit threshold:
  ``plateau_level - min(final_level, threshold)``, so a curve that never falls
  still gets a band); the plateau band is
  ``plateau_level +- band * drop`` (default band 0.1).
- ``transition_time``: first x where the (raw) loss reaches ``threshold``; the
  default threshold is ``final_level + 0.4 * drop`` which is Singh et al.'s
  "first evaluation with loss < 0.4 ln 2" (``PAPER_THRESHOLD``) for a plateau at
  ln 2 and a final loss of 0.
- ``plateau_end``: where the loss leaves the band downwards for the last time
  before the transition; ``plateau_start``: where the contiguous in-band stretch
  that ends there begins. ``plateau_length = plateau_end - plateau_start``.
- ``drop_end``: where the loss first comes within ``band * drop`` of the final level
  after the plateau; ``drop_width = drop_end - plateau_end`` (a 90 % -> 10 % width).
- ``max_log_slope``: the largest value of ``-d loss / d ln x`` (points with x > 0,
  from the end of the plateau on, so the fast initial fall does not count), i.e. the
  steepest fall per e-fold of training time.

A curve without a plateau (plain exponential decay) still gets an estimated level
(wherever its samples crowd) and a short "plateau"; when comparing curves whose
plateau level is known (a toy model starts on it) pass ``plateau_level``.

Band and level tests use a running median over 5 points, which leaves a monotone
curve unchanged and removes isolated spikes of minibatch noise. Crossing times are
linearly interpolated between samples unless ``interpolate=False``, which returns the
first sample at or past the level (the paper's "first evaluation" convention).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from .checks import check_integer, check_number, float_array, is_real_number, short_repr

# Singh et al. (2024): learning time = first evaluation where train loss < 0.4 ln 2.
PAPER_THRESHOLD_FRACTION = 0.4
PAPER_THRESHOLD = PAPER_THRESHOLD_FRACTION * math.log(2.0)
DEFAULT_BAND = 0.1
MIN_POINTS = 5
FINAL_POINTS = 5
MEDIAN_HALF_WIDTH = 2  # running median over 2 * 2 + 1 = 5 points


@dataclass(frozen=True)
class PhaseChange:
    """What a loss curve's phase change looks like (see the module docstring).

    Fields that cannot be measured on a given curve (no crossing, no in-band stretch)
    are None.
    """

    plateau_level: float
    final_level: float
    threshold: float
    plateau_start: Optional[float]
    plateau_end: Optional[float]
    plateau_length: Optional[float]
    transition_time: Optional[float]
    drop_end: Optional[float]
    drop_width: Optional[float]
    max_log_slope: Optional[float]
    max_log_slope_at: Optional[float]

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- input


def validate_curve(x, y, x_name: str = "x", y_name: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """Return (x, y) as float64 arrays [n] after checking them; ValueError otherwise.

    Allowed: 1-D, equal lengths, at least MIN_POINTS points, all finite, x strictly
    increasing.
    """
    x_arr = _float_array(x_name, x)
    y_arr = _float_array(y_name, y)
    for name, arr in ((x_name, x_arr), (y_name, y_arr)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if arr.size < MIN_POINTS:
            raise ValueError(f"{name} has {arr.size} points; at least {MIN_POINTS} are needed")
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be finite, got {arr[i]} at index {i}")
    if x_arr.size != y_arr.size:
        raise ValueError(
            f"{x_name} and {y_name} must have equal lengths, got {x_arr.size} and {y_arr.size}"
        )
    steps = np.diff(x_arr)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        raise ValueError(
            f"{x_name} must be strictly increasing, got {x_arr[i]} then {x_arr[i + 1]} at index {i + 1}"
        )
    return x_arr, y_arr


_short = short_repr


def _float_array(name: str, value) -> np.ndarray:
    """value as float64; TypeError naming `name` when it is not a sequence of numbers."""
    return float_array(name, value, "a 1-D sequence of numbers")


def _check_threshold(name: str, value) -> float:
    return check_number(name, value)


_check_int = check_integer


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


# ----------------------------------------------------------------------- small pieces


def running_median(y, half_width: int = MEDIAN_HALF_WIDTH) -> np.ndarray:
    """Median of y over a centred window of 2*half_width+1 points (shrunk at the ends).

    y [n] -> [n]. The window stays symmetric at the ends, so a monotone curve is
    returned unchanged.
    """
    y = _float_array("y", y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    half_width = _check_int("half_width", half_width, 0)
    n = y.size
    out = y.copy()
    w = 2 * half_width + 1
    if n >= w and half_width > 0:
        # interior: full windows [n - w + 1, w] -> medians
        windows = np.lib.stride_tricks.sliding_window_view(y, w)
        out[half_width : n - half_width] = np.median(windows, axis=1)
    for i in list(range(min(half_width, n))) + list(range(max(n - half_width, 0), n)):
        k = min(half_width, i, n - 1 - i)  # ends: shrink the window symmetrically
        out[i] = np.median(y[i - k : i + k + 1])
    return out


def _interp_crossing(x0: float, x1: float, y0: float, y1: float, level: float) -> float:
    # Linear interpolation of the x where the segment (x0, y0)-(x1, y1) meets level.
    if y1 == y0:
        return x1
    return x0 + (level - y0) * (x1 - x0) / (y1 - y0)


def first_crossing(x, y, threshold: float, interpolate: bool = True, start: int = 0,
                   direction: str = "down") -> Optional[float]:
    """First x at which y reaches ``threshold`` (falling if direction="down"), or None.

    x, y [n]. Only indices >= start are considered. If y[start] is already past the
    threshold, x[start] is returned. With interpolate=True the crossing is linearly
    interpolated between the two samples around it; otherwise the first sample past
    the threshold is returned (the paper's "first evaluation" convention).
    """
    x, y = validate_curve(x, y, "x", "y")
    threshold = _check_threshold("threshold", threshold)
    interpolate = _check_bool("interpolate", interpolate)
    if direction not in ("down", "up"):
        raise ValueError(f"direction must be 'down' or 'up', got {_short(direction)}")
    start = _check_int("start", start, 0)
    if not 0 <= start < x.size:
        raise ValueError(f"start must be in [0, {x.size - 1}], got {start}")
    past = (y <= threshold) if direction == "down" else (y >= threshold)
    past[:start] = False
    if not past.any():
        return None
    i = int(np.argmax(past))
    if i == start or not interpolate:
        return float(x[i])
    return float(_interp_crossing(x[i - 1], x[i], y[i - 1], y[i], threshold))


def log_slopes(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Slope of the fall of y per e-fold of x between neighbouring samples with x > 0.

    x, y [n] -> (x_mid [m], slope [m]) with x_mid the geometric midpoints and
    slope = -(y[i+1] - y[i]) / (ln x[i+1] - ln x[i]) (positive where y falls).
    Samples with x <= 0 (e.g. step 0) are skipped: they have no logarithm.
    """
    x, y = validate_curve(x, y, "x", "y")
    keep = x > 0
    xl, yl = np.log(x[keep]), y[keep]
    if xl.size < 2:
        return np.empty(0), np.empty(0)
    slope = -np.diff(yl) / np.diff(xl)
    x_mid = np.exp(0.5 * (xl[1:] + xl[:-1]))
    return x_mid, slope


def max_log_slope(x, y) -> tuple[Optional[float], Optional[float]]:
    """(largest -dy/dln x, the x where it occurs), or (None, None) if under 2 points have x > 0."""
    x_mid, slope = log_slopes(x, y)
    if slope.size == 0:
        return None, None
    i = int(np.argmax(slope))
    return float(slope[i]), float(x_mid[i])


def final_level(loss) -> float:
    """Median of the last FINAL_POINTS values: where the curve ends up."""
    loss = _float_array("loss", loss)
    if loss.ndim != 1 or loss.size == 0 or not np.all(np.isfinite(loss)):
        raise ValueError(f"loss must be a non-empty 1-D array of finite numbers, got {_short(loss)}")
    return float(np.median(loss[-FINAL_POINTS:]))


def estimate_plateau_level(x, loss, band: float = DEFAULT_BAND) -> float:
    """The loss value around which most pre-drop points lie (see module docstring).

    x, loss [n]. Candidates are the points before the smoothed curve first comes
    within 10 % of its range of the final level; the level is the median of the
    points within +-band*range of the most crowded candidate, refined over narrower bands.
    """
    x, loss = validate_curve(x, loss)
    band = _check_band(band)
    smooth = running_median(loss)
    final = final_level(loss)
    span = float(smooth.max() - final)
    if span <= 0:
        return float(smooth.max())  # no fall at all: the whole curve is the "plateau"
    near_end = smooth <= final + 0.1 * span
    cut = int(np.argmax(near_end)) if near_end.any() else smooth.size
    candidates = smooth[: max(cut, 1)]
    halfwidth = band * span
    # counts[i] = how many candidates lie within the band around candidate i  [c, c] -> [c]
    counts = (np.abs(candidates[:, None] - candidates[None, :]) <= halfwidth).sum(axis=1)
    level = candidates[int(np.argmax(counts))]
    # refine with narrower bands so points on the fall and the drop stop biasing the median
    for fraction in (1.0, 0.3, 0.1):
        window = np.abs(candidates - level) <= fraction * halfwidth
        if not window.any():   # the median fell between points: keep the last level
            break
        level = float(np.median(candidates[window]))
    return float(level)


def _float_or_none(value) -> Optional[float]:
    return None if value is None else float(value)


def _check_band(band) -> float:
    if not is_real_number(band):
        raise TypeError(f"band must be a number in (0, 0.5), got {_short(band)}")
    band = float(band)
    if not (0.0 < band < 0.5):
        raise ValueError(f"band must be in (0, 0.5), got {band}")
    return band


# ------------------------------------------------------------------------ main entry


def describe_phase_change(x, loss, threshold: Optional[float] = None,
                          plateau_level: Optional[float] = None,
                          band: float = DEFAULT_BAND,
                          interpolate: bool = True) -> PhaseChange:
    """Describe the plateau and the drop of a falling loss curve.

    x [n] strictly increasing (steps, sequences or toy time), loss [n].
    threshold: transition level; None -> final + 0.4 * (plateau - final). Pass
    PAPER_THRESHOLD for Singh et al.'s 0.4 ln 2. plateau_level: None -> estimated.
    band: half-width of the plateau band as a fraction of the drop, in (0, 0.5).
    See the module docstring for every definition.
    """
    x, loss = validate_curve(x, loss)
    band = _check_band(band)
    interpolate = _check_bool("interpolate", interpolate)
    smooth = running_median(loss)
    final = final_level(loss)
    if plateau_level is None:
        level = estimate_plateau_level(x, loss, band)
    else:
        level = _check_threshold("plateau_level", plateau_level)
    if threshold is None:
        drop = level - final
        threshold_value = final + PAPER_THRESHOLD_FRACTION * drop
    else:
        threshold_value = _check_threshold("threshold", threshold)
        # a curve that has not (yet) fallen still needs a band: at least down to the threshold
        drop = level - min(final, threshold_value)

    transition = first_crossing(x, loss, threshold_value, interpolate=interpolate)
    i_cross = int(np.argmax(loss <= threshold_value)) if transition is not None else x.size

    plateau_start = plateau_end = drop_end = None
    halfwidth = band * abs(drop)
    upper, lower = level + halfwidth, level - halfwidth
    in_band = (smooth >= lower) & (smooth <= upper)
    before = np.flatnonzero(in_band[:i_cross])
    if before.size:
        j = int(before[-1])  # last in-band point before the transition
        k = j
        while k > 0 and in_band[k - 1]:
            k -= 1
        plateau_end = float(x[j])
        if interpolate and j + 1 < x.size and smooth[j + 1] < lower:
            plateau_end = _interp_crossing(x[j], x[j + 1], smooth[j], smooth[j + 1], lower)
        plateau_start = float(x[k])
        if interpolate and k > 0:
            edge = upper if smooth[k - 1] > upper else lower
            plateau_start = _interp_crossing(x[k - 1], x[k], smooth[k - 1], smooth[k], edge)
        if transition is not None:
            drop_end = first_crossing(x, smooth, final + halfwidth, interpolate, start=j)
    # steepness of the phase change itself: skip everything before the plateau ends
    first = 0 if before.size == 0 else j
    if x.size - first >= MIN_POINTS:
        slope, slope_at = max_log_slope(x[first:], smooth[first:])
    else:
        slope, slope_at = max_log_slope(x, smooth)
    plateau_start, plateau_end, drop_end = map(_float_or_none, (plateau_start, plateau_end, drop_end))
    plateau_length = None if plateau_start is None else plateau_end - plateau_start
    drop_width = None if drop_end is None else drop_end - plateau_end
    return PhaseChange(
        plateau_level=float(level), final_level=final, threshold=float(threshold_value),
        plateau_start=plateau_start, plateau_end=plateau_end, plateau_length=plateau_length,
        transition_time=transition, drop_end=drop_end, drop_width=drop_width,
        max_log_slope=slope, max_log_slope_at=slope_at,
    )


def describe_history(history: Mapping[str, Sequence[float]], x_key: str = "step",
                     loss_key: str = "train/loss", **kwargs) -> PhaseChange:
    """describe_phase_change on a network history dict of equal-length lists."""
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a dict of equal-length lists (e.g. a history.json), "
                        f"got {_short(history)}")
    for name, key in (("x_key", x_key), ("loss_key", loss_key)):
        if not isinstance(key, str):
            raise TypeError(f"{name} must be a key of history (a string), got {_short(key)}")
    for name, key in (("x_key", x_key), ("loss_key", loss_key)):
        if key not in history:
            raise ValueError(f"{name} = {key!r}: history has no such key; available: {sorted(history)}")
    x, loss = validate_curve(history[x_key], history[loss_key], x_key, loss_key)
    return describe_phase_change(x, loss, **kwargs)
