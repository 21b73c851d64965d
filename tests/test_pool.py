"""The pool estimator of inference-time win rates: exact over subsets, unbiased over pools."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import infalign_theory as ia

PROCEDURES = [ia.sampling(), ia.best_of(3), ia.worst_of(2), ia.order_statistic(2, 3)]


def brute_force(a, b, proc, against):
    """Average of [T(x) > T(y)] + ½[T(x) = T(y)] over every pair of subsets (by index)."""
    k, n = proc.k, proc.n
    kb, nb = (k, n) if against == "procedure" else (1, 1)
    ta = [sorted(a[list(c)])[k - 1] for c in itertools.combinations(range(a.size), n)]
    tb = [sorted(b[list(c)])[kb - 1] for c in itertools.combinations(range(b.size), nb)]
    x, y = np.array(ta)[:, None], np.array(tb)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


pools = st.lists(st.integers(0, 3), min_size=3, max_size=7).map(lambda v: np.array(v, float))


@given(
    a=pools,
    b=pools,
    index=st.integers(0, len(PROCEDURES) - 1),
    against=st.sampled_from(["procedure", "sample"]),
)
def test_pool_win_rate_equals_the_average_over_all_subsets(a, b, index, against):
    proc = PROCEDURES[index]
    assert ia.pool_win_rate(a, b, proc, against=against) == pytest.approx(
        brute_force(a, b, proc, against), abs=1e-13
    )


def exact_win_rate(values, p, q, proc):
    """W(T(P) ≻ T(Q)) for laws p, q on ``values``: T's CDF is P(Bin(n, F) >= k)."""
    cdf = lambda probs: stats.binom.sf(proc.k - 1, proc.n, np.cumsum(probs))  # noqa: E731
    ga, gb = np.concatenate([[0.0], cdf(p)]), np.concatenate([[0.0], cdf(q)])
    return float(np.dot(np.diff(ga), 0.5 * (gb[1:] + gb[:-1])))


@pytest.mark.parametrize("proc", [ia.sampling(), ia.best_of(3), ia.worst_of(2)])
def test_pool_win_rate_is_unbiased(proc):
    # Expectation over every ordered pool of M = 4 i.i.d. draws from each law, summed exactly.
    values = np.array([0.0, 1.0, 2.0])
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
    pools_ = list(itertools.product(range(3), repeat=4))
    weight = lambda law, pool: np.prod(law[list(pool)])  # noqa: E731
    total = 0.0
    for pa in pools_:
        for pb in pools_:
            w = weight(p, pa) * weight(q, pb)
            total += w * ia.pool_win_rate(values[list(pa)], values[list(pb)], proc)
    assert total == pytest.approx(exact_win_rate(values, p, q, proc), abs=1e-12)


def test_pool_win_rate_with_sampling_is_mann_whitney():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    u = stats.mannwhitneyu(a, b).statistic / (a.size * b.size)
    assert ia.pool_win_rate(a, b, ia.sampling()) == pytest.approx(u, abs=1e-14)


def test_pool_win_rate_refuses_bad_input():
    with pytest.raises(ValueError, match="policy_rewards must hold at least procedure.n = 4"):
        ia.pool_win_rate([1.0, 2.0], [1.0, 2.0, 3.0, 4.0], ia.best_of(4))
    with pytest.raises(ValueError, match="base_rewards must hold at least 4"):
        ia.pool_win_rate([1.0, 2.0, 3.0, 4.0], [1.0], ia.best_of(4))
    # the best of the whole pool (4.0) beats the one base reward (1.0) for sure
    assert ia.pool_win_rate([1.0, 2.0, 3.0, 4.0], [1.0], ia.best_of(4), against="sample") == 1.0
    assert ia.pool_win_rate([1.0, 1.0], [1.0], ia.best_of(2), against="sample") == 0.5
    with pytest.raises(ValueError, match="policy_rewards must be an array of finite"):
        ia.pool_win_rate([np.nan], [1.0], ia.sampling())
    with pytest.raises(ValueError, match="against must be one of"):
        ia.pool_win_rate([1.0], [1.0], ia.sampling(), against="pool")
