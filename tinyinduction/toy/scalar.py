"""The toy three-subcircuit model: why a product of factors learns with a plateau.

Scalar product model (Saxe et al. 2014; Singh et al. 2024, section "toy model"):
the loss L = 1/2 (s - u)^2 with u = w_1 w_2 ... w_D, trained by gradient flow
tau dw_i/dt = -dL/dw_i. With all factors equal (balanced) to w, u = w^D and
tau dw/dt = w^(D-1) (s - w^D). Each factor's gradient is the product of the others,
so when all start small nothing grows until everything grows: D = 1 decays
exponentially, D = 2 is a sigmoid (Saxe), D = 3 sits on a plateau ~ tau/(s w0) and then
drops sharply. Clamping a factor at its target removes it from the product
(D = 3 -> 2 -> 1): the toy explanation of Singh et al.'s clamping results, where the
three factors stand for the previous-token head, the match (QK) and the copy (OV).

What lives here:
- closed forms for D = 1, 2, 3 (balanced), times to reach a fraction of s, plateau
  length and transition time;
- the numerical flow for any D and unbalanced factors (scipy solve_ivp), its conserved
  quantities w_i^2 - w_j^2, and discrete gradient descent;
- Singh et al.'s vector model (a, b, c in R^N, rank-1 target) with clamping;
- a fit of the scalar model to a measured loss curve (e.g. a network's history);
- ``run_cli(argv)`` for ``python -m tinyinduction toy``.

Conventions: time t is in the units of tau unless said otherwise (tau = 1 -> "units of
tau"). Plateau length = time for u to go from u0 to PLATEAU_FRACTION * s (the loss is
still within 10 % of its plateau under the linear loss mapping used by the fit).
Transition time = time for u to reach TRANSITION_FRACTION * s = 0.6 s, which under the
same mapping (loss = floor + height (1 - u/s)) is Singh et al.'s "loss < 0.4 x plateau".
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from .phases import describe_phase_change, validate_curve

PLATEAU_FRACTION = 0.1
TRANSITION_FRACTION = 0.6
CLOSED_FORM_DEPTHS = (1, 2, 3)
FACTOR_NAMES = ("a", "b", "c")
ODE_RTOL = 1e-11
ODE_ATOL = 1e-14


# ------------------------------------------------------------------------ validation


def _check_positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def _check_depth(depth, allowed: Optional[Sequence[int]] = None) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    if allowed is not None and depth not in allowed:
        raise ValueError(
            f"depth must be one of {tuple(allowed)} for the closed forms, got {depth}; "
            "use simulate_flow for other depths"
        )
    return int(depth)


def _check_w0(w0, s: float, depth: int) -> float:
    w0 = float(w0)
    c = s ** (1.0 / depth)
    if not (math.isfinite(w0) and 0.0 < w0 < c):
        where = "not above 0" if not w0 > 0 else "at or above the target factor s^(1/D)"
        raise ValueError(
            f"w0 must be in (0, s^(1/D)) = (0, {c:.6g}) for s={s:g}, depth={depth}; "
            f"got {w0} ({where})"
        )
    return w0


def _check_fraction(name: str, value) -> float:
    value = float(value)
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def _check_balanced(depth, s, w0, tau, allowed=CLOSED_FORM_DEPTHS) -> tuple[int, float, float, float]:
    depth = _check_depth(depth, allowed)
    s = _check_positive("s", s)
    tau = _check_positive("tau", tau)
    w0 = _check_w0(w0, s, depth)
    return depth, s, w0, tau


# ---------------------------------------------------------------------- closed forms


def target_factor(s: float, depth: int) -> float:
    """c = s^(1/D): the value every balanced factor converges to."""
    return _check_positive("s", s) ** (1.0 / _check_depth(depth))


def depth3_antiderivative(w, s: float) -> np.ndarray:
    """G(w) = -1/w - ln(c-w)/(3c) + ln(w^2+cw+c^2)/(6c) - arctan((2w+c)/(sqrt3 c))/(sqrt3 c).

    w [...] in (0, c), c = s^(1/3). dG/dw = 1/w^2 + w/(s - w^3) = s / (w^2 (s - w^3))
    (partial fractions), so along the D = 3 flow t = (tau/s) (G(w) - G(w0)).
    """
    s = _check_positive("s", s)
    c = s ** (1.0 / 3.0)
    w = np.asarray(w, dtype=np.float64)
    r3 = math.sqrt(3.0)
    return (-1.0 / w - np.log(c - w) / (3 * c) + np.log(w * w + c * w + c * c) / (6 * c)
            - np.arctan((2 * w + c) / (r3 * c)) / (r3 * c))


def closed_form_time(w, depth: int, s: float, w0: float, tau: float) -> np.ndarray:
    """Time for a balanced factor to grow from w0 to w (w [...] in [w0, s^(1/D)))."""
    depth, s, w0, tau = _check_balanced(depth, s, w0, tau)
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
    depth, s, w0, tau = _check_balanced(depth, s, w0, tau)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("t must be finite and >= 0")
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
    depth, s, w0, tau = _check_balanced(depth, s, w0, tau)
    fraction = _check_fraction("fraction", fraction)
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


# ------------------------------------------------------------- numerical flow and GD


def _as_factors(w0, name: str = "w0") -> np.ndarray:
    w = np.atleast_1d(np.asarray(w0, dtype=np.float64))
    if w.ndim != 1 or w.size < 1:
        raise ValueError(f"{name} must be a 1-D array of D >= 1 factors, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite, got {w}")
    return w


def _clamp_mask(clamped, depth: int) -> np.ndarray:
    mask = np.zeros(depth, dtype=bool)
    for i in clamped or ():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < depth:
            raise ValueError(f"clamped must hold factor indices in [0, {depth - 1}], got {i!r}")
        mask[i] = True
    return mask


def product_loss(w, s: float) -> float:
    """L = 1/2 (s - prod_i w_i)^2 for factors w [D]."""
    w = _as_factors(w, "w")
    return 0.5 * float(s - np.prod(w)) ** 2


def product_gradient(w, s: float) -> np.ndarray:
    """dL/dw_i = -(s - u) prod_{j != i} w_j. w [D] -> [D] (no division: w_j may be 0)."""
    w = np.asarray(w, dtype=np.float64)
    before = np.concatenate(([1.0], np.cumprod(w)[:-1]))           # prod_{j < i} w_j
    after = np.concatenate((np.cumprod(w[::-1])[:-1][::-1], [1.0]))  # prod_{j > i} w_j
    return -(s - np.prod(w)) * before * after


def simulate_flow(t, w0, s: float, tau: float, clamped: Iterable[int] = (),
                  rtol: float = ODE_RTOL, atol: float = ODE_ATOL) -> np.ndarray:
    """Gradient flow tau dw/dt = -dL/dw from factors w0 [D], sampled at t [n] -> W [n, D].

    Any D, balanced or not. Factors listed in ``clamped`` (indices) stay fixed: their
    time derivative is zero, the continuous version of resetting them after each step.
    """
    w0 = _as_factors(w0)
    s = _check_positive("s", s)
    tau = _check_positive("tau", tau)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or np.any(np.diff(t) <= 0) or t[0] < 0:
        raise ValueError("t must be a 1-D strictly increasing array of times >= 0")
    frozen = _clamp_mask(clamped, w0.size)

    def rhs(_, w):
        dw = -product_gradient(w, s) / tau
        dw[frozen] = 0.0
        return dw

    sol = solve_ivp(rhs, (0.0, float(t[-1])), w0, t_eval=t, method="DOP853",
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T


def simulated_time_to_fraction(w0, s: float, tau: float, fraction: float,
                               clamped: Iterable[int] = (), t_max: float = 1e6) -> Optional[float]:
    """Time at which the simulated product reaches fraction * s (solve_ivp event), or None."""
    w0 = _as_factors(w0)
    s = _check_positive("s", s)
    tau = _check_positive("tau", tau)
    fraction = _check_fraction("fraction", fraction)
    if np.prod(w0) >= fraction * s:
        return 0.0
    frozen = _clamp_mask(clamped, w0.size)

    def rhs(_, w):
        dw = -product_gradient(w, s) / tau
        dw[frozen] = 0.0
        return dw

    def reached(_, w):
        return np.prod(w) - fraction * s

    reached.terminal = True
    reached.direction = 1
    sol = solve_ivp(rhs, (0.0, t_max), w0, method="DOP853", rtol=ODE_RTOL, atol=ODE_ATOL,
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
    w = _as_factors(w0).copy()
    s = _check_positive("s", s)
    lr = _check_positive("lr", lr)
    tau = _check_positive("tau", tau)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
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
    depth = _check_depth(depth)
    s = _check_positive("s", s)
    tau = _check_positive("tau", tau)
    if isinstance(n_clamped, bool) or not isinstance(n_clamped, (int, np.integer)) \
            or not 0 <= n_clamped < depth:
        raise ValueError(f"n_clamped must be an integer in [0, {depth - 1}], got {n_clamped!r}")
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
    depth, s, w0, tau = _check_balanced(depth, s, w0, tau)
    c = s ** (1.0 / depth)
    out: dict = {"plateau_length": {}, "transition_time": {}}
    for k in range(min(3, depth)):
        d_k, s_k, tau_k = clamped_model(depth, k, s, tau)
        w_start = np.array([c] * k + [w0] * (depth - k))
        for key, fraction in (("plateau_length", PLATEAU_FRACTION),
                              ("transition_time", TRANSITION_FRACTION)):
            closed = time_to_fraction(d_k, s_k, w0, tau_k, fraction)
            simulated = simulated_time_to_fraction(w_start, s, tau, fraction, clamped=range(k))
            out[key][CLAMP_LABELS[k]] = {"closed_form": closed, "simulation": simulated}
    return out


# ---------------------------------------------------------------------- vector model


def _check_vectors(params: Mapping[str, np.ndarray], name: str) -> dict:
    if set(params) != set(FACTOR_NAMES):
        raise ValueError(f"{name} must have exactly the keys {FACTOR_NAMES}, got {sorted(params)}")
    out = {k: np.asarray(params[k], dtype=np.float64) for k in FACTOR_NAMES}
    n = out["a"].shape
    for k, v in out.items():
        if v.ndim != 1 or v.shape != n:
            raise ValueError(f"{name}[{k!r}] must be 1-D with the shape of {name}['a'] {n}, got {v.shape}")
    return out


def _check_clamp(clamp) -> tuple[str, ...]:
    clamp = tuple(clamp)
    for name in clamp:
        if name not in FACTOR_NAMES:
            raise ValueError(f"clamp contains unknown factor {name!r}; allowed: {FACTOR_NAMES}")
    return clamp


def random_factors(n: int, seed) -> dict:
    """a, b, c ~ N(0, I_n), drawn from np.random.default_rng(seed). -> {name: [n]}."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(n) for k in FACTOR_NAMES}


