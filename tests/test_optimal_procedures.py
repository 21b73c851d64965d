"""Theorem 1 for procedures beyond order statistics: soft Best-of-n and threshold sampling.

The optimum is checked against every competitor the library offers at equal KL (the identity
and exp(t) tilts), its first variation against finite differences of the win rate computed
by the library's decoded masses (an independent route: no derivative is taken there), and its
limits against the order-statistic solver.
"""

import numpy as np
import pytest

import infalign_theory as ia
from infalign_theory.calibration import level_midpoints
from infalign_theory.optimal import pareto_frontier, solve_optimal

LAW = ia.DiscreteLaw(np.arange(5.0), np.array([0.3, 0.25, 0.2, 0.15, 0.1]))
KL = 0.5
TILTS = [ia.Identity()] + [ia.Exponential(t) for t in (-3.0, 1.0, 3.0, 6.0, 10.0)]


def _competitors(procedure, law):
    for tr in TILTS:
        beta = ia.beta_for_kl(tr, KL, law=law)
        yield tr.name, ia.win_rate(ia.tilt(tr, beta, law), procedure)


@pytest.mark.parametrize(
    "procedure",
    [
        ia.soft_best_of(4, 0.05),
        ia.soft_best_of(4, 0.3),
        ia.threshold_sampling(4, 0.5),
        ia.threshold_sampling(3, 0.8),
    ],  # fmt: skip
    ids=lambda p: p.name,
)
def test_discrete_optimum_beats_tilts(procedure):
    sol = solve_optimal(procedure, kl=KL, law=LAW)
    assert sol.converged and sol.residual < 1e-10
    assert abs(sol.kl - KL) < 1e-9
    for name, w in _competitors(procedure, LAW):
        assert sol.win_rate >= w - 1e-12, name


@pytest.mark.parametrize(
    "procedure", [ia.soft_best_of(4, 0.2), ia.threshold_sampling(4, 0.6)], ids=lambda p: p.name
)
def test_continuous_optimum_beats_tilts(procedure):
    sol = solve_optimal(procedure, kl=KL)
    assert sol.converged and sol.residual < 1e-10
    assert abs(sol.kl - KL) < 1e-8
    for name, w in _competitors(procedure, None):
        assert sol.win_rate >= w - 1e-10, name


@pytest.mark.parametrize(
    "procedure",
    [ia.soft_best_of(3, 0.2), ia.soft_best_of(5, 0.01), ia.threshold_sampling(4, 0.5),
     ia.best_of(3), ia.cdf_map(lambda F: (F + F**2) / 2, lambda F: (1 + 2 * F) / 2)],
    ids=lambda p: p.name,
)  # fmt: skip
def test_level_variation_matches_differences(procedure):
    """R_i - E_p R against central differences of W_T along e_i - p (step 1e-6)."""
    rng = np.random.default_rng(7)
    law = ia.DiscreteLaw(np.arange(6.0), rng.dirichlet(np.ones(6)))
    mid = level_midpoints(law)
    p = rng.dirichlet(np.ones(6))
    b = ia.apply(procedure, ia.base_policy(law)).probs
    B = np.cumsum(b)
    c = 0.5 * (B + np.concatenate([[0.0], B[:-1]]))
    R = procedure.level_variation(p, mid, c)
    for i in range(6):
        h = 1e-6
        e = -p * h
        e[i] += h
        wins = [ia.win_rate(ia.DiscretePolicy(law, p + sgn * e), procedure) for sgn in (1, -1)]
        assert abs((wins[0] - wins[1]) / (2 * h) - (R[i] - p @ R)) < 1e-8


@pytest.mark.parametrize("procedure", [ia.soft_best_of(3, 0.2), ia.threshold_sampling(3, 0.4)],
                         ids=lambda p: p.name)  # fmt: skip
def test_continuous_optimum_is_stationary(procedure):
    """First-order condition by finite differences of the library's W_T and KL (no first
    variation used): along the tilt by R + eps sin(3u), dW_T/deps = beta dKL/deps at eps = 0."""
    sol = solve_optimal(procedure, beta=0.5)
    eps = 1e-4

    def moved(e):
        tr = ia.Custom(lambda u: sol.transform(u) + e * np.sin(3 * u), f"moved {e}")
        pol = ia.tilt(tr, sol.beta)
        return ia.win_rate(pol, procedure), ia.kl(pol)

    (w1, k1), (w0, k0) = moved(eps), moved(-eps)
    dw, dk = (w1 - w0) / (2 * eps), (k1 - k0) / (2 * eps)
    assert abs(dk) > 1e-3  # the direction moves the policy
    assert abs(dw - sol.beta * dk) < 1e-6


def test_soft_cold_limit_is_best_of():
    gap = float(np.min(np.diff(level_midpoints(LAW)[0])))
    soft = solve_optimal(ia.soft_best_of(4, gap / 200.0), kl=KL, law=LAW)
    bon = solve_optimal(ia.best_of(4), kl=KL, law=LAW)
    assert abs(soft.win_rate - bon.win_rate) < 1e-10
    assert np.max(np.abs(soft.policy.probs - bon.policy.probs)) < 1e-8


@pytest.mark.parametrize("law", [LAW, None], ids=["discrete", "continuous"])
def test_threshold_one_is_best_of(law):
    thr = solve_optimal(ia.threshold_sampling(4, 1.0), kl=KL, law=law)
    bon = solve_optimal(ia.best_of(4), kl=KL, law=law)
    assert abs(thr.win_rate - bon.win_rate) < 1e-9


def test_frontier_for_threshold():
    curve = pareto_frontier(ia.threshold_sampling(4, 0.5), [0.0, 0.2, 0.5], law=LAW)
    assert curve.win_rate[0] == pytest.approx(0.5, abs=1e-12)
    assert np.all(np.diff(curve.win_rate) > 0)


@pytest.mark.parametrize(
    "kwargs",
    [dict(beta=-1.0), dict(kl=0.0), dict(kl=float("nan")), dict(beta=1.0, kl=1.0), dict(),
     dict(kl=50.0, law=LAW), dict(kl=1.0, against="both")],
)  # fmt: skip
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        solve_optimal(ia.threshold_sampling(4, 0.5), **kwargs)


def test_invalid_procedure_and_temperature():
    with pytest.raises(ValueError, match="temperature"):
        solve_optimal(ia.soft_best_of(4, 1e-3), kl=0.5)
    with pytest.raises(ValueError, match="procedure"):
        solve_optimal("best", kl=0.5)
