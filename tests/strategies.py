"""Hypothesis strategies named by meaning."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import infalign_theory as ia


@st.composite
def discrete_laws(draw, ties: bool = True, max_levels: int = 6) -> ia.DiscreteLaw:
    """A finite reward law; with ``ties`` the raw values repeat, so levels merge."""
    size = draw(st.integers(1, max_levels))
    if ties:
        values = draw(st.lists(st.integers(-3, 3), min_size=size, max_size=size))
    else:
        values = draw(st.lists(st.integers(-50, 50), min_size=size, max_size=size, unique=True))
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=size, max_size=size))
    probs = np.asarray(weights) / np.sum(weights)
    return ia.DiscreteLaw(np.asarray(values, dtype=float), probs)


def reward_laws() -> st.SearchStrategy:
    """The continuous calibrated space (None) or a discrete law with ties."""
    return st.one_of(st.none(), discrete_laws(ties=True))


def betas(low: float = 0.02, high: float = 20.0) -> st.SearchStrategy[float]:
    """KL strengths, log-uniform in [low, high]."""
    return st.floats(np.log(low), np.log(high)).map(lambda x: float(np.exp(x)))


def procedures(max_n: int = 32) -> st.SearchStrategy[ia.OrderStatistic]:
    """Sampling, Best-of-N, Worst-of-N and interior order statistics."""
    return st.integers(1, max_n).flatmap(
        lambda n: st.integers(1, n).map(lambda k: ia.order_statistic(k, n))
    )


def transforms() -> st.SearchStrategy[ia.Transform]:
    """Identity, log and exponential transforms with t of either sign."""
    exps = st.floats(-60.0, 60.0).map(lambda t: ia.Exponential(round(t, 3)))
    return st.one_of(st.just(ia.Identity()), st.just(ia.Log()), exps)