def vector_loss(params: Mapping, truth: Mapping) -> float:
    """L = 1/(2N^3) sum_ijk (a*_i b*_j c*_k - a_i b_j c_k)^2 via inner products.

    ||x (x) y (x) z||^2 = |x|^2 |y|^2 |z|^2 and <a*(x)b*(x)c*, a(x)b(x)c> =
    (a.a*)(b.b*)(c.c*), so no N^3 tensor is needed.
    """
    p, q = _check_vectors(params, "params"), _check_vectors(truth, "truth")
    n = p["a"].size
    target_sq = np.prod([q[k] @ q[k] for k in FACTOR_NAMES])
    model_sq = np.prod([p[k] @ p[k] for k in FACTOR_NAMES])
    cross = np.prod([p[k] @ q[k] for k in FACTOR_NAMES])
    return max(0.0, float(target_sq - 2 * cross + model_sq)) / (2 * n ** 3)


def vector_loss_tensor(params: Mapping, truth: Mapping) -> float:
    """The same loss from the explicit N^3 tensors (for tests; O(N^3) memory)."""
    p, q = _check_vectors(params, "params"), _check_vectors(truth, "truth")
    n = p["a"].size
    T = np.einsum("i,j,k->ijk", q["a"], q["b"], q["c"])  # [N, N, N]
    M = np.einsum("i,j,k->ijk", p["a"], p["b"], p["c"])  # [N, N, N]
    return float(((T - M) ** 2).sum()) / (2 * n ** 3)


