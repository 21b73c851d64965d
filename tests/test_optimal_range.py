"""The Theorem 1 solver over its whole range: beta from 1e-300 to 1e300, KL budgets from 1e-15,
N up to 1024. Every reference here is independent of the solver:

* near the base, the expansion of the value function in the KL budget, with coefficients
  integrated exactly by sympy (rational polynomials);
* exact identities that the stationarity condition implies (derived below), checked on the
  returned policy at any N;
* the KL of the returned transform recomputed from its values alone;
* a crude direct maximiser over the simplex, with a brute-force win-rate formula written
  here, on small discrete laws with ties;
* the exponential family and the identity at equal KL (the optimum is never below them).
"""

from __future__ import annotations

import math
import time
from functools import cache

import numpy as np
import pytest
import sympy as sp
from scipy import optimize, special

import infalign_theory as ia
from infalign_theory.optimal import pareto_frontier, solve_optimal

LAW = ia.DiscreteLaw([0.0, 1.0, 1.0, 2.0, 3.0], [0.3, 0.1, 0.2, 0.25, 0.15])  # ties at 1.0
BUDGETS = [1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.1, 1.0, 5.0]


# --------------------------------------------------------------------------------------
# Independent references.
# --------------------------------------------------------------------------------------
def phi(z: np.ndarray) -> np.ndarray:
    """1 + (z - 1) e^z >= 0 without cancellation: z^2/2 + z^3/3 + z^4/8 + ... for small z."""
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < 0.1
    zs = z[small]
    series = sum((k - 1) / math.factorial(k) * zs**k for k in range(2, 16))
    out = np.empty_like(z)
    out[small] = series
    out[~small] = 1.0 + (z[~small] - 1.0) * np.exp(z[~small])
    return out


def tilt_kl(x: np.ndarray, weights: np.ndarray) -> float:
    """KL of the tilt e^x / E[e^x] against the base weights (summing to 1), for x = Phi/beta.

    Near the base, with c = x - E[x]: log E[e^c] = log1p(E[expm1(c) - c]), both terms
    accurate however small c is; then KL = E[phi(c - log E e^c)].
    """
    if np.ptp(x) < 1.0:
        c = x - weights @ x
        log_z = math.log1p(float(weights @ (np.expm1(c) - c)))
    else:  # far from the base: shift by the maximum (a mean over -1e9 would cost digits)
        c = x - np.max(x)
        log_z = math.log(float(weights @ np.exp(c)))
    return float(weights @ phi(c - log_z))


def continuous_kl(sol) -> float:
    """KL of the tilt by sol.transform at sol.beta, by composite Gauss-Legendre on [0, 1]
    with panels graded geometrically towards both ends (where R varies fastest)."""
    inner = np.geomspace(1e-12, 0.5, 400)
    edges = np.unique(np.concatenate([[0.0], inner, 1.0 - inner[::-1], [1.0]]))
    xi, wi = np.polynomial.legendre.leggauss(20)
    a, b = edges[:-1, None], edges[1:, None]
    u = (0.5 * (a + b) + 0.5 * (b - a) * xi[None, :]).ravel()
    w = (0.5 * (b - a) * wi[None, :]).ravel()
    return tilt_kl(sol.transform(u) / sol.beta, w / w.sum())


def discrete_kl(sol, law: ia.DiscreteLaw) -> float:
    """KL of the tilt by the level values of sol.transform at sol.beta (not from its probs)."""
    return tilt_kl(sol.transform.values / sol.beta, law.probs)


def brute_win_rate(p: np.ndarray, q: np.ndarray, k: int, n: int, against: str) -> float:
    """W(T(pi) > T'(pi_ref)) on levels, ties 1/2: the level law of the k-th smallest of n
    draws is g(P_j) - g(P_{j-1}), g(x) = I_x(k, n - k + 1); then the double sum."""

    def level_law(probs, kk, nn):
        cdf = np.clip(np.cumsum(probs), 0.0, 1.0)
        g = special.betainc(kk, nn - kk + 1, cdf) if nn > 1 else cdf
        return np.diff(np.concatenate([[0.0], g]))

    a = level_law(p, k, n)
    b = level_law(q, k, n) if against == "procedure" else q
    below = np.concatenate([[0.0], np.cumsum(b)[:-1]])  # P(T' level < j)
    return float(a @ (below + 0.5 * b))


