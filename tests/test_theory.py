"""The theory, stated as hypothesis properties over generated instances (see verify.py).

Each property runs one check of `infalign_theory.verify` on generated reward laws,
procedures, transforms and betas. Where a check compares the library with itself (the
mirror, the composition, concavity), an independent reference stands beside it: every draw
enumerated on small discrete laws, and closed forms (mpmath quadrature) in the continuous
case. Then the library is perturbed (a subtly wrong calibration, first variation,
composition, ...) to show that each check fails: none of them can pass vacuously. Last, the
battery itself: instances seeded by the check's name, each failing or inconclusive one
reported with the command that reruns it, and the `infalign verify` command's exit status.
"""

from __future__ import annotations

import itertools
import json
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import betas, discrete_laws, procedures, reward_laws, transforms

import infalign_theory as ia
from infalign_theory import _independent as independent
from infalign_theory import verify as V
from infalign_theory import verify_procedures as P
from infalign_theory.cli import main


def probability_vectors(size: int) -> st.SearchStrategy[np.ndarray]:
    """Masses on ``size`` levels, each at least 1e-3, summing to one."""
    return st.lists(st.floats(1e-3, 1.0), min_size=size, max_size=size).map(
        lambda w: np.asarray(w) / np.sum(w)
    )


@st.composite
def laws_with_policies(draw, count: int = 1):
    law = draw(discrete_laws(ties=True))
    return (law, *[draw(probability_vectors(law.n_levels)) for _ in range(count)])


# -- Lemma 1 / Theorem 1 ------------------------------------------------------------------
@given(
    discrete_laws(ties=True, max_levels=5).filter(lambda law: law.n_levels >= 2),
    procedures(max_n=6),
    betas(0.05, 1.0),
    st.integers(0, 2**31),
)
@example(
    ia.DiscreteLaw([-2.0, -1.0, 1.0, 3.0], [0.0058, 0.347, 0.3014, 0.3458]),
    ia.worst_of(3),
    0.1114,
    1339405107,
)  # a level whose optimal mass is 1e-7
def test_theorem1_optimum_is_the_tilt_by_its_first_variation(law, proc, beta, seed):
    assert V.check_theorem1(law, proc, beta, seed).passed


# -- Lemmas 2 and 3, Definition 3 ---------------------------------------------------------
@given(
    reward_laws().map(lambda law: law or ia.ContinuousLaw(V._CONTINUOUS_LAWS["gumbel"])),
    st.lists(st.floats(-10, 10), min_size=2, max_size=30),
)
def test_calibration_is_bounded_and_increasing(law, rewards):
    assert V.check_calibration_monotone(law, np.asarray(rewards)).passed


@given(
    discrete_laws(ties=True),
    st.lists(st.floats(-6, 6), min_size=1, max_size=10),
    st.sampled_from(sorted(V._INCREASING)),
)
@example(ia.DiscreteLaw([0.0], [1.0]), [6.288156697385743e-83], "cube+shift")  # h merges
def test_calibration_is_invariant_under_increasing_maps(law, rewards, h):
    points = np.concatenate([law.values, rewards])
    assert V.check_calibration_invariance(law, points, h).passed


@given(laws_with_policies())
def test_standard_win_rate_is_expected_calibration(law_and_p):
    assert V.check_standard_win_rate(*law_and_p).passed


# -- model-agnosticism ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "laws, transform, beta, proc",
    [
        (["normal(0,1)", "student-t(3)", "beta(2,5)"], ia.Exponential(6.0), 0.3, ia.best_of(4)),
        (["lognormal(0.9)", "gumbel"], ia.Log(), 0.5, ia.worst_of(3)),
        (["exponential", "logistic"], ia.Identity(), 0.4, ia.order_statistic(2, 5)),
    ],
)
def test_calibrated_transforms_are_model_agnostic(laws, transform, beta, proc):
    assert V.check_model_agnostic(laws, transform, beta, proc).passed