def vector_gradient(params: Mapping, truth: Mapping) -> dict:
    """dL/da = ( |b|^2 |c|^2 a - (b.b*)(c.c*) a* ) / N^3, and likewise for b, c. -> {name: [N]}."""
    p, q = _check_vectors(params, "params"), _check_vectors(truth, "truth")
    n = p["a"].size
    grads = {}
    for k in FACTOR_NAMES:
        others = [j for j in FACTOR_NAMES if j != k]
        model_sq = np.prod([p[j] @ p[j] for j in others])
        cross = np.prod([p[j] @ q[j] for j in others])
        grads[k] = (model_sq * p[k] - cross * q[k]) / n ** 3
    return grads


def misalignment(x, x_true) -> float:
    """1 - cos^2(x, x_true): 1 when orthogonal, 0 when aligned (sign does not matter)."""
    x, x_true = np.asarray(x, dtype=np.float64), np.asarray(x_true, dtype=np.float64)
    denom = (x @ x) * (x_true @ x_true)
    if denom == 0:
        return 1.0
    return float(1.0 - (x @ x_true) ** 2 / denom)


def train_vector_model(truth: Mapping, init: Mapping, lr: float = 1.0, steps: int = 1000,
                       clamp: Iterable[str] = ()) -> dict:
    """Singh et al.'s toy: gradient descent on a, b, c; clamped factors reset to the truth.

    Clamped factors are set to the truth at the start and after every step. Returns a
    history of lists with keys "step", "loss", and per factor f: "f/misalignment"
    (1 - cos^2(f, f*)) and "f/loss_others_true" (the loss with the other two factors
    set to the truth), plus "params": the final factors.
    """
    q = _check_vectors(truth, "truth")
    p = _check_vectors(init, "init")
    if p["a"].shape != q["a"].shape:
        raise ValueError(f"init and truth must have equal N, got {p['a'].size} and {q['a'].size}")
    lr = _check_positive("lr", lr)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    clamp = _check_clamp(clamp)
    p = {k: (q[k].copy() if k in clamp else p[k].copy()) for k in FACTOR_NAMES}
    history: dict = {"step": [], "loss": []}
    for k in FACTOR_NAMES:
        history[f"{k}/misalignment"] = []
        history[f"{k}/loss_others_true"] = []

    def record(step):
        history["step"].append(step)
        history["loss"].append(vector_loss(p, q))
        for k in FACTOR_NAMES:
            history[f"{k}/misalignment"].append(misalignment(p[k], q[k]))
            others_true = {j: (p[j] if j == k else q[j]) for j in FACTOR_NAMES}
            history[f"{k}/loss_others_true"].append(vector_loss(others_true, q))

    record(0)
    for step in range(1, steps + 1):
        g = vector_gradient(p, q)
        p = {k: (q[k].copy() if k in clamp else p[k] - lr * g[k]) for k in FACTOR_NAMES}
        record(step)
    history["params"] = p
    return history


