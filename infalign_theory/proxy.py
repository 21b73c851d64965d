r"""Best-of-N selected by a proxy reward and judged by the true reward, exactly; its optimum.

A reward model (the *proxy*) picks the response, the true reward judges it. Under the base,
a response has a pair (true reward t, proxy score r); the pairs form a finite joint law with
atoms i = 1..M (distinct pairs, base masses q_i). A policy puts mass p_i on atom i (spread
like the base among the responses that share the pair), and the procedure draws N responses
from it and returns the one with the highest proxy score, ties in the proxy broken uniformly
at random. (Unlike a procedure that selects by the reward that judges it, the result here
*does* depend on how proxy ties are broken: the uniform choice is the convention.)

Output law
----------
Order the proxy levels k = 1..L, let :math:`P_k` be the policy's mass on level k and
:math:`G_k = P_1 + \dots + P_k` (:math:`G_0 = 0`). The proxy level of the output is the
maximum of N draws, :math:`P(\text{level } k) = G_k^N - G_{k-1}^N`, and within that level the
output is distributed as the policy restricted to it, so

.. math:: o_i = p_i\, S(G_k, G_{k-1}), \qquad
          S(x, y) = \frac{x^N - y^N}{x - y} = \sum_{j=0}^{N-1} x^j y^{N-1-j},

for i on proxy level k: a sum of non-negative terms, exact to rounding even where
:math:`P_k` is tiny (no division).

Win rate
--------
The inference-time win rate compares the *true* rewards of the two decoded responses, each
side decoded by the procedure, ties counted 1/2:
:math:`W(\pi) = \sum_i o_i(\pi)\, w_i` with
:math:`w_i = P(t(Y') < t_i) + \tfrac12 P(t(Y') = t_i)`, Y' the procedure's output on the base
(or one base sample, ``against="sample"``). With proxy = true this is ordinary Best-of-N
(:func:`~infalign_theory.procedures.best_of`); with a constant proxy it is sampling.

Theorem 1 with this procedure
-----------------------------
InfAlign (Balashankar, Sun, et al., arXiv 2412.19792), Theorem 1: the maximiser of
:math:`W(\pi) - \beta\,\mathrm{KL}(\pi\|\pi_{\rm ref})` is
:math:`p_i \propto q_i \exp(R_i/\beta)` with R the first variation of W at the optimum
itself. Writing :math:`W = \sum_k S_k A_k` with :math:`A_k = \sum_{i \in k} p_i w_i`,

.. math:: R_i = \frac{\partial W}{\partial p_i} = S_k\, w_i + A_k\, \partial_x S_k
          + \sum_{l > k} A_l\, (\partial_x S_l + \partial_y S_l) \qquad (i \text{ on level } k),

the derivatives of S again sums of non-negative terms. R is a function of the *atom*, not of
one reward: when the proxy errs, the optimal policy weighs a response by its true reward
(through w) and by its proxy level (through S and the tail), and no transform of either
calibrated reward alone reproduces it.

Solver
------
``optimal.solve_optimal`` works on one ordered reward, so this module has its own fixed
point, on the atoms: the unknown is :math:`z = \log(p/q)`, the equation
:math:`z = R(p(z))/\beta - \log \sum_i q_i e^{R_i/\beta}`, solved by Newton's method with the
exact Jacobian :math:`I - \beta^{-1}(I - \mathbf 1 t^\top) H (\mathrm{diag}\,p - p p^\top)`
(H the Hessian of W, assembled from level-by-level blocks, t the tilt's weights; a dense
M x M solve). It starts near the base (the tilt by R at the base, at a large beta) and is
continued in log beta with a tangent predictor; a KL budget adds log beta as an unknown and
KL = budget as an equation (a bordered Newton system). W need not be concave in the policy
when the proxy errs, so the solver also starts from the tilts by the calibrated true and
proxy rewards at the goal, keeps every distinct stationary point (``stationary_points``) and
returns the one with the highest objective. Convergence means max |z - T(z)| below 1e-11
(or the rounding floor 64 eps max|R| / beta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _kernels as K
from ._validate import beta_or_kl, choice, finite_array, integer, positive_finite
from .laws import PROB_SUM_TOL
from .metrics import Evaluation
from .policy import checked_probs
from .transforms import Transform

#: The largest N accepted: the sums over j = 0..N-1 cost O(L N) per evaluation.
MAX_N = 1024
#: Newton stops when max |z - T(z)| falls below this (or the rounding floor).
TOL = 1e-11
#: A KL budget is met to this relative accuracy.
KL_RTOL = 1e-9
#: The betas the solver works in (the scale of R is between 1/2 and N).
BETA_RANGE = (1e-6, 1e6)
AGAINST = ("procedure", "sample")
REWARDS = ("proxy", "true")
_MAX_NEWTON = 40
#: The bordered Newton solve drives |log(KL / budget)| below this (quadratic convergence
#: makes it cheap), so the reported KL meets KL_RTOL with room to spare.
_KL_GAP = 1e-12


# --------------------------------------------------------------------------------------
# The joint law, policies on it, the procedure.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class JointLaw:
    """The base law of (true reward, proxy score) pairs: distinct pairs and their masses.

    Parameters
    ----------
    true, proxy : array_like
        True reward and proxy score of each response (or pair), ties allowed.
    probs : array_like
        Base probability of each, >= 0, summing to one within 1e-9. Equal pairs are merged
        and zero masses dropped; atoms are sorted by proxy, then true reward.

    Attributes
    ----------
    proxy_level, true_level : ndarray of int
        Each atom's level (0-based) among the distinct proxy scores and true rewards.
    """

    true: np.ndarray
    proxy: np.ndarray
    probs: np.ndarray
    proxy_level: np.ndarray = field(init=False, repr=False)
    true_level: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        t = finite_array(self.true, "true").ravel()
        r = finite_array(self.proxy, "proxy").ravel()
        q = finite_array(self.probs, "probs").ravel()
        if not t.size == r.size == q.size or q.size == 0:
            raise ValueError("true, proxy and probs must have the same non-zero length")
        if np.any(q < 0.0):
            raise ValueError("probs must be >= 0")
        total = float(math.fsum(q))
        if abs(total - 1.0) > PROB_SUM_TOL:
            raise ValueError(f"probs must sum to 1 within {PROB_SUM_TOL:g}, they sum to {total!r}")
        keep = q > 0.0
        t, r, q = t[keep], r[keep], q[keep]
        pairs, inverse = np.unique(np.stack([r, t], axis=1), axis=0, return_inverse=True)
        masses = np.bincount(inverse.ravel(), weights=q, minlength=len(pairs))
        masses = masses / math.fsum(masses)
        proxy, true = pairs[:, 0].copy(), pairs[:, 1].copy()
        for name, arr in (("true", true), ("proxy", proxy), ("probs", masses)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        plev = np.unique(proxy, return_inverse=True)[1].ravel()
        tlev = np.unique(true, return_inverse=True)[1].ravel()
        object.__setattr__(self, "proxy_level", plev)
        object.__setattr__(self, "true_level", tlev)

    @classmethod
    def from_prompt(cls, prompt: Any) -> JointLaw:
        """From a :class:`~infalign_theory.prompts.ProxyPrompt` (``probs``, ``true``, ``proxy``)."""
        return cls(true=prompt.true, proxy=prompt.proxy, probs=prompt.probs)

    @property
    def n_atoms(self) -> int:
        """The number of distinct (true, proxy) pairs."""
        return int(self.probs.size)

    def calibrated(self, reward: str = "proxy") -> tuple[np.ndarray, np.ndarray]:
        """Mid-rank calibrated ``reward`` ("proxy" or "true") of each atom, with 1 - u.

        u = P(r(Z) < r_i) + P(r(Z) = r_i) / 2 under the base, summed from below; 1 - u summed
        from above.
        """
        choice(reward, "reward", REWARDS)
        level = self.proxy_level if reward == "proxy" else self.true_level
        mass = np.bincount(level, weights=self.probs)
        below = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
        above = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])
        return (below + 0.5 * mass)[level], (above + 0.5 * mass)[level]


@dataclass(frozen=True, eq=False)
class JointPolicy:
    """A policy on the atoms of a :class:`JointLaw`: mass p_i on each (true, proxy) pair.

    Parameters
    ----------
    law : JointLaw
    probs : array_like
        Mass on each atom, >= 0, summing to one within 1e-9 (then rescaled).
    beta : float, optional
        The KL strength, for a tilt.
    """

    law: JointLaw
    probs: np.ndarray
    beta: float | None = None
    log_ratio: np.ndarray = field(default=None, repr=False)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if not isinstance(self.law, JointLaw):
            raise ValueError(f"law must be a JointLaw, got {type(self.law).__name__}")
        p, lr = checked_probs(self.probs, self.law.probs, self.log_ratio, "atom")
        object.__setattr__(self, "probs", p)
        object.__setattr__(self, "log_ratio", lr)


def joint_base(law: JointLaw) -> JointPolicy:
    """The base policy on ``law``."""
    if not isinstance(law, JointLaw):
        raise ValueError(f"law must be a JointLaw, got {type(law).__name__}")
    return JointPolicy(law, law.probs, log_ratio=np.zeros(law.n_atoms))


def _tilt(law: JointLaw, ell: np.ndarray, beta: float | None) -> JointPolicy:
    p, r = np.empty(law.n_atoms), np.empty(law.n_atoms)
    K.discrete_tilt(law.probs, np.ascontiguousarray(ell, dtype=np.float64), p, r)
    return JointPolicy(law, p / math.fsum(p), beta=beta, log_ratio=r)


def joint_tilt(
    law: JointLaw, transform: Transform, beta: float, *, reward: str = "proxy"
) -> JointPolicy:
    r"""KL-RL on a calibrated reward: :math:`p_i \propto q_i \exp(\Phi(u_i)/\beta)`.

    Parameters
    ----------
    law : JointLaw
    transform : Transform
        Phi, applied to the mid-rank calibrated ``reward`` (``Identity()`` is calibrated RLHF).
    beta : float
        KL strength, > 0.
    reward : {"proxy", "true"}
        What is optimised: the proxy's calibrated score (what training on the reward model
        does) or the true reward's (the oracle).
    """
    if not isinstance(law, JointLaw):
        raise ValueError(f"law must be a JointLaw, got {type(law).__name__}")
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    beta = positive_finite(beta, "beta")
    u, s = law.calibrated(reward)
    with np.errstate(over="ignore"):
        ell = transform.pair(u, s) / beta
    if not np.all(np.isfinite(ell)):
        raise ValueError(f"beta = {beta!r} overflows transform / beta; use a larger beta")
    return _tilt(law, ell, beta)


@dataclass(frozen=True)
class ProxyBestOf:
    """Best-of-n by the proxy score (ties broken uniformly), judged by the true reward.

    Parameters
    ----------
    n : int
        Number of draws, 1 <= n <= 1024.
    """

    n: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", integer(self.n, "n", 1, MAX_N))

    @property
    def name(self) -> str:
        """``proxy-best-of-n`` (``sampling`` for n = 1)."""
        return "sampling" if self.n == 1 else f"proxy-best-of-{self.n}"


def proxy_best_of(n: int) -> ProxyBestOf:
    """Best-of-n selected by the proxy score, judged by the true reward."""
    return ProxyBestOf(integer(n, "n", 1, MAX_N))


# --------------------------------------------------------------------------------------
# S(x, y) = sum_j x^j y^(N-1-j) and its partial derivatives, per proxy level.
# --------------------------------------------------------------------------------------
def _falling(m: np.ndarray, d: int) -> np.ndarray:
    out = np.ones(m.size)
    for i in range(d):
        out *= np.maximum(m - i, 0)
    return out


def _poly(x: np.ndarray, y: np.ndarray, n: int, dx: int, dy: int) -> np.ndarray:
    """d^dx/dx^dx d^dy/dy^dy S(x, y), elementwise: a sum of non-negative terms."""
    j = np.arange(n)
    coef = _falling(j, dx) * _falling(n - 1 - j, dy)
    keep = coef > 0.0
    if not np.any(keep):
        return np.zeros(x.size)
    j, coef = j[keep], coef[keep]
    a, b = j - dx, n - 1 - j - dy
    return (coef * x[:, None] ** a * y[:, None] ** b).sum(axis=1)


def _cumulative(p: np.ndarray, level: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    mass = np.bincount(level, weights=p, minlength=levels)
    G = np.minimum(np.cumsum(mass), 1.0)
    return G, np.concatenate([[0.0], G[:-1]])


def _output(p: np.ndarray, law: JointLaw, n: int) -> np.ndarray:
    """o_i = p_i S(G_k, G_{k-1}): the law of the proxy-best of n draws, over atoms."""
    levels = int(law.proxy_level[-1]) + 1
    G, Gm = _cumulative(p, law.proxy_level, levels)
    return p * _poly(G, Gm, n, 0, 0)[law.proxy_level]


def _scores(law: JointLaw, reference: np.ndarray) -> np.ndarray:
    """w_i = P(t(Y') < t_i) + P(t(Y') = t_i) / 2, Y' distributed as ``reference`` on atoms."""
    levels = int(law.true_level.max()) + 1
    mass = np.bincount(law.true_level, weights=reference, minlength=levels)
    below = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    return (below + 0.5 * mass)[law.true_level]


