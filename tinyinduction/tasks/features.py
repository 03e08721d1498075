"""Exemplar feature tables for the few-shot task: generate, load, check, describe.

A feature table is a float32 array [N, E, F]: N classes, E exemplars per class, F
features per exemplar. The paper (Singh et al. 2024) uses 512-d features of Omniglot
images (1623 classes x 5 exemplars) from a frozen ImageNet ResNet18. Omniglot is not
available here, so two stand-ins exist:

    "builtin"  ``builtin_features``: a generated table with the statistics of CNN
               features (this module);
    "glyphs"   ``tinyinduction.tasks.glyphs.glyph_features``: real images of characters
               of many scripts rendered with matplotlib's fonts, through a fixed random
               convolutional feature map.

and a user's own table can be loaded from a .npy file (``load_features``).
``resolve_features`` turns a ``TaskConfig.features`` value into a table. Results
obtained with either stand-in are NOT the paper's numbers.

Dimension letters: N classes, E exemplars per class, F feature dimension.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import os

import numpy as np

from ..checks import check_int

__all__ = [
    "builtin_features",
    "feature_statistics",
    "class_geometry",
    "load_features",
    "parse_feature_source",
    "resolve_features",
    "FEATURE_SOURCES",
]

# Names TaskConfig.features accepts besides a path to a .npy file.
FEATURE_SOURCES = ("builtin", "glyphs")



@functools.lru_cache(maxsize=8)
def builtin_features(dim: int = 512, n_classes: int = 1623, n_exemplars: int = 5, seed: int = 0,
                     *, rank: int = 8, mean_offset: float = 0.0, mean_scale: float = 2.0,
                     latent_scale: float = 3.0, class_scale: float = 0.6,
                     exemplar_scale: float = 0.4) -> np.ndarray:
    """A stand-in for ResNet18 features of Omniglot: float32 [n_classes, n_exemplars, dim].

    Recipe (all Gaussian draws from ``np.random.default_rng(seed)``), per dimension d:

        pre[c, e, d] = mu[d]                                  shared mean, mu ~ N(mean_offset, mean_scale^2)
                     + latent_scale * (z[c] @ U)[d]           low-rank part: z[c] ~ N(0, I_rank),
                                                              U ~ N(0, 1/rank) [rank, dim]
                     + class_scale * eps[c, d]                class-specific part
                     + exemplar_scale * eta[c, e, d]          exemplar jitter
        features = ReLU(pre)

    Why: pooled post-ReLU CNN features are non-negative and about half zero on
    out-of-domain images, every image shares a large common component, and classes
    differ mostly along a few shared directions (a CNN's features of character images
    have a low effective rank: our glyph table's is ~8) plus their own detail. Two
    drawings of one character are close yet not identical, which is what the "other
    exemplars" evaluation probes.

    The defaults were chosen by ``python -m tinyinduction reproduce features`` (a sweep
    of these knobs; see the README) so that the paper's seed-5 run has its phase change
    where the paper's has it: the low-rank part (latent_scale 3, rank 8) sets the
    timing, because the effective rank of the classes predicts the learning time best.
    Before that sweep they were rank 16, mean_scale 1, latent_scale 0.6.

    With the defaults (``feature_statistics``, ``class_geometry``): between-class cosine
    0.51, within-class cosine 0.99, 50% zeros, mean norm 58.9, effective rank of the 50
    training classes 10.6, 82% of the held-out classes' variation inside the training
    classes' span; other exemplars are nearest to their own class's exemplar 0 (>95% of
    the time, tested). Generated in ~0.1 s and cached; the returned array is read-only
    because every caller shares it.
    """
    own = "builtin_features"
    dim = check_int(own, "dim", dim, 1)
    n_classes = check_int(own, "n_classes", n_classes, 1)
    n_exemplars = check_int(own, "n_exemplars", n_exemplars, 1)
    seed = check_int(own, "seed", seed, 0)
    rank = check_int(own, "rank", rank, 0)
    for name, value in (("mean_offset", mean_offset), ("mean_scale", mean_scale),
                        ("latent_scale", latent_scale), ("class_scale", class_scale),
                        ("exemplar_scale", exemplar_scale)):
        bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
        if bad or (name != "mean_offset" and value < 0):
            allowed = "a finite number" if name == "mean_offset" else "a finite number >= 0"
            raise ValueError(f"{own}.{name} = {value!r}: must be {allowed}")

    rng = np.random.default_rng(seed)
    f32 = np.float32
    mean = mean_offset + mean_scale * rng.standard_normal(dim, dtype=f32)              # [F]
    basis = rng.standard_normal((rank, dim), dtype=f32) / f32(np.sqrt(max(rank, 1)))   # [rank, F]
    latent = rng.standard_normal((n_classes, rank), dtype=f32)                         # [N, rank]
    own_part = rng.standard_normal((n_classes, dim), dtype=f32)                        # [N, F]
    per_class = mean + f32(latent_scale) * (latent @ basis) + f32(class_scale) * own_part  # [N, F]
    jitter = rng.standard_normal((n_classes, n_exemplars, dim), dtype=f32)             # [N, E, F]
    jitter *= f32(exemplar_scale)
    jitter += per_class[:, None, :]
    table = np.maximum(jitter, 0, out=jitter).astype(f32, copy=False)                  # [N, E, F]
    table.flags.writeable = False
    return table


def feature_statistics(features: np.ndarray) -> dict:
    """Summary numbers of a feature table [N, E, F], e.g. to compare with a real one.

    between_class_cosine: mean cosine over all pairs of vectors from different classes.
    within_class_cosine:  mean cosine over pairs of different exemplars of one class
                          (NaN if E = 1).
    fraction_zeros:       fraction of exactly-zero entries (post-ReLU sparsity).
    mean_norm:            mean L2 norm of a feature vector.
    All pairs are covered exactly, in O(N E F), through sums of unit vectors.
    """
    table = check_feature_table(features, "features")
    x = table.astype(np.float64)                                  # [N, E, F]
    n_classes, n_exemplars, _ = x.shape
    norms = np.linalg.norm(x, axis=-1)                            # [N, E]
    unit = x / np.where(norms > 0, norms, 1.0)[..., None]         # zero vectors stay zero
    per_class_sum = unit.sum(axis=1)                              # [N, F]
    same_class = float((per_class_sum ** 2).sum())                # sum over same-class ordered pairs incl. self
    everything = float((per_class_sum.sum(axis=0) ** 2).sum())   # sum over all ordered pairs incl. self
    self_pairs = float((unit ** 2).sum())
    n_between = n_classes * (n_classes - 1) * n_exemplars ** 2
    n_within = n_classes * n_exemplars * (n_exemplars - 1)
    return {
        "between_class_cosine": (everything - same_class) / n_between if n_between else float("nan"),
        "within_class_cosine": (same_class - self_pairs) / n_within if n_within else float("nan"),
        "fraction_zeros": float(np.mean(table == 0)),
        "mean_norm": float(norms.mean()),
        "shape": tuple(int(s) for s in table.shape),
    }


def class_geometry(features: np.ndarray, n_train_classes: int = 50,
                   n_heldout_classes: int = 100) -> dict:
    """How the task's classes sit relative to each other: numbers that may predict how
    fast and how well the few-shot task is learned (the paper's class split: training
    classes are rows [0, n_train_classes), held-out classes the next n_heldout_classes).
    Computed on exemplar 0 (the one training uses) unless said otherwise.

    shared_fraction:       |mean vector|^2 / mean |x|^2 over the task's classes: the part
                           of every vector that all classes share.
    effective_rank:        participation ratio (sum l)^2 / sum l^2 of the eigenvalues l
                           of the centred training vectors' covariance (1 .. n_train - 1).
    nearest_class_cosine:  mean over training classes of the cosine to the most similar
                           other training class (how alike the closest distractor is).
    nearest_class_margin:  mean over other exemplars (1..E-1) of training classes of
                           cosine to their class's exemplar 0 minus the largest cosine to
                           another training class's exemplar 0 (NaN if E = 1).
    heldout_in_train_span: fraction of the held-out classes' centred energy that lies in
                           the span of the centred training vectors (NaN without them).
    """
    table = check_feature_table(features, "features")
    n_train = check_int("class_geometry", "n_train_classes", n_train_classes, 2)
    n_held = check_int("class_geometry", "n_heldout_classes", n_heldout_classes, 0)
    if n_train > table.shape[0]:
        raise ValueError(f"class_geometry n_train_classes = {n_train}: the table has only "
                         f"{table.shape[0]} classes")
    n_held = min(n_held, table.shape[0] - n_train)
    x = table[:n_train + n_held].astype(np.float64)                # [N', E, F]
    first = x[:, 0]                                                # [N', F]
    train = first[:n_train]                                        # [n_train, F]
    mean = train.mean(axis=0)                                      # [F]
    centred = train - mean
    eigen = np.linalg.svd(centred, compute_uv=False) ** 2          # [min(n_train, F)]
    unit = train / np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-300)
    cosine = unit @ unit.T                                         # [n_train, n_train]
    np.fill_diagonal(cosine, -np.inf)
    result = {
        "shared_fraction": float(first.mean(axis=0) @ first.mean(axis=0)
                                 / np.mean(np.sum(first ** 2, axis=1))),
        "effective_rank": float(eigen.sum() ** 2 / np.sum(eigen ** 2)) if eigen.sum() > 0 else 0.0,
        "nearest_class_cosine": float(cosine.max(axis=1).mean()),
        "nearest_class_margin": float("nan"),
        "heldout_in_train_span": float("nan"),
    }
    if x.shape[1] > 1:
        others = x[:n_train, 1:]                                   # [n_train, E-1, F]
        others = others / np.maximum(np.linalg.norm(others, axis=-1, keepdims=True), 1e-300)
        to_first = np.einsum("cef,kf->cek", others, unit)          # [n_train, E-1, n_train]
        own = to_first[np.arange(n_train), :, np.arange(n_train)]  # [n_train, E-1]
        to_first[np.arange(n_train), :, np.arange(n_train)] = -np.inf
        result["nearest_class_margin"] = float(np.mean(own - to_first.max(axis=-1)))
    if n_held:
        basis = np.linalg.svd(centred, full_matrices=False)[2]     # [r, F] rows span training
        rank = int(np.sum(np.sqrt(eigen) > 1e-9 * np.sqrt(eigen.max(initial=0.0))))
        held = first[n_train:] - mean                              # [n_held, F]
        inside = held @ basis[:rank].T                             # [n_held, rank]
        result["heldout_in_train_span"] = float(np.sum(inside ** 2) / np.sum(held ** 2))
    return result


def check_feature_table(table, source: str) -> np.ndarray:
    """Validate a (classes, exemplars, dim) float table; return it as read-only float32."""
    arr = np.asarray(table)
    if arr.ndim != 3:
        raise ValueError(f"{source}: array has shape {arr.shape} but must be 3-D "
                         "(classes, exemplars, dim)")
    if min(arr.shape) == 0:
        raise ValueError(f"{source}: array has shape {arr.shape}; classes, exemplars and "
                         "dim must all be >= 1")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{source}: array has dtype {arr.dtype} but must be floating point "
                         "(float16, float32 or float64)")
    if arr.dtype == np.float32 and not arr.flags.writeable and arr.flags.c_contiguous:
        out = arr  # already a frozen float32 table (e.g. the builtin one): no copy
    else:
        # A private copy: later edits to the caller's array must not change the task.
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
            out = np.array(arr, dtype=np.float32, order="C", copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(f"{source}: array contains {int(bad.sum())} NaN or infinite values "
                         "(after conversion to float32); all features must be finite")
    out.flags.writeable = False
    return out


def load_features(path) -> np.ndarray:
    """Load a user's feature table: a .npy file of shape (classes, exemplars, dim), float.

    Never unpickles. Returns a read-only float32 array. Checks against a task
    (enough classes and exemplars) happen in FewShotTask, which knows the config.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"load_features path = {path!r}: must be a str or path to a .npy file")
    where = f"features file {os.fspath(path)!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where} does not exist (or is not a file); expected a .npy file "
                         "of shape (classes, exemplars, dim)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:  # any failure to read is the user's file, say why in one line
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{where} could not be read as a .npy array: {reason}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        names = list(loaded.files)
        loaded.close()
        raise ValueError(f"{where} is a .npz archive (arrays {names}); save a single array "
                         "with np.save instead")
    return check_feature_table(loaded, where)


