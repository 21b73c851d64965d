r"""KL divergence, standard win rate and inference-time win rates, ties counted one half.

For a policy pi and the base pi_ref (InfAlign, arXiv 2412.19792, Definitions 3 and 4):

.. math::
    \mathrm{KL}(\pi\,\|\,\pi_{\rm ref}), \qquad
    W(\pi) = W(Y \succ Z) = E_{y\sim\pi}[C(y)], \qquad
    W_T(\pi) = W(T(\pi) \succ T(\pi_{\rm ref})),

where :math:`W(Y \succ Z) = P(r(Y) > r(Z)) + \tfrac12 P(r(Y) = r(Z))`. By default *both*
sides are decoded with the procedure T; ``against="sample"`` compares T(pi) with one base
sample instead.

In calibrated space (README, Conventions), with G the policy's CDF and g the procedure's CDF map:

* continuous: :math:`\mathrm{KL} = \int_0^1 \varphi(\log f)\,du` with
  :math:`\varphi(r) = 1 + (r-1)e^r \ge 0`, :math:`W = \int_0^1 u f(u)\,du`,
  :math:`W_T = \int_0^1 (1 - g(G(u)))\, g'(u)\,du`;
* discrete, levels with base masses q_j, policy masses p_j and level CDFs
  :math:`A_j = g(P_j)`, :math:`B_j = g(F_j)`:
  :math:`W_T = \sum_j (A_j - A_{j-1})(B_j + B_{j-1})/2`, exact.

The continuous integrals are adaptive spectral quadratures (see ``_mesh``); the discrete
sums are exact to rounding.

:func:`pool_win_rate` is the same win rate for *finite pools* of sampled rewards (a trained
language model's responses against base responses): T applied to N responses drawn without
replacement from a pool of M has an exact hypergeometric law, which makes the estimate the
U-statistic over every pair of N-subsets -- unbiased for W_T, ties ½.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import _kernels as K
from . import _mesh
from ._validate import choice, finite_array
from .calibration import level_midpoints
from .laws import PROB_SUM_TOL, DiscreteLaw
from .policy import ContinuousPolicy, DiscretePolicy, Policy, apply, base_policy
from .procedures import OrderStatistic, Procedure, sampling

AGAINST = ("procedure", "sample")


def _unit(w: float) -> float:
    """A probability computed by summation, kept in [0, 1] (rounding can stray by 1e-15)."""
    return min(max(w, 0.0), 1.0)


def _check_policy(policy: object) -> None:
    if not isinstance(policy, DiscretePolicy | ContinuousPolicy):
        raise ValueError(f"policy must be a DiscretePolicy or ContinuousPolicy, got {policy!r}")


def kl(policy: Policy) -> float:
    """KL(pi || pi_ref) in nats (exact in calibrated space for tilts)."""
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


def _check_procedure(procedure: object) -> Procedure:
    if not isinstance(procedure, Procedure):
        raise ValueError(f"procedure must be a Procedure (e.g. best_of(4)), got {procedure!r}")
    return procedure


def win_rate(policy: Policy, procedure: Procedure, *, against: str = "procedure") -> float:
    """Inference-time win rate W(T(pi) ≻ T(pi_ref)), ties ½ (InfAlign Definition 4).

    Parameters
    ----------
    policy : DiscretePolicy or ContinuousPolicy
    procedure : Procedure
        The inference-time procedure T, e.g. ``best_of(4)`` or ``soft_best_of(4, 0.1)``.
    against : {"procedure", "sample"}
        ``"procedure"`` (default): T(pi) against T(pi_ref). ``"sample"``: T(pi) against a
        single base sample.
    """
    _check_policy(policy)
    _check_procedure(procedure)
    choice(against, "against", AGAINST)
    reference = procedure if against == "procedure" else sampling()
    key, kref = procedure.order_key, reference.order_key
    if isinstance(policy, DiscretePolicy):
        if key is not None and kref is not None:
            w = K.discrete_win_rate(policy.probs, policy.law.probs, *key, *kref)
        else:
            mids = level_midpoints(policy.law)
            a = np.maximum(np.asarray(procedure.level_masses(policy.probs, mids), np.float64), 0.0)
            total = float(a.sum())
            if a.shape != policy.probs.shape or not abs(total - 1.0) <= PROB_SUM_TOL:
                a = apply(procedure, policy).probs  # says what is wrong with the masses
            else:
                a = a / total  # as apply's policy normalises them
            w = K.discrete_win_from_masses(a, _base_masses(reference, policy.law))
        return _unit(float(w))
    cache_key = (*key, *kref) if key is not None and kref is not None else (procedure, reference)
    if cache_key not in policy._win_cache:
        if key is not None and kref is not None:
            res = _mesh.resolve(policy.transform, policy.beta, cache_key, start=policy._resolved)
            w = res.win_rate
        else:
            w = _continuous_win(apply(procedure, policy), reference)
        policy._win_cache[cache_key] = w
    return float(policy._win_cache[cache_key])


@lru_cache(maxsize=64)
def _cached_base_masses(procedure: Procedure, law: DiscreteLaw) -> np.ndarray:
    out = np.ascontiguousarray(apply(procedure, base_policy(law)).probs, dtype=np.float64)
    out.setflags(write=False)
    return out


def _base_masses(procedure: Procedure, law: DiscreteLaw) -> np.ndarray:
    """The masses of T(pi_ref) on the levels of ``law``: every win rate needs them."""
    try:
        return _cached_base_masses(procedure, law)
    except TypeError:  # a user's unhashable procedure: no cache
        return _cached_base_masses.__wrapped__(procedure, law)


@lru_cache(maxsize=64)
def _decoded_base(procedure: Procedure) -> ContinuousPolicy:
    decoded = apply(procedure, base_policy())
    assert isinstance(decoded, ContinuousPolicy)
    return decoded


@lru_cache(maxsize=64)
def _base_cdf_table(procedure: Procedure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T(pi_ref)'s CDF H_B as a piecewise Legendre series: panels [ua, ub] in u, coefficients.

    The node values come from the resolved density by spectral integration (each side from
    its own end); every continuous win rate against T(pi_ref) interpolates them.
    """
    res = _decoded_base(procedure)._resolved
    mesh = res.mesh
    G, Gc = np.empty_like(res.f), np.empty_like(res.f)
    K.cdf_at_nodes(mesh.side, mesh.a, mesh.b, res.f, K.CUM, K.WI, G, Gc)
    one = mesh.side == 1
    ua = np.where(one, 1.0 - mesh.b, mesh.a)
    ub = np.where(one, 1.0 - mesh.a, mesh.b)
    G = np.where(one[:, None], G[:, ::-1], G)  # nodes in increasing u on every panel
    order = np.argsort(ua, kind="stable")
    ua, ub, G = ua[order], ub[order], G[order]
    ub[:-1] = ua[1:]
    return ua, ub, np.ascontiguousarray(G @ K.COEF.T)


