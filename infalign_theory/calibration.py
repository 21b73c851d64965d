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

from ._validate import finite_array
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
    raise TypeError(f"law must be a DiscreteLaw or ContinuousLaw, got {type(law).__name__}")


def level_midpoints(law: DiscreteLaw) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated rewards of the levels of ``law`` as the exact pair (C_j, 1 - C_j).

    C_j = F_{j-1} + q_j / 2 is accumulated from below and 1 - C_j = (1 - F_j) + q_j / 2 from
    above, so that levels near either end keep full relative precision.
    """
    q = law.probs
    below = np.concatenate([[0.0], law.cdf_levels[:-1]])
    return below + 0.5 * q, law.sf_levels + 0.5 * q