def aligned_scalar_equivalent(scales: Sequence[float], truth: Mapping, lr: float) -> dict:
    """The scalar model that the vector model becomes when a = alpha a*, b = beta b*, c = gamma c*.

    Derivation: a (x) b (x) c = alpha beta gamma T and ||T||^2 = (|a*||b*||c*|)^2, so
    with w = (alpha |a*|, beta |b*|, gamma |c*|) and s = |a*||b*||c*|,
    L = 1/(2N^3) (s - w1 w2 w3)^2. The gradient of a stays along a*, and
    w1 changes by |a*| (d alpha) = -lr dL/dw1, i.e. the vector GD is exactly scalar GD on
    1/2 (s - u)^2 with learning rate lr/N^3. Its flow limit, with time counted in steps,
    is tau dw/dt = -d/dw [1/2 (s - u)^2] with tau = N^3 / lr.
    Returns {"s", "w0" [3], "tau" (in steps), "scalar_lr"}.
    """
    q = _check_vectors(truth, "truth")
    lr = _check_positive("lr", lr)
    scales = np.asarray(scales, dtype=np.float64)
    if scales.shape != (3,):
        raise ValueError(f"scales must hold 3 numbers (alpha, beta, gamma), got shape {scales.shape}")
    norms = np.array([math.sqrt(q[k] @ q[k]) for k in FACTOR_NAMES])
    n = q["a"].size
    return {"s": float(np.prod(norms)), "w0": scales * norms, "tau": n ** 3 / lr,
            "scalar_lr": lr / n ** 3}


