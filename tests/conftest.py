"""Hypothesis profiles: "fast" (the default, derandomised, for every run) and "long".

Choose with ``LOOPBP_HYPOTHESIS=long pytest`` for a longer, random search.
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
settings.load_profile(os.environ.get("LOOPBP_HYPOTHESIS", "fast"))