def test_model_agnostic_check_finds_the_mass_of_a_heavy_tail():
    # Instance 282 of the former battery at seed 7: an ODE over the Student-t's 1e-15
    # quantiles stepped over all of the tilt's mass and returned a win rate of 1.8e-21.
    res = V.check_model_agnostic(["student-t(3)"], ia.Identity(), 0.49736, ia.order_statistic(2, 4))
    assert res.passed and res.residual < 1e-13


@given(
    st.sampled_from(sorted(V._CONTINUOUS_LAWS)),
    st.one_of(
        st.just(ia.Identity()),
        st.just(ia.Log()),
        st.floats(-8.0, 8.0).map(lambda t: ia.Exponential(t)),
    ),
    betas(0.15, 2.0),
    procedures(6),
)
def test_model_agnostic_check_is_conclusive_and_passes_on_its_range(law, tr, beta, proc):
    # the battery's own instance range: the reward-space quadrature reaches its accuracy
    res = V.check_model_agnostic([law], tr, beta, proc)
    assert res.status == "passed", res


@given(
    st.sampled_from(
        [
            ["normal(0,1)", "normal(0,3)"],
            ["uniform(0,1)", "beta(2,5)"],
            ["normal(0,1)", "uniform(0,1)"],
        ]
    ),
    betas(0.3, 3.0),
    procedures(6),
)
def test_raw_rewards_are_not_model_agnostic(laws, beta, proc):
    assert V.check_raw_reward_not_agnostic(laws, beta, proc).passed


# -- the frontier ---------------------------------------------------------------------------
@given(reward_laws(), transforms(), betas())
def test_no_transform_beats_the_identity_at_equal_kl(law, tr, beta):
    assert V.check_identity_optimal(law, tr, beta).passed


@given(laws_with_policies(), betas())
def test_no_policy_beats_the_identity_at_equal_kl(law_and_p, beta):
    law, p = law_and_p
    assert V.check_identity_optimal(law, p, beta).passed


@given(st.integers(2, 256))
def test_best_of_n_is_strictly_below_the_frontier(n):
    assert V.check_best_of_n_below_frontier(None, n).passed


# -- Best-of-N ------------------------------------------------------------------------------
@given(reward_laws(), st.integers(1, 64))
def test_best_of_n_kl_and_win_rate_bounds(law, n):
    assert V.check_best_of_n_kl_bound(law, n).passed
    assert V.check_best_of_n_win_rate_bound(law, n).passed


@given(discrete_laws(ties=True).filter(lambda law: law.probs[-1] > 1e-3))
def test_best_of_n_kl_tends_to_minus_log_top_mass(law):
    assert V.check_best_of_n_kl_limit(law).passed


@given(reward_laws(), st.integers(1, 8), st.integers(1, 8))
def test_best_of_a_of_best_of_b_is_best_of_ab(law, a, b):
    assert V.check_composition(law, a, b).passed


@given(st.integers(1, 64), st.integers(1, 1024))
def test_best_of_m_policy_has_best_of_n_win_rate_m_over_m_plus_one(m, n):
    assert V.check_best_of_m_win_rate(m, n).passed


@given(reward_laws(), transforms(), betas(), st.integers(1, 64))
def test_mirror_exchanges_best_and_worst_of_n(law, tr, beta, n):
    assert V.check_mirror(law, tr, beta, n).passed


# -- data processing, concavity -------------------------------------------------------------
@st.composite
def outcome_spaces(draw):
    size = draw(st.integers(3, 9))
    rewards = np.asarray(draw(st.lists(st.integers(0, 3), min_size=size, max_size=size)), float)
    return rewards, draw(probability_vectors(size)), draw(probability_vectors(size))


@given(outcome_spaces(), st.booleans())
def test_calibrated_kl_is_at_most_the_true_kl(space, spread_like_base):
    assert V.check_data_processing(*space, spread_like_base).passed


