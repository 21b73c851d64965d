"""The registry of cases that the generic tests run over: a new law, procedure or transform
is tested everywhere by adding one line here."""

from __future__ import annotations

import infalign_theory as ia

DISCRETE_LAWS = {
    "three-levels": ia.DiscreteLaw([0.0, 1.0, 2.0], [0.5, 0.3, 0.2]),
    "with-ties": ia.DiscreteLaw([1.0, 3.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.15, 0.25]),
    "heavy-top": ia.DiscreteLaw([-5.0, 0.0, 7.5], [0.05, 0.9, 0.05]),
    "single-level": ia.DiscreteLaw([2.0], [1.0]),
    "eight-levels": ia.DiscreteLaw(list(range(8)), [1 / 8] * 8),
}

#: None stands for the continuous calibrated space (every continuous law).
LAWS = {"continuous": None, **DISCRETE_LAWS}

PROCEDURES = {
    "sampling": ia.sampling(),
    "best-of-2": ia.best_of(2),
    "best-of-4": ia.best_of(4),
    "worst-of-4": ia.worst_of(4),
    "best-of-64": ia.best_of(64),
    "worst-of-16": ia.worst_of(16),
    "order-2-of-5": ia.order_statistic(2, 5),
}

TRANSFORMS = {
    "identity": ia.Identity(),
    "log": ia.Log(),
    "exp+10": ia.Exponential(10.0),
    "exp-10": ia.Exponential(-10.0),
    "exp+300": ia.Exponential(300.0),
    "exp-0.5": ia.Exponential(-0.5),
    "cubic": ia.Custom(lambda u: u**3 - 0.5 * u, "cubic"),
}
