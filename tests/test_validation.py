"""Bad input gets a ValueError that names the parameter and its allowed range."""

from __future__ import annotations

import math

import numpy as np
import pytest

import infalign_theory as ia

LAW = ia.DiscreteLaw([0, 1, 2], [0.5, 0.3, 0.2])
POL = ia.tilt(ia.Identity(), 1.0)

CASES = [
    (lambda: ia.tilt(ia.Identity(), 0.0), r"beta must be a finite number > 0"),
    (lambda: ia.tilt(ia.Identity(), -1.0), r"beta must be a finite number > 0"),
    (lambda: ia.tilt(ia.Identity(), math.inf), r"beta must be a finite real number"),
    (lambda: ia.tilt(ia.Identity(), math.nan), r"beta must be a finite real number"),
    (lambda: ia.tilt(ia.Identity(), "1"), r"beta must be a finite real number"),
    (lambda: ia.tilt("identity", 1.0), r"transform must be a Transform"),
    (lambda: ia.tilt(ia.Identity(), 1.0, law="normal"), r"law must be"),
    (lambda: ia.best_of(0), r"n must be an integer in \[1, 1000000\]"),
    (lambda: ia.worst_of(-3), r"n must be an integer in \[1, 1000000\]"),
    (lambda: ia.order_statistic(3, 2), r"k must be an integer in \[1, 2\]"),
    (lambda: ia.DiscreteLaw([0, 1], [1.2, -0.2]), r"probs must be >= 0"),
    (lambda: ia.DiscreteLaw([0, 1], [0.2, 0.2]), r"probs must sum to 1 within 1e-09"),
    (lambda: ia.DiscreteLaw([0, math.inf], [0.5, 0.5]), r"values must be an array of finite"),
    (lambda: ia.Exponential(math.inf), r"t must be a finite real number"),
    (lambda: ia.Exponential(math.nan), r"t must be a finite real number"),
    (lambda: ia.beta_for_kl(ia.Identity(), 0.0), r"kl must be a finite number > 0"),
    (lambda: ia.beta_for_kl(ia.Identity(), 5.0, law=LAW), r"kl must be in \(0, 1.609"),
    (
        lambda: ia.win_rate(POL, ia.best_of(2), against="base"),
        r"against must be one of 'procedure', 'sample'",
    ),
    (lambda: ia.win_rate(POL, 4), r"procedure must be a Procedure"),
    (lambda: ia.kl("policy"), r"policy must be a DiscretePolicy or ContinuousPolicy"),
    (lambda: ia.DiscretePolicy(LAW, [0.5, 0.5, 0.5]), r"probs must sum to 1 within 1e-09"),
    (lambda: POL.cdf([1.5]), r"u must lie in \[0, 1\]"),
    (lambda: ia.calibrate(LAW, [np.nan]), r"rewards must be an array of finite"),
]


@pytest.mark.parametrize("build, message", CASES, ids=[m for _, m in CASES])
def test_bad_input_is_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("beta", [1e-4, 1e-2, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("t", [-1000.0, -30.0, 0.0, 30.0, 1000.0])
def test_valid_extremes_never_give_nan(beta, t):
    for law in (None, LAW):
        pol = ia.tilt(ia.Exponential(t), beta, law)
        values = ia.evaluate(pol, ia.best_of(1024)).to_dict()
        assert all(math.isfinite(v) for v in values.values())
