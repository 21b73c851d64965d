r"""Beta sweeps, the beta that reaches a target KL, and KL / win-rate trade-off curves.

For a tilt :math:`\pi_\beta \propto \pi_{\rm ref} e^{\Phi/\beta}` the KL is a strictly
decreasing function of beta (for a non-constant Phi) with

.. math:: \frac{d\,\mathrm{KL}}{d\log\beta} = -\mathrm{Var}_{\pi_\beta}(\Phi/\beta),

so :func:`beta_for_kl` runs a safeguarded Newton iteration on log KL against log beta (a
bracket is kept and bisection takes over whenever a step leaves it). It converges in a few
steps over the whole range from KL = 1e-12 to hundreds of nats. As beta -> 0 the tilt
concentrates on the maximisers of Phi, so the reachable KL is bounded by
:math:`-\log \pi_{\rm ref}(\arg\max \Phi)` -- finite on a discrete law (computed exactly and
checked before solving), infinite for a continuous law with a strictly increasing Phi.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels as K
from ._validate import choice, positive_finite
from .calibration import level_midpoints
from .laws import DiscreteLaw, RewardLaw
from .metrics import AGAINST, Evaluation, kl, standard_win_rate, win_rate
from .policy import DiscretePolicy, base_policy, tilt
from .procedures import Procedure
from .transforms import Exponential, Transform

#: Relative accuracy of the KL reached by :func:`beta_for_kl`.
KL_RTOL = 1e-12
_MAX_ITER = 300
#: Tilts refused while bracketing the edge of double precision before giving up there.
_MAX_FAILURES = 6
_MAX_STEP = 4.0  # largest Newton step in log(beta) before a bracket exists
_LOG_BETA_MAX = math.log(1e300)  # the search stays at beta <= 1e300


def _kl_and_variance(
    transform: Transform, beta: float, law: RewardLaw | None
) -> tuple[float, float]:
    """KL of the tilt and Var(Phi/beta) under it (minus the slope dKL/dlog beta)."""
    pol = tilt(transform, beta, law)
    value = kl(pol)
    if isinstance(pol, DiscretePolicy):
        ell = pol.log_ratio
        live = pol.probs > 0.0
        mean = float(np.dot(pol.probs[live], ell[live]))
        var = float(np.dot(pol.probs[live], (ell[live] - mean) ** 2))
    else:
        var = float(pol._resolved.stats[K.ST_VAR])
    return value, var


def kl_limit(transform: Transform, law: DiscreteLaw) -> float:
    r"""The KL the tilt approaches as beta -> 0 on a discrete law: :math:`-\log q(\arg\max\Phi)`.

    The maximisers are found from Phi's exact representation (each value relative to its
    offset), so levels whose Phi differ by less than a rounding of 1 are still told apart.
    """
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    if not isinstance(law, DiscreteLaw):
        raise ValueError("kl_limit is exact on a DiscreteLaw; a continuous law has no finite bound")
    shifted = _level_values(transform, law)
    return float(-math.log(np.sum(law.probs[shifted == np.max(shifted)])))


def _level_values(transform: Transform, law: DiscreteLaw) -> np.ndarray:
    """Phi on the levels, relative to the largest offset (exact order); checked."""
    values, offsets = transform.pair_relative(*level_midpoints(law))
    top_offset = offsets.max()
    shifted = np.where(offsets == top_offset, values, values + (offsets - top_offset))
    bad = np.isnan(shifted) | (shifted == np.inf)
    if np.any(bad):
        j = int(np.argmax(bad))
        raise ValueError(
            f"transform {transform.name} is {values[j] + offsets[j]} at level {j} of the law "
            "(u = {:.17g}); a transform must be finite (or -inf) there".format(
                level_midpoints(law)[0][j]
            )
        )
    if np.all(shifted == -np.inf):
        raise ValueError(f"transform {transform.name} is -inf at every level of the law")
    return shifted


def _kl_floor(transform: Transform, law: DiscreteLaw) -> float:
    """The KL the tilt approaches as beta -> inf: -log q(Phi > -inf) (0 if Phi is finite)."""
    live = _level_values(transform, law) > -np.inf
    return 0.0 if np.all(live) else float(-math.log(np.sum(law.probs[live])))


def beta_for_kl(transform: Transform, kl: float, *, law: RewardLaw | None = None) -> float:
    """The beta at which the tilt by ``transform`` has KL(pi || pi_ref) = ``kl``.

    Parameters
    ----------
    transform : Transform
    kl : float
        Target KL in nats, > 0 and below the transform's reachable limit.
    law : DiscreteLaw, ContinuousLaw or None
        As in :func:`~infalign_theory.policy.tilt`.

    Raises
    ------
    ValueError
        When ``kl`` is not positive, or is out of reach (the message gives the limit).
    """
    return _solve_beta(transform, positive_finite(kl, "kl"), law, None)


def _log_scale(transform: Transform, law: RewardLaw | None) -> float:
    """Log of Phi's spread on the levels (or on a grid of u): where the search for beta starts.

    Phi/beta is what the tilt sees, so beta of the order of Phi's spread gives a KL of order
    one; a raw reward on a scale of 1e-200 starts near beta = 1e-200, not at 1.
    """
    u = level_midpoints(law)[0] if isinstance(law, DiscreteLaw) else np.linspace(0.002, 0.998, 250)
    with np.errstate(invalid="ignore"):
        values = np.asarray(transform(u), dtype=np.float64)
    values = values[np.isfinite(values)]
    spread = float(np.ptp(values)) if values.size else 0.0
    return min(max(math.log(spread), -680.0), 680.0) if 0.0 < spread < math.inf else 0.0


def _check_values(transform: Transform) -> None:
    """Refuse up front a transform that is NaN or +inf on a grid of (0, 1).

    The continuous engine refuses such a transform for every beta; checked here so that the
    search for beta reports the transform, not an unreachable KL.
    """
    u = np.linspace(0.0, 1.0, 257)[1:-1]
    values = transform(u)
    bad = np.isnan(values) | (values == np.inf)
    if np.any(bad):
        j = int(np.argmax(bad))
        raise ValueError(
            f"transform {transform.name} returned {values[j]} at u = {float(u[j])!r}; a transform "
            "must be finite (or -inf) on (0, 1)"
        )
    if np.all(values == -np.inf):
        raise ValueError(f"transform {transform.name} is -inf on all of (0, 1)")


def _solve_beta(
    transform: Transform, target: float, law: RewardLaw | None, x: float | None
) -> float:
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    if isinstance(law, DiscreteLaw):
        limit = kl_limit(transform, law)
        floor = _kl_floor(transform, law)
        if limit <= floor:
            raise ValueError(
                f"kl is {floor:.12g} for every beta: {transform.name} is constant on the levels "
                "of this law where it is finite"
            )
        if not floor < target < limit:
            raise ValueError(
                f"kl must be in ({floor:.12g}, {limit:.12g}) for {transform.name} on this law "
                f"(its limits as beta -> inf and beta -> 0), got {target!r}"
            )
    else:
        _check_values(transform)
    scale = _log_scale(transform, law)
    if x is None:
        x = scale
    start = x
    lo, hi = -math.inf, math.inf  # KL(lo) > target > KL(hi); the root lies in between
    last_error: ValueError | None = None
    failures = 0
    kl_hi = 0.0
    for _ in range(_MAX_ITER):
        try:
            value, var = _kl_and_variance(transform, math.exp(x), law)
        except ValueError as exc:  # the tilt left double precision: beta is too small
            last_error = exc
            failures += 1
            if failures > _MAX_FAILURES:  # each try near that edge is the costliest of all
                break
            lo = x
            x = 0.5 * (lo + hi) if math.isfinite(hi) else x + _MAX_STEP
            if x > 690.0:
                raise ValueError(f"no beta in (0, 1e300] gives a usable tilt: {exc}") from exc
            continue
        if value <= 0.0 and var <= 0.0 and x == start:
            raise ValueError(
                f"kl = {target!r} is out of reach: {transform.name} is constant on the base's "
                "support, so every beta gives KL = 0"
            )
        if value <= 0.0 or var <= 0.0:  # Phi/beta differences below rounding: beta too large
            x = x - _MAX_STEP if value < target else x + _MAX_STEP
            if abs(x) > 690.0:
                break
            continue
        if abs(value - target) <= KL_RTOL * target:
            return math.exp(x)
        if value > target and ((var <= 1e-12 * value and x >= scale + 14.0) or x >= _LOG_BETA_MAX):
            # beta is 1e6 times Phi's spread and KL no longer falls as beta grows (its slope
            # is -Var): the infimum of KL over beta is above the target
            raise ValueError(
                f"kl = {target!r} is out of reach for {transform.name}: every beta gives KL >= "
                f"about {value:.12g} (as beta grows the tilt tends to the base restricted to "
                "where Phi > -inf, whose KL is -log of that mass)"
            )
        if value > target:
            lo = x
        else:
            hi, kl_hi = x, value
        step = value * (math.log(value) - math.log(target)) / var  # Newton on log KL
        x_new = x + max(-_MAX_STEP, min(_MAX_STEP, step))
        if not lo < x_new < hi:
            x_new = 0.5 * (lo + hi) if math.isfinite(lo) and math.isfinite(hi) else x_new
        x_new = min(x_new, _LOG_BETA_MAX)
        if hi - lo <= 4.0 * K.EPS * max(1.0, abs(x)):
            break
        if value < target and var / value < 1e-12 and not isinstance(law, DiscreteLaw):
            break  # KL no longer grows as beta shrinks: the limit is below the target
        x = x_new
    reason = f" ({last_error})" if last_error is not None else ""
    raise ValueError(
        f"kl = {target!r} is out of reach for {transform.name}: the largest KL reached before "
        f"the tilt leaves double precision is about {kl_hi:.6g}{reason}"
    )


@dataclass(frozen=True, eq=False)
class TradeoffCurve:
    """A KL / win-rate trade-off curve of one transform under one procedure.

    ``beta`` is inf at the base policy (KL = 0). Arrays are ordered as the grid was given.
    """

    transform: str
    procedure: str
    against: str
    beta: np.ndarray
    kl: np.ndarray
    win_rate: np.ndarray
    standard_win_rate: np.ndarray

    def __len__(self) -> int:
        """The number of points (rows) of the curve."""
        return int(self.kl.size)

    def __iter__(self) -> Iterator[Evaluation]:
        """The rows in grid order, each an :class:`~infalign_theory.metrics.Evaluation`.

        A row's ``beta`` is inf at the base policy, as in the ``beta`` array.
        """
        for b, k, w, s in zip(
            self.beta, self.kl, self.win_rate, self.standard_win_rate, strict=True
        ):
            yield Evaluation(float(b), float(k), float(w), float(s))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (an infinite beta becomes None)."""
        return {
            "transform": self.transform,
            "procedure": self.procedure,
            "against": self.against,
            "beta": [None if math.isinf(b) else float(b) for b in self.beta],
            "kl": self.kl.tolist(),
            "win_rate": self.win_rate.tolist(),
            "standard_win_rate": self.standard_win_rate.tolist(),
        }