def direct_maximum(law, k, n, beta, against, starts=12, seed=0):
    """max over the simplex of W(p) - beta KL(p) by BFGS on softmax logits, from the base,
    the top vertex's neighbourhood and random starts: crude, slow, independent."""
    q = law.probs
    rng = np.random.default_rng(seed)

    def objective(theta):
        ell = theta - theta.max()
        p = q * np.exp(ell)
        p /= p.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = float(np.sum(np.where(p > 0, p * np.log(p / q), 0.0)))
        return -(brute_win_rate(p, q, k, n, against) - beta * kl)

    m = q.size
    inits = [np.zeros(m), np.linspace(0.0, 5.0, m), np.linspace(0.0, -5.0, m)]
    inits += [rng.normal(0.0, 3.0, m) for _ in range(starts)]
    best = None
    for x0 in inits:
        res = optimize.minimize(objective, x0, method="BFGS", options={"gtol": 1e-12})
        if best is None or res.fun < best.fun:
            best = res
    ell = best.x - best.x.max()
    p = q * np.exp(ell)
    return p / p.sum(), -best.fun


@cache
def expansion(k: int, n: int, against: str) -> tuple[float, float, float]:
    """(W_0, a, b) with V(kappa) = W_0 + a sqrt(kappa) + b kappa + O(kappa^(3/2)) the best W_T
    at KL = kappa (continuous), integrated exactly by sympy.

    Write f = 1 + h. With g the procedure's CDF map and g_ref the base side's,
    W_T(f) = 1 - int g(G) g_ref', so along h = t r (r = R_0 - E R_0, H = int_0^u r):
    W = W_0 + t V + t^2 Q / 2 + O(t^3), V = int r^2, Q = -int g''(u) H^2 g_ref'(u) du, and
    KL = t^2 V / 2 - t^3 int r^3 / 6 + O(t^4). A correction orthogonal to r costs KL at
    second order and gains W only through Q at third, so at KL = kappa:
    a = sqrt(2 V) and b = (int r^3 / 3 + Q) / V.
    """
    u, v = sp.symbols("u v", positive=True)
    kr, nr = (k, n) if against == "procedure" else (1, 1)

    def density(kk, nn, x):
        return x ** (kk - 1) * (1 - x) ** (nn - kk) / sp.beta(kk, nn - kk + 1)

    g_prime = density(k, n, u)
    g = sp.integrate(g_prime.subs(u, v), (v, 0, u))
    ref_prime = density(kr, nr, u)
    r0 = sp.integrate((g_prime * ref_prime).subs(u, v), (v, 0, u))
    r = sp.expand(r0 - sp.integrate(r0, (u, 0, 1)))
    V = sp.integrate(r**2, (u, 0, 1))
    H = sp.integrate(r.subs(u, v), (v, 0, u))
    Q = -sp.integrate(sp.diff(g_prime, u) * H**2 * ref_prime, (u, 0, 1))
    m3 = sp.integrate(r**3, (u, 0, 1))
    W0 = 1 - sp.integrate(g * ref_prime, (u, 0, 1))
    return float(W0), float(sp.sqrt(2 * V)), float((m3 / 3 + Q) / V)


# --------------------------------------------------------------------------------------
# Small KL budgets and large beta: the base policy and the expansion around it.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k, n, against",
    [(4, 4, "procedure"), (1, 4, "procedure"), (2, 5, "procedure"), (3, 3, "sample")],
)
@pytest.mark.parametrize("budget", [1e-15, 1e-12, 1e-9, 1e-6])
def test_small_budgets_follow_the_expansion(k, n, against, budget):
    sol = solve_optimal(ia.order_statistic(k, n), kl=budget, against=against)
    w0, a, b = expansion(k, n, against)
    assert abs(sol.kl - budget) <= 1e-9 * budget
    assert abs(continuous_kl(sol) - budget) <= 1e-9 * budget
    # The remainder is O(kappa^(3/2)): 30 kappa^(3/2) is 3e-8 at 1e-6; 2e-15 for the rounding
    # of W_T (10 ulps of 1/2).
    assert sol.win_rate == pytest.approx(w0 + a * math.sqrt(budget) + b * budget,
                                         abs=30 * budget**1.5 + 2e-15)  # fmt: skip
    assert sol.converged and not sol.saturated


