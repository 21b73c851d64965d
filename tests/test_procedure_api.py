"""The procedure abstraction: every procedure through the same metrics, apply and CDF maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import discrete_laws

import infalign_theory as ia

LAW = ia.DiscreteLaw([0.0, 1.0, 1.0, 2.0, 4.0], [0.3, 0.1, 0.2, 0.25, 0.15])
PROCEDURES = [
    ia.best_of(4),
    ia.worst_of(3),
    ia.soft_best_of(4, 0.1),
    ia.threshold_sampling(4, 0.6),
    ia.cdf_map(lambda F: F**3, lambda F: 3 * F**2, name="cubed"),
]


@pytest.mark.parametrize("procedure", PROCEDURES, ids=lambda p: p.name)
@pytest.mark.parametrize("law", [None, LAW], ids=["continuous", "discrete"])
def test_base_against_itself_is_one_half_and_apply_metrics(procedure, law):
    base = ia.base_policy(law)
    assert ia.win_rate(base, procedure) == pytest.approx(0.5, rel=0, abs=1e-12)
    decoded = ia.apply(procedure, base)
    # W(T(pi_ref) ≻ pi_ref) = E[C] under T(pi_ref) (DESIGN §2) and KL >= 0
    assert ia.win_rate(base, procedure, against="sample") == pytest.approx(
        ia.standard_win_rate(decoded), rel=0, abs=1e-12
    )
    assert ia.kl(decoded) >= 0.0


def test_cdf_map_equals_order_statistic():
    bon = ia.cdf_map(lambda F: F**4, lambda F: 4 * F**3)
    derived = ia.cdf_map(lambda F: F**4)  # g' by finite differences
    for law in (None, LAW):
        pol = ia.tilt(ia.Exponential(2.0), 0.5, law)
        ref = ia.win_rate(pol, ia.best_of(4))
        assert ia.win_rate(pol, bon) == pytest.approx(ref, rel=0, abs=1e-12)
        assert ia.win_rate(pol, derived) == pytest.approx(ref, rel=0, abs=1e-10)


def test_user_subclass_of_procedure():
    class Mixture(ia.Procedure):
        """Best-of-2 with probability 1/2, else one sample -- written by hand."""

        n = 2
        name = "mixture"

        def level_masses(self, probs, midpoints):
            P = np.concatenate([[0.0], np.cumsum(probs)])
            return np.diff(0.5 * (P + P**2))

        def log_factor(self, policy):
            return lambda u, s: np.log(0.5 + policy.cdf(u))

    mix = Mixture()
    via_map = ia.cdf_map(lambda F: (F + F**2) / 2, lambda F: 0.5 + F)
    for law in (None, LAW):
        pol = ia.tilt(ia.Identity(), 0.4, law)
        assert ia.win_rate(pol, mix) == pytest.approx(ia.win_rate(pol, via_map), abs=1e-12)


@pytest.mark.parametrize(
    ("g", "message"),
    [(lambda F: F**2 + 0.1, "g\\(0\\) = 0"), (lambda F: np.sin(3 * F) / np.sin(3), "increasing"),
     (lambda F: F * np.nan, "finite")],
)  # fmt: skip
def test_cdf_map_validation(g, message):
    with pytest.raises(ValueError, match=message):
        ia.cdf_map(g)


def test_metrics_refuse_a_non_procedure():
    with pytest.raises(ValueError, match="procedure"):
        ia.win_rate(ia.base_policy(), "best-of-4")
    with pytest.raises(ValueError, match="procedure"):
        ia.apply(4, ia.base_policy())


@settings(max_examples=30, deadline=None)
@given(
    law=discrete_laws(ties=True, max_levels=6),
    n=st.integers(1, 8),
    lam=st.floats(-3.0, 2.0).map(lambda x: 10.0**x),
    tau=st.floats(0.0, 1.0),
    beta=st.floats(0.1, 5.0),
)
def test_properties_on_discrete_laws(law, n, lam, tau, beta):
    pol = ia.tilt(ia.Identity(), beta, law)
    for proc in (ia.soft_best_of(n, lam), ia.threshold_sampling(n, tau)):
        masses = ia.apply(proc, pol).probs
        assert masses.sum() == pytest.approx(1.0, abs=1e-12)
        # every procedure here picks a best-of-n-or-better law's stochastic ordering:
        # sampling <= T <= Best-of-n in E[C]
        e = ia.standard_win_rate(ia.apply(proc, pol))
        assert ia.standard_win_rate(pol) - 1e-12 <= e
        assert e <= ia.standard_win_rate(ia.apply(ia.best_of(n), pol)) + 1e-12
    # more draws never hurt soft Best-of-n's E[C]
    e_n = ia.standard_win_rate(ia.apply(ia.soft_best_of(n, lam), pol))
    e_n1 = ia.standard_win_rate(ia.apply(ia.soft_best_of(n + 1, lam), pol))
    assert e_n1 >= e_n - 1e-12
