"""The sympy derivations against the numeric kernels, on grids of parameters."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import infalign_theory as ia
from infalign_theory import symbolic as S


@pytest.fixture(scope="module")
def bon():
    return S.best_of_n()


def test_best_of_n_forms_are_derived(bon):
    u, N = bon["u"], bon["N"]
    assert sp.simplify(bon["cdf"] - u**N) == 0
    assert sp.simplify(bon["density"] - N * u ** (N - 1)) == 0
    assert sp.simplify(bon["kl"] - (sp.log(N) - (N - 1) / N)) == 0
    assert sp.simplify(bon["standard_win_rate"] - N / (N + 1)) == 0


@pytest.mark.parametrize("n", [2, 3, 5, 17, 64, 400])
def test_best_of_n_matches_the_kernels(bon, n):
    pol = ia.apply(ia.best_of(n), ia.base_policy())
    grid = np.linspace(0.05, 0.95, 7)
    density = S.lambdify((bon["u"], bon["N"]), bon["density"])
    np.testing.assert_allclose(pol.pdf(grid), density(grid, n), rtol=1e-12)
    assert ia.kl(pol) == pytest.approx(float(bon["kl"].subs(bon["N"], n)), abs=1e-13)
    assert ia.standard_win_rate(pol) == pytest.approx(
        float(bon["standard_win_rate"].subs(bon["N"], n)), abs=1e-14
    )


@pytest.mark.parametrize("k, n", [(1, 3), (2, 5), (4, 4), (3, 7)])
def test_order_statistic_cdf_matches_the_procedure(k, n):
    cdf = S.order_statistic_cdf(k, n)
    u = sorted(cdf.free_symbols, key=str)[0]
    grid = np.linspace(0.0, 1.0, 11)
    values = np.array([float(cdf.subs(u, x)) for x in grid])
    np.testing.assert_allclose(ia.order_statistic(k, n).g(grid), values, atol=1e-15)


def test_identity_tilt_matches_the_kernels():
    forms = S.identity_tilt(n=3)
    c = forms["c"]
    kl = S.lambdify(c, forms["kl"])
    win = S.lambdify(c, forms["standard_win_rate"])
    w3 = S.lambdify(c, forms["best_of_n_win_rate"])
    assert sp.simplify(forms["Z"] - (sp.exp(c) - 1) / c) == 0
    for cc in (0.3, 1.0, 4.0, 12.0, 40.0):
        pol = ia.tilt(ia.Identity(), 1.0 / cc)
        assert ia.kl(pol) == pytest.approx(kl(cc), rel=1e-10)
        assert ia.standard_win_rate(pol) == pytest.approx(win(cc), abs=1e-13)
        assert ia.win_rate(pol, ia.best_of(3)) == pytest.approx(w3(cc), abs=1e-11)


def test_log_tilt_is_the_best_of_n_family():
    forms = S.log_tilt()
    a, u = forms["a"], forms["u"]
    assert sp.simplify(forms["density"] - (a + 1) * u**a) == 0  # (1/beta + 1) u^(1/beta)
    kl = S.lambdify(a, forms["kl"])
    win = S.lambdify(a, forms["standard_win_rate"])
    for beta in (0.05, 0.3, 1.0, 7.0):
        pol = ia.tilt(ia.Log(), beta)
        assert ia.kl(pol) == pytest.approx(kl(1 / beta), abs=1e-13)
        assert ia.standard_win_rate(pol) == pytest.approx(win(1 / beta), abs=1e-14)


@pytest.mark.parametrize("m, n", [(1, 4), (2, 3), (3, 4), (4, 4), (5, 2), (8, 16)])
def test_best_of_m_win_rates_are_exact_rationals(m, n):
    exact = S.best_of_m_win_rates(m, n)
    assert isinstance(exact["best_of_n"], sp.Rational)
    assert Fraction(str(exact["best_of_n"])) == Fraction(m, m + 1)
    pol = ia.base_policy() if m == 1 else ia.tilt(ia.Log(), 1.0 / (m - 1))
    assert ia.win_rate(pol, ia.best_of(n)) == pytest.approx(float(exact["best_of_n"]), abs=1e-14)
    assert ia.win_rate(pol, ia.worst_of(n)) == pytest.approx(float(exact["worst_of_n"]), abs=1e-13)
    assert not math.isclose(float(exact["worst_of_n"]), m / (m + 1)) or m == 1