def test_the_expansion_is_not_first_order_only():
    # The second-order term is what the test above resolves at 1e-6: without it the error
    # would be b kappa, well above the tolerance. Guards against a vacuous comparison.
    w0, a, b = expansion(4, 4, "procedure")
    assert abs(b) * 1e-6 > 3 * (30 * 1e-9 + 2e-15)


@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4), ia.order_statistic(2, 5)],
                         ids=lambda p: p.name)  # fmt: skip
def test_beta_huge_is_the_base_with_the_first_variation_as_transform(proc):
    from scipy import integrate, stats

    sol = solve_optimal(proc, beta=1e300)
    assert sol.beta == 1e300 and sol.kl == 0.0
    assert sol.win_rate == pytest.approx(0.5, abs=1e-15)
    assert sol.converged and not sol.saturated and sol.residual == 0.0
    # R_0(v) = int_0^v g'(u)^2 du, by scipy quad on scipy's Beta density.
    dens = stats.beta(proc.k, proc.n - proc.k + 1).pdf
    for v in (0.1, 0.5, 0.9, 1.0):
        ref = integrate.quad(lambda x: dens(x) ** 2, 0.0, v, epsabs=1e-14, epsrel=1e-13)[0]
        got = float(sol.transform([v])[0] - sol.transform([0.0])[0])
        assert got == pytest.approx(ref, rel=1e-11)


@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4)], ids=lambda p: p.name)
def test_beta_huge_on_a_discrete_law_is_the_base(proc):
    sol = solve_optimal(proc, beta=1e300, law=LAW)
    np.testing.assert_allclose(sol.policy.probs, LAW.probs, rtol=1e-15)
    assert sol.kl == 0.0 and sol.win_rate == pytest.approx(0.5, abs=1e-15)


# --------------------------------------------------------------------------------------
# KL budgets over 16 orders of magnitude: met to 1e-9 relative, checked independently.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4)], ids=lambda p: p.name)
def test_budgets_are_met_continuous(proc):
    for budget in BUDGETS:
        sol = solve_optimal(proc, kl=budget)
        assert not sol.saturated, budget
        assert abs(sol.kl - budget) <= 1e-9 * budget, budget
        assert abs(continuous_kl(sol) - budget) <= 1e-9 * budget, budget


@pytest.mark.parametrize(
    "proc", [ia.best_of(4), ia.worst_of(4), ia.order_statistic(2, 4)], ids=lambda p: p.name
)
def test_budgets_are_met_discrete(proc):
    limit = -math.log(LAW.probs[-1])  # all mass on the top level
    for budget in [b for b in BUDGETS if b < limit] + [0.999 * limit]:
        sol = solve_optimal(proc, kl=budget, law=LAW)
        if sol.saturated:  # within 1e-10 of the best W_T on this law, at a smaller KL
            assert sol.kl < budget
            continue
        assert abs(sol.kl - budget) <= 1e-9 * budget, budget
        assert abs(discrete_kl(sol, LAW) - budget) <= 1e-9 * budget, budget


def test_frontier_with_a_tiny_budget_in_its_grid():
    grid = [0.0, 1e-15, 1e-9, 0.5, 2.0]
    for proc in (ia.best_of(4), ia.worst_of(4)):
        front = pareto_frontier(proc, grid)
        np.testing.assert_allclose(front.kl, grid, rtol=1e-9, atol=0.0)
        assert np.all(np.diff(front.win_rate) > 0)
    w0, a, b = expansion(4, 4, "procedure")
    assert front.win_rate[1] == pytest.approx(w0 + a * math.sqrt(1e-15) + b * 1e-15, abs=1e-15)


# --------------------------------------------------------------------------------------
# Small beta: the optimum's limit.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4), ia.best_of(1024)],
                         ids=lambda p: p.name)  # fmt: skip
def test_beta_tiny_saturates_continuous(proc):
    # sup W_T = 1 (all mass next to u = 1), approached as beta -> 0 with KL -> infinity.
    # The solution returned is saturated: at its own (larger) beta, W_T within 1e-10 of 1,
    # so the objective at beta = 1e-300 is within 1e-10 of its supremum.
    sol = solve_optimal(proc, beta=1e-300)
    assert sol.saturated and sol.converged
    assert 1.0 - sol.win_rate < 1e-10 and sol.beta < 1e-6
    assert sol.win_rate - 1e-300 * sol.kl > 1.0 - 1e-10


@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4), ia.order_statistic(2, 4)],
                         ids=lambda p: p.name)  # fmt: skip
