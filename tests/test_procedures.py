"""Order-statistic procedures as CDF maps, against scipy's incomplete beta function."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats
from strategies import procedures

import infalign_theory as ia

GRID = np.concatenate([[0.0, 1e-300, 1e-12], np.linspace(0.001, 0.999, 37), [1 - 1e-12, 1.0]])


@pytest.mark.parametrize(
    "k, n", [(1, 1), (2, 2), (4, 4), (1, 4), (2, 5), (512, 1024), (1024, 1024), (1, 1024), (17, 64)]
)
def test_cdf_map_matches_scipy(k, n):
    proc = ia.order_statistic(k, n)
    expected = special.betainc(k, n - k + 1, GRID)
    np.testing.assert_allclose(proc.g(GRID), expected, rtol=1e-12, atol=1e-300)
    dens = stats.beta(k, n - k + 1).pdf(GRID[1:-1])
    np.testing.assert_allclose(proc.g_prime(GRID[1:-1]), dens, rtol=1e-10, atol=1e-300)


@given(procedures(max_n=1024))
def test_cdf_map_fixes_the_ends_and_mirrors(proc):
    assert proc.g([0.0])[0] == 0.0 and proc.g([1.0])[0] == 1.0
    x = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(proc.mirror().g(x), 1.0 - proc.g(1.0 - x), atol=1e-14)
    assert np.all(np.diff(proc.g(x)) >= 0.0)


def test_cdf_map_is_a_cdf_for_every_order_statistic_to_n_128():
    """Every (k, n) with n <= 128 on a fine grid: inside [0, 1] and non-decreasing.

    Summed binomial tails near one used to round to 1 + 4e-16 (k = 53, n = 102 at F = 0.9).
    """
    x = np.linspace(0.0, 1.0, 401)
    for n in range(1, 129):
        for k in range(1, n + 1):
            g = ia.order_statistic(k, n).g(x)
            assert g[0] == 0.0 and g[-1] == 1.0 and g.max() <= 1.0, (k, n)
            assert np.all(np.diff(g) >= 0.0), (k, n)


def test_names_and_factories():
    assert ia.sampling().name == "sampling"
    assert ia.best_of(4) == ia.OrderStatistic(4, 4) and ia.best_of(4).name == "best-of-4"
    assert ia.worst_of(4).name == "worst-of-4" and ia.worst_of(4).mirror() == ia.best_of(4)
    assert ia.order_statistic(2, 5).name == "order-2-of-5"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ia.best_of(0), r"n must be an integer in \[1, 1000000\]"),
        (lambda: ia.worst_of(2.5), "n must be an integer"),
        (lambda: ia.order_statistic(5, 4), r"k must be an integer in \[1, 4\]"),
        (lambda: ia.order_statistic(0, 4), "k must be"),
        (lambda: ia.best_of(True), "n must be"),
        (lambda: ia.best_of(4).g([1.5]), r"F must lie in \[0, 1\]"),
    ],
)
def test_bad_procedures_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@given(st.integers(1, 10**6))
def test_n_up_to_a_million_is_exact_at_the_median(n):
    # g(F) = F^n at F = 2^(-1/n) is exactly 1/2 (up to the rounding of F itself).
    F = 0.5 ** (1.0 / n)
    assert ia.best_of(n).g([F])[0] == pytest.approx(0.5, rel=1e-15 * n + 1e-15)
