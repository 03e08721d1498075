"""The analysis of `reproduce olsson`: phase changes, ICL changes with paired errors, the
loss's shape, the PCA turn, ablations. Pure functions of arrays (olsson.py feeds them);
the definitions are the ones olsson_claims.py states.

Shapes: C checkpoints, N windows, T positions, L layers, H heads.
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import text_measures as tm
from ..clamp import zero_ablate_head
from ..model import TokenBatch

PHASE_MIN_PREFIX = 0.3       # best prefix-matching score a formed induction head reaches
INDUCTION_THRESHOLD = 0.3    # final prefix-matching score that makes a head an induction head
ONSET, END = 0.1, 0.9        # the phase change runs from 10% to 90% of the best head's rise
ICL_BAND = 2                 # positions each side of the scaled token indices (text_measures.icl_score)


# ---------------------------------------------------------------- windows


def tiled_windows(stream: np.ndarray, n_ctx: int, limit: int | None = None) -> TokenBatch:
    """Every non-overlapping window of n_ctx + 1 tokens of a stream, in order (or the first
    `limit` of a fixed shuffle of them): tokens/targets [N, T]. Non-overlapping, so that
    windows are (nearly) independent samples and standard errors over them mean something."""
    n_windows = (stream.size - 1) // (n_ctx + 1)
    starts = np.arange(n_windows) * (n_ctx + 1)
    if limit is not None and limit < n_windows:
        starts = np.sort(np.random.default_rng(0).permutation(starts)[:limit])
    index = starts[:, None] + np.arange(n_ctx + 1)[None, :]                    # [N, T+1]
    window = stream[index].astype(np.int64)
    return TokenBatch(window[:, :-1], window[:, 1:])


# ---------------------------------------------------------------- the phase change


def phase_change_step(steps, best_prefix) -> int | None:
    """First step where the best head's prefix-matching score is halfway from its start
    to its maximum; None if the maximum stays below PHASE_MIN_PREFIX."""
    best_prefix = np.asarray(best_prefix)
    if best_prefix.max() < PHASE_MIN_PREFIX:
        return None
    halfway = 0.5 * (best_prefix[0] + best_prefix.max())
    return int(np.asarray(steps)[np.argmax(best_prefix >= halfway)])


def phase_window(steps, best_prefix) -> tuple[int, int] | None:
    """(onset, end) steps of the phase change: the last checkpoint before the halfway one
    with best <= start + ONSET (top - start), and the first at or after it with best >=
    start + END (top - start). None without a phase change."""
    steps, best = np.asarray(steps), np.asarray(best_prefix)
    middle = phase_change_step(steps, best)
    if middle is None:
        return None
    start, top = best[0], best.max()
    at = int(np.flatnonzero(steps == middle)[0])
    low = np.flatnonzero(best[:at] <= start + ONSET * (top - start))
    onset = int(steps[low[-1]]) if low.size else int(steps[0])
    high = np.flatnonzero(best[at:] >= start + END * (top - start))
    return onset, int(steps[at + high[0]])


def paired_change(after, before) -> tuple[float, float]:
    """Mean and standard error of after - before [N], per-window values on the same windows."""
    difference = np.asarray(after) - np.asarray(before)
    return float(np.nanmean(difference)), tm.standard_error(difference)


def loss_shape(steps, loss, onset: int, end: int) -> dict:
    """How the plain held-out loss [C] behaves across the phase change: "bump" = its largest
    rise above the loss at onset, inside onset..end; slopes (nats per 1,000 steps) during
    onset..end and over as many steps before onset (from step 1 on at the earliest:
    the initialisation's ln V would swamp any slope)."""
    steps, loss = np.asarray(steps), np.asarray(loss)
    i_onset, i_end = int(np.flatnonzero(steps == onset)[0]), int(np.flatnonzero(steps == end)[0])
    first = 1 if steps.size > 1 and steps[0] == 0 else 0
    i_before = max(int(np.searchsorted(steps, onset - (end - onset))), first)
    i_before = min(i_before, i_onset)

    def slope(i, j):
        return float((loss[j] - loss[i]) / (steps[j] - steps[i]) * 1000) if j > i else float("nan")
    return {"bump": float(loss[i_onset:i_end + 1].max() - loss[i_onset]),
            "slope_during": slope(i_onset, i_end), "slope_before": slope(i_before, i_onset),
            "before_from_step": int(steps[i_before])}


def pca_turn_degrees(points, steps, onset: int, end: int) -> float:
    """Angle (degrees) between a PCA trajectory's displacement over the (end - onset) steps
    before onset and over as many steps after end. points [C', 2] for steps [C'] (the
    checkpoints the PCA kept); ends are clipped to the trajectory."""
    steps, points = np.asarray(steps), np.asarray(points)
    width = max(end - onset, int(np.diff(steps).min()) if steps.size > 1 else 1)

    def at(step):
        return points[int(np.clip(np.searchsorted(steps, step), 0, steps.size - 1))]
    before = at(onset) - at(onset - width)
    after = at(end + width) - at(end)
    norms = np.linalg.norm(before) * np.linalg.norm(after)
    if norms == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(before @ after / norms, -1.0, 1.0))))


# ---------------------------------------------------------------- comparisons across models