def _reference(law: JointLaw, procedure: ProxyBestOf, against: str) -> np.ndarray:
    n = 1 if against == "sample" else procedure.n
    return _scores(law, _output(law.probs, law, n))


def _check(policy: Any, procedure: Any, against: str) -> None:
    if not isinstance(policy, JointPolicy):
        raise ValueError(f"policy must be a JointPolicy, got {type(policy).__name__}")
    if not isinstance(procedure, ProxyBestOf):
        raise ValueError(f"procedure must be a ProxyBestOf, got {procedure!r}")
    choice(against, "against", AGAINST)


# --------------------------------------------------------------------------------------
# Public evaluation.
# --------------------------------------------------------------------------------------
def proxy_apply(procedure: ProxyBestOf, policy: JointPolicy) -> JointPolicy:
    """T(pi): the law, over atoms, of the response the procedure returns from ``policy``."""
    _check(policy, procedure, "procedure")
    return JointPolicy(policy.law, _output(policy.probs, policy.law, procedure.n))


def proxy_win_rate(
    policy: JointPolicy, procedure: ProxyBestOf, *, against: str = "procedure"
) -> float:
    r"""The true-reward win rate of the proxy-selected response, ties 1/2.

    .. math:: W = \sum_i o_i(\pi)\, w_i, \qquad
              w_i = P(t(Y') < t_i) + \tfrac12 P(t(Y') = t_i),

    Y' the procedure's output on the base (``against="procedure"``, the default) or one base
    sample (``against="sample"``).
    """
    _check(policy, procedure, against)
    law = policy.law
    w = _reference(law, procedure, against)
    o = _output(policy.probs, law, procedure.n)
    return float(min(max(math.fsum(o * w), 0.0), 1.0))


