"""Tests for tinyinduction.tasks.fewshot: the few-shot task of Singh et al. (2024)."""
import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinyinduction.tasks import (
    EVAL_SET_NAMES,
    FewShotBatch,
    FewShotTask,
    TaskConfig,
    load_features,
)


# --------------------------------------------------------------------------- helpers
def random_table(n_classes, n_exemplars=5, dim=8, seed=0):
    """[N, E, F] distinct continuous features: every vector identifies (class, exemplar)."""
    return np.random.default_rng(seed).random((n_classes, n_exemplars, dim)).astype(np.float32)


def exemplar_indices(task, batch):
    """[B, C+1] which exemplar of its class each item is, found by matching the table.

    Fails if an item matches no exemplar of its class (wrong class or corrupted).
    """
    candidates = task.features[batch.classes]                       # [B, C+1, E, F]
    match = (candidates == batch.exemplars[:, :, None, :]).all(axis=-1)   # [B, C+1, E]
    assert match.any(axis=-1).all(), "an exemplar matches no exemplar of its class"
    return match.argmax(axis=-1)


def as_rows(combos):
    return {tuple(int(v) for v in row) for row in combos}


def check_batch(task, batch, class_range, exemplars_allowed, combos, size):
    """Every invariant of a batch of few-shot sequences."""
    C = task.n_context_pairs
    F = task.feature_dim
    assert isinstance(batch, FewShotBatch)
    assert batch.exemplars.shape == (size, C + 1, F) and batch.exemplars.dtype == np.float32
    assert batch.labels.shape == (size, C) and batch.labels.dtype == np.int64
    assert batch.target.shape == (size,) and batch.target.dtype == np.int64
    assert batch.query_pair.shape == (size,) and batch.query_pair.dtype == np.int64
    assert batch.classes.shape == (size, C + 1) and batch.classes.dtype == np.int64
    if size == 0:
        return
    rows = np.arange(size)
    context, query = batch.classes[:, :C], batch.classes[:, C]
    # the query's class appears exactly once in the context, at query_pair
    assert ((context == query[:, None]).sum(axis=1) == 1).all()
    assert (context[rows, batch.query_pair] == query).all()
    assert ((0 <= batch.query_pair) & (batch.query_pair < C)).all()
    # the target is that pair's label
    assert (batch.labels[rows, batch.query_pair] == batch.target).all()
    # all context classes distinct (so distractors distinct and != query)
    assert (np.sort(context, axis=1)[:, 1:] != np.sort(context, axis=1)[:, :-1]).all()
    lo, hi = class_range
    assert ((lo <= batch.classes) & (batch.classes < hi)).all()
    # labels distinct within a sequence, and their set is a combination of the split
    allowed = as_rows(combos)
    assert as_rows(np.sort(batch.labels, axis=1)) <= allowed
    assert ((0 <= batch.labels) & (batch.labels < task.n_labels)).all()
    # exemplars: the table's features of those classes, from the allowed indices
    if task.config.noise_std == 0:
        used = exemplar_indices(task, batch)
        assert set(np.unique(used).tolist()) <= set(exemplars_allowed)


@st.composite
def configs(draw):
    C = draw(st.integers(2, 4))
    n_labels = draw(st.integers(C, 7))
    fraction = draw(st.sampled_from([0.0, 0.1, 0.2, 0.5]))
    K = math.comb(n_labels, C)
    held = 0 if fraction == 0 else max(1, round(fraction * K))
    assume(K - held >= 1)
    exemplar_tuples = st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True).map(tuple)
    return TaskConfig(
        n_train_classes=draw(st.integers(C, 12)),
        n_heldout_classes=draw(st.integers(C, 8)),
        train_exemplars=draw(exemplar_tuples),
        other_exemplars=draw(exemplar_tuples),
        n_labels=n_labels,
        n_context_pairs=C,
        heldout_label_fraction=fraction,
        label_split_seed=draw(st.integers(0, 10)),
        eval_size=draw(st.integers(1, 60)),
        eval_seed=draw(st.integers(0, 2**32)),
    )


def make_task(config, extra_classes=3):
    table = random_table(config.n_train_classes + config.n_heldout_classes + extra_classes,
                         n_exemplars=5)
    return FewShotTask(config, features=table)


@pytest.fixture(scope="module")
def paper_task():
    return FewShotTask(TaskConfig.paper())


