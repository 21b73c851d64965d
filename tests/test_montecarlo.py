"""Monte Carlo against the exact values: a route that shares no code with the quadrature.

Continuous policies are sampled by rejection from Uniform[0, 1] (acceptance exp(Phi/beta -
max)), using only the transform's values; discrete ones by their level masses. Each
estimate must land within 4 standard errors of the exact number (seeded).
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import DISCRETE_LAWS

import infalign_theory as ia

SAMPLES = 200_000


def rejection_sample(transform, beta, size, rng):
    """Draws from f ∝ exp(Phi(u)/beta) on [0, 1], by rejection from the uniform."""
    top = float(np.max(transform(np.linspace(0.0, 1.0, 100_001)))) / beta
    out = []
    while sum(len(x) for x in out) < size:
        u = rng.random(4 * size)
        keep = rng.random(4 * size) < np.exp(transform(u) / beta - top)
        out.append(u[keep])
    return np.concatenate(out)[:size]


def within(estimate, samples, exact):
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    assert abs(estimate - exact) <= 4 * se, (estimate, exact, se)


@pytest.mark.parametrize(
    "transform, beta",
    [
        (ia.Identity(), 0.3),
        (ia.Exponential(8.0), 0.15),
        (ia.Exponential(-6.0), 0.1),
        (ia.Log(), 0.5),
    ],
)
@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(4), ia.order_statistic(2, 3)])
def test_continuous_win_rates(transform, beta, proc):
    rng = np.random.default_rng(20261126)
    n = proc.n
    pol_draws = rejection_sample(transform, beta, SAMPLES * n, rng).reshape(SAMPLES, n)
    base_draws = rng.random((SAMPLES, n))
    x = np.sort(pol_draws, axis=1)[:, proc.k - 1]
    y = np.sort(base_draws, axis=1)[:, proc.k - 1]
    wins = (x > y).astype(float)
    pol = ia.tilt(transform, beta)
    within(wins.mean(), wins, ia.win_rate(pol, proc))
    single = pol_draws[:, 0]
    within(single.mean(), single, ia.standard_win_rate(pol))  # W_std = E[U] under the policy
    # KL = E_pi[log f(U)], with log f from the transform alone and the exact normaliser
    # estimated from the uniform draws.
    logw = transform(base_draws[:, 0]) / beta
    log_z = np.log(np.mean(np.exp(logw - logw.max()))) + logw.max()
    log_f = transform(single) / beta - log_z
    assert abs(log_f.mean() - ia.kl(pol)) <= 4 * log_f.std(ddof=1) / np.sqrt(SAMPLES) + 0.01


@pytest.mark.parametrize("name", ["three-levels", "with-ties", "heavy-top"])
@pytest.mark.parametrize("proc", [ia.best_of(4), ia.worst_of(3), ia.sampling()])
def test_discrete_win_rates_with_ties(name, proc):
    rng = np.random.default_rng(7)
    law = DISCRETE_LAWS[name]
    pol = ia.tilt(ia.Exponential(3.0), 0.4, law)
    n = proc.n
    x = np.sort(rng.choice(law.values, size=(SAMPLES, n), p=pol.probs), axis=1)[:, proc.k - 1]
    y = np.sort(rng.choice(law.values, size=(SAMPLES, n), p=law.probs), axis=1)[:, proc.k - 1]
    score = (x > y) + 0.5 * (x == y)
    within(score.mean(), score, ia.win_rate(pol, proc))


def test_continuous_sampler_matches_the_density():
    pol = ia.tilt(ia.Exponential(12.0), 0.2)
    draws = pol.sample(rng=3, size=50_000)
    for u in (0.5, 0.8, 0.95):
        hits = (draws <= u).astype(float)
        within(hits.mean(), hits, float(pol.cdf(u)))
