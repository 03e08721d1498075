"""Fit the scalar toy to a measured loss curve (e.g. a network's history).

loss ~ floor + height (1 - u(x - x_start)/s) with u the balanced closed form of D = 1,
2 or 3 factors; floor and height are constrained to be >= 0, so no fitted curve goes
below zero loss.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy.optimize import least_squares, nnls

from ..phases import describe_phase_change, validate_curve
from .checks import check_depth, check_number, float_array
from .scalar import CLOSED_FORM_DEPTHS, closed_form_product, transition_time


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
    x = float_array("x", x, "an array of numbers (steps)")
    t = np.maximum(x - check_number("x_start", x_start), 0.0)
    floor, height = check_number("floor", floor), check_number("height", height)
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
        # floor >= 0 and height >= 0: a loss curve never goes below 0 and falls, so the
        # fitted curve floor + height (1 - u/s) stays >= 0 for every D
        A = np.stack([np.ones_like(t), shape(theta)], axis=1)  # [n, 2]
        coef, _ = nnls(A, loss)
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
    if isinstance(depths, (str, bytes)) or not isinstance(depths, Iterable):
        raise TypeError(f"depths must be a sequence of depths from {CLOSED_FORM_DEPTHS}, got {depths!r}")
    depths = tuple(check_depth(d, CLOSED_FORM_DEPTHS) for d in depths)
    if not depths:
        raise ValueError("depths must name at least one of 1, 2, 3")
    described = describe_phase_change(x, loss)
    if x_start is None:
        x_start = described.plateau_start if described.plateau_start is not None else x[0]
    x_start = check_number("x_start", x_start)
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