def proxy_evaluate(
    policy: JointPolicy, procedure: ProxyBestOf, *, against: str = "procedure"
) -> Evaluation:
    """KL over atoms, the true inference-time win rate and the true standard win rate."""
    _check(policy, procedure, against)
    law = policy.law
    std = math.fsum(policy.probs * _scores(law, law.probs))
    return Evaluation(
        beta=policy.beta,
        kl=float(K.discrete_kl(law.probs, np.ascontiguousarray(policy.log_ratio))),
        win_rate=proxy_win_rate(policy, procedure, against=against),
        standard_win_rate=float(std),
    )


class _Problem:
    """W, its gradient R and Hessian H on the atoms, for one law, procedure and reference."""

    def __init__(self, law: JointLaw, procedure: ProxyBestOf, against: str) -> None:
        self.law, self.n = law, procedure.n
        self.w = _reference(law, procedure, against)
        self.levels = int(law.proxy_level[-1]) + 1
        self.level = law.proxy_level

    def _parts(self, p: np.ndarray) -> tuple[np.ndarray, ...]:
        G, Gm = _cumulative(p, self.level, self.levels)
        A = np.bincount(self.level, weights=p * self.w, minlength=self.levels)
        return G, Gm, A

    def value(self, p: np.ndarray) -> float:
        G, Gm, A = self._parts(p)
        return float(math.fsum(_poly(G, Gm, self.n, 0, 0) * A))

    def gradient(self, p: np.ndarray) -> np.ndarray:
        G, Gm, A = self._parts(p)
        n = self.n
        S, Sx, Sy = (_poly(G, Gm, n, a, b) for a, b in ((0, 0), (1, 0), (0, 1)))
        tail = np.concatenate([np.cumsum((A * (Sx + Sy))[::-1])[::-1][1:], [0.0]])
        V = A * Sx + tail
        return S[self.level] * self.w + V[self.level]

    def hessian(self, p: np.ndarray) -> np.ndarray:
        G, Gm, A = self._parts(p)
        n, L = self.n, self.levels
        Sx, Sy = _poly(G, Gm, n, 1, 0), _poly(G, Gm, n, 0, 1)
        Sxx, Sxy, Syy = (_poly(G, Gm, n, a, b) for a, b in ((2, 0), (1, 1), (0, 2)))
        idx = np.arange(L)
        a, b = idx[:, None], idx[None, :]
        D = Sx[:, None] * (b <= a) + Sy[:, None] * (b < a)  # dS_a / dp (p on level b)
        tail = np.concatenate([np.cumsum((A * (Sxx + 2 * Sxy + Syy))[::-1])[::-1][1:], [0.0]])
        c = np.maximum(a, b)
        E = A[c] * (Sxx[c] + Sxy[c] * (a != b)) + tail[c]
        k, w = self.level, self.w
        Dk = D[np.ix_(k, k)]
        return w[:, None] * Dk + (w[:, None] * Dk).T + E[np.ix_(k, k)]