# ------------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class ToyFit:
    """Scalar model fitted to a loss curve: loss ~ floor + height (1 - u(x - x_start)/s).

    u is the balanced closed form with s = 1 (only u/s enters the mapping, and u/s depends
    on s, tau, w0 only through tau / s^((2D-2)/D) and w0 / s^(1/D): s is not
    identifiable, so it is fixed to 1 and tau, w0 are in those units). tau is in units of
    x (steps). For D = 1 only height * (1 - w0) is identifiable.
    """

    depth: int
    tau: float
    s: float
    w0: float
    floor: float
    height: float
    x_start: float
    rms: float
    rms_by_depth: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def predict(self, x) -> np.ndarray:
        return toy_loss_curve(x, self.depth, self.tau, self.w0, self.floor, self.height,
                              self.x_start)


def toy_loss_curve(x, depth: int, tau: float, w0: float, floor: float, height: float,
                   x_start: float = 0.0) -> np.ndarray:
    """floor + height * (1 - u(t)/s) with s = 1, t = max(x - x_start, 0). x [n] -> [n].

    Why this mapping: the network's loss sits at ~ln 2 while the circuit is absent
    (u = 0) and goes to ~0 when it is complete (u = s); the loss is taken to fall in
    proportion to the circuit's product.
    """
    t = np.maximum(np.asarray(x, dtype=np.float64) - float(x_start), 0.0)
    return floor + height * (1.0 - closed_form_product(t, depth, 1.0, w0, tau))


