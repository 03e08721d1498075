"""A real-image feature table: characters of many scripts, rendered and featurised.

The paper's exemplars are ResNet18 features of Omniglot (1623 handwritten characters
of 50 alphabets, 5 drawings each). Omniglot cannot be downloaded here, but real
character images can be made from what matplotlib installs: its fonts (DejaVu Sans,
Serif and Sans Mono, STIX General, each in 4 weights/slants) cover Latin, Greek,
Cyrillic, Armenian, Georgian, Hebrew, Arabic, N'Ko, Lao, Tifinagh, Ogham (no font has
the Runic block), Canadian syllabics, Lisu, Old Italic, Braille, IPA, mathematical
operators, arrows, technical and geometric symbols, Yijing hexagrams and more.

Recipe of ``glyph_images`` (deterministic for a seed):

1. Candidates: the letters/numbers/symbols of each script's Unicode blocks that at
   least one font really has (its character map points at a real glyph, never the
   .notdef "tofu" box; LastResort and the TeX-encoded fonts are not used). Glyphs
   with almost no ink (dots, accents) are dropped; so is any glyph whose canonical
   rendering is nearly the same image as one kept before (Latin A = Greek Alpha =
   Cyrillic A), since such classes could not be told apart.
2. At most ``SCRIPT_CAP`` characters per script (a seeded sample), so that no script
   dominates, then ``n_classes`` characters drawn (seeded) from all scripts: the
   class order is random, so the 50 training classes come from many scripts.
3. Each character is drawn ``n_renderings`` times, each with its own random font
   among those that have it, stroke thickening, rotation (+-12 degrees), slant
   (shear +-0.25), scale, aspect and shift, and a smooth random displacement
   field (stroke jitter, the wobble of a hand): a 64-px rendering is warped and
   resampled to ``size`` x ``size`` pixels, ink = 1, paper = 0.

``glyph_features`` turns the images into a feature table [N, E, F] with the random
convolutional network of ``tinyinduction.tasks.convfeatures`` and caches it under
the user's cache directory (``$XDG_CACHE_HOME/tinyinduction`` or
``~/.cache/tinyinduction``), in a file named by a hash of the recipe.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import unicodedata
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..paths import cache_directory
from .convfeatures import random_conv_features
from ..checks import check_int

__all__ = ["SCRIPTS", "glyph_images", "glyph_features", "glyph_classes", "cache_directory"]

RECIPE_VERSION = 2            # bump whenever the images or the feature map change
RENDER_PX = 64                # rendering size before warping and resampling
SCRIPT_CAP = 110              # at most this many characters from one script
MIN_INK = 12.0                # canonical 28 x 28 image needs this much ink (sum of pixels)
MAX_COSINE = 0.93             # a candidate this similar to a kept glyph is a duplicate

# (script, Unicode ranges, inclusive). Order fixes the candidates' order.
SCRIPTS = (
    ("Latin", ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F))),
    ("IPA", ((0x250, 0x2AF),)),
    ("Greek", ((0x370, 0x3FF),)),
    ("Cyrillic", ((0x400, 0x52F),)),
    ("Armenian", ((0x531, 0x587),)),
    ("Hebrew", ((0x5D0, 0x5F2),)),
    ("Arabic", ((0x620, 0x64A), (0x66E, 0x6D3))),
    ("N'Ko", ((0x7C0, 0x7FA),)),
    ("Lao", ((0xE81, 0xEDF),)),
    ("Georgian", ((0x10A0, 0x10FF),)),
    ("Canadian syllabics", ((0x1400, 0x167F),)),
    ("Ogham", ((0x1680, 0x169C),)),
    ("Tifinagh", ((0x2D30, 0x2D7F),)),
    ("Lisu", ((0xA4D0, 0xA4FF),)),
    ("Old Italic", ((0x10300, 0x1032F),)),
    ("Braille", ((0x2801, 0x28FF),)),
    ("Mathematical operators", ((0x2200, 0x22FF), (0x2A00, 0x2AFF), (0x27C0, 0x27EF),
                                (0x2980, 0x29FF))),
    ("Arrows", ((0x2190, 0x21FF), (0x27F0, 0x27FF), (0x2900, 0x297F))),
    ("Technical", ((0x2300, 0x23FF),)),
    ("Geometric shapes", ((0x25A0, 0x25FF),)),
    ("Symbols and dingbats", ((0x2600, 0x26FF), (0x2700, 0x27BF))),
    ("Yijing and Tai Xuan Jing", ((0x4DC0, 0x4DFF), (0x1D300, 0x1D356))),
    ("Letterlike and number forms", ((0x2100, 0x218F), (0x20A0, 0x20CF))),
)

# Fonts shipped with matplotlib that draw real glyphs for Unicode code points.
FONT_FILES = tuple(f"{family}{style}.ttf" for family, styles in (
    ("DejaVuSans", ("", "-Bold", "-Oblique", "-BoldOblique")),
    ("DejaVuSerif", ("", "-Bold", "-Italic", "-BoldItalic")),
    ("DejaVuSansMono", ("", "-Bold", "-Oblique", "-BoldOblique")),
    ("STIXGeneral", ("", "Bol", "Italic", "BolIta")),
) for style in styles)


# --------------------------------------------------------------------------- fonts
@functools.lru_cache(maxsize=None)
def _font(name: str):
    import matplotlib
    from matplotlib.ft2font import FT2Font
    return FT2Font(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name))


@functools.lru_cache(maxsize=None)
def _charmaps() -> dict:
    """{font file: set of code points that map to a real glyph (never .notdef = 0)}."""
    return {name: {c for c, glyph in _font(name).get_charmap().items() if glyph}
                for name in FONT_FILES}


@functools.lru_cache(maxsize=None)
def _no_hinting():
    from matplotlib import ft2font
    flags = getattr(ft2font, "LoadFlags", None)     # matplotlib >= 3.10
    return flags.NO_HINTING if flags is not None else ft2font.LOAD_NO_HINTING


def _bitmap(char: str, font_name: str, px: int = RENDER_PX) -> np.ndarray:
    """float32 [h, w] in [0, 1]: the glyph as the font draws it (ink = 1)."""
    font = _font(font_name)
    font.clear()
    font.set_size(px, 72)                       # 72 dpi: size in points = pixels
    font.set_text(char, 0.0, flags=_no_hinting())
    font.draw_glyphs_to_bitmap(antialiased=True)
    return np.asarray(font.get_image(), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- warping
def _warp(source: np.ndarray, size: int, rotation: float = 0.0, shear: float = 0.0,
          scale: float = 1.0, aspect: float = 1.0, shift=(0.0, 0.0),
          displacement: np.ndarray | None = None) -> np.ndarray:
    """float32 [size, size]: the ink of `source` [h, w] centred, fitted into 60 % of
    the square (room for rotation, slant and jitter), then rotated (radians), sheared, scaled and shifted (output pixels);
    `displacement` [2, size, size] moves each output pixel's sampling point."""
    rows, cols = np.nonzero(source > 0.05)
    if rows.size == 0:
        return np.zeros((size, size), np.float32)
    centre = np.array([rows.min() + rows.max(), cols.min() + cols.max()]) / 2.0
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1.0
    fit = 0.6 * size * scale / extent                       # output px per source px
    cos, sin = np.cos(rotation), np.sin(rotation)
    # output offset = fit * R @ Shear @ Aspect @ (source offset), in (row, col)
    forward = fit * np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, 0.0], [shear, 1.0]]) \
        @ np.diag([aspect, 1.0 / aspect])
    inverse = np.linalg.inv(forward)
    grid = np.mgrid[0:size, 0:size].reshape(2, -1).astype(np.float64)     # [2, size*size]
    offset = grid - ((size - 1) / 2.0 + np.asarray(shift, dtype=np.float64))[:, None]
    if displacement is not None:
        offset = offset + displacement.reshape(2, -1)
    coords = centre[:, None] + inverse @ offset
    smooth = ndimage.gaussian_filter(source, sigma=max(0.0, 0.45 / fit - 0.2))  # anti-alias
    out = ndimage.map_coordinates(smooth, coords, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0).reshape(size, size).astype(np.float32)


