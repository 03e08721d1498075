"""Tests for the glyph feature table (tasks/glyphs.py) and its random CNN (tasks/convfeatures.py).

The full table (1623 classes) takes about a minute to build, so these tests build small
tables from two or three scripts; the properties are the same.
"""
import inspect

import numpy as np
import pytest

from tinyinduction.tasks import glyphs
from tinyinduction.tasks.convfeatures import random_conv_features
from tinyinduction.tasks.features import resolve_features
from tinyinduction.tasks.fewshot import FewShotTask, TaskConfig

SCRIPTS = ("Hebrew", "Armenian", "Braille")


@pytest.fixture(scope="module")
def small_glyphs():
    images, classes = glyphs.glyph_images(n_classes=24, n_renderings=3, scripts=SCRIPTS)
    table = glyphs.glyph_features(n_classes=24, n_renderings=3, dim=64, scripts=SCRIPTS,
                                  cache=False)
    return images, classes, table


def test_images_are_drawn_glyphs(small_glyphs):
    images, classes, _ = small_glyphs
    assert images.shape == (24, 3, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    ink = images.sum(axis=(2, 3))                                   # [N, E]
    assert (ink > glyphs.MIN_INK / 2).all(), "a rendering came out (nearly) blank"
    # the ink is centred with a margin: (almost) no glyph is cut off at the border
    border = np.concatenate([images[..., 0, :], images[..., -1, :], images[..., :, 0],
                             images[..., :, -1]], axis=-1)              # [N, E, 4 * 28]
    assert (border.max(axis=-1) > 0.5).mean() < 0.05
    # classes are distinct characters, drawn only with fonts that have them (no tofu)
    chars = [c for c, _, _ in classes]
    assert len(set(chars)) == len(chars)
    charmaps = glyphs._charmaps()
    for char, script, fonts in classes:
        assert script in SCRIPTS and fonts
        assert all(ord(char) in charmaps[f] for f in fonts)
    # the renderings of one character differ (font, slant, rotation, jitter)
    assert not np.allclose(images[:, 0], images[:, 1])


def test_glyph_table_shape_finite_and_class_structure(small_glyphs):
    _, _, table = small_glyphs
    assert table.shape == (24, 3, 64) and table.dtype == np.float32
    assert np.isfinite(table).all() and (table >= 0).all()
    assert not table.flags.writeable
    # drawings of one character are closer than drawings of different characters
    unit = table / np.linalg.norm(table, axis=-1, keepdims=True)
    cosine = np.einsum("aef,bgf->aebg", unit, unit)                 # [N, E, N, E]
    same = np.eye(24, dtype=bool)[:, None, :, None] & ~np.eye(3, dtype=bool)[None, :, None, :]
    different = ~np.eye(24, dtype=bool)[:, None, :, None] & np.ones((1, 3, 1, 3), bool)
    assert cosine[same].mean() > cosine[different].mean() + 0.02


def test_glyphs_deterministic_for_a_seed():
    kwargs = dict(n_classes=6, n_renderings=2, scripts=("Hebrew",))
    first, classes = glyphs.glyph_images(seed=3, **kwargs)
    again, classes_again = glyphs.glyph_images(seed=3, **kwargs)
    np.testing.assert_array_equal(first, again)
    assert classes == classes_again
    other, _ = glyphs.glyph_images(seed=4, **kwargs)
    assert not np.array_equal(first, other)


def test_glyph_table_cached_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert glyphs.cache_directory() == tmp_path / "tinyinduction"
    kwargs = dict(n_classes=5, n_renderings=2, dim=32, scripts=("Hebrew",))
    built = glyphs.glyph_features.__wrapped__(**kwargs)
    files = sorted(p.name for p in (tmp_path / "tinyinduction").iterdir())
    assert len(files) == 2 and files[0].startswith("glyphs-") and files[0].endswith(".json")
    assert files[1] == files[0].replace(".json", ".npy")
    # a second call reads the file: poison it and see the poison come back
    path = tmp_path / "tinyinduction" / files[1]
    np.save(path, np.full(built.shape, 7.0, np.float32))
    np.testing.assert_array_equal(glyphs.glyph_features.__wrapped__(**kwargs), 7.0)
    # another recipe is another file
    glyphs.glyph_features.__wrapped__(**{**kwargs, "seed": 1})
    assert len(list((tmp_path / "tinyinduction").glob("glyphs-*.npy"))) == 2


def test_glyph_table_rescaled_to_a_mean_norm(small_glyphs):
    _, _, table = small_glyphs
    scaled = glyphs.glyph_features(n_classes=24, n_renderings=3, dim=64, scripts=SCRIPTS,
                                   cache=False, mean_norm=10.0)
    assert np.linalg.norm(scaled, axis=-1).mean() == pytest.approx(10.0, rel=1e-5)
    inked = table > 0
    ratio = scaled[inked] / table[inked]                            # one factor everywhere
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and (scaled[~inked] == 0).all()
    with pytest.raises(ValueError, match="mean_norm = -1"):
        glyphs.glyph_features(n_classes=2, scripts=SCRIPTS, mean_norm=-1.0)


def test_glyph_bad_arguments():
    with pytest.raises(ValueError, match="scripts = 'Klingon'"):
        glyphs.glyph_classes(scripts="Klingon")
    with pytest.raises(ValueError, match="n_classes = 500: only"):
        glyphs.glyph_classes(n_classes=500, scripts=("Hebrew",))
    with pytest.raises(ValueError, match="n_renderings = 0"):
        glyphs.glyph_images(n_renderings=0)


def test_random_conv_features_any_dimension():
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    for dim in (1, 17, 64, 512):
        out = random_conv_features(images, dim=dim)
        assert out.shape == (5, dim) and (out >= 0).all() and np.isfinite(out).all()
    np.testing.assert_array_equal(random_conv_features(images, 64), random_conv_features(images, 64))
    assert not np.array_equal(random_conv_features(images, 64, seed=1),
                              random_conv_features(images, 64))
    # a shifted image is closer to the original than another image is
    shifted = np.roll(images[:1], 1, axis=2)
    feats = random_conv_features(np.concatenate([images[:2], shifted]), 64)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    assert unit[0] @ unit[2] > unit[0] @ unit[1]
    with pytest.raises(ValueError, match="shape"):
        random_conv_features(np.zeros((2, 4, 4)))


def test_task_selects_glyphs(small_glyphs, monkeypatch):
    # TaskConfig(features="glyphs[:settings]") goes through glyph_features
    _, _, table = small_glyphs
    seen = {}

    def fake(**options):
        seen.update(options)
        return table
    fake.__signature__ = inspect.signature(glyphs.glyph_features)  # the settings it accepts
    monkeypatch.setattr(glyphs, "glyph_features", fake)
    got, _ = resolve_features("glyphs:n_classes=24,dim=64")
    assert got is table and seen == {"n_classes": 24, "dim": 64}
    task = FewShotTask(TaskConfig.small(features="glyphs", other_exemplars=(1, 2)))
    assert task.feature_dim == 64
    assert task.sample(np.random.default_rng(0), 4).exemplars.shape == (4, 3, 64)
