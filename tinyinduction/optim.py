"""Adam, hand-written, on one flat parameter vector.

The parameters live as views into one flat buffer (`flatten_params`), so one update of a
few vectorised lines moves all of them: with ~20 small arrays, a per-array loop would
cost more in NumPy call overhead than the arithmetic.
"""
from __future__ import annotations

import numpy as np


def flatten_params(params: dict) -> tuple[np.ndarray, dict]:
    """Copy params into one flat vector [P]; return it and a dict of views into it."""
    names = list(params)
    dtype = np.result_type(*[params[n].dtype for n in names])
    flat = np.concatenate([np.asarray(params[n], dtype=dtype).ravel() for n in names])
    return flat, param_views(flat, params)


def param_views(flat: np.ndarray, like: dict) -> dict:
    """{name: view of flat [P]} shaped as the arrays of `like`, in its order: the layout
    of flatten_params(like)."""
    views, offset = {}, 0
    for name, value in like.items():
        views[name] = flat[offset:offset + value.size].reshape(np.shape(value))
        offset += value.size
    return views


def flatten_grads(grads: dict, names, out=None) -> np.ndarray:
    """Gradients in the same order as the flat parameter vector [P] (written into `out`
    if given: the same memory every step)."""
    # axis=None flattens each array inside one C call (no Python-level ravel per array)
    return np.concatenate([grads[n] for n in names], axis=None, out=out)


class Adam:
    """Adam (Kingma & Ba) with bias correction; no weight decay."""

    def __init__(self, n_params: int, lr: float, beta1=0.9, beta2=0.999, eps=1e-8, dtype=np.float32):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = np.zeros(n_params, dtype=dtype)   # first moment [P]
        self.v = np.zeros(n_params, dtype=dtype)   # second moment [P]
        self.t = 0
        self._scratch = np.zeros(n_params, dtype=dtype)   # reused: no allocation per step

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray, overwrite_grads=False):
        """Update flat_params in place from flat_grads [P].

        overwrite_grads: flat_grads is scratch space the caller no longer needs (train and
        bench); otherwise it is copied first. Speed: one array fewer streamed through the
        cache (~10% of this update).
        """
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        m, v = self.m, self.v
        if overwrite_grads:
            scratch = flat_grads
        else:
            scratch = self._scratch
            np.copyto(scratch, flat_grads)
        g = scratch                  # read as g, then overwritten with g^2, then reused
        # m = b1 m + (1 - b1) g, written as b1 (m - g) + g: in place, no temporary
        m -= g
        m *= b1
        m += g
        # v = b2 v + (1 - b2) g^2, the same way
        np.multiply(g, g, out=scratch)
        v -= scratch
        v *= b2
        v += scratch
        # p -= lr m_hat / (sqrt(v_hat) + eps), both corrections folded into two scalars
        # Python floats, so that the float32 loops stay float32 (a NumPy float64 scalar
        # would make every in-place op below loop in float64 and cast back)
        correction = (1 - b2 ** self.t) ** 0.5
        step_size = self.lr * correction / (1 - b1 ** self.t)
        np.sqrt(v, out=scratch)
        scratch += self.eps * correction
        np.divide(m, scratch, out=scratch)
        scratch *= step_size
        flat_params -= scratch

    def state(self) -> dict:
        return {"adam.m": self.m, "adam.v": self.v, "adam.t": np.array(self.t)}

    def load_state(self, state: dict):
        """Take m, v [P] and t from state(); everything is checked before anything changes."""
        for key in ("adam.m", "adam.v"):
            value = np.asarray(state[key])
            if value.shape != self.m.shape or value.dtype.kind != "f":
                raise ValueError(f"optimizer state {key} has shape {value.shape} and dtype "
                                 f"{value.dtype}; the model has {self.m.shape[0]} parameters")
        t = np.asarray(state["adam.t"])
        if t.shape != () or t.dtype.kind not in "iu" or t < 0:
            raise ValueError(f"optimizer state adam.t = {state['adam.t']!r}: must be an integer >= 0")
        self.m = state["adam.m"].astype(self.m.dtype)
        self.v = state["adam.v"].astype(self.v.dtype)
        self.t = int(t)
