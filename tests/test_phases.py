"""Phase-change descriptors on synthetic curves with known plateau and crossings."""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinyinduction.phases import (
    PAPER_THRESHOLD,
    PhaseChange,
    describe_history,
    describe_phase_change,
    estimate_plateau_level,
    first_crossing,
    max_log_slope,
    running_median,
    validate_curve,
)


def piecewise_curve(level, start, end, width, top=1.6, n_after=40, dx=0.25):
    """Fall from top to level over [0, start], flat to end, linear drop to 0 over width.

    x [n], loss [n]. Every descriptor of this curve is known in closed form.
    """
    x_max = end + width + n_after
    x = np.arange(0.0, x_max + dx / 2, dx)
    loss = np.interp(x, [0.0, start, end, end + width, x_max], [top, level, level, 0.0, 0.0])
    return x, loss


@given(
    level=st.floats(0.3, 1.0),
    # kinks on the sample grid, so linear interpolation between samples is exact
    start=st.integers(5, 20),
    length=st.integers(20, 200),
    width=st.integers(5, 50),
)
def test_piecewise_curve_descriptors_match_closed_form(level, start, length, width):
    # the estimator finds the plateau as the most crowded loss level: it needs the plateau
    # to be at least as long as the drop (a short plateau before a slow drop is read lower)
    assume(length >= width)
    end = start + length
    x, loss = piecewise_curve(level, start, end, width)
    pc = describe_phase_change(x, loss)
    assert isinstance(pc, PhaseChange)
    assert pc.plateau_level == pytest.approx(level, rel=1e-9)
    assert pc.final_level == 0.0
    # band +-0.1*level is crossed on the initial fall and on the drop at known places
    top = 1.6
    expected_start = start * (top - 1.1 * level) / (top - level)
    expected_end = end + 0.1 * width
    assert pc.plateau_start == pytest.approx(expected_start, rel=1e-9)
    assert pc.plateau_end == pytest.approx(expected_end, rel=1e-9)
    assert pc.plateau_length == pytest.approx(expected_end - expected_start, rel=1e-9)
    assert pc.threshold == pytest.approx(0.4 * level)
    assert pc.transition_time == pytest.approx(end + 0.6 * width, rel=1e-9)
    assert pc.drop_end == pytest.approx(end + 0.9 * width, rel=1e-9)
    assert pc.drop_width == pytest.approx(0.8 * width, rel=1e-9)
    # steepest fall per e-fold is on the drop, just before it reaches 0
    assert end < pc.max_log_slope_at <= end + width
    assert pc.max_log_slope == pytest.approx(level / width * (end + width), rel=0.05)


def test_paper_threshold_and_sample_convention():
    x, loss = piecewise_curve(0.7, 10.0, 100.0, 20.0, dx=1.0)
    pc = describe_phase_change(x, loss, threshold=PAPER_THRESHOLD, interpolate=False)
    assert pc.threshold == pytest.approx(0.4 * math.log(2))
    # loss at x = 100 + k is 0.7 (1 - k/20): first sample <= 0.4 ln 2 is k = 13
    assert pc.transition_time == 113.0
    # band 0.7 +- 0.1 * (0.7 - 0): last sample inside it is k = 2
    assert pc.plateau_end == 102.0


def test_noisy_logistic_curve_like_the_network():
    # ln 5 -> ln 2 fast, plateau, logistic drop at step 10000, minibatch noise
    rng = np.random.default_rng(3)
    x = np.arange(0.0, 31250.0, 125.0)
    loss = ((math.log(5) - math.log(2)) * np.exp(-x / 300.0)
            + math.log(2) / (1.0 + np.exp((x - 10000.0) / 600.0))
            + 0.01 * rng.standard_normal(x.size))
    loss[40] += 0.3  # one spike on the plateau must not cut it in two
    pc = describe_history({"step": list(x), "train/loss": list(loss)})
    assert pc.plateau_level == pytest.approx(math.log(2), abs=0.02)
    assert 500 < pc.plateau_start < 1500
    # logistic reaches 0.9 ln 2 at 10000 - 600 ln 9 = 8682 and 0.4 ln 2 at 10243
    assert pc.plateau_end == pytest.approx(8682, abs=300)
    assert pc.transition_time == pytest.approx(10243, abs=300)
    assert 9000 < pc.max_log_slope_at < 12000


def test_curve_that_never_drops_has_no_transition():
    x = np.linspace(0, 10, 50)
    loss = 0.7 + 0.001 * np.sin(x)
    pc = describe_phase_change(x, loss, plateau_level=0.7, threshold=0.3)
    assert pc.transition_time is None
    assert pc.drop_end is None and pc.drop_width is None
    assert pc.plateau_start == 0.0 and pc.plateau_end == 10.0


def test_first_crossing_interpolates_and_respects_start():
    x = np.arange(6.0)
    y = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    assert first_crossing(x, y, 2.5) == pytest.approx(2.5)
    assert first_crossing(x, y, 2.5, interpolate=False) == 3.0
    assert first_crossing(x, y, 4.5, start=3) == 3.0
    assert first_crossing(x, y, -1.0) is None
    assert first_crossing(x, -y, -2.5, direction="up") == pytest.approx(2.5)


