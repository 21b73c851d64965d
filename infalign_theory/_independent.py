r"""The independent routes the checks of :mod:`infalign_theory.verify` compare the library with.

Nothing here calls the library's metrics, policies or kernels; the library's types only carry
the instance (a law's levels and masses, a procedure's k and n, a transform's values).

* **Theorem 1 on discrete laws.** :func:`objective_by_definition` computes
  :math:`W_T - \beta\,KL` of level masses from the definitions: the level law of the k-th
  smallest of n draws from the binomial sum :math:`P(\mathrm{Bin}(n, F) \ge k)`, the win rate
  with ties 1/2, the KL by ``scipy.special.rel_entr``. :func:`maximise_directly` maximises it
  over the simplex with generic optimisers (BFGS from several starts, then SLSQP), with
  gradients by central differences only.
* **Continuous laws in their own reward coordinate.** :func:`reward_space_metrics` integrates
  the tilt :math:`d(x)\,e^{\Phi(D(x))/\beta}` of a scipy.stats law over rewards x by
  composite Gauss-Legendre quadrature on panels placed at the law's quantiles (so the
  panels hold the mass, in the tails too), twice with different orders: the difference,
  plus a bound on the tails beyond the panels, is its error estimate. It never integrates
  in calibrated coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize, special

from .laws import DiscreteLaw
from .procedures import OrderStatistic
from .transforms import Transform


# --------------------------------------------------------------------------------------
# Theorem 1 on discrete laws: the objective by definition, and a generic maximiser.
# --------------------------------------------------------------------------------------
def _order_cdf(F: np.ndarray, k: int, n: int) -> np.ndarray:
    """P(the k-th smallest of n draws is at most a level of CDF F) = P(Bin(n, F) >= k).

    The binomial sum itself, a polynomial in F, elementwise: smooth across the simplex's
    faces, so central differences may step slightly outside [0, 1].
    """
    i = np.arange(k, n + 1)
    coef = np.array([math.comb(n, j) for j in i], dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)[..., None]
    return np.sum(coef * F**i * (1.0 - F) ** (n - i), axis=-1)


def _objective_rows(
    law: DiscreteLaw, procedure: OrderStatistic, beta: float
) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`objective_by_definition` as a function of many rows of masses (shape (B, m))."""
    k, n = procedure.k, procedure.n
    B = _order_cdf(np.concatenate([[0.0], np.cumsum(law.probs[:-1]), [1.0]]), k, n)
    against = (B[:-1] + B[1:]) / 2.0  # a level of T(pi) beats T(pi_ref) below it, ties 1/2

    def objective(p: np.ndarray) -> np.ndarray:
        p = p / p.sum(axis=-1, keepdims=True)
        P = np.cumsum(p, axis=-1)
        P[:, -1] = 1.0
        A = _order_cdf(P, k, n)
        w_t = A[:, 0] * against[0] + np.diff(A, axis=-1) @ against[1:]
        if beta == 0.0:
            return w_t
        with np.errstate(divide="ignore", invalid="ignore"):  # a mass below zero: -inf
            return w_t - beta * np.sum(special.rel_entr(p, law.probs), axis=-1)

    return objective


def objective_by_definition(
    law: DiscreteLaw, p: np.ndarray, procedure: OrderStatistic, beta: float
) -> float:
    r"""W_T - beta KL of the level masses ``p`` (normalised here), from the definitions.

    :math:`W_T = \sum_j a_j (B_{j-1} + B_j)/2`, with :math:`a_j` the masses of the level of
    T(pi) and :math:`B_j` the CDF of the level of T(pi_ref), both from the binomial sum
    :math:`P(\mathrm{Bin}(n, F) \ge k)`; KL by ``scipy.special.rel_entr``. Nothing of the
    library's metrics is used. With ``beta = 0`` it is W_T alone.
    """
    rows = np.asarray(p, dtype=np.float64).reshape(1, -1)
    return float(_objective_rows(law, procedure, beta)(rows)[0])


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max())
    return z / z.sum()


def _gradient_by_differences(
    w_t: Callable[[np.ndarray], np.ndarray], p: np.ndarray, step: float = 1e-6
) -> np.ndarray:
    """dW_T/dp by central differences of ``w_t`` (from :func:`_objective_rows`, beta = 0)."""
    eye = np.eye(p.size) * step
    w = w_t(np.concatenate([p + eye, p - eye]))
    return (w[: p.size] - w[p.size :]) / (2.0 * step)


