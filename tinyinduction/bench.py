"""Benchmark: milliseconds per full training step (forward, backward, Adam), split into
its parts, and the floor set by the step's matrix products alone; with clamps, the
clamped step and evaluation against the plain ones, timed interleaved (their ratios).

Two settings: a few-shot preset (presets.preset: the paper's network, T = 5), and `text`:
the 2-layer model of the Olsson experiment (experiments/olsson.py: d_model 64, 4 heads of
16, RoPE, token input) on windows of random tokens, where long contexts (T = 64) and a
large vocabulary (V ~ 1000 for a byte-pair vocabulary) make attention and the unembedding
the step's cost.
"""
from __future__ import annotations

import numbers
import os
import time

import numpy as np

from . import ops
from .config import ModelConfig, TrainConfig
from .model import TokenBatch, init_params, training_backward, training_forward
from .optim import Adam, flatten_grads, flatten_params

N_BATCHES = 64      # distinct batches, sampled before timing (as in the reference numbers)
WARMUP_STEPS = 20
TEXT_DEFAULTS = {"d_vocab": 1024, "n_ctx": 64, "batch_size": 16}


class RandomTokens:
    """A task for timing only: windows of uniform random tokens, a target at every
    position (as in text). The step's cost does not depend on the tokens' values."""

    def __init__(self, d_vocab: int, n_ctx: int):
        self.d_vocab, self.n_ctx = d_vocab, n_ctx

    def sample(self, rng, batch_size) -> TokenBatch:
        window = rng.integers(0, self.d_vocab, (batch_size, self.n_ctx + 1))
        return TokenBatch(window[:, :-1], window[:, 1:])


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} = {value!r}: must be an integer >= 1")
    return int(value)


def text_setting(d_vocab=TEXT_DEFAULTS["d_vocab"], n_ctx=TEXT_DEFAULTS["n_ctx"],
                 batch_size=TEXT_DEFAULTS["batch_size"]):
    """(model config, task, train config) of the text bench: the Olsson experiment's
    2-layer model (its default setting: context 64, batch 16) with a d_vocab-token vocabulary."""
    d_vocab, n_ctx = _positive("--d-vocab", d_vocab), _positive("--n-ctx", n_ctx)
    model = ModelConfig(n_layers=2, n_heads=4, d_model=64, d_head=16, positional="rope",
                        input_kind="tokens", d_vocab=d_vocab, n_ctx=n_ctx)
    return model, RandomTokens(d_vocab, n_ctx), TrainConfig(batch_size=_positive("--batch-size", batch_size),
                                                            lr=3e-3)


def bench_training_step(model_config, task, train_config, n_steps=500) -> dict:
    """Median and minimum wall time of one training step, in milliseconds, as train() runs
    it (training_forward, training_backward, flatten_grads + Adam), with the median of
    each part: ms_forward (to the logits), ms_backward (loss and gradients), ms_adam
    (flattening the gradients and the update). task: anything with .sample(rng, batch_size)
    (a FewShotTask, RandomTokens)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps = {n_steps!r}: must be an integer >= 1 (--repeats)")
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
    n_positions = _n_positions(model_config, batches[0])
    # the median is the step's cost; the mean also counts the steps another process
    # interrupted (the reference scripts of compare.sh report a mean: on a busy machine
    # the median flatters us)
    return {"ms_per_step": float(np.median(step_ms)), "ms_min": float(step_ms.min()),
            "ms_mean": float(step_ms.mean()),
            "ms_forward": float(forward_ms), "ms_backward": float(backward_ms),
            "ms_adam": float(adam_ms),
            "ms_matmuls_only": bench_matmuls_only(model_config, train_config.batch_size,
                                                  n_positions, n_steps),
            "repeats": n_steps, "batch_size": train_config.batch_size,
            "n_positions": n_positions, "n_outputs": model_config.n_outputs,
            "n_params": int(flat.size), "dtype": model_config.dtype}


def _n_positions(config, batch) -> int:
    if config.input_kind == "fewshot":
        return 2 * np.asarray(batch.labels).shape[1] + 1
    return np.asarray(batch.tokens).shape[1]


def bench_matmuls_only(config, batch_size, n_positions=5, n_steps=500) -> float:
    """Median ms of just the matrix products one training step of the full network does
    (every block over every position): a floor for any implementation that keeps them as
    BLAS calls. Few-shot: the exemplar embedding, Q/K/V and output projections and the
    unembedding at the query (our step computes the last block's attention output for the
    query row only, so its own products are a little smaller). Long sequences
    (ops.heads_outer) add the attention products, which are batched matmuls there."""
    c, rng = config, np.random.default_rng(0)
    dtype = np.dtype(c.dtype)
    T, B, H, E, D = n_positions, batch_size, c.n_heads, c.d_head, c.d_model
    n_cols = B * T
    n_loss_cols = B if c.input_kind == "fewshot" else n_cols

    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)
    products = []     # (a, b) pairs: the step computes a @ b
    if c.input_kind == "fewshot":
        n_items = (T + 1) // 2
        exemplars, W_x, d_ex = rand(B * n_items, c.d_feature), rand(c.d_feature, D), rand(B * n_items, D)
        products += [(exemplars, W_x), (exemplars.T, d_ex)]          # exemplar embedding, its dW
    W_qkv, x, d_qkv = rand(3 * H * E, D), rand(D, n_cols), rand(3 * H * E, n_cols)
    W_O, z, d_out = rand(H * E, D), rand(H * E, n_cols), rand(D, n_cols)
    q, k, p = rand(H, B, T, E), rand(H, B, E, T), rand(H, B, T, T)
    for _ in range(c.n_layers):
        products += [(W_qkv, x), (W_qkv.T, d_qkv), (d_qkv, x.T)]     # Q/K/V: forward, dx, dW
        products += [(W_O.T, z), (W_O, d_out), (z, d_out.T)]         # attention output: forward, dz, dW_O
        if ops.heads_outer(T):   # scores, weighted sum and their backward: two products each
            products += [(q, k), (p, q)] * 3
    W_U, x_loss, d_logits = rand(c.n_outputs, D), rand(D, n_loss_cols), rand(c.n_outputs, n_loss_cols)
    products += [(W_U, x_loss), (W_U.T, d_logits), (x_loss, d_logits.T)]   # unembedding
    times = []
    for i in range(WARMUP_STEPS + n_steps):
        start = time.perf_counter()
        for a, b in products:
            a @ b
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


# ---------------------------------------------------------------- clamped against plain


class _Trainer:
    """One model's parameters and Adam state, stepped as train() steps them."""

    def __init__(self, model_config, train_config, clamps):
        self.config, self.clamps = model_config, clamps
        self.flat, self.params = flatten_params(init_params(model_config, train_config.seed))
        self.names = list(self.params)
        self.optimizer = Adam(self.flat.size, train_config.lr, dtype=self.flat.dtype)
        self.flat_grads = np.empty_like(self.flat)

    def step(self, batch):
        runs = training_forward(self.params, self.config, batch, self.clamps)
        _, _, grads = training_backward(self.config, batch, runs)
        del runs
        self.optimizer.step(self.flat, flatten_grads(grads, self.names, out=self.flat_grads),
                            overwrite_grads=True)


