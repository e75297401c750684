"""Hypothesis profiles: "fast" (the default, derandomised, for every run) and "long".

Choose with ``LOOPBP_HYPOTHESIS=long pytest`` for a longer, random search, or "coverage"
for the run without JIT (README, "Tests").
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# The kernel-coverage run (NUMBA_DISABLE_JIT=1, pure Python): a few small examples.
settings.register_profile("coverage", max_examples=5, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("LOOPBP_HYPOTHESIS", "fast"))
