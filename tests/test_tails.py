"""Continuous policies far in their tails, and discrete laws built from many duplicated values.

Closed forms: the identity tilt at beta has G(u) = (e^{u/beta} - 1)/(e^{1/beta} - 1), so its
quantile is beta log1p(q (e^{1/beta} - 1)); any tilt with a smooth density has
G(u) = f(0) u (1 + f'(0) u / (2 f(0)) + O(u^2)) next to 0, so G(u)/(f(0) u) - 1 is below
1e-15 once u < 1e-14 (f'(0)/f(0) is below 10 for the tilts here).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import infalign_theory as ia

TINY = np.array([1e-14, 1e-18, 1e-22, 1e-50, 1e-100, 1e-200, 1e-300])


@pytest.mark.parametrize(
    "transform, beta",
    [(ia.Exponential(5.0), 0.5), (ia.Exponential(-40.0), 0.3), (ia.Identity(), 0.2)],
    ids=["exp+5", "exp-40", "identity"],
)
def test_cdf_and_sf_keep_relative_precision_down_to_1e_300(transform, beta):
    pol = ia.tilt(transform, beta)
    f0, f1 = float(pol.pdf(0.0)), float(pol.pdf(1.0))
    assert f0 > 0.0 and f1 > 0.0
    np.testing.assert_allclose(pol.cdf(TINY) / (f0 * TINY), 1.0, rtol=1e-12, atol=0)
    u = 1.0 - np.array([1e-14, 2.0**-45])
    np.testing.assert_allclose(pol.sf(u) / (f1 * (1.0 - u)), 1.0, rtol=1e-12)
    # below 1e-16 the point 1 - s is not a double: reach it through the exact pair (u, s)
    _, sf = pol._cdf_pair(1.0 - TINY, TINY)
    np.testing.assert_allclose(sf / (f1 * TINY), 1.0, rtol=1e-12, atol=0)


@pytest.mark.parametrize("beta", [0.05, 0.2, 1.0, 7.0])
def test_identity_quantile_matches_its_closed_form_down_to_1e_300(beta):
    pol = ia.tilt(ia.Identity(), beta)
    q = np.array([1e-300, 1e-200, 1e-30, 1e-19, 1e-9, 0.01, 0.3, 0.5, 0.77, 0.999, 1 - 1e-12])
    with mp.workdps(40):
        c = 1 / mp.mpf(beta)
        exact = np.array([float(mp.log1p(mp.mpf(x) * mp.expm1(c)) / c) for x in q])
    np.testing.assert_allclose(pol.ppf(q), exact, rtol=4e-15, atol=0)
    assert pol.ppf([0.0])[0] == 0.0 and pol.ppf([1.0])[0] == 1.0


@pytest.mark.parametrize(
    "transform, beta",
    [(ia.Exponential(5.0), 0.5), (ia.Exponential(300.0), 0.08), (ia.Log(), 0.25)],
    ids=["exp+5", "exp+300", "log"],
)
def test_quantile_inverts_the_cdf_in_relative_terms(transform, beta):
    pol = ia.tilt(transform, beta)
    q = np.concatenate([10.0 ** -np.arange(300, 1, -23.0), np.linspace(0.05, 0.95, 7)])
    u = pol.ppf(q)
    assert np.all(np.diff(u) > 0.0)
    np.testing.assert_allclose(pol.cdf(u), q, rtol=1e-12, atol=0)


def test_tilt_of_exp5_pinned_at_tiny_quantiles():
    # f(0) = e^{-k} k' / Z with the closed forms of tests/reference.py (40 digits): the
    # quantile at q is q / f(0) to first order, exact here since f'(0) q / f(0)^2 < 1e-300.
    from reference import Tilt

    with mp.workdps(40):
        f0 = Tilt("exp", 5.0, 0.5).pdf(0)
    pol = ia.tilt(ia.Exponential(5.0), 0.5)
    q = np.array([1e-300, 1e-250, 1e-30, 1e-20])
    np.testing.assert_allclose(pol.ppf(q), q / float(f0), rtol=1e-13, atol=0)
    assert pol.ppf([1e-30])[0] != pol.ppf([1e-20])[0]


def test_a_million_duplicated_values_merge_into_masses_summing_to_one():
    n = 10**6
    values = np.concatenate([np.repeat([0.0, 1.0], n // 2), [2.0]])
    law = ia.DiscreteLaw(values, np.full(n + 1, 1.0 / (n + 1)))
    assert math.fsum(law.probs) == 1.0
    np.testing.assert_allclose(
        law.probs, [n / 2 / (n + 1), n / 2 / (n + 1), 1 / (n + 1)], rtol=4e-16
    )
    base = ia.base_policy(law)
    assert ia.standard_win_rate(base) == pytest.approx(0.5, abs=1e-15)
    assert ia.win_rate(base, ia.best_of(7)) == pytest.approx(0.5, abs=1e-15)


def test_many_levels_from_random_duplicates_still_sum_to_one():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 1000, 200_000).astype(float)
    probs = rng.random(values.size)
    law = ia.DiscreteLaw(values, probs / probs.sum())
    assert math.fsum(law.probs) == 1.0
    # every level's mass against an exact (fsum) regrouping of the inputs
    total = math.fsum(probs / probs.sum())
    for level in (0, 17, 999):
        exact = math.fsum((probs / probs.sum())[values == level]) / total
        assert law.probs[level] == pytest.approx(exact, rel=4e-16, abs=0)
    assert ia.standard_win_rate(ia.base_policy(law)) == pytest.approx(0.5, abs=1e-15)