def _grid(values: Any, name: str) -> np.ndarray:
    """A 1-D float array from a number or a flat list, or a ValueError naming ``name``."""
    try:
        if np.iscomplexobj(values):
            raise TypeError("complex values")
        grid = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be a flat list of real numbers, got {values!r}") from exc
    if grid.ndim != 1:
        raise ValueError(f"{name} must be a flat list of numbers, got shape {grid.shape}")
    return grid


def tradeoff_curve(
    transform: Transform,
    procedure: Procedure,
    *,
    law: RewardLaw | None = None,
    betas: Any = None,
    kls: Any = None,
    against: str = "procedure",
) -> TradeoffCurve:
    """KL, inference-time and standard win rate along a beta sweep or a KL grid.

    Parameters
    ----------
    transform : Transform
    procedure : Procedure
    law : DiscreteLaw, ContinuousLaw or None
    betas : array_like, optional
        Betas > 0; ``inf`` stands for the base policy.
    kls : array_like, optional
        Target KLs >= 0 (0 is the base policy); each is solved with :func:`beta_for_kl`,
        warm-started from its neighbour. Give exactly one of ``betas`` and ``kls``.
    against : {"procedure", "sample"}
        As in :func:`~infalign_theory.metrics.win_rate`.
    """
    if not isinstance(procedure, Procedure):
        raise ValueError(f"procedure must be a Procedure, got {procedure!r}")
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    choice(against, "against", AGAINST)
    if (betas is None) == (kls is None):
        raise ValueError("give exactly one of betas and kls")
    if betas is not None:
        grid = _grid(betas, "betas")
        if grid.size == 0 or np.any(np.isnan(grid)) or np.any(grid <= 0.0):
            raise ValueError("betas must be a non-empty list of numbers > 0 (inf: the base)")
        beta = grid.copy()
    else:
        grid = _grid(kls, "kls")
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0.0):
            raise ValueError("kls must be a non-empty list of finite numbers >= 0")
        beta = np.full(grid.size, np.inf)
        x: float | None = None
        for i in np.argsort(grid):
            if grid[i] > 0.0:
                beta[i] = _solve_beta(transform, float(grid[i]), law, x)
                x = math.log(beta[i])
    out = np.empty((3, beta.size))
    for i, b in enumerate(beta):
        pol = base_policy(law) if math.isinf(b) else tilt(transform, float(b), law)
        out[:, i] = kl(pol), win_rate(pol, procedure, against=against), standard_win_rate(pol)
    return TradeoffCurve(
        transform=transform.name,
        procedure=procedure.name,
        against=against,
        beta=beta,
        kl=out[0],
        win_rate=out[1],
        standard_win_rate=out[2],
    )


