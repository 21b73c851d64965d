"""Checks of the procedures beyond order statistics: limits, enumeration, Monte Carlo.

Each check returns its residual on one generated instance (see :mod:`.verify`); the
references here are written independently of the procedures' own routes: every ordered
n-tuple of levels run through the procedure, and a simulation of it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .calibration import level_midpoints
from .laws import DiscreteLaw
from .metrics import standard_win_rate, win_rate
from .policy import apply, base_policy, tilt
from .procedures import best_of, sampling, soft_best_of, threshold_sampling
from .transforms import Identity

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
    """The worst of the two simulated E[C], in standard errors from the exact value."""
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
        se = max(float(sim.std()) / math.sqrt(sim.size), 1e-12)
        exact = standard_win_rate(apply(proc, pol))
        worst = max(worst, abs(float(sim.mean()) - exact) / se)
    return worst, 5.0


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
    raise KeyError(name)


CHECKS = {
    "soft_best_of_limits": check_soft_limits,
    "threshold_limits": check_threshold_limits,
    "procedures_match_enumeration": check_enumeration,
    "procedures_match_monte_carlo": check_monte_carlo,
}
