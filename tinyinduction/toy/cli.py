"""`python -m tinyinduction toy`: plateau lengths and transition times with 0, 1, 2
factors clamped, closed form next to solve_ivp, and the clamping figure.

The time grid adapts to the scales given (it ends when the slowest curve has settled
and turns logarithmic when the curves' time scales differ by more than 1000x), and every
simulation runs only over its own curve's span, so the work stays bounded for any valid
--s, --w0, --tau.
"""
from __future__ import annotations

import argparse
import json
from typing import Sequence

import numpy as np

from .checks import check_balanced
from .plots import plot_clamping_figure
from .scalar import (CLAMP_LABELS, PLATEAU_FRACTION, TRANSITION_FRACTION, clamped_model,
                     clamping_curves, clamping_summary, relaxation_time, settling_time,
                     transition_time)
from .vector import VECTOR_CLAMPS, random_factors, train_vector_model

DEFAULT_FIGURE = "figures/toy_clamping.png"
SCALE_RANGE = (1e-12, 1e12)         # --s and --tau: float64 stays exact enough inside
SMALLEST_W0_FRACTION = 1e-12        # --w0 >= 1e-12 s^(1/3): the flow still moves in float64
MAX_POINTS = 100_000


def time_grid(s: float, w0: float, tau: float, points: int, depth: int = 3) -> np.ndarray:
    """Times t [points] that show every clamp curve from its start until it has settled.

    Ends at max(1.3 x the unclamped transition, the slowest settling time). When the
    fastest curve's time scale is under 1/1000 of the end, the grid is 0 followed by
    log-spaced times from 1/100 of that scale, so the fast curves are not squeezed
    against t = 0.
    """
    settle, scales = [], []
    for k in range(min(3, depth)):
        d_k, s_k, tau_k = clamped_model(depth, k, s, tau)
        settle.append(settling_time(d_k, s_k, w0, tau_k))
        relax, transition = relaxation_time(d_k, s_k, tau_k), transition_time(d_k, s_k, w0, tau_k)
        scales.append(min(relax, transition) if transition > 0 else relax)
    end = max(1.3 * transition_time(depth, s, w0, tau), max(settle))
    fastest = min(scales)
    if end / fastest <= 1e3:
        return np.linspace(0.0, end, points)
    return np.concatenate(([0.0], np.geomspace(fastest / 100.0, end, points - 1)))


def _format(value) -> str:
    return "       -" if value is None else f"{value:.4g}"


def run_cli(argv: Sequence[str]) -> int:
    """``python -m tinyinduction toy``: plateau lengths and transitions with 0/1/2 clamps."""
    parser = argparse.ArgumentParser(
        prog="python -m tinyinduction toy",
        description="Toy product model (D=3): plateau length and transition time with "
                    "0, 1, 2 factors clamped at their targets, closed form vs solve_ivp. "
                    "Times are in units of tau.")
    parser.add_argument("--s", type=float, default=1.0,
                        help=f"target product s in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] (default 1)")
    parser.add_argument("--w0", type=float, default=0.05,
                        help="initial value of every unclamped factor, in "
                             f"[{SMALLEST_W0_FRACTION:g} s^(1/3), s^(1/3)) (default 0.05)")
    parser.add_argument("--tau", type=float, default=1.0,
                        help=f"time constant in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] (default 1)")
    parser.add_argument("--points", type=int, default=400,
                        help=f"samples per drawn curve, 10 to {MAX_POINTS:,} (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the vector-model panel (>= 0)")
    parser.add_argument("--figure", default=DEFAULT_FIGURE, help=f"PNG path (default {DEFAULT_FIGURE})")
    parser.add_argument("--no-figure", action="store_true", help="do not draw the figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(list(argv))
    try:
        for name in ("s", "tau"):
            value = getattr(args, name)
            if not SCALE_RANGE[0] <= value <= SCALE_RANGE[1]:
                raise ValueError(f"--{name} must be in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}], got {value:g}")
        check_balanced(3, args.s, args.w0, args.tau)
        smallest = SMALLEST_W0_FRACTION * args.s ** (1.0 / 3.0)
        if args.w0 < smallest * (1 - 1e-9):     # (1 - 1e-9): the bound itself is allowed
            raise ValueError(f"--w0 must be >= {SMALLEST_W0_FRACTION:g} s^(1/3) = {smallest:.3g} "
                             f"(smaller factors do not move in float64), got {args.w0:g}")
        if not 10 <= args.points <= MAX_POINTS:
            raise ValueError(f"--points must be in [10, {MAX_POINTS:,}], got {args.points}")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
    except ValueError as err:
        parser.error(str(err))

    summary = clamping_summary(args.s, args.w0, args.tau)
    t = time_grid(args.s, args.w0, args.tau, args.points)
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
    for label in CLAMP_LABELS.values():
        p, tr = summary["plateau_length"][label], summary["transition_time"][label]
        print(f"{rows[label]:<20}{_format(p['closed_form']):>16}{_format(p['simulation']):>14}"
              f"{_format(tr['closed_form']):>20}{_format(tr['simulation']):>16}")
    print(f"max relative error of the closed forms vs solve_ivp over the drawn curves: {max_err:.2e}")
    if figure:
        print(f"figure written to {figure}")
    return 0