# --------------------------------------------------------------------------- sampling
@given(config=configs(), seed=st.integers(0, 2**32), batch_size=st.integers(1, 70))
def test_sample_is_valid(config, seed, batch_size):
    task = make_task(config)
    batch = task.sample(np.random.default_rng(seed), batch_size)
    check_batch(task, batch, task.train_class_range, config.train_exemplars,
                task.train_label_combos, batch_size)


@given(config=configs(), seed=st.integers(0, 2**32), batch_size=st.integers(1, 40),
       n_batches=st.integers(1, 20), noise=st.sampled_from([0.0, 0.1]))
def test_sample_many_is_that_many_samples(config, seed, batch_size, n_batches, noise):
    """The training loop's contract: the same batches and the same rng state after them,
    whether drawn one by one or n at a time (the fast path and its fallbacks)."""
    task = make_task(dataclasses.replace(config, noise_std=noise))
    one_by_one, at_once = np.random.default_rng(seed), np.random.default_rng(seed)
    expected = [task.sample(one_by_one, batch_size) for _ in range(n_batches)]
    got = task.sample_many(at_once, batch_size, n_batches)
    assert len(got) == n_batches
    for a, b in zip(expected, got):
        for field_a, field_b in zip(a, b):
            np.testing.assert_array_equal(field_a, field_b)
    assert one_by_one.bit_generator.state == at_once.bit_generator.state


def test_sample_many_of_long_contexts_is_that_many_samples():
    config = TaskConfig(n_train_classes=9, n_heldout_classes=7, n_labels=8, n_context_pairs=7)
    task = make_task(config)
    one_by_one, at_once = np.random.default_rng(1), np.random.default_rng(1)
    expected = [task.sample(one_by_one, 5) for _ in range(3)]
    for a, b in zip(expected, task.sample_many(at_once, 5, 3)):
        np.testing.assert_array_equal(a.exemplars, b.exemplars)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert one_by_one.bit_generator.state == at_once.bit_generator.state


def test_sample_many_follows_a_subclass_that_draws_its_own_way():
    class OneClassAtATime(FewShotTask):         # a different stream: not row-wise
        def sample(self, rng, batch_size):
            batch = super().sample(rng, batch_size)
            rng.random()                            # one extra draw per batch
            return batch
    task = OneClassAtATime(TaskConfig.small(), features=random_table(30))
    one_by_one, at_once = np.random.default_rng(2), np.random.default_rng(2)
    expected = [task.sample(one_by_one, 4) for _ in range(5)]
    for a, b in zip(expected, task.sample_many(at_once, 4, 5)):
        np.testing.assert_array_equal(a.exemplars, b.exemplars)
    assert one_by_one.bit_generator.state == at_once.bit_generator.state


@given(config=configs())
def test_eval_sets_are_valid(config):
    task = make_task(config)
    sets = task.eval_sets()
    assert tuple(sets) == EVAL_SET_NAMES
    size = config.eval_size
    check_batch(task, sets["train"], task.train_class_range, config.train_exemplars,
                task.train_label_combos, size)
    relabel_size = size if len(task.heldout_label_combos) else 0
    check_batch(task, sets["relabel"], task.train_class_range, config.train_exemplars,
                task.heldout_label_combos, relabel_size)
    check_batch(task, sets["heldout_classes"], task.heldout_class_range,
                config.train_exemplars, task.train_label_combos, size)
    check_batch(task, sets["other_exemplars"], task.train_class_range,
                config.other_exemplars, task.train_label_combos, size)


def test_long_context_fallback_is_valid():
    # 7! x 7! orderings are too many to tabulate: the sort-keys path is used.
    config = TaskConfig(n_train_classes=9, n_heldout_classes=7, n_labels=8, n_context_pairs=7,
                        heldout_label_fraction=0.25, other_exemplars=(1, 2), eval_size=50)
    task = make_task(config)
    assert task._train_table.labels is None
    batch = task.sample(np.random.default_rng(0), 300)
    check_batch(task, batch, task.train_class_range, (0,), task.train_label_combos, 300)
    check_batch(task, task.eval_sets()["relabel"], task.train_class_range, (0,),
                task.heldout_label_combos, 50)


