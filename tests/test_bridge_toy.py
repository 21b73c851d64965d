"""The bridge trains toward the core's exact optimum on an enumerable toy.

The toy (``infalign_theory.bridge.toy``): a tiny GPT-2 over ``<s> a b c``, prompt ``<s>``,
completions of exactly 3 tokens (64 of them), reward = number of ``a`` (4 levels, ties).
Its base distribution is enumerated, so the calibration is exact and the core gives the
exact optimum pi* = pi_ref exp(Phi(C)/beta)/Z with its KL and win rates. Each case trains
for 300 RLOO steps of 64 completions (a few seconds on CPU) at the beta where the optimum
has KL = 0.5 nats, then compares the trained model's exact KL and win rates (by
enumeration) with the optimum's.

Tolerances: over seeds 0-2 the trained policy landed within 0.006 nats of the KL, 0.002 of
each win rate, with KL(pi || pi*) <= 0.0015; the test allows 0.03 nats, 0.01 and 0.005.
The exponential target differs from the identity's by 0.07 in Best-of-4 win rate, so a
policy trained toward the wrong transform fails.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import infalign_theory as ia  # noqa: E402
from infalign_theory.bridge import make_toy  # noqa: E402
from infalign_theory.bridge.runs import toy_run  # noqa: E402

KL_TOL, WIN_TOL, GAP_TOL = 0.03, 0.01, 0.005
PROC = ia.best_of(4)


@pytest.fixture(scope="module")
def toy():
    return make_toy(init_scale=0.1, seed=0)


@pytest.mark.parametrize(
    "transform", [ia.Identity(), ia.Exponential(10.0)], ids=["identity", "exp10"]
)
def test_trained_policy_reaches_the_exact_optimum(toy, transform):
    beta = ia.beta_for_kl(transform, 0.5, law=toy.law())
    out = toy_run(transform, beta, PROC)
    got, exact = out["trained"], out["exact"]
    assert exact["kl"] == pytest.approx(0.5, abs=1e-9)
    assert got["kl"] == pytest.approx(exact["kl"], abs=KL_TOL)
    assert got["standard_win_rate"] == pytest.approx(exact["standard_win_rate"], abs=WIN_TOL)
    assert got["win_rate"] == pytest.approx(exact["win_rate"], abs=WIN_TOL)
    assert got["kl_to_target"] < GAP_TOL


def test_the_check_tells_the_transforms_apart(toy):
    # the identity's optimum is more than WIN_TOL below the exponential's at the same KL
    law = toy.law()
    w = {
        name: ia.win_rate(toy.target(tr, ia.beta_for_kl(tr, 0.5, law=law)), PROC)
        for name, tr in (("identity", ia.Identity()), ("exp", ia.Exponential(10.0)))
    }
    assert w["exp"] - w["identity"] > 5 * WIN_TOL
