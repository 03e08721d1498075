"""Tests for tinyinduction.tasks.features: the exemplar feature tables."""
import numpy as np
import pytest

from tinyinduction.config import ModelConfig
from tinyinduction.model import init_params, loss_and_grads
from tinyinduction.tasks.features import (builtin_features, class_geometry, feature_statistics,
                                          load_features, parse_feature_source,
                                          resolve_features)
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
    # the numbers builtin_features' docstring and the README quote
    stats = feature_statistics(builtin_features())
    assert 0.45 <= stats["between_class_cosine"] <= 0.6
    assert 0.95 <= stats["within_class_cosine"] <= 0.995
    assert stats["within_class_cosine"] > stats["between_class_cosine"] + 0.3
    assert 0.45 <= stats["fraction_zeros"] <= 0.55
    assert 50 <= stats["mean_norm"] <= 70
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


def test_class_geometry_on_known_tables():
    # one-hot classes: no shared part, no similar neighbour, all directions equally used
    # (centred one-hots of n classes span n - 1 equal directions), and held-out one-hots
    # lie entirely outside the span of the training ones
    one_hot = np.zeros((10, 2, 10))
    one_hot[np.arange(10), :, np.arange(10)] = 1.0
    one_hot[:, 1] *= 2.0                                            # exemplar 1: same direction
    geo = class_geometry(one_hot, n_train_classes=6, n_heldout_classes=4)
    assert geo["nearest_class_cosine"] == pytest.approx(0)
    assert geo["effective_rank"] == pytest.approx(5)
    assert geo["heldout_in_train_span"] == pytest.approx(0, abs=1e-12)
    assert geo["nearest_class_margin"] == pytest.approx(1)
    assert geo["shared_fraction"] == pytest.approx(0.1)              # |mean|^2 = 10/100
    # held-out classes that mix training classes (weights summing to 1) lie in their span
    rng = np.random.default_rng(0)
    train = rng.random((6, 1, 8))
    weights = rng.random((4, 6))
    held = np.einsum("hk,kef->hef", weights / weights.sum(axis=1, keepdims=True), train)
    mixed = np.concatenate([train, held])
    assert class_geometry(mixed, 6, 4)["heldout_in_train_span"] == pytest.approx(1)
    assert np.isnan(class_geometry(mixed, 6, 4)["nearest_class_margin"])  # one exemplar
    with pytest.raises(ValueError, match="n_train_classes = 20"):
        class_geometry(mixed, 20)


def test_builtin_class_geometry_in_documented_ranges():
    geo = class_geometry(builtin_features())
    assert 0.4 <= geo["shared_fraction"] <= 0.6
    assert 8 <= geo["effective_rank"] <= 13
    assert 0.75 <= geo["heldout_in_train_span"] <= 0.9
    assert geo["nearest_class_margin"] > 0.1


# --------------------------------------------------------------------------- sources
def test_parse_feature_source():
    assert parse_feature_source("builtin") == ("builtin", {})
    assert parse_feature_source("builtin:rank=8, class_scale=1.5") == \
        ("builtin", {"rank": 8, "class_scale": 1.5})
    assert parse_feature_source("builtin:rank=8:class_scale=1.5") == \
        ("builtin", {"rank": 8, "class_scale": 1.5})
    assert parse_feature_source("glyphs:seed=2") == ("glyphs", {"seed": 2})
    assert parse_feature_source("tables/x.npy") == ("tables/x.npy", None)
    assert parse_feature_source("C:/x.npy") == ("C:/x.npy", None)
    with pytest.raises(ValueError) as excinfo:
        parse_feature_source("builtin:rnak=8")
    one_line_error(excinfo, "'rnak=8'", "rank", "class_scale")
    with pytest.raises(ValueError) as excinfo:
        parse_feature_source("builtin:rank=1.5")
    one_line_error(excinfo, "rank = '1.5'", "integer")
    with pytest.raises(ValueError) as excinfo:
        TaskConfig(features="builtin:class_scale=big")              # checked at construction
    one_line_error(excinfo, "TaskConfig.features", "class_scale = 'big'", "number")
    with pytest.raises(ValueError, match="class_scale = -1.0"):
        resolve_features("builtin:class_scale=-1")                  # the generator's own check


def test_generator_settings_change_the_table():
    table, _ = resolve_features("builtin:latent_scale=0.6")
    np.testing.assert_array_equal(table, builtin_features(latent_scale=0.6))
    assert not np.array_equal(table, builtin_features())
    # a weaker low-rank part: classes share fewer directions (higher effective rank)
    assert class_geometry(table)["effective_rank"] > class_geometry(builtin_features())["effective_rank"]


@pytest.mark.parametrize("dim", [1, 24])
def test_features_of_another_dimension(dim):
    # any feature dimension: the task, the model's exemplar embedding and its gradients
    task = FewShotTask(TaskConfig.small(features=f"builtin:dim={dim}:n_classes=40", eval_size=20))
    assert task.feature_dim == dim
    batch = task.sample(np.random.default_rng(0), 8)
    assert batch.exemplars.shape == (8, 3, dim)
    model = ModelConfig.small(d_feature=dim)
    params = init_params(model, 0)
    loss, _, grads, _ = loss_and_grads(params, model, batch)
    assert np.isfinite(loss) and grads["embed.W_exemplar"].shape == (dim, model.d_model)
    assert np.abs(grads["embed.W_exemplar"]).sum() > 0



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




# --------------------------------------------------------------------------- reproduce features
def test_reproduce_features_quick(tmp_path):
    # The effect the sweep exists to show: the stronger and lower-rank the structure that
    # classes share, the lower the effective rank and the earlier the phase change.
    from tinyinduction.experiments import features as experiment
    from tinyinduction.experiments.base import run_experiment
    results = run_experiment("features", quick=True, out=tmp_path, log=lambda *a: None)
    points = results["points"]
    assert list(points) == [name for name, _ in experiment.QUICK_SWEEP]
    weak, old, strong = points["latent_scale=0"], points["old"], points["latent_scale=2,rank=8"]
    rank = [p["statistics"]["effective_rank"] for p in (weak, old, strong)]
    assert rank[0] > rank[1] > rank[2]
    assert weak["learning_time"] > old["learning_time"] > strong["learning_time"]
    assert strong["heldout_classes"] < old["heldout_classes"]
    assert results["correlation"]["effective_rank"]["learning_time"] == pytest.approx(1)
    assert (tmp_path / "results.json").is_file() and (tmp_path / "table.md").is_file()
    assert (tmp_path / "figures" / "features_sweep_quick.png").is_file()


def test_chosen_recipe_is_the_default():
    # The sweep's chosen recipe is what builtin_features() generates by default.
    import inspect

    from tinyinduction.experiments import features as experiment
    defaults = {k: p.default for k, p in inspect.signature(builtin_features).parameters.items()}
    assert {k: defaults[k] for k in experiment.KNOBS} == experiment.CHOSEN
    assert experiment.CHOSEN in [{**experiment.OLD_RECIPE, **c} for _, c in experiment.SWEEP]