def test_paper_sample_and_eval_sets(paper_task):
    task = paper_task
    assert (task.n_labels, task.n_context_pairs, task.feature_dim, task.seq_len) == (5, 2, 512, 5)
    batch = task.sample(np.random.default_rng(0), 32)
    check_batch(task, batch, (0, 50), (0,), task.train_label_combos, 32)
    sets = task.eval_sets()
    check_batch(task, sets["train"], (0, 50), (0,), task.train_label_combos, 1000)
    check_batch(task, sets["relabel"], (0, 50), (0,), task.heldout_label_combos, 1000)
    check_batch(task, sets["heldout_classes"], (50, 150), (0,), task.train_label_combos, 1000)
    check_batch(task, sets["other_exemplars"], (0, 50), (1, 2, 3, 4),
                task.train_label_combos, 1000)
    # all four other exemplars are used, and the held-out classes are all reachable
    assert set(np.unique(exemplar_indices(task, sets["other_exemplars"]))) == {1, 2, 3, 4}
    assert len(np.unique(sets["heldout_classes"].classes)) == 100


def test_sample_distribution_is_uniform(paper_task):
    # Large batch: every choice the paper calls uniform should look uniform.
    n = 40_000
    batch = paper_task.sample(np.random.default_rng(1), n)
    tolerance = 5 * np.sqrt(n)  # counts within ~5 sigma
    def close(counts, expected):
        return np.all(np.abs(counts - expected) < tolerance)
    assert close(np.bincount(batch.query_pair, minlength=2), n / 2)
    assert close(np.bincount(batch.classes[:, 2], minlength=50), n / 50)
    assert close(np.bincount(batch.classes[:, :2].ravel(), minlength=50), 2 * n / 50)
    # ordered label pairs: 8 train combos x 2 orders, each 1/16
    code = batch.labels[:, 0] * 5 + batch.labels[:, 1]
    ordered = [a * 5 + b for a, b in paper_task.train_label_combos]
    ordered += [b * 5 + a for a, b in paper_task.train_label_combos]
    counts = np.bincount(code, minlength=25)
    assert counts.sum() == counts[ordered].sum()
    assert close(counts[ordered], n / 16)
    # the target is the first or second label of the pair equally often
    assert close(np.bincount((batch.target == batch.labels[:, 1]).astype(int)), n / 2)
    # distractor offsets (distractor - query mod 50) are uniform over 1..49
    distractor = batch.classes[np.arange(n), 1 - batch.query_pair]
    offsets = (distractor - batch.classes[:, 2]) % 50
    assert close(np.bincount(offsets, minlength=50)[1:], n / 49) and not (offsets == 0).any()


def test_sample_determinism():
    task = make_task(TaskConfig.small(train_exemplars=(0, 1, 2)))
    a = task.sample(np.random.default_rng(7), 40)
    b = task.sample(np.random.default_rng(7), 40)
    c = task.sample(np.random.default_rng(8), 40)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.classes, c.classes)
    # the same generator keeps moving: consecutive batches differ
    rng = np.random.default_rng(7)
    assert not np.array_equal(task.sample(rng, 40).classes, task.sample(rng, 40).classes)


def test_sample_rejects_bad_arguments(paper_task):
    with pytest.raises(ValueError, match="rng"):
        paper_task.sample(0, 32)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            paper_task.sample(np.random.default_rng(0), bad)
    batch = paper_task.sample(np.random.default_rng(0), np.int64(3))
    assert batch.batch_size == 3


def test_noise_is_added_and_eval_sets_stay_fixed():
    config = TaskConfig.small(noise_std=0.05)
    table = random_table(25)
    task = FewShotTask(config, features=table)
    batch = task.sample(np.random.default_rng(0), 64)
    clean = table[batch.classes, 0]
    diff = batch.exemplars - clean
    assert not np.allclose(diff, 0) and abs(diff.std() - 0.05) < 0.01
    again = FewShotTask(config, features=table).eval_sets()
    for name, eval_batch in task.eval_sets().items():
        np.testing.assert_array_equal(eval_batch.exemplars, again[name].exemplars)


# --------------------------------------------------------------------------- eval sets
def test_eval_sets_fixed_by_seed_and_distinct():
    config = TaskConfig.small(eval_size=300)
    table = random_table(23)
    first, second = FewShotTask(config, features=table), FewShotTask(config, features=table)
    a, b = first.eval_sets(), second.eval_sets()
    for name in EVAL_SET_NAMES:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y)
        assert a[name].batch_size == 300
        assert not a[name].exemplars.flags.writeable  # cached and shared: read-only
    for one, two in itertools.combinations(EVAL_SET_NAMES, 2):
        assert not np.array_equal(a[one].exemplars, a[two].exemplars), (one, two)
    # cached: built once; another eval_seed gives other sets
    assert first.eval_sets()["train"] is a["train"]
    other = FewShotTask(TaskConfig.small(eval_size=300, eval_seed=99), features=table)
    assert not np.array_equal(other.eval_sets()["train"].classes, a["train"].classes)