def pca_path_lengths(points, steps, onset: int, end: int) -> dict:
    """How far a PCA trajectory moves over the (end - onset) steps before onset, during the
    phase change (onset -> end) and over as many steps after end: a jump shows as a long
    "during" between short "before" and "after", whatever the turn (pca_turn_degrees)."""
    steps, points = np.asarray(steps), np.asarray(points)
    width = max(end - onset, int(np.diff(steps).min()) if steps.size > 1 else 1)

    def at(step):
        return points[int(np.clip(np.searchsorted(steps, step), 0, steps.size - 1))]
    return {"before": float(np.linalg.norm(at(onset) - at(onset - width))),
            "during": float(np.linalg.norm(at(end) - at(onset))),
            "after": float(np.linalg.norm(at(end + width) - at(end)))}


def loss_pca(per_token: dict, first: int = 1) -> dict:
    """Olsson's per-token-loss PCA. per_token: {model: [C, N]} losses at fixed (window,
    position) pairs for every checkpoint. Checkpoints from index `first` on (the
    initialisation's uniform ~ln V losses would take the first component) of every model
    are rows; centre over all rows; project on the first two principal components.
    {model: [C - first, 2], "explained_variance": [2], "first": first}."""
    names = list(per_token)
    rows = [np.asarray(per_token[n])[first:] for n in names]
    matrix = np.concatenate(rows)                                              # [rows, N]
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T
    explained = singular ** 2 / (singular ** 2).sum()
    out, start = {"explained_variance": explained[:2], "first": first}, 0
    for name, block in zip(names, rows):
        out[name] = projected[start:start + len(block)]
        start += len(block)
    return out


def induction_heads(prefix_final) -> tuple[list, str]:
    """([(layer, head)], rule): heads whose final prefix-matching score [L, H] is >=
    INDUCTION_THRESHOLD, or the best head when none is."""
    prefix_final = np.asarray(prefix_final)
    heads = [(l, h) for l in range(prefix_final.shape[0]) for h in range(prefix_final.shape[1])]
    found = [head for head in heads if prefix_final[head] >= INDUCTION_THRESHOLD]
    if found:
        return found, f"prefix matching >= {INDUCTION_THRESHOLD}"
    return [max(heads, key=lambda head: prefix_final[head])], "none reaches the threshold: the best head"


def icl_with_heads_zeroed(params, config, batch: TokenBatch, heads) -> np.ndarray:
    """[windows] ICL score of each window with these (layer, head)s' outputs zeroed."""
    clamps = [zero_ablate_head(l, h) for l, h in heads]
    return tm.icl_per_window(tm.per_position_losses(params, config, batch, clamps), band=ICL_BAND)


def copying_ablation(params, config, windows: TokenBatch, copying_weights, threshold: float = 0.5) -> dict:
    """Where a model without induction heads gets its ICL score: zero its copying heads
    (OV eigenvalue copying score [L, H] > threshold: they raise the logits of the tokens
    they attend to), then instead every other head; each with its standard error and its
    paired change from clean."""
    copying_weights = np.asarray(copying_weights)
    heads = [(l, h) for l in range(config.n_layers) for h in range(config.n_heads)]
    copying = [head for head in heads if copying_weights[head] > threshold]
    others = [head for head in heads if head not in copying]
    clean = icl_with_heads_zeroed(params, config, windows, [])
    out = {"copying_heads": [list(h) for h in copying], "other_heads": [list(h) for h in others],
           "threshold": threshold, "clean_icl_score": float(np.nanmean(clean)),
           "clean_icl_score_sem": tm.standard_error(clean)}
    for label, zeroed in (("copying_heads", copying), ("other_heads", others)):
        scores = icl_with_heads_zeroed(params, config, windows, zeroed) if zeroed else clean
        out[f"{label}_icl_score"], out[f"{label}_icl_score_sem"] = float(np.nanmean(scores)), tm.standard_error(scores)
        out[f"{label}_change"], out[f"{label}_change_sem"] = paired_change(scores, clean)
    return out


def ablation(params, config, windows: TokenBatch, prefix_final, extra_windows: dict | None = None) -> dict:
    """The ICL score with the induction heads zeroed, and with as many other heads zeroed
    (every set of that size), on `windows` (plain held-out text: the top-level keys) and
    on each of extra_windows ({label: TokenBatch}, e.g. repeated windows: nested keys).
    Each score with its standard error over windows; the ablated minus clean change of
    each set with its paired standard error."""
    induction, rule = induction_heads(prefix_final)
    heads = [(l, h) for l in range(config.n_layers) for h in range(config.n_heads)]
    others = [head for head in heads if head not in induction]
    other_sets = list(itertools.combinations(others, len(induction))) if len(others) >= len(induction) else []

    def scores(batch):
        def per_window(ablated):
            return icl_with_heads_zeroed(params, config, batch, ablated)
        clean = per_window([])
        ablated = per_window(induction)
        others_icl = [per_window(subset) for subset in other_sets]
        change, change_sem = paired_change(ablated, clean)
        return {"clean_icl_score": float(np.nanmean(clean)), "clean_icl_score_sem": tm.standard_error(clean),
                "induction_heads_icl_score": float(np.nanmean(ablated)),
                "induction_heads_icl_score_sem": tm.standard_error(ablated),
                "induction_heads_change": change, "induction_heads_change_sem": change_sem,
                "other_heads_icl_score": float(np.mean([np.nanmean(o) for o in others_icl])) if others_icl else None,
                "other_heads_icl_score_sem": (float(np.mean([tm.standard_error(o) for o in others_icl]))
                                              if others_icl else None),
                "other_heads_icl_scores": [float(np.nanmean(o)) for o in others_icl]}
    out = {"induction_heads": [list(h) for h in induction], "rule": rule,
           "other_head_sets": [[list(h) for h in s] for s in other_sets], **scores(windows)}
    for label, batch in (extra_windows or {}).items():
        out[label] = scores(batch)
    return out