@given(laws_with_policies(count=2), st.floats(0.01, 0.99), st.integers(1, 32))
def test_win_rate_is_concave_for_best_and_convex_for_worst_of_n(law_and_ps, lam, n):
    law, p1, p2 = law_and_ps
    assert V.check_concavity(law, p1, p2, lam, n).passed


# -- independent references: every draw enumerated, closed forms --------------------------------
def order_statistic_law(p, k: int, n: int) -> np.ndarray:
    """The law of the level of the k-th smallest of n independent draws from the level
    masses p, by enumerating all len(p)^n outcomes: the definition, nothing else."""
    p = np.asarray(p, dtype=float)
    out = np.zeros(p.size)
    for draw in itertools.product(range(p.size), repeat=n):
        out[sorted(draw)[k - 1]] += math.prod(p[i] for i in draw)
    return out


def beats(a, b) -> float:
    """P(X > Y) + P(X = Y)/2 for independent levels X ~ a, Y ~ b."""
    return sum(
        a[i] * b[j] * (1.0 if i > j else 0.5 if i == j else 0.0)
        for i in range(len(a))
        for j in range(len(b))
    )


def test_the_enumeration_reference_on_a_hand_case():
    # Two equal levels: Best-of-2 puts 3/4 on the top one; Best-of-2 against Best-of-2 of
    # the same law is 1/2; Best-of-2 against one draw is 3/4 * 3/4 + 1/4 * 1/4 = 5/8.
    q = [0.5, 0.5]
    np.testing.assert_allclose(order_statistic_law(q, 2, 2), [0.25, 0.75], atol=0)
    np.testing.assert_allclose(order_statistic_law(q, 1, 2), [0.75, 0.25], atol=0)
    assert beats(order_statistic_law(q, 2, 2), order_statistic_law(q, 2, 2)) == 0.5
    assert beats(order_statistic_law(q, 2, 2), q) == 0.625


small_laws = discrete_laws(ties=True, max_levels=4)


@st.composite
def small_laws_with_policies(draw, count: int = 1):
    law = draw(small_laws)
    return (law, *[draw(probability_vectors(law.n_levels)) for _ in range(count)])


@given(small_laws_with_policies(), st.integers(1, 4))
def test_mirror_against_enumeration(law_and_p, n):
    law, p = law_and_p
    q = law.probs
    mirrored = ia.DiscreteLaw(-law.values, law.probs)  # its levels are law's, reversed
    best = order_statistic_law(p, n, n)
    worst_mirrored = order_statistic_law(p[::-1], 1, n)
    np.testing.assert_allclose(worst_mirrored, best[::-1], atol=1e-15)  # the statement
    w_best = beats(best, order_statistic_law(q, n, n))
    w_worst = beats(worst_mirrored, order_statistic_law(q[::-1], 1, n))
    assert w_best == pytest.approx(1.0 - w_worst, abs=1e-14)  # the statement
    # the library on both sides
    pol, mir = ia.DiscretePolicy(law, p), ia.DiscretePolicy(mirrored, p[::-1])
    np.testing.assert_allclose(ia.apply(ia.best_of(n), pol).probs, best, atol=1e-14)
    np.testing.assert_allclose(ia.apply(ia.worst_of(n), mir).probs, worst_mirrored, atol=1e-14)
    assert ia.win_rate(pol, ia.best_of(n)) == pytest.approx(w_best, abs=1e-14)
    assert ia.win_rate(mir, ia.worst_of(n)) == pytest.approx(w_worst, abs=1e-14)


def _win_rate_mp(cdf, k: int, n: int):
    """W_T = int_0^1 (1 - I_G(k, n-k+1)) g'(u) du by mpmath quadrature."""

    def integrand(u):
        G = cdf(u)
        g = sum(mp.binomial(n, i) * G**i * (1 - G) ** (n - i) for i in range(k, n + 1))
        return (1 - g) * u ** (k - 1) * (1 - u) ** (n - k) / mp.beta(k, n - k + 1)

    return mp.quad(integrand, [0, mp.mpf(1) / 2, 1])