def _base_cdf(procedure: Procedure, u: np.ndarray) -> np.ndarray:
    """H_B(u), the CDF of T(pi_ref), from the cached table."""
    ua, ub, coef = _base_cdf_table(procedure)
    flat = np.ascontiguousarray(u, dtype=np.float64).ravel()
    out = np.empty(flat.size)
    K.panel_interpolate(flat, ua, ub, coef, out)
    return np.clip(out, 0.0, 1.0).reshape(np.shape(u))


#: Legendre tail (absolute, per panel) of f_A H_B below which the win-rate integral is resolved.
WIN_TOL = 1e-14


def _continuous_win(A: Policy, reference: Procedure) -> float:
    r"""W(A ≻ B) = :math:`\int_0^1 f_A(u) H_B(u) du` for continuous A and B = T(pi_ref).

    Gauss-Legendre on A's resolved panels, each split until the four highest Legendre
    coefficients of the integrand, times the half-width, are below ``WIN_TOL``.
    """
    assert isinstance(A, ContinuousPolicy)
    mesh = A._resolved.mesh
    side, a, b = mesh.side, mesh.a, mesh.b
    total = 0.0
    for _ in range(60):
        x = a[:, None] + 0.5 * (b - a)[:, None] * (1.0 + K.XI[None, :])
        one = side[:, None] == 1
        u, s = np.where(one, 1.0 - x, x), np.where(one, x, 1.0 - x)
        vals = A._pdf_pair(u, s) * _base_cdf(reference, u)
        h = 0.5 * (b - a)
        tail = h * np.abs(vals @ K.TAIL.T).max(axis=1)
        split = (tail > WIN_TOL) & (b - a > 64.0 * K.EPS * b)
        total += float(np.sum(h[~split] * (vals[~split] @ K.WI)))
        if not np.any(split):
            break
        mid = 0.5 * (a[split] + b[split])
        side = np.concatenate([side[split], side[split]])
        a, b = np.concatenate([a[split], mid]), np.concatenate([mid, b[split]])
    else:
        total += float(np.sum(h[split] * (vals[split] @ K.WI)))
    return _unit(total)


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


