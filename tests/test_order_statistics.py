"""Order statistics at every size and in every branch, against independent values.

The CDF map g(F) = I_F(k, n-k+1) and its density g' against 50-digit mpmath (binomial sums
and log-gamma, tests/reference.py), up to n = 10**6; win rates of Best-of-N, Worst-of-N and
interior order statistics for N up to 1024 in both branches of the continuous engine (integer
powers for N <= 64, logarithms above) and on discrete laws, against closed forms and the
mpmath values of tests/data/reference_corners.json (tests/make_corners.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from reference import (
    Tilt,
    binomial_tail,
    discrete_win_rate,
    order_density,
    power_policy_win_rate,
)

import infalign_theory as ia
from infalign_theory import _kernels as K

CORNERS = json.loads((Path(__file__).parent / "data" / "reference_corners.json").read_text())

#: (k, n) from small to a million, with the pair reported in the issue tracker.
CDF_CASES = [
    (2, 3), (3, 17), (50, 100), (147, 1024), (512, 1024), (1023, 1024), (1429, 10_000),
    (50_000, 100_000), (99_999, 100_000), (142_857, 10**6), (500_000, 10**6), (999_999, 10**6),
    # either side of the short-tail sums (scipy's betainc loses 1e-11 at (2, 10**6))
    (2, 10**6), (10, 10**6), (50, 10**6), (51, 10**6), (999_950, 10**6), (999_990, 10**6),
]  # fmt: skip


def _points(k: int, n: int) -> np.ndarray:
    """F at -5 .. +5 standard deviations of the Beta(k, n-k+1) law, inside (0, 1)."""
    mu = (k - 0.5) / n
    sd = math.sqrt(mu * (1 - mu) / n)
    return np.clip(mu + sd * np.array([-5.0, -2.0, -0.7, 0.0, 0.4, 1.5, 4.0]), 1e-300, 1 - 2**-53)


@pytest.mark.parametrize("k, n", CDF_CASES, ids=lambda v: str(v))
def test_cdf_map_pair_against_exact_binomial_sums(k, n):
    # Both members of the pair (g, 1 - g) to relative precision: the smaller one is the one
    # a win rate near 0 or 1 needs.
    compared = 0
    for F in _points(k, n):
        g, gc = K.cdf_map(k, n, F, 1.0 - F)
        ref, refc = binomial_tail(k, n, F)
        assert g == pytest.approx(float(ref), rel=2e-12, abs=1e-300)
        assert gc == pytest.approx(float(refc), rel=2e-12, abs=1e-300)
        compared += 1
    assert compared == 7


def test_cdf_map_at_the_reported_point():
    # I_F(347633, 582843) at F = 0.3736946027897617: 0.568852739634298 by the exact binomial
    # sum (the kernels once gave 0.568852741182231).
    F = 0.3736946027897617
    g, gc = K.cdf_map(347633, 930475, F, 1.0 - F)
    ref, refc = binomial_tail(347633, 930475, F)
    assert float(ref) == pytest.approx(0.568852739634298, abs=1e-15)
    assert g == pytest.approx(float(ref), rel=1e-13, abs=0)
    assert gc == pytest.approx(float(refc), rel=1e-13, abs=0)


@pytest.mark.parametrize("k, n", CDF_CASES + [(1, 10**6), (10**6, 10**6), (1, 5)], ids=str)
def test_cdf_map_density_against_log_gamma(k, n):
    proc = ia.order_statistic(k, n)
    F = _points(k, n)
    expected = [float(order_density(k, n, x)) for x in F]
    np.testing.assert_allclose(proc.g_prime(F), expected, rtol=1e-12, atol=0)


def test_stirling_error_table():
    # stirlerr enters a log-density additively: its absolute error is what counts (the
    # truncated series leaves 1.1e-16 at n = 16).
    with mp.workdps(40):
        for n in range(1, 40):
            exact = (
                mp.loggamma(n + 1)
                - (n + mp.mpf(1) / 2) * mp.log(n)
                + n
                - mp.log(mp.sqrt(2 * mp.pi))
            )
            assert K._stirlerr(float(n)) == pytest.approx(float(exact), rel=0, abs=2e-16)
    for n in (100.0, 600.0, 1e6):
        with mp.workdps(40):
            exact = (
                mp.loggamma(n + 1)
                - (n + mp.mpf(1) / 2) * mp.log(n)
                + n
                - mp.log(mp.sqrt(2 * mp.pi))
            )
        assert K._stirlerr(n) == pytest.approx(float(exact), rel=0, abs=2e-16)


#: Pairs (F, 1 - F) exact in binary, on both sides of 1/2 and next to both ends.
EXACT_PAIRS = [
    (2.0**-1000, 1.0),
    (0.375, 0.625),
    (0.5, 0.5),
    (0.625, 0.375),
    (1 - 2.0**-40, 2.0**-40),
]


@pytest.mark.parametrize("n", [2, 64, 65, 1024])
@pytest.mark.parametrize("F, Fc", EXACT_PAIRS)
def test_engine_complement_in_every_branch(n, F, Fc):
    # 1 - g(F) as the continuous engine's integrand takes it, in each of its branches
    # (integer powers for n <= 64, logarithms above; either member of the pair trusted),
    # against 40-digit values of 1 - F^n and (1 - F)^n, relative: a wrong exponent shows
    # even where the value itself is far below the win rate's rounding.
    with mp.workdps(40):
        best = float(1 - mp.mpf(F) ** n)
        worst = float(mp.mpf(Fc) ** n)
    tol = 4 * n * np.finfo(float).eps
    # 1 - F^n by integer powers (n <= 64) is a difference: absolute accuracy only, by design
    assert K._complement(n, n, F, Fc) == pytest.approx(best, rel=tol, abs=tol if n <= 64 else 0)
    assert K._complement(1, n, F, Fc) == pytest.approx(worst, rel=tol, abs=0)
    for k in (2, n // 2, n - 1):
        if 1 < k < n:
            _, ref = binomial_tail(k, n, F)
            assert K._complement(k, n, F, Fc) == pytest.approx(float(ref), rel=1e-12, abs=2e-16)


# -- the base against itself: 1/2 for every procedure ------------------------------------
@pytest.mark.parametrize(
    "k, n",
    [(1, 65), (65, 65), (33, 65), (1, 1024), (1024, 1024), (341, 1024), (2, 1024),
     (142_857, 10**6), (500_000, 10**6), (1, 10**6), (10**6, 10**6), (2, 10**6),
     (999_999, 10**6)],
    ids=str,
)  # fmt: skip
def test_base_against_itself_is_one_half(k, n):
    # int_0^1 (1 - g(u)) g'(u) du = 1/2 for every g: a check of g against g'.
    assert ia.win_rate(ia.base_policy(), ia.order_statistic(k, n)) == pytest.approx(0.5, abs=1e-13)


# -- closed forms ---------------------------------------------------------------------
#: log(1 - u): at beta = 1/(m - 1) its tilt is the Worst-of-m policy, density m (1 - u)^(m-1).
LOG_ONE_MINUS = ia.Mirror(ia.Log())


@pytest.mark.parametrize("m", [2, 3, 8])
@pytest.mark.parametrize("n", [2, 64, 65, 100, 128, 256, 1024])
def test_worst_of_m_policy_has_worst_of_n_win_rate_one_over_m_plus_one(m, n):
    # min of n draws of (min of m uniforms) is min of mn uniforms: P(it > min of n) = 1/(m+1).
    pol = ia.tilt(LOG_ONE_MINUS, 1.0 / (m - 1))
    assert ia.win_rate(pol, ia.worst_of(n)) == pytest.approx(1 / (m + 1), abs=1e-13)


@pytest.mark.parametrize("m", [2, 3, 8])
@pytest.mark.parametrize("n", [65, 100, 128, 256])
def test_best_of_m_policy_has_best_of_n_win_rate_m_over_m_plus_one(m, n):
    pol = ia.tilt(ia.Log(), 1.0 / (m - 1))
    assert ia.win_rate(pol, ia.best_of(n)) == pytest.approx(m / (m + 1), abs=1e-13)


@pytest.mark.parametrize("k, n", [(2, 5), (1, 7), (7, 7), (3, 12)])
def test_closed_form_of_power_policies_against_quadrature(k, n):
    # The closed form behind reference_corners.json, against a direct 30-digit quadrature of
    # (1 - g(u^a)) g'(u) at small n, where the quadrature is cheap.
    a = mp.mpf("1.3")
    with mp.workdps(30):
        quad = mp.quad(lambda u: (1 - binomial_tail(k, n, u**a)[0]) * order_density(k, n, u),
                       [0, 0.5, 1])  # fmt: skip
        assert power_policy_win_rate(a, k, n) == pytest.approx(quad, abs=1e-25)


# -- reference_corners.json -------------------------------------------------------------
@pytest.mark.parametrize(
    "case", CORNERS["power"], ids=lambda c: f"{c['k']}of{c['n']}-b{c['beta']:.4g}"
)
def test_power_policies_against_closed_forms(case):
    # Log transform at beta: CDF u^(1 + 1/beta); N from 2 to 1024 covers both branches of
    # the continuous engine (N <= 64 and N > 64) for Best-of-N, Worst-of-N and interior k.
    pol = ia.tilt(ia.Log(), case["beta"])
    w = ia.win_rate(pol, ia.order_statistic(case["k"], case["n"]))
    assert w == pytest.approx(case["win_rate"], abs=2e-14)


@pytest.mark.parametrize(
    "case",
    [c for c in CORNERS["power"] if c["n"] in (65, 1024) and c["beta"] < 1.0],
    ids=lambda c: f"{c['k']}of{c['n']}",
)
def test_mirrored_power_policies(case):
    # Under u -> 1 - u the tilt by log(1 - u) is the tilt by log u, and the k-th of N is the
    # (N - k + 1)-th: W = 1 - W_power(N - k + 1).
    beta = case["beta"]
    pol = ia.tilt(LOG_ONE_MINUS, beta)
    w = ia.win_rate(pol, ia.order_statistic(case["n"] - case["k"] + 1, case["n"]))
    assert w == pytest.approx(1.0 - case["win_rate"], abs=2e-14)


@pytest.mark.parametrize("case", CORNERS["discrete"], ids=lambda c: f"{c['k']}of{c['n']}")
def test_discrete_order_statistics_against_binomial_sums(case):
    values = np.arange(len(case["base"]), dtype=float)
    law = ia.DiscreteLaw(values, case["base"])
    np.testing.assert_array_equal(law.probs, case["base"])  # exact binary masses, kept
    pol = ia.DiscretePolicy(law, case["policy"])
    w = ia.win_rate(pol, ia.order_statistic(case["k"], case["n"]))
    assert w == pytest.approx(case["win_rate"], abs=4e-15)


def _tilt_id(case: dict) -> str:
    return f"t{case['t']:+g}-b{case['beta']:g}"


@pytest.mark.parametrize("case", CORNERS["tilts"], ids=_tilt_id)
def test_extreme_tilts_pinned(case):
    # t = +-300 and +-1000 at beta = 1e-4 .. 1e6: KL, standard win rate, and the win rates of
    # Best-of-N, Worst-of-N (N = 64 and 1024) and the 512th of 1024, against 40-digit mpmath.
    pol = ia.tilt(ia.Exponential(case["t"]), case["beta"])
    # (largest errors: 1.6e-15 relative in KL, 6.7e-15 in a win rate)
    assert ia.kl(pol) == pytest.approx(case["kl"], rel=1e-13, abs=0)
    assert ia.standard_win_rate(pol) == pytest.approx(case["standard_win_rate"], abs=1e-14)
    for k, n, w in case["win_rates"]:
        assert ia.win_rate(pol, ia.order_statistic(k, n)) == pytest.approx(w, abs=2e-14), (k, n)


# -- the reference file reproduces ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 30, -1])
def test_corners_reproduce(index):
    case = CORNERS["power"][index]
    a = 1 + 1 / mp.mpf(case["beta"])
    assert float(power_policy_win_rate(a, case["k"], case["n"])) == pytest.approx(
        case["win_rate"], abs=1e-16
    )
    case = CORNERS["discrete"][index]
    w = discrete_win_rate(case["policy"], case["base"], case["k"], case["n"])
    assert float(w) == pytest.approx(case["win_rate"], abs=1e-16)


@pytest.mark.slow
def test_corner_tilt_reproduces():
    case = CORNERS["tilts"][-1]
    with mp.workdps(40):
        tl = Tilt("exp", case["t"], case["beta"])
        assert float(tl.kl()) == pytest.approx(case["kl"], rel=1e-15, abs=0)
        k, n, w = case["win_rates"][1]
        assert float(tl.win_rate(k, n)) == pytest.approx(w, abs=1e-16)
