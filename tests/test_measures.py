"""Progress measures read the quantities they claim to, checked with clamped patterns."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinyinduction.clamp import Clamp, previous_token_pattern
from tinyinduction.config import ModelConfig
from tinyinduction.tasks.fewshot import TaskConfig
from tinyinduction.measures import induction_strength, label_previous_token_score, previous_token_score
from tinyinduction.model import init_params, run_with_cache
from tinyinduction.tasks.fewshot import FewShotTask

CONFIG = ModelConfig(n_heads=2, d_model=16, d_head=4, d_feature=8)
TASK = FewShotTask(TaskConfig.small(), features=np.random.default_rng(0).random((30, 5, 8)))
PARAMS = init_params(CONFIG, 0)


def match_clamp(layer, head, strength):
    """Query row of one head: `strength` on the correct label token, the rest on the other."""
    def value(batch, cache):
        rows = np.arange(len(batch.target))
        pattern = np.zeros((len(rows), 1, 5, 5))       # [B, 1, T, T]
        correct = 2 * np.asarray(batch.query_pair) + 1
        pattern[rows, 0, -1, correct] = strength
        pattern[rows, 0, -1, 4 - correct] = 1 - strength   # the other label: 1 <-> 3
        pattern[:, 0, :-1, 0] = 1.0                    # other rows: anything valid
        return pattern
    return Clamp(f"blocks.{layer}.attn.hook_pattern", value, np.s_[:, head:head + 1])


@given(strength=st.floats(0, 1), head=st.integers(0, 1), seed=st.integers(0, 100))
def test_induction_strength_of_a_match_clamp_is_2s_minus_1(strength, head, seed):
    batch = TASK.sample(np.random.default_rng(seed), 8)
    cache = run_with_cache(PARAMS, CONFIG, batch, [match_clamp(1, head, strength)])
    assert induction_strength(cache, batch, 1)[head] == pytest.approx(2 * strength - 1, abs=1e-6)


@given(strength=st.floats(0, 1), head=st.integers(0, 1))
def test_previous_token_scores_of_an_ideal_previous_token_head(strength, head):
    batch = TASK.sample(np.random.default_rng(1), 8)
    cache = run_with_cache(PARAMS, CONFIG, batch, [previous_token_pattern(0, head, strength)])
    assert previous_token_score(cache, 0)[head] == pytest.approx(strength, abs=1e-6)
    assert label_previous_token_score(cache, 0)[head] == pytest.approx(strength, abs=1e-6)
    other = 1 - head
    assert previous_token_score(cache, 0)[other] < 0.9   # an untrained head is no such head