def proxy_first_variation(
    policy: JointPolicy, procedure: ProxyBestOf, *, against: str = "procedure"
) -> np.ndarray:
    r"""Theorem 1's transformed reward at ``policy``: :math:`R_i = \partial W / \partial p_i`.

    Defined up to an additive constant (the derivative along a change of the policy that
    keeps its total mass); see the module docstring for the formula.
    """
    _check(policy, procedure, against)
    return _Problem(policy.law, procedure, against).gradient(policy.probs)


# --------------------------------------------------------------------------------------
# The optimum.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyOptimum:
    r"""The maximiser of W - beta KL (or of W at a KL budget) for a proxy-selected Best-of-N.

    Attributes
    ----------
    procedure, against :
        T and what T(pi) is compared with.
    beta, kl, win_rate, standard_win_rate : float
        The optimum's beta (solved for a budget), KL over atoms, true inference-time win
        rate, true standard win rate.
    policy : JointPolicy
        The optimal policy, :math:`p \propto q\,e^{R/\beta}`.
    transform : ndarray
        R per atom (Theorem 1's transformed reward at the optimum, up to a constant).
    residual : float
        max |log(p/q) - (R/beta - log Z)| at the solution.
    iterations : int
        Newton iterations spent in all.
    converged : bool
        Whether the residual reached 1e-11 (or the rounding floor 64 eps max|R| / beta).
    stationary_points : tuple of dict
        Every distinct stationary point found (kl, beta, win_rate, objective), best first.
    """

    procedure: ProxyBestOf
    against: str
    beta: float
    kl: float
    win_rate: float
    standard_win_rate: float
    policy: JointPolicy = field(repr=False)
    transform: np.ndarray = field(repr=False)
    residual: float
    iterations: int
    converged: bool
    stationary_points: tuple[dict[str, float], ...] = ()


