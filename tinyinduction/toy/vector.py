"""Singh et al.'s vector toy: a, b, c in R^N fitted to a rank-1 target a* (x) b* (x) c*.

L = 1/(2N^3) sum_ijk (a*_i b*_j c*_k - a_i b_j c_k)^2, trained by gradient descent;
clamped factors are reset to the truth after every step. With aligned initialisation it
is exactly the scalar model of scalar.py (aligned_scalar_equivalent derives it).
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from .checks import check_integer, check_positive, float_array

FACTOR_NAMES = ("a", "b", "c")
VECTOR_CLAMPS = {"none": (), "one_clamp": ("c",), "two_clamps": ("b", "c")}


def _check_vectors(params: Mapping[str, np.ndarray], name: str) -> dict:
    if not isinstance(params, Mapping):
        text = repr(params) if len(repr(params)) <= 80 else repr(params)[:77] + "..."
        raise TypeError(f"{name} must be a dict with the keys {FACTOR_NAMES} (1-D arrays), got {text}")
    if set(params) != set(FACTOR_NAMES):
        raise ValueError(f"{name} must have exactly the keys {FACTOR_NAMES}, got {sorted(map(str, params))}")
    out = {k: float_array(f"{name}[{k!r}]", params[k], "a 1-D array of numbers") for k in FACTOR_NAMES}
    n = out["a"].shape
    for k, v in out.items():
        if v.ndim != 1 or v.shape != n:
            raise ValueError(f"{name}[{k!r}] must be 1-D with the shape of {name}['a'] {n}, got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name}[{k!r}] must be finite, got {v}")
    return out


def _check_clamp(clamp) -> tuple[str, ...]:
    if clamp is None:
        return ()
    if isinstance(clamp, str):
        clamp = (clamp,)
    if not isinstance(clamp, Iterable):
        raise TypeError(f"clamp must be a sequence of factor names from {FACTOR_NAMES}, got {clamp!r}")
    clamp = tuple(clamp)
    for name in clamp:
        if name not in FACTOR_NAMES:
            raise ValueError(f"clamp contains unknown factor {name!r}; allowed: {FACTOR_NAMES}")
    return clamp


def random_factors(n: int, seed) -> dict:
    """a, b, c ~ N(0, I_n), drawn from np.random.default_rng(seed). -> {name: [n]}."""
    n = check_integer("n", n, 1)
    seed = check_integer("seed", seed, 0)      # explicit: no seed means no reproducibility
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
    lr = check_positive("lr", lr)
    steps = check_integer("steps", steps, 0)
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
    lr = check_positive("lr", lr)
    scales = float_array("scales", scales, "3 numbers (alpha, beta, gamma)")
    if scales.shape != (3,):
        raise ValueError(f"scales must hold 3 numbers (alpha, beta, gamma), got shape {scales.shape}")
    norms = np.array([math.sqrt(q[k] @ q[k]) for k in FACTOR_NAMES])
    n = q["a"].size
    return {"s": float(np.prod(norms)), "w0": scales * norms, "tau": n ** 3 / lr,
            "scalar_lr": lr / n ** 3}