def test_running_median_keeps_monotone_curves_and_removes_spikes():
    y = np.linspace(3, 0, 20) ** 2
    np.testing.assert_array_equal(running_median(y), y)
    spiky = np.ones(20)
    spiky[7] = 9.0
    np.testing.assert_array_equal(running_median(spiky), np.ones(20))


def test_max_log_slope_skips_nonpositive_x():
    x = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    y = np.array([9.0, 3.0, 3.0, 3.0 - math.log(2), 3.0 - math.log(2)])
    slope, at = max_log_slope(x, y)
    assert slope == pytest.approx(1.0)
    assert at == pytest.approx(math.sqrt(8.0))


def test_estimated_plateau_ignores_fast_initial_fall():
    x, loss = piecewise_curve(0.5, 3.0, 200.0, 10.0)
    assert estimate_plateau_level(x, loss) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "x, loss, match",
    [
        ([0, 1, 2, 3, 4], [1, 1, float("nan"), 0, 0], r"loss must be finite, got nan at index 2"),
        ([0, 1, 2, float("inf"), 4], [1, 1, 1, 0, 0], r"x must be finite"),
        ([0, 1, 2, 3], [1, 1, 0, 0], r"x has 4 points; at least 5"),
        ([0, 1, 2, 3, 4, 5], [1, 1, 1, 0, 0], r"equal lengths, got 6 and 5"),
        ([0, 1, 1, 3, 4], [1, 1, 1, 0, 0], r"x must be strictly increasing, got 1.0 then 1.0"),
        ([[0, 1, 2, 3, 4]], [1, 1, 1, 0, 0], r"x must be 1-D"),
    ],
)
def test_bad_curves_raise_naming_the_argument(x, loss, match):
    with pytest.raises(ValueError, match=match):
        describe_phase_change(x, loss)


def test_bad_options_raise_naming_the_argument():
    x, loss = piecewise_curve(0.7, 10.0, 100.0, 20.0)
    with pytest.raises(ValueError, match=r"band must be in \(0, 0.5\), got 0.7"):
        describe_phase_change(x, loss, band=0.7)
    with pytest.raises(ValueError, match=r"threshold must be a finite number, got nan"):
        describe_phase_change(x, loss, threshold=float("nan"))
    with pytest.raises(ValueError, match=r"plateau_level must be a finite number"):
        describe_phase_change(x, loss, plateau_level=float("inf"))
    with pytest.raises(ValueError, match=r"loss_key = 'train/loss': history has no such key"):
        describe_history({"step": list(x)})
    with pytest.raises(ValueError, match=r"step must be strictly increasing"):
        describe_history({"step": [0, 2, 1, 3, 4], "train/loss": [1, 1, 1, 0, 0]})
    with pytest.raises(ValueError, match=r"direction must be 'down' or 'up'"):
        first_crossing(x, loss, 0.3, direction="sideways")


def test_validate_curve_returns_float_arrays():
    x, y = validate_curve([0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
    assert x.dtype == np.float64 and y.dtype == np.float64


# -------------------------------------------------- strings, None and other wrong kinds

X = np.arange(0.0, 50.0)
Y = np.where(X < 25, 0.7, 0.05)
# (function, valid keyword arguments, arguments that accept None)
PHASE_CALLS = [
    (describe_phase_change, dict(x=X, loss=Y, threshold=0.3, plateau_level=0.7, band=0.1,
                                 interpolate=True), ("threshold", "plateau_level")),
    (describe_history, dict(history={"step": list(X), "train/loss": list(Y)}, x_key="step",
                            loss_key="train/loss"), ()),
    (first_crossing, dict(x=X, y=Y, threshold=0.3, interpolate=False, start=0, direction="down"), ()),
    (running_median, dict(y=Y, half_width=2), ()),
    (estimate_plateau_level, dict(x=X, loss=Y, band=0.1), ()),
    (max_log_slope, dict(x=X, y=Y), ()),
]
WRONG_KINDS = [None, "0.5", "abc", b"1", complex(1, 2), object()]


@pytest.mark.parametrize("function, kwargs, none_allowed", PHASE_CALLS, ids=lambda v: getattr(v, "__name__", ""))
def test_phase_functions_name_the_argument_and_the_value(function, kwargs, none_allowed):
    function(**kwargs)                       # the valid call works
    for name in kwargs:
        for value in WRONG_KINDS + ([1] if name == "interpolate" else [True]):
            if value is None and name in none_allowed:
                continue
            with pytest.raises((TypeError, ValueError)) as error:
                function(**{**kwargs, name: value})
                print(f"{function.__name__} accepted {name}={value!r}")
            message = str(error.value)
            assert name in message, (function.__name__, name, value, message)
            assert repr(value)[:25] in message, message


@given(st.lists(st.floats(0, 5, allow_nan=False), min_size=5, max_size=40))
def test_plateau_level_is_a_number_for_any_finite_curve(values):
    """The refinement never takes the median of an empty window (NaN, with a warning)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        level = estimate_plateau_level(np.arange(len(values), dtype=float), values)
    assert np.isfinite(level) and min(values) <= level <= max(values)