@pytest.mark.parametrize("beta", [0.1, 0.7, 3.0])
@pytest.mark.parametrize("n", [2, 5])
def test_mirror_against_closed_forms(beta, n):
    # identity: G(u) = expm1(cu)/expm1(c), c = 1/beta; its mirror, the tilt by 1 - u, has
    # G(u) = expm1(-cu)/expm1(-c). log: G(u) = u^(a+1), a = 1/beta, so Best-of-n wins
    # (a+1)/(a+2) for every n; its mirror, the tilt by log(1 - u), G(u) = 1 - (1 - u)^(a+1),
    # wins 1/(a+2) under Worst-of-n (both integrals are elementary).
    with mp.workdps(20):
        c = 1 / mp.mpf(beta)
        w_best = _win_rate_mp(lambda u: mp.expm1(c * u) / mp.expm1(c), n, n)
        w_worst = _win_rate_mp(lambda u: mp.expm1(-c * u) / mp.expm1(-c), 1, n)
        kl = c * (mp.exp(c) * (c - 1) + 1) / (c * mp.expm1(c)) - mp.log(mp.expm1(c) / c)
    assert float(w_best + w_worst) == pytest.approx(1.0, abs=1e-18)  # the statement
    ident, mirror = ia.tilt(ia.Identity(), beta), ia.tilt(ia.Mirror(ia.Identity()), beta)
    assert ia.win_rate(ident, ia.best_of(n)) == pytest.approx(float(w_best), abs=1e-13)
    assert ia.win_rate(mirror, ia.worst_of(n)) == pytest.approx(float(w_worst), abs=1e-13)
    assert ia.kl(mirror) == pytest.approx(float(kl), abs=1e-13)
    a = 1 / beta
    log_t, log_mirror = ia.tilt(ia.Log(), beta), ia.tilt(ia.Mirror(ia.Log()), beta)
    assert ia.win_rate(log_t, ia.best_of(n)) == pytest.approx((a + 1) / (a + 2), abs=1e-13)
    assert ia.win_rate(log_mirror, ia.worst_of(n)) == pytest.approx(1 / (a + 2), abs=1e-13)


@given(discrete_laws(ties=True, max_levels=3), st.integers(1, 3), st.integers(1, 3))
def test_composition_against_enumeration(law, a, b):
    composed = order_statistic_law(order_statistic_law(law.probs, b, b), a, a)
    direct = order_statistic_law(law.probs, a * b, a * b)
    np.testing.assert_allclose(composed, direct, atol=1e-15)  # the statement
    base = ia.base_policy(law)
    library = ia.apply(ia.best_of(a), ia.apply(ia.best_of(b), base)).probs
    np.testing.assert_allclose(library, direct, atol=1e-14)


@pytest.mark.parametrize("a, b", [(1, 1), (2, 3), (4, 4), (7, 5)])
def test_composition_against_closed_forms(a, b):
    # Best-of-m of Uniform[0, 1] has density m u^(m-1): KL = log m - (m-1)/m, standard win
    # rate m/(m+1), and Worst-of-3 win rate 1 - int (1 - (1 - u^m)^3) 3 (1 - u)^2 du.
    m = a * b
    composed = ia.apply(ia.best_of(a), ia.apply(ia.best_of(b), ia.base_policy()))
    with mp.workdps(20):
        w_worst = _win_rate_mp(lambda u: u**m, 1, 3)
    assert ia.kl(composed) == pytest.approx(math.log(m) - (m - 1) / m, abs=1e-13)
    assert ia.standard_win_rate(composed) == pytest.approx(m / (m + 1), abs=1e-13)
    assert ia.win_rate(composed, ia.worst_of(3)) == pytest.approx(float(w_worst), abs=1e-13)