def maximise_directly(
    law: DiscreteLaw,
    procedure: OrderStatistic,
    beta: float,
    rng: np.random.Generator,
    starts: int = 6,
) -> tuple[np.ndarray, float]:
    """The argmax over the simplex of W_T - beta KL, by generic optimisers from several starts.

    The objective is :func:`objective_by_definition`. Stage 1: BFGS on softmax parameters
    (p = softmax(theta + log q), central-difference gradients) from the base, the two ends
    of the level order and random points. Stage 2: from the best of them, mixed with 0.1 %
    of the base so that no level is stuck at zero mass, SLSQP on the simplex itself, with
    the gradient of W_T by central differences (W_T is a polynomial in the masses) and that
    of the KL term, log(p/q) + 1, whose logarithm keeps every mass off zero. Stage 3:
    Newton's method on the stationarity condition (:func:`_newton_polish`), kept only as a
    refinement (close by and no worse). Nothing here uses the first variation of W_T.
    Returns (p, objective).
    """
    m = law.n_levels
    logq = np.log(law.probs)
    objective = _objective_rows(law, procedure, beta)
    shifts = np.concatenate([np.zeros((1, m)), np.eye(m) * 1e-5, -np.eye(m) * 1e-5])

    def neg_theta(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Minus the objective at p = softmax(theta + log q), and its central differences."""
        x = theta + shifts + logq
        val = -objective(np.exp(x - x.max(axis=1, keepdims=True)))
        return float(val[0]), (val[1 : m + 1] - val[m + 1 :]) / 2e-5

    inits = [np.zeros(m), np.linspace(-6, 0, m), np.linspace(0, -6, m)]
    inits += [rng.normal(0.0, 2.0, m) for _ in range(max(0, starts - len(inits)))]
    best_theta, best_val = np.zeros(m), -math.inf
    for theta0 in inits:
        res = optimize.minimize(neg_theta, theta0, jac=True, method="BFGS", options={"gtol": 1e-9})
        if -res.fun > best_val:
            best_val, best_theta = -res.fun, res.x

    w_t = _objective_rows(law, procedure, 0.0)

    def neg_p(p: np.ndarray) -> float:
        return -float(objective(p[None, :])[0])

    def grad_p(p: np.ndarray) -> np.ndarray:
        dw = _gradient_by_differences(w_t, p, 1e-7)
        return -(dw - beta * (np.log(np.maximum(p, 1e-300) / law.probs) + 1.0))

    start = 0.999 * _softmax(best_theta + logq) + 0.001 * law.probs
    res = optimize.minimize(
        neg_p, start, jac=grad_p, method="SLSQP", bounds=[(1e-300, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(m)}],
        options={"ftol": 1e-16, "maxiter": 1000},
    )  # fmt: skip
    p = np.maximum(res.x, 0.0)
    p /= p.sum()
    if not -neg_p(p) >= best_val:
        p = _softmax(best_theta + logq)
    polished = _newton_polish(law, procedure, beta, p)
    # a refinement only: close to p, and no worse than p beyond rounding
    if np.max(np.abs(polished - p)) <= 1e-4 and -neg_p(polished) >= -neg_p(p) - 1e-13:
        p = polished
    return p, -neg_p(p)


def _newton_polish(
    law: DiscreteLaw, procedure: OrderStatistic, beta: float, p: np.ndarray, iterations: int = 6
) -> np.ndarray:
    """Newton's method on the stationarity condition of the objective, from ``p``.

    In softmax coordinates p = softmax(theta + log q) the objective is stationary where
    theta - dW_T/dp / beta is constant; its central-difference gradient is exact to about
    1e-10, while an optimiser that sees values only stops where the objective is flat to
    rounding, about sqrt(eps p / beta) away in the masses. The Jacobian is by forward
    differences, the step by least squares (theta is defined up to a constant). Stops when
    the stationarity residual no longer decreases.
    """
    logq = np.log(law.probs)
    w_t = _objective_rows(law, procedure, 0.0)

    def stationarity(theta: np.ndarray) -> np.ndarray:
        mass = _softmax(theta + logq)
        r = theta - _gradient_by_differences(w_t, mass) / beta
        return r - mass @ r  # zero exactly at a stationary point

    theta = np.log(np.maximum(p, 1e-300)) - logq
    r = stationarity(theta)
    for _ in range(iterations):
        jac = np.column_stack([(stationarity(theta + e) - r) / 1e-5 for e in np.eye(p.size) * 1e-5])
        trial = theta + np.linalg.lstsq(jac, -r, rcond=None)[0]
        r_trial = stationarity(trial)
        if not np.max(np.abs(r_trial)) < np.max(np.abs(r)):
            break
        theta, r = trial, r_trial
    return _softmax(theta + logq)


# --------------------------------------------------------------------------------------
# The reward-space route to KL and win rates of a tilt of a continuous law.
# --------------------------------------------------------------------------------------
#: Panel edges of the reward-space quadrature, as base quantiles: geometric toward both ends
#: (2^-60 ... 2^-7 and their mirror images), uniform steps of 1/64 in between.
_TAIL_DEPTH = 60
_QUANTILE_STEPS = 64
_RULES = (16, 24)  # Gauss-Legendre nodes per panel: the answer and its error estimate


def _panel_edges(dist: Any) -> np.ndarray:
    """Reward values at the base quantiles that bound the panels.

    The lower half comes from ppf, the upper half from isf, so that both tails are resolved
    to the last bit.
    """
    tail = 2.0 ** -np.arange(_TAIL_DEPTH, 6, -1)  # 2^-60 ... 2^-7
    steps = np.arange(1, _QUANTILE_STEPS // 2 + 1) / _QUANTILE_STEPS  # 1/64 ... 1/2
    with np.errstate(over="ignore", under="ignore"):
        low = dist.ppf(np.concatenate([tail, steps]))
        high = dist.isf(np.concatenate([steps[-2::-1], tail[::-1]]))
    return np.unique(np.concatenate([low, high]))


def _gauss_legendre(nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1], and the cumulative-integration matrix.

    ``S @ y`` is the integral from -1 to each node of the polynomial interpolating y at the
    nodes.
    """
    xi, wi = np.polynomial.legendre.leggauss(nodes)
    lagrange = np.linalg.inv(np.polynomial.legendre.legvander(xi, nodes - 1))  # (N, N)
    S = np.polynomial.legendre.legval(xi, np.polynomial.legendre.legint(lagrange, lbnd=-1.0))
    return xi, wi, S.T


def _reward_space_once(
    dist: Any, transform: Transform, beta: float, procedure: OrderStatistic, nodes: int
) -> np.ndarray:
    """(KL, W_std, W_T) of the tilt by composite Gauss-Legendre over reward-space panels."""
    xi, wi, S = _gauss_legendre(nodes)
    edges = _panel_edges(dist)
    a, b = edges[:-1], edges[1:]  # (P,)
    half = (b - a) / 2.0
    X = (a + b)[:, None] / 2.0 + half[:, None] * xi  # (P, N) the nodes
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        logd, F, S_ = dist.logpdf(X), dist.cdf(X), dist.sf(X)
    phi = transform.pair(F.ravel(), S_.ravel()).reshape(X.shape) / beta
    lw = logd + phi  # log of the unnormalised tilt's density
    top = float(np.max(lw))
    dens = np.exp(lw - top)  # (P, N), the tilt's density up to 1/Z
    mass = half * (dens @ wi)  # (P,)
    Z = float(np.sum(mass))
    before = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    partial = half[:, None] * (dens @ S.T)  # (P, N): from the panel's lower edge to each node
    P = np.clip((before[:, None] + partial) / Z, 0.0, 1.0)  # the policy's CDF at the nodes
    f = dens / Z
    weights = half[:, None] * wi  # (P, N)
    kl_x = float(np.sum(weights * f * (phi - top - math.log(Z))))  # log f/d = Phi/beta - log Z'
    w_std = float(np.sum(weights * f * F))
    k, n = procedure.k, procedure.n
    with np.errstate(divide="ignore"):
        log_gref = special.xlogy(k - 1, F) + special.xlogy(n - k, S_) - special.betaln(k, n - k + 1)
    not_g = special.betainc(n - k + 1, k, 1.0 - P)  # 1 - g(P) = I_{1-P}(n-k+1, k)
    w_t = float(np.sum(weights * not_g * np.exp(log_gref + logd)))
    return np.array([kl_x, w_std, w_t])


def reward_space_metrics(
    dist: Any, transform: Transform, beta: float, procedure: OrderStatistic
) -> tuple[np.ndarray, float]:
    r"""KL, W_std and W_T of the tilt :math:`d(x)\,e^{\Phi(D(x))/\beta}/Z` computed over rewards x.

    A route independent of calibrated space: every integral is over the law's own reward
    coordinate x, with its density d, CDF D and survival function from scipy.stats,

    .. math:: Z = \int d\,e^{\Phi(D)/\beta}\,dx, \quad
              KL = \int f \log(f/d)\,dx, \quad W_{std} = \int f D\,dx, \quad
              W_T = \int (1 - g(P(x)))\, g'(D(x))\, d(x)\,dx,

    f the tilt's density and P its CDF, g(F) = I_F(k, n-k+1) from ``scipy.special``. The
    integrals are composite Gauss-Legendre sums over panels whose edges are the law's
    quantiles (geometric down to 2^-60 in both tails, steps of 1/64 between), so the
    panels sit where the base's mass is, and therefore the tilt's: its density is at most
    :math:`e^{(\max\Phi - \Phi)/\beta}` times the base's. P at every node is a
    Gauss-Legendre sum over the part of its panel below the node plus the masses of the
    panels below. Both rules of :data:`_RULES` are run; the error estimate is their
    largest difference plus a bound on what the tails beyond the last panels hold.

    Returns ((KL, W_std, W_T), error estimate).
    """
    coarse, fine = (_reward_space_once(dist, transform, beta, procedure, q) for q in _RULES)
    error = float(np.max(np.abs(fine - coarse)))
    # the tails beyond 2^-60: base mass 2^-59, tilt mass at most e^{(max Phi - min Phi)/beta}
    # times that (bounded through the normaliser in calibrated coordinates)
    # Phi increasing: the left Riemann sum on [1/256, 1] bounds the calibrated normaliser below
    phi = transform(np.arange(1, 256) / 256.0) / beta
    log_z = float(special.logsumexp(phi)) - math.log(256.0)
    ratio = math.exp(float(transform(np.array([1.0]))[0]) / beta - log_z)
    k, n = procedure.k, procedure.n
    tail = 2.0 ** (1 - _TAIL_DEPTH) * ratio * (1.0 + abs(math.log(ratio)) + n * math.comb(n, k))
    return fine, error + 2.0 * tail if math.isfinite(error) else math.inf
