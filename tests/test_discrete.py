"""The discrete calibrated space against brute-force enumeration and mpmath sums."""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest
from cases import DISCRETE_LAWS, TRANSFORMS
from hypothesis import given
from hypothesis import strategies as st
from strategies import betas, discrete_laws, procedures, transforms

import infalign_theory as ia


def enumerate_output(p, k, n):
    """Law of the k-th smallest level among n draws from masses p, by enumerating n-tuples."""
    out = np.zeros(len(p))
    for tup in itertools.product(range(len(p)), repeat=n):
        out[sorted(tup)[k - 1]] += math.prod(p[j] for j in tup)
    return out


def pairwise_win(a, b):
    """W(X > Y) + W(X = Y)/2 for level laws a (of X) and b (of Y), by the double sum."""
    return math.fsum(
        a[i] * b[j] * (1.0 if i > j else 0.5 if i == j else 0.0)
        for i in range(len(a))
        for j in range(len(b))
    )


def test_best_of_two_law_of_the_worked_example():
    # F = (0.5, 0.8, 1): F^2 = (0.25, 0.64, 1), level masses (0.25, 0.39, 0.36).
    law = ia.DiscreteLaw([0, 1, 2], [0.5, 0.3, 0.2])
    bo2 = ia.apply(ia.best_of(2), ia.base_policy(law))
    np.testing.assert_allclose(bo2.probs, [0.25, 0.39, 0.36], rtol=0, atol=1e-15)


@given(
    discrete_laws(ties=True, max_levels=5),
    transforms(),
    betas(),
    procedures(max_n=3),
    st.sampled_from(["procedure", "sample"]),
)
def test_win_rate_equals_enumeration_with_ties(law, tr, beta, proc, against):
    pol = ia.tilt(tr, beta, law)
    a = enumerate_output(pol.probs, proc.k, proc.n)
    b = enumerate_output(law.probs, proc.k, proc.n) if against == "procedure" else law.probs
    expected = pairwise_win(a, b)
    assert ia.win_rate(pol, proc, against=against) == pytest.approx(expected, abs=1e-14)
    np.testing.assert_allclose(ia.apply(proc, pol).probs, a, atol=1e-15)


@given(discrete_laws(ties=True), transforms(), betas())
def test_standard_win_rate_is_expected_calibrated_reward(law, tr, beta):
    pol = ia.tilt(tr, beta, law)
    expected = pairwise_win(pol.probs, law.probs)
    assert ia.standard_win_rate(pol) == pytest.approx(expected, abs=1e-15)
    assert ia.win_rate(pol, ia.sampling()) == pytest.approx(expected, abs=1e-15)


def mp_tilt(law, tr, beta):
    """p and KL of the tilt summed in mpmath at 250 digits (KLs go down to 1e-72 here)."""
    with mp.workdps(250):
        u = [mp.mpf(float(x)) for x in ia.level_midpoints(law)[0]]
        q = [mp.mpf(float(x)) for x in law.probs]
        q = [x / mp.fsum(q) for x in q]
        if isinstance(tr, ia.Exponential) and tr.t != 0:
            phi = [mp.expm1(tr.t * x) / mp.expm1(tr.t) for x in u]
        elif isinstance(tr, ia.Log):
            phi = [mp.log(x) for x in u]
        else:
            phi = u
        w = [qi * mp.exp(f / beta) for qi, f in zip(q, phi, strict=True)]
        Z = mp.fsum(w)
        p = [x / Z for x in w]
        kl = mp.fsum(pi * mp.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)
        return [float(x) for x in p], float(kl)


@pytest.mark.parametrize("name", ["three-levels", "with-ties", "heavy-top", "eight-levels"])
@pytest.mark.parametrize("tr", ["identity", "log", "exp+10", "exp-10", "exp+300"])
@pytest.mark.parametrize("beta", [1e-4, 0.03, 1.0, 1e6])
def test_tilt_and_kl_match_mpmath_including_extreme_beta(name, tr, beta):
    law, transform = DISCRETE_LAWS[name], TRANSFORMS[tr]
    pol = ia.tilt(transform, beta, law)
    p, kl = mp_tilt(law, transform, beta)
    np.testing.assert_allclose(pol.probs, p, rtol=1e-12, atol=1e-300)
    # Relative accuracy even when KL ~ 1e-14 (beta = 1e6).
    assert ia.kl(pol) == pytest.approx(kl, rel=1e-10, abs=1e-300)


@given(discrete_laws(ties=True), transforms(), betas(1e-3, 1e3))
def test_kl_is_nonnegative_and_grows_as_beta_shrinks(law, tr, beta):
    k1 = ia.kl(ia.tilt(tr, beta, law))
    k2 = ia.kl(ia.tilt(tr, beta / 2, law))
    assert 0.0 <= k1 <= k2 + 1e-15
    assert k2 <= ia.kl_limit(tr, law) + 1e-12


def test_single_level_law_is_trivial():
    law = DISCRETE_LAWS["single-level"]
    pol = ia.tilt(ia.Exponential(5.0), 0.01, law)
    assert ia.kl(pol) == 0.0
    assert ia.win_rate(pol, ia.best_of(8)) == 0.5
    assert ia.standard_win_rate(pol) == 0.5


def test_general_policies_and_their_validation():
    law = DISCRETE_LAWS["three-levels"]
    pol = ia.DiscretePolicy(law, [0.0, 0.5, 0.5])
    assert ia.kl(pol) == pytest.approx(0.5 * math.log(0.5 / 0.3) + 0.5 * math.log(0.5 / 0.2))
    with pytest.raises(ValueError, match="one entry per level"):
        ia.DiscretePolicy(law, [0.5, 0.5])
    with pytest.raises(ValueError, match="probs must be >= 0"):
        ia.DiscretePolicy(law, [-0.1, 0.6, 0.5])
