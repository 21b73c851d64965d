r"""Many prompts aligned with one shared beta, and proxy reward models -- exactly.

Real RLHF uses one KL strength beta for every prompt, while each prompt x has its own reward
law under the base. Averaged over prompts, the KL and the win rates of the policy are

.. math:: \overline{\mathrm{KL}} = \sum_x w_x\, \mathrm{KL}_x(\beta), \qquad
          \overline W = \sum_x w_x\, W_x(\beta).

* :func:`align_prompts` compares raw-reward KL-RL (each prompt tilted by its own reward,
  the quantile transform of its law) with calibrated KL-RL (every prompt tilted by the same
  transform of its calibrated reward). With the identity transform the calibrated version
  maximises the average standard win rate at its average KL: maximising
  :math:`\sum_x w_x (W_x - \beta\,\mathrm{KL}_x)` separates into one tilt per prompt by
  :math:`e^{C/\beta}` (the Gibbs principle), so it *is* the frontier; raw rewards of
  different scales spend the shared beta unevenly and fall below it
  (:func:`frontier_gap` measures by how much).
* :func:`align_to_proxy` aligns to a reward *model* that errs -- rare large errors, or
  monotone distortions -- raw or calibrated, and measures the *true* KL and the *true* win
  rate, on finite response sets where everything is an exact sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels as K
from ._validate import choice, finite_array
from .calibration import calibrate
from .curves import TradeoffCurve, beta_for_kl, kl_limit, maximise_on_log_grid
from .laws import ContinuousLaw, DiscreteLaw, RewardLaw
from .metrics import kl, standard_win_rate, win_rate
from .policy import DiscretePolicy, tilt
from .procedures import OrderStatistic, sampling
from .transforms import Exponential, Identity, Quantile, Transform


def _weights(weights: Any, count: int) -> np.ndarray:
    if weights is None:
        return np.full(count, 1.0 / count)
    w = finite_array(weights, "weights").ravel()
    if w.size != count or np.any(w < 0.0) or not w.sum() > 0.0:
        raise ValueError(f"weights must be {count} numbers >= 0, not all zero")
    return w / w.sum()


def _betas(betas: Any) -> np.ndarray:
    b = finite_array(betas, "betas").ravel()
    if b.size == 0 or np.any(b <= 0.0):
        raise ValueError("betas must be a non-empty list of finite numbers > 0")
    return b


def align_prompts(
    laws: Sequence[RewardLaw],
    betas: Any,
    *,
    calibrated: bool,
    transform: Transform | None = None,
    procedure: OrderStatistic | None = None,
    weights: Any = None,
) -> TradeoffCurve:
    """Prompt-averaged KL and win rates of KL-RL with one beta shared by all prompts.

    Parameters
    ----------
    laws : sequence of DiscreteLaw or ContinuousLaw
        Each prompt's reward law under the base.
    betas : array_like
        The shared betas of the sweep.
    calibrated : bool
        True: tilt every prompt by ``transform`` of its calibrated reward (default the
        identity). False: tilt each prompt by its raw reward (``Quantile(law)``).
    procedure : OrderStatistic, optional
        For the inference-time win rate (default sampling: the standard win rate).
    weights : array_like, optional
        Prompt weights (default equal).

    Raises
    ------
    ValueError
        When a raw-reward tilt does not exist at some beta (E[exp(r / beta)] infinite).
    """
    if not laws or not all(isinstance(law, DiscreteLaw | ContinuousLaw) for law in laws):
        raise ValueError("laws must be a non-empty sequence of DiscreteLaw or ContinuousLaw")
    proc = sampling() if procedure is None else procedure
    tr = Identity() if transform is None else transform
    w = _weights(weights, len(laws))
    grid = _betas(betas)
    out = np.zeros((3, grid.size))
    for i, beta in enumerate(grid):
        for law, weight in zip(laws, w, strict=True):
            pol = tilt(tr if calibrated else Quantile(law), float(beta), law)
            out[:, i] += weight * np.array([kl(pol), win_rate(pol, proc), standard_win_rate(pol)])
    name = f"calibrated {tr.name}" if calibrated else "raw reward"
    return TradeoffCurve(
        transform=name,
        procedure=proc.name,
        against="procedure",
        beta=grid,
        kl=out[0],
        win_rate=out[1],
        standard_win_rate=out[2],
    )


def _average_kl(
    laws: Sequence[RewardLaw], transform: Transform, beta: float, w: np.ndarray
) -> float:
    return float(sum(wx * kl(tilt(transform, beta, law)) for law, wx in zip(laws, w, strict=True)))


def shared_beta_for_kl(
    laws: Sequence[RewardLaw], transform: Transform, kl_target: float, *, weights: Any = None
) -> float:
    r"""The one beta at which calibrated KL-RL by ``transform`` has average KL ``kl_target``.

    Solves :math:`\sum_x w_x \mathrm{KL}_x(\beta) = \text{kl\_target}` (each KL decreases in
    beta) by Brent's method on log beta, to a relative KL of 1e-10.

    Raises
    ------
    ValueError
        When the target is not positive or is out of reach: above the prompt-averaged limit as
        beta -> 0 (on discrete laws, :func:`~infalign_theory.curves.kl_limit` of each prompt).
    """
    from scipy import optimize

    if not laws or not all(isinstance(law, DiscreteLaw | ContinuousLaw) for law in laws):
        raise ValueError("laws must be a non-empty sequence of DiscreteLaw or ContinuousLaw")
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    target = float(kl_target)
    if not (math.isfinite(target) and target > 0.0):
        raise ValueError(f"kl_target must be a finite number > 0, got {kl_target!r}")
    w = _weights(weights, len(laws))
    if all(isinstance(law, DiscreteLaw) for law in laws):
        limit = float(sum(wx * kl_limit(transform, law) for law, wx in zip(laws, w, strict=True)))
        if not target < limit:
            raise ValueError(
                f"kl_target must be in (0, {limit:.12g}) for {transform.name} on these prompts "
                f"(the prompt-averaged limit as beta -> 0), got {kl_target!r}"
            )
    # every prompt's own beta for the target brackets the shared one (where reachable)
    own = []
    for law in laws:
        try:
            own.append(math.log(beta_for_kl(transform, target, law=law)))
        except ValueError:
            continue  # this prompt cannot reach the target alone; others make up for it
    if not own:
        raise ValueError(f"kl_target = {target!r} is out of reach for every prompt")
    lo, hi = min(own), max(own)

    def gap(x: float) -> float:
        return math.log(_average_kl(laws, transform, math.exp(x), w)) - math.log(target)

    while gap(lo) < 0.0:  # pragma: no cover - only when some prompts cannot reach the target
        lo -= 2.0
        if lo < -690.0:
            raise ValueError(f"kl_target = {target!r} is out of reach for {transform.name}")
    while gap(hi) > 0.0:
        hi += 2.0
    if gap(lo) == 0.0:
        return math.exp(lo)
    return math.exp(optimize.brentq(gap, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps))


def best_shared_exponent(
    laws: Sequence[RewardLaw],
    procedure: OrderStatistic,
    kl_target: float,
    *,
    weights: Any = None,
) -> tuple[float, float]:
    """The exponent t whose exponential transform maximises the prompt-averaged W_T at a KL.

    One beta for all prompts (:func:`shared_beta_for_kl`) at each t; a scan of |t| over
    [0.01, 1e4] on a log grid, refined by bounded scalar maximisation around the best grid
    point. The sign of t follows the procedure (t > 0 for Best-of-N). Exponents whose tilts
    cannot reach the KL are skipped. Returns ``(t, win_rate)``.
    """
    if not isinstance(procedure, OrderStatistic):
        raise ValueError(f"procedure must be an OrderStatistic, got {procedure!r}")
    if not laws or not all(isinstance(law, DiscreteLaw | ContinuousLaw) for law in laws):
        raise ValueError("laws must be a non-empty sequence of DiscreteLaw or ContinuousLaw")
    target = float(kl_target)
    if not (math.isfinite(target) and target > 0.0):
        raise ValueError(f"kl_target must be a finite number > 0, got {kl_target!r}")
    sign = 1.0 if 2 * procedure.k > procedure.n else -1.0
    w = _weights(weights, len(laws))

    def value(x: float) -> float:
        tr = Exponential(sign * math.exp(x))
        try:
            beta = shared_beta_for_kl(laws, tr, kl_target, weights=w)
        except ValueError:
            return -1.0
        return float(
            sum(
                wx * win_rate(tilt(tr, beta, law), procedure)
                for law, wx in zip(laws, w, strict=True)
            )
        )

    x, best = maximise_on_log_grid(value, math.log(0.01), math.log(1e4), 31, 1e-4)
    if best < 0.0:
        raise ValueError(f"kl_target = {kl_target!r} is out of reach for every exponent")
    return sign * math.exp(x), best


def frontier_gap(frontier: TradeoffCurve, other: TradeoffCurve) -> np.ndarray:
    """W of ``frontier`` interpolated at ``other``'s KLs, minus ``other``'s W (NaN outside).

    Uses the standard win rate; ``frontier`` must be sorted by KL within the comparison.
    """
    order = np.argsort(frontier.kl)
    x, y = frontier.kl[order], frontier.standard_win_rate[order]
    inside = (other.kl >= x[0]) & (other.kl <= x[-1])
    gap = np.full(other.kl.size, np.nan)
    gap[inside] = np.interp(other.kl[inside], x, y) - other.standard_win_rate[inside]
    return gap


@dataclass(frozen=True, eq=False)
class ProxyPrompt:
    """One prompt's responses: base probabilities, true rewards, and a reward model's scores.

    Parameters
    ----------
    probs : array_like
        Base probability of each of M responses (summing to one within 1e-9).
    true : array_like
        Their true rewards (ties allowed).
    proxy : array_like
        The reward model's scores for the same responses (ties allowed).
    """

    probs: np.ndarray
    true: np.ndarray
    proxy: np.ndarray

    def __post_init__(self) -> None:
        p = finite_array(self.probs, "probs").ravel()
        t = finite_array(self.true, "true").ravel()
        r = finite_array(self.proxy, "proxy").ravel()
        if not p.size == t.size == r.size or p.size == 0:
            raise ValueError("probs, true and proxy must have the same non-zero length")
        law = DiscreteLaw(t, p)  # validates the probabilities
        object.__setattr__(self, "probs", p / p.sum())
        object.__setattr__(self, "true", t)
        object.__setattr__(self, "proxy", r)
        object.__setattr__(self, "true_law", law)

    def scores(self, reward: str, transform: Transform) -> np.ndarray:
        """What KL-RL maximises on each response.

        The raw proxy, or ``transform`` of the proxy's or the true reward's calibrated
        value (mid-rank under the base).
        """
        if reward == "proxy_raw":
            return self.proxy.copy()
        values = self.proxy if reward == "proxy_calibrated" else self.true
        law = DiscreteLaw(values, self.probs)
        u = calibrate(law, values)
        s = law.sf(values) + 0.5 * law.pmf(values)  # 1 - u, accumulated from above
        return transform.pair(u, s)


REWARDS = ("proxy_raw", "proxy_calibrated", "true_calibrated")


def align_to_proxy(
    prompts: Sequence[ProxyPrompt],
    betas: Any,
    *,
    reward: str,
    transform: Transform | None = None,
    procedure: OrderStatistic | None = None,
    weights: Any = None,
) -> TradeoffCurve:
    """True KL and true win rates, prompt-averaged, of KL-RL on a (possibly wrong) reward.

    Parameters
    ----------
    prompts : sequence of ProxyPrompt
    betas : array_like
        The shared betas of the sweep.
    reward : {"proxy_raw", "proxy_calibrated", "true_calibrated"}
        What is optimised: the reward model's raw score, ``transform`` of its calibrated
        value, or (the oracle) ``transform`` of the true reward's calibrated value.
    transform : Transform, optional
        Default the identity.
    procedure : OrderStatistic, optional
        For the inference-time win rate, measured with the *true* reward (default
        sampling).

    Returns
    -------
    TradeoffCurve
        kl is the exact KL over responses; the win rates use the true reward, ties 1/2.
    """
    choice(reward, "reward", REWARDS)
    if not prompts or not all(isinstance(p, ProxyPrompt) for p in prompts):
        raise ValueError("prompts must be a non-empty sequence of ProxyPrompt")
    proc = sampling() if procedure is None else procedure
    tr = Identity() if transform is None else transform
    w = _weights(weights, len(prompts))
    grid = _betas(betas)
    scores = [pr.scores(reward, tr) for pr in prompts]
    out = np.zeros((3, grid.size))
    for i, beta in enumerate(grid):
        for pr, sc, weight in zip(prompts, scores, w, strict=True):
            with np.errstate(over="ignore"):
                ell = sc / beta
            if not np.all(np.isfinite(ell)):
                raise ValueError(f"beta = {beta:g} overflows the scores / beta; use a larger beta")
            p = np.empty(pr.probs.size)
            r = np.empty(pr.probs.size)
            K.discrete_tilt(pr.probs, ell, p, r)
            law = pr.true_law  # type: ignore[attr-defined]
            masses = np.bincount(
                np.searchsorted(law.values, pr.true), weights=p, minlength=law.n_levels
            )
            pol = DiscretePolicy(law, masses)
            true_kl = float(K.discrete_kl(pr.probs, r))
            out[:, i] += weight * np.array([true_kl, win_rate(pol, proc), standard_win_rate(pol)])
    name = {
        "proxy_raw": "proxy, raw",
        "proxy_calibrated": f"proxy, calibrated {tr.name}",
        "true_calibrated": f"true reward, calibrated {tr.name}",
    }[reward]
    return TradeoffCurve(
        transform=name,
        procedure=proc.name,
        against="procedure",
        beta=grid,
        kl=out[0],
        win_rate=out[1],
        standard_win_rate=out[2],
    )
