"""Best-of-N selected by a proxy, judged by the true reward, against independent references.

* brute force: every N-tuple of atoms enumerated, the proxy-best picked with ties split
  uniformly, the two decoded laws compared pair by pair (exact to rounding);
* Monte Carlo: the procedure simulated draw by draw on a tie-free (continuous-valued) law;
* a closed form in the continuous limit: bivariate normal (true, proxy) with correlation rho,
  the base's proxy-best of N against one base sample wins with probability
  E[Phi(rho X / sqrt(2 - rho^2))], X the largest of N standard normals (mpmath quadrature);
* limits: proxy == true is ordinary Best-of-N (win rates and the optimum of
  ``solve_optimal``), a constant proxy is sampling;
* Theorem 1: the optimum is the tilt by its first variation, the first variation taken by
  finite differences of the win rate itself, and it beats every tilt at its KL.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import infalign_theory as ia
from infalign_theory.optimal import solve_optimal
from infalign_theory.prompts import ProxyPrompt
from infalign_theory.proxy import (
    JointLaw,
    JointPolicy,
    joint_base,
    joint_tilt,
    proxy_apply,
    proxy_best_of,
    proxy_evaluate,
    proxy_first_variation,
    proxy_win_rate,
    solve_proxy_optimal,
)


# -- an oracle that imports nothing from the package ----------------------------------------
def enumerate_output(pairs, probs, n):
    """Law over atoms of the proxy-best of n i.i.d. draws, ties split uniformly: all tuples.

    In exact rational arithmetic (the float masses converted exactly).
    """
    probs = [Fraction(float(x)) for x in probs]
    out = [Fraction(0)] * len(pairs)
    for tup in itertools.product(range(len(pairs)), repeat=n):
        weight = math.prod(probs[i] for i in tup)
        top = max(pairs[i][1] for i in tup)
        winners = [i for i in tup if pairs[i][1] == top]
        for i in winners:
            out[i] += weight / len(winners)
    return out


def enumerate_win_rate(pairs, p_out, q_out):
    """P(t(Y) > t(Y')) + P(t(Y) = t(Y')) / 2 over every pair of atoms, exactly."""
    total = Fraction(0)
    for i, (ti, _) in enumerate(pairs):
        for j, (tj, _) in enumerate(pairs):
            weight = 1 if ti > tj else Fraction(1, 2) if ti == tj else 0
            total += Fraction(p_out[i]) * Fraction(q_out[j]) * weight
    return float(total)


@st.composite
def joint_laws_with_policies(draw):
    """Up to 5 distinct (true, proxy) pairs on small grids (ties in both), and a policy."""
    grid = st.tuples(st.integers(0, 3), st.integers(0, 3))
    pairs = sorted(draw(st.sets(grid, min_size=2, max_size=5)), key=lambda tr: (tr[1], tr[0]))
    mass = st.lists(st.floats(1e-3, 1.0), min_size=len(pairs), max_size=len(pairs))
    q, p = np.asarray(draw(mass)), np.asarray(draw(mass))
    return [(float(t), float(r)) for t, r in pairs], q / q.sum(), p / p.sum()


@settings(deadline=None)
@given(joint_laws_with_policies(), st.integers(1, 4))
def test_output_law_and_win_rates_match_enumeration(case, n):
    pairs, q, p = case
    law = JointLaw([t for t, _ in pairs], [r for _, r in pairs], q)
    assert list(zip(law.true, law.proxy, strict=True)) == pairs  # sorted by (proxy, true)
    pol, proc = JointPolicy(law, p), proxy_best_of(n)
    p_out, q_out = enumerate_output(pairs, p, n), enumerate_output(pairs, q, n)
    got = proxy_apply(proc, pol).probs
    np.testing.assert_allclose(got, [float(x) for x in p_out], rtol=1e-13, atol=1e-16)
    # a win rate sums at most 25 products of these masses, each good to the 1e-13 above; the
    # sums round too (1.1e-15 off on one drawn case with abs 1e-15), so 1e-13 absolute
    exact = enumerate_win_rate(pairs, p_out, q_out)
    assert proxy_win_rate(pol, proc) == pytest.approx(exact, abs=1e-13)
    against_sample = enumerate_win_rate(pairs, p_out, q)
    assert proxy_win_rate(pol, proc, against="sample") == pytest.approx(against_sample, abs=1e-13)


def test_tie_breaking_matters_and_is_uniform():
    # two responses tie on the proxy, one truly good and one truly bad: best of 2 from the
    # base returns each with probability 1/2, so its win rate against one sample is 1/2
    law = JointLaw(true=[1.0, 0.0], proxy=[5.0, 5.0], probs=[0.5, 0.5])
    out = proxy_apply(proxy_best_of(2), joint_base(law)).probs
    np.testing.assert_array_equal(out, [0.5, 0.5])
    assert proxy_win_rate(joint_base(law), proxy_best_of(2), against="sample") == 0.5


def test_equal_pairs_merge_and_zero_masses_drop():
    law = JointLaw(true=[1, 1, 2, 3], proxy=[0, 0, 1, 2], probs=[0.25, 0.25, 0.5, 0.0])
    assert law.n_atoms == 2
    np.testing.assert_array_equal(law.probs, [0.5, 0.5])
    prompt = ProxyPrompt(np.full(4, 0.25), np.array([1.0, 1.0, 2.0, 3.0]), np.zeros(4))
    assert JointLaw.from_prompt(prompt).n_atoms == 3


# -- limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 4, 16])
def test_proxy_equal_to_true_is_best_of_n_exactly(n):
    rng = np.random.default_rng(n)
    values = np.round(rng.normal(size=40), 1)  # ties
    q = rng.random(40)
    q /= q.sum()
    law = ia.DiscreteLaw(values, q)
    joint = JointLaw(values, values, q)  # atoms are the levels, in the same order
    for _ in range(3):
        m = rng.random(law.n_levels) ** 3
        m /= m.sum()
        dp, jp = ia.DiscretePolicy(law, m), JointPolicy(joint, m)
        for against in ("procedure", "sample"):
            expected = ia.win_rate(dp, ia.best_of(n), against=against)
            got = proxy_win_rate(jp, proxy_best_of(n), against=against)
            assert got == pytest.approx(expected, abs=2e-15)  # rounding, 40 levels
        np.testing.assert_allclose(
            proxy_apply(proxy_best_of(n), jp).probs,
            ia.apply(ia.best_of(n), dp).probs,
            rtol=1e-12,
            atol=1e-16,  # the library's differences of level CDFs lose relative precision
        )


@pytest.mark.parametrize(
    ("n", "beta", "against"),
    [(2, 0.3, "procedure"), (4, 0.05, "procedure"), (4, 0.2, "sample"), (8, 0.1, "procedure")],
)
def test_proxy_equal_to_true_optimum_is_the_library_optimum(n, beta, against):
    rng = np.random.default_rng(7)
    values = np.round(rng.normal(size=25), 1)
    q = rng.random(25)
    q /= q.sum()
    law = ia.DiscreteLaw(values, q)
    ours = solve_proxy_optimal(
        proxy_best_of(n), JointLaw(values, values, q), beta=beta, against=against
    )
    theirs = solve_optimal(ia.best_of(n), beta=beta, law=law, against=against)
    assert ours.converged and ours.residual < 1e-11
    assert ours.win_rate == pytest.approx(theirs.win_rate, abs=1e-12)
    assert ours.kl == pytest.approx(theirs.kl, rel=1e-10)
    np.testing.assert_allclose(ours.policy.probs, theirs.policy.probs, rtol=1e-9, atol=1e-15)
    at_kl = solve_proxy_optimal(
        proxy_best_of(n), JointLaw(values, values, q), kl=0.5, against=against
    )
    ref = solve_optimal(ia.best_of(n), kl=0.5, law=law, against=against)
    assert at_kl.kl == pytest.approx(0.5, rel=1e-12)
    assert at_kl.win_rate == pytest.approx(ref.win_rate, abs=1e-11)
    assert at_kl.beta == pytest.approx(ref.beta, rel=1e-8)


def test_constant_proxy_is_sampling():
    rng = np.random.default_rng(3)
    true, q = rng.normal(size=30), rng.random(30)
    q /= q.sum()
    law = JointLaw(true, np.zeros(30), q)
    pol = joint_tilt(law, ia.Identity(), 0.3, reward="true")
    ev = proxy_evaluate(pol, proxy_best_of(8))
    # the procedure returns one draw of the policy; the base's, one base draw
    assert ev.win_rate == pytest.approx(ev.standard_win_rate, abs=4e-15)
    np.testing.assert_allclose(proxy_apply(proxy_best_of(8), pol).probs, pol.probs, rtol=1e-14)


# -- continuous-valued laws --------------------------------------------------------------------
def test_monte_carlo_on_a_tie_free_law():
    rng = np.random.default_rng(11)
    m, n, reps = 200, 4, 200_000
    true = rng.normal(size=m)
    proxy = 0.7 * true + math.sqrt(1 - 0.49) * rng.normal(size=m)  # no ties, almost surely
    law = JointLaw(true, proxy, np.full(m, 1.0 / m))
    pol = joint_tilt(law, ia.Exponential(5.0), 0.2, reward="proxy")
    exact = proxy_win_rate(pol, proxy_best_of(n))

    def decode(probs):
        draws = rng.choice(law.n_atoms, size=(reps, n), p=probs)
        best = draws[np.arange(reps), np.argmax(law.proxy[draws], axis=1)]
        return law.true[best]

    a, b = decode(pol.probs), decode(law.probs)
    wins = (a > b) + 0.5 * (a == b)  # equal true rewards: the same atom on both sides
    se = wins.std() / math.sqrt(reps)
    assert abs(wins.mean() - exact) < 4 * se
    assert 0.55 < exact < 0.95


def test_continuous_limit_against_a_closed_form():
    # (true, proxy) bivariate normal with correlation rho, on an I x J quantile grid: proxy
    # x_i, true rho x_i + sqrt(1 - rho^2) e_j, all equally likely
    rho, n, size = 0.6, 4, 120
    grid = np.array([float(mp.sqrt(2) * mp.erfinv(2 * (k + 0.5) / size - 1)) for k in range(size)])
    proxy = np.repeat(grid, size)
    true = rho * proxy + math.sqrt(1 - rho**2) * np.tile(grid, size)
    law = JointLaw(true, proxy, np.full(size * size, 1.0 / size**2))
    got = proxy_win_rate(joint_base(law), proxy_best_of(n), against="sample")
    mp.mp.dps = 30
    c = rho / mp.sqrt(2 - rho**2)
    exact = mp.quad(
        lambda x: mp.ncdf(c * x) * n * mp.npdf(x) * mp.ncdf(x) ** (n - 1), [-mp.inf, 0, mp.inf]
    )
    # the grid's own error (4.8e-5 at size 120; it shrinks with the grid)
    assert got == pytest.approx(float(exact), abs=2e-4)
    assert float(exact) - 0.5 > 0.1  # a real effect, far above the tolerance


# -- Theorem 1 ---------------------------------------------------------------------------------
def hacked_prompt(seed: int = 5, m: int = 60) -> JointLaw:
    """Rare large errors: 5 % poor responses that the reward model loves (as fig_reward_hacking)."""
    rng = np.random.default_rng(seed)
    true = np.round(rng.normal(size=m), 1)
    hacked = rng.random(m) < 0.05
    true = np.where(hacked, np.minimum(true, -1.0), true)
    proxy = true + np.where(hacked, 3.0, 0.0) + 0.3 * rng.normal(size=m)
    return JointLaw(true, proxy, np.full(m, 1.0 / m))


def test_first_variation_is_the_derivative_of_the_win_rate():
    law = hacked_prompt()
    proc = proxy_best_of(4)
    pol = joint_tilt(law, ia.Identity(), 0.5)
    R = proxy_first_variation(pol, proc)
    p, h = pol.probs, 1e-6
    for i in (0, 7, law.n_atoms - 1):
        e = np.zeros(law.n_atoms)
        e[i] = 1.0
        # directional derivative along e_i - p (a change that keeps the total mass)
        up = proxy_win_rate(JointPolicy(law, (p + h * (e - p))), proc)
        down = proxy_win_rate(JointPolicy(law, (p - h * (e - p))), proc)
        assert (up - down) / (2 * h) == pytest.approx(R[i] - p @ R, abs=1e-8)


@pytest.mark.parametrize("against", ["procedure", "sample"])
def test_optimum_is_the_tilt_by_its_finite_difference_first_variation(against):
    law, proc = hacked_prompt(), proxy_best_of(4)
    sol = solve_proxy_optimal(proc, law, kl=0.5, against=against)
    assert sol.converged and sol.kl == pytest.approx(0.5, rel=1e-9)
    p, h = sol.policy.probs, 1e-6
    held = np.flatnonzero(p > 1e-4)  # p - h (e_i - p) stays a policy
    assert held.size >= law.n_atoms // 2
    fd = np.empty(held.size)
    for k, i in enumerate(held):
        e = np.zeros(law.n_atoms)
        e[i] = 1.0
        up = proxy_win_rate(JointPolicy(law, p + h * (e - p)), proc, against=against)
        down = proxy_win_rate(JointPolicy(law, p - h * (e - p)), proc, against=against)
        fd[k] = (up - down) / (2 * h)
    # log(p / q) - R / beta is the same for every atom (-log Z)
    gap = np.log(p[held] / law.probs[held]) - fd / sol.beta
    assert np.ptp(gap) < 1e-6


def test_optimum_beats_every_tilt_at_its_kl():
    law, proc = hacked_prompt(), proxy_best_of(4)
    sol = solve_proxy_optimal(proc, law, kl=0.5)
    from scipy import optimize

    for reward in ("proxy", "true"):
        for tr in (ia.Identity(), ia.Exponential(5.0), ia.Exponential(20.0)):

            def gap(x, tr=tr, reward=reward):
                return (
                    proxy_evaluate(joint_tilt(law, tr, math.exp(x), reward=reward), proc).kl - 0.5
                )

            x = optimize.brentq(gap, math.log(1e-3), math.log(1e3), xtol=1e-12)
            other = proxy_evaluate(joint_tilt(law, tr, math.exp(x), reward=reward), proc)
            assert other.win_rate <= sol.win_rate + 1e-12, (reward, tr.name)
    # the proxy is hackable here: aligning to it costs true win rate against the oracle
    assert sol.stationary_points[0]["win_rate"] == sol.win_rate


# -- invalid arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: proxy_best_of(0), "n"),
        (lambda: proxy_best_of(1025), "n"),
        (lambda: proxy_best_of(2.5), "n"),
        (lambda: JointLaw([1, 2], [1], [0.5, 0.5]), "true, proxy and probs"),
        (lambda: JointLaw([1, 2], [1, 2], [0.7, 0.5]), "probs"),
        (lambda: JointLaw([1, 2], [1, 2], [-0.5, 1.5]), "probs"),
        (lambda: JointLaw([1, np.nan], [1, 2], [0.5, 0.5]), "true"),
        (lambda: JointLaw([1, 2], [1, np.inf], [0.5, 0.5]), "proxy"),
        (lambda: JointPolicy(JointLaw([1, 2], [1, 2], [0.5, 0.5]), [1.0]), "probs"),
        (lambda: joint_tilt(JointLaw([1, 2], [1, 2], [0.5, 0.5]), ia.Identity(), 0.0), "beta"),
        (
            lambda: joint_tilt(
                JointLaw([1, 2], [1, 2], [0.5, 0.5]), ia.Identity(), 1.0, reward="score"
            ),
            "reward",
        ),
        (
            lambda: proxy_win_rate(
                joint_base(JointLaw([1, 2], [1, 2], [0.5, 0.5])), proxy_best_of(2), against="base"
            ),
            "against",
        ),
        (
            lambda: proxy_win_rate(joint_base(JointLaw([1, 2], [1, 2], [0.5, 0.5])), ia.best_of(2)),
            "procedure",
        ),
        (
            lambda: solve_proxy_optimal(
                proxy_best_of(2), JointLaw([1, 2], [1, 2], [0.5, 0.5]), beta=-1.0
            ),
            "beta",
        ),
        (
            lambda: solve_proxy_optimal(
                proxy_best_of(2), JointLaw([1, 2], [1, 2], [0.5, 0.5]), beta=1e9
            ),
            "beta",
        ),
        (
            lambda: solve_proxy_optimal(
                proxy_best_of(2), JointLaw([1, 2], [1, 2], [0.5, 0.5]), kl=math.nan
            ),
            "kl",
        ),
        (
            lambda: solve_proxy_optimal(proxy_best_of(2), JointLaw([1, 2], [1, 2], [0.5, 0.5])),
            "beta and kl",
        ),
        (
            lambda: solve_proxy_optimal(
                proxy_best_of(2), JointLaw([1, 2], [1, 2], [0.5, 0.5]), kl=5.0
            ),
            "kl",
        ),
    ],
)
def test_invalid_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