def _rendering(char: str, fonts: list, size: int, rng: np.random.Generator) -> np.ndarray:
    """One randomly varied drawing of `char`: float32 [size, size]."""
    source = _bitmap(char, fonts[rng.integers(len(fonts))])
    thicken = int(rng.integers(1, 3))                       # 1 = as drawn, 2 = bolder strokes
    if thicken > 1:
        source = ndimage.grey_dilation(source, size=(thicken, thicken))
    noise = rng.standard_normal((2, size, size))
    field = ndimage.gaussian_filter(noise, sigma=(0, 3.0, 3.0))            # smooth wobble
    field *= 1.0 / max(float(field.std()), 1e-12)                           # ~1 px
    return _warp(source, size, rotation=np.deg2rad(rng.uniform(-12, 12)),
                 shear=rng.uniform(-0.25, 0.25), scale=rng.uniform(0.85, 1.1),
                 aspect=rng.uniform(0.9, 1.1), shift=rng.uniform(-1.5, 1.5, size=2),
                 displacement=field)


# --------------------------------------------------------------------------- classes
@functools.lru_cache(maxsize=4)
def _candidates(size: int, scripts: tuple) -> tuple:
    """((char, script, fonts), ...) in SCRIPTS order: drawable, inked, not duplicates."""
    charmaps = _charmaps()
    kept, kept_images = [], []
    for script, ranges in SCRIPTS:
        if script not in scripts:
            continue
        for lo, hi in ranges:
            for code in range(lo, hi + 1):
                char = chr(code)
                if unicodedata.category(char)[0] not in "LNS":  # no marks, spaces, controls
                    continue
                fonts = [name for name in FONT_FILES if code in charmaps[name]]
                if not fonts:
                    continue
                image = _warp(_bitmap(char, fonts[0]), size)
                if image.sum() < MIN_INK:
                    continue
                kept.append((char, script, tuple(fonts)))
                kept_images.append(image.ravel() / np.linalg.norm(image))
    units = np.array(kept_images)                                           # [M, size^2]
    similar = units @ units.T                                               # [M, M]
    duplicate = (np.triu(similar, k=1) > MAX_COSINE).any(axis=0)            # like an earlier one
    return tuple(c for c, dup in zip(kept, duplicate) if not dup)