def test_beta_tiny_on_a_discrete_law_reaches_the_top_level(proc):
    # On levels sup W_T is attained: all mass on the top level (KL = -log q_top).
    top = np.zeros(LAW.n_levels)
    top[-1] = 1.0
    ceiling = brute_win_rate(top, LAW.probs, proc.k, proc.n, "procedure")
    sol = solve_optimal(proc, beta=1e-300, law=LAW)
    assert ceiling - 1e-10 <= sol.win_rate <= ceiling + 1e-15
    assert sol.kl <= -math.log(LAW.probs[-1]) + 1e-12


def test_beta_outside_the_range_is_refused():
    for beta in (1e-301, 1e301):
        with pytest.raises(ValueError, match=r"beta must be in \[1e-300, 1e\+300\]"):
            solve_optimal(ia.best_of(4), beta=beta)


# --------------------------------------------------------------------------------------
# Exact identities at the optimum, for any N.
# --------------------------------------------------------------------------------------
# At a stationary point beta (log f)' = R' = g'(G(u)) g_ref'(u), so beta f' = h' g_ref' with
# h = g(G) (h(0) = 0, h(1) = 1) and W_T = 1 - int h g_ref'.
#  * Best-of-N (g_ref = u^N): multiply by u and integrate; u g_ref' = N g_ref gives
#    beta (f(1) - 1) = N int h' g_ref = N W_T.
#  * Worst-of-N (g_ref = 1 - (1 - u)^N): multiply by 1 - u; (1 - u) g_ref' = N (1 - g_ref)
#    gives beta (1 - f(0)) = N (1 - W_T).
#  * Against one sample (g_ref' = 1): beta (f(1) - f(0)) = h(1) - h(0) = 1.
def end_identity(sol) -> tuple[float, float]:
    """(lhs, rhs) of the identity for ``sol``."""
    proc, beta = sol.procedure, sol.beta
    f0, f1 = sol.policy.pdf([0.0, 1.0])
    if sol.against == "sample":
        return beta * (f1 - f0), 1.0
    if proc.k == proc.n:
        return sol.win_rate, beta * (f1 - 1.0) / proc.n
    return 1.0 - sol.win_rate, beta * (1.0 - f0) / proc.n


@pytest.mark.parametrize(
    "proc, kw, against",
    [
        (ia.best_of(1024), {"kl": 0.03}, "procedure"),
        (ia.worst_of(1024), {"kl": 0.01}, "procedure"),
        (ia.best_of(512), {"beta": 1.0}, "procedure"),
        (ia.worst_of(256), {"beta": 1e-6}, "procedure"),
        (ia.best_of(1024), {"kl": 0.1}, "sample"),
        (ia.worst_of(1024), {"kl": 0.5}, "sample"),
        (ia.best_of(4), {"beta": 1e-6}, "sample"),
    ],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_stationarity_identities_at_large_n(proc, kw, against):
    sol = solve_optimal(proc, against=against, **kw)
    assert not sol.saturated  # the identities hold to the residual: not at its floor
    lhs, rhs = end_identity(sol)
    assert lhs == pytest.approx(rhs, rel=1e-8)
    if "kl" in kw and not sol.saturated:
        assert abs(sol.kl - kw["kl"]) <= 1e-9 * kw["kl"]


@pytest.mark.parametrize(
    "proc, budget", [(ia.best_of(1024), 0.03), (ia.worst_of(1024), 0.01)], ids=str
)
def test_large_n_beats_the_exponential_family_and_the_identity(proc, budget):
    sol = solve_optimal(proc, kl=budget)
    _, w_exp = ia.best_exponent(proc, budget)
    w_id = ia.tradeoff_curve(ia.Identity(), proc, kls=[budget]).win_rate[0]
    assert sol.win_rate >= w_exp - 1e-12 and sol.win_rate >= w_id - 1e-12
    assert sol.win_rate > w_id + 0.3  # far above the identity: not a vacuous comparison


# --------------------------------------------------------------------------------------
# Discrete laws with ties: a direct maximiser written here.
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "proc, beta",
    [
        (ia.best_of(4), 0.05),
        (ia.worst_of(4), 0.02),
        (ia.best_of(1024), 1e-3),
        (ia.worst_of(1024), 0.3),
        (ia.order_statistic(300, 1024), 0.01),
    ],
    ids=str,
)
def test_discrete_large_n_matches_a_direct_maximiser(proc, beta):
    sol = solve_optimal(proc, beta=beta, law=LAW)
    p, value = direct_maximum(LAW, proc.k, proc.n, beta, "procedure")
    w = brute_win_rate(sol.policy.probs, LAW.probs, proc.k, proc.n, "procedure")
    assert sol.win_rate == pytest.approx(w, abs=1e-12)
    assert sol.objective >= value - 1e-10  # never below the crude maximiser
    assert sol.objective == pytest.approx(value, abs=1e-8)
    np.testing.assert_allclose(sol.policy.probs, p, atol=1e-4)


