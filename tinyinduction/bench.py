"""Benchmark: milliseconds per full training step (forward, backward, Adam)."""
from __future__ import annotations

import time

import numpy as np

from .model import init_params, loss_and_grads
from .optim import Adam, flatten_grads, flatten_params
from .tasks.fewshot import FewShotTask

N_BATCHES = 64      # distinct batches, sampled before timing (as in the reference numbers)
WARMUP_STEPS = 20


def bench_training_step(model_config, task_config, train_config, n_steps=500) -> dict:
    """Median and minimum wall time of one training step, in milliseconds."""
    if n_steps < 1:
        raise ValueError(f"n_steps = {n_steps}: must be at least 1")
    task = FewShotTask(task_config)
    rng = np.random.default_rng(0)
    batches = [task.sample(rng, train_config.batch_size) for _ in range(N_BATCHES)]
    flat, params = flatten_params(init_params(model_config, train_config.seed))
    names = list(params)
    optimizer = Adam(flat.size, train_config.lr, dtype=flat.dtype)
    times = []
    for i in range(WARMUP_STEPS + n_steps):
        batch = batches[i % N_BATCHES]
        start = time.perf_counter()
        _, _, grads, _ = loss_and_grads(params, model_config, batch)
        optimizer.step(flat, flatten_grads(grads, names))
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    times_ms = np.array(times) * 1e3
    return {"ms_per_step": float(np.median(times_ms)), "ms_min": float(times_ms.min()),
            "repeats": n_steps, "batch_size": train_config.batch_size,
            "n_params": int(flat.size), "dtype": model_config.dtype}
