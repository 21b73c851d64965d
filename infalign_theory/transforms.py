r"""Reward transforms: functions Phi of the calibrated reward u in (0, 1).

KL-regularised RL with a transform tilts the base by :math:`\exp(\Phi(C(y))/\beta)`. Adding a
constant to Phi, or scaling Phi and beta together, leaves the policy unchanged, so transforms
are compared at equal KL, never at equal beta.

The families:

* :class:`Identity`, :math:`\Phi(u) = u` -- calibrated RLHF, optimal for the standard win rate;
* :class:`Log`, :math:`\Phi(u) = \log u` -- with :math:`\beta = 1/(N-1)` the tilt *is* the
  Best-of-N policy, density :math:`N u^{N-1}`;
* :class:`Exponential`, :math:`\Phi_t(u) = (e^{tu}-1)/(e^t-1)` for t != 0 and
  :math:`\Phi_0(u) = u`: one increasing family for both signs of t. It is an increasing
  affine image of the InfAlign paper's transforms :math:`e^{tu}` (t > 0, for Best-of-N) and
  :math:`-e^{tu}` (t < 0, for Worst-of-N), so at equal KL the policies coincide; the paper's
  :math:`\beta'` equals this library's :math:`\beta\,|e^t-1|` (see
  :meth:`Exponential.paper_beta`);
* :class:`Quantile`, :math:`\Phi(u) = D^{-1}(u)` -- the *raw* reward of a law D expressed in
  calibrated space, so that standard RLHF on an uncalibrated reward sits on the same axes;
* :class:`Custom` -- any callable, on arrays or (vectorised for you) on numbers.

Accuracy near the ends
----------------------
The continuous engine evaluates a transform on two coordinates: u itself on (0, 1/2] and
s = 1 - u on (0, 1/2], and asks on each side for Phi minus a fixed constant of the
transform, its ``offsets`` (for example 1 next to u = 1 for the exponential family, whose
values approach 1 there, and 1 on both sides when t < 0, where Phi is within e^{-|t|/2} of 1
on the whole upper half). Differences of Phi/beta then keep full relative precision even
for beta = 1e-9 and |t| = 1000.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import _kernels as K
from ._validate import choice, integer, positive_finite, real, unit_interval
from .calibration import ESTIMATORS, estimate
from .laws import ContinuousLaw, DiscreteLaw, RewardLaw


class Transform(abc.ABC):
    """A function of the calibrated reward, evaluated accurately near both ends of (0, 1)."""

    #: Relative error of the values, in units of rounding: the continuous engine does not
    #: refine a tilt below the noise this leaves in Phi/beta.
    rounding_ulps: ClassVar[float] = 4.0
    #: Absolute rounding of the argument that :meth:`_left` and :meth:`_right` act on, as
    #: seen by the formula: 0 when u (side 0) or s = 1 - u (side 1) is used exactly.
    input_rounding: ClassVar[tuple[float, float]] = (0.0, 0.0)

    @property
    def offsets(self) -> tuple[float, float]:
        """Constants added back to :meth:`_left` and :meth:`_right` to obtain Phi."""
        return (0.0, 0.0)

    def initial_panels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Panels (side, a, b) the continuous engine starts from; None for its default.

        A transform built from a resolved policy (the density of T(pi)) starts from that
        policy's panels, which already resolve every narrow peak it has.
        """
        return None

    def infinite_normaliser(self, beta: float) -> str | None:
        r"""Why :math:`E[\exp(\Phi(U)/\beta)]`, U ~ Uniform(0, 1), is infinite, or None.

        None means the tilt is normalisable as far as the transform can tell (every
        transform bounded above is); the continuous engine refuses the others it meets.
        """
        return None

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short label used in tables, legends and JSON."""

    @abc.abstractmethod
    def _left(self, u: np.ndarray) -> np.ndarray:
        """Phi(u) - offsets[0] for u in (0, 1/2]."""

    @abc.abstractmethod
    def _right(self, s: np.ndarray) -> np.ndarray:
        """Phi(1 - s) - offsets[1] for s in (0, 1/2]."""

    def __call__(self, u: Any) -> np.ndarray:
        """Phi(u), elementwise, for u in [0, 1]."""
        u = unit_interval(u, "u")
        return self.pair(u, 1.0 - u)

    def pair(self, u: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Phi at points given as the pair (u, s = 1 - u); the smaller entry is trusted."""
        values, offsets = self.pair_relative(u, s)
        return values + offsets

    def pair_relative(self, u: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Phi at pairs (u, s) split as (value, offset), value = Phi - offset.

        Each point uses the representation whose value is smaller in magnitude -- the one
        relative to the nearer offset -- so that values of Phi close to either offset keep
        their relative precision (both formulas are valid on all of (0, 1)).
        """
        u, s = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64))
        values = np.empty(u.shape)
        left = u <= s
        if np.any(left):
            values[left] = self._left(u[left])
        if not np.all(left):
            values[~left] = self._right(s[~left])
        off_l, off_r = self.offsets
        if off_l != off_r:
            with np.errstate(invalid="ignore"):
                # value as it reads from the other offset; move where that is smaller
                other = np.where(left, values + off_l - off_r, values + off_r - off_l)
                move = np.abs(other) < np.abs(values)
            to_left = move & ~left
            to_right = move & left
            if np.any(to_left):
                values[to_left] = self._left(u[to_left])
            if np.any(to_right):
                values[to_right] = self._right(s[to_right])
            left = (left & ~to_right) | to_left
        return values, np.where(left, off_l, off_r)


class _Builtin(Transform):
    """A transform whose formulas live in the kernels (one implementation, used everywhere)."""

    kernel: ClassVar[int]

    @property
    def kernel_param(self) -> float:
        """The transform's parameter as the kernels take it."""
        return 0.0

    @property
    def offsets(self) -> tuple[float, float]:  # noqa: D102
        return K.builtin_offsets(self.kernel, self.kernel_param)

    def _evaluate(self, x: np.ndarray, side: int) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.empty(x.shape)
        K.builtin_array(self.kernel, self.kernel_param, x.ravel(), side, out.reshape(-1))
        return out

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self._evaluate(u, 0)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self._evaluate(s, 1)


@dataclass(frozen=True)
class Identity(_Builtin):
    r"""Calibrated RLHF: :math:`\Phi(u) = u`."""

    kernel: ClassVar[int] = K.T_IDENTITY

    @property
    def name(self) -> str:  # noqa: D102
        return "identity"


@dataclass(frozen=True)
class Log(_Builtin):
    r"""Best-of-N distillation: :math:`\Phi(u) = \log u`; beta = 1/(N-1) gives Best-of-N."""

    kernel: ClassVar[int] = K.T_LOG

    @property
    def name(self) -> str:  # noqa: D102
        return "log"


@dataclass(frozen=True)
class Exponential(_Builtin):
    r"""The exponential family :math:`\Phi_t(u) = (e^{tu} - 1)/(e^t - 1)`, :math:`\Phi_0(u) = u`.

    Increasing for every t; t > 0 weights high rewards (suited to Best-of-N), t < 0 low ones
    (suited to Worst-of-N). Evaluated in log space, so any finite t works (|t| = 1000 included).

    Parameters
    ----------
    t : float
        The exponent, any finite real.
    """

    kernel: ClassVar[int] = K.T_EXP
    t: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "t", real(self.t, "t"))

    @property
    def kernel_param(self) -> float:  # noqa: D102
        return self.t

    @property
    def name(self) -> str:  # noqa: D102
        return f"exp(t={self.t:g})"

    def paper_beta(self, beta: float) -> float:
        r"""The beta' at which the paper's form (:math:`e^{tu}` or :math:`-e^{tu}`) gives this tilt.

        :math:`\Phi_t = \mathrm{sign}(t)\,e^{tu}/|e^t - 1| + \text{const}`, so
        :math:`\exp(\Phi_t/\beta) \propto \exp(\mathrm{sign}(t)\,e^{tu}/\beta')` with
        :math:`\beta' = \beta\,|e^t - 1|` (inf when that overflows).
        """
        beta = positive_finite(beta, "beta")
        if self.t == 0.0:
            return beta
        return float(beta * abs(math.expm1(self.t))) if abs(self.t) < 709 else math.inf