#: The base rewards of the prompt "Reply politely to an angry customer email." in
#: examples/data/rewards.csv (30 samples, 11 levels: two thirds of the mass tied at 0.0).
REPLY_POLITELY = [-1.19, -0.16, -0.12, -0.06, -0.04] + [0.0] * 20 + [0.45, 0.57, 0.9, 0.97, 1.09]


def test_worst_of_4_at_a_given_beta_returns_the_global_maximum_of_two_branches():
    # W_T - beta KL has two local maxima here at beta = 0.05: the path from the base (and the
    # exponential starts tilted at beta) stop on a low-KL branch (KL 0.19, W_T 0.7596,
    # objective 0.7499); emptying the levels up to the big tie at 0.0 gives KL 1.79,
    # W_T 0.9996, objective 0.9100. The solver must return the second, the global maximum.
    law = ia.DiscreteLaw.from_samples(REPLY_POLITELY)
    beta = 0.05
    sol = solve_optimal(ia.worst_of(4), beta=beta, law=law)
    p, value = direct_maximum(law, 1, 4, beta, "procedure")
    assert value == pytest.approx(0.9100272590, abs=1e-9)  # the direct maximiser's own value
    assert sol.objective >= value - 1e-10
    assert sol.objective == pytest.approx(value, abs=1e-9)
    assert sol.kl == pytest.approx(1.79178, abs=1e-4)
    np.testing.assert_allclose(sol.policy.probs, p, atol=1e-5)
    w = brute_win_rate(sol.policy.probs, law.probs, 1, 4, "procedure")
    assert sol.win_rate == pytest.approx(w, abs=1e-12)
    # The other branch exists (it is what a start near the base finds) and is far below.
    low = [d for d in sol.stationary_points if d["kl"] < 0.5]
    assert low and max(d["objective"] for d in low) < 0.76 < sol.objective - 0.15
    # At the KL it spends, the budget form of the problem agrees.
    by_kl = solve_optimal(ia.worst_of(4), kl=sol.kl, law=law)
    assert by_kl.win_rate == pytest.approx(sol.win_rate, abs=1e-10)


# --------------------------------------------------------------------------------------
# The sweep: N = 256 to 1024, a grid of KL and beta, continuous and discrete.
# --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("n", [256, 512, 1024])
@pytest.mark.parametrize("make", [ia.best_of, ia.worst_of], ids=["best", "worst"])
@pytest.mark.parametrize("law", [None, LAW], ids=["continuous", "discrete"])
def test_sweep_large_n(n, make, law):
    proc = make(n)
    budgets = [0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 5.0]
    if law is not None:
        limit = -math.log(law.probs[-1])
        budgets = [b for b in budgets if b < limit] + [0.999 * limit]
    betas = [1e-300, 1e-6, 1e-2, 1.0, 1e2, 1e300]
    start = time.process_time()
    for budget in budgets:
        sol = solve_optimal(proc, kl=budget, law=law)
        assert sol.converged
        assert sol.saturated or abs(sol.kl - budget) <= 1e-9 * budget
        w_id = ia.tradeoff_curve(ia.Identity(), proc, law=law, kls=[sol.kl]).win_rate[0]
        assert sol.win_rate >= w_id - 1e-10
        if law is None:
            assert sol.win_rate >= ia.best_exponent(proc, sol.kl)[1] - 1e-10
            if not sol.saturated:
                lhs, rhs = end_identity(sol)
                assert lhs == pytest.approx(rhs, rel=1e-6)
    for beta in betas:
        sol = solve_optimal(proc, beta=beta, law=law)
        assert sol.converged and (sol.saturated or sol.beta == beta)
    cpu = time.process_time() - start
    kind = "discrete" if law else "continuous"
    print(f"{proc.name} {kind}: {len(budgets) + len(betas)} solved in {cpu:.1f} s CPU")
