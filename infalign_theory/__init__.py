"""infalign_theory: exact, fast, verified computations for inference-aware alignment.

The companion library to InfAlign (Balashankar, Sun, et al., "InfAlign: Inference-aware
language model alignment", arXiv 2412.19792): reward laws, calibrated rewards, reward
transforms, KL-regularised tilted policies, KL, standard and inference-time win rates
(Best-of-N, Worst-of-N, order statistics) and their trade-off curves, in calibrated space.

Data flows one way: laws -> calibration -> transforms -> policy -> metrics -> curves ->
optimal -> plan.

``plan``, ``Plan`` and ``read_rewards`` are imported on first use (the planner brings in
the Theorem 1 solver and scipy.special, which a plain evaluation does not need).
"""

import importlib
from typing import Any

from .calibration import calibrate, calibrate_empirical, level_midpoints
from .curves import TradeoffCurve, best_exponent, beta_for_kl, kl_limit, tradeoff_curve
from .laws import ContinuousLaw, DiscreteLaw
from .metrics import Evaluation, evaluate, kl, pool_win_rate, standard_win_rate, win_rate
from .policy import ContinuousPolicy, DiscretePolicy, apply, base_policy, tilt
from .procedures import OrderStatistic, best_of, order_statistic, sampling, worst_of
from .transforms import (
    Custom,
    Exponential,
    Identity,
    LevelValues,
    Log,
    Mirror,
    Quantile,
    SampleCalibrated,
    Transform,
    Zero,
)

__version__ = "0.1.0"

_LAZY = {"Plan": "planning", "plan": "planning", "read_rewards": "planning"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ContinuousLaw",
    "ContinuousPolicy",
    "Custom",
    "DiscreteLaw",
    "DiscretePolicy",
    "Evaluation",
    "Exponential",
    "Identity",
    "LevelValues",
    "Log",
    "Mirror",
    "OrderStatistic",
    "Plan",
    "Quantile",
    "SampleCalibrated",
    "TradeoffCurve",
    "Transform",
    "Zero",
    "__version__",
    "apply",
    "base_policy",
    "best_exponent",
    "best_of",
    "beta_for_kl",
    "calibrate",
    "calibrate_empirical",
    "evaluate",
    "kl",
    "kl_limit",
    "level_midpoints",
    "order_statistic",
    "plan",
    "pool_win_rate",
    "read_rewards",
    "sampling",
    "standard_win_rate",
    "tilt",
    "tradeoff_curve",
    "win_rate",
    "worst_of",
]
