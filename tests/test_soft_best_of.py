"""Soft Best-of-n against brute-force enumeration, closed forms and mpmath references.

References written here, independent of the library's Gumbel-convolution route:
* discrete: every ordered n-tuple of levels enumerated, the pick's probability
  w_j / sum_i w_i summed (exact to rounding);
* continuous, identity tilt f(v) = t e^{tv}/(e^t - 1): the Laplace form of the issue,
  h(u) = n f(u) w(u) int_0^inf e^{-s w(u)} M(s)^{n-1} ds, with M in closed form,
  M(s) = c lam s^{-t lam} [Gamma(t lam, s) - Gamma(t lam, s e^{1/lam})] (mpmath, 25 digits);
* n = 2 on the base: h(u) = 2 int_0^1 sigma((u - v)/lam) dv in closed form (softplus), and
  W_T from mpmath quadrature of the two decoded densities.
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


def brute_force_soft(p: np.ndarray, c: np.ndarray, n: int, lam: float) -> np.ndarray:
    """P(level j returned), by enumerating every ordered n-tuple of levels."""
    out = np.zeros(p.size)
    for tup in itertools.product(range(p.size), repeat=n):
        prob = math.prod(p[i] for i in tup)
        top = max(c[i] for i in tup)  # weights relative to the tuple's best: no underflow
        w = [math.exp((c[i] - top) / lam) for i in tup]
        for i, wi in zip(tup, w, strict=True):
            out[i] += prob * wi / sum(w)
    return out


@settings(max_examples=25, deadline=None)
@given(
    law=discrete_laws(ties=True, max_levels=4),
    n=st.integers(1, 4),
    lam=st.floats(-6.0, 3.0).map(lambda x: 10.0**x),
    beta=st.floats(0.2, 5.0),
)
def test_discrete_masses_equal_enumeration(law, n, lam, beta):
    pol = ia.tilt(ia.Identity(), beta, law)
    got = ia.apply(ia.soft_best_of(n, lam), pol).probs
    u, _ = ia.level_midpoints(law)
    ref = brute_force_soft(pol.probs, u, n, lam)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)


def test_discrete_win_rate_enumeration_with_ties():
    # a law with a heavy tied level (mass 0.5 at one reward): exact win rate by enumeration
    law = ia.DiscreteLaw([0.0, 0.0, 1.0, 2.0, 3.0], [0.3, 0.2, 0.2, 0.2, 0.1])
    pol = ia.tilt(ia.Exponential(2.0), 0.7, law)
    n, lam = 3, 0.2
    u, _ = ia.level_midpoints(law)
    a = brute_force_soft(pol.probs, u, n, lam)
    b = brute_force_soft(law.probs, u, n, lam)
    ref = sum(a[j] * (b[:j].sum() + 0.5 * b[j]) for j in range(a.size))
    assert ia.win_rate(pol, ia.soft_best_of(n, lam)) == pytest.approx(ref, rel=0, abs=1e-14)


def test_limits_on_a_discrete_law():
    law = ia.DiscreteLaw([0.0, 1.0, 2.0, 3.0], [0.4, 0.3, 0.2, 0.1])
    pol = ia.tilt(ia.Identity(), 0.5, law)
    bon = ia.apply(ia.best_of(5), pol).probs
    cold = ia.apply(ia.soft_best_of(5, 1e-3), pol).probs  # level gaps >= 0.15 = 150 lam
    np.testing.assert_allclose(cold, bon, rtol=0, atol=1e-15)
    hot = ia.apply(ia.soft_best_of(5, 1e6), pol).probs  # weights differ by 1e-6 relative
    np.testing.assert_allclose(hot, pol.probs, rtol=0, atol=1e-5)
    errs = [np.abs(ia.apply(ia.soft_best_of(5, lam), pol).probs - pol.probs).max()
            for lam in (1e2, 1e3, 1e4)]  # fmt: skip
    assert errs[0] > errs[1] > errs[2]  # O(1/lam)
    assert errs[1] / errs[2] == pytest.approx(10.0, rel=1e-2)


def _laplace_density(u: float, n: int, lam: float, t: float) -> mp.mpf:
    """h(u) for soft Best-of-n of f(v) = t e^{tv}/(e^t - 1), by the Laplace form."""
    u, lam, t = mp.mpf(u), mp.mpf(lam), mp.mpf(t)
    c = t / mp.expm1(t)
    a = t * lam
    W = mp.exp(u / lam)
    M = lambda s: c * lam * s ** (-a) * mp.gammainc(a, s, s * mp.exp(1 / lam))  # noqa: E731
    # s = x / w(u): n f(u) int_0^inf e^{-x} M(x / w(u))^{n-1} dx
    return (
        n
        * c
        * mp.exp(t * u)
        * mp.quad(lambda x: mp.exp(-x) * M(x / W) ** (n - 1), [0, 1, 10, 50, mp.inf])
    )


@pytest.mark.parametrize(
    ("n", "lam", "t"),
    [(4, 0.1, 3.0), (16, 0.01, 5.0), (3, 5.0, 1.5),
     pytest.param(64, 1e-3, 2.0, marks=pytest.mark.slow)],  # mpmath: minutes
)  # fmt: skip
def test_continuous_density_against_laplace_form(n, lam, t):
    mp.mp.dps = 25
    A = ia.apply(ia.soft_best_of(n, lam), ia.tilt(ia.Identity(), 1.0 / t))
    for u in (0.7, 0.999) if n > 8 else (0.3, 0.7, 0.9, 0.999):
        ref = float(_laplace_density(u, n, lam, t))
        assert float(A.pdf(u)) == pytest.approx(ref, rel=1e-10, abs=1e-12)


def _softplus_density(u: mp.mpf, lam: mp.mpf) -> mp.mpf:
    """Soft Best-of-2 of Uniform[0, 1]: 2 int_0^1 1/(1 + e^{(v-u)/lam}) dv, closed form."""
    sp = lambda x: mp.log1p(mp.exp(x)) if x < 30 else x + mp.log1p(mp.exp(-x))  # noqa: E731
    return 2 * lam * (sp(u / lam) - sp((u - 1) / lam))


@pytest.mark.parametrize("lam", [1e-3, 0.05, 1.0, 30.0])
def test_base_mean_calibrated_reward_n2(lam):
    mp.mp.dps = 25
    lm = mp.mpf(lam)
    pts = [0, 0.5, 1] if lam > 0.01 else [0, lm, 50 * lm, 0.5, 1 - 50 * lm, 1 - lm, 1]
    ref = mp.quad(lambda u: u * _softplus_density(u, lm), pts)
    decoded = ia.apply(ia.soft_best_of(2, lam), ia.base_policy())
    assert ia.standard_win_rate(decoded) == pytest.approx(float(ref), rel=0, abs=1e-11)
    kl_ref = mp.quad(lambda u: _softplus_density(u, lm) * mp.log(_softplus_density(u, lm)), pts)
    assert ia.kl(decoded) == pytest.approx(float(kl_ref), rel=0, abs=1e-11)


@pytest.mark.slow  # nested mpmath quadrature: about 30 s
def test_win_rate_n2_against_mpmath():
    """W(T(pi) ≻ T(pi_ref)) for soft Best-of-2 of an identity tilt, by nested mpmath."""
    mp.mp.dps = 20
    lam, t = mp.mpf("0.1"), mp.mpf(2)
    c = t / mp.expm1(t)
    f = lambda v: c * mp.exp(t * v)  # noqa: E731
    sig = lambda x: 1 / (1 + mp.exp(-x))  # noqa: E731

    def h_a(u):
        return 2 * f(u) * mp.quad(lambda v: f(v) * sig((u - v) / lam), [0, u, 1])

    def H_b(u):  # CDF of soft Best-of-2 of the base: int_0^u of the softplus form
        return mp.quad(lambda x: _softplus_density(x, lam), [0, u])

    ref = mp.quad(lambda u: h_a(u) * H_b(u), [0, 0.5, 1])
    got = ia.win_rate(ia.tilt(ia.Identity(), 0.5), ia.soft_best_of(2, 0.1))
    assert got == pytest.approx(float(ref), rel=0, abs=1e-10)


def test_continuous_limits():
    pol = ia.tilt(ia.Identity(), 0.5)
    bon = ia.win_rate(pol, ia.best_of(4))
    assert ia.win_rate(pol, ia.soft_best_of(4, 1e-3)) == pytest.approx(bon, abs=5e-3)
    assert abs(ia.win_rate(pol, ia.soft_best_of(4, 1e-3)) - bon) < abs(
        ia.win_rate(pol, ia.soft_best_of(4, 1e-2)) - bon
    )
    sample = ia.win_rate(pol, ia.sampling())
    assert ia.win_rate(pol, ia.soft_best_of(4, 1e4)) == pytest.approx(sample, abs=1e-3)


@pytest.mark.parametrize(
    ("args", "name"),
    [((0, 0.1), "n"), ((2, 0.0), "temperature"), ((2, -1.0), "temperature"),
     ((2, math.inf), "temperature"), ((2, math.nan), "temperature"), ((1.5, 0.1), "n")],
)  # fmt: skip
def test_invalid_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        ia.soft_best_of(*args)


@pytest.mark.slow  # mpmath: about a minute
@pytest.mark.parametrize("n", [2, 8, 32])
@pytest.mark.parametrize("lam", [3e-3, 0.03, 0.3, 3.0])
def test_continuous_density_grid_against_laplace_form(n, lam):
    """The tabulated log K (interpolated between its panels) against the Laplace form."""
    mp.mp.dps = 20
    t = 2.0
    A = ia.apply(ia.soft_best_of(n, lam), ia.tilt(ia.Identity(), 1.0 / t))
    for u in (0.013, 0.5, 0.991):
        ref = float(_laplace_density(u, n, lam, t))
        assert float(A.pdf(u)) == pytest.approx(ref, rel=1e-10, abs=1e-12)