@given(small_laws_with_policies(count=2), st.floats(0.01, 0.99), st.integers(1, 4))
def test_concavity_against_enumeration(law_and_ps, lam, n):
    law, p1, p2 = law_and_ps
    q = law.probs
    mix = lam * p1 + (1 - lam) * p2
    for k, sign in ((n, 1.0), (1, -1.0)):  # Best-of-n concave, Worst-of-n convex
        ref = order_statistic_law(q, k, n)
        w1, w2, wm = (beats(order_statistic_law(p, k, n), ref) for p in (p1, p2, mix))
        assert sign * (wm - lam * w1 - (1 - lam) * w2) >= -1e-15  # the statement
        proc = ia.order_statistic(k, n)
        for p, w in ((p1, w1), (p2, w2), (mix, wm)):
            assert ia.win_rate(ia.DiscretePolicy(law, p), proc) == pytest.approx(w, abs=1e-14)


@given(small_laws_with_policies(), procedures(4))
def test_theorem1_objective_against_enumeration(law_and_p, proc):
    law, p = law_and_p
    ref = beats(
        order_statistic_law(p, proc.k, proc.n), order_statistic_law(law.probs, proc.k, proc.n)
    )
    assert V.objective_by_definition(law, p, proc, 0.0) == pytest.approx(ref, abs=1e-14)
    kl = float(np.sum(p * np.log(p / law.probs)))
    value = V.objective_by_definition(law, p, proc, 0.3)
    assert value == pytest.approx(ref - 0.3 * kl, abs=1e-14)


# -- every check can fail ----------------------------------------------------------------------
LAW = ia.DiscreteLaw([0.0, 1.0, 1.0, 2.0, 3.0], [0.3, 0.1, 0.2, 0.25, 0.15])


def test_theorem1_fails_for_a_wrong_first_variation(monkeypatch):
    original = V.first_variation
    monkeypatch.setattr(V, "first_variation", lambda *a: 1.2 * original(*a))
    assert not V.check_theorem1(LAW, ia.best_of(3), 0.2).passed


def test_calibration_checks_fail_for_a_wrong_calibration(monkeypatch):
    monkeypatch.setattr(V, "calibrate", lambda law, r: 1.0 - ia.calibrate(law, r))
    assert not V.check_calibration_monotone(LAW, np.linspace(-1, 4, 11)).passed
    monkeypatch.setattr(V, "calibrate", lambda law, r: ia.calibrate(law, r) + 1e-9 * np.asarray(r))
    assert not V.check_calibration_invariance(LAW, LAW.values, "exp").passed


def test_standard_win_rate_check_fails_for_a_midpoint_off_by_a_little(monkeypatch):
    monkeypatch.setattr(V, "standard_win_rate", lambda pol: ia.standard_win_rate(pol) + 1e-12)
    assert not V.check_standard_win_rate(LAW, LAW.probs).passed


def test_model_agnostic_check_fails_when_calibrated_space_is_off(monkeypatch):
    monkeypatch.setattr(V, "tilt", lambda tr, beta: ia.tilt(tr, beta * (1 + 1e-5)))
    assert not V.check_model_agnostic(["gumbel"], ia.Exponential(3.0), 0.5, ia.best_of(2)).passed


def test_raw_reward_check_fails_when_the_laws_coincide():
    assert not V.check_raw_reward_not_agnostic(
        ["normal(0,1)", "normal(0,1)"], 0.5, ia.best_of(4)
    ).passed


def test_identity_check_fails_when_the_frontier_is_another_transform(monkeypatch):
    monkeypatch.setattr(V, "Identity", ia.Log)
    assert not V.check_identity_optimal(None, ia.Identity(), 0.3).passed


