"""Progress measures read off a forward cache (few-shot task).

Positions of a few-shot sequence: exemplar i at 2i, its label at 2i + 1, query at 2C.
"""
from __future__ import annotations

import numpy as np


def induction_strength(cache, batch, layer: int) -> np.ndarray:
    """Per head [H]: mean over sequences of attention(query -> correct label token)
    minus attention(query -> the other label tokens) (Singh et al.; 2s - 1 for a
    "match" clamp of strength s). Only meaningful with C = 2 context pairs, where
    there is exactly one other label."""
    pattern = cache["pattern", layer]                       # [B, H, Tq, Tk]
    query_row = pattern[:, :, -1, :]                        # [B, H, Tk]
    n_pairs = (pattern.shape[-1] - 1) // 2
    label_positions = 2 * np.arange(n_pairs) + 1            # [C]
    on_labels = query_row[:, :, label_positions]            # [B, H, C]
    rows = np.arange(pattern.shape[0])
    correct = on_labels[rows, :, np.asarray(batch.query_pair)]   # [B, H]
    others = (on_labels.sum(axis=2) - correct) / max(n_pairs - 1, 1)
    return (correct - others).mean(axis=0)


def previous_token_score(cache, layer: int) -> np.ndarray:
    """Per head [H]: mean attention from each position i >= 1 to i - 1."""
    pattern = cache["pattern", layer]                       # [B, H, Tq, Tk]
    rows = np.arange(1, pattern.shape[-1])
    return pattern[:, :, rows, rows - 1].mean(axis=(0, 2))


def label_previous_token_score(cache, layer: int) -> np.ndarray:
    """Per head [H]: mean attention from each label token to its own exemplar — the
    part of previous-token attention the induction circuit needs (subcircuit A)."""
    pattern = cache["pattern", layer]
    n_pairs = (pattern.shape[-1] - 1) // 2
    labels = 2 * np.arange(n_pairs) + 1
    return pattern[:, :, labels, labels - 1].mean(axis=(0, 2))


def previous_token_head_score(cache, layer: int) -> np.ndarray:
    """Per head [H]: how much each label token attends to its own exemplar beyond the
    other positions it can see: mean over label rows i (and sequences) of
    A[i, i-1] - mean_{j <= i, j != i-1} A[i, j].

    0 for uniform attention (the baseline), 1 for an ideal previous-token head (all on
    i-1), negative for a head that avoids the exemplar.
    """
    pattern = cache["pattern", layer]                       # [B, H, Tq, Tk]
    n_pairs = (pattern.shape[-1] - 1) // 2
    labels = 2 * np.arange(n_pairs) + 1                     # label rows [C]
    on_exemplar = pattern[:, :, labels, labels - 1]         # [B, H, C]
    row_sums = pattern[:, :, labels, :].sum(axis=-1)        # [B, H, C] = 1 (masked keys are 0)
    others = (row_sums - on_exemplar) / labels              # label i sees i+1 keys: i others
    return (on_exemplar - others).mean(axis=(0, 2))


def learning_time(history, key: str = "eval/train/loss"):
    """Singh et al.'s learning time: the first evaluation step with loss <= 0.4 ln 2
    (None if never), by phases.first_crossing; history is a run's history dict.
    Evaluations with a non-finite loss are skipped."""
    from .phases import MIN_POINTS, PAPER_THRESHOLD, first_crossing
    steps, loss = np.asarray(history["step"], dtype=float), np.asarray(history[key], dtype=float)
    finite = np.isfinite(loss)
    steps, loss = steps[finite], loss[finite]
    if len(steps) < MIN_POINTS:   # too short for phases' curve checks: the same rule directly
        below = np.flatnonzero(loss <= PAPER_THRESHOLD)
        return int(steps[below[0]]) if below.size else None
    crossing = first_crossing(steps, loss, PAPER_THRESHOLD, interpolate=False)
    return None if crossing is None else int(crossing)


# ---------------------------------------------------------------- from the weights


def _folded_layernorm(params, config, layer):
    """[D, D] map that layer `layer`'s pre-LayerNorm applies before W_Q/W_K/W_V, with the
    per-token 1/std left out: centring (I - 11^T/D) then the gain diag(w). Identity
    without LayerNorm. (The bias and the 1/std scale do not change directions.)"""
    d = config.d_model
    if not config.layernorm:
        return np.eye(d)
    centring = np.eye(d) - np.full((d, d), 1.0 / d)
    return centring * params[f"blocks.{layer}.ln1.w"][None, :]


def qk_ov_circuits(params, config, layer):
    """Per head, row-vector convention (x [1, D] is a residual vector):
    W_QK [H, D, D] with score(x_q, x_k) = x_q W_QK x_k^T (RoPE ignored: relative
    position 0), and W_OV [H, D, D] with head output = (attention-weighted x) W_OV.
    The layer's LayerNorm is folded in (see _folded_layernorm)."""
    b = f"blocks.{layer}.attn."
    ln = _folded_layernorm(params, config, layer)                       # [D, D]
    W_Q = np.einsum("de,hef->hdf", ln, params[b + "W_Q"])               # [H, D, E]
    W_K = np.einsum("de,hef->hdf", ln, params[b + "W_K"])
    W_V = np.einsum("de,hef->hdf", ln, params[b + "W_V"])
    W_QK = W_Q @ W_K.transpose(0, 2, 1)                                  # [H, D, D]
    W_OV = W_V @ params[b + "W_O"]                                       # [H, D, D]
    return W_QK, W_OV


