"""Shared fixtures: hypothesis profiles and one warm-up of every numba kernel per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# `ci`: more examples, drawn from a fixed seed so that a landing never hinges on luck.
# `hunt`: many fresh random examples, for looking for counterexamples on purpose.
settings.register_profile(
    "ci",
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "hunt", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def warm_kernels() -> None:
    """Compile (or load from the on-disk cache) every kernel once, before any test times out."""
    import infalign_theory as ia

    law = ia.DiscreteLaw([0.0, 1.0, 2.0], [0.5, 0.3, 0.2])
    for law_ in (None, law):
        pol = ia.tilt(ia.Exponential(3.0), 0.5, law_)
        ia.evaluate(pol, ia.best_of(3))
        ia.evaluate(pol, ia.order_statistic(2, 3))
    ia.apply(ia.best_of(2), ia.base_policy(law))
    ia.best_of(3).g([0.5])
    ia.best_of(3).g_prime([0.5])
