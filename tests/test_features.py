"""Tests for tinyinduction.tasks.features: the exemplar feature tables."""
import numpy as np
import pytest

from tinyinduction.tasks.features import builtin_features, feature_statistics, load_features
from tinyinduction.tasks.fewshot import FewShotTask, TaskConfig


def one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --------------------------------------------------------------------------- builtin table
def test_names_still_importable_from_the_task_module():
    # The tables moved out of fewshot.py; code written against the old place still works.
    from tinyinduction import tasks
    from tinyinduction.tasks import fewshot
    for name in ("builtin_features", "feature_statistics", "load_features"):
        assert getattr(fewshot, name) is globals()[name] is getattr(tasks, name)


def test_builtin_features_deterministic_and_plausible():
    table = builtin_features()
    assert table.shape == (1623, 5, 512) and table.dtype == np.float32
    assert (table >= 0).all() and np.isfinite(table).all()
    assert not table.flags.writeable            # shared through the cache
    assert builtin_features() is table          # cached
    regenerated = builtin_features.__wrapped__()
    np.testing.assert_array_equal(regenerated, table)
    small = builtin_features(dim=16, n_classes=30, n_exemplars=3, seed=1)
    assert small.shape == (30, 3, 16)
    assert not np.array_equal(small, builtin_features(dim=16, n_classes=30, n_exemplars=3, seed=2))


def test_builtin_feature_statistics_in_documented_ranges():
    stats = feature_statistics(builtin_features())
    assert 0.5 <= stats["between_class_cosine"] <= 0.8
    assert 0.85 <= stats["within_class_cosine"] <= 0.97
    assert stats["within_class_cosine"] > stats["between_class_cosine"] + 0.15
    assert 0.3 <= stats["fraction_zeros"] <= 0.7
    assert 10 <= stats["mean_norm"] <= 40
    assert stats["shape"] == (1623, 5, 512)


def test_builtin_exemplars_identify_their_class():
    # "Close but distinguishable": other exemplars are nearest to their own class's
    # exemplar 0 (what the other-exemplars evaluation relies on).
    table = builtin_features()[:150].astype(np.float64)
    unit = table / np.linalg.norm(table, axis=-1, keepdims=True)
    prototypes = unit[:, 0]                                        # [150, F]
    nearest = np.einsum("cef,kf->cek", unit[:, 1:], prototypes).argmax(axis=-1)
    assert (nearest == np.arange(150)[:, None]).mean() > 0.95
    assert not np.allclose(table[:, 0], table[:, 1])


def test_feature_statistics_on_known_tables():
    same = np.ones((4, 3, 6))
    stats = feature_statistics(same)
    assert stats["between_class_cosine"] == pytest.approx(1)
    assert stats["within_class_cosine"] == pytest.approx(1)
    assert stats["fraction_zeros"] == 0 and stats["mean_norm"] == pytest.approx(np.sqrt(6))
    orthogonal = np.zeros((3, 2, 3))
    for c in range(3):
        orthogonal[c, :, c] = 2.0
    stats = feature_statistics(orthogonal)
    assert stats["between_class_cosine"] == pytest.approx(0)
    assert stats["within_class_cosine"] == pytest.approx(1)
    assert stats["fraction_zeros"] == pytest.approx(2 / 3)
    assert np.isnan(feature_statistics(np.ones((3, 1, 2)))["within_class_cosine"])



# --------------------------------------------------------------------------- loading
@pytest.mark.parametrize("name, array, fragment", [
    ("flat.npy", np.zeros((10, 4)), "3-D"),
    ("ints.npy", np.zeros((10, 2, 4), dtype=np.int64), "dtype int64"),
    ("nan.npy", np.full((10, 2, 4), np.nan), "NaN"),
    ("inf.npy", np.array([[[1e300]]]), "NaN or infinite"),   # overflows float32
    ("empty.npy", np.zeros((0, 2, 4)), "shape (0, 2, 4)"),
])
def test_load_features_rejects_bad_arrays(tmp_path, name, array, fragment):
    path = tmp_path / name
    np.save(path, array)
    with pytest.raises(ValueError) as excinfo:
        load_features(path)
    one_line_error(excinfo, str(path), fragment)


def test_load_features_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        load_features(tmp_path / "missing.npy")
    one_line_error(excinfo, "missing.npy", "does not exist")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not a numpy file\n at all")
    with pytest.raises(ValueError) as excinfo:
        load_features(garbage)
    one_line_error(excinfo, "garbage.npy", "could not be read")
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError) as excinfo:
        load_features(pickled)
    one_line_error(excinfo, "objects.npy", "could not be read")
    archive = tmp_path / "archive.npz"
    np.savez(archive, x=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError) as excinfo:
        load_features(archive)
    one_line_error(excinfo, "archive.npz", ".npz")
    # through the config: the config only stores the path, the task reads it
    config = TaskConfig(features=str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError) as excinfo:
        FewShotTask(config)
    one_line_error(excinfo, "missing.npy", "does not exist")


