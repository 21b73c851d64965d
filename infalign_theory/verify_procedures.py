"""Checks of the procedures beyond order statistics: limits, enumeration, Monte Carlo, Theorem 1.

Each check returns its residual on one generated instance (see :mod:`.verify`); the
references here are written independently of the procedures' own routes: every ordered
n-tuple of levels run through the procedure, a simulation of it, and (for the optimum of
Theorem 1) the win rate as the enumeration's polynomial in the level masses, or finite
differences of the library's W_T and KL along tilts of the optimum.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .calibration import level_midpoints
from .curves import beta_for_kl
from .laws import DiscreteLaw
from .metrics import kl, standard_win_rate, win_rate
from .policy import apply, base_policy, tilt
from .procedures import Procedure, best_of, sampling, soft_best_of, threshold_sampling
from .transforms import Exponential, Identity, Transform

STATEMENTS = {
    "soft_best_of_limits": (
        "soft Best-of-n tends to Best-of-n as the temperature -> 0 and to sampling as it grows",
        "Verdun et al., arXiv 2505.03156",
    ),
    "threshold_limits": (
        "threshold sampling with tau = 0 is sampling and with tau = 1 is Best-of-n",
        "Beirami et al., arXiv 2401.01879, §6",
    ),
    "procedures_match_enumeration": (
        "soft Best-of-n and threshold sampling equal the enumeration of every n-tuple of draws",
        "definitions (DESIGN §2)",
    ),
    "procedures_match_monte_carlo": (
        "E[C] of soft Best-of-n and threshold sampling agree with a simulation (within 5 s.e.)",
        "definitions (DESIGN §2)",
    ),
    "procedures_theorem1_optimum": (
        "the optimum for soft Best-of-n or threshold sampling is stationary (W_T - beta KL) "
        "and beats the identity and exp(t) at its KL",
        "InfAlign, arXiv 2412.19792, Theorem 1",
    ),
}


def _enumerate(p: np.ndarray, c: np.ndarray, n: int, pick: Any) -> np.ndarray:
    out = np.zeros(p.size)
    for tup in itertools.product(range(p.size), repeat=n):
        prob = math.prod(p[i] for i in tup)
        for i, share in pick(tup):
            out[i] += prob * share
    return out


def _soft_pick(c: np.ndarray, lam: float) -> Any:
    def pick(tup: tuple[int, ...]) -> list[tuple[int, float]]:
        top = max(c[i] for i in tup)
        w = [math.exp((c[i] - top) / lam) for i in tup]
        return [(i, wi / sum(w)) for i, wi in zip(tup, w, strict=True)]

    return pick


def _threshold_pick(c: np.ndarray, tau: float) -> Any:
    def pick(tup: tuple[int, ...]) -> list[tuple[int, float]]:
        passing = [i for i in tup if c[i] >= tau]
        return [(passing[0] if passing else max(tup), 1.0)]

    return pick


def check_soft_limits(law: DiscreteLaw, beta: float, n: int) -> tuple[float, float]:
    """Max |soft(lam small) - Best-of-n| and n-scaled |soft(lam = 1e8) - sampling| on masses."""
    pol = tilt(Identity(), beta, law)
    gap = float(np.min(np.diff(level_midpoints(law)[0])))
    cold = apply(soft_best_of(n, gap / 200.0), pol).probs  # e^-200 of the lower levels
    hot = apply(soft_best_of(n, 1e8), pol).probs  # weights within 1e-8 of each other
    bon = apply(best_of(n), pol).probs
    return float(max(np.abs(cold - bon).max(), 1e-7 * np.abs(hot - pol.probs).max())), 1e-13


def check_threshold_limits(law: DiscreteLaw | None, beta: float, n: int) -> tuple[float, float]:
    """|W(tau = 0) - W(sampling)| and |W(tau = 1) - W(Best-of-n)|."""
    pol = tilt(Identity(), beta, law)
    r0 = abs(win_rate(pol, threshold_sampling(n, 0.0)) - win_rate(pol, sampling()))
    r1 = abs(win_rate(pol, threshold_sampling(n, 1.0)) - win_rate(pol, best_of(n)))
    return max(r0, r1), 1e-11


def check_enumeration(
    law: DiscreteLaw, p: np.ndarray, n: int, lam: float, tau: float
) -> tuple[float, float]:
    """Largest difference of level masses from the enumeration of all n-tuples."""
    from .policy import DiscretePolicy

    pol = DiscretePolicy(law, p)
    c = level_midpoints(law)[0]
    soft = apply(soft_best_of(n, lam), pol).probs - _enumerate(pol.probs, c, n, _soft_pick(c, lam))
    thr = apply(threshold_sampling(n, tau), pol).probs - _enumerate(
        pol.probs, c, n, _threshold_pick(c, tau)
    )
    return float(max(np.abs(soft).max(), np.abs(thr).max())), 1e-13


def check_monte_carlo(
    law: DiscreteLaw, n: int, lam: float, tau: float, rng: int
) -> tuple[float, float]:
    """The worst of the two simulated E[C], in standard errors from the exact value.

    The standard error is the exact decoded law's (its variance over the draws), not the
    sample's: a rare outcome that no draw hit leaves the sample's spread near zero and would
    turn an agreement to within that outcome's mass into thousands of standard errors. The
    miss is taken less one draw's worth, since a rare outcome hit once is as likely as not
    hit at all.
    """
    gen = np.random.default_rng(rng)
    pol = base_policy(law)
    c = level_midpoints(law)[0]
    draws = gen.choice(c.size, size=(20_000, n), p=law.probs)  # level indices
    u = c[draws]
    gumbel = gen.gumbel(size=u.shape)
    soft = u[np.arange(u.shape[0]), np.argmax(u / lam + gumbel, axis=1)]
    passed = u >= tau
    first = u[np.arange(u.shape[0]), np.argmax(passed, axis=1)]
    thr = np.where(passed.any(axis=1), first, u.max(axis=1))
    worst = 0.0
    for sim, proc in ((soft, soft_best_of(n, lam)), (thr, threshold_sampling(n, tau))):
        decoded = apply(proc, pol)
        exact = standard_win_rate(decoded)
        se = math.sqrt(float(decoded.probs @ (c - exact) ** 2) / sim.size)
        # less one draw's worth (a continuity correction): an outcome of mass 1e-6 drawn once
        # in 20,000 moves the mean by 1/20,000 of its distance, many of its tiny s.e.
        miss = max(abs(float(sim.mean()) - exact) - float(np.abs(c - exact).max()) / sim.size, 0.0)
        worst = max(worst, miss / se if se > 0.0 else (0.0 if miss <= 1e-12 else math.inf))
    return worst, 5.0


def _procedure(kind: str, n: int, parameter: float) -> Procedure:
    return soft_best_of(n, parameter) if kind == "soft" else threshold_sampling(n, parameter)


def _enumerated_win_rate(law: DiscreteLaw, kind: str, n: int, parameter: float) -> Any:
    """W_T(p) and its gradient as the polynomial the enumeration of n-tuples defines.

    o_i(p) = sum over n-tuples t of prod_l p_{t_l} times the share of level i in the pick
    from t; W_T = sum_i o_i (B_{i-1} + B_i) / 2, B the CDF of the base's decoded levels.
    """
    c = level_midpoints(law)[0]
    pick = _soft_pick(c, parameter) if kind == "soft" else _threshold_pick(c, parameter)
    tuples = np.array(list(itertools.product(range(c.size), repeat=n)), dtype=np.intp)
    shares = np.zeros((tuples.shape[0], c.size))  # (M, m)
    for row, tup in enumerate(tuples):
        for i, share in pick(tuple(tup)):
            shares[row, i] += share
    b = np.prod(law.probs[tuples], axis=1) @ shares
    B = np.cumsum(b)
    score = shares @ (0.5 * (B + np.concatenate([[0.0], B[:-1]])))  # (M,) W_T of each tuple

    def value_and_gradient(p: np.ndarray) -> tuple[float, np.ndarray]:
        factors = p[tuples]  # (M, n)
        grad = np.zeros(c.size)
        for pos in range(n):  # d/dp_k of prod_l p_{t_l}: drop one factor equal to p_k
            rest = np.prod(np.delete(factors, pos, axis=1), axis=1)
            grad += np.bincount(tuples[:, pos], weights=rest * score, minlength=c.size)
        return float(np.prod(factors, axis=1) @ score), grad

    return value_and_gradient


class _Tilted(Transform):
    """A transform plus eps * h(u): the direction of a tilt of its policy."""

    def __init__(self, inner: Transform, eps: float, h: Any):
        self.inner, self.eps, self.h = inner, eps, h

    @property
    def name(self) -> str:  # noqa: D102
        return f"{self.inner.name}+tilt"

    @property
    def offsets(self) -> tuple[float, float]:  # noqa: D102
        return self.inner.offsets

    def initial_panels(self) -> Any:  # noqa: D102
        return self.inner.initial_panels()

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self.inner._left(u) + self.eps * self.h(u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self.inner._right(s) + self.eps * self.h(1.0 - s)


#: Directions of the tilts along which the continuous optimum must be stationary.
_DIRECTIONS = (lambda u: u, lambda u: u**4, lambda u: (1.0 - u) ** 4)


def check_theorem1_procedures(
    law: DiscreteLaw | None,
    kind: str,
    n: int,
    parameter: float,
    kl_budget: float,
    ts: tuple[float, ...],
) -> tuple[float, float]:
    """The optimum at KL = ``kl_budget`` against the identity and exp(t), and its stationarity.

    The larger of: how far the best of the identity's and each exp(t)'s W_T at the
    optimum's KL exceeds the optimum's, and the first-order residual of W_T - beta KL at
    the optimum. On a discrete law W_T and its gradient are the enumeration's polynomial in
    the level masses (exact; the library's W_T must equal it), and the residual is half the
    spread of beta log(p/q) - dW_T/dp over the levels (tolerance 1e-9). On the continuous
    law it is the largest |d/de (W_T - beta KL)| along the tilts pi ∝ pi* exp(e h), h in
    {u, u^4, (1 - u)^4}, by central differences of the library's W_T and KL at e = +-1e-4
    (about 1e-10 at the optimum; tolerance 1e-7).
    """
    from .optimal import solve_optimal

    proc = _procedure(kind, n, parameter)
    sol = solve_optimal(proc, kl=kl_budget, law=law)
    rivals = [Identity(), *(Exponential(t) for t in ts)]
    if law is not None:
        w_t = _enumerated_win_rate(law, kind, n, parameter)
        mine, grad = w_t(sol.policy.probs)
        others = [w_t(tilt(tr, beta_for_kl(tr, sol.kl, law=law), law).probs)[0] for tr in rivals]
        field = sol.beta * sol.policy.log_ratio - grad
        # stationarity on the simplex, and the library's W_T against the polynomial's
        first_order = max(0.5 * float(np.ptp(field)), abs(mine - sol.win_rate))
        tolerance = 1e-9
    else:
        mine = sol.win_rate
        others = [win_rate(tilt(tr, beta_for_kl(tr, sol.kl)), proc) for tr in rivals]
        eps, first_order = 1e-4, 0.0
        for h in _DIRECTIONS:
            sides = []
            for e in (eps, -eps):
                pol = tilt(_Tilted(sol.transform, e * sol.beta, h), sol.beta)
                sides.append(win_rate(pol, proc) - sol.beta * kl(pol))
            first_order = max(first_order, abs(sides[0] - sides[1]) / (2.0 * eps))
        tolerance = 1e-7
    shortfall = max(0.0, max(others) - mine)
    return max(shortfall, first_order), tolerance


def instances(name: str, rng: np.random.Generator, random_law: Any) -> dict[str, Any]:
    """Parameters of one instance of check ``name``."""
    if name == "soft_best_of_limits":
        return dict(
            law=random_law(rng), beta=float(rng.uniform(0.1, 2.0)), n=int(rng.integers(1, 9))
        )
    if name == "threshold_limits":
        law = random_law(rng) if rng.random() < 0.5 else None
        return dict(law=law, beta=float(rng.uniform(0.1, 2.0)), n=int(rng.integers(1, 17)))
    if name == "procedures_match_enumeration":
        law = random_law(rng, 2, 4)
        return dict(
            law=law,
            p=rng.dirichlet(np.ones(law.n_levels)),
            n=int(rng.integers(1, 5)),
            lam=float(10.0 ** rng.uniform(-3, 1)),
            tau=float(rng.uniform(0.0, 1.0)),
        )
    if name == "procedures_match_monte_carlo":
        return dict(
            law=random_law(rng),
            n=int(rng.integers(1, 9)),
            lam=float(10.0 ** rng.uniform(-2, 0.5)),
            tau=float(rng.uniform(0.0, 1.0)),
            rng=int(rng.integers(2**31)),
        )
    if name == "procedures_theorem1_optimum":
        kind = "soft" if rng.random() < 0.5 else "threshold"
        ts = tuple(float(np.round(10 ** rng.uniform(0.0, 1.3), 3)) for _ in range(3))
        if rng.random() < 0.75:  # discrete: small enough to enumerate every n-tuple
            law = random_law(rng, 2, 5)
            top = -math.log(law.probs[-1])  # the largest KL an increasing tilt reaches
            n, budget = int(rng.integers(2, 5)), float(rng.uniform(0.1, 0.7)) * top
            lam = float(10.0 ** rng.uniform(-1.5, 0.5))
        else:
            # continuous solves take seconds to a minute: one instance in four
            law, n, budget = None, int(rng.integers(2, 7)), float(rng.uniform(0.1, 1.5))
            lam = float(10.0 ** rng.uniform(-1.0, 0.0))
        parameter = lam if kind == "soft" else float(rng.uniform(0.2, 0.95))
        return dict(law=law, kind=kind, n=n, parameter=parameter, kl_budget=budget, ts=ts)
    raise KeyError(name)


CHECKS = {
    "soft_best_of_limits": check_soft_limits,
    "threshold_limits": check_threshold_limits,
    "procedures_match_enumeration": check_enumeration,
    "procedures_match_monte_carlo": check_monte_carlo,
    "procedures_theorem1_optimum": check_theorem1_procedures,
}
