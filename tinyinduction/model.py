"""The attention-only transformer: the public door to parameters, forward and backward.

    params = init_params(config, seed)
    cache = run_with_cache(params, config, batch, clamps)      # forward, every array named
    loss, accuracy, grads, cache = loss_and_grads(params, config, batch, clamps)

Inputs (config.input_kind):
    "fewshot": an object with .exemplars [B, C+1, F] and .labels [B, C] (and .target [B]
               for the loss), laid out as the sequence x1 l1 x2 l2 ... xq (T = 2C+1).
    "tokens":  a TokenBatch(tokens [B, T], targets [B, T]) with target -1 = no loss there.

The work is done in three files of one job each: params.py (names, shapes,
initialisation), forward.py (the forward pass and its sites: clamps and the cache) and
backward.py (the paired backward pass); this file adds the loss and the functions
users call.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .backward import backward
from .batches import TokenBatch
from .cache import ActivationCache
from .checks import any_outside, integer_array
from .config import ModelConfig
from .forward import TO_TL, forward_passes, hook_names, run_with_cache
from .params import check_params, init_params, param_shapes

__all__ = ["TokenBatch", "TO_TL", "init_params", "check_params", "param_shapes", "hook_names",
           "run_with_cache", "loss_from_cache", "loss_and_accuracy", "loss_and_grads",
           "training_loss_and_grads", "training_forward", "training_backward", "backward",
           "ActivationCache"]


# ---------------------------------------------------------------- loss


def _loss_columns(config, batch, logits):
    """Logits [V, M] and targets [M] where the loss is read, plus where they came from.

    few-shot: the query position only; tokens: every position with target >= 0.
    """
    n_outputs, n_positions, n_batch = logits.shape
    if config.input_kind == "fewshot":
        targets = integer_array("batch.target", batch.target)
        if targets.shape != (n_batch,) or any_outside(targets, 0, n_outputs):
            raise ValueError(f"batch.target must be [B] = ({n_batch},) ints in [0, {n_outputs})")
        return logits[:, -1, :], targets, np.s_[:, -1, :]
    targets = np.asarray(batch.targets).T                                 # [T, B]
    where = targets >= 0
    if where.all():   # every position is read (text): the logits as they are, no copy
        return logits.reshape(n_outputs, -1), targets.reshape(-1), None
    if not where.any():
        raise ValueError("batch.targets has no position with a target (all are -1)")
    return logits[:, where], targets[where], np.s_[:, where]


def _loss(config, batch, logits):
    """Loss, accuracy, what the CE backward needs, and the loss columns of logits [V, T, B]
    (None: all of them)."""
    columns, targets, where = _loss_columns(config, batch, logits)
    loss, correct, ce_saved = ops.cross_entropy_forward(columns, targets)
    accuracy = np.count_nonzero(correct) / targets.shape[0]
    return loss, accuracy, ce_saved, where


def loss_from_cache(config, batch, cache):
    """(mean cross-entropy, accuracy) at the loss positions of a finished forward pass."""
    return _loss(config, batch, cache["hook_logits"].transpose(2, 1, 0))[:2]


def loss_and_accuracy(params, config: ModelConfig, batch, clamps=()):
    """(mean cross-entropy, accuracy) of params on a batch, as
    loss_from_cache(config, batch, run_with_cache(params, config, batch, clamps)).

    Only the loss is read (evaluation): the passes compute what it needs and keep no
    cache views (forward.py: a few-shot model's last block at the query only).
    """
    return _loss(config, batch, forward_passes(params, config, batch, clamps, read_cache=False)[-1].logits)[:2]


def loss_and_grads(params, config: ModelConfig, batch, clamps=(), record_activation_grads=False):
    """Forward, loss at the loss positions, backward.

    clamps: a list of Clamps or Passes. With several passes, the loss is the last pass's;
    backward runs the passes in reverse (each linked clamp sends its gradient into the
    pass it read from) and the parameter gradients of all passes are summed.
    Returns (loss, accuracy, grads, cache) with the last pass's cache.
    """
    runs = forward_passes(params, config, batch, clamps)
    return (*_backward_passes(config, batch, runs, record_activation_grads), runs[-1].cache)


def training_loss_and_grads(params, config: ModelConfig, batch, clamps=()):
    """(loss, accuracy, grads) of loss_and_grads, for a caller that never reads the cache
    (train, bench): the passes compute only what the loss needs (forward.py)."""
    return training_backward(config, batch, training_forward(params, config, batch, clamps))


def training_forward(params, config: ModelConfig, batch, clamps=()) -> list:
    """The forward half of training_loss_and_grads: its passes (bench times the halves)."""
    return forward_passes(params, config, batch, clamps, read_cache=False)


def training_backward(config: ModelConfig, batch, runs) -> tuple:
    """The other half: (loss, accuracy, grads) from the passes of training_forward."""
    return _backward_passes(config, batch, runs, False)


def _backward_passes(config, batch, runs, record_activation_grads):
    """Loss, accuracy and the parameter gradients summed over the passes."""
    final = runs[-1]
    logits = final.logits                                                  # [V, T, B]
    loss, accuracy, ce_saved, where = _loss(config, batch, logits)
    if where is None:
        d_logits = ops.cross_entropy_backward(ce_saved).reshape(logits.shape)
    else:
        d_logits = np.zeros(logits.shape, dtype=logits.dtype)
        d_logits[where] = ops.cross_entropy_backward(ce_saved)
    grads = backward(final, d_logits, record_activation_grads)
    for run in reversed(runs[:-1]):
        for name, grad in backward(run, None, record_activation_grads).items():
            grads[name] = grads[name] + grad if name in grads else grad
    # every parameter, in the parameters' order; zero where no pass used it
    grads = {name: grads[name] if name in grads else np.zeros_like(value)
             for name, value in final.params.items()}
    for run in runs:
        if run.pending:   # every linked gradient must have reached its source site
            raise RuntimeError(f"pass {run.pass_name!r}: gradients sent to {sorted(run.pending)} "
                               "were never consumed")
    return loss, accuracy, grads