def test_relabel_is_empty_without_heldout_combos():
    task = make_task(TaskConfig.small(heldout_label_fraction=0.0))
    assert len(task.heldout_label_combos) == 0 and len(task.train_label_combos) == 10
    sets = task.eval_sets()
    assert sets["relabel"].batch_size == 0 and sets["relabel"].exemplars.shape[1:] == (3, 8)
    assert sets["train"].batch_size == 200


# --------------------------------------------------------------------------- label split
@pytest.mark.parametrize("n_labels, n_train, n_held", [(5, 8, 2), (10, 36, 9), (15, 84, 21)])
def test_label_split_sizes_match_paper(n_labels, n_train, n_held):
    config = TaskConfig.small(n_labels=n_labels)
    task = make_task(config)
    assert task.train_label_combos.shape == (n_train, 2)
    assert task.heldout_label_combos.shape == (n_held, 2)
    everything = as_rows(itertools.combinations(range(n_labels), 2))
    train, held = as_rows(task.train_label_combos), as_rows(task.heldout_label_combos)
    assert train | held == everything and not train & held
    assert (np.diff(task.train_label_combos, axis=1) > 0).all()  # sorted tuples


def test_label_split_depends_on_its_seed_only():
    a = make_task(TaskConfig.small(label_split_seed=3, eval_seed=1))
    b = make_task(TaskConfig.small(label_split_seed=3, eval_seed=2))
    np.testing.assert_array_equal(a.heldout_label_combos, b.heldout_label_combos)
    others = {tuple(map(tuple, make_task(TaskConfig.small(label_split_seed=s))
                        .heldout_label_combos)) for s in range(6)}
    assert len(others) > 1


# --------------------------------------------------------------------------- enumeration
def test_enumerate_train_set_paper_config():
    # Paper config on a small-dim table (the 512-d version would take ~480 MB).
    config = TaskConfig.paper()
    task = FewShotTask(config, features=random_table(150, dim=4))
    full = task.enumerate_train_set()
    assert full.batch_size == 78_400 == task.n_train_sequences == 50 * 49 * 16 * 2
    check_batch(task, full, (0, 50), (0,), task.train_label_combos, 78_400)
    # all distinct sequences; every ordered class pair in both positions
    keys = np.concatenate([full.classes, full.labels], axis=1)
    assert len(np.unique(keys, axis=0)) == 78_400
    assert len(np.unique(full.classes[:, :2], axis=0)) == 50 * 49
    np.testing.assert_array_equal(np.bincount(full.query_pair), [39_200, 39_200])
    # chunked walk gives the same sequences in the same order
    chunks = list(task.iter_train_set(10_000))
    assert len(chunks) == 8
    for field in range(5):
        np.testing.assert_array_equal(np.concatenate([c[field] for c in chunks]), full[field])


def test_enumerate_train_set_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="n_context_pairs = 3"):
        make_task(TaskConfig.small(n_context_pairs=3)).enumerate_train_set()
    with pytest.raises(ValueError, match="train_exemplars"):
        make_task(TaskConfig.small(train_exemplars=(0, 1))).enumerate_train_set()
    with pytest.raises(ValueError, match="batch_size"):
        next(make_task(TaskConfig.small()).iter_train_set(0))


# --------------------------------------------------------------------------- feature tables in the task
def one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_load_features_round_trip(tmp_path):
    table = np.random.default_rng(0).random((20, 3, 7))           # float64 on disk
    path = tmp_path / "features.npy"
    np.save(path, table)
    loaded = load_features(path)
    assert loaded.dtype == np.float32 and loaded.shape == (20, 3, 7)
    np.testing.assert_allclose(loaded, table, rtol=1e-6)
    # and through the config
    config = TaskConfig(n_train_classes=8, n_heldout_classes=10, other_exemplars=(1, 2),
                        features=str(path), eval_size=20)
    task = FewShotTask(config)
    assert task.feature_dim == 7
    check_batch(task, task.eval_sets()["other_exemplars"], (0, 8), (1, 2),
                task.train_label_combos, 20)


