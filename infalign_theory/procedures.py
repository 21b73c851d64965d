r"""Inference-time procedures: the law of the decoded response, and how it moves with the policy.

A procedure T draws from a policy and returns one response. In calibrated space it maps the
law of one draw's calibrated reward u to the law of the returned response's (DESIGN §2).
Every procedure is a :class:`Procedure`, which says two things, and the metrics, curves
and the optimal solver ask only these:

* on a discrete law (levels j with base masses q_j and calibrated rewards C_j, policy
  masses p_j): the masses of T(pi) on the levels, :meth:`Procedure.level_masses` -- ties
  included, the decoded response's reward is one of the levels;
* for a continuous policy with density f and CDF G on [0, 1]: the density of T(pi),
  written :math:`h(u) = f(u)\,e^{\ell(u)}`, through :meth:`Procedure.log_factor`, which
  returns :math:`\ell` at exact pairs (u, 1 - u).

The procedures here:

* **order statistics** (:class:`OrderStatistic`): the k-th smallest of n draws, a CDF map
  :math:`g(F) = I_F(k, n-k+1)`, :math:`g'(F) = F^{k-1}(1-F)^{n-k}/B(k, n-k+1)`; sampling
  (k = n = 1), Best-of-n (k = n), Worst-of-n (k = 1, the model InfAlign, arXiv 2412.19792,
  uses for Best-of-N jailbreaking). Their engines keep fast exact kernels
  (:attr:`Procedure.order_key`).
* **soft Best-of-n** (:func:`soft_best_of`, Verdun et al., arXiv 2505.03156): n draws, one
  picked with probability :math:`\propto e^{u/\lambda}`. By the Gumbel-max trick the pick
  maximises :math:`u_i + \lambda Z_i` with Z_i standard Gumbel, so

  .. math:: P(\text{pick } u) = n\,f(u)\int \gamma(z)\, Q(u + \lambda z)^{n-1} dz, \qquad
            Q(y) = E_\pi\big[\Gamma((y - U)/\lambda)\big],

  :math:`\Gamma(x) = e^{-e^{-x}}`, :math:`\gamma = \Gamma'` -- the same integral as
  :math:`n\,\pi(y) w(y)\int_0^\infty e^{-s w(y)} M(s)^{n-1} ds`, :math:`w = e^{u/\lambda}`,
  after :math:`s = e^{-z}/w(y)`. Ties are exact: a level is picked with the total
  probability of its draws.
* **threshold sampling** (:func:`threshold_sampling`, Beirami et al., arXiv 2401.01879 §6):
  draw until the calibrated reward is >= tau, at most n draws, else the best of the n. With
  :math:`G_\tau = P_\pi(U < \tau)` (the chance a draw fails) its CDF is :math:`G(u)^n` below
  tau and :math:`G_\tau^n + (G(u) - G_\tau) S_n(G_\tau)` from tau on,
  :math:`S_n(x) = 1 + x + \dots + x^{n-1}`; the first passing draw is distributed as the
  policy above tau. It is not a fixed map of G: the map depends on the policy through G_tau.
* **a user's CDF map** (:func:`cdf_map`): any increasing g with g(0) = 0, g(1) = 1.

A user's own procedure is a subclass of :class:`Procedure` implementing ``name``,
``level_masses`` and ``log_factor``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _kernels as K
from ._validate import integer, positive_finite, real, unit_interval

#: Largest N accepted; the order-statistic kernels are exact in log space well beyond it.
MAX_N = 1_000_000
#: Largest budget of the procedures that are not order statistics.
MAX_BUDGET = 100_000

#: log of the density factor at exact pairs (u, s = 1 - u).
LogFactor = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Procedure(abc.ABC):
    """An inference-time procedure: the law of one draw -> the law of the decoded response.

    Subclasses implement :attr:`name`, :meth:`level_masses` and :meth:`log_factor`; the
    rest has defaults. Policies pass themselves in: a discrete policy's masses, or a
    continuous policy, whose ``cdf``/``pdf`` (and the private exact-pair forms
    ``_cdf_pair(u, s)``, ``_logpdf_pair(u, s)``) the factor may use.
    """

    #: Number of draws (the sample budget).
    n: int

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short label used in tables, legends and JSON."""

    @abc.abstractmethod
    def level_masses(
        self, probs: np.ndarray, midpoints: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Masses of T(pi) on the levels of a discrete law, summing to one.

        Parameters
        ----------
        probs : ndarray
            The policy's masses p_j on the levels, in increasing order of reward.
        midpoints : (ndarray, ndarray)
            The levels' calibrated rewards as the exact pair (C_j, 1 - C_j).
        """

    @abc.abstractmethod
    def log_factor(self, policy: Any) -> LogFactor:
        r"""For a continuous policy, :math:`\ell` with T(pi)'s density :math:`f e^{\ell}`.

        Returns a function of exact pairs (u, s = 1 - u) of equal shapes.
        """

    @property
    def order_key(self) -> tuple[int, int] | None:
        """(k, n) when T is the k-th smallest of n draws (fast kernels), else None."""
        return None

    @property
    def breakpoints(self) -> tuple[float, ...]:
        """Calibrated rewards where T(pi)'s density may jump (panels are cut there)."""
        return ()

    @property
    def favours_high(self) -> bool:
        """Whether T shifts the base toward high rewards (the sign of a good exponent t)."""
        return self.base_cdf(np.array([0.5]))[0] <= 0.5

    def base_cdf(self, u: np.ndarray) -> np.ndarray:
        """The CDF of T(pi_ref) at u in [0, 1] (continuous base)."""
        from .policy import apply, base_policy  # the policy layer sits above this one

        u = np.asarray(u, dtype=np.float64)
        return apply(self, base_policy())._cdf_pair(u, 1.0 - u)[0]

    def parameters(self) -> dict[str, Any]:
        """The procedure's parameters as a JSON-ready dictionary."""
        return {"n": self.n}

    # -- Theorem 1: the first variation of W_T (see :mod:`._variation`) ------------------
    def level_variation(
        self, probs: np.ndarray, midpoints: tuple[np.ndarray, np.ndarray], weights: np.ndarray
    ) -> np.ndarray:
        r"""The derivative :math:`\sum_j c_j\,\partial a_j/\partial p_i` of the decoded masses.

        With ``weights`` :math:`c_j = (B_j + B_{j-1})/2` (B the reference side's decoded
        CDF), this is the first variation of W_T on the levels: Theorem 1's transformed
        reward, up to a constant. Exact (the decoded masses differentiated, not differenced).
        A user's procedure implements it to be solved for (:func:`~.optimal.solve_optimal`).
        """
        raise ValueError(f"procedure {self.name} does not give its first variation on levels")

    def density_variation(self, grid: Any, f: np.ndarray, G: np.ndarray,
                          ref_cdf: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:  # fmt: skip
        r"""The first variation :math:`R(v)` of W_T at a continuous policy, at a grid's nodes.

        ``grid`` is a :class:`._variation.Grid` (nodes u, weights, cumulative operator); f
        and G the policy's density and CDF at its nodes, ``ref_cdf``/``ref_pdf`` those of
        the reference side's decoded base. Up to an additive constant.
        """
        raise ValueError(f"procedure {self.name} does not give its first variation")

    @property
    def variation_width(self) -> float:
        """The widest quadrature panel :meth:`density_variation` is accurate on."""
        return 1.0 / 16.0


# --------------------------------------------------------------------------------------
# Order statistics.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderStatistic(Procedure):
    """The k-th smallest reward among n independent samples (1 <= k <= n).

    Parameters
    ----------
    k : int
        Rank of the returned sample, 1 = worst, n = best.
    n : int
        Number of samples drawn, 1 <= n <= 10**6.
    """

    k: int
    n: int

    def __post_init__(self) -> None:
        n = integer(self.n, "n", 1, MAX_N)
        k = integer(self.k, "k", 1, n)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "k", k)

    @property
    def name(self) -> str:
        """Short label: ``sampling``, ``best-of-4``, ``worst-of-4`` or ``2nd-of-5``."""
        if self.n == 1:
            return "sampling"
        if self.k == self.n:
            return f"best-of-{self.n}"
        if self.k == 1:
            return f"worst-of-{self.n}"
        return f"order-{self.k}-of-{self.n}"

    @property
    def order_key(self) -> tuple[int, int]:  # noqa: D102
        return (self.k, self.n)

    @property
    def favours_high(self) -> bool:  # noqa: D102
        return 2 * self.k > self.n

    def parameters(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n, "k": self.k}

    def mirror(self) -> OrderStatistic:
        """The procedure seen through u -> 1 - u: the (n - k + 1)-th smallest of n."""
        return OrderStatistic(self.n - self.k + 1, self.n)

    def g(self, F: ArrayLike) -> np.ndarray:
        """The CDF map g(F) = I_F(k, n - k + 1), elementwise, for F in [0, 1]."""
        F = unit_interval(F, "F")
        flat = np.ascontiguousarray(F, dtype=np.float64).ravel()
        out = np.empty_like(flat)
        outc = np.empty_like(flat)
        K.cdf_map_array(self.k, self.n, flat, 1.0 - flat, out, outc)
        return out.reshape(F.shape)

    def g_prime(self, F: ArrayLike) -> np.ndarray:
        """The derivative g'(F) = F^(k-1) (1-F)^(n-k) / B(k, n-k+1), for F in [0, 1]."""
        F = unit_interval(F, "F")
        flat = np.ascontiguousarray(F, dtype=np.float64).ravel()
        out = np.empty_like(flat)
        K.cdf_map_prime_array(self.k, self.n, flat, 1.0 - flat, out)
        return out.reshape(F.shape)

    def base_cdf(self, u: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.g(np.clip(u, 0.0, 1.0))

    def level_masses(self, probs: np.ndarray, midpoints: Any = None) -> np.ndarray:
        """g(P_j) - g(P_{j-1}), each difference taken where it is accurate."""
        out = np.empty(probs.size)
        K.discrete_level_masses(np.ascontiguousarray(probs, dtype=np.float64), self.k, self.n, out)
        return np.maximum(out, 0.0)

    def log_factor(self, policy: Any) -> LogFactor:
        """Log g'(G(u))."""

        def ell(u: np.ndarray, s: np.ndarray) -> np.ndarray:
            G, Gc = policy._cdf_pair(u, s)
            dg = np.empty(G.size)
            K.cdf_map_prime_array(self.k, self.n, G.ravel(), Gc.ravel(), dg)
            with np.errstate(divide="ignore"):
                return np.log(dg.reshape(G.shape))

        return ell

    def level_variation(self, probs: np.ndarray, midpoints: Any, weights: np.ndarray) -> np.ndarray:
        """sum_{j >= i} g'(P_j) (c_j - c_{j+1})."""
        from ._variation import cdf_map_levels

        P = np.cumsum(probs)
        return cdf_map_levels(self.g_prime(np.clip(P, 0.0, 1.0)), weights)

    def density_variation(self, grid: Any, f: np.ndarray, G: np.ndarray,
                          ref_cdf: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:  # fmt: skip
        """int_0^v g'(G(u)) h_ref(u) du."""
        from ._variation import cdf_map_nodes

        return cdf_map_nodes(grid, self.g_prime(np.clip(G, 0.0, 1.0)), ref_pdf)


def sampling() -> OrderStatistic:
    """Plain sampling: g(F) = F."""
    return OrderStatistic(1, 1)


def best_of(n: int) -> OrderStatistic:
    """Best-of-n: return the highest-reward of n samples, g(F) = F^n."""
    n = integer(n, "n", 1, MAX_N)
    return OrderStatistic(n, n)


def worst_of(n: int) -> OrderStatistic:
    """Worst-of-n: return the lowest-reward of n samples, g(F) = 1 - (1 - F)^n."""
    n = integer(n, "n", 1, MAX_N)
    return OrderStatistic(1, n)


def order_statistic(k: int, n: int) -> OrderStatistic:
    """The k-th smallest of n samples."""
    return OrderStatistic(k, n)


# --------------------------------------------------------------------------------------
# Soft Best-of-n.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SoftBestOf(Procedure):
    r"""Soft Best-of-n: n draws, one picked with probability :math:`\propto e^{u/\lambda}`.

    u is the calibrated reward (on a discrete law, the level's mid-rank C_j). Temperature
    -> 0 is Best-of-n, -> infinity is sampling. Build it with :func:`soft_best_of`.
    """

    n: int
    temperature: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", integer(self.n, "n", 1, MAX_BUDGET))
        object.__setattr__(self, "temperature", positive_finite(self.temperature, "temperature"))

    @property
    def name(self) -> str:  # noqa: D102
        return f"soft-best-of-{self.n}(temperature={self.temperature:g})"

    @property
    def favours_high(self) -> bool:  # noqa: D102
        return True

    def parameters(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n, "temperature": self.temperature}

    def level_masses(
        self, probs: np.ndarray, midpoints: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """N p_j int gam(z) Q(C_j + lam z)^(n-1) dz, Gauss-Legendre on panels of width 2 in z."""
        p = np.ascontiguousarray(probs, dtype=np.float64)
        out = np.empty(p.size)
        K.soft_best_levels(p, np.asarray(midpoints[0], dtype=np.float64), self.n,
                           self.temperature, K.XI, K.WI, out)  # fmt: skip
        return np.maximum(out, 0.0)

    def log_factor(self, policy: Any) -> LogFactor:
        """log(n K(u)), K(u) = int gam(z) Q(u + lam z)^(n-1) dz (see :mod:`._soft`)."""
        from ._soft import soft_factor

        return soft_factor(policy, self.n, self.temperature)

    def level_variation(self, probs: np.ndarray, midpoints: Any, weights: np.ndarray) -> np.ndarray:
        """N c_i K_i + n(n-1) sum_j c_j p_j int gam(z) Q_j^(n-2) Gam((C_j - C_i)/lam + z) dz."""
        from ._variation import soft_levels

        p = np.asarray(probs, dtype=np.float64)
        mid = np.asarray(midpoints[0], dtype=np.float64)
        return soft_levels(p, mid, self.n, self.temperature, np.asarray(weights, dtype=float))

    def density_variation(self, grid: Any, f: np.ndarray, G: np.ndarray,
                          ref_cdf: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:  # fmt: skip
        """N K(v) H_ref(v) + n(n-1) int Q^(n-2) M Gam((y - v)/lam) dy."""
        from ._variation import soft_nodes

        return soft_nodes(grid, f, self.n, self.temperature, ref_cdf)

    @property
    def variation_width(self) -> float:  # noqa: D102
        return min(1.0 / 16.0, 4.0 * self.temperature)


def soft_best_of(n: int, temperature: float) -> SoftBestOf:
    r"""Soft Best-of-n (Verdun et al., arXiv 2505.03156) at a temperature lambda > 0.

    n draws :math:`u_1..u_n` of the calibrated reward; draw i is returned with probability
    :math:`e^{u_i/\lambda} / \sum_l e^{u_l/\lambda}`.

    Parameters
    ----------
    n : int
        Number of draws, 1 <= n <= 100000.
    temperature : float
        lambda, a finite number > 0. Small lambda approaches Best-of-n (at lambda = 1e-3
        and gaps between levels above 0.05 the two agree to double precision), large lambda
        sampling.

    Notes
    -----
    Discrete laws are exact to rounding (a Gauss-Legendre rule on an entire integrand,
    error below 1e-20); continuous policies are computed to about 1e-12 (see
    :mod:`._soft`).
    """
    return SoftBestOf(n, temperature)


# --------------------------------------------------------------------------------------
# Threshold sampling with a budget.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThresholdSampling(Procedure):
    """Draw until the calibrated reward is >= tau, at most n draws, else the best of the n.

    On a discrete law a level passes when its mid-rank calibrated reward C_j >= tau (a tied
    level whose C_j equals tau passes); tau = 0 is sampling, tau = 1 Best-of-n (no C_j is
    1). Build it with :func:`threshold_sampling`.
    """

    n: int
    tau: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", integer(self.n, "n", 1, MAX_BUDGET))
        tau = real(self.tau, "tau")
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be a number in [0, 1], got {self.tau!r}")
        object.__setattr__(self, "tau", tau)

    @property
    def name(self) -> str:  # noqa: D102
        return f"threshold-{self.n}(tau={self.tau:g})"

    @property
    def favours_high(self) -> bool:  # noqa: D102
        return True

    @property
    def breakpoints(self) -> tuple[float, ...]:  # noqa: D102
        return (self.tau,) if 0.0 < self.tau < 1.0 else ()

    def parameters(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n, "tau": self.tau}

    def base_cdf(self, u: np.ndarray) -> np.ndarray:
        """tau^n + (u - tau) S_n(tau) above tau, u^n below."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        s = K.threshold_sum(self.tau, self.n)
        return np.where(u < self.tau, u**self.n, self.tau**self.n + (u - self.tau) * s)

    def level_masses(
        self, probs: np.ndarray, midpoints: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """P_j^n - P_{j-1}^n below the threshold, p_j S_n(P_fail) from it on."""
        p = np.ascontiguousarray(probs, dtype=np.float64)
        first = int(np.sum(np.asarray(midpoints[0]) < self.tau))  # levels that fail
        out = np.empty(p.size)
        K.threshold_levels(p, first, self.n, out)
        return out

    def log_factor(self, policy: Any) -> LogFactor:
        """log(n G^(n-1)) below tau, log S_n(G_tau) from tau on."""
        tau, n = self.tau, self.n
        g_tau = float(policy._cdf_pair(np.array(tau), np.array(1.0 - tau))[0])
        log_pass = math.log(K.threshold_sum(g_tau, n))

        def ell(u: np.ndarray, s: np.ndarray) -> np.ndarray:
            G, Gc = policy._cdf_pair(u, s)
            with np.errstate(divide="ignore"):
                logG = np.where(G <= Gc, np.log(G), np.log1p(-Gc))
            below = math.log(n) + (n - 1) * logG if n > 1 else np.zeros(G.shape)
            return np.where(u < tau, below, log_pass)

        return ell

    def level_variation(self, probs: np.ndarray, midpoints: Any, weights: np.ndarray) -> np.ndarray:
        """Exact derivative of P_j^n - P_{j-1}^n (failing levels) and p_j S_n(P_fail)."""
        from ._variation import threshold_levels

        p = np.asarray(probs, dtype=np.float64)
        failing = int(np.sum(np.asarray(midpoints[0]) < self.tau))
        return threshold_levels(p, failing, self.n, np.asarray(weights, dtype=np.float64))

    def density_variation(self, grid: Any, f: np.ndarray, G: np.ndarray,
                          ref_cdf: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:  # fmt: skip
        """int_0^v dH/dG h_ref du + [v > tau] int_tau^1 dH/dG_tau h_ref du."""
        from ._variation import threshold_nodes

        x = float(np.dot(grid.w, f * (grid.u < self.tau)))
        return threshold_nodes(grid, G, x, self.tau, self.n, ref_pdf)


def threshold_sampling(n: int, tau: float) -> ThresholdSampling:
    r"""Threshold sampling with a budget (Beirami et al., arXiv 2401.01879 §6).

    Draw until the calibrated reward u is >= tau (a quantile of the base), at most n draws;
    if none passes, return the best of the n. Its CDF, with G the policy's and
    :math:`G_\tau = P_\pi(U < \tau)`:

    .. math:: H(u) = G(u)^n \;(u < \tau), \qquad
              H(u) = G_\tau^n + (G(u) - G_\tau)\,\frac{1 - G_\tau^n}{1 - G_\tau}
              \;(u \ge \tau).

    Parameters
    ----------
    n : int
        Budget of draws, 1 <= n <= 100000.
    tau : float
        Threshold in [0, 1]; 0 is sampling, 1 Best-of-n. On a discrete law a level passes
        when its mid-rank calibrated reward is >= tau.
    """
    return ThresholdSampling(n, tau)


# --------------------------------------------------------------------------------------
# A user's CDF map.
# --------------------------------------------------------------------------------------
#: Grid on which a user's g is checked (monotone, ends), and the step of the derivative.
_CHECK_GRID = np.linspace(0.0, 1.0, 1025)
_DIFF_STEP = 2.0**-13
#: Sixth-order stencils for g': central (coefficients of g(x + kh) - g(x - kh), k = 1..3)
#: and one-sided (of g(x + kh), k = 0..6).
_CENTRAL = (3.0 / 4.0, -3.0 / 20.0, 1.0 / 60.0)
_ONE_SIDED = (-49.0 / 20.0, 6.0, -15.0 / 2.0, 20.0 / 3.0, -15.0 / 4.0, 6.0 / 5.0, -1.0 / 6.0)


@dataclass(frozen=True, eq=False)
class CdfMap(Procedure):
    """A procedure given by its CDF map g (see :func:`cdf_map`)."""

    g: Callable[[np.ndarray], Any]
    g_prime: Callable[[np.ndarray], Any] | None = None
    label: str = "cdf-map"
    n: int = field(default=1)

    @property
    def name(self) -> str:  # noqa: D102
        return self.label

    def _values(self, fn: Callable[[np.ndarray], Any], F: np.ndarray, what: str) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.asarray(fn(F), dtype=np.float64)
        if out.shape != F.shape:
            out = np.broadcast_to(out, F.shape).astype(np.float64)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{what} of cdf_map {self.label} is not finite at some F in [0, 1]")
        return out

    def cdf(self, F: np.ndarray) -> np.ndarray:
        """g(F), clipped to [0, 1] (a user's g may stray by rounding)."""
        F = np.asarray(F, dtype=np.float64)
        return np.clip(self._values(self.g, F, "g"), 0.0, 1.0)

    def derivative(self, F: np.ndarray) -> np.ndarray:
        """g'(F): the user's, or a sixth-order difference of step 2**-13 (see :func:`cdf_map`)."""
        F = np.asarray(F, dtype=np.float64)
        if self.g_prime is not None:
            return np.maximum(self._values(self.g_prime, F, "g_prime"), 0.0)
        h = _DIFF_STEP
        out = np.empty(F.shape)
        mid = (F >= 3 * h) & (F <= 1.0 - 3 * h)
        x = F[mid]
        out[mid] = sum(c * (self.cdf(x + k * h) - self.cdf(x - k * h))
                       for k, c in enumerate(_CENTRAL, start=1)) / h  # fmt: skip
        for sign, where in ((1.0, F < 3 * h), (-1.0, F > 1.0 - 3 * h)):
            x = F[where]  # one-sided: the stencil stays inside [0, 1]
            out[where] = sign * sum(c * self.cdf(np.clip(x + sign * k * h, 0.0, 1.0))
                                    for k, c in enumerate(_ONE_SIDED)) / h  # fmt: skip
        return np.maximum(out, 0.0)

    def base_cdf(self, u: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.cdf(np.clip(u, 0.0, 1.0))

    def level_masses(self, probs: np.ndarray, midpoints: Any = None) -> np.ndarray:
        """g(P_j) - g(P_{j-1})."""
        P = np.concatenate([[0.0], np.cumsum(probs)])
        A = self.cdf(np.clip(P, 0.0, 1.0))
        A[0], A[-1] = 0.0, 1.0
        return np.maximum(np.diff(A), 0.0)

    def log_factor(self, policy: Any) -> LogFactor:
        """Log g'(G(u))."""

        def ell(u: np.ndarray, s: np.ndarray) -> np.ndarray:
            G, _ = policy._cdf_pair(u, s)
            with np.errstate(divide="ignore"):
                return np.log(self.derivative(G))

        return ell

    def level_variation(self, probs: np.ndarray, midpoints: Any, weights: np.ndarray) -> np.ndarray:
        """sum_{j >= i} g'(P_j) (c_j - c_{j+1})."""
        from ._variation import cdf_map_levels

        P = np.clip(np.cumsum(probs), 0.0, 1.0)
        return cdf_map_levels(self.derivative(P), weights)

    def density_variation(self, grid: Any, f: np.ndarray, G: np.ndarray,
                          ref_cdf: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:  # fmt: skip
        """int_0^v g'(G(u)) h_ref(u) du."""
        from ._variation import cdf_map_nodes

        return cdf_map_nodes(grid, self.derivative(np.clip(G, 0.0, 1.0)), ref_pdf)


def cdf_map(
    g: Callable[[np.ndarray], Any],
    g_prime: Callable[[np.ndarray], Any] | None = None,
    *,
    name: str = "cdf-map",
) -> CdfMap:
    r"""A procedure given by its CDF map: the decoded level has CDF g(F) when one draw has F.

    Parameters
    ----------
    g : callable
        Vectorised, increasing on [0, 1] with g(0) = 0 and g(1) = 1; checked on 1025 points
        (increasing within 1e-12, ends within 1e-12).
    g_prime : callable, optional
        Its derivative. If omitted, a sixth-order difference of step h = 2**-13 is used
        (central; one-sided within 3h of an end): truncation h^6 max|g^(7)| / 7 (about
        6e-25 max|g^(7)|) plus rounding of about 30 eps / h = 5e-11 -- so about 1e-10 for
        a g whose seventh derivative is of order one, worse for steep maps: give
        ``g_prime`` when g is steep or when 1e-10 is not enough.
    name : str
        Label for tables and JSON.

    Examples
    --------
    Best-of-2 mixed with sampling, half and half -- return the better of two draws with
    probability 1/2, else one draw: g(F) = (F + F^2)/2, g'(F) = (1 + 2F)/2.

    >>> import infalign_theory as ia
    >>> T = ia.cdf_map(lambda F: (F + F**2) / 2, lambda F: (1 + 2 * F) / 2, name="mix")
    >>> round(ia.standard_win_rate(ia.apply(T, ia.base_policy())), 12)  # E[C] = 7/12
    0.583333333333
    >>> round(ia.win_rate(ia.tilt(ia.Identity(), 1.0), T), 6) > 0.5
    True
    """
    if not callable(g):
        raise ValueError(f"g must be callable, got {g!r}")
    if g_prime is not None and not callable(g_prime):
        raise ValueError(f"g_prime must be callable or None, got {g_prime!r}")
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    out = CdfMap(g, g_prime, name)
    grid = _CHECK_GRID
    with np.errstate(all="ignore"):
        values = np.asarray(g(grid), dtype=np.float64)
    if values.shape != grid.shape or not np.all(np.isfinite(values)):
        raise ValueError("g must return one finite value per point of a float array")
    if abs(values[0]) > 1e-12 or abs(values[-1] - 1.0) > 1e-12:
        raise ValueError(f"g must have g(0) = 0 and g(1) = 1, got {values[0]!r} and {values[-1]!r}")
    if np.any(np.diff(values) < -1e-12):
        raise ValueError("g must be increasing on [0, 1]")
    if g_prime is not None:
        d = out._values(g_prime, grid, "g_prime")
        if np.any(d < -1e-12):
            raise ValueError("g_prime must be >= 0 on [0, 1]")
    return out
