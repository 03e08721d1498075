"""Hypothesis profiles: a fast default and a deterministic `ci` profile.

Select with HYPOTHESIS_PROFILE=ci (the CI script sets it).
"""
import os

import tinyinduction  # noqa: F401  (first, so its one-BLAS-thread default precedes NumPy)

os.environ.setdefault("MPLBACKEND", "Agg")   # figures in tests are files, never windows
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=15, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


import pytest  # noqa: E402


@pytest.fixture(scope="module", params=["feature-major", "heads-outer"])
def memory_order(request):
    """Run a module's tests twice: with every attention array stored feature-major (the
    einsum contractions) and with every one stored heads outermost (the batched matmuls
    long sequences use; ops.heads_outer). Module-scoped, so that hypothesis accepts it."""
    from tinyinduction import ops
    saved = ops.heads.HEADS_OUTER_FROM
    ops.heads.HEADS_OUTER_FROM = 10**9 if request.param == "feature-major" else 1
    yield request.param
    ops.heads.HEADS_OUTER_FROM = saved
