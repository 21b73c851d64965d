"""The theory, stated as hypothesis properties over generated instances (see verify.py).

Each property runs one check of `infalign_theory.verify` on generated reward laws,
procedures, transforms and betas. The second half perturbs the library (a subtly wrong
calibration, first variation, composition, ...) and shows that each check then fails: none
of them can pass vacuously.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import betas, discrete_laws, procedures, reward_laws, transforms

import infalign_theory as ia
from infalign_theory import verify as V


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
@settings(max_examples=12)
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


def test_run_checks_reports_every_check_with_its_instances():
    names = ["best_of_n_kl_bound", "mirror_best_worst", "model_agnostic_calibrated"]
    out = V.run_checks(examples=2, seed=3, names=names)
    assert [s.name for s in out] == names  # every check runs the instances asked for
    assert all(s.instances == 2 and s.passed for s in out)
    with pytest.raises(ValueError, match="unknown check"):
        V.run_checks(names=["nope"])