def _generator(name: str):
    if name == "builtin":
        return builtin_features
    from .glyphs import glyph_features   # rendering needs matplotlib: import on demand
    return glyph_features


def parse_feature_source(source: str) -> tuple[str, dict | None]:
    """Split a ``TaskConfig.features`` value into (generator name, its settings).

    "builtin" -> ("builtin", {}); "builtin:rank=8,class_scale=1.5" -> ("builtin",
    {"rank": 8, "class_scale": 1.5}); likewise "glyphs[:...]"; anything else is a path:
    (path, None). Settings may also be separated by ":" ("builtin:rank=8:class_scale=1.5"),
    which survives `sweep --grid task.features=...`, whose values are split at commas.
    Setting names and types are those of the generator's keyword arguments; an unknown
    name or a value of the wrong type is a one-line error.
    """
    name, _, settings = source.partition(":")
    settings = settings.replace(":", ",")
    if name not in FEATURE_SOURCES:
        return source, None
    parameters = inspect.signature(_generator(name)).parameters
    allowed = {k: type(p.default) for k, p in parameters.items() if type(p.default) in (int, float)}
    options = {}
    for item in filter(None, (part.strip() for part in settings.split(","))):
        key, equals, text = (part.strip() for part in item.partition("="))
        if key not in allowed or not equals:
            raise ValueError(f"features = {source!r}: {item!r} is not a setting of {name}; "
                             f"write {name}:name=value,... with names from {', '.join(allowed)}")
        if key in options:
            raise ValueError(f"features = {source!r}: {key} is given twice")
        try:
            options[key] = allowed[key](text)
        except ValueError:
            raise ValueError(f"features = {source!r}: {key} = {text!r} must be "
                             f"{'an integer' if allowed[key] is int else 'a number'}") from None
    return name, options


def resolve_features(source: str) -> tuple[np.ndarray, str]:
    """(read-only float32 table [N, E, F], a description for messages) of a
    ``TaskConfig.features`` value: "builtin[:settings]", "glyphs[:settings]" (see
    ``parse_feature_source``) or a path to a .npy file."""
    name, options = parse_feature_source(source)
    if options is None:
        return load_features(source), f"feature table {source!r}"
    return _generator(name)(**options), f"the {source} feature table"
