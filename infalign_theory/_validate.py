"""Input checks shared by the public functions: each error names the parameter and its range."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def positive_finite(value: Any, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0."""
    x = real(value, name)
    if not x > 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def real(value: Any, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond the double range
        raise ValueError(f"{name} must be a finite real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return x


def integer(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in [low, high], or raise naming the range."""
    rng = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    if isinstance(value, numbers.Integral):
        k = int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        k = int(float(value))
    else:
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    if k < low or (high is not None and k > high):
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return k


def unit_interval(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a float array with every entry in [0, 1], or raise."""
    try:
        if np.iscomplexobj(values):
            raise TypeError("complex values")
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must lie in [0, 1] ({exc})") from exc
    if not np.all((arr >= 0.0) & (arr <= 1.0)):
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")
    return arr


def finite_array(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a float array of finite entries, or raise."""
    try:
        if np.iscomplexobj(values):
            raise TypeError("complex values")
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{name} must be an array of finite real numbers ({exc})") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be an array of finite real numbers (no NaN or inf)")
    return arr


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, or raise listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


def beta_or_kl(
    beta: Any, kl: Any, beta_range: tuple[float, float], note: str = ""
) -> tuple[float | None, float | None]:
    """Exactly one of ``beta`` (in ``beta_range``) and a KL budget ``kl`` (> 0), checked.

    ``note`` is appended to the message for a beta out of range (why the range ends there).
    """
    if (beta is None) == (kl is None):
        raise ValueError("give exactly one of beta and kl")
    if beta is not None:
        beta = positive_finite(beta, "beta")
        if not beta_range[0] <= beta <= beta_range[1]:
            raise ValueError(
                f"beta must be in [{beta_range[0]:g}, {beta_range[1]:g}], got {beta!r}{note}"
            )
    if kl is not None:
        kl = positive_finite(kl, "kl")
    return beta, kl
