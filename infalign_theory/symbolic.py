r"""Closed forms *derived* with sympy, for checking the numeric kernels against.

Nothing here is transcribed: every expression is obtained by sympy from its definition --
an order-statistic CDF, a tilt's normaliser -- by differentiation, integration and
simplification. sympy is imported lazily, inside each function, so the core never pays for
it. The results are sympy expressions (symbolic in N, c = 1/beta, a = 1/beta) or exact
rationals; :func:`lambdify` turns them into numpy functions.

* :func:`order_statistic_cdf` -- the CDF of the k-th smallest of n uniforms, a binomial tail;
* :func:`best_of_n` -- its k = n case: density N u^(N-1), KL log N - (N-1)/N and standard
  win rate N/(N+1) (Beirami et al., arXiv 2401.01879);
* :func:`identity_tilt` -- calibrated RLHF, f = c e^(cu) / Z(c): Z, KL, standard win rate,
  and the Best-of-n win rate for a given integer n;
* :func:`log_tilt` -- the log transform, f = (1/beta + 1) u^(1/beta), with its KL and win rate;
* :func:`best_of_m_win_rates` -- the Best-of-n and Worst-of-n win rates of a Best-of-m policy
  against the same procedure on the base, exact rationals for integers m, n.
"""

from __future__ import annotations

from typing import Any


def order_statistic_cdf(k: Any, n: Any) -> Any:
    r"""P(k-th smallest of n i.i.d. Uniform[0, 1] <= u) = sum_{j >= k} C(n, j) u^j (1-u)^(n-j).

    Derived from "at least k of the n samples fall below u", a binomial tail.
    """
    import sympy as sp

    u = sp.Symbol("u", positive=True)
    j = sp.Symbol("j", integer=True, nonnegative=True)
    return sp.summation(sp.binomial(n, j) * u**j * (1 - u) ** (n - j), (j, k, n))


def best_of_n() -> dict[str, Any]:
    """Density, KL and standard win rate of the Best-of-N policy, symbolic in N.

    The density is the derivative of the order-statistic CDF at k = N; the KL and the win
    rate E[U] are integrals of it, simplified by sympy.
    """
    import sympy as sp

    u = sp.Symbol("u", positive=True)
    N = sp.Symbol("N", positive=True, integer=True)
    cdf = sp.simplify(order_statistic_cdf(N, N))  # = u**N
    density = sp.simplify(sp.diff(cdf, u))
    kl = sp.simplify(
        sp.integrate(sp.expand_log(density * sp.log(density), force=True), (u, 0, 1), conds="none")
    )
    win = sp.simplify(sp.integrate(u * density, (u, 0, 1), conds="none"))
    return {"u": u, "N": N, "cdf": cdf, "density": density, "kl": kl, "standard_win_rate": win}


def identity_tilt(n: int | None = None) -> dict[str, Any]:
    """The tilt exp(c u) of Uniform[0, 1], c = 1/beta: Z(c), density, KL, standard win rate.

    With an integer ``n``, also the Best-of-n win rate against Best-of-n of the base,
    1 - int_0^1 G(u)^n n u^(n-1) du with G the tilt's CDF.
    """
    import sympy as sp

    u, x = sp.symbols("u x", positive=True)
    c = sp.Symbol("c", positive=True)
    Z = sp.simplify(sp.integrate(sp.exp(c * u), (u, 0, 1)))
    density = sp.exp(c * u) / Z
    kl = sp.simplify(sp.integrate(density * sp.expand_log(sp.log(density), force=True), (u, 0, 1)))
    win = sp.simplify(sp.integrate(u * density, (u, 0, 1)))
    out = {"u": u, "c": c, "Z": Z, "density": density, "kl": kl, "standard_win_rate": win}
    if n is not None:
        G = sp.simplify(sp.integrate(density.subs(u, x), (x, 0, u)))
        out["cdf"] = G
        out["best_of_n_win_rate"] = sp.simplify(
            1 - sp.integrate(sp.expand(G**n * n * u ** (n - 1)), (u, 0, 1))
        )
    return out


def log_tilt() -> dict[str, Any]:
    """The tilt u^a = exp(log(u)/beta), a = 1/beta: density (a + 1) u^a, KL, win rate."""
    import sympy as sp

    u = sp.Symbol("u", positive=True)
    a = sp.Symbol("a", positive=True)
    Z = sp.simplify(sp.integrate(u**a, (u, 0, 1)))
    density = sp.simplify(u**a / Z)
    kl = sp.simplify(
        sp.integrate(sp.expand_log(density * sp.log(density), force=True), (u, 0, 1), conds="none")
    )
    win = sp.simplify(sp.integrate(u * density, (u, 0, 1), conds="none"))
    return {"u": u, "a": a, "Z": Z, "density": density, "kl": kl, "standard_win_rate": win}


def best_of_m_win_rates(m: int, n: int) -> dict[str, Any]:
    r"""Exact Best-of-n and Worst-of-n win rates of the Best-of-m policy (CDF u^m).

    Both sides decoded with the procedure:
    :math:`W = \int_0^1 (1 - g(u^m))\, g'(u)\, du` with g(F) = F^n (Best-of-n) or
    1 - (1 - F)^n (Worst-of-n); polynomial integrands, so the results are rationals.
    """
    import sympy as sp

    u = sp.Symbol("u", positive=True)
    G = u**m
    g_best = lambda F: F**n  # noqa: E731
    g_worst = lambda F: 1 - (1 - F) ** n  # noqa: E731
    out = {}
    for name, g in (("best_of_n", g_best), ("worst_of_n", g_worst)):
        antiderivative = sp.Poly((1 - g(G)) * sp.diff(g(u), u), u).integrate()
        out[name] = sp.Rational(antiderivative.eval(1) - antiderivative.eval(0))
    return out


def lambdify(symbols: Any, expr: Any) -> Any:
    """A numpy function of ``symbols`` evaluating ``expr`` (mpmath-free, for grids)."""
    import sympy as sp

    return sp.lambdify(symbols, expr, modules="numpy")
