"""Edges of the public API: the right value or a ValueError that names the parameter and why.

Each test pins one corner where the library used to return a silently wrong value, hang, or
raise something other than a ValueError. Reference values come from closed forms evaluated
with mpmath (``tests/reference.py`` and the formulas written next to each test), never from
the library itself.
"""

from __future__ import annotations

import math
import time

import mpmath as mp
import numpy as np
import pytest
from reference import Tilt
from scipy import integrate, stats

import infalign_theory as ia
from infalign_theory.calibration import score_distribution
from infalign_theory.transforms import TRINOMIAL_TERMS, trinomial_terms


def identity_kl(beta: float) -> float:
    """KL of the identity tilt at 40 digits, c = 1/beta.

    The closed form c W - log((e^c - 1)/c), W = (e^c (c - 1) + 1)/(c (e^c - 1)), with the
    terms of size c cancelled by hand (at c = 1e300 they would need 300 digits):
    KL = log c - log(1 - e^{-c}) + ((1 + c) e^{-c} - 1)/(1 - e^{-c}).
    """
    with mp.workdps(40):
        c = 1 / mp.mpf(beta)
        e = mp.exp(-c)
        value = mp.log(c) - mp.log1p(-e) + ((1 + c) * e - 1) / (1 - e)
        if c < 100:  # cross-check with the textbook form where it still has digits to spare
            assert abs(value - Tilt("identity", 0.0, beta).kl()) < mp.mpf(10) ** -30
        return float(value)


# --------------------------------------------------------------------------------------
# A user's callable at tiny beta: right, or refused for every smaller beta.
# --------------------------------------------------------------------------------------
BETA_SWEEP = [
    10.0**e for e in np.concatenate([np.arange(-300.0, -20.0, 10.0), np.arange(-20.0, 0.5, 0.25)])
]


@pytest.mark.parametrize(
    "fn",
    [lambda u: u, lambda u: u - 1.0, lambda u: 1000.0 * u],
    ids=["u", "u-1", "1000u"],
)
def test_custom_identity_is_right_or_refused_below_one_threshold(fn):
    # Custom sees u = 1 - s rounded near u = 1: it cannot resolve a tilt whose mass lies
    # within a few ulps of 1. It must either agree with the closed form or refuse, and the
    # refused betas must be exactly those below some threshold (no silently wrong band).
    scale = 1000.0 if fn(np.array([1.0]))[0] == 1000.0 else 1.0
    outcomes = []
    for beta in BETA_SWEEP:
        try:
            got = ia.kl(ia.tilt(ia.Custom(fn), beta * scale))
        except ValueError as exc:
            assert "beta" in str(exc)
            outcomes.append(False)
            continue
        assert got == pytest.approx(identity_kl(beta), rel=1e-12), beta
        outcomes.append(True)
    first_ok = outcomes.index(True)
    assert all(outcomes[first_ok:]), "a beta was refused above one that was computed"
    assert BETA_SWEEP[first_ok] <= 1e-6  # and the usable range reaches down to 1e-6


def test_builtin_identity_matches_the_closed_form_down_to_beta_1e_300():
    for beta in BETA_SWEEP[::2]:
        assert ia.kl(ia.tilt(ia.Identity(), beta)) == pytest.approx(identity_kl(beta), rel=1e-12)


def test_the_refusal_says_why():
    with pytest.raises(ValueError, match=r"beta = 1e-25 .*rounded next to u = 1"):
        ia.tilt(ia.Custom(lambda u: u), 1e-25)


# --------------------------------------------------------------------------------------
# Narrow interior maxima of a user's transform, and huge Phi/beta.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [1e-3, 1e-4, 3e-5, 1e-5])
def test_every_narrow_peak_of_a_custom_transform_is_found(beta):
    # sin(40u) peaks at c_k = (pi/2 + 2 pi k)/40, k = 0..6, all inside (0, 1) and alike: the
    # tilt puts 1/7 on each, symmetric about c_k, so W = mean(c_k) = 6.5 pi / 40. The peaks
    # (width ~ sqrt(beta)/40) used to fall between quadrature nodes and be lost (W = 0.537
    # at beta = 1e-4, 0.636 at 3e-5).
    pol = ia.tilt(ia.Custom(lambda u: np.sin(40.0 * u)), beta)
    assert ia.standard_win_rate(pol) == pytest.approx(6.5 * math.pi / 40.0, abs=1e-12)
    peaks = (math.pi / 2 + 2 * math.pi * np.arange(7)) / 40.0
    mass = pol.cdf(peaks + 0.01) - pol.cdf(peaks - 0.01)
    np.testing.assert_allclose(mass, 1 / 7, rtol=1e-10)
    # T(pi) through apply: the same peaks, weighted by g'(G) (Best-of-10 against one sample)
    direct = ia.win_rate(pol, ia.best_of(10), against="sample")
    assert ia.standard_win_rate(ia.apply(ia.best_of(10), pol)) == pytest.approx(direct, abs=1e-12)