def test_task_checks_table_against_config(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        FewShotTask(TaskConfig.paper(), features=random_table(100))
    one_line_error(excinfo, "n_train_classes + n_heldout_classes", "150", "100 classes")
    with pytest.raises(ValueError) as excinfo:
        FewShotTask(TaskConfig.small(other_exemplars=(1, 7)), features=random_table(30))
    one_line_error(excinfo, "other_exemplars", "(1, 7)", "0..4")
    with pytest.raises(ValueError) as excinfo:
        FewShotTask(TaskConfig.small(train_exemplars=(5,)), features=random_table(30))
    one_line_error(excinfo, "train_exemplars")
    with pytest.raises(ValueError) as excinfo:
        FewShotTask(TaskConfig.paper(n_train_classes=1600))
    one_line_error(excinfo, "1700", "1623")
    with pytest.raises(ValueError, match="3-D"):
        FewShotTask(TaskConfig.small(), features=np.zeros((30, 8)))
    with pytest.raises(ValueError, match="TaskConfig"):
        FewShotTask({"n_labels": 5})


def test_task_keeps_a_private_copy_of_given_features():
    table = random_table(25)
    task = FewShotTask(TaskConfig.small(), features=table)
    before = task.sample(np.random.default_rng(0), 10).exemplars
    table[:] = 0
    np.testing.assert_array_equal(task.sample(np.random.default_rng(0), 10).exemplars, before)


# --------------------------------------------------------------------------- config
def test_presets():
    assert TaskConfig.paper() == TaskConfig()
    paper = TaskConfig.paper()
    assert (paper.n_train_classes, paper.n_heldout_classes, paper.n_labels) == (50, 100, 5)
    assert paper.n_label_combos == 10 and paper.n_heldout_label_combos == 2
    assert TaskConfig.paper(n_labels=10).n_labels == 10
    small = TaskConfig.small(eval_size=5)
    assert small.n_train_classes == 10 and small.eval_size == 5
    # lists and numpy ints are normalised, so configs stay hashable and comparable
    normalised = TaskConfig(train_exemplars=[0], n_labels=np.int64(5))
    assert normalised == TaskConfig() and hash(normalised) == hash(TaskConfig())


@pytest.mark.parametrize("field, value, fragment", [
    ("n_labels", 1, ">= 2"),
    ("n_labels", 2.0, "integer"),
    ("n_labels", True, "integer"),
    ("n_context_pairs", 1, ">= 2"),
    ("n_train_classes", 1, ">= 2"),
    ("n_heldout_classes", 0, ">= 2"),
    ("train_exemplars", (), "non-empty"),
    ("train_exemplars", (0, 0), "distinct"),
    ("other_exemplars", (-1,), ">= 0"),
    ("other_exemplars", "1234", "tuple"),
    ("heldout_label_fraction", 1.0, "[0, 1)"),
    ("heldout_label_fraction", -0.1, "[0, 1)"),
    ("heldout_label_fraction", float("nan"), "[0, 1)"),
    ("label_split_seed", -1, ">= 0"),
    ("noise_std", -0.5, ">= 0"),
    ("noise_std", float("inf"), "finite"),
    ("features", "", "builtin"),
    ("features", 3, "builtin"),
    ("eval_size", 0, ">= 1"),
    ("eval_seed", "1", "integer"),
])
def test_config_validation(field, value, fragment):
    with pytest.raises(ValueError) as excinfo:
        TaskConfig(**{field: value})
    one_line_error(excinfo, f"TaskConfig.{field} = {value!r}", fragment)


def test_config_validation_of_combined_fields():
    with pytest.raises(ValueError) as excinfo:
        TaskConfig(n_labels=3, n_context_pairs=4, n_train_classes=5, n_heldout_classes=5)
    one_line_error(excinfo, "TaskConfig.n_labels = 3", "n_context_pairs")
    with pytest.raises(ValueError) as excinfo:
        TaskConfig(n_context_pairs=3, n_train_classes=2)
    one_line_error(excinfo, "TaskConfig.n_train_classes = 2", ">= 3")
    # 2 labels, 2 pairs: one combination; holding any out leaves none to train on
    with pytest.raises(ValueError) as excinfo:
        TaskConfig(n_labels=2, heldout_label_fraction=0.2)
    one_line_error(excinfo, "heldout_label_fraction", "none to train on")
    assert TaskConfig(n_labels=2, heldout_label_fraction=0.0).n_heldout_label_combos == 0
    with pytest.raises(ValueError, match="label combinations"):
        TaskConfig(n_labels=60, n_context_pairs=10, n_train_classes=10, n_heldout_classes=10)