def test_frontier_check_fails_for_a_policy_on_the_frontier(monkeypatch):
    def on_frontier(procedure, policy):
        target = ia.kl(ia.apply(procedure, policy))
        return ia.tilt(ia.Identity(), ia.beta_for_kl(ia.Identity(), target))

    monkeypatch.setattr(V, "apply", on_frontier)
    assert not V.check_best_of_n_below_frontier(None, 4).passed


def test_best_of_n_checks_fail_for_a_slightly_wrong_kl_or_win_rate(monkeypatch):
    monkeypatch.setattr(V, "kl", lambda pol: ia.kl(pol) * (1 + 1e-9))
    assert not V.check_best_of_n_kl_bound(None, 8).passed
    assert not V.check_best_of_n_kl_limit(LAW).passed
    monkeypatch.setattr(V, "standard_win_rate", lambda pol: ia.standard_win_rate(pol) + 1e-9)
    assert not V.check_best_of_n_win_rate_bound(None, 8).passed


def test_composition_check_fails_for_the_second_best_of_n(monkeypatch):
    monkeypatch.setattr(V, "best_of", lambda n: ia.order_statistic(max(1, n - 1), n))
    assert not V.check_composition(LAW, 3, 2).passed
    assert not V.check_composition(None, 3, 2).passed


def test_best_of_m_check_fails_for_a_slightly_wrong_beta(monkeypatch):
    monkeypatch.setattr(V, "tilt", lambda tr, beta: ia.tilt(tr, beta * (1 + 1e-6)))
    assert not V.check_best_of_m_win_rate(3, 4).passed


def test_mirror_check_fails_without_the_mirror(monkeypatch):
    monkeypatch.setattr(V, "Mirror", lambda tr: tr)
    assert not V.check_mirror(None, ia.Exponential(5.0), 0.3, 4).passed


def test_data_processing_check_fails_for_an_inflated_calibrated_kl(monkeypatch):
    monkeypatch.setattr(V, "kl", lambda pol: ia.kl(pol) + 1e-9)
    rewards, q = np.array([0.0, 1.0, 1.0, 2.0]), np.array([0.1, 0.2, 0.3, 0.4])
    assert not V.check_data_processing(rewards, q, np.array([0.4, 0.1, 0.1, 0.4]), True).passed


def test_concavity_check_fails_when_the_roles_are_swapped(monkeypatch):
    monkeypatch.setattr(V, "best_of", ia.worst_of)
    p1, p2 = np.array([0.6, 0.1, 0.1, 0.2]), np.array([0.05, 0.15, 0.2, 0.6])
    law = ia.DiscreteLaw([0.0, 1.0, 2.0, 3.0], [0.25] * 4)
    assert not V.check_concavity(law, p1, p2, 0.5, 4).passed


# -- the battery ---------------------------------------------------------------------------------
def test_run_checks_reports_every_check_with_its_instances():
    names = ["best_of_n_kl_bound", "mirror_best_worst", "model_agnostic_calibrated"]
    out = V.run_checks(examples=2, seed=3, names=names)
    assert [s.name for s in out] == names  # every check runs the instances asked for
    assert all(s.instances == 2 and s.status == "passed" for s in out)
    with pytest.raises(ValueError, match="unknown check"):
        V.run_checks(names=["nope"])


@pytest.fixture
def flaky_kl_bound(monkeypatch):
    """best_of_n_kl_bound made to fail for n divisible by 5 and to be inconclusive for n
    divisible by 7; returns the n of every instance it is called on, in order."""
    calls: list[int] = []
    original = V.CHECKS["best_of_n_kl_bound"]

    def check(law, n):
        calls.append(n)
        res = original(law, n)
        if n % 5 == 0:
            return V._result(res.name, 1.0, res.tolerance)
        if n % 7 == 0:
            return V._result(res.name, 1.0, res.tolerance, "made inconclusive")
        return res

    monkeypatch.setitem(V.CHECKS, "best_of_n_kl_bound", check)
    return calls


