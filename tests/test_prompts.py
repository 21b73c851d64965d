"""Many prompts with one beta; proxy reward models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import infalign_theory as ia
from infalign_theory.prompts import ProxyPrompt, align_prompts, align_to_proxy, frontier_gap

LAWS = [
    ia.ContinuousLaw(stats.norm(0, 0.3)),
    ia.ContinuousLaw(stats.norm(0, 3.0)),
    ia.DiscreteLaw([0, 1, 1, 2, 10], [0.3, 0.2, 0.2, 0.25, 0.05]),
]


def test_averages_are_the_weighted_per_prompt_numbers():
    curve = align_prompts(LAWS, [0.5], calibrated=False, weights=[1, 2, 1], procedure=ia.best_of(3))
    per = [ia.evaluate(ia.tilt(ia.Quantile(law), 0.5, law), ia.best_of(3)) for law in LAWS]
    w = np.array([0.25, 0.5, 0.25])
    assert curve.kl[0] == pytest.approx(w @ [e.kl for e in per], abs=1e-14)
    assert curve.win_rate[0] == pytest.approx(w @ [e.win_rate for e in per], abs=1e-14)


def test_calibrated_identity_is_the_frontier_and_raw_falls_below():
    cal = align_prompts(LAWS, np.geomspace(0.02, 30, 30), calibrated=True)
    raw = align_prompts(LAWS, np.geomspace(0.3, 300, 30), calibrated=False)
    gap = frontier_gap(cal, raw)
    assert np.nanmin(gap) > -1e-12 and np.nanmax(gap) > 0.05
    # Any other transform, any beta: never above the calibrated identity either.
    other = align_prompts(
        LAWS, np.geomspace(0.05, 10, 10), calibrated=True, transform=ia.Exponential(5.0)
    )
    assert np.nanmin(frontier_gap(cal, other)) > -1e-12


def hacked_prompt(rng, eps=0.03):
    true = np.round(rng.normal(0, 1, 300), 1)
    hack = rng.random(300) < eps
    true = np.where(hack, np.minimum(true, -1.0), true)
    return ProxyPrompt(np.full(300, 1 / 300), true, true + 8.0 * hack)


def test_true_win_rates_under_proxies():
    rng = np.random.default_rng(0)
    prompts = [hacked_prompt(rng) for _ in range(3)]
    betas = np.geomspace(0.01, 5, 12)
    oracle = align_to_proxy(prompts, betas, reward="true_calibrated")
    cal = align_to_proxy(prompts, betas, reward="proxy_calibrated")
    raw = align_to_proxy(prompts, betas, reward="proxy_raw")
    assert np.all(oracle.standard_win_rate >= cal.standard_win_rate - 1e-12)
    assert cal.standard_win_rate.max() > raw.standard_win_rate.max() + 0.1
    # The KL is the exact KL over responses: check one point by direct summation.
    pr = prompts[0]
    p = pr.probs * np.exp(pr.proxy / betas[3])
    p /= p.sum()
    one = align_to_proxy([pr], [betas[3]], reward="proxy_raw")
    assert one.kl[0] == pytest.approx(float(np.sum(p * np.log(p / pr.probs))), abs=1e-12)


def test_monotone_distortion_leaves_calibrated_alignment_unchanged():
    rng = np.random.default_rng(1)
    true = np.round(rng.normal(0, 1, 200), 1)
    honest = ProxyPrompt(np.full(200, 0.005), true, true)
    distorted = ProxyPrompt(np.full(200, 0.005), true, np.exp(3 * true) + 7)
    betas = [0.05, 0.3, 2.0]
    a = align_to_proxy([honest], betas, reward="proxy_calibrated")
    b = align_to_proxy([distorted], betas, reward="proxy_calibrated")
    np.testing.assert_allclose(a.standard_win_rate, b.standard_win_rate, atol=1e-14)
    np.testing.assert_allclose(a.kl, b.kl, atol=1e-14)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: align_prompts([], [1.0], calibrated=True), "laws must be a non-empty"),
        (lambda: align_prompts(LAWS, [0.0], calibrated=True), "betas must be"),
        (lambda: align_prompts(LAWS, [1.0], calibrated=True, weights=[1, 1]), "weights must be 3"),
        (lambda: ProxyPrompt([0.5, 0.5], [1.0], [1.0, 2.0]), "same non-zero length"),
        (
            lambda: align_to_proxy([ProxyPrompt([1.0], [0.0], [0.0])], [1.0], reward="x"),
            "reward must be one of",
        ),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def _direct(values, probs, transform, beta):
    """KL and Best-of-4 win rate of the calibrated tilt, by plain sums (ties: level midpoints)."""
    v, inv = np.unique(np.asarray(values, float), return_inverse=True)
    q = np.bincount(inv, weights=np.asarray(probs, float))
    upper = np.cumsum(q)
    mid = upper - q / 2
    w = q * np.exp((np.asarray(transform(mid), float) - np.max(transform(mid))) / beta)
    p = w / w.sum()
    kl_value = float(np.sum(p * np.log(p / q)))
    cp, cq = np.cumsum(p), np.cumsum(q)
    gp, gq = cp**4, cq**4
    dp, dq = np.diff(gp, prepend=0.0), np.diff(gq, prepend=0.0)
    gq_below = gq - dq
    win = float(np.sum(dp * (gq_below + dq / 2)))
    return kl_value, win


def test_shared_beta_meets_the_average_kl():
    from infalign_theory.prompts import shared_beta_for_kl

    laws = [
        ([0.0, 0.0, 1.0, 2.0, 3.0], [0.2] * 5),
        ([5.0, 1.0, 1.0, 1.0], [0.25] * 4),
        ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0.3, 0.1, 0.1, 0.2, 0.2, 0.1]),
    ]
    objs = [ia.DiscreteLaw(v, p) for v, p in laws]
    for tr in (ia.Identity(), ia.Exponential(8.0)):
        beta = shared_beta_for_kl(objs, tr, 0.3)
        kls = [_direct(v, p, tr, beta)[0] for v, p in laws]
        assert np.mean(kls) == pytest.approx(0.3, rel=1e-9)
    # one prompt: the ordinary beta for that KL
    one = shared_beta_for_kl(objs[:1], ia.Identity(), 0.2)
    assert one == pytest.approx(ia.beta_for_kl(ia.Identity(), 0.2, law=objs[0]), rel=1e-8)
    with pytest.raises(ValueError, match="kl_target must be in"):
        shared_beta_for_kl(objs, ia.Identity(), 5.0)
    with pytest.raises(ValueError, match="kl_target must be a finite number > 0"):
        shared_beta_for_kl(objs, ia.Identity(), -1.0)


def test_best_shared_exponent_beats_every_other_exponent():
    from infalign_theory.prompts import best_shared_exponent, shared_beta_for_kl

    laws = [([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0], [1 / 7] * 7), ([0.0, 1.0, 2.0], [0.5, 0.3, 0.2])]
    objs = [ia.DiscreteLaw(v, p) for v, p in laws]
    t, w = best_shared_exponent(objs, ia.best_of(4), 0.4)
    assert t > 0

    def direct(t_):
        tr = ia.Exponential(t_)
        beta = shared_beta_for_kl(objs, tr, 0.4)
        return np.mean([_direct(v, p, tr, beta)[1] for v, p in laws])

    assert w == pytest.approx(direct(t), abs=1e-9)
    for other in (0.5, 2.0, 0.5 * t, 2.0 * t, 30.0):
        assert direct(other) <= w + 1e-9
    assert w > direct(1e-6) + 1e-3  # it gains over the identity (t -> 0)


def test_best_shared_exponent_refuses_bad_input():
    from infalign_theory.prompts import best_shared_exponent

    with pytest.raises(ValueError, match="laws must be a non-empty"):
        best_shared_exponent([], ia.best_of(4), 0.2)
    law = ia.DiscreteLaw([0.0, 1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="kl_target must be a finite number > 0"):
        best_shared_exponent([law], ia.best_of(4), float("nan"))
