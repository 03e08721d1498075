"""Olsson et al. (2022)'s measures for token models, each on arrays you can build by hand.

Losses
    per_position_losses(params, config, batch, clamps)   [B, T] cross-entropy per position
    icl_positions(n_ctx) / icl_score(losses)              Olsson's "token 500 minus token 50"
    icl_per_window(losses) / icl_score_sem(losses)         its samples and standard error
    per_token_losses(losses, pairs)                        [N] the vectors of the PCA
Attention (patterns in TransformerLens layout [B, H, Tq, Tk])
    prefix_matching_from_pattern(pattern, n_random, n_repeats)   [H]
    induction_from_pattern(pattern, half_length)                  [H]
    previous_token_from_pattern(pattern)                          [H]
Copying (OV circuit through embedding and unembedding)
    ov_circuit(params, config, layer, head)          [V, V] direct logit effect per source token
    copying_score_sample(ov, tokens)                 Olsson's sample-based score in [-1, 1]
    copying_score_weights(params, config, l, h)      sum(eigenvalues) / sum(|eigenvalues|)
Whole-model conveniences return [L, H] arrays: prefix_matching_scores, induction_scores,
previous_token_scores, copying_scores.

Positions are 0-based; the loss at position t is the loss of predicting token t + 1.
Shapes: B sequences, T positions, H heads, L layers, E d_head, D d_model, V vocabulary.
"""
from __future__ import annotations

import numpy as np

from .model import TokenBatch, run_with_cache, training_forward

EVAL_CHUNK = 256          # sequences per forward pass (bounds memory: [T, T, H, chunk] patterns)
PAPER_CONTEXT = 512
PAPER_EARLY, PAPER_LATE = 50, 500    # 1-based token indices in Olsson et al.'s 512-token contexts


# ---------------------------------------------------------------- losses


def per_position_losses(params, config, batch: TokenBatch, clamps=()) -> np.ndarray:
    """[B, T] cross-entropy of the target at every position (NaN where target = -1).
    A lean forward (no cache kept): training_forward's last pass, logits [V, T, b]."""
    tokens, targets = np.asarray(batch.tokens), np.asarray(batch.targets)
    out = np.full(tokens.shape, np.nan)
    for start in range(0, len(tokens), EVAL_CHUNK):
        chunk = TokenBatch(tokens[start:start + EVAL_CHUNK], targets[start:start + EVAL_CHUNK])
        logits = training_forward(params, config, chunk, clamps)[-1].logits             # [V, T, b]
        top = logits.max(axis=0)                                                      # [T, b]
        log_norm = np.log(np.exp(logits - top).sum(axis=0)) + top                     # [T, b]
        valid = chunk.targets.T >= 0                                                  # [T, b]
        picked = np.take_along_axis(logits, np.where(valid, chunk.targets.T, 0)[None], 0)[0]
        out[start:start + len(chunk.tokens)] = np.where(valid, log_norm - picked, np.nan).T
    return out


def icl_positions(n_ctx: int) -> tuple[int, int]:
    """(early, late) 0-based loss positions: Olsson's tokens 50 and 500 of 512, scaled to
    n_ctx as round(k n_ctx / 512) (1-based) and clipped to the context. 64 -> (5, 61)."""
    if n_ctx < 4:
        raise ValueError(f"n_ctx = {n_ctx}: the ICL score needs a context of at least 4 positions")
    early = min(max(round(PAPER_EARLY * n_ctx / PAPER_CONTEXT), 1), n_ctx - 2)
    late = min(max(round(PAPER_LATE * n_ctx / PAPER_CONTEXT), early + 1), n_ctx)
    return early - 1, late - 1


def icl_score(losses: np.ndarray, positions: tuple[int, int] | None = None, band: int = 0) -> float:
    """Mean loss at the late position minus mean loss at the early one. losses [B, T].
    Negative = later tokens are predicted better: the model uses its context.

    band > 0 averages each side over positions index - band .. index + band (clipped to
    the context): the same quantity with sqrt(2 band + 1) times less sampling noise,
    for when far fewer than Olsson's 10,000 windows are affordable."""
    n_positions = losses.shape[1]
    early, late = icl_positions(n_positions) if positions is None else positions
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 0:
        raise ValueError(f"band = {band!r} is invalid: must be an integer >= 0")

    def around(index):
        return losses[:, max(index - band, 0):min(index + band, n_positions - 1) + 1]
    return float(np.nanmean(around(late)) - np.nanmean(around(early)))


def icl_per_window(losses: np.ndarray, positions: tuple[int, int] | None = None, band: int = 0) -> np.ndarray:
    """[B] each window's late-minus-early loss (band as in icl_score): icl_score's
    samples, for standard errors and for paired comparisons on the same windows."""
    n_positions = losses.shape[1]
    early, late = icl_positions(n_positions) if positions is None else positions

    def around(index):
        return np.nanmean(losses[:, max(index - band, 0):min(index + band, n_positions - 1) + 1], axis=1)
    return around(late) - around(early)