def evaluate(policy: Policy, procedure: Procedure, *, against: str = "procedure") -> Evaluation:
    """KL, inference-time win rate and standard win rate of ``policy`` in one call."""
    _check_policy(policy)
    return Evaluation(
        beta=policy.beta,
        kl=kl(policy),
        win_rate=win_rate(policy, procedure, against=against),
        standard_win_rate=standard_win_rate(policy),
    )


def _pool_cdf(pool: np.ndarray, levels: np.ndarray, k: int, n: int) -> np.ndarray:
    """P(T(subset) <= level) for T = k-th smallest of an n-subset drawn without replacement.

    The k-th smallest of the subset is <= x exactly when at least k of its n members are,
    and the count of members <= x is hypergeometric (pool size M, j(x) successes, n draws).
    """
    from scipy import stats  # lazy: scipy.stats takes most of a second to import

    below = np.searchsorted(np.sort(pool), levels, side="right")
    return stats.hypergeom.sf(k - 1, pool.size, below, n)


def pool_win_rate(
    policy_rewards: object,
    base_rewards: object,
    procedure: OrderStatistic,
    *,
    against: str = "procedure",
) -> float:
    """Inference-time win rate estimated exactly from finite pools of rewards, ties ½.

    T(pi) is T applied to ``procedure.n`` rewards drawn without replacement from the policy
    pool, T(pi_ref) the same from the base pool; the value returned is the exact win rate of
    those two random variables, i.e. the average of [T(a) > T(b)] + ½[T(a) = T(b)] over every
    pair of n-subsets a, b of the two pools. Because subsets drawn without replacement are
    i.i.d. samples, this is an unbiased estimate of W(T(pi) ≻ T(pi_ref)) (a U-statistic);
    with n = 1 it is the Mann-Whitney estimate of the standard win rate.

    Parameters
    ----------
    policy_rewards, base_rewards : array_like, 1-D
        Rewards of responses sampled from the policy and from the base (for one prompt).
    procedure : OrderStatistic
        The procedure T; its ``n`` must not exceed either pool (the base pool's only when
        ``against="procedure"``).
    against : {"procedure", "sample"}
        ``"procedure"`` (default): T(pi) against T(pi_ref). ``"sample"``: against one base
        sample.
    """
    if not isinstance(procedure, OrderStatistic):
        raise ValueError(f"procedure must be an OrderStatistic, got {procedure!r}")
    choice(against, "against", AGAINST)
    a = finite_array(policy_rewards, "policy_rewards")
    b = finite_array(base_rewards, "base_rewards")
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("policy_rewards and base_rewards must be 1-D arrays (one prompt)")
    k, n = procedure.k, procedure.n
    kb, nb = (k, n) if against == "procedure" else (1, 1)
    if a.size < n:
        raise ValueError(
            f"policy_rewards must hold at least procedure.n = {n} rewards, got {a.size}"
        )
    if b.size < nb:
        raise ValueError(f"base_rewards must hold at least {nb} rewards, got {b.size}")
    levels = np.union1d(a, b)
    ga = np.concatenate([[0.0], _pool_cdf(a, levels, k, n)])
    gb = np.concatenate([[0.0], _pool_cdf(b, levels, kb, nb)])
    return _unit(float(np.dot(np.diff(ga), 0.5 * (gb[1:] + gb[:-1]))))
