r"""KL divergence, standard win rate and inference-time win rates, ties counted one half.

For a policy pi and the base pi_ref (InfAlign, arXiv 2412.19792, Definitions 3 and 4):

.. math::
    \mathrm{KL}(\pi\,\|\,\pi_{\rm ref}), \qquad
    W(\pi) = W(Y \succ Z) = E_{y\sim\pi}[C(y)], \qquad
    W_T(\pi) = W(T(\pi) \succ T(\pi_{\rm ref})),

where :math:`W(Y \succ Z) = P(r(Y) > r(Z)) + \tfrac12 P(r(Y) = r(Z))`. By default *both*
sides are decoded with the procedure T; ``against="sample"`` compares T(pi) with one base
sample instead.

In calibrated space (DESIGN §3), with G the policy's CDF and g the procedure's CDF map:

* continuous: :math:`\mathrm{KL} = \int_0^1 \varphi(\log f)\,du` with
  :math:`\varphi(r) = 1 + (r-1)e^r \ge 0`, :math:`W = \int_0^1 u f(u)\,du`,
  :math:`W_T = \int_0^1 (1 - g(G(u)))\, g'(u)\,du`;
* discrete, levels with base masses q_j, policy masses p_j and level CDFs
  :math:`A_j = g(P_j)`, :math:`B_j = g(F_j)`:
  :math:`W_T = \sum_j (A_j - A_{j-1})(B_j + B_{j-1})/2`, exact.

The continuous integrals are adaptive spectral quadratures (see ``_mesh``); the discrete
sums are exact to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels as K
from . import _mesh
from ._validate import choice
from .calibration import level_midpoints
from .policy import ContinuousPolicy, DiscretePolicy, Policy
from .procedures import OrderStatistic

AGAINST = ("procedure", "sample")


def _unit(w: float) -> float:
    """A probability computed by summation, kept in [0, 1] (rounding can stray by 1e-15)."""
    return min(max(w, 0.0), 1.0)


def _check_policy(policy: object) -> None:
    if not isinstance(policy, DiscretePolicy | ContinuousPolicy):
        raise ValueError(f"policy must be a DiscretePolicy or ContinuousPolicy, got {policy!r}")


def kl(policy: Policy) -> float:
    """KL(pi || pi_ref) in nats (exact in calibrated space for tilts, DESIGN §3)."""
    _check_policy(policy)
    if isinstance(policy, DiscretePolicy):
        return float(K.discrete_kl(policy.law.probs, policy.log_ratio))
    return float(policy._resolved.stats[K.ST_KL])


def standard_win_rate(policy: Policy) -> float:
    """W(pi ≻ pi_ref) = E_pi[C], ties ½ (InfAlign Definition 3)."""
    _check_policy(policy)
    if isinstance(policy, DiscretePolicy):
        u, _ = level_midpoints(policy.law)
        return _unit(float(np.dot(policy.probs, u)))
    return _unit(float(policy._resolved.stats[K.ST_WSTD]))


def win_rate(policy: Policy, procedure: OrderStatistic, *, against: str = "procedure") -> float:
    """Inference-time win rate W(T(pi) ≻ T(pi_ref)), ties ½ (InfAlign Definition 4).

    Parameters
    ----------
    policy : DiscretePolicy or ContinuousPolicy
    procedure : OrderStatistic
        The inference-time procedure T, e.g. ``best_of(4)``.
    against : {"procedure", "sample"}
        ``"procedure"`` (default): T(pi) against T(pi_ref). ``"sample"``: T(pi) against a
        single base sample.
    """
    _check_policy(policy)
    if not isinstance(procedure, OrderStatistic):
        raise ValueError(f"procedure must be an OrderStatistic, got {procedure!r}")
    choice(against, "against", AGAINST)
    k, n = procedure.k, procedure.n
    kr, nr = (k, n) if against == "procedure" else (1, 1)
    if isinstance(policy, DiscretePolicy):
        return _unit(float(K.discrete_win_rate(policy.probs, policy.law.probs, k, n, kr, nr)))
    key = (k, n, kr, nr)
    if key not in policy._win_cache:
        res = _mesh.resolve(policy.transform, policy.beta, key, start=policy._resolved)
        policy._win_cache[key] = res.win_rate
    return float(policy._win_cache[key])


@dataclass(frozen=True)
class Evaluation:
    """One point of the trade-off: beta (None for a policy that is not a tilt), KL, win rates."""

    beta: float | None
    kl: float
    win_rate: float
    standard_win_rate: float

    def to_dict(self) -> dict[str, float | None]:
        """The fields as a JSON-ready dictionary."""
        return {
            "beta": self.beta,
            "kl": self.kl,
            "win_rate": self.win_rate,
            "standard_win_rate": self.standard_win_rate,
        }


def evaluate(
    policy: Policy, procedure: OrderStatistic, *, against: str = "procedure"
) -> Evaluation:
    """KL, inference-time win rate and standard win rate of ``policy`` in one call."""
    return Evaluation(
        beta=policy.beta,
        kl=kl(policy),
        win_rate=win_rate(policy, procedure, against=against),
        standard_win_rate=standard_win_rate(policy),
    )
