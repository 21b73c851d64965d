r"""Calibrated rewards: the reward's mid-rank under the base policy.

.. math:: C(y) = P(r(Z) < r(y)) + \tfrac12 P(r(Z) = r(y)), \qquad Z \sim \pi_{\rm ref},

the win rate of the single response y against one base sample, ties counted one half
(InfAlign, arXiv 2412.19792, Definition 2, with the tie convention of this library). With no
ties C(Z) ~ Uniform[0, 1]; on a discrete law, level j is the interval (F_{j-1}, F_j] of
calibrated space and C_j is its midpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import choice, finite_array
from .laws import ContinuousLaw, DiscreteLaw, RewardLaw


def calibrate(law: RewardLaw, rewards: Any) -> np.ndarray:
    """Exact calibrated reward C(r) of reward values under ``law`` (ties counted ½).

    Parameters
    ----------
    law : DiscreteLaw or ContinuousLaw
        The reward law under the base policy.
    rewards : array_like
        Finite reward values (not necessarily in the law's support).

    Returns
    -------
    ndarray
        P(R < r) + P(R = r) / 2, elementwise, in [0, 1].
    """
    r = finite_array(rewards, "rewards")
    if isinstance(law, ContinuousLaw):
        return law.cdf(r)
    if isinstance(law, DiscreteLaw):
        return law.cdf(r) - 0.5 * law.pmf(r)
    raise ValueError(f"law must be a DiscreteLaw or ContinuousLaw, got {type(law).__name__}")


def level_midpoints(law: DiscreteLaw) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated rewards of the levels of ``law`` as the exact pair (C_j, 1 - C_j).

    C_j = F_{j-1} + q_j / 2 is accumulated from below and 1 - C_j = (1 - F_j) + q_j / 2 from
    above, so that levels near either end keep full relative precision.
    """
    q = law.probs
    below = np.concatenate([[0.0], law.cdf_levels[:-1]])
    return below + 0.5 * q, law.sf_levels + 0.5 * q


# --------------------------------------------------------------------------------------
# Calibration from K base samples (the C of InfAlign-CTRL).
# --------------------------------------------------------------------------------------
#: The estimators of C from K reference rewards. With S = 2 #{r_k < r} + #{r_k = r}:
#: "midrank" is S / 2K (unbiased, in [0, 1]); "smoothed" is (S/2 + 1/2) / (K + 1), in (0, 1),
#: so that log C is finite.
ESTIMATORS = ("midrank", "smoothed")


def estimate(score: Any, k: int, estimator: str = "midrank") -> np.ndarray:
    r"""The estimate of C from the half-integer score S = 2 #below + #ties of K comparisons.

    Bias and variance, with X = 1, 1/2, 0 for a reference below, tied with, above the
    response (P(X = 1) + P(X = 1/2)/2 = C) and v = Var(X) = P(below) + P(tie)/4 - C^2
    (v = C(1 - C) without ties):

    * ``midrank`` :math:`\hat C = S/2K`: unbiased, variance v / K;
    * ``smoothed`` :math:`\hat C = (S/2 + 1/2)/(K + 1)`: bias (1/2 - C)/(K + 1), variance
      K v / (K + 1)^2, never 0 or 1.
    """
    choice(estimator, "estimator", ESTIMATORS)
    s = np.asarray(score, dtype=np.float64)
    if estimator == "midrank":
        return s / (2.0 * k)
    return (0.5 * s + 0.5) / (k + 1.0)


def calibrate_empirical(rewards: Any, references: Any, estimator: str = "midrank") -> np.ndarray:
    """Estimate the calibrated reward of responses from K reference rewards of their prompt.

    Parameters
    ----------
    rewards : array_like, shape (M,) or (P, M)
        Rewards of M responses (for each of P prompts).
    references : array_like, shape (K,) or (P, K)
        Rewards of K base samples (for each prompt), scored once.
    estimator : {"midrank", "smoothed"}
        See :func:`estimate`; ties count one half.

    Returns
    -------
    ndarray, the shape of ``rewards``
    """
    r = finite_array(rewards, "rewards")
    ref = finite_array(references, "references")
    if ref.ndim == 0 or ref.shape[-1] == 0:
        raise ValueError("references must hold at least one reward per prompt")
    squeeze = r.ndim == 1
    r2 = np.atleast_2d(r)
    ref2 = np.atleast_2d(ref)
    if ref2.shape[0] != r2.shape[0]:
        raise ValueError(
            f"rewards and references must cover the same prompts, got {r2.shape[0]} and "
            f"{ref2.shape[0]}"
        )
    srt = np.sort(ref2, axis=1)
    below = np.array([np.searchsorted(row, x, side="left") for row, x in zip(srt, r2, strict=True)])
    upto = np.array([np.searchsorted(row, x, side="right") for row, x in zip(srt, r2, strict=True)])
    out = estimate(below + upto, ref2.shape[1], estimator)  # S = 2 below + ties
    return out[0] if squeeze else out


def score_distribution(k: int, below: float, tie: float) -> np.ndarray:
    """P(S = s), s = 0..2K, for S = sum of K draws of 2 (prob ``below``), 1 (``tie``), 0.

    Exact: the coefficients of (above + tie z + below z^2)^K, by repeated squaring.
    """
    above = max(0.0, 1.0 - below - tie)
    base = np.array([above, tie, below])
    out = np.array([1.0])
    power = base
    n = int(k)
    while n:
        if n & 1:
            out = np.convolve(out, power)
        n >>= 1
        if n:
            power = np.convolve(power, power)
    return np.clip(out, 0.0, None)