def composition_score(first_ov, second, kind):
    """|M|_F / (|first_ov|_F |second|_F) for the composed matrix M of Elhage et al.

    first_ov [..., D, D]: a first head's OV circuit (x -> x W_OV, row vectors), writing
    into the stream the second head reads; second [..., D, D]: the second head's W_QK
    (kind "Q" or "K") or W_OV (kind "V"). Leading axes broadcast. -> score [...]
    Q: the second head's query reads it:  M = W_OV1 W_QK2
    K: its key reads it:                  M = W_QK2 W_OV1^T
    V: its value reads it:                M = W_OV1 W_OV2
    """
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"composition kind = {kind!r}; allowed: 'Q', 'K', 'V'")
    if kind == "K":
        composed = second @ np.swapaxes(first_ov, -1, -2)
    else:   # Q and V: the first head's output enters the second's query / value input
        composed = first_ov @ second
    norm = np.linalg.norm
    return norm(composed, axis=(-2, -1)) / (norm(first_ov, axis=(-2, -1)) * norm(second, axis=(-2, -1)))


def composition_scores(params, config, n_baseline: int = 200, seed: int = 0) -> dict:
    """Q-, K- and V-composition of every layer-0 head into every layer-1 head (Elhage et
    al. 2021), from the weights, with a random baseline.

    Returns {"Q"|"K"|"V": [H0, H1] scores, "baseline": {"Q"|"K"|"V": float}}: the
    baseline is the mean of the same score over n_baseline draws of i.i.d. Gaussian
    W_Q, W_K, W_V, W_O of the same shapes (the scores are scale-free, so the Gaussian's
    scale does not matter). LayerNorm: the layer-1 pre-LN's centring and gain are folded
    into layer 1's W_Q/W_K/W_V, its per-token 1/std is left out; RoPE is ignored.
    """
    if config.n_layers < 2:
        raise ValueError(f"composition scores need 2 layers; the model has n_layers = {config.n_layers}")
    _, W_OV0 = qk_ov_circuits(params, config, 0)
    W_QK1, W_OV1 = qk_ov_circuits(params, config, 1)
    first = W_OV0[:, None]                                              # [H0, 1, D, D]
    scores = {"Q": composition_score(first, W_QK1[None], "Q"), "K": composition_score(first, W_QK1[None], "K"),
              "V": composition_score(first, W_OV1[None], "V")}
    rng = np.random.default_rng(seed)
    D, E = config.d_model, config.d_head

    def gaussian(*shape):
        return rng.standard_normal((n_baseline,) + shape)

    ov, ov2 = gaussian(D, E) @ gaussian(E, D), gaussian(D, E) @ gaussian(E, D)   # W_V W_O
    qk = gaussian(D, E) @ np.swapaxes(gaussian(D, E), 1, 2)                       # W_Q W_K^T
    scores["baseline"] = {"Q": float(composition_score(ov, qk, "Q").mean()),
                          "K": float(composition_score(ov, qk, "K").mean()),
                          "V": float(composition_score(ov, ov2, "V").mean())}
    return scores


# ---------------------------------------------------------------- direct logit attribution


def direct_logit_attribution(cache, params, config, batch) -> np.ndarray:
    """Per layer and head [L, H]: the mean over sequences of what the head's output at the
    query adds, straight through the final LayerNorm and the unembedding, to the correct
    label's logit minus the other in-context label's (C = 2: the one distractor; in
    general the mean of the other labels in context).

    The final LayerNorm is linearised at the clean run: its centring is applied and its
    per-token scale is read from the cache (ln_final.hook_normalized / centred input), so
    the heads' attributions plus the other components sum to the logit difference.
    """
    W_U = params["unembed.W_U"]                                          # [D, V]
    labels, target = np.asarray(batch.labels), np.asarray(batch.target)
    rows = np.arange(len(target))
    correct = W_U[:, target].T                                           # [B, D]
    n_pairs = labels.shape[1]
    others = (W_U[:, labels].sum(axis=2).T - correct) / max(n_pairs - 1, 1)   # [B, D]
    direction = correct - others                                         # [B, D]
    final_resid = np.asarray(cache[f"blocks.{config.n_layers - 1}.hook_resid_post"])[:, -1]   # [B, D]
    if config.layernorm:
        centred = final_resid - final_resid.mean(axis=1, keepdims=True)
        scale = 1.0 / np.sqrt((centred ** 2).mean(axis=1) + config.layernorm_eps)   # [B]
        direction = direction * params["ln_final.w"][None, :]
    else:
        scale = np.ones(len(rows))
    out = np.empty((config.n_layers, config.n_heads))
    for layer in range(config.n_layers):
        result = np.asarray(cache["result", layer])[:, -1]              # [B, H, D]
        if config.layernorm:
            result = result - result.mean(axis=2, keepdims=True)
        out[layer] = (np.einsum("bhd,bd->bh", result, direction) * scale[:, None]).mean(axis=0)
    return out