def test_log_density_at_astronomical_phi_over_beta():
    # floor(10 u) at beta = 1e-42: uniform on [0.9, 1), log f = log 10 there. Phi/beta = 9e42
    # was divided where the kernels multiply by 1/beta: log f came out 1.2e27.
    pol = ia.tilt(ia.Custom(lambda u: np.floor(10.0 * u)), 1e-42)
    np.testing.assert_allclose(pol.logpdf([0.91, 0.95, 0.99]), math.log(10.0), rtol=1e-14)
    assert ia.standard_win_rate(ia.apply(ia.best_of(10), pol)) == pytest.approx(0.9 + 0.1 * 10 / 11)


def test_a_mirrored_exponential_at_tiny_beta_is_finite():
    # Equal offsets (1, 1) times 1/beta = 1e25 absorbed the difference of the two sides'
    # maxima, and the normaliser was taken from the wrong side: KL = NaN.
    pol = ia.tilt(ia.Exponential(-100.0), 1e-25)
    mirrored = ia.tilt(ia.Mirror(ia.Exponential(-100.0)), 1e-25)
    assert ia.kl(mirrored) == pytest.approx(ia.kl(pol), rel=1e-12)
    assert ia.win_rate(mirrored, ia.worst_of(3)) == pytest.approx(
        1.0 - ia.win_rate(pol, ia.best_of(3)), abs=1e-12
    )


# --------------------------------------------------------------------------------------
# A KL below what any beta reaches.
# --------------------------------------------------------------------------------------
def test_kl_below_the_floor_of_a_transform_that_is_minus_inf_on_half_is_out_of_reach():
    # Phi = -inf on u < 1/2: every tilt lives on [1/2, 1], so KL >= log 2 for every beta.
    half = ia.Custom(lambda u: np.where(u < 0.5, -np.inf, u))
    with pytest.raises(ValueError, match=r"kl = 0.3 is out of reach.*0\.69314718"):
        ia.beta_for_kl(half, 0.3)
    beta = ia.beta_for_kl(half, 1.0)  # above the floor: solved
    assert ia.kl(ia.tilt(half, beta)) == pytest.approx(1.0, rel=1e-10)


def test_kl_below_the_floor_on_a_discrete_law_is_refused_up_front():
    law = ia.DiscreteLaw([0.0, 1.0, 2.0], [0.5, 0.3, 0.2])
    top_two = ia.Custom(lambda u: np.where(u < 0.5, -np.inf, u))
    floor = -math.log(0.5)
    with pytest.raises(ValueError, match=r"kl must be in \(0\.69314718"):
        ia.beta_for_kl(top_two, 0.3, law=law)
    beta = ia.beta_for_kl(top_two, 0.5 * (floor - math.log(0.2)), law=law)
    assert ia.kl(ia.tilt(top_two, beta, law)) == pytest.approx(0.5 * (floor - math.log(0.2)))