def standard_error(samples) -> float:
    """Standard error of the mean of samples [N] (NaN ignored)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    return float(np.std(samples, ddof=1) / np.sqrt(samples.size))


def icl_score_sem(losses: np.ndarray, positions: tuple[int, int] | None = None, band: int = 0) -> float:
    """Standard error of icl_score over windows (each window's late-minus-early difference
    is one sample): how much of an ICL score is sampling noise."""
    return standard_error(icl_per_window(losses, positions, band))


def per_token_pairs(rng: np.random.Generator, n_windows: int, n_ctx: int) -> np.ndarray:
    """[N, 2] fixed (window, position) pairs: one random position per window (Olsson's PCA)."""
    return np.stack([np.arange(n_windows), rng.integers(0, n_ctx, size=n_windows)], axis=1)


def per_token_losses(losses: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """[N] the loss at each (window, position) pair of losses [B, T]."""
    return losses[pairs[:, 0], pairs[:, 1]]


# ---------------------------------------------------------------- attention patterns


def _check_pattern(pattern, n_positions):
    pattern = np.asarray(pattern)
    if pattern.ndim != 4 or pattern.shape[2:] != (n_positions, n_positions):
        raise ValueError(f"pattern has shape {pattern.shape}; expected [B, H, {n_positions}, {n_positions}]")
    return pattern


def prefix_matching_targets(n_random: int, n_repeats: int) -> np.ndarray:
    """[T, T] bool: query i (copy >= 1) -> the tokens right after every earlier copy of
    its own token (copy c of token m sits at 1 + c L + m; BOS at 0). Rows of the first
    copy and of BOS are all False."""
    n_positions = 1 + n_random * n_repeats
    targets = np.zeros((n_positions, n_positions), dtype=bool)
    for copy in range(1, n_repeats):
        for m in range(n_random):
            query = 1 + copy * n_random + m
            for earlier in range(copy):
                targets[query, 1 + earlier * n_random + m + 1] = True
    return targets


def prefix_matching_from_pattern(pattern, n_random: int, n_repeats: int) -> np.ndarray:
    """[H] Olsson's prefix-matching score: over queries in copies 2..R, the total attention
    to the tokens that followed earlier copies of the query's token, averaged.
    pattern [B, H, T, T] on prefix_matching_tokens(n_random, n_repeats)."""
    targets = prefix_matching_targets(n_random, n_repeats)                # [T, T]
    pattern = _check_pattern(pattern, targets.shape[0])
    queries = np.flatnonzero(targets.any(axis=1))
    on_targets = (pattern * targets).sum(axis=-1)                         # [B, H, T]
    return on_targets[:, :, queries].mean(axis=(0, 2))


def induction_from_pattern(pattern, half_length: int) -> np.ndarray:
    """[H] standard induction score on ``[BOS] r r``: mean attention from each query of
    the second copy to offset -(L - 1) (the token after its first copy).
    pattern [B, H, 2L+1, 2L+1]."""
    pattern = _check_pattern(pattern, 2 * half_length + 1)
    queries = np.arange(half_length + 1, 2 * half_length + 1)
    return pattern[:, :, queries, queries - (half_length - 1)].mean(axis=(0, 2))


def previous_token_from_pattern(pattern) -> np.ndarray:
    """[H] mean attention from each position i >= 1 to i - 1. pattern [B, H, T, T]."""
    pattern = np.asarray(pattern)
    rows = np.arange(1, pattern.shape[-1])
    return pattern[:, :, rows, rows - 1].mean(axis=(0, 2))


def _patterns(params, config, batch, clamps=()):
    cache = run_with_cache(params, config, batch, clamps)
    return [cache["pattern", layer] for layer in range(config.n_layers)]


def prefix_matching_scores(params, config, batch: TokenBatch, n_random: int, clamps=()) -> np.ndarray:
    """[L, H] prefix-matching score of every head on prefix_matching_tokens sequences
    (n_random tokens per copy; the number of copies follows from the length)."""
    n_positions = np.shape(batch.tokens)[1]
    if (n_positions - 1) % n_random:
        raise ValueError(f"prefix-matching batch of length {n_positions} is not 1 + copies x n_random "
                         f"= 1 + k x {n_random}")
    n_repeats = (n_positions - 1) // n_random
    return np.stack([prefix_matching_from_pattern(p, n_random, n_repeats)
                     for p in _patterns(params, config, batch, clamps)])


def induction_scores(params, config, batch: TokenBatch, clamps=()) -> np.ndarray:
    """[L, H] induction score of every head on ``[BOS] r r`` sequences (repeated_tokens)."""
    n_positions = np.shape(batch.tokens)[1]
    if n_positions % 2 == 0:
        raise ValueError(f"repeated-token batch of length {n_positions}: expected 2 L + 1")
    return np.stack([induction_from_pattern(p, (n_positions - 1) // 2)
                     for p in _patterns(params, config, batch, clamps)])


def previous_token_scores(params, config, batch: TokenBatch, clamps=()) -> np.ndarray:
    """[L, H] previous-token score of every head on ordinary text windows."""
    return np.stack([previous_token_from_pattern(p) for p in _patterns(params, config, batch, clamps)])


# ---------------------------------------------------------------- copying


def _layernorm_rows(x, w, b, eps):
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + eps) * w + b


def ov_circuit_factors(params, config, layer: int, head: int) -> tuple[np.ndarray, np.ndarray]:
    """(A [V, E], B [E, V]) with A @ B = the head's direct effect on the logits of a
    residual stream holding only a token's embedding: LN1(W_E) W_V[h] W_O[h] C diag(w_f) W_U.

    LayerNorms: the head's own ln1 is applied exactly to each embedding row; the final one
    is folded as its centring C and gain w_f (its positive per-position scale is
    dropped, its bias is the same for every token). Positions are ignored (RoPE adds
    none to the residual; a learned table would be left out)."""
    if config.input_kind != "tokens":
        raise ValueError("copying scores need a token model (ModelConfig.input_kind = 'tokens')")
    if not 0 <= layer < config.n_layers or not 0 <= head < config.n_heads:
        raise ValueError(f"head L{layer}H{head} does not exist: the model has {config.n_layers} "
                         f"layers x {config.n_heads} heads")
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    embed = p["embed.W_E"]                                                    # [V, D]
    prefix = f"blocks.{layer}."
    if config.layernorm:
        embed = _layernorm_rows(embed, p[prefix + "ln1.w"], p[prefix + "ln1.b"], config.layernorm_eps)
    out = p[prefix + "attn.W_O"][head]                                        # [E, D]
    if config.layernorm:
        out = (out - out.mean(axis=1, keepdims=True)) * p["ln_final.w"]
    return embed @ p[prefix + "attn.W_V"][head], out @ p["unembed.W_U"]


def ov_circuit(params, config, layer: int, head: int) -> np.ndarray:
    """[V, V] row = source token, column = logit raised (see ov_circuit_factors)."""
    a, b = ov_circuit_factors(params, config, layer, head)
    return a @ b


def copying_score_sample(ov: np.ndarray, tokens) -> float:
    """Olsson's sample-based copying score, in [-1, 1], of an OV circuit [V, V].

    For each source token t of the sample: its logits on the sample tokens, minus their
    mean, ReLU; r_t = the share of that positive raise that goes to t itself. The score
    is 2 mean(r) - 1: 1 = the head raises only the token it attends to, -1 = never that
    token; a random map gives about 2/N - 1 (-0.92 for N = 25), so anything well above
    that raises the attended token more than chance."""
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.size < 2 or len(set(tokens.tolist())) != tokens.size:
        raise ValueError("copying_score_sample: tokens must be at least 2 distinct ids")
    logits = np.asarray(ov)[np.ix_(tokens, tokens)]                         # [N, N]
    raise_ = np.maximum(logits - logits.mean(axis=1, keepdims=True), 0.0)
    total = raise_.sum(axis=1)
    own = np.diag(raise_)
    share = np.divide(own, total, out=np.zeros_like(own), where=total > 0)
    return float(2 * share.mean() - 1)


def copying_score_weights(params, config, layer: int, head: int) -> float:
    """sum(eigenvalues) / sum(|eigenvalues|) of the OV circuit [V, V] (real part; 1 = a
    pure copying map, -1 = anti-copying). Its nonzero eigenvalues are those of B A [E, E]."""
    a, b = ov_circuit_factors(params, config, layer, head)
    eigenvalues = np.linalg.eigvals(b @ a)
    magnitude = np.abs(eigenvalues).sum()
    return float(eigenvalues.sum().real / magnitude) if magnitude > 0 else 0.0


def copying_scores(params, config, sample_tokens) -> dict:
    """{"sample": [L, H], "weights": [L, H]} for every head."""
    shape = (config.n_layers, config.n_heads)
    sample, weights = np.zeros(shape), np.zeros(shape)
    for layer in range(config.n_layers):
        for head in range(config.n_heads):
            sample[layer, head] = copying_score_sample(ov_circuit(params, config, layer, head), sample_tokens)
            weights[layer, head] = copying_score_weights(params, config, layer, head)
    return {"sample": sample, "weights": weights}