def test_each_failing_or_inconclusive_instance_is_reproduced_by_its_command(flaky_kl_bound):
    name = "best_of_n_kl_bound"
    (summary,) = V.run_checks(examples=40, seed=11, names=[name])
    drawn = list(flaky_kl_bound)
    assert summary.status == "failed"
    assert [r.index for r in summary.failures] == [i for i, n in enumerate(drawn) if n % 5 == 0]
    assert [r.index for r in summary.inconclusive] == [
        i for i, n in enumerate(drawn) if n % 7 == 0 and n % 5 != 0
    ]
    assert summary.failures and summary.inconclusive  # the seed draws both kinds
    for report in summary.failures + summary.inconclusive:
        assert report.parameters["n"] == drawn[report.index]
        command = f"infalign verify --check {name} --seed 11 --instance {report.index}"
        assert report.command == command
        flaky_kl_bound.clear()
        (again,) = V.run_checks(seed=11, names=[name], instance=report.index)
        assert flaky_kl_bound == [drawn[report.index]] and again.status == report.status
    # The conclusive instances decide max_residual; the JSON is strict JSON.
    data = summary.to_dict()
    assert data["failed"] == len(summary.failures) and data["max_residual"] == 1.0
    assert data["inconclusive"] == len(summary.inconclusive)
    assert data["failures"][0]["command"] == summary.failures[0].command
    json.dumps(data, allow_nan=False)


def test_instances_depend_on_the_check_name_not_its_position(flaky_kl_bound):
    V.run_checks(examples=5, seed=4, names=["best_of_n_kl_bound"])
    alone = list(flaky_kl_bound)
    flaky_kl_bound.clear()
    V.run_checks(examples=5, seed=4, names=["best_of_n_win_rate_bound", "best_of_n_kl_bound"])
    assert flaky_kl_bound == alone
    flaky_kl_bound.clear()
    V.run_checks(examples=3, seed=4, names=["best_of_n_kl_bound"])
    assert flaky_kl_bound == alone[:3]  # fewer instances: the same first ones


def test_a_check_that_cannot_reach_its_accuracy_is_inconclusive_not_failed(monkeypatch):
    # Two-node panels: the two quadrature rules disagree, so the check says so.
    monkeypatch.setattr(independent, "_RULES", (2, 24))
    res = V.check_model_agnostic(["gumbel"], ia.Exponential(3.0), 0.5, ia.best_of(2))
    assert res.status == "inconclusive" and "quadrature" in res.inconclusive
    # An optimiser that stops short of stationarity: inconclusive, not a failure.
    direct = V.maximise_directly

    def short(law, procedure, beta, rng):
        p, _ = direct(law, procedure, beta, rng)
        p = 0.999 * p + 0.001 * law.probs
        return p, V.objective_by_definition(law, p, procedure, beta)

    monkeypatch.setattr(V, "maximise_directly", short)
    res = V.check_theorem1(LAW, ia.best_of(3), 0.2)
    assert res.status == "inconclusive" and "stationarity" in res.inconclusive