# --------------------------------------------------------------------------------------
# Raw rewards without a moment generating function.
# --------------------------------------------------------------------------------------
HEAVY = {
    "lognorm(1)": stats.lognorm(1.0),
    "t(3)": stats.t(3),
    "t(30)": stats.t(30),
    "pareto(3)": stats.pareto(3),
    "cauchy": stats.cauchy(),
    "lomax(3)": stats.lomax(3),
    "invgamma(3)": stats.invgamma(3),
    "levy": stats.levy(),
    "genextreme(-0.2)": stats.genextreme(-0.2),
    "johnsonsu(1,1)": stats.johnsonsu(1, 1),
    "weibull_min(0.5)": stats.weibull_min(0.5),
    "weibull_min(0.9)": stats.weibull_min(0.9),
    "gennorm(0.5)": stats.gennorm(0.5),
}
#: Laws with E[exp(r / beta)] finite for every beta (light or bounded) or for beta above
#: the tail's scale (exponential type): the law-based check must let them through.
NOT_HEAVY = {
    "norm": stats.norm(),
    "skewnorm(3)": stats.skewnorm(3),
    "halfnorm": stats.halfnorm(),
    "truncnorm(-1,inf)": stats.truncnorm(-1, np.inf),
    "rayleigh": stats.rayleigh(),
    "maxwell": stats.maxwell(),
    "weibull_min(2)": stats.weibull_min(2),
    "gennorm(3)": stats.gennorm(3),
    "gumbel_l": stats.gumbel_l(),
    "loggamma(2)": stats.loggamma(2),
    "gompertz(1)": stats.gompertz(1),
    "beta(2,5)": stats.beta(2, 5),
    "uniform": stats.uniform(),
    "expon(scale=2)": stats.expon(scale=2),
    "gamma(0.5)": stats.gamma(0.5),
    "gamma(5)": stats.gamma(5),
    "chi2(3)": stats.chi2(3),
    "gumbel_r": stats.gumbel_r(),
    "logistic": stats.logistic(),
    "laplace": stats.laplace(),
    "hypsecant": stats.hypsecant(),
    "genlogistic(2)": stats.genlogistic(2),
    "moyal": stats.moyal(),
    "exponnorm(2)": stats.exponnorm(2),
    "norminvgauss(1,0.5)": stats.norminvgauss(1, 0.5),
}


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_raw_reward_of_a_law_heavier_than_exponential_is_refused_at_every_beta(name):
    raw = ia.Quantile(ia.ContinuousLaw(HEAVY[name]))
    for beta in (1e-3, 1.0, 1e6, 1e100, 1e300):
        with pytest.raises(ValueError, match="not normalisable at any beta"):
            ia.tilt(raw, beta)
    with pytest.raises(ValueError, match="not normalisable"):  # U and 1 - U: same normaliser
        ia.tilt(ia.Mirror(raw), 1e6)


@pytest.mark.parametrize("name", sorted(NOT_HEAVY))
def test_the_heavy_tail_check_lets_light_and_exponential_tails_through(name):
    assert ia.Quantile(ia.ContinuousLaw(NOT_HEAVY[name])).infinite_normaliser(1.0) is None


def test_raw_gaussian_tilt_still_matches_its_closed_form():
    # N(0,1) rewards tilted by exp(r/beta) are N(1/beta, 1): KL = 1/(2 beta^2).
    raw = ia.Quantile(ia.ContinuousLaw(stats.norm()))
    for beta in (0.2, 1.0, 1e3, 1e100):
        assert ia.kl(ia.tilt(raw, beta)) == pytest.approx(0.5 / beta**2, rel=1e-9)


# --------------------------------------------------------------------------------------
# Finite-K calibration: exact against closed forms, fast for every K the CLI accepts.
# --------------------------------------------------------------------------------------
def exp_transform(t, c):
    """Phi_t(c) = (e^{tc} - 1)/(e^t - 1) at mpmath precision."""
    return mp.expm1(t * c) / mp.expm1(t)


def bernstein_exp(t, k, x, side):
    """E[Phi_t(J/K)] - Phi_t(side), J ~ Binomial(K, u), u = x (side 0) or 1 - x (side 1).

    E[e^{tJ/K}] = (1 + u (e^{t/K} - 1))^K; near u = 1 it is taken from s = 1 - u as
    e^t (1 + s (e^{-t/K} - 1))^K, so that 40 digits suffice for s = 1e-300.
    """
    t, x = mp.mpf(t), mp.mpf(x)
    if side == 0:
        return mp.expm1(k * mp.log1p(x * mp.expm1(t / k))) / mp.expm1(t)
    return mp.exp(t) * mp.expm1(k * mp.log1p(x * mp.expm1(-t / k))) / mp.expm1(t)


def trinomial_exp(t, k, below, tie, above):
    """E[Phi_t(S/2K)], S a sum of K draws of 2 (below), 1 (tie), 0 (above).

    E[e^{tS/2K}] = (a + q e^{t/2K} + b e^{t/K})^K for masses summing to one (here they are
    normalised, as given in double), so the mean is that minus 1, over e^t - 1. Call at a
    precision that holds 1 + 1e-300.
    """
    t = mp.mpf(t)
    a, q, b = mp.mpf(above), mp.mpf(tie), mp.mpf(below)
    base = (a + q * mp.exp(t / (2 * k)) + b * mp.exp(t / k)) / (a + q + b)
    return mp.expm1(k * mp.log(base)) / mp.expm1(t)