def best_exponent(procedure: Procedure, kl: float) -> tuple[float, float]:
    """The exponent t whose exponential transform maximises W_T at KL = ``kl`` (continuous).

    A scan of |t| over [0.01, 1e7] on a log grid, refined by bounded scalar minimisation
    around the best grid point. The sign of t follows the procedure: t > 0 when it picks
    from the top half (``procedure.favours_high``: Best-of-N, sampling, soft Best-of-N,
    threshold sampling), t < 0 otherwise (Worst-of-N).
    Exponents whose tilts cannot reach the KL are skipped.

    Returns
    -------
    (t, win_rate) : tuple of float
    """
    if not isinstance(procedure, Procedure):
        raise ValueError(f"procedure must be a Procedure, got {procedure!r}")
    kl = positive_finite(kl, "kl")
    sign = 1.0 if procedure.favours_high else -1.0

    def value(x: float) -> float:
        transform = Exponential(sign * math.exp(x))
        try:
            return win_rate(tilt(transform, beta_for_kl(transform, kl)), procedure)
        except ValueError:
            return -1.0

    x, best = maximise_on_log_grid(value, math.log(0.01), math.log(1e7), 57, 1e-6)
    return sign * math.exp(x), best


def maximise_on_log_grid(
    value: Callable[[float], float], lo: float, hi: float, points: int, xatol: float
) -> tuple[float, float]:
    """The maximiser of ``value`` over [lo, hi]: a grid scan, refined around its best point.

    ``value`` returns -1 where it has no value (an exponent that cannot reach the KL);
    bounded scalar minimisation refines between the best grid point's neighbours, to
    ``xatol``, and is kept only if it does at least as well. Returns ``(x, value(x))``.
    """
    from scipy import optimize  # lazy: imported only where it is used

    grid = np.linspace(lo, hi, points)
    values = [value(float(x)) for x in grid]
    i = int(np.argmax(values))
    res = optimize.minimize_scalar(
        lambda x: -value(x),
        bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
        method="bounded",
        options={"xatol": xatol},
    )
    if -res.fun >= values[i]:
        return float(res.x), float(-res.fun)
    return float(grid[i]), float(values[i])
