"""Benchmark: milliseconds per full training step (forward, backward, Adam), split into
its parts, and the floor set by the step's matrix products alone."""
from __future__ import annotations

import numbers
import time

import numpy as np

from .model import init_params, training_backward, training_forward
from .optim import Adam, flatten_grads, flatten_params
from .tasks.fewshot import FewShotTask

N_BATCHES = 64      # distinct batches, sampled before timing (as in the reference numbers)
WARMUP_STEPS = 20


def bench_training_step(model_config, task_config, train_config, n_steps=500) -> dict:
    """Median and minimum wall time of one training step, in milliseconds, as train() runs
    it (training_forward, training_backward, flatten_grads + Adam), with the median of
    each part: ms_forward (to the logits), ms_backward (loss and gradients), ms_adam
    (flattening the gradients and the update)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps = {n_steps!r}: must be an integer >= 1 (--repeats)")
    task = FewShotTask(task_config)
    rng = np.random.default_rng(0)
    batches = [task.sample(rng, train_config.batch_size) for _ in range(N_BATCHES)]
    flat, params = flatten_params(init_params(model_config, train_config.seed))
    names = list(params)
    optimizer = Adam(flat.size, train_config.lr, dtype=flat.dtype)
    flat_grads = np.empty_like(flat)
    times = np.empty((n_steps, 3))                    # forward, backward, Adam [s]
    for i in range(WARMUP_STEPS + n_steps):
        batch = batches[i % N_BATCHES]
        start = time.perf_counter()
        runs = training_forward(params, model_config, batch)
        forward_done = time.perf_counter()
        _, _, grads = training_backward(model_config, batch, runs)
        del runs
        backward_done = time.perf_counter()
        optimizer.step(flat, flatten_grads(grads, names, out=flat_grads), overwrite_grads=True)
        if i >= WARMUP_STEPS:
            times[i - WARMUP_STEPS] = (forward_done - start, backward_done - forward_done,
                                       time.perf_counter() - backward_done)
    times_ms = times * 1e3
    step_ms = times_ms.sum(axis=1)
    forward_ms, backward_ms, adam_ms = np.median(times_ms, axis=0)
    # the median is the step's cost; the mean also counts the steps another process
    # interrupted (the reference scripts of compare.sh report a mean: on a busy machine
    # the median flatters us)
    return {"ms_per_step": float(np.median(step_ms)), "ms_min": float(step_ms.min()),
            "ms_mean": float(step_ms.mean()),
            "ms_forward": float(forward_ms), "ms_backward": float(backward_ms),
            "ms_adam": float(adam_ms),
            "ms_matmuls_only": bench_matmuls_only(model_config, train_config.batch_size, n_steps),
            "repeats": n_steps, "batch_size": train_config.batch_size,
            "n_params": int(flat.size), "dtype": model_config.dtype}


def bench_matmuls_only(config, batch_size, n_steps=500) -> float:
    """Median ms of just the matrix products one training step of the full network does
    (few-shot input, every block over every position): a floor for any implementation
    that keeps them as BLAS calls. (Our step computes the last block's attention output
    for the query row only, so its own products are a little smaller.)"""
    c, rng = config, np.random.default_rng(0)
    dtype = np.dtype(c.dtype)
    n_items, n_cols = 3, batch_size * 5                       # exemplars; T * B columns
    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)
    exemplars, W_x, d_ex = rand(batch_size * n_items, c.d_feature), rand(c.d_feature, c.d_model), \
        rand(batch_size * n_items, c.d_model)
    W_qkv, x, d_qkv = rand(3 * c.n_heads * c.d_head, c.d_model), rand(c.d_model, n_cols), \
        rand(3 * c.n_heads * c.d_head, n_cols)
    W_O, z, d_out = rand(c.n_heads * c.d_head, c.d_model), rand(c.n_heads * c.d_head, n_cols), \
        rand(c.d_model, n_cols)
    times = []
    for i in range(WARMUP_STEPS + n_steps):
        start = time.perf_counter()
        exemplars @ W_x, exemplars.T @ d_ex                     # exemplar embedding, its dW
        for _ in range(c.n_layers):
            W_qkv @ x, W_qkv.T @ d_qkv, d_qkv @ x.T             # Q/K/V: forward, dx, dW
            W_O.T @ z, W_O @ d_out, z @ d_out.T                 # attention output: forward, dz, dW_O
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)
