"""Reward laws under the base policy, shaped like frozen scipy.stats distributions.

Fix a prompt x; the reward r(x, Z) of a base sample Z ~ pi_ref(.|x) has a law. Two kinds:

* :class:`DiscreteLaw` -- finitely many reward values with probabilities. Equal values are
  one *level* (ties are real: several responses can share a reward), so the calibrated
  reward of a level is its mid-rank (see :mod:`infalign_theory.calibration`).
* :class:`ContinuousLaw` -- any frozen continuous ``scipy.stats`` distribution. With no ties
  the calibrated reward is Uniform[0, 1] under the base, whatever the law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _kernels as K
from ._validate import finite_array, unit_interval

#: Probabilities may miss summing to one by at most this much; they are then rescaled.
PROB_SUM_TOL = 1e-9


def _normalised(masses: np.ndarray) -> np.ndarray:
    """Masses divided by their (correctly rounded) sum, the rounding left put on the largest.

    Afterwards the masses sum to one exactly (``math.fsum``), so that, for instance, the
    base's standard win rate against itself is 1/2 to rounding, not 1/2 minus the drift.
    """
    out = masses / math.fsum(masses)
    top = int(np.argmax(out))
    for _ in range(3):
        rest = 1.0 - math.fsum(out)  # exact: the sum is within a few ulps of one
        if rest == 0.0:
            break
        out[top] += rest
    return out


@dataclass(frozen=True, eq=False)
class DiscreteLaw:
    """A finite reward law: level ``j`` has reward ``values[j]`` and base mass ``probs[j]``.

    Parameters
    ----------
    values : array_like
        Finite rewards. Equal values are merged into one level (their masses add up) and the
        levels are sorted increasingly.
    probs : array_like
        Non-negative masses, one per value, summing to one within ``PROB_SUM_TOL`` (1e-9);
        they are then rescaled to sum to one exactly. Values of zero mass are dropped.

    Attributes
    ----------
    values, probs : ndarray
        The levels, increasing, and their masses (all > 0).
    cdf_levels, sf_levels : ndarray
        F_j = P(R <= v_j) accumulated from below and 1 - F_j accumulated from above, so
        that both small and large cumulative masses are exact sums.
    """

    values: np.ndarray
    probs: np.ndarray
    cdf_levels: np.ndarray = field(init=False, repr=False)
    sf_levels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = finite_array(self.values, "values").ravel()
        probs = finite_array(self.probs, "probs").ravel()
        if values.size == 0:
            raise ValueError("values must hold at least one reward")
        if values.shape != probs.shape:
            raise ValueError(
                f"values and probs must have the same length, got {values.size} and {probs.size}"
            )
        if np.any(probs < 0.0):
            raise ValueError("probs must be >= 0")
        total = float(np.sum(probs))
        if abs(total - 1.0) > PROB_SUM_TOL:
            raise ValueError(f"probs must sum to 1 within {PROB_SUM_TOL:g}, they sum to {total!r}")
        levels, inverse = np.unique(values, return_inverse=True)
        merged = np.empty(levels.size)
        K.level_sums(np.ascontiguousarray(inverse.ravel()), probs, merged)
        keep = merged > 0.0
        levels, merged = levels[keep], _normalised(merged[keep])
        sf = np.concatenate([np.cumsum(merged[::-1])[::-1][1:], [0.0]])
        object.__setattr__(self, "values", levels)
        object.__setattr__(self, "probs", merged)
        # the sum of the masses is one; a rounding above it would leave C > 1 (a partial
        # sum can round past one when the last levels have masses below 1e-16)
        cdf = np.minimum(np.cumsum(merged), 1.0)
        cdf[-1] = 1.0
        object.__setattr__(self, "cdf_levels", cdf)
        object.__setattr__(self, "sf_levels", sf)
        for arr in (self.values, self.probs, self.cdf_levels, self.sf_levels):
            arr.setflags(write=False)

    @classmethod
    def from_samples(cls, values: Any) -> DiscreteLaw:
        """The empirical law of observed rewards: equal values merged, masses from counts.

        Parameters
        ----------
        values : array_like
            One reward per base sample (finite, at least one). A value seen c times out of
            n samples gets mass c / n (correctly rounded, then renormalised as any law).

        Examples
        --------
        >>> DiscreteLaw.from_samples([0.0, 1.0, 1.0, 2.0]).probs
        array([0.25, 0.5 , 0.25])
        """
        samples = finite_array(values, "values").ravel()
        if samples.size == 0:
            raise ValueError("values must hold at least one reward")
        levels, counts = np.unique(samples, return_counts=True)
        return cls(levels, counts / samples.size)

    @property
    def n_levels(self) -> int:
        """Number of distinct reward levels."""
        return int(self.values.size)

    def _level_index(self, x: np.ndarray) -> np.ndarray:
        """Index of the last level with value <= x (-1 below the support)."""
        return np.searchsorted(self.values, x, side="right") - 1

    def pmf(self, x: Any) -> np.ndarray:
        """P(R = x)."""
        x = np.asarray(x, dtype=np.float64)
        j = np.searchsorted(self.values, x, side="left")
        jc = np.minimum(j, self.n_levels - 1)
        return np.where((j < self.n_levels) & (self.values[jc] == x), self.probs[jc], 0.0)

    def cdf(self, x: Any) -> np.ndarray:
        """P(R <= x)."""
        j = self._level_index(np.asarray(x, dtype=np.float64))
        return np.where(j >= 0, self.cdf_levels[np.maximum(j, 0)], 0.0)

    def sf(self, x: Any) -> np.ndarray:
        """P(R > x), accumulated from above."""
        j = self._level_index(np.asarray(x, dtype=np.float64))
        return np.where(j >= 0, self.sf_levels[np.maximum(j, 0)], 1.0)

    def ppf(self, q: Any) -> np.ndarray:
        """Smallest level value v with P(R <= v) >= q, for q in (0, 1]."""
        q = unit_interval(q, "q")
        j = np.searchsorted(self.cdf_levels, q, side="left")
        return self.values[np.minimum(j, self.n_levels - 1)]

    def isf(self, s: Any) -> np.ndarray:
        """Level value v whose upper tail contains s: the quantile at 1 - s, computed from above."""
        s = unit_interval(s, "s")
        # Level j covers 1 - u in [sf_j, sf_{j-1}); sf is decreasing.
        j = np.searchsorted(-self.sf_levels, -s, side="right")
        return self.values[np.minimum(j, self.n_levels - 1)]

    def mean(self) -> float:
        """E[R]."""
        return float(np.dot(self.values, self.probs))

    def sample(self, rng: Any = None, size: int | tuple[int, ...] = 1) -> np.ndarray:
        """Draw rewards from the law with ``np.random.default_rng(rng)``."""
        gen = np.random.default_rng(rng)
        return gen.choice(self.values, size=size, p=self.probs)


@dataclass(frozen=True, eq=False)
class ContinuousLaw:
    """A continuous reward law: a wrapped frozen ``scipy.stats`` continuous distribution.

    Parameters
    ----------
    dist : scipy.stats frozen continuous distribution
        For example ``scipy.stats.norm(0, 1)`` or ``scipy.stats.t(3)``.
    """

    dist: Any

    def __post_init__(self) -> None:
        from scipy import stats  # lazy: scipy.stats takes most of a second to import

        if not isinstance(getattr(self.dist, "dist", None), stats.rv_continuous):
            raise ValueError(
                "dist must be a frozen continuous scipy.stats distribution, "
                f"e.g. scipy.stats.norm(0, 1); got {self.dist!r}"
            )

    @property
    def name(self) -> str:
        """The scipy distribution's name with its arguments."""
        args = ", ".join(f"{a:g}" for a in self.dist.args)
        kw = ", ".join(f"{k}={v:g}" for k, v in self.dist.kwds.items())
        return f"{self.dist.dist.name}({', '.join(x for x in (args, kw) if x)})"

    def pdf(self, x: Any) -> np.ndarray:
        """Density of the reward."""
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(self.dist.pdf(x), dtype=np.float64)

    def cdf(self, x: Any) -> np.ndarray:
        """P(R <= x)."""
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(self.dist.cdf(x), dtype=np.float64)

    def sf(self, x: Any) -> np.ndarray:
        """P(R > x), accurate in the upper tail."""
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(self.dist.sf(x), dtype=np.float64)

    def pmf(self, x: Any) -> np.ndarray:
        """P(R = x): zero for a continuous law."""
        return np.zeros(np.shape(x))

    def ppf(self, q: Any) -> np.ndarray:
        """Quantile function."""
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(self.dist.ppf(unit_interval(q, "q")), dtype=np.float64)

    def isf(self, s: Any) -> np.ndarray:
        """Quantile at 1 - s, accurate for small s."""
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(self.dist.isf(unit_interval(s, "s")), dtype=np.float64)

    def mean(self) -> float:
        """E[R] (inf or nan where the law has no mean)."""
        return float(self.dist.mean())

    def sample(self, rng: Any = None, size: int | tuple[int, ...] = 1) -> np.ndarray:
        """Draw rewards with ``np.random.default_rng(rng)``."""
        return np.asarray(self.dist.rvs(size=size, random_state=np.random.default_rng(rng)))


RewardLaw = DiscreteLaw | ContinuousLaw