def _check_scripts(owner: str, scripts) -> tuple:
    names = tuple(name for name, _ in SCRIPTS)
    if scripts is None:
        return names
    chosen = (scripts,) if isinstance(scripts, str) else tuple(scripts)
    unknown = [s for s in chosen if s not in names]
    if unknown or not chosen:
        raise ValueError(f"{owner} scripts = {scripts!r}: must be a non-empty selection of "
                         f"{', '.join(names)}")
    return tuple(name for name in names if name in chosen)


def glyph_classes(n_classes: int = 1623, seed: int = 0, size: int = 28,
                  scripts=None) -> list:
    """The (character, script, fonts) of each class, in class order (seeded shuffle).
    scripts: names from SCRIPTS to draw from (default all; fewer is faster, for tests)."""
    n_classes = check_int("glyph_classes", "n_classes", n_classes, 1)
    scripts = _check_scripts("glyph_classes", scripts)
    candidates = _candidates(size, scripts)
    rng = np.random.default_rng([seed, 0])
    by_script = {}
    for item in candidates:
        by_script.setdefault(item[1], []).append(item)
    pool = []
    for script in scripts:
        items = by_script.get(script, [])
        take = np.sort(rng.permutation(len(items))[:SCRIPT_CAP])
        pool.extend(items[i] for i in take)
    if n_classes > len(pool):
        raise ValueError(f"glyph_classes n_classes = {n_classes}: only {len(pool)} distinct "
                         f"characters are available (at most {SCRIPT_CAP} per script)")
    return [pool[i] for i in rng.permutation(len(pool))[:n_classes]]