def _fit_one_depth(t, loss, depth, t_transition):
    # variable projection: for given (tau, w0) the best floor, height are linear LSQ
    def params(theta):
        # clipped so the optimiser's wilder probes stay inside the model's domain
        tau = math.exp(min(max(theta[0], -50.0), 50.0))
        w0 = min(max(1.0 / (1.0 + math.exp(-min(max(theta[1], -40.0), 40.0))), 1e-15), 1 - 1e-12)
        return tau, w0

    def shape(theta):
        tau, w0 = params(theta)
        return 1.0 - closed_form_product(t, depth, 1.0, w0, tau)

    def linear(theta):
        A = np.stack([np.ones_like(t), shape(theta)], axis=1)  # [n, 2]
        coef, *_ = np.linalg.lstsq(A, loss, rcond=None)
        return coef, A @ coef - loss

    best = None
    for w0 in ((0.3, 0.7) if depth == 1 else (1e-3, 1e-2, 0.05, 0.2)):
        # start with the tau that puts the model's transition at the observed one
        tau0 = max(t_transition, t[-1] * 1e-3) / max(
            transition_time(depth, 1.0, w0, 1.0), 1e-3)
        theta0 = np.array([math.log(tau0), math.log(w0 / (1 - w0))])
        try:
            res = least_squares(lambda th: linear(th)[1], theta0, method="lm",
                                x_scale=1.0, max_nfev=400)
        except (ValueError, FloatingPointError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    coef, resid = linear(best.x)
    tau, w0 = params(best.x)
    return dict(tau=tau, w0=w0, floor=float(coef[0]), height=float(coef[1]),
                rms=float(np.sqrt(np.mean(resid ** 2))))


def fit_scalar_model(x, loss, depths: Sequence[int] = CLOSED_FORM_DEPTHS,
                     x_start: Optional[float] = None) -> ToyFit:
    """Fit floor + height (1 - u/s) of the balanced D-factor model to a loss curve.

    x [n] (steps), loss [n]. Only points with x >= x_start are fitted; the default
    x_start is the plateau start from phases.describe_phase_change, so a network's fast
    initial fall (ln 5 -> ln 2) is left out. Each D in ``depths`` is fitted
    (least_squares over log tau and logit w0, floor and height solved linearly) and
    the smallest RMS residual wins.
    """
    x, loss = validate_curve(x, loss)
    depths = tuple(_check_depth(d, CLOSED_FORM_DEPTHS) for d in depths)
    if not depths:
        raise ValueError("depths must name at least one of 1, 2, 3")
    described = describe_phase_change(x, loss)
    if x_start is None:
        x_start = described.plateau_start if described.plateau_start is not None else x[0]
    x_start = float(x_start)
    keep = x >= x_start
    if keep.sum() < 5:
        raise ValueError(f"x_start={x_start} leaves {int(keep.sum())} points; at least 5 are needed")
    t, y = x[keep] - x_start, loss[keep]
    t_transition = (described.transition_time - x_start
                    if described.transition_time is not None else 0.5 * t[-1])
    fits = {d: _fit_one_depth(t, y, d, t_transition) for d in depths}
    best = min(fits, key=lambda d: fits[d]["rms"])
    f = fits[best]
    return ToyFit(depth=best, tau=f["tau"], s=1.0, w0=f["w0"], floor=f["floor"],
                  height=f["height"], x_start=x_start, rms=f["rms"],
                  rms_by_depth={d: fits[d]["rms"] for d in depths})


# ------------------------------------------------------------------------------- CLI


DEFAULT_FIGURE = "figures/toy_clamping.png"


def clamping_curves(s: float, w0: float, tau: float, t, depth: int = 3) -> dict:
    """Loss 1/2 (s - u)^2 with 0, 1, 2 factors clamped: closed form and solve_ivp.

    t [n] -> {label: {"closed_form": [n], "simulation": [n], "max_rel_error": float}};
    the relative error compares the products u.
    """
    depth, s, w0, tau = _check_balanced(depth, s, w0, tau)
    c = s ** (1.0 / depth)
    out = {}
    for k in range(min(3, depth)):
        d_k, s_k, tau_k = clamped_model(depth, k, s, tau)
        u_closed = c ** k * closed_form_product(t, d_k, s_k, w0, tau_k)
        W = simulate_flow(t, [c] * k + [w0] * (depth - k), s, tau, clamped=range(k))
        u_sim = W.prod(axis=1)
        out[CLAMP_LABELS[k]] = {
            "closed_form": 0.5 * (s - u_closed) ** 2,
            "simulation": 0.5 * (s - u_sim) ** 2,
            "max_rel_error": float(np.max(np.abs(u_closed - u_sim) / np.abs(u_sim))),
        }
    return out


VECTOR_CLAMPS = {"none": (), "one_clamp": ("c",), "two_clamps": ("b", "c")}


def plot_clamping_figure(path: str, t, curves: Mapping, summary: Mapping,
                         vector_histories: Optional[Mapping] = None) -> str:
    """The lesson's main figure: toy loss with 0/1/2 clamps (and the vector model)."""
    import os

    import matplotlib.pyplot as plt

    ncols = 2 if vector_histories else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.0 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    colours = {"none": "C0", "one_clamp": "C1", "two_clamps": "C2"}
    names = {"none": "no clamp (D=3)", "one_clamp": "one factor clamped (D=2)",
             "two_clamps": "two factors clamped (D=1)"}
    every = max(1, len(t) // 40)
    for label, curve in curves.items():
        ax.plot(t, curve["closed_form"], color=colours[label], lw=2, label=names[label])
        ax.plot(t[::every], curve["simulation"][::every], "o", ms=3.5, mfc="none",
                color=colours[label])
        end = summary["plateau_length"][label]["closed_form"]
        ax.axvline(end, color=colours[label], ls=":", lw=1)
    ax.plot([], [], "ko", mfc="none", ms=3.5, label="solve_ivp simulation")
    ax.plot([], [], "k:", lw=1, label="plateau end (u = 0.1 s)")
    ax.set_xlabel("time t / tau")
    ax.set_ylabel("loss 1/2 (s - u)^2")
    ax.set_title("Scalar toy: clamping shortens the plateau")
    ax.legend(fontsize=8)
    if vector_histories:
        ax = axes[0, 1]
        vnames = {"none": "no clamp", "one_clamp": "c clamped", "two_clamps": "b and c clamped"}
        for label, h in vector_histories.items():
            ax.semilogy(h["step"], np.maximum(h["loss"], 1e-16), color=colours[label],
                        lw=2, label=vnames[label])
        ax.set_ylim(1e-12, None)
        ax.set_xlabel("gradient-descent step (lr 1)")
        ax.set_ylabel("loss (log scale)")
        ax.set_title("Vector toy (Singh et al., N = 20)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_cli(argv: Sequence[str]) -> int:
    """``python -m tinyinduction toy``: plateau lengths and transitions with 0/1/2 clamps."""
    parser = argparse.ArgumentParser(
        prog="python -m tinyinduction toy",
        description="Toy product model (D=3): plateau length and transition time with "
                    "0, 1, 2 factors clamped at their targets, closed form vs solve_ivp. "
                    "Times are in units of tau.")
    parser.add_argument("--s", type=float, default=1.0, help="target product s (default 1)")
    parser.add_argument("--w0", type=float, default=0.05,
                        help="initial value of every unclamped factor (default 0.05)")
    parser.add_argument("--tau", type=float, default=1.0, help="time constant (default 1)")
    parser.add_argument("--points", type=int, default=400, help="samples per drawn curve")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vector-model panel")
    parser.add_argument("--figure", default=DEFAULT_FIGURE, help=f"PNG path (default {DEFAULT_FIGURE})")
    parser.add_argument("--no-figure", action="store_true", help="do not draw the figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(list(argv))
    try:
        _check_balanced(3, args.s, args.w0, args.tau)
        if args.points < 10:
            raise ValueError(f"--points must be >= 10, got {args.points}")
    except ValueError as err:
        parser.error(str(err))

    summary = clamping_summary(args.s, args.w0, args.tau)
    t_max = 1.3 * summary["transition_time"]["none"]["closed_form"]
    t = np.linspace(0.0, t_max, args.points)
    curves = clamping_curves(args.s, args.w0, args.tau, t)
    max_err = max(c["max_rel_error"] for c in curves.values())
    figure = None
    if not args.no_figure:
        truth = random_factors(20, args.seed)
        init = random_factors(20, args.seed + 1)
        histories = {label: train_vector_model(truth, init, 1.0, 1000, clamp)
                     for label, clamp in VECTOR_CLAMPS.items()}
        figure = plot_clamping_figure(args.figure, t, curves, summary, histories)

    if args.json:
        result = {
            "params": {"depth": 3, "s": args.s, "w0": args.w0, "tau": args.tau,
                       "plateau_fraction": PLATEAU_FRACTION,
                       "transition_fraction": TRANSITION_FRACTION, "time_unit": "tau"},
            "plateau_length": {k: v["closed_form"] for k, v in summary["plateau_length"].items()},
            "transition_time": {k: v["closed_form"] for k, v in summary["transition_time"].items()},
            "plateau_length_simulation": {k: v["simulation"] for k, v in summary["plateau_length"].items()},
            "transition_time_simulation": {k: v["simulation"] for k, v in summary["transition_time"].items()},
            "closed_form_max_rel_error": max_err,
            "figure": figure,
        }
        print(json.dumps(result))
        return 0
    print(f"Toy product model: D=3 factors, s={args.s:g}, w0={args.w0:g} per unclamped factor, "
          f"times in units of tau (tau={args.tau:g})")
    print(f"plateau = time to reach u = {PLATEAU_FRACTION:g} s; "
          f"transition = time to reach u = {TRANSITION_FRACTION:g} s")
    print(f"{'clamped':<20}{'plateau closed':>16}{'plateau sim':>14}{'transition closed':>20}{'transition sim':>16}")
    rows = {"none": "none (D=3)", "one_clamp": "one (D=2)", "two_clamps": "two (D=1)"}
    for label, name in rows.items():
        p, tr = summary["plateau_length"][label], summary["transition_time"][label]
        print(f"{name:<20}{p['closed_form']:>16.4f}{p['simulation']:>14.4f}"
              f"{tr['closed_form']:>20.4f}{tr['simulation']:>16.4f}")
    print(f"max relative error of the closed forms vs solve_ivp over the drawn curves: {max_err:.2e}")
    if figure:
        print(f"figure written to {figure}")
    return 0
