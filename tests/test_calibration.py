"""Calibration from K samples: estimators, the exact finite-K transform, against simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from cases import DISCRETE_LAWS
from hypothesis import given
from hypothesis import strategies as st
from strategies import discrete_laws

import infalign_theory as ia
from infalign_theory.calibration import estimate, score_distribution


def test_empirical_calibration_counts_ties_one_half():
    refs = np.array([[1.0, 2.0, 0.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    got = ia.calibrate_empirical([[0.5, 1.0, 3.0], [5.0, 4.0, 6.0]], refs)
    np.testing.assert_allclose(got, [[0.25, 0.5, 1.0], [0.5, 0.0, 1.0]])
    smooth = ia.calibrate_empirical([0.5, 1.0, 3.0], refs[0], estimator="smoothed")
    np.testing.assert_allclose(smooth, [(1 + 0.5) / 5, (2 + 0.5) / 5, (4 + 0.5) / 5])
    with pytest.raises(ValueError, match="estimator must be one of"):
        ia.calibrate_empirical([1.0], [1.0], estimator="rank")
    with pytest.raises(ValueError, match="same prompts"):
        ia.calibrate_empirical([[1.0], [2.0]], [[1.0, 2.0]])


@pytest.mark.parametrize("estimator", ["midrank", "smoothed"])
@given(st.integers(1, 40), st.floats(0.0, 0.9), st.floats(0.0, 0.5))
def test_estimator_bias_and_variance_formulas(estimator, k, below, tie):
    # Exact moments from the score distribution against the documented formulas.
    tie = min(tie, 1.0 - below)
    pmf = score_distribution(k, below, tie)
    values = estimate(np.arange(2 * k + 1), k, estimator)
    mean, var = pmf @ values, pmf @ values**2 - (pmf @ values) ** 2
    c = below + tie / 2
    v = below + tie / 4 - c**2
    if estimator == "midrank":
        assert mean == pytest.approx(c, abs=1e-14)
        assert var == pytest.approx(v / k, abs=1e-14)
    else:
        assert mean == pytest.approx((k * c + 0.5) / (k + 1), abs=1e-14)
        assert var == pytest.approx(k * v / (k + 1) ** 2, abs=1e-14)


@pytest.mark.parametrize("tr", [ia.Exponential(10.0), ia.Exponential(-6.0), ia.Log()])
@pytest.mark.parametrize("k", [1, 4, 32])
def test_finite_k_transform_matches_simulated_reference_samples(tr, k):
    # Simulation: draw K uniforms per repetition, count those below u, apply Phi.
    estimator = "smoothed" if isinstance(tr, ia.Log) else "midrank"
    eff = ia.SampleCalibrated(tr, k, estimator)
    rng = np.random.default_rng(11)
    for u in (0.03, 0.4, 0.93):
        j = (rng.random((200_000, k)) < u).sum(axis=1)
        draws = tr(estimate(2 * j, k, estimator))
        se = draws.std(ddof=1) / math.sqrt(draws.size)
        assert abs(draws.mean() - eff([u])[0]) <= 4 * se + 1e-12


def test_identity_is_unchanged_by_sample_calibration_at_equal_kl():
    # The Bernstein polynomial of u is u; the smoothed one is affine: same policy at equal KL.
    for k, est in ((4, "midrank"), (16, "smoothed")):
        curve = ia.tradeoff_curve(
            ia.SampleCalibrated(ia.Identity(), k, est), ia.best_of(4), kls=[0.5, 2.0]
        )
        exact = ia.tradeoff_curve(ia.Identity(), ia.best_of(4), kls=[0.5, 2.0])
        np.testing.assert_allclose(curve.win_rate, exact.win_rate, atol=1e-12)


def test_large_k_approaches_exact_calibration():
    tr = ia.Exponential(10.0)
    exact = ia.tradeoff_curve(tr, ia.best_of(4), kls=[1.0]).win_rate[0]
    gaps = [
        abs(
            ia.tradeoff_curve(ia.SampleCalibrated(tr, k), ia.best_of(4), kls=[1.0]).win_rate[0]
            - exact
        )
        for k in (4, 32, 1024)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3


def enumerate_levels(law, tr, k, estimator):
    """E[Phi(C^) | level i] by enumerating all K-tuples of reference levels."""
    out = []
    for i, v in enumerate(law.values):
        total = 0.0
        for tup in itertools.product(range(law.n_levels), repeat=k):
            prob = math.prod(law.probs[j] for j in tup)
            score = sum(2 if law.values[j] < v else 1 if j == i else 0 for j in tup)
            total += prob * float(tr(estimate([score], k, estimator))[0])
        out.append(total)
    return np.array(out)


@given(
    discrete_laws(ties=True, max_levels=4),
    st.integers(1, 4),
    st.sampled_from(["midrank", "smoothed"]),
)
def test_discrete_finite_k_matches_enumeration(law, k, estimator):
    tr = ia.Exponential(3.0)
    got = ia.SampleCalibrated(tr, k, estimator).on(law).values
    np.testing.assert_allclose(got, enumerate_levels(law, tr, k, estimator), atol=1e-13)


def test_discrete_tilt_uses_the_level_values():
    law = DISCRETE_LAWS["with-ties"]
    eff = ia.SampleCalibrated(ia.Exponential(5.0), 6)
    a, b = ia.tilt(eff, 0.3, law), ia.tilt(eff.on(law), 0.3, law)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-15)


def test_sample_calibration_refuses_infinite_values():
    with pytest.raises(ValueError, match="use estimator='smoothed'"):
        ia.SampleCalibrated(ia.Log(), 8)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 100000\]"):
        ia.SampleCalibrated(ia.Identity(), 0)


@pytest.mark.parametrize("k, t", [(2000, 30.0), (10_000, -300.0)])
def test_finite_k_transform_of_many_samples_matches_a_40_digit_sum(k, t):
    # The Bernstein sum keeps only the binomial terms near K u; the full sum in mpmath at
    # 40 digits is the reference. (Review found the full (nodes x K) matrix ran out of
    # memory at K = 10000.)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    tr = ia.SampleCalibrated(ia.Exponential(t), k)
    phi = ia.Exponential(t)(np.arange(k + 1) / k)
    for u in (1e-6, 3e-4, 0.5, 1 - 1e-5):
        x = mpmath.mpf(u)
        terms = [mpmath.binomial(k, j) * x**j * (1 - x) ** (k - j) for j in range(k + 1)]
        exact = mpmath.fsum(w * mpmath.mpf(float(v)) for w, v in zip(terms, phi, strict=True))
        got = float(tr(np.array([u]))[0])
        assert got == pytest.approx(float(exact), rel=1e-13, abs=1e-300), u


def test_finite_k_that_outruns_double_precision_is_refused_not_chased():
    # exp(-100) seen through K = 100 samples is within 1e-14 of constant above u = 0.5, so a
    # KL of 1 needs beta ~ 1e-7, where the tilt resolves only rounding. Found in review: the
    # engine once refined such tilts until memory ran out; now the search stops and says so.
    tr = ia.SampleCalibrated(ia.Exponential(-100.0), 100)
    with pytest.raises(ValueError, match="out of reach"):
        ia.beta_for_kl(tr, 1.0)