def binomial_sum(k, x, side, values):
    """sum_j Binomial(j; k, u) values[j] (and of |values[j]|) at mpmath precision.

    u = x (side 0) or 1 - x (side 1), with 1 - u = s taken exactly from x. The masses come
    from the one at the mode by their ratio (exact at this precision). Every term for
    k <= 5000; beyond, the terms within 20 standard deviations + 40 of the mode, widened by
    sd^2 / 50 -- how far values growing like e^{|t| j / k}, |t| <= 1000, move the mass.
    """
    x = mp.mpf(x)
    u, s = (x, 1 - x) if side == 0 else (1 - x, x)
    mode = min(int((k + 1) * float(u)), k)
    var = k * float(u) * float(s)
    width = k if k <= 5000 else int(20 * math.sqrt(var) + 40 + var / 50)
    top = mp.binomial(k, mode) * u**mode * s ** (k - mode)
    pmf = {mode: top}
    for j in range(mode, min(k, mode + width)):
        pmf[j + 1] = pmf[j] * (k - j) / (j + 1) * u / s
    for j in range(mode, max(0, mode - width), -1):
        pmf[j - 1] = pmf[j] * j / (k - j + 1) * s / u
    return (
        mp.fsum(p * mp.mpf(float(values[j])) for j, p in pmf.items()),
        mp.fsum(p * abs(mp.mpf(float(values[j]))) for j, p in pmf.items()),
    )


NODES_X = np.array([1e-300, 1e-30, 1e-9, 1e-4, 0.01, 0.1, 0.3, 0.5])


def nodes_for(k: int) -> np.ndarray:
    """Where to compare: fewer points at k = 100000, whose mpmath sums are long."""
    return NODES_X if k <= 5000 else NODES_X[[0, 3, 5, 7]]


@pytest.mark.parametrize("t", [-1000.0, -10.0, 10.0, 1000.0])
@pytest.mark.parametrize("k", [1, 10, 1000, 100_000])
def test_bernstein_mix_matches_an_mpmath_sum_of_the_same_values(t, k):
    # The mix alone, on Phi's values as the transform gives them (relative to the value at
    # the near end): within 64 roundings of the sum of |terms| (measured: up to ~25).
    sc = ia.SampleCalibrated(ia.Exponential(t), k)
    with mp.workdps(40):
        x = nodes_for(k)
        for side, got in ((0, sc._left(x)), (1, sc._right(x))):
            values = sc._phi_minus(0 if side == 0 else -1)
            for xi, g in zip(x, got, strict=True):
                want, size = binomial_sum(k, xi, side, values)
                assert abs(g - want) <= 64 * 2.0**-52 * size + 2.0**-1074, (side, xi, g)


@pytest.mark.parametrize("t", [-10.0, 10.0])
@pytest.mark.parametrize("k", [1, 10, 1000, 100_000])
def test_sample_calibrated_exponential_matches_its_closed_form(t, k):
    # Against ((1 - u + u e^{t/K})^K - 1)/(e^t - 1), whose terms are Phi_t at the exact
    # rationals j/K: Phi's own roundings (relative to its offsets, which are both 1 for
    # t < 0) and those of j/K (a relative error times |t|) enter the tolerance.
    sc = ia.SampleCalibrated(ia.Exponential(t), k)
    assert sc.offsets == (0.0, 1.0)  # Phi_t(0) and Phi_t(1)
    rep = sc._values  # type: ignore[attr-defined]  # Phi relative to the base's offsets
    with mp.workdps(40):
        x = nodes_for(k)
        for side, got in ((0, sc._left(x)), (1, sc._right(x))):
            for xi, g in zip(x, got, strict=True):
                want = bernstein_exp(t, k, xi, side)
                size = binomial_sum(k, xi, side, rep)[1]
                tol = 64 * (1 + abs(t)) * 2.0**-52 * (abs(want) + size) + 2.0**-1074
                assert abs(g - want) <= tol, (side, xi, g, float(want))


@pytest.mark.parametrize("k", [1, 7, 1000, 100_000])
def test_trinomial_mix_matches_its_closed_form_on_a_law_with_tiny_masses(k):
    probs = np.array([1e-300, 0.25, 1e-12, 0.5, 0.25 - 1e-12 - 1e-300, 1e-200])
    law = ia.DiscreteLaw(np.arange(6.0), probs / probs.sum())
    t = 7.0
    got = ia.SampleCalibrated(ia.Exponential(t), k).on(law).values
    below = np.concatenate([[0.0], law.cdf_levels[:-1]])
    with mp.workdps(700):  # masses of 1e-300 next to masses of order one
        for j in range(law.n_levels):
            want = trinomial_exp(t, k, below[j], law.probs[j], law.sf_levels[j])
            assert abs(got[j] - want) <= 1e-13 * abs(want), (j, got[j], float(want))


