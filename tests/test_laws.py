"""Reward laws and the exact calibrated reward (mid-rank, ties 1/2)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from scipy import stats
from strategies import discrete_laws

import infalign_theory as ia


def test_equal_values_merge_and_levels_sort():
    law = ia.DiscreteLaw([2.0, 1.0, 2.0, 0.0, 5.0], [0.1, 0.2, 0.3, 0.4, 0.0])
    np.testing.assert_array_equal(law.values, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(law.probs, [0.4, 0.2, 0.4], rtol=0, atol=1e-15)
    assert law.n_levels == 3


def test_probabilities_are_rescaled_only_within_tolerance():
    law = ia.DiscreteLaw([0, 1], [0.5, 0.5 + 5e-10])
    assert law.probs.sum() == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError, match="probs must sum to 1 within 1e-09"):
        ia.DiscreteLaw([0, 1], [0.5, 0.5 + 1e-6])


def test_calibrated_levels_of_the_worked_example():
    # Mid-ranks of values (0, 1, 2) with masses (0.5, 0.3, 0.2), by hand:
    # 0 + 0.5/2, 0.5 + 0.3/2, 0.8 + 0.2/2.
    law = ia.DiscreteLaw([0, 1, 2], [0.5, 0.3, 0.2])
    u, s = ia.level_midpoints(law)
    np.testing.assert_allclose(u, [0.25, 0.65, 0.9], rtol=0, atol=1e-15)
    np.testing.assert_allclose(s, [0.75, 0.35, 0.1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        ia.calibrate(law, [0, 1, 2, -1, 1.5, 9]),
        [0.25, 0.65, 0.9, 0.0, 0.8, 1.0],
        rtol=0,
        atol=1e-15,
    )


EPS = np.finfo(float).eps


@given(discrete_laws(ties=True))
@example(ia.DiscreteLaw([0.0, 1.0], [0.51892837, 0.48107163]))  # needed 2 eps, not 1
def test_calibration_equals_brute_force_mid_rank(law):
    # Exact rationals over the pairs (y, z): P(r(z) < r(y)) + P(r(z) = r(y)) / 2.
    q = [Fraction(float(p)) for p in law.probs]
    for j, v in enumerate(law.values):
        exact = sum(qi for i, qi in enumerate(q) if law.values[i] < v) + q[j] / 2
        assert float(ia.calibrate(law, [v])[0]) == pytest.approx(float(exact), abs=4 * EPS)


@given(discrete_laws(ties=True))
def test_expected_calibrated_reward_under_base_is_one_half(law):
    u, _ = ia.level_midpoints(law)
    assert float(np.dot(law.probs, u)) == pytest.approx(0.5, abs=1e-15)


@given(discrete_laws(ties=True))
def test_quantiles_invert_the_cdf(law):
    u, s = ia.level_midpoints(law)
    np.testing.assert_array_equal(law.ppf(u), law.values)
    np.testing.assert_array_equal(law.isf(s), law.values)
    np.testing.assert_allclose(law.cdf(law.values) + law.sf(law.values), 1.0, atol=1e-15)


def test_continuous_law_wraps_scipy():
    law = ia.ContinuousLaw(stats.norm(1.0, 2.0))
    x = np.array([-3.0, 0.0, 1.0, 4.0])
    np.testing.assert_allclose(ia.calibrate(law, x), stats.norm(1.0, 2.0).cdf(x))
    assert law.name == "norm(1, 2)"
    assert law.isf([1e-300])[0] == pytest.approx(stats.norm(1, 2).isf(1e-300))
    assert law.sample(rng=0, size=5).shape == (5,)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ia.DiscreteLaw([0, 1], [-0.1, 1.1]), "probs must be >= 0"),
        (lambda: ia.DiscreteLaw([0, np.nan], [0.5, 0.5]), "values must be an array of finite"),
        (lambda: ia.DiscreteLaw([0, 1], [0.5, np.inf]), "probs must be an array of finite"),
        (lambda: ia.DiscreteLaw([0, 1, 2], [0.5, 0.5]), "same length"),
        (lambda: ia.DiscreteLaw([], []), "at least one"),
        (lambda: ia.ContinuousLaw(stats.norm), "frozen continuous"),
        (lambda: ia.ContinuousLaw(stats.poisson(3)), "frozen continuous"),
    ],
)
def test_bad_laws_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_law_from_samples_merges_ties_and_counts():
    law = ia.DiscreteLaw.from_samples([2.0, 0.5, 2.0, -1.0, 2.0, 0.5])
    np.testing.assert_array_equal(law.values, [-1.0, 0.5, 2.0])
    np.testing.assert_allclose(law.probs, [1 / 6, 2 / 6, 3 / 6], rtol=1e-15)
    one = ia.DiscreteLaw.from_samples([3.0])
    assert one.n_levels == 1 and one.probs[0] == 1.0
    for bad in ([], [0.0, np.nan], "abc"):
        with pytest.raises(ValueError, match="values"):
            ia.DiscreteLaw.from_samples(bad)