def test_verify_command_exit_status_and_streams(capsys, flaky_kl_bound):
    # a failure: exit 1, the rerun command on stdout, progress on stderr only
    code = main(["verify", "--check", "best_of_n_kl_bound", "--examples", "12", "--seed", "11"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "infalign verify --check best_of_n_kl_bound --seed 11 --instance" in out
    assert "[1/1] best_of_n_kl_bound: 12 instances" in err
    # --json stays clean: stdout is exactly the JSON
    code = main(["verify", "--check", "best_of_n_win_rate_bound", "--examples", "3", "--json"])
    out, err = capsys.readouterr()
    (data,) = json.loads(out)
    assert code == 0 and data["status"] == "passed" and data["instances"] == 3
    assert "best_of_n_win_rate_bound" in err


def test_verify_command_passes_with_a_warning_on_inconclusive_instances(capsys, monkeypatch):
    def inconclusive(law, n):
        return V._result("best_of_n_kl_bound", 0.0, 1e-12, "made inconclusive")

    monkeypatch.setitem(V.CHECKS, "best_of_n_kl_bound", inconclusive)
    code = main(["verify", "--check", "best_of_n_kl_bound", "--instance", "4", "--seed", "2"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "inconclusive best_of_n_kl_bound instance 4: made inconclusive" in out
    assert "rerun: infalign verify --check best_of_n_kl_bound --seed 2 --instance 4" in out
    assert "warning: 1 instances were inconclusive" in err


# -- Theorem 1 for the procedures beyond order statistics ----------------------------------------
_LAW3 = ia.DiscreteLaw([0.0, 1.0, 1.0, 2.0, 3.0], [0.3, 0.1, 0.2, 0.25, 0.15])  # a tie


@pytest.mark.parametrize(("kind", "parameter"), [("soft", 0.3), ("threshold", 0.6)])
def test_theorem1_procedures_check_passes_on_a_discrete_law(kind, parameter):
    residual, tolerance = P.check_theorem1_procedures(_LAW3, kind, 3, parameter, 0.6, (2.0, 8.0))
    assert residual <= tolerance == 1e-9


def test_theorem1_procedures_check_fails_for_a_wrong_first_variation(monkeypatch):
    # the solver's R off by 0.05 u^2: its fixed point is then off the stationary point of
    # the enumeration's W_T - beta KL
    from infalign_theory.procedures import SoftBestOf

    original = SoftBestOf.level_variation

    def wrong(self, probs, midpoints, weights):
        return original(self, probs, midpoints, weights) + 0.05 * midpoints[0] ** 2

    monkeypatch.setattr(SoftBestOf, "level_variation", wrong)
    residual, tolerance = P.check_theorem1_procedures(_LAW3, "soft", 3, 0.3, 0.6, (2.0,))
    assert residual > 100 * tolerance


def test_theorem1_procedures_check_passes_on_the_continuous_law():
    # threshold sampling (a jump in R at tau) through the library's W_T and KL along tilts
    residual, tolerance = P.check_theorem1_procedures(None, "threshold", 3, 0.23, 0.5, (3.0,))
    assert residual <= tolerance == 1e-7


def test_theorem1_procedures_instances_cover_both_kinds_and_laws():
    seen = set()
    for i in range(40):
        params = V._instances("procedures_theorem1_optimum", V.instance_rng("x", 0, i))
        seen.add((params["kind"], params["law"] is None))
    assert seen == {("soft", True), ("soft", False), ("threshold", True), ("threshold", False)}


@pytest.mark.parametrize(
    "values, probs, n, lam, tau",
    [
        ([-1.0, 0.0, 2.0], [0.3, 0.5, 0.2], 4, 0.2, 0.5),
        # rare outcomes (mass 1e-5 to 1e-8) that a 20,000-draw simulation may miss or hit once;
        # a sample's own spread made these thousands of standard errors (verify, seed 7)
        ([-3.0, 4.0], [0.2633431783298293, 0.7366568216701708], 8, 0.12869184457936986, 0.635),
        ([3.0, 4.0], [0.19961277049431056, 0.8003872295056895], 7, 0.02130142740384509, 0.957),
        ([-4.0, 0.0], [0.10180712013811541, 0.8981928798618846], 8, 0.04389269013223549, 0.898),
    ],
)
def test_monte_carlo_check_passes_and_catches_a_wrong_exact_value(
    values, probs, n, lam, tau, monkeypatch
):
    law = ia.DiscreteLaw(values, probs)
    residual, tolerance = P.check_monte_carlo(law, n, lam, tau, rng=1161298722)
    assert residual <= tolerance
    true = P.standard_win_rate
    monkeypatch.setattr(P, "standard_win_rate", lambda pol: true(pol) + 0.01)
    residual, tolerance = P.check_monte_carlo(law, n, lam, tau, rng=1161298722)
    assert residual > tolerance