def test_trinomial_mix_agrees_with_the_exact_score_distribution():
    # The polynomial (above + tie z + below z^2)^K by repeated squaring: an independent route.
    law = ia.DiscreteLaw([0.0, 1.0, 1.0, 2.0, 5.0], [0.1, 0.2, 0.3, 0.15, 0.25])
    for transform in (ia.Log(), ia.Custom(lambda u: np.sin(9.0 * u))):
        sc = ia.SampleCalibrated(transform, 300, "smoothed")
        got = sc.on(law).values
        grid = ia.calibration.estimate(np.arange(601), 300, "smoothed")
        phi = transform(grid)
        below = np.concatenate([[0.0], law.cdf_levels[:-1]])
        for j in range(law.n_levels):
            pmf = score_distribution(300, float(below[j]), float(law.probs[j]))
            assert got[j] == pytest.approx(float(pmf @ phi), rel=1e-13, abs=1e-15)


def test_finite_k_calibration_on_a_thousand_levels_answers_in_seconds():
    rng = np.random.default_rng(3)
    law = ia.DiscreteLaw(np.arange(1000.0), rng.dirichlet(np.ones(1000)))
    sc = ia.SampleCalibrated(ia.Exponential(10.0), 100_000)
    below = np.concatenate([[0.0], law.cdf_levels[:-1]])
    assert trinomial_terms(100_000, below, law.probs, law.sf_levels) < TRINOMIAL_TERMS
    start = time.process_time()
    levels = sc.on(law)  # what tilt(sc, beta, law) computes
    assert time.process_time() - start < 30.0  # about 2 s of CPU; was more than 3 minutes
    pol = ia.tilt(levels, 0.5, law)
    values = levels.values
    with mp.workdps(30):
        for j in (0, 1, 500, 998, 999):
            want = trinomial_exp(10.0, 100_000, below[j], law.probs[j], law.sf_levels[j])
            assert values[j] == pytest.approx(float(want), rel=1e-12, abs=1e-300)
    assert 0.0 < ia.kl(pol) < 1.0


def test_finite_k_calibration_too_large_to_sum_is_refused_up_front():
    law = ia.DiscreteLaw(np.arange(100_000.0), np.full(100_000, 1e-5))
    start = time.process_time()
    with pytest.raises(ValueError, match=r"k = 100000 on a law of 100000 levels needs about"):
        ia.tilt(ia.SampleCalibrated(ia.Identity(), 100_000), 1.0, law)
    assert time.process_time() - start < 5.0


def test_finite_k_continuous_tilt_at_large_t_matches_quadrature_of_its_closed_form():
    # Phi_K(u) - 1 = -(1 - u (1 - e^{t/K}))^K / (1 - e^t) ... for t = -1000 the tilt at
    # beta = 1e-6 switches on at u ~ 0.015 over a width of 1e-3: integrate the closed form.
    t, k, beta = -1000.0, 10_000, 1e-6
    start = time.process_time()
    pol = ia.tilt(ia.SampleCalibrated(ia.Exponential(t), k), beta)
    got = ia.kl(pol)
    assert time.process_time() - start < 20.0  # was refused after about 11 s of CPU

    def ell(u: float) -> float:  # (Phi_K(u) - 1)/beta, e^t underflowing to 0
        return -math.exp(k * math.log1p(u * math.expm1(t / k))) / beta

    pts = [0.005, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.03, 0.05]
    z = integrate.quad(
        lambda u: math.exp(ell(u)), 0, 1, points=pts, epsabs=0, epsrel=1e-13, limit=500
    )[0]
    mean_ell = integrate.quad(
        lambda u: ell(u) * math.exp(ell(u)) / z,
        0,
        1,
        points=pts,
        epsabs=1e-15,
        epsrel=1e-13,
        limit=500,
    )[0]
    assert got == pytest.approx(mean_ell - math.log(z), rel=1e-9)