@dataclass(frozen=True)
class Zero(_Builtin):
    """The constant transform Phi = 0: every beta gives the base policy itself."""

    kernel: ClassVar[int] = K.T_ZERO

    @property
    def name(self) -> str:  # noqa: D102
        return "base"


@dataclass(frozen=True)
class Mirror(Transform):
    r"""The mirror image :math:`\tilde\Phi(u) = \Phi(1 - u)` of a transform.

    The tilt by the mirror is the tilt by Phi seen through u -> 1 - u: its density is
    f(1 - u). (It decreases where Phi increases.) Evaluated exactly: each side of the mirror
    is the other side of Phi.
    """

    transform: Transform

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Transform):
            raise ValueError(f"transform must be a Transform, got {self.transform!r}")

    @property
    def name(self) -> str:  # noqa: D102
        return f"mirror({self.transform.name})"

    @property
    def offsets(self) -> tuple[float, float]:  # noqa: D102
        off_l, off_r = self.transform.offsets
        return (off_r, off_l)

    @property
    def input_rounding(self) -> tuple[float, float]:  # type: ignore[override]  # noqa: D102
        left, right = self.transform.input_rounding
        return (right, left)

    @property
    def rounding_ulps(self) -> float:  # type: ignore[override]  # noqa: D102
        return self.transform.rounding_ulps

    def infinite_normaliser(self, beta: float) -> str | None:  # noqa: D102
        return self.transform.infinite_normaliser(beta)  # U and 1 - U have the same law

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self.transform._right(u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self.transform._left(s)


@dataclass(frozen=True, eq=False)
class Quantile(Transform):
    r"""The raw reward of ``law`` in calibrated space: :math:`\Phi(u) = D^{-1}(u)`.

    Tilting by it is standard KL-RL on the *uncalibrated* reward with law D under the base.
    On a discrete law the quantile of a level's midpoint is the level's reward value.
    """

    law: RewardLaw

    def __post_init__(self) -> None:
        if not isinstance(self.law, DiscreteLaw | ContinuousLaw):
            raise ValueError(f"law must be a DiscreteLaw or ContinuousLaw, got {self.law!r}")

    @property
    def name(self) -> str:  # noqa: D102
        law = self.law
        label = law.name if isinstance(law, ContinuousLaw) else f"discrete[{law.n_levels}]"
        return f"raw({label})"

    def infinite_normaliser(self, beta: float) -> str | None:
        """Why E[exp(r / beta)] is infinite under the law, for a law heavier than exponential.

        A tilt by the raw reward needs the law's moment generating function at 1/beta. It
        exists for no beta > 0 when the upper tail is heavier than every exponential
        (log-normal, Student-t, Pareto, Weibull with shape < 1, ...): those are refused
        here, since their divergence lies beyond double precision, where quadrature cannot
        see it. Exponential-type tails (E[exp(r / beta)] finite only for beta above the
        tail's scale) are left to the engine, which sees their divergence.
        """
        if not isinstance(self.law, ContinuousLaw):
            return None
        if not hasattr(self, "_tail"):
            object.__setattr__(self, "_tail", _upper_tail_exponent(self.law))
        gamma = self._tail  # type: ignore[attr-defined]
        if gamma is None or gamma >= HEAVY_TAIL_EXPONENT:
            return None
        return (
            f"E[exp(r / beta)] is infinite for every beta > 0 under {self.law.name}: its upper "
            f"tail is heavier than exponential (-log P(R > x) grows like x^{max(gamma, 0.0):.2g}, "
            "slower than x), so the raw reward has no KL-regularised policy; calibrate it first "
            "(a bounded transform of the calibrated reward)"
        )

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self.law.ppf(u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self.law.isf(s)


#: A law whose -log P(R > x) grows like x^gamma with gamma below this has no moment
#: generating function: exponential-type tails read 0.98 to 1.05 at the depth probed (gamma,
#: normal-inverse-Gaussian, Gumbel, logistic), light ones 2 or more, heavy ones 0 (power
#: laws), about 0 (log-normal) or the Weibull shape (below 1).
HEAVY_TAIL_EXPONENT = 0.95


def _upper_tail_exponent(law: ContinuousLaw) -> float | None:
    """The exponent gamma of -log P(R > x) ~ x^gamma far in the upper tail, or None.

    None for a law bounded above. Otherwise x doubles from the law's median (x_k = m +
    d 2^k, d its 1e-3 quantile distance) until P(R > x) underflows or x overflows, and
    gamma = log2 of the ratio of the last two increments of -log P(R > x) -- the deepest
    reading of the tail scipy's ``logsf`` gives, past 1e-300 in probability.
    """
    dist = law.dist
    if math.isfinite(float(dist.support()[1])):
        return None
    with np.errstate(all="ignore"):
        m = float(dist.isf(0.5))
        d = float(dist.isf(1e-3)) - m
        if not (math.isfinite(m) and math.isfinite(d) and d > 0.0):
            return None
        x = m + d * 2.0 ** np.arange(1100)
        x = x[np.isfinite(x)]
        # -log P(R > x) in growing chunks: scipy integrates some tails numerically, and a
        # tail that underflows does so within a dozen doublings
        h = np.empty(0)
        for stop in (16, 64, x.size):
            h = np.concatenate([h, -np.asarray(dist.logsf(x[h.size : stop]), dtype=np.float64)])
            if not np.all(np.isfinite(h)):
                break
        # the leading run of finite, increasing values (past it the tail underflowed)
        good = np.isfinite(h) & np.concatenate([[True], np.diff(h) > 0.0])
    n = int(np.argmin(good)) if not np.all(good) else h.size
    if n < 4:
        return None  # gone below 1e-300 within a few doublings: lighter than exponential
    inc = np.diff(h[:n])
    return float(np.log2(inc[-1] / inc[-2]))


@dataclass(frozen=True, eq=False)
class LevelValues(Transform):
    """A transform given by one value per level of a discrete law: a step function of u.

    Level j covers the calibrated interval (F_{j-1}, F_j]; the tilt on that law uses the
    value at the level's midpoint, i.e. ``values[j]``.
    """

    law: DiscreteLaw
    values: np.ndarray
    label: str = "level values"

    def __post_init__(self) -> None:
        if not isinstance(self.law, DiscreteLaw):
            raise ValueError(f"law must be a DiscreteLaw, got {self.law!r}")
        vals = np.asarray(self.values, dtype=np.float64).ravel()
        if vals.size != self.law.n_levels or np.any(np.isnan(vals) | (vals == np.inf)):
            raise ValueError(
                f"values must hold one number (finite or -inf) per level ({self.law.n_levels})"
            )
        object.__setattr__(self, "values", vals)

    @property
    def name(self) -> str:  # noqa: D102
        return self.label

    def _left(self, u: np.ndarray) -> np.ndarray:
        j = np.searchsorted(self.law.cdf_levels, u, side="left")
        return self.values[j.clip(0, self.values.size - 1)]

    def _right(self, s: np.ndarray) -> np.ndarray:
        j = np.searchsorted(-self.law.sf_levels, -s, side="right")
        return self.values[j.clip(0, self.values.size - 1)]


@dataclass(frozen=True)
class SampleCalibrated(Transform):
    r"""The transform KL-RL sees when C is estimated from K base samples: E[Phi(C^) | u].

    InfAlign-CTRL calibrates a response's reward against K reference rewards of its prompt
    (:func:`~infalign_theory.calibration.calibrate_empirical`), so the reward optimised is
    Phi(C^), not Phi(C), and maximising E_pi[Phi(C^)] - beta KL tilts by its conditional
    mean. Without ties K C^ = J ~ Binomial(K, u) for the mid-rank estimator, so

    .. math:: \Phi_K(u) = \sum_{j=0}^K inom Kj u^j (1-u)^{K-j}\, \Phi(c_j),

    a Bernstein polynomial, c_j = j/K (``midrank``) or (j + 1/2)/(K + 1) (``smoothed``);
    exact, evaluated in log space from the pair (u, 1 - u). On a discrete law (ties) use
    :meth:`on`, which :func:`~infalign_theory.policy.tilt` calls for you: the half-integer
    score then has the law of a sum of K draws of {2, 1, 0} (below, tied, above).

    Parameters
    ----------
    transform : Transform
        Phi, applied to the estimate.
    k : int
        Reference samples per prompt, 1 <= k <= 100000.
    estimator : {"midrank", "smoothed"}
        The estimate of C (see :func:`~infalign_theory.calibration.estimate`).
    """

    transform: Transform
    k: int
    estimator: str = "midrank"
    # binomial masses to a few ulps, summed over up to ~1000 terms (measured: <= 16 ulps)
    rounding_ulps: ClassVar[float] = 64.0

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Transform):
            raise ValueError(f"transform must be a Transform, got {self.transform!r}")
        object.__setattr__(self, "k", integer(self.k, "k", 1, 100_000))
        choice(self.estimator, "estimator", ESTIMATORS)
        score = 2 * np.arange(self.k + 1)  # without ties: S = 2J, J ~ Binomial(K, u)
        c = estimate(score, self.k, self.estimator)
        # 1 - C^(S) = C^(2K - S) for both estimators: the pair is exact
        values, offsets = self.transform.pair_relative(
            c, estimate(2 * self.k - score, self.k, self.estimator)
        )
        bad = ~np.isfinite(values + offsets)
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(
                f"{self.transform.name} is {values[j] + offsets[j]} at the estimate C = "
                f"{c[j]:g} that {self.k} samples can give ({self.estimator}); a transform "
                "must be finite there (for log-like transforms use estimator='smoothed')"
            )
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_value_offsets", offsets)

    @property
    def name(self) -> str:  # noqa: D102
        return f"{self.transform.name}, K={self.k} {self.estimator}"

    def _phi_minus(self, index: int) -> np.ndarray:
        """Phi(c_j) - Phi(c_index), each difference taken from the exact representation."""
        v, o = self._values, self._value_offsets  # type: ignore[attr-defined]
        return (v - v[index]) + (o - o[index])

    @property
    def offsets(self) -> tuple[float, float]:  # noqa: D102
        v, o = self._values, self._value_offsets  # type: ignore[attr-defined]
        return (float(v[0] + o[0]), float(v[-1] + o[-1]))

    def _mix(self, u: np.ndarray, s: np.ndarray, index: int) -> np.ndarray:
        """sum_j P(J = j | u) (Phi(c_j) - Phi(c_index)), J ~ Binomial(K, u), s = 1 - u.

        One kernel call: the binomial masses are walked from the mode outwards by their
        ratio, from whichever of u and s is exact, and the terms below 1e-40 of the mode's
        are dropped, so each node costs O(sqrt(K u s)) (see ``_kernels.bernstein_mix``).
        """
        phi = np.ascontiguousarray(self._phi_minus(index), dtype=np.float64)
        u = np.ascontiguousarray(u, dtype=np.float64).ravel()
        s = np.ascontiguousarray(s, dtype=np.float64).ravel()
        out = np.empty(u.size)
        K.bernstein_mix(u, s, self.k, phi, out)
        return out

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self._mix(u, 1.0 - u, 0)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self._mix(1.0 - s, s, -1)

    def on(self, law: DiscreteLaw) -> LevelValues:
        r"""The same transform on the levels of a discrete law (ties counted one half).

        A response on level j is compared with K references: each is below it (mass
        :math:`F_{j-1}`), tied (:math:`q_j`) or above (:math:`1 - F_j`), so the half-integer
        score is S = 2B + T with (B, T) trinomial, and the level's value is
        :math:`E[\Phi(\hat C(S))]`, summed exactly over the (B, T) that carry weight
        (``_kernels.trinomial_mix``). Refused up front when that sum would take more than
        about ``TRINOMIAL_TERMS`` terms (many levels at large K).
        """
        if not isinstance(law, DiscreteLaw):
            raise ValueError(f"law must be a DiscreteLaw, got {law!r}")
        k = self.k
        scores = np.arange(2 * k + 1)
        grid = estimate(scores, k, self.estimator)
        values, offsets = self.transform.pair_relative(
            grid, estimate(2 * k - scores, k, self.estimator)
        )
        phi = np.ascontiguousarray(values + offsets)
        below = np.ascontiguousarray(np.concatenate([[0.0], law.cdf_levels[:-1]]))
        above = np.ascontiguousarray(law.sf_levels)
        tie = np.ascontiguousarray(law.probs)
        # Every comparison scores 0 (above), 1 (tied: q_j > 0) or 2 (below), so level j
        # reaches every score from 0 (K if nothing lies above) to 2K (K if nothing below).
        lo = np.where(above > 0.0, 0, k)
        hi = np.where(below > 0.0, 2 * k, k)
        bad = np.concatenate([[0], np.cumsum(~np.isfinite(phi))])
        hit = bad[hi + 1] - bad[lo] > 0
        if np.any(hit):
            j = int(np.argmax(hit))
            s_bad = lo[j] + int(np.argmax(~np.isfinite(phi[lo[j] : hi[j] + 1])))
            raise ValueError(
                f"{self.transform.name} is {phi[s_bad]} at the estimate C = {grid[s_bad]:g} "
                f"that {k} samples can give on level {j} of this law; a transform must be "
                "finite there (for log-like transforms use estimator='smoothed')"
            )
        terms = trinomial_terms(k, below, tie, above)
        if terms > TRINOMIAL_TERMS:
            raise ValueError(
                f"k = {k} on a law of {law.n_levels} levels needs about {terms:.1e} binomial "
                f"terms (the limit is {TRINOMIAL_TERMS:.0e}, some seconds): use a smaller k "
                "or a law with fewer levels"
            )
        out = np.empty(law.n_levels)
        K.trinomial_mix(below, tie, above, k, phi, out)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{self.name} overflows on this law: its values exceed 1e300")
        return LevelValues(law, out, f"{self.name} on {law.n_levels} levels")


#: The most terms :meth:`SampleCalibrated.on` sums (each costs a few nanoseconds).
TRINOMIAL_TERMS = 2e9


def trinomial_terms(k: int, below: np.ndarray, tie: np.ndarray, above: np.ndarray) -> float:
    """About how many terms ``_kernels.trinomial_mix`` visits: (ties) x (below | ties) walks.

    A walk from a binomial's mode to masses of 1e-40 of it spans about 13.6 standard
    deviations each way (plus a few terms where the deviation is below one).
    """
    rest = below + above
    sd_tie = np.sqrt(k * tie * rest)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(rest > 0.0, below / np.where(rest > 0.0, rest, 1.0), 0.0)
    sd_below = np.sqrt(k * rest * p * (1.0 - p))
    return float(np.sum((27.2 * sd_tie + 25.0) * (27.2 * sd_below + 25.0)))


@dataclass(frozen=True)
class Custom(Transform):
    """A user's transform: a callable u -> Phi(u), on numpy arrays or on numbers.

    An array function (``lambda u: np.sqrt(u)``) receives a float array and must return
    real numbers of the same shape (or a scalar, for a constant). A scalar function
    (``lambda u: math.sqrt(u)``, or one that branches with ``if``) is vectorised for you:
    when the call on the array raises a ``TypeError`` or ``ValueError``, the callable is
    called once per point with a Python float, and must return one real number each time
    (an array function is faster). Values may be -inf (zero weight) but never NaN or +inf.
    Near u = 1 the callable receives u = 1 - s rounded to double precision (an absolute
    error up to 2**-54), so a tilt whose mass sits within about 1e-7 beta-scaled units of
    u = 1 is refused rather than computed from rounding: prefer a built-in transform, or
    :class:`Mirror` of a transform written in s = 1 - u, where that matters.
    An exception the callable raises on numbers as well as on the array is passed on
    unchanged (the one it raised on the array).
    """

    fn: Callable[[Any], Any]
    label: str = "custom"
    input_rounding: ClassVar[tuple[float, float]] = (0.0, 2.0**-54)

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ValueError(f"fn must be callable, got {self.fn!r}")

    @property
    def name(self) -> str:  # noqa: D102
        return self.label

    def _apply(self, u: np.ndarray) -> tuple[Any, bool]:
        """The callable on the array, or on each point if it takes numbers; (values, per point)."""
        try:
            return self.fn(u), False
        except (TypeError, ValueError) as on_array:
            points = u.ravel().tolist()
            try:
                first = self.fn(points[0]) if points else None
            except Exception:
                raise on_array from None  # not a scalar function either: its own error
            values = [first, *(self.fn(x) for x in points[1:])] if points else []
            return values, True

    def _call(self, u: np.ndarray) -> np.ndarray:
        # u = 1 arrives where 1 - s rounds to 1: log1p(-u) = -inf there is a value, not a
        # fault; the values are checked (NaN, +inf) where they are used
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            values, per_point = self._apply(u)
            try:
                raw = np.asarray(values)
            except ValueError:  # ragged: sequences of different lengths
                raise ValueError(
                    f"fn (transform {self.label}) must return one number per point, it "
                    "returned sequences of different lengths"
                ) from None
        if raw.dtype.kind == "c":
            raise ValueError(
                f"fn (transform {self.label}) must return real numbers, it returned complex "
                "values; take the real part (or the modulus) yourself if that is what you mean"
            )
        if raw.dtype.kind not in "biuf":
            raise ValueError(
                f"fn (transform {self.label}) must return real numbers, it returned "
                + ("values" if per_point else "an array")
                + f" of dtype {raw.dtype}"
            )
        out = raw.astype(np.float64)
        if per_point:
            if out.shape != (u.size,):
                raise ValueError(
                    f"fn (transform {self.label}) called on one number must return one "
                    f"number, it returned shape {out.shape[1:]}"
                )
            return out.reshape(u.shape)
        if out.shape != u.shape:
            if out.ndim != 0:
                raise ValueError(
                    f"fn (transform {self.label}) must return one value per point of its "
                    f"input (shape {u.shape}) or a scalar, it returned shape {out.shape}"
                )
            out = np.full(u.shape, float(out))
        return out

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self._call(u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return self._call(1.0 - s)