@dataclass
class _State:
    z: np.ndarray  # log(p / q), normalised
    log_beta: float
    residual: float
    iterations: int
    converged: bool


def _tolerance(R: np.ndarray, beta: float) -> float:
    return max(TOL, 64 * np.finfo(float).eps * float(np.max(np.abs(R))) / beta)


class _Solver:
    def __init__(self, problem: _Problem) -> None:
        self.pb = problem
        self.q = problem.law.probs
        self.iterations = 0

    def normalise(self, z: np.ndarray) -> np.ndarray:
        """Z - log sum q e^z, so that p = q e^z."""
        c = float(z.max())
        return z - (c + math.log(math.fsum(self.q * np.exp(z - c))))

    def probs(self, z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max()) * self.q
        return e / e.sum()

    def step_map(self, z: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """T(z), the tilt weights t and R at p(z)."""
        p = self.probs(z)
        R = self.pb.gradient(p)
        t, r = np.empty(z.size), np.empty(z.size)
        K.discrete_tilt(self.q, R / beta, t, r)
        return r, t, R

    def jacobian(self, z: np.ndarray, beta: float, t: np.ndarray) -> np.ndarray:
        p = self.probs(z)
        H = self.pb.hessian(p)
        HJ = H * p[None, :] - np.outer(H @ p, p)  # H (diag p - p p^T), in O(M^2)
        dT = (HJ - (t @ HJ)[None, :]) / beta
        return np.eye(z.size) - dT

    def kl(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """KL(p(z) || q) and its gradient with respect to z."""
        p = self.probs(z)
        with np.errstate(divide="ignore"):
            r = np.log(p) - np.log(self.q)
        r = np.where(p > 0.0, r, -np.inf)
        value = float(K.discrete_kl(self.q, r))
        rr = np.where(p > 0.0, r, 0.0)
        return value, p * (rr - math.fsum(p * rr))

    def newton(self, z: np.ndarray, log_beta: float, kl_target: float | None) -> _State:
        """Newton on z = T(z) (and, for a budget, log KL(z) = log kl_target in log beta)."""
        z = z.copy()
        for it in range(_MAX_NEWTON):
            beta = math.exp(log_beta)
            Tz, t, R = self.step_map(z, beta)
            rho = z - Tz
            tol = _tolerance(R, beta)
            res = float(np.max(np.abs(rho)))
            gap = 0.0
            if kl_target is not None:
                kl, dkl = self.kl(z)
                gap = math.log(kl / kl_target) if kl > 0.0 else -math.inf
            done = res < tol and abs(gap) < _KL_GAP
            if done:
                self.iterations += it
                return _State(z, log_beta, res, it, True)
            J = self.jacobian(z, beta, t)
            if kl_target is None:
                try:
                    dz = np.linalg.solve(J, -rho)
                except np.linalg.LinAlgError:
                    break
                dlb = 0.0
            else:
                if not math.isfinite(gap):
                    break
                dbeta = (R - math.fsum(t * R)) / beta  # d rho / d log beta
                m = z.size
                B = np.zeros((m + 1, m + 1))
                B[:m, :m], B[:m, m], B[m, :m] = J, dbeta, dkl / kl
                try:
                    sol = np.linalg.solve(B, -np.append(rho, gap))
                except np.linalg.LinAlgError:
                    break
                dz, dlb = sol[:m], float(sol[m])
            # damped: halve until the scaled residual decreases
            merit = res / tol + abs(gap) / _KL_GAP
            lam = 1.0
            while lam > 1e-4:
                zn, lbn = z + lam * dz, log_beta + lam * dlb
                if not math.log(BETA_RANGE[0]) <= lbn <= math.log(BETA_RANGE[1]):
                    lam /= 2
                    continue
                Tn, _, Rn = self.step_map(zn, math.exp(lbn))
                resn = float(np.max(np.abs(zn - Tn)))
                gapn = 0.0
                if kl_target is not None:
                    kln = self.kl(zn)[0]
                    gapn = math.log(kln / kl_target) if kln > 0.0 else math.inf
                tn = _tolerance(Rn, math.exp(lbn))
                if resn / tn + abs(gapn) / _KL_GAP < merit or resn < tn and abs(gapn) < _KL_GAP:
                    break
                lam /= 2
            else:
                break
            z, log_beta = self.normalise(zn), lbn
        beta = math.exp(log_beta)
        Tz, _, R = self.step_map(z, beta)
        res = float(np.max(np.abs(z - Tz)))
        self.iterations += _MAX_NEWTON
        return _State(z, log_beta, res, _MAX_NEWTON, False)

    def tangent(self, state: _State) -> np.ndarray:
        """The derivative dz / d(log beta) along the path of solutions."""
        beta = math.exp(state.log_beta)
        _, t, R = self.step_map(state.z, beta)
        J = self.jacobian(state.z, beta, t)
        return -np.linalg.solve(J, (R - math.fsum(t * R)) / beta)

    def start(self, R: np.ndarray, beta: float) -> np.ndarray:
        """log(p/q) of the tilt by R at beta."""
        p, r = np.empty(R.size), np.empty(R.size)
        K.discrete_tilt(self.q, R / beta, p, r)
        return r

    def follow(self, log_beta0: float, goal: float | None, kl_target: float | None) -> _State:
        """Continue from the tilt by R_0 at beta_0 down to ``goal`` (log beta) or the budget."""
        R0 = self.pb.gradient(self.q)
        state = self.newton(self.start(R0, math.exp(log_beta0)), log_beta0, None)
        if not state.converged:
            raise RuntimeError("Newton failed next to the base policy")  # pragma: no cover
        h = 0.5
        low = math.log(BETA_RANGE[0])
        while True:
            if kl_target is not None:
                kl = self.kl(state.z)[0]
                if kl >= kl_target:
                    return self._meet(state, kl_target)
                if state.log_beta <= low:
                    raise ValueError(
                        f"kl must be below the largest KL the optimum reaches on this law "
                        f"(about {kl:.6g} at beta = {BETA_RANGE[0]:g}), got {kl_target!r}"
                    )
            elif state.log_beta <= goal:  # type: ignore[operator]
                return state
            floor = low if goal is None else goal
            while True:
                lb = max(state.log_beta - h, floor)
                try:
                    guess = state.z + (lb - state.log_beta) * self.tangent(state)
                except np.linalg.LinAlgError:  # pragma: no cover
                    guess = state.z
                nxt = self.newton(self.normalise(guess), lb, None)
                if nxt.converged:
                    break
                h /= 2
                if h < 1e-6:
                    return nxt  # reported as not converged
            h = min(1.0, 1.5 * h) if nxt.iterations <= 5 else h
            state = nxt

    def _meet(self, state: _State, kl_target: float) -> _State:
        """The bordered Newton solve for KL = kl_target, from a solution just past it."""
        out = self.newton(state.z, state.log_beta, kl_target)
        if out.converged:
            return out
        # bisection in log beta between the base side and ``state``
        hi, lo = state.log_beta + 1.0, state.log_beta
        best = state
        for _ in range(200):
            mid = 0.5 * (hi + lo)
            cand = self.newton(best.z, mid, None)
            if not cand.converged:
                break
            best = cand
            kl = self.kl(cand.z)[0]
            if abs(math.log(kl / kl_target)) < KL_RTOL:
                return cand
            if kl > kl_target:
                lo = mid
            else:
                hi = mid
        return _State(best.z, best.log_beta, best.residual, best.iterations, False)


def solve_proxy_optimal(
    procedure: ProxyBestOf,
    law: JointLaw,
    *,
    beta: float | None = None,
    kl: float | None = None,
    against: str = "procedure",
) -> ProxyOptimum:
    r"""The policy maximising W - beta KL (or W at KL = ``kl``) for a proxy-selected Best-of-N.

    W is the true-reward win rate of :func:`proxy_win_rate`; KL is over the atoms of ``law``.
    The optimum is :math:`p \propto q\,e^{R/\beta}` with R its own first variation
    (InfAlign, arXiv 2412.19792, Theorem 1); see the module docstring for the method.

    Parameters
    ----------
    procedure : ProxyBestOf
    law : JointLaw
        The base law of (true, proxy) pairs; at most a few thousand atoms (dense solves).
    beta, kl : float
        Give exactly one: the KL strength in [1e-6, 1e6], or a KL budget > 0 in nats (below
        what the optimum reaches at beta = 1e-6).
    against : {"procedure", "sample"}

    Raises
    ------
    ValueError
        For an argument out of range (the message names it), or a budget out of reach.
    """
    if not isinstance(procedure, ProxyBestOf):
        raise ValueError(f"procedure must be a ProxyBestOf, got {procedure!r}")
    if not isinstance(law, JointLaw):
        raise ValueError(f"law must be a JointLaw, got {type(law).__name__}")
    choice(against, "against", AGAINST)
    beta, kl = beta_or_kl(beta, kl, BETA_RANGE)
    problem = _Problem(law, procedure, against)
    solver = _Solver(problem)
    R0 = problem.gradient(law.probs)
    spread = float(R0.max() - R0.min())
    if not spread > 1e-12 * max(1.0, float(np.max(np.abs(R0)))):
        raise ValueError(
            "the win rate does not depend on the policy on this law (every atom has the "
            "same first variation): there is nothing to optimise"
        )
    if beta is not None:
        log_beta0 = max(math.log(20.0 * spread), math.log(beta))
        state = solver.follow(min(log_beta0, math.log(BETA_RANGE[1])), math.log(beta), None)
    else:
        b0 = max(20.0 * spread, 2.0 * spread / math.sqrt(8.0 * kl))  # type: ignore[operator]
        state = solver.follow(min(math.log(b0), math.log(BETA_RANGE[1])), None, kl)
    points = [state]
    # other starts at the goal: the tilts by the calibrated true and proxy rewards
    goal_beta = math.exp(state.log_beta)
    R = problem.gradient(solver.probs(state.z))
    for reward in REWARDS:
        u, _ = law.calibrated(reward)
        z = solver.start(u * float(R.max() - R.min()), goal_beta)
        other = solver.newton(solver.normalise(z), state.log_beta, kl)
        if other.converged and all(np.max(np.abs(other.z - s.z)) > 1e-6 for s in points):
            points.append(other)
    rows = []
    for s in points:
        b = math.exp(s.log_beta)
        pol = JointPolicy(law, solver.probs(s.z), beta=b, log_ratio=s.z)
        ev = proxy_evaluate(pol, procedure, against=against)
        objective = ev.win_rate - b * ev.kl
        rows.append((objective if kl is None else ev.win_rate, s, pol, ev))
    rows.sort(key=lambda row: -row[0])
    _, best, pol, ev = rows[0]
    b = math.exp(best.log_beta)
    return ProxyOptimum(
        procedure=procedure,
        against=against,
        beta=b,
        kl=ev.kl,
        win_rate=ev.win_rate,
        standard_win_rate=ev.standard_win_rate,
        policy=pol,
        transform=problem.gradient(pol.probs),
        residual=best.residual,
        iterations=solver.iterations,
        converged=bool(best.converged),
        stationary_points=tuple(
            {
                "kl": e.kl,
                "beta": math.exp(s.log_beta),
                "win_rate": e.win_rate,
                "objective": e.win_rate - math.exp(s.log_beta) * e.kl,
            }
            for _, s, _, e in rows
        ),
    )
