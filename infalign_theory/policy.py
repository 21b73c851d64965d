r"""Policies in calibrated space: discrete levels and continuous densities on [0, 1].

A KL-regularised policy with transform Phi tilts the base (InfAlign, arXiv 2412.19792, eq. of
Definition 1 with the transformed reward):

.. math:: \pi_{\Phi,\beta}(y) \propto \pi_{\rm ref}(y)\, \exp\big(\Phi(C(y))/\beta\big).

It depends on y only through the calibrated reward C(y), so it is fully described by the law
of C under it:

* on a :class:`~infalign_theory.laws.DiscreteLaw`, by masses p_j on the levels, spread like
  the base inside each level -- a :class:`DiscretePolicy`;
* for a continuous reward law, by a density f on [0, 1] that is the same for *every*
  continuous law (the model-agnostic case) -- a :class:`ContinuousPolicy`.

Both are computed in log space (a shift by the mean or the maximum of Phi/beta, then
``log1p``/``expm1``), so beta from 1e-4 to 1e6 and |t| up to 1000 neither overflow nor lose
relative accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _kernels as K
from . import _mesh
from ._validate import finite_array, positive_finite, unit_interval
from .calibration import level_midpoints
from .laws import PROB_SUM_TOL, ContinuousLaw, DiscreteLaw, RewardLaw
from .procedures import Procedure
from .transforms import Quantile, SampleCalibrated, Transform, Zero


def checked_probs(
    probs: Any, base: np.ndarray, log_ratio: Any, unit: str
) -> tuple[np.ndarray, np.ndarray]:
    """A policy's masses on the base's support, checked and normalised, and log(p / base).

    ``probs`` must hold one finite, non-negative entry per ``unit`` of the base (masses
    ``base``) and sum to 1 within ``PROB_SUM_TOL``; ``log_ratio`` is taken as given when not
    None. Both come back read-only.
    """
    p = finite_array(probs, "probs").ravel()
    if p.size != base.size:
        raise ValueError(
            f"probs must have one entry per {unit} of the law ({base.size}), got {p.size}"
        )
    if np.any(p < 0.0):
        raise ValueError("probs must be >= 0")
    total = math.fsum(p)  # correctly rounded: the masses may be many and tiny
    if abs(total - 1.0) > PROB_SUM_TOL:
        raise ValueError(f"probs must sum to 1 within {PROB_SUM_TOL:g}, they sum to {total!r}")
    p = p / total
    if log_ratio is None:
        with np.errstate(divide="ignore"):
            lr = np.log(p) - np.log(base)
    else:
        lr = np.asarray(log_ratio, dtype=np.float64)
    p.setflags(write=False)
    lr.setflags(write=False)
    return p, lr


@dataclass(frozen=True, eq=False)
class DiscretePolicy:
    """A policy on the levels of a discrete reward law, spread like the base inside a level.

    Parameters
    ----------
    law : DiscreteLaw
        The base reward law; the policy lives on its levels.
    probs : array_like
        Mass on each level, >= 0, summing to one within 1e-9 (then rescaled).

    Attributes
    ----------
    log_ratio : ndarray
        log(p_j / q_j) per level (-inf where p_j = 0), exact to relative precision for tilts.
    transform, beta :
        The transform and beta of a tilt (None for other policies).
    """

    law: DiscreteLaw
    probs: np.ndarray
    log_ratio: np.ndarray = field(default=None, repr=False)  # type: ignore[arg-type]
    transform: Transform | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.law, DiscreteLaw):
            raise ValueError(f"law must be a DiscreteLaw, got {type(self.law).__name__}")
        p, lr = checked_probs(self.probs, self.law.probs, self.log_ratio, "level")
        object.__setattr__(self, "probs", p)
        object.__setattr__(self, "log_ratio", lr)

    def cdf_levels(self) -> np.ndarray:
        """P_j = p_1 + ... + p_j."""
        return np.cumsum(self.probs)

    def sample(self, rng: Any = None, size: int | tuple[int, ...] = 1) -> np.ndarray:
        """Draw rewards (level values) from the policy with ``np.random.default_rng(rng)``."""
        gen = np.random.default_rng(rng)
        return gen.choice(self.law.values, size=size, p=self.probs)


@dataclass(frozen=True, eq=False)
class ContinuousPolicy:
    r"""The tilt :math:`f(u) \propto \exp(\Phi(u)/\beta)` of Uniform[0, 1] (no ties).

    Build it with :func:`tilt`. Its KL and win rates are the same for every continuous reward
    law; ``law``, when given, only maps calibrated samples back to rewards.
    """

    transform: Transform
    beta: float
    law: ContinuousLaw | None = None
    _resolved: _mesh.Resolved = field(init=False, repr=False)
    _win_cache: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        why = self.transform.infinite_normaliser(self.beta)
        if why is not None:
            raise ValueError(
                f"the tilt by {self.transform.name} is not normalisable at any beta: {why}"
            )
        res = _mesh.resolve(self.transform, self.beta)
        if not np.all(np.isfinite(res.stats[[K.ST_LOGZ, K.ST_KL, K.ST_WSTD]])):
            raise ValueError(
                f"the tilt by {self.transform.name} at beta = {self.beta:g} could not be "
                "normalised in double precision (its log-normaliser came out "
                f"{res.stats[K.ST_LOGZ]}); try another beta"
            )
        object.__setattr__(self, "_resolved", res)

    # -- densities ------------------------------------------------------------------
    def logpdf(self, u: Any) -> np.ndarray:
        """Log f(u) for u in [0, 1]."""
        u = unit_interval(u, "u")
        return self._logpdf_pair(u, 1.0 - u)

    def _logpdf_pair(self, u: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Log f at points given as exact pairs (u, s = 1 - u)."""
        st = self._resolved.stats
        u, s = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64))
        left = u <= s
        phi = np.empty(u.shape)
        phi[left] = self.transform._left(u[left])
        phi[~left] = self.transform._right(s[~left])
        shift = np.where(left, st[K.ST_CL], st[K.ST_CR])
        # the kernels' own arithmetic, phi * (1/beta): at |Phi/beta| ~ 1e43 a division would
        # round differently from the shift it is cancelled against (by 1e27)
        return phi * (1.0 / self.beta) - shift - st[K.ST_LOGZ]

    def _pdf_pair(self, u: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The density f at exact pairs (u, s = 1 - u)."""
        return np.exp(self._logpdf_pair(u, s))

    def pdf(self, u: Any) -> np.ndarray:
        """Density f(u) on [0, 1]."""
        return np.exp(self.logpdf(u))

    def cdf(self, u: Any) -> np.ndarray:
        """G(u) = P(U <= u), from the resolved spectral representation (error ~1e-14).

        Accumulated from u = 0, so that it keeps relative precision as u -> 0 (down to the
        smallest doubles); :meth:`sf` does the same as u -> 1.
        """
        u = unit_interval(u, "u")
        return self._cdf_pair(u, 1.0 - u)[0]

    def sf(self, u: Any) -> np.ndarray:
        """1 - G(u), accurate next to u = 1."""
        u = unit_interval(u, "u")
        return self._cdf_pair(u, 1.0 - u)[1]

    def _cdf_pair(self, u: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G, 1 - G) at exact pairs (u, s): mass accumulated from the nearer end."""
        res = self._resolved
        G, Gc = _mesh.accumulate(res.mesh, res.f, u, s, self._pdf_pair)
        total = G + Gc  # one, up to rounding
        return np.clip(G / total, 0.0, 1.0), np.clip(Gc / total, 0.0, 1.0)

    def ppf(self, q: Any) -> np.ndarray:
        """Quantile of the policy in calibrated space (inverse of :meth:`cdf`).

        Located from the nearer end and refined by Newton's method on the spectral CDF, so
        that quantiles near 0 keep relative precision down to the smallest doubles (and
        those near 1 are as close to 1 as q itself).
        """
        q = unit_interval(q, "q")
        res = self._resolved
        u, _ = _mesh.quantile(res.mesh, res.f, q, self._pdf_pair)
        return np.where(q == 0.0, 0.0, np.where(q == 1.0, 1.0, u))

    def sample(self, rng: Any = None, size: int | tuple[int, ...] = 1) -> np.ndarray:
        """Calibrated rewards u drawn from the policy (inverse-CDF sampling)."""
        gen = np.random.default_rng(rng)
        return self.ppf(gen.random(size))

    def sample_rewards(self, rng: Any = None, size: int | tuple[int, ...] = 1) -> np.ndarray:
        """Rewards drawn from the policy under its reward law (requires ``law``)."""
        if self.law is None:
            raise ValueError("sample_rewards needs the policy's law: tilt(..., law=ContinuousLaw)")
        return self.law.ppf(self.sample(rng, size))


Policy = DiscretePolicy | ContinuousPolicy

#: The smallest beta accepted: below it 1/beta overflows for transforms of order one.
BETA_MIN = 1e-300


def tilt(transform: Transform, beta: float, law: RewardLaw | None = None) -> Policy:
    r"""The KL-regularised policy :math:`\pi \propto \pi_{\rm ref} \exp(\Phi(C)/\beta)`.

    Parameters
    ----------
    transform : Transform
        Phi, a function of the calibrated reward.
    beta : float
        KL strength, a finite number > 0.
    law : DiscreteLaw, ContinuousLaw or None
        The base reward law. ``None`` or a continuous law gives the model-agnostic continuous
        policy; a discrete law gives exact masses on its levels (ties included).

    Returns
    -------
    DiscretePolicy or ContinuousPolicy
    """
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    beta = positive_finite(beta, "beta")
    if beta < BETA_MIN:
        raise ValueError(f"beta must be a finite number >= {BETA_MIN:g}, got {beta!r}")
    if isinstance(transform, Quantile) and isinstance(transform.law, DiscreteLaw) and law is None:
        raise ValueError(
            "law must be given for the raw reward of a DiscreteLaw: its ties need the discrete "
            "calibrated space, tilt(Quantile(law), beta, law)"
        )
    if law is None or isinstance(law, ContinuousLaw):
        return ContinuousPolicy(transform, beta, law)
    if not isinstance(law, DiscreteLaw):
        raise ValueError(f"law must be a DiscreteLaw, ContinuousLaw or None, got {law!r}")
    if isinstance(transform, SampleCalibrated):
        transform = transform.on(law)
    values, offsets = transform.pair_relative(*level_midpoints(law))
    if np.any(np.isnan(values) | (values == np.inf)):
        raise ValueError(f"transform {transform.name} is NaN or +inf at a level of the law")
    if np.all(values == -np.inf):
        raise ValueError(f"transform {transform.name} is -inf at every level of the law")
    # Phi/beta up to a common constant, each value kept relative to the largest offset.
    with np.errstate(over="ignore", invalid="ignore"):
        ell = values / beta + (offsets - offsets.max()) / beta
    if np.any(np.isnan(ell) | (ell == np.inf)):
        raise ValueError(
            f"the tilt by {transform.name} at beta = {beta:g} overflows: Phi/beta leaves the "
            "double range on this law; use a larger beta"
        )
    p = np.empty(law.n_levels)
    r = np.empty(law.n_levels)
    K.discrete_tilt(law.probs, ell, p, r)
    return DiscretePolicy(law, p, r, transform, beta)


def base_policy(law: RewardLaw | None = None) -> Policy:
    """The base policy itself (KL 0) on ``law``'s calibrated space."""
    if isinstance(law, DiscreteLaw):
        return DiscretePolicy(law, law.probs.copy(), np.zeros(law.n_levels))
    return tilt(Zero(), 1.0, law)


def _cut(mesh: _mesh.Mesh, points: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """The panels of ``mesh`` with the panel holding each u in ``points`` cut there."""
    side, a, b = mesh.side, mesh.a, mesh.b
    for u in points:
        sd, x = (0, u) if u <= 0.5 else (1, 1.0 - u)
        hit = np.flatnonzero((side == sd) & (a < x) & (x < b))
        if hit.size:
            p = int(hit[0])
            side = np.insert(side, p + 1, sd)
            a = np.insert(a, p + 1, x)
            b = np.insert(b, p, x)
    return side, a, b


@dataclass(frozen=True, eq=False)
class _Pushforward(Transform):
    """log of the density of T(pi), log f(u) + ell(u), used with beta = 1."""

    procedure: Procedure
    policy: ContinuousPolicy
    factor: Any = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.procedure.name} of [{self.policy.transform.name}, beta={self.policy.beta:g}]"

    def initial_panels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the policy's own panels resolve f, and the factor is smooth where f has mass:
        # starting from the default panels, a narrow peak of f between nodes would be lost
        return _cut(self.policy._resolved.mesh, self.procedure.breakpoints)

    def _log_density(self, u: np.ndarray, s: np.ndarray) -> np.ndarray:
        ell = np.asarray(self.factor(u, s), dtype=np.float64).reshape(np.shape(u))
        return ell + self.policy._logpdf_pair(u, s)

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self._log_density(u, 1.0 - u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self._log_density(1.0 - s, s)


def apply(procedure: Procedure, policy: Policy) -> Policy:
    r"""The policy of the response that ``procedure`` returns when it samples ``policy``.

    On a discrete law the level masses are ``procedure.level_masses`` (for a CDF map,
    g(P_j) - g(P_{j-1})), exact; in the continuous case the density is
    :math:`f(u)\,e^{\ell(u)}` (for a CDF map :math:`g'(G(u)) f(u)`), represented as a tilt
    with beta = 1 (so Best-of-n of a Best-of-m policy is Best-of-(nm) to about 1e-13).
    ``kl(apply(T, base_policy()))`` is KL(T(pi_ref) || pi_ref) and its ``standard_win_rate``
    is E[C] under T(pi_ref).
    """
    if not isinstance(procedure, Procedure):
        raise ValueError(f"procedure must be a Procedure, got {procedure!r}")
    if isinstance(policy, DiscretePolicy):
        out = procedure.level_masses(policy.probs, level_midpoints(policy.law))
        return DiscretePolicy(policy.law, np.maximum(np.asarray(out, dtype=np.float64), 0.0))
    if not isinstance(policy, ContinuousPolicy):
        raise ValueError(f"policy must be a DiscretePolicy or ContinuousPolicy, got {policy!r}")
    if procedure.order_key is not None and procedure.order_key[1] == 1:
        return policy
    return ContinuousPolicy(
        _Pushforward(procedure, policy, procedure.log_factor(policy)), 1.0, policy.law
    )
