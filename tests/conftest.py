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
