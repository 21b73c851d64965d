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
from .procedures import (
    CdfMap,
    OrderStatistic,
    Procedure,
    SoftBestOf,
    ThresholdSampling,
    best_of,
    cdf_map,
    order_statistic,
    sampling,
    soft_best_of,
    threshold_sampling,
    worst_of,
)
from .proxy import (
    JointLaw,
    JointPolicy,
    ProxyBestOf,
    ProxyOptimum,
    joint_base,
    joint_tilt,
    proxy_apply,
    proxy_best_of,
    proxy_evaluate,
    proxy_first_variation,
    proxy_win_rate,
    solve_proxy_optimal,
)
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
    "CdfMap",
    "ContinuousLaw",
    "ContinuousPolicy",
    "Custom",
    "DiscreteLaw",
    "DiscretePolicy",
    "Evaluation",
    "Exponential",
    "Identity",
    "JointLaw",
    "JointPolicy",
    "LevelValues",
    "Log",
    "Mirror",
    "OrderStatistic",
    "Plan",
    "ProxyBestOf",
    "ProxyOptimum",
    "Procedure",
    "Quantile",
    "SampleCalibrated",
    "SoftBestOf",
    "ThresholdSampling",
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
    "cdf_map",
    "evaluate",
    "joint_base",
    "joint_tilt",
    "kl",
    "kl_limit",
    "level_midpoints",
    "order_statistic",
    "plan",
    "pool_win_rate",
    "proxy_apply",
    "proxy_best_of",
    "proxy_evaluate",
    "proxy_first_variation",
    "proxy_win_rate",
    "read_rewards",
    "sampling",
    "solve_proxy_optimal",
    "soft_best_of",
    "standard_win_rate",
    "threshold_sampling",
    "tilt",
    "tradeoff_curve",
    "win_rate",
    "worst_of",
]
