"""What every mode of `reproduce olsson` shares: the settings, the network, the probes
and the per-checkpoint measures (olsson.py runs the default setting, olsson_plain.py the
plain-text runs).

Shapes: N windows, M windows, T positions, L layers, H heads.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import text_measures as tm
from ..config import ModelConfig, TrainConfig
from ..model import TokenBatch, init_params
from ..jsonio import write_atomic
from ..runs import checkpoint_paths
from ..sweep import RunSpec
from ..tasks.repeated import (fitting_prefix_length, prefix_matching_candidates,
                              prefix_matching_tokens, repeated_tokens)
from ..tasks.text import TextConfig, TextTask
from ..train import load_params
from . import olsson_analysis as oa

MODELS = {"1L": (1, False), "2L": (2, False), "1L_smeared": (1, True), "2L_smeared": (2, True)}
SECOND_SEED = "2L_second_seed"   # the 2-layer model again, on seed + 1
ICL_BAND = oa.ICL_BAND
N_PROBE_SEQUENCES = 32           # prefix-matching and repeated-token sequences (paper: 10)
HELDOUT_FRACTION = 0.2           # a fifth of the files: enough windows for standard errors <= 0.02
STEPS, CHECKPOINT_EVERY = 10_000, 250   # exploration, seed 1: heads at steps 2,750-3,250; room for later seeds
QUICK_VOCAB, QUICK_CTX, QUICK_BATCH, QUICK_STEPS, QUICK_EVERY = 256, 32, 32, 1500, 100
N_ABLATION_WINDOWS = 4096        # the ablation's 2 + 15 passes per model on every window would take ~15 min


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    text: TextConfig
    n_heads: int
    d_model: int
    d_head: int
    train: TrainConfig
    n_trajectory_windows: int    # held-out windows every checkpoint is measured on
    second_seed: bool            # also train SECOND_SEED
    n_final_windows: int | None = None      # windows of the final scores (None: every one)
    models: tuple = tuple(MODELS)           # which of MODELS to train
    n_ablation_windows: int | None = None   # windows of every ablation (None: every one)


def setting(quick: bool, seed: int, source: str = "stdlib", vocab: int | None = None) -> Setting:
    """The default and the --quick setting (the README's Olsson section says why).

    default: BPE of `vocab` tokens (default 1,024), context 64 tokens (~180 characters), half the
        training windows repeat a span of real text, 4 heads of 16 per layer, d_model
        64, batch 16, Adam lr 3e-3, STEPS steps, a checkpoint every CHECKPOINT_EVERY;
        a fifth of the files held out (enough windows for standard errors <= 0.02).
    quick:   the same network, text and share of repeated windows, with a BPE of 256
        tokens (default), a context of 32, batch 32, QUICK_STEPS steps, 1 and 2 layers
        only: for lessons and tests (the exploratory runs, `--explore`, show why). Not
        compared with the paper.
    """
    text = TextConfig(source=source, n_ctx=64, eval_windows=64, repeat_fraction=0.5, tokenizer="bpe",
                      vocab_size=vocab or (QUICK_VOCAB if quick else 1024), heldout_fraction=HELDOUT_FRACTION)
    if quick:
        return Setting(text.replace(n_ctx=QUICK_CTX, repeat_fraction=0.5), n_heads=4, d_model=64, d_head=16,
                       n_trajectory_windows=256, second_seed=False, n_final_windows=1024, n_ablation_windows=512,
                       models=("1L", "2L"),
                       train=TrainConfig(seed=seed, steps=QUICK_STEPS, batch_size=QUICK_BATCH, lr=3e-3,
                                         eval_every=QUICK_EVERY, checkpoint_every=QUICK_EVERY, log_every=0))
    return Setting(text, n_heads=4, d_model=64, d_head=16, n_trajectory_windows=1024, second_seed=True,
                   n_ablation_windows=N_ABLATION_WINDOWS,
                   train=TrainConfig(seed=seed, steps=STEPS, batch_size=16, lr=3e-3,
                                     eval_every=CHECKPOINT_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                                     log_every=0))


def model_config(name: str, d_vocab: int, s: Setting) -> ModelConfig:
    n_layers, smeared = MODELS.get(name, (2, False))
    return ModelConfig(n_layers=n_layers, n_heads=s.n_heads, d_model=s.d_model, d_head=s.d_head,
                       positional="rope", input_kind="tokens", d_vocab=d_vocab, n_ctx=s.text.n_ctx,
                       smeared_key=smeared)


def run_specs(s: Setting, d_vocab: int) -> list[RunSpec]:
    specs = [RunSpec(name, model_config(name, d_vocab, s), s.text, s.train) for name in s.models]
    if s.second_seed:
        specs.append(RunSpec(SECOND_SEED, model_config("2L", d_vocab, s), s.text,
                             s.train.replace(seed=s.train.seed + 1)))
    return specs


# ---------------------------------------------------------------- probes and measures


@dataclass
class Probes:
    """The fixed inputs every checkpoint is measured on."""

    windows: TokenBatch           # [N, T] plain held-out windows measured at every checkpoint
    all_windows: TokenBatch       # [M, T] every non-overlapping plain held-out window (or n_final_windows)
    ablation_windows: TokenBatch  # [A, T] the plain held-out windows of the ablations
    repeated_windows: TokenBatch  # held-out windows that repeat a span (for the ablation)
    pairs: np.ndarray             # [N, 2] (window, position) of the per-token losses
    prefix: TokenBatch            # Olsson's prefix-matching sequences
    n_random: int
    repeated: TokenBatch          # [BOS] r r
    half: int
    sample_tokens: np.ndarray     # the copying score's sample (25 distinct ids)


def make_probes(task: TextTask, n_windows: int, seed: int = 0, n_final: int | None = None,
                n_ablation: int | None = None) -> Probes:
    n_ctx = task.config.n_ctx
    rng = np.random.default_rng([seed, 10])
    heldout = task.streams["heldout"]
    candidates = prefix_matching_candidates(task.vocab.counts)
    n_random = fitting_prefix_length(n_ctx)
    half = (n_ctx - 1) // 2
    return Probes(
        oa.tiled_windows(heldout, n_ctx, limit=n_windows), oa.tiled_windows(heldout, n_ctx, limit=n_final),
        oa.tiled_windows(heldout, n_ctx, limit=n_ablation),
        task.sample(rng, min(n_windows, 512), split="heldout", repeat_fraction=1.0),
        tm.per_token_pairs(rng, n_windows, n_ctx),
        prefix_matching_tokens(rng, N_PROBE_SEQUENCES, candidates, n_random), n_random,
        repeated_tokens(rng, N_PROBE_SEQUENCES, half, candidates), half,
        rng.choice(candidates, size=min(25, candidates.size), replace=False))


def measure(params, config: ModelConfig, probes: Probes, clamps=()) -> dict:
    """Every per-checkpoint measure of the module docstring."""
    losses = tm.per_position_losses(params, config, probes.windows, clamps)       # [N, T]
    first = TokenBatch(probes.windows.tokens[:N_PROBE_SEQUENCES], probes.windows.targets[:N_PROBE_SEQUENCES])
    return {
        "loss": float(np.nanmean(losses)),
        "icl_score": tm.icl_score(losses, band=ICL_BAND),
        "icl_score_sem": tm.icl_score_sem(losses, band=ICL_BAND),
        "loss_by_position": np.nanmean(losses, axis=0),
        "per_token": tm.per_token_losses(losses, probes.pairs),
        "prefix_matching": tm.prefix_matching_scores(params, config, probes.prefix, probes.n_random),
        "induction": tm.induction_scores(params, config, probes.repeated),
        "previous_token": tm.previous_token_scores(params, config, first),
    }


def checkpoints(run_dir) -> list[tuple[int, Path]]:
    return sorted(checkpoint_paths(run_dir))


def params_at(run_dir, config, seed: int, step: int) -> dict:
    """The parameters of a run at a checkpoint step (step 0: the initialisation)."""
    found = dict(checkpoints(run_dir))
    if step in found:
        return load_params(found[step])[0]
    if step == 0:
        return init_params(config, seed)
    raise ValueError(f"{run_dir}: no checkpoint at step {step}")


MEASURES_VERSION = 1   # bump when measure() changes: stored measures of older versions are not read


def probes_key(probes: Probes) -> str:
    """A hash of the inputs measure() reads and of MEASURES_VERSION."""
    digest = hashlib.sha256(str(MEASURES_VERSION).encode())
    for batch in (probes.windows, probes.prefix, probes.repeated):
        digest.update(np.ascontiguousarray(batch.tokens, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(probes.pairs, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def over_training(run_dir, config, probes, seed: int) -> dict:
    """{measure: [value per checkpoint]} plus "step", in step order; step 0 is the
    initialisation (init_params(config, seed), as train() makes it). Each checkpoint's
    measures are stored in run_dir/measures-<probes_key>.npz, so measuring a run again
    (another reproduce, a lesson, a longer run) computes only the checkpoints that are new."""
    store = Path(run_dir) / f"measures-{probes_key(probes)}.npz"
    known = {}
    if store.is_file():
        try:
            with np.load(store, allow_pickle=False) as stored:
                for name in stored.files:
                    step, key = name.split("/", 1)
                    known.setdefault(int(step), {})[key] = stored[name]
        except (OSError, ValueError):
            known = {}                                  # unreadable: measure again
    rows, new = {"step": []}, False
    found = checkpoints(run_dir)
    for step, path in ([(0, None)] if not found or found[0][0] != 0 else []) + found:
        if step not in known:
            params = init_params(config, seed) if path is None else load_params(path)[0]
            known[step], new = measure(params, config, probes), True
        rows["step"].append(step)
        for key, value in known[step].items():
            rows.setdefault(key, []).append(value)
    if new:
        arrays = {f"{step}/{key}": np.asarray(value) for step, values in known.items()
                  for key, value in values.items()}
        write_atomic(store, lambda handle: np.savez(handle, **arrays))
    return {k: np.asarray(v) for k, v in rows.items()}


def icl_on_all_windows(params, config, probes) -> tuple[np.ndarray, np.ndarray]:
    """([M] each window's ICL score, [T] mean loss by position) on every held-out window."""
    losses = tm.per_position_losses(params, config, probes.all_windows)
    return tm.icl_per_window(losses, band=ICL_BAND), np.nanmean(losses, axis=0)


def source_of(ctx) -> str:
    """The text of a reproduce context: --text PATH, or the stdlib."""
    return getattr(ctx, "text", None) or "stdlib"


def vocab_of(ctx) -> int | None:
    """The BPE size of a reproduce context: --vocab N, or None (the setting's own)."""
    return getattr(ctx, "vocab", None)
