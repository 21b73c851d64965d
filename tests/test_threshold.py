"""Threshold sampling against enumeration, Monte Carlo and closed forms.

References written here: every ordered n-tuple of levels run through the procedure
(draw until C >= tau, else the best); a simulation of the procedure; and on the base the
closed forms E[C] = n tau^{n+1}/(n+1) + S_n(tau) (1 - tau^2)/2, S_n(x) = sum_{i<n} x^i.
"""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import discrete_laws

import infalign_theory as ia


def brute_force_threshold(p: np.ndarray, c: np.ndarray, n: int, tau: float) -> np.ndarray:
    out = np.zeros(p.size)
    for tup in itertools.product(range(p.size), repeat=n):
        prob = math.prod(p[i] for i in tup)
        passing = [i for i in tup if c[i] >= tau]
        out[passing[0] if passing else max(tup)] += prob
    return out


@settings(max_examples=40, deadline=None)
@given(
    law=discrete_laws(ties=True, max_levels=4),
    n=st.integers(1, 4),
    tau=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)),
    beta=st.floats(0.2, 5.0),
)
def test_discrete_masses_equal_enumeration(law, n, tau, beta):
    pol = ia.tilt(ia.Identity(), beta, law)
    u, _ = ia.level_midpoints(law)
    got = ia.apply(ia.threshold_sampling(n, tau), pol).probs
    np.testing.assert_allclose(got, brute_force_threshold(pol.probs, u, n, tau), atol=1e-15)


def test_tied_level_at_the_threshold_passes():
    law = ia.DiscreteLaw([0.0, 1.0, 2.0], [0.5, 0.25, 0.25])  # C = 0.25, 0.625, 0.875
    got = ia.apply(ia.threshold_sampling(2, 0.625), ia.base_policy(law)).probs
    # level 1 passes: fail = 0.5, S_2 = 1.5
    np.testing.assert_allclose(got, [0.25, 0.375, 0.375], rtol=0, atol=1e-16)
    above = ia.apply(ia.threshold_sampling(2, 0.625 + 1e-12), ia.base_policy(law)).probs
    np.testing.assert_allclose(above, [0.25, 0.5625 - 0.25, 1 - 0.5625], atol=1e-15)


@pytest.mark.parametrize("law", [None, ia.DiscreteLaw([0, 1, 1, 2, 5], [0.2] * 5)])
def test_limits_are_sampling_and_best_of(law):
    pol = ia.tilt(ia.Exponential(2.0), 0.4, law)
    for n in (1, 3, 8):
        w0 = ia.win_rate(pol, ia.threshold_sampling(n, 0.0))
        w1 = ia.win_rate(pol, ia.threshold_sampling(n, 1.0))
        assert w0 == pytest.approx(ia.win_rate(pol, ia.sampling()), rel=0, abs=1e-12)
        assert w1 == pytest.approx(ia.win_rate(pol, ia.best_of(n)), rel=0, abs=1e-12)


def test_monte_carlo_continuous():
    pol = ia.tilt(ia.Identity(), 0.3)
    n, tau = 3, 0.8
    rng = np.random.default_rng(7)
    draws = pol.sample(rng, (40_000, n))
    passed = draws >= tau
    first = np.argmax(passed, axis=1)
    pick = np.where(passed.any(axis=1), draws[np.arange(draws.shape[0]), first], draws.max(axis=1))
    decoded = ia.apply(ia.threshold_sampling(n, tau), pol)
    se = pick.std() / math.sqrt(pick.size)
    assert abs(pick.mean() - ia.standard_win_rate(decoded)) < 5 * se
    for x in (0.5, 0.8, 0.9):
        p = float(np.mean(pick <= x))
        assert abs(p - float(decoded.cdf(x))) < 5 * math.sqrt(p * (1 - p) / pick.size)


@pytest.mark.parametrize(("n", "tau"), [(2, 0.3), (4, 0.5), (16, 0.9), (64, 0.97)])
def test_base_closed_forms(n, tau):
    decoded = ia.apply(ia.threshold_sampling(n, tau), ia.base_policy())
    s = sum(tau**i for i in range(n))
    mean = n * tau ** (n + 1) / (n + 1) + s * (1 - tau**2) / 2
    assert ia.standard_win_rate(decoded) == pytest.approx(mean, rel=0, abs=1e-12)
    mp.mp.dps = 30
    t, N, S = mp.mpf(tau), n, mp.mpf(s)
    kl = mp.quad(lambda u: N * u ** (N - 1) * mp.log(N * u ** (N - 1)), [0, t]) + (
        1 - t
    ) * S * mp.log(S)
    assert ia.kl(decoded) == pytest.approx(float(kl), rel=0, abs=1e-11)


def test_win_rate_of_a_tilt_against_mpmath():
    # f = t e^{tu}/(e^t - 1): G closed form; W = int h_A H_B du, split at tau
    mp.mp.dps = 30
    t, n, tau = mp.mpf(3), 4, mp.mpf("0.6")
    G = lambda u: mp.expm1(t * u) / mp.expm1(t)  # noqa: E731
    f = lambda u: t * mp.exp(t * u) / mp.expm1(t)  # noqa: E731
    S = lambda x: sum(x**i for i in range(n))  # noqa: E731
    h_a = lambda u: n * G(u) ** (n - 1) * f(u) if u < tau else S(G(tau)) * f(u)  # noqa: E731
    H_b = lambda u: u**n if u < tau else tau**n + (u - tau) * S(tau)  # noqa: E731
    ref = mp.quad(lambda u: h_a(u) * H_b(u), [0, tau, 1])
    got = ia.win_rate(ia.tilt(ia.Identity(), 1 / 3), ia.threshold_sampling(n, float(tau)))
    assert got == pytest.approx(float(ref), rel=0, abs=1e-11)


@pytest.mark.parametrize(
    ("args", "name"),
    [((0, 0.5), "n"), ((2, -0.1), "tau"), ((2, 1.5), "tau"), ((2, math.nan), "tau")],
)
def test_invalid_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        ia.threshold_sampling(*args)
