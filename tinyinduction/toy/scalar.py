"""The scalar product model: closed forms, the gradient flow, gradient descent, clamping.

L = 1/2 (s - u)^2 with u = w_1 ... w_D, trained by tau dw_i/dt = -dL/dw_i. Balanced
factors (all equal to w) follow tau dw/dt = w^(D-1) (s - w^D). Times are in units of
tau unless said otherwise. Every numerical solve has a bounded amount of work
(MAX_RHS_EVALUATIONS) and a time span derived from the scales given.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np
from scipy.integrate import solve_ivp

from .checks import (check_balanced, check_depth, check_factors, check_fraction, check_integer,
                     check_number, check_positive, check_times)

PLATEAU_FRACTION = 0.1
TRANSITION_FRACTION = 0.6
CLOSED_FORM_DEPTHS = (1, 2, 3)
ODE_RTOL = 1e-11
ODE_ATOL = 1e-14
MAX_RHS_EVALUATIONS = 300_000      # bounds every solve_ivp call (~a few seconds)


# ---------------------------------------------------------------------- closed forms


def target_factor(s: float, depth: int) -> float:
    """c = s^(1/D): the value every balanced factor converges to."""
    return check_positive("s", s) ** (1.0 / check_depth(depth))


def relaxation_time(depth: int, s: float, tau: float) -> float:
    """Time constant of the balanced flow near its end, tau / (D s^((2D-2)/D)).

    Linearising tau dw/dt = w^(D-1) (s - w^D) at w = c = s^(1/D) gives
    d(w - c)/dt = -(D c^(2D-2) / tau) (w - c).
    """
    depth = check_depth(depth)
    s, tau = check_positive("s", s), check_positive("tau", tau)
    return tau / (depth * s ** ((2 * depth - 2) / depth))


def depth3_antiderivative(w, s: float) -> np.ndarray:
    """G(w) = -1/w - ln(c-w)/(3c) + ln(w^2+cw+c^2)/(6c) - arctan((2w+c)/(sqrt3 c))/(sqrt3 c).

    w [...] in (0, c), c = s^(1/3). dG/dw = 1/w^2 + w/(s - w^3) = s / (w^2 (s - w^3))
    (partial fractions), so along the D = 3 flow t = (tau/s) (G(w) - G(w0)).
    """
    s = check_positive("s", s)
    c = s ** (1.0 / 3.0)
    w = np.asarray(w, dtype=np.float64)
    r3 = math.sqrt(3.0)
    return (-1.0 / w - np.log(c - w) / (3 * c) + np.log(w * w + c * w + c * c) / (6 * c)
            - np.arctan((2 * w + c) / (r3 * c)) / (r3 * c))


def closed_form_time(w, depth: int, s: float, w0: float, tau: float) -> np.ndarray:
    """Time for a balanced factor to grow from w0 to w (w [...] in [w0, s^(1/D)))."""
    depth, s, w0, tau = check_balanced(depth, s, w0, tau)
    w = np.asarray(w, dtype=np.float64)
    c = s ** (1.0 / depth)
    if np.any((w < w0) | (w >= c)):
        raise ValueError(f"w must be in [w0, s^(1/D)) = [{w0:g}, {c:.6g}), got values outside")
    if depth == 1:  # tau dw/dt = s - w
        return tau * np.log((s - w0) / (s - w))
    if depth == 2:  # du/dt = 2 u (s - u) / tau with u = w^2: logistic
        u0, u = w0 ** 2, w ** 2
        return tau / (2 * s) * np.log(u * (s - u0) / (u0 * (s - u)))
    return tau / s * (depth3_antiderivative(w, s) - depth3_antiderivative(w0, s))


def _depth3_invert(target, s: float, w0: float) -> np.ndarray:
    """Solve G(w) = target for w in [w0, c), vectorised. target [n] -> w [n].

    G is increasing on (0, c), so bracketing always converges; this is brentq's
    bracketing idea done by bisection on a whole array at once (a fit evaluates
    thousands of points, and brentq handles one scalar per call).
    """
    c = s ** (1.0 / 3.0)
    lo = np.full(target.shape, w0)
    hi = np.full(target.shape, c)
    with np.errstate(divide="ignore"):  # mid may round to c, where G = +inf: still "above"
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = depth3_antiderivative(mid, s) < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def closed_form_factor(t, depth: int, s: float, w0: float, tau: float) -> np.ndarray:
    """Balanced factor w(t) for D = 1, 2, 3. t [n] >= 0 -> w [n]."""
    depth, s, w0, tau = check_balanced(depth, s, w0, tau)
    t = check_times(t)
    if depth == 1:
        return s + (w0 - s) * np.exp(-t / tau)
    if depth == 2:
        u0 = w0 ** 2
        # u = s e^r / (e^r - 1 + s/u0), written with e^-r so large r cannot overflow
        u = s / (1.0 + (s / u0 - 1.0) * np.exp(-2.0 * s * t / tau))
        return np.sqrt(u)
    target = depth3_antiderivative(w0, s) + s * t / tau
    return _depth3_invert(np.atleast_1d(target), s, w0).reshape(t.shape)


def closed_form_product(t, depth: int, s: float, w0: float, tau: float) -> np.ndarray:
    """Balanced product u(t) = w(t)^D for D = 1, 2, 3. t [n] -> u [n]."""
    return closed_form_factor(t, depth, s, w0, tau) ** int(depth)


def time_to_fraction(depth: int, s: float, w0: float, tau: float, fraction: float) -> float:
    """Time for the balanced product to grow from w0^D to fraction * s (0 if already there)."""
    depth, s, w0, tau = check_balanced(depth, s, w0, tau)
    fraction = check_fraction("fraction", fraction)
    w_f = (fraction * s) ** (1.0 / depth)
    if w_f <= w0:
        return 0.0
    return float(closed_form_time(w_f, depth, s, w0, tau))


def plateau_length(depth: int, s: float, w0: float, tau: float,
                   fraction: float = PLATEAU_FRACTION) -> float:
    """Time until the product has learnt PLATEAU_FRACTION of s. D=2 ~ (tau/2s) ln(1/u0), D=3 ~ tau/(s w0)."""
    return time_to_fraction(depth, s, w0, tau, fraction)


def transition_time(depth: int, s: float, w0: float, tau: float,
                    fraction: float = TRANSITION_FRACTION) -> float:
    """Time until u = 0.6 s: loss < 0.4 x plateau under loss = floor + height (1 - u/s)."""
    return time_to_fraction(depth, s, w0, tau, fraction)


def settling_time(depth: int, s: float, w0: float, tau: float) -> float:
    """A time by which the balanced flow has done everything worth drawing: the
    transition plus 10 relaxation times (u is then within ~e^-10 of s)."""
    return transition_time(depth, s, w0, tau) + 10.0 * relaxation_time(depth, s, tau)


# ------------------------------------------------------------- numerical flow and GD


def _clamp_mask(clamped, depth: int) -> np.ndarray:
    mask = np.zeros(depth, dtype=bool)
    if clamped is None:
        return mask
    if isinstance(clamped, (str, bytes)) or not isinstance(clamped, Iterable):
        raise TypeError(f"clamped must be a sequence of factor indices in [0, {depth - 1}], "
                        f"got {clamped!r}")
    for i in clamped:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < depth:
            raise ValueError(f"clamped must hold factor indices in [0, {depth - 1}], got {i!r}")
        mask[i] = True
    return mask


def product_loss(w, s: float) -> float:
    """L = 1/2 (s - prod_i w_i)^2 for factors w [D]."""
    w = check_factors("w", w)
    s = check_number("s", s)
    return 0.5 * float(s - np.prod(w)) ** 2


def product_gradient(w, s: float) -> np.ndarray:
    """dL/dw_i = -(s - u) prod_{j != i} w_j. w [D] -> [D] (no division: w_j may be 0)."""
    w = check_factors("w", w)
    s = check_number("s", s)
    before = np.concatenate(([1.0], np.cumprod(w)[:-1]))           # prod_{j < i} w_j
    after = np.concatenate((np.cumprod(w[::-1])[:-1][::-1], [1.0]))  # prod_{j > i} w_j
    return -(s - np.prod(w)) * before * after


class _TooMuchWork(Exception):
    pass


def _solve(rhs, t_end: float, w0: np.ndarray, rtol=ODE_RTOL, atol=ODE_ATOL, time_unit=1.0,
           t_eval=None, events=None):
    """solve_ivp (DOP853) with at most MAX_RHS_EVALUATIONS evaluations of rhs.

    Time is integrated in units of `time_unit` (the flow's own time scale), so a flow
    whose whole life lasts 1e-15 tau still gets relative, not absolute, precision
    (solve_ivp locates events to an absolute 1e-15). atol is scaled down to the
    smallest starting factor, so a factor of 1e-12 is still followed to rtol.
    """
    calls = 0

    def counted(t_scaled, w):
        nonlocal calls
        calls += 1
        if calls > MAX_RHS_EVALUATIONS:
            raise _TooMuchWork
        return time_unit * rhs(t_scaled * time_unit, w)

    def scaled_event(event):
        def wrapped(t_scaled, w):
            return event(t_scaled * time_unit, w)
        wrapped.terminal = getattr(event, "terminal", False)
        wrapped.direction = getattr(event, "direction", 0)
        return wrapped

    nonzero = np.abs(w0[w0 != 0])
    if nonzero.size:
        atol = min(atol, 1e-3 * rtol * float(nonzero.min()))
    try:
        sol = solve_ivp(counted, (0.0, t_end / time_unit), w0, method="DOP853", rtol=rtol,
                        atol=atol, t_eval=None if t_eval is None else t_eval / time_unit,
                        events=None if events is None else scaled_event(events))
    except _TooMuchWork:
        raise RuntimeError(
            f"solve_ivp gave up after {MAX_RHS_EVALUATIONS:,} evaluations over t in [0, {t_end:.4g}]: "
            "the time span is far longer than the flow's time scales (take a shorter span, e.g. "
            "settling_time(...))") from None
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    sol.t = sol.t * time_unit
    if sol.t_events is not None:
        sol.t_events = [times * time_unit for times in sol.t_events]
    return sol


def _flow_rhs(s, tau, frozen):
    def rhs(_, w):
        dw = -product_gradient(w, s) / tau
        dw[frozen] = 0.0
        return dw
    return rhs


def simulate_flow(t, w0, s: float, tau: float, clamped: Iterable[int] = (),
                  rtol: float = ODE_RTOL, atol: float = ODE_ATOL) -> np.ndarray:
    """Gradient flow tau dw/dt = -dL/dw from factors w0 [D], sampled at t [n] -> W [n, D].

    Any D, balanced or not. Factors listed in ``clamped`` (indices) stay fixed: their
    time derivative is zero, the continuous version of resetting them after each step.
    """
    w0 = check_factors("w0", w0)
    s = check_positive("s", s)
    tau = check_positive("tau", tau)
    t = check_times(t)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0):
        raise ValueError("t must be a 1-D strictly increasing array of times >= 0")
    rhs = _flow_rhs(s, tau, _clamp_mask(clamped, w0.size))
    if t[-1] == 0.0:
        return w0[None, :].copy()
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    unit = relaxation_time(w0.size, s, tau)
    return _solve(rhs, float(t[-1]), w0, rtol, atol, unit, t_eval=t).y.T


def _default_horizon(w0, s, tau, frozen) -> Optional[float]:
    """A time by which the flow from w0 reaches fraction * s if it does at all: the
    balanced flow of the free factors from the smallest one, times 10, or None when a
    clamped factor is 0 (the product can never move)."""
    fixed = float(np.prod(w0[frozen]))
    free = np.abs(w0[~frozen])
    if fixed == 0.0 or free.size == 0:
        return None
    s_free, tau_free = abs(s / fixed), tau / fixed ** 2      # the model of the free factors
    depth = free.size
    c = s_free ** (1.0 / depth)
    smallest = min(max(free.min(), 1e-300), 0.5 * c)
    if depth <= 3:
        estimate = settling_time(depth, s_free, smallest, tau_free)
    else:   # plateau ~ (tau/s) * integral of w^(1-D) dw from the smallest factor on
        estimate = tau_free / s_free * smallest ** (2 - depth) / (depth - 2) \
            + 10.0 * relaxation_time(depth, s_free, tau_free)
    return 10.0 * estimate


def simulated_time_to_fraction(w0, s: float, tau: float, fraction: float,
                               clamped: Iterable[int] = (), t_max: Optional[float] = None
                               ) -> Optional[float]:
    """Time at which the simulated product reaches fraction * s (solve_ivp event), or None
    if it does not by t_max (default: 10 x the balanced estimate from the smallest factor)."""
    w0 = check_factors("w0", w0)
    s = check_positive("s", s)
    tau = check_positive("tau", tau)
    fraction = check_fraction("fraction", fraction)
    frozen = _clamp_mask(clamped, w0.size)
    if np.prod(w0) >= fraction * s:
        return 0.0
    if t_max is None:
        t_max = _default_horizon(w0, s, tau, frozen)
        if t_max is None:
            return None
    t_max = check_positive("t_max", t_max)

    def reached(_, w):
        return np.prod(w) - fraction * s

    reached.terminal = True
    reached.direction = 1
    sol = _solve(_flow_rhs(s, tau, frozen), t_max, w0, time_unit=relaxation_time(w0.size, s, tau),
                 events=reached)
    return float(sol.t_events[0][0]) if sol.t_events[0].size else None


def conserved_quantities(W) -> np.ndarray:
    """w_i^2 - w_j^2 for every pair: W [n, D] -> [n, D, D]. Constant under the flow.

    Why: d(w_i^2)/dt = -2 w_i dL/dw_i / tau = 2 (s - u) u / tau is the same for every i.
    """
    W = np.asarray(W, dtype=np.float64)
    sq = W ** 2
    return sq[..., :, None] - sq[..., None, :]


def gradient_descent(w0, s: float, lr: float, steps: int, tau: float = 1.0,
                     clamped: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Discrete GD w <- w - lr dL/dw. Returns (t [steps+1], W [steps+1, D]).

    One step of size lr follows the flow tau dw/dt = -dL/dw for a time lr * tau, so
    t = step * lr * tau (in units of tau: step * lr). As lr -> 0 at fixed t, GD
    converges to the flow with an error O(lr) (Euler's method).
    """
    w = check_factors("w0", w0).copy()
    s = check_positive("s", s)
    lr = check_positive("lr", lr)
    tau = check_positive("tau", tau)
    steps = check_integer("steps", steps, 0)
    frozen = _clamp_mask(clamped, w.size)
    W = np.empty((steps + 1, w.size))
    W[0] = w
    for n in range(steps):
        step = lr * product_gradient(w, s)
        step[frozen] = 0.0
        w = w - step
        W[n + 1] = w
    return np.arange(steps + 1) * lr * tau, W


# -------------------------------------------------------------------------- clamping


def clamped_model(depth: int, n_clamped: int, s: float, tau: float) -> tuple[int, float, float]:
    """The balanced model left when n_clamped factors sit at their target c = s^(1/D).

    L = 1/2 (s - c^k prod_rest w)^2 = c^(2k)/2 (s' - prod_rest w)^2 with s' = s / c^k, so
    the remaining D - k factors follow the same flow with s' = s^((D-k)/D) and
    tau' = tau / c^(2k). Returns (D - k, s', tau').
    """
    depth = check_depth(depth)
    s = check_positive("s", s)
    tau = check_positive("tau", tau)
    n_clamped = check_integer("n_clamped", n_clamped, 0, depth - 1)
    c = s ** (1.0 / depth)
    return depth - n_clamped, s / c ** n_clamped, tau / c ** (2 * n_clamped)


CLAMP_LABELS = {0: "none", 1: "one_clamp", 2: "two_clamps"}


def clamping_summary(s: float = 1.0, w0: float = 0.05, tau: float = 1.0,
                     depth: int = 3) -> dict:
    """Plateau lengths and transition times with 0, 1, 2 factors clamped at their targets.

    Closed form (via clamped_model) next to simulation (solve_ivp of the full D-factor
    flow with the clamped factors held at c, crossing times from events). Returns
    {"plateau_length": {label: {"closed_form", "simulation"}}, "transition_time": ...}.
    """
    depth, s, w0, tau = check_balanced(depth, s, w0, tau)
    c = s ** (1.0 / depth)
    out: dict = {"plateau_length": {}, "transition_time": {}}
    for k in range(min(3, depth)):
        d_k, s_k, tau_k = clamped_model(depth, k, s, tau)
        w_start = np.array([c] * k + [w0] * (depth - k))
        horizon = settling_time(d_k, s_k, w0, tau_k)   # both crossings come before it
        for key, fraction in (("plateau_length", PLATEAU_FRACTION),
                              ("transition_time", TRANSITION_FRACTION)):
            closed = time_to_fraction(d_k, s_k, w0, tau_k, fraction)
            simulated = simulated_time_to_fraction(w_start, s, tau, fraction, clamped=range(k),
                                                   t_max=horizon)
            out[key][CLAMP_LABELS[k]] = {"closed_form": closed, "simulation": simulated}
    return out


def clamping_curves(s: float, w0: float, tau: float, t, depth: int = 3) -> dict:
    """Loss 1/2 (s - u)^2 with 0, 1, 2 factors clamped: closed form and solve_ivp.

    t [n] -> {label: {"closed_form": [n], "simulation": [n], "max_rel_error": float}}.
    Each simulation runs only up to its own settling_time (after it nothing changes,
    and an explicit solver would need a step per relaxation time to cross a long tail);
    later entries are NaN. The relative error compares the products u where both exist.
    """
    depth, s, w0, tau = check_balanced(depth, s, w0, tau)
    t = check_times(t)
    c = s ** (1.0 / depth)
    out = {}
    for k in range(min(3, depth)):
        d_k, s_k, tau_k = clamped_model(depth, k, s, tau)
        u_closed = c ** k * closed_form_product(t, d_k, s_k, w0, tau_k)
        within = t <= settling_time(d_k, s_k, w0, tau_k)
        u_sim = np.full(t.shape, np.nan)
        if within.any():
            W = simulate_flow(t[within], [c] * k + [w0] * (depth - k), s, tau, clamped=range(k))
            u_sim[within] = W.prod(axis=1)
        error = np.abs(u_closed[within] - u_sim[within]) / np.abs(u_sim[within])
        out[CLAMP_LABELS[k]] = {
            "closed_form": 0.5 * (s - u_closed) ** 2,
            "simulation": 0.5 * (s - u_sim) ** 2,
            "max_rel_error": float(error.max()) if error.size else 0.0,
        }
    return out