def glyph_images(n_classes: int = 1623, n_renderings: int = 5, seed: int = 0,
                 size: int = 28, scripts=None) -> tuple[np.ndarray, list]:
    """(images float32 [N, E, size, size] with ink = 1, the classes' (char, script, fonts)).

    Rendering e of class c uses default_rng([seed, 1, c, e]), so a class's drawings do
    not depend on how many classes or renderings are asked for.
    """
    n_renderings = check_int("glyph_images", "n_renderings", n_renderings, 1)
    size = check_int("glyph_images", "size", size, 12)
    classes = glyph_classes(n_classes, seed, size, scripts)
    images = np.empty((len(classes), n_renderings, size, size), np.float32)
    for c, (char, _, fonts) in enumerate(classes):
        for e in range(n_renderings):
            images[c, e] = _rendering(char, list(fonts), size, np.random.default_rng([seed, 1, c, e]))
    return images, classes


# --------------------------------------------------------------------------- table
def _recipe(n_classes, n_renderings, dim, seed, size, scripts) -> dict:
    import matplotlib
    fonts = {name: os.path.getsize(_font(name).fname) for name in FONT_FILES}
    return {"version": RECIPE_VERSION, "n_classes": n_classes, "n_renderings": n_renderings,
            "dim": dim, "seed": seed, "size": size, "scripts": list(scripts), "render_px": RENDER_PX,
            "script_cap": SCRIPT_CAP, "min_ink": MIN_INK, "max_cosine": MAX_COSINE,
            "matplotlib": matplotlib.__version__, "font_bytes": fonts}


@functools.lru_cache(maxsize=4)
def glyph_features(n_classes: int = 1623, n_renderings: int = 5, dim: int = 512,
                   seed: int = 0, size: int = 28, cache: bool = True,
                   scripts: tuple | None = None, mean_norm: float = 0.0) -> np.ndarray:
    """Read-only float32 [n_classes, n_renderings, dim]: random-CNN features of glyphs.

    Built once (about a minute for the full table on one core) and stored as
    <cache_directory()>/glyphs-<recipe hash>.npy; later calls load that file. The
    recipe (every setting, the matplotlib version, the font files' sizes) is hashed,
    so a changed recipe never reads a stale table.

    mean_norm: 0 keeps the network's own scale (mean vector norm ~9.4); a positive
    value rescales the whole table to that mean norm. A random network's output scale
    is arbitrary (it follows from the initialisation), and the scale after the
    exemplar embedding moves the phase change (README), so it is a setting:
    "glyphs:mean_norm=59" has the built-in table's scale.
    """
    own = "glyph_features"
    bad = isinstance(mean_norm, bool) or not isinstance(mean_norm, (int, float)) \
        or not np.isfinite(mean_norm) or mean_norm < 0
    if bad:
        raise ValueError(f"{own}.mean_norm = {mean_norm!r}: must be a finite number >= 0 "
                         "(0 = the network's own scale)")
    n_classes = check_int(own, "n_classes", n_classes, 1)
    n_renderings = check_int(own, "n_renderings", n_renderings, 1)
    dim = check_int(own, "dim", dim, 1)
    seed = check_int(own, "seed", seed, 0)
    size = check_int(own, "size", size, 12)
    scripts = _check_scripts(own, scripts)
    recipe = _recipe(n_classes, n_renderings, dim, seed, size, scripts)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_directory() / f"glyphs-{digest}.npy"
    table = None
    if cache and path.is_file():
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            table = None                                # unreadable: build it again
        if table is not None and table.shape != (n_classes, n_renderings, dim):
            table = None
    if table is None:
        images, _ = glyph_images(n_classes, n_renderings, seed, size, scripts)
        flat = random_conv_features(images.reshape(-1, size, size), dim, seed)   # [N*E, F]
        table = flat.reshape(n_classes, n_renderings, dim)
        if cache:
            _save_atomic(path, table, recipe)
    table = np.array(table, dtype=np.float32, order="C")
    if mean_norm > 0:
        table *= np.float32(mean_norm / np.linalg.norm(table, axis=-1).mean())
    table.flags.writeable = False
    return table


def _save_atomic(path: Path, table: np.ndarray, recipe: dict) -> None:
    """Write to a temporary name and rename, so a crash never leaves half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, table, allow_pickle=False)
    os.replace(temporary, path)
    path.with_suffix(".json").write_text(json.dumps(recipe, indent=1, sort_keys=True))
