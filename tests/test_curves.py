"""Solving for beta at a target KL, and trade-off curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cases import DISCRETE_LAWS
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats
from strategies import discrete_laws, reward_laws, transforms

import infalign_theory as ia


@given(transforms(), st.floats(1e-6, 5.0), reward_laws())
@example(ia.Identity(), 1.0, ia.DiscreteLaw([0.0], [1.0]))  # one level: KL is always 0
def test_beta_for_kl_round_trips(tr, target, law):
    if law is not None and target >= ia.kl_limit(tr, law):
        with pytest.raises(ValueError, match="kl must be in|kl is 0 for every beta"):
            ia.beta_for_kl(tr, target, law=law)
        return
    beta = ia.beta_for_kl(tr, target, law=law)
    assert ia.kl(ia.tilt(tr, beta, law)) == pytest.approx(target, rel=1e-11)


@pytest.mark.parametrize("target", [1e-12, 1e-3, 1.0, 20.0, 200.0])
def test_beta_for_kl_over_a_wide_range(target):
    beta = ia.beta_for_kl(ia.Identity(), target)
    assert ia.kl(ia.tilt(ia.Identity(), beta)) == pytest.approx(target, rel=1e-11)


def test_slowly_saturating_transform_still_solves():
    # exp(t = -50) reaches KL 0.5 only at beta ~ 2e-9: Phi is within e^-25 of 1 on [1/2, 1].
    beta = ia.beta_for_kl(ia.Exponential(-50.0), 0.5)
    assert beta == pytest.approx(1.84e-9, rel=0.01)
    assert ia.kl(ia.tilt(ia.Exponential(-50.0), beta)) == pytest.approx(0.5, rel=1e-11)


def test_out_of_reach_targets_are_refused_with_the_limit():
    law = DISCRETE_LAWS["three-levels"]
    # The top level has mass 0.2: the KL of any tilt is below -log 0.2.
    assert ia.kl_limit(ia.Identity(), law) == pytest.approx(-math.log(0.2))
    with pytest.raises(ValueError, match=r"kl must be in \(0, 1.6094379124"):
        ia.beta_for_kl(ia.Identity(), 2.0, law=law)
    flat_top = ia.Custom(lambda u: np.minimum(u, 0.9), "flat-top")  # limit -log 0.1 = 2.30
    with pytest.raises(ValueError, match="out of reach"):
        ia.beta_for_kl(flat_top, 3.0)
    assert ia.kl(ia.tilt(flat_top, ia.beta_for_kl(flat_top, 2.0))) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="constant"):
        ia.beta_for_kl(ia.Custom(lambda u: 0 * u, "zero"), 0.1)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="kl must be a finite"):
            ia.beta_for_kl(ia.Identity(), bad)


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1e30, 1e250])
def test_raw_rewards_on_any_scale_reach_their_kl(scale):
    # Found in review: rewards on a scale of 1e-200 were called "constant" because the
    # search for beta started at 1, where their KL underflows to 0. Raw Gaussian rewards
    # N(0, s^2) tilt to N(s^2/beta, s^2): KL = s^2 / (2 beta^2), so beta = s / sqrt(2 KL).
    law = ia.DiscreteLaw([0.0, scale], [0.5, 0.5])
    beta = ia.beta_for_kl(ia.Quantile(law), 0.1, law=law)
    assert ia.kl(ia.tilt(ia.Quantile(law), beta, law)) == pytest.approx(0.1, rel=1e-9)
    gauss = ia.Quantile(ia.ContinuousLaw(stats.norm(0.0, scale)))
    assert ia.beta_for_kl(gauss, 1.0) == pytest.approx(scale / math.sqrt(2.0), rel=1e-9)


@given(discrete_laws(ties=True), transforms())
def test_discrete_curves_increase_in_kl(law, tr):
    limit = ia.kl_limit(tr, law)
    kls = np.linspace(0.0, 0.95 * limit, 6) if limit > 0 else [0.0]
    curve = ia.tradeoff_curve(tr, ia.best_of(2), law=law, kls=kls)
    assert np.all(np.diff(curve.kl) > -1e-12)
    assert np.all(np.diff(curve.standard_win_rate) > -1e-12)


def test_curve_over_kls_and_betas_agree():
    tr, proc = ia.Exponential(10.0), ia.worst_of(4)
    by_kl = ia.tradeoff_curve(tr, proc, kls=[0.0, 0.5, 1.0, 2.0])
    assert by_kl.beta[0] == math.inf and by_kl.kl[0] == 0.0
    assert by_kl.win_rate[0] == pytest.approx(0.5, abs=1e-15)
    by_beta = ia.tradeoff_curve(tr, proc, betas=by_kl.beta[1:])
    np.testing.assert_allclose(by_beta.kl, [0.5, 1.0, 2.0], rtol=1e-11)
    np.testing.assert_allclose(by_beta.win_rate, by_kl.win_rate[1:], atol=1e-14)
    d = by_kl.to_dict()
    assert d["beta"][0] is None and d["procedure"] == "worst-of-4" and len(d["kl"]) == 4


def test_curve_arguments_are_checked():
    tr, proc = ia.Identity(), ia.best_of(2)
    with pytest.raises(ValueError, match="exactly one of betas and kls"):
        ia.tradeoff_curve(tr, proc)
    with pytest.raises(ValueError, match="betas must be a non-empty list of numbers > 0"):
        ia.tradeoff_curve(tr, proc, betas=[1.0, -1.0])
    with pytest.raises(ValueError, match="kls must be a non-empty list of finite numbers >= 0"):
        ia.tradeoff_curve(tr, proc, kls=[math.nan])
    with pytest.raises(ValueError, match="against must be one of"):
        ia.tradeoff_curve(tr, proc, kls=[1.0], against="base")


def test_kl_limit_tells_apart_levels_whose_phi_round_to_one():
    # Exponential(-100) is within 1e-21 of 1 on the two upper levels: still distinct.
    law = ia.DiscreteLaw([0, 1, 2], [1 / 3] * 3)
    assert ia.kl_limit(ia.Exponential(-100.0), law) == pytest.approx(math.log(3))
    beta = ia.beta_for_kl(ia.Exponential(-100.0), 1.0, law=law)
    assert ia.kl(ia.tilt(ia.Exponential(-100.0), beta, law)) == pytest.approx(1.0, rel=1e-11)


@pytest.mark.parametrize("target", [0.41, 0.7])
def test_beta_for_kl_crosses_plateaus_on_discrete_laws(target):
    # KL(beta) is flat over decades of beta for exp(t=-60) on three levels.
    law = ia.DiscreteLaw([0, 1, 2], [1 / 3] * 3)
    beta = ia.beta_for_kl(ia.Exponential(-60.0), target, law=law)
    assert ia.kl(ia.tilt(ia.Exponential(-60.0), beta, law)) == pytest.approx(target, rel=1e-11)


@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4)])
def test_best_exponent_is_a_local_maximum_below_the_optimum(proc):
    from infalign_theory.optimal import solve_optimal

    t, w = ia.best_exponent(proc, 1.0)
    assert (t > 0) == (proc.k == proc.n)

    def value(s):
        tr = ia.Exponential(s)
        return ia.win_rate(ia.tilt(tr, ia.beta_for_kl(tr, 1.0)), proc)

    assert w == pytest.approx(value(t), abs=1e-12)
    assert w >= value(1.05 * t) and w >= value(t / 1.05)
    assert w <= solve_optimal(proc, kl=1.0).win_rate + 1e-12


def test_best_exponent_refuses_bad_input():
    with pytest.raises(ValueError, match="kl must be a finite number > 0"):
        ia.best_exponent(ia.best_of(4), 0.0)
    with pytest.raises(ValueError, match="procedure must be a Procedure"):
        ia.best_exponent("bon", 1.0)


def test_curve_has_a_length_and_iterates_over_rows():
    curve = ia.tradeoff_curve(ia.Identity(), ia.best_of(4), kls=[0.0, 0.5, 1.0])
    assert len(curve) == 3
    rows = list(curve)
    assert [r.kl for r in rows] == curve.kl.tolist()
    assert [r.win_rate for r in rows] == curve.win_rate.tolist()
    assert [r.standard_win_rate for r in rows] == curve.standard_win_rate.tolist()
    assert rows[0].beta == math.inf and rows[1].beta == curve.beta[1]