# --------------------------------------------------------------------------------------
# Unhelpful errors, now ValueErrors that name the parameter.
# --------------------------------------------------------------------------------------
LAW = ia.DiscreteLaw([0.0, 1.0, 2.0], [0.2, 0.3, 0.5])
NAN = ia.Custom(lambda u: np.full_like(u, np.nan), "nan")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ia.tradeoff_curve(ia.Identity(), ia.best_of(2), betas=[[1.0, 2.0]]), "betas must"),
        (lambda: ia.tradeoff_curve(ia.Identity(), ia.best_of(2), kls=[[0.1, 0.2]]), "kls must"),
        (lambda: ia.tradeoff_curve(ia.Identity(), ia.best_of(2), kls=["a"]), "kls must"),
        (lambda: ia.kl_limit("identity", LAW), "transform must be a Transform"),
        (lambda: ia.calibrate("law", [1.0]), "law must be"),
        (lambda: ia.calibrate(ia.Identity(), [1.0]), "law must be"),
        (lambda: ia.tilt(NAN, 1.0), "transform nan returned nan"),
        (lambda: ia.tilt(NAN, 1.0, LAW), "transform nan is NaN"),
        (lambda: ia.kl_limit(NAN, LAW), "transform nan is nan at level 0"),
        (lambda: ia.beta_for_kl(NAN, 0.5), "transform nan returned nan"),
        (lambda: ia.beta_for_kl(NAN, 0.5, law=LAW), "transform nan is nan"),
        (lambda: ia.SampleCalibrated(NAN, 10), "nan is nan at the estimate"),
        (lambda: ia.tilt(ia.Custom(lambda u: u + 1j), 1.0), "fn .* must return real numbers"),
        (lambda: ia.tilt(ia.Custom(lambda u: u[:3]), 1.0), "fn .* one value per point"),
        (lambda: ia.tilt(ia.Custom(lambda u: None), 1.0), "fn .* must return real numbers"),
        (lambda: ia.tilt(ia.Custom(lambda u: np.full_like(u, np.inf)), 1.0), "returned inf"),
        (lambda: ia.kl_limit(ia.Custom(lambda u: np.full_like(u, np.inf)), LAW), "is inf"),
        (lambda: ia.SampleCalibrated(ia.Log(), 5).on(LAW), "estimator='smoothed'"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_scalar_or_list_returning_custom_is_accepted():
    const = ia.tilt(ia.Custom(lambda u: 3.0), 1.0)
    assert ia.kl(const) == 0.0
    listed = ia.tilt(ia.Custom(lambda u: list(u)), 0.5)
    assert ia.kl(listed) == pytest.approx(ia.kl(ia.tilt(ia.Identity(), 0.5)), rel=1e-12)


# --------------------------------------------------------------------------------------
# The bridge's files: durable replacement, and checkpoints that cannot run code.
# --------------------------------------------------------------------------------------
def test_write_atomic_never_leaves_a_partial_file_or_a_shared_temporary(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import threading

    from infalign_theory.bridge.loop import replace_durably, write_atomic

    target = tmp_path / "state.json"
    texts = [f"{i}:" + str(i) * 20_000 for i in range(4)]
    errors: list[BaseException] = []

    def writer(text: str) -> None:
        try:
            for _ in range(5):
                write_atomic(target, text)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left

    def crash(fh):
        fh.write(b"half a fi")
        raise RuntimeError("disk full")

    before = target.read_text()
    with pytest.raises(RuntimeError, match="disk full"):
        replace_durably(target, crash)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


class _Planted:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_checkpoint_is_refused_not_executed(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import copy
    import pickle

    from infalign_theory.bridge import (
        CTRLConfig,
        CTRLTrainer,
        WordCount,
        tiny_model,
        word_tokenizer,
    )

    tok = word_tokenizer(["good", "bad", "the"], eos=True)
    base = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    cfg = CTRLConfig(
        beta=0.5, steps=2, prompts_per_step=1, group_size=2, max_new_tokens=2,
        learning_rate=1e-2, references=3, checkpoint_every=1, seed=0,
    )  # fmt: skip

    def trainer():
        return CTRLTrainer(
            copy.deepcopy(base), tok, ["<s> the"], WordCount("good"), ia.Identity(), cfg,
            reference=base, run_dir=tmp_path / "run", progress=False,
        )  # fmt: skip

    first = trainer()
    first.train()
    assert trainer().step_count == 2  # an honest checkpoint resumes under weights_only
    marker = tmp_path / "pwned"
    torch.save({"policy": _Planted(str(marker))}, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(pickle.UnpicklingError):
        trainer()
    assert not marker.exists()