BLOCK_STEPS = 10     # the clamped and the plain step alternate in blocks of this many steps


def bench_clamped_step(model_config, task, train_config, clamps, n_steps=300, n_evals=5) -> dict:
    """The clamped training step and evaluation against the plain ones, timed interleaved in
    one process (blocks of BLOCK_STEPS steps; evaluations one by one), so that the ratios
    survive a busy machine. Medians in milliseconds:

    ms_per_step, plain_ms_per_step, ratio: the training step (forward, backward, Adam);
    eval_ms, plain_eval_ms, eval_ratio: one evaluation of the task's evaluation sets (as
    training runs it every eval_every steps); None for a task without evaluation sets.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps = {n_steps!r}: must be an integer >= 1 (--repeats)")
    from .evaluation import evaluate_all
    rng = np.random.default_rng(0)
    batches = [task.sample(rng, train_config.batch_size) for _ in range(N_BATCHES)]
    trainers = {"plain": _Trainer(model_config, train_config, ()),
                "clamped": _Trainer(model_config, train_config, clamps)}
    times = {name: [] for name in trainers}
    n_blocks = -(-n_steps // BLOCK_STEPS)
    for block in range(-2, n_blocks):                   # two blocks of each to warm up
        for name, trainer in trainers.items():
            for i in range(BLOCK_STEPS):
                batch = batches[(block * BLOCK_STEPS + i) % N_BATCHES]
                start = time.perf_counter()
                trainer.step(batch)
                if block >= 0:
                    times[name].append(time.perf_counter() - start)
    result = {"ms_per_step": _median_ms(times["clamped"]), "plain_ms_per_step": _median_ms(times["plain"])}
    result["ratio"] = result["ms_per_step"] / result["plain_ms_per_step"]
    eval_sets = task.eval_sets() if hasattr(task, "eval_sets") else None
    eval_times = {name: [] for name in trainers}
    if eval_sets:
        for round_ in range(-1, n_evals):                # one round to warm up
            for name, trainer in trainers.items():
                start = time.perf_counter()
                evaluate_all(trainer.params, model_config, eval_sets, trainer.clamps)
                if round_ >= 0:
                    eval_times[name].append(time.perf_counter() - start)
    result.update(
        eval_ms=_median_ms(eval_times["clamped"]) if eval_sets else None,
        plain_eval_ms=_median_ms(eval_times["plain"]) if eval_sets else None)
    result["eval_ratio"] = result["eval_ms"] / result["plain_eval_ms"] if eval_sets else None
    result.update(repeats=len(times["plain"]), n_evals=n_evals if eval_sets else 0,
                  eval_sequences=sum(_n_sequences(b) for b in eval_sets.values()) if eval_sets else 0,
                  batch_size=train_config.batch_size, clamps=str(clamps),
                  load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    return result


def _median_ms(seconds) -> float:
    return float(np.median(seconds) * 1e3)


def _n_sequences(batch) -> int:
    return int(np.asarray(batch[0]).shape[0])
