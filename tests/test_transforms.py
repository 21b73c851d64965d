"""Transforms: values, monotonicity, accuracy next to both ends, and the paper's form."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from strategies import transforms

import infalign_theory as ia

U = np.linspace(0.001, 0.999, 101)


@pytest.mark.parametrize("t", [-20.0, -1.0, -1e-6, 1e-6, 0.5, 7.0, 40.0])
def test_exponential_matches_its_definition(t):
    expected = np.expm1(t * U) / np.expm1(t)
    np.testing.assert_allclose(ia.Exponential(t)(U), expected, rtol=1e-12, atol=1e-15)


def test_identity_log_and_t_zero():
    np.testing.assert_array_equal(ia.Identity()(U), U)
    np.testing.assert_allclose(ia.Exponential(0.0)(U), U, atol=1e-16)
    np.testing.assert_allclose(ia.Log()(U), np.log(U), rtol=1e-15)


@given(transforms(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_library_transforms_are_increasing(tr, x, y):
    lo, hi = min(x, y), max(x, y)
    a, b = tr([lo, hi])
    assert a <= b


@pytest.mark.parametrize("t", [-1000.0, -300.0, -25.0, 25.0, 300.0, 1000.0])
@pytest.mark.parametrize("x", [1e-300, 1e-12, 1e-6, 0.01, 0.3, 0.5])
def test_exponential_is_exact_next_to_both_ends(t, x):
    # 400-digit values of Phi - offset, on the side of each end (closed form in mpmath).
    tr = ia.Exponential(t)
    off_l, off_r = tr.offsets
    with mp.workdps(400):
        phi = lambda u: mp.expm1(t * u) / mp.expm1(t)  # noqa: E731
        left = phi(mp.mpf(x)) - off_l
        right = phi(1 - mp.mpf(x)) - off_r
    for got, ref in ((tr._left(np.array([x]))[0], left), (tr._right(np.array([x]))[0], right)):
        ref = float(ref)
        assert got == pytest.approx(ref, rel=1e-12, abs=1e-300)


@given(transforms())
def test_transforms_are_continuous_across_the_middle(tr):
    a, b = tr([0.5 - 1e-12, 0.5 + 1e-12])
    assert abs(b - a) < 1e-9


@pytest.mark.parametrize("t, n_proc", [(3.0, ia.best_of(4)), (-4.0, ia.worst_of(4))])
def test_paper_form_gives_the_same_policy(t, n_proc):
    # The paper tilts by sign(t) e^{tu} with beta' = beta |e^t - 1|; same policy, same numbers.
    beta = 0.2
    ours = ia.tilt(ia.Exponential(t), beta)
    paper = ia.Custom(lambda u: math.copysign(1.0, t) * np.exp(t * u), "paper")
    theirs = ia.tilt(paper, ia.Exponential(t).paper_beta(beta))
    for metric in (ia.kl, ia.standard_win_rate, lambda p: ia.win_rate(p, n_proc)):
        assert metric(ours) == pytest.approx(metric(theirs), abs=1e-12)


def test_quantile_transform_is_the_raw_reward():
    law = ia.ContinuousLaw(stats.gumbel_r(0.0, 2.0))
    np.testing.assert_allclose(ia.Quantile(law)(U), stats.gumbel_r(0, 2).ppf(U), rtol=1e-12)
    assert ia.Quantile(law)._right(np.array([1e-200]))[0] == pytest.approx(
        stats.gumbel_r(0, 2).isf(1e-200)
    )
    dlaw = ia.DiscreteLaw([0, 1, 2], [0.5, 0.3, 0.2])
    np.testing.assert_array_equal(ia.Quantile(dlaw)(ia.level_midpoints(dlaw)[0]), [0, 1, 2])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ia.Exponential(math.inf), "t must be a finite real"),
        (lambda: ia.Exponential(math.nan), "t must be a finite real"),
        (lambda: ia.Custom(3.0), "fn must be callable"),
        (lambda: ia.Quantile("norm"), "law must be"),
        (lambda: ia.Identity()([1.2]), r"u must lie in \[0, 1\]"),
        (lambda: ia.tilt(ia.Custom(lambda u: np.where(u > 0.7, np.nan, u)), 1.0), "returned nan"),
        (lambda: ia.tilt(ia.Custom(lambda u: np.where(u > 0.7, np.inf, u)), 1.0), "returned inf"),
    ],
)
def test_bad_transforms_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# --------------------------------------------------------------------------------------
# Custom: array functions as they are, scalar functions vectorised for the user.
# --------------------------------------------------------------------------------------
def _sqrt_tilt_reference(beta: float) -> tuple[float, float]:
    """KL and standard win rate of pi ∝ exp(sqrt(u)/beta) on Uniform(0, 1), by mpmath quadrature."""
    mp.mp.dps = 30
    w = lambda u: mp.exp(mp.sqrt(u) / beta)  # noqa: E731
    z = mp.quad(w, [0, 1])
    mean_phi = mp.quad(lambda u: mp.sqrt(u) * w(u), [0, 1]) / z
    mean_u = mp.quad(lambda u: u * w(u), [0, 1]) / z
    return float(mean_phi / beta - mp.log(z)), float(mean_u)


def test_custom_vectorises_a_scalar_function():
    scalar = ia.Custom(lambda u: math.sqrt(u), "sqrt")
    array = ia.Custom(np.sqrt, "sqrt")
    u = np.array([1e-300, 0.25, 0.5, 1.0 - 2.0**-53])
    assert np.array_equal(scalar(u), np.sqrt(u))  # both correctly rounded
    assert ia.Custom(math.sqrt)(0.25).tolist() == 0.5  # a builtin, on a 0-d input
    kl_ref, w_ref = _sqrt_tilt_reference(0.5)
    for transform in (scalar, array):
        pol = ia.tilt(transform, 0.5)
        assert ia.kl(pol) == pytest.approx(kl_ref, rel=1e-12, abs=0)
        assert ia.standard_win_rate(pol) == pytest.approx(w_ref, rel=1e-12, abs=0)
    law = ia.DiscreteLaw([0.0, 1.0, 1.0, 3.0], [0.1, 0.2, 0.3, 0.4])
    a = ia.evaluate(ia.tilt(scalar, 0.3, law), ia.best_of(4))
    b = ia.evaluate(ia.tilt(array, 0.3, law), ia.best_of(4))
    assert a == b


def test_custom_vectorises_a_function_that_branches():
    # `if u < 0.5` on an array raises numpy's ValueError (truth value ambiguous): per point
    branching = ia.Custom(lambda u: u if u < 0.5 else 0.5 + 0.1 * (u - 0.5))
    vectorised = ia.Custom(lambda u: np.where(u < 0.5, u, 0.5 + 0.1 * (u - 0.5)))
    u = np.linspace(0.01, 0.99, 7)
    assert np.array_equal(branching(u), vectorised(u))
    assert ia.kl(ia.tilt(branching, 0.2)) == ia.kl(ia.tilt(vectorised, 0.2))


def picky(u):
    if isinstance(u, np.ndarray):
        raise TypeError("array refused")
    raise TypeError("number refused")


def boom(u):
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("fn", "error", "match"),
    [
        (boom, RuntimeError, "^boom$"),  # not a TypeError/ValueError: passed on at once
        (picky, TypeError, "^array refused$"),  # refused both ways: the array's own error
        (lambda u: math.nan if u > 0.3 else math.sqrt(u), ValueError, "returned nan"),
        (lambda u: np.where(u > 0.3, np.nan, u), ValueError, "returned nan"),
        (lambda u: (math.sqrt(u), 1.0), ValueError, "one number must return one number"),
        (lambda u: [u] * (1 + int(u * 1e6) % 2), ValueError, "one number per point, .* lengths"),
        (lambda u: None if u < 2.0 else 0.0, ValueError, "must return real numbers"),
        (lambda u: u[:3], ValueError, "one value per point"),
        (lambda u: math.sqrt(u) * 1j, ValueError, "must return real numbers"),
    ],
)
def test_custom_errors_say_what_the_function_did(fn, error, match):
    with pytest.raises(error, match=match):
        ia.kl(ia.tilt(ia.Custom(fn), 0.5))
