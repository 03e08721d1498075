"""The speed work's guarantees that finite differences cannot see.

- float32 stays float32: a float64 NumPy scalar (e.g. 1 / np.sqrt(d_head)) promotes a
  float32 array to float64 under NumPy 2, which once made half of the backward pass run
  in float64 (and its matmuls on mixed types, outside the float32 BLAS kernels).
"""
import numpy as np

from tinyinduction.config import ModelConfig, TaskConfig
from tinyinduction.model import init_params, loss_and_grads
from tinyinduction.tasks.fewshot import FewShotTask


def test_float32_model_keeps_float32_everywhere():
    config = ModelConfig.small()
    batch = FewShotTask(TaskConfig.small()).sample(np.random.default_rng(0), 4)
    params = init_params(config, seed=0)
    _, _, grads, cache = loss_and_grads(params, config, batch, record_activation_grads=True)
    assert {name: g.dtype for name, g in grads.items() if g.dtype != np.float32} == {}
    assert {name: a.dtype for name, a in cache.items() if a.dtype != np.float32} == {}
