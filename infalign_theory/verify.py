r"""Every result of the theory as a check on an instance, and a battery that runs them all.

Each ``check_*`` function takes one instance (a reward law, a procedure, a transform, beta,
...), computes *both sides* of the statement by independent routes, and returns a
:class:`CheckResult`: the residual, the tolerance, and the status ``passed``, ``failed`` or
``inconclusive``. A check whose own numerics cannot reach the accuracy its tolerance needs (a
quadrature whose two rules disagree, an optimiser that stops short of stationarity) says
*inconclusive* and why; it never reports its own numerical failure as the statement failing.
:func:`run_checks` draws instances and aggregates them; ``infalign verify`` prints the table.

Instance ``i`` of check ``name`` under seed ``s`` is drawn from its own stream,
``np.random.default_rng([s, crc32(name), i])``: it does not depend on which other checks run,
on how many instances run, or on their order, so ``infalign verify --check NAME --seed S
--instance I`` reproduces any one of them.

The results, with their sources:

* InfAlign (Balashankar, Sun, et al., arXiv 2412.19792): Lemma 1 / Theorem 1 (the optimum
  of W_T - beta KL is KL-RL with a transformed reward), Lemma 2 (calibration is a bounded,
  increasing function of the reward), Lemma 3 (calibration is invariant under increasing
  transformations of the reward), Definition 3 (standard win rate, with ties 1/2), and the
  model-agnostic analysis in calibrated space.
* Beirami et al., arXiv 2401.01879: the Best-of-N KL bound log N - (N-1)/N, tight exactly
  without ties; its limit -log(eps) for a top level of mass eps; win rate N/(N+1).
* Gui, Garbacea, Veitch (BoNBoN), arXiv 2406.00832: the tilt by the calibrated reward is the
  win-rate / KL frontier, and Best-of-N lies strictly below it.
* Standard facts checked alongside: Best-of-a of Best-of-b is Best-of-(ab); the mirror
  u -> 1 - u exchanges Best-of-N and Worst-of-N; the data-processing inequality for the KL in
  calibrated space; concavity (Best-of-N) and convexity (Worst-of-N) of W_T in the policy.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from . import verify_procedures as _procedure_checks
from ._independent import (
    _gradient_by_differences,
    _objective_rows,
    _softmax,
    maximise_directly,
    objective_by_definition,
    reward_space_metrics,
)
from .calibration import calibrate, level_midpoints
from .curves import beta_for_kl, kl_limit
from .laws import ContinuousLaw, DiscreteLaw
from .metrics import kl, standard_win_rate, win_rate
from .policy import ContinuousPolicy, DiscretePolicy, Policy, apply, base_policy, tilt
from .procedures import OrderStatistic, best_of, order_statistic, worst_of
from .transforms import Exponential, Identity, Log, Mirror, Quantile, Transform

PAPER = "InfAlign, arXiv 2412.19792"


@dataclass(frozen=True)
class CheckResult:
    """One check on one instance.

    ``inconclusive`` is empty when the check reached its own accuracy; otherwise it says why
    not, and the residual decides nothing.
    """

    name: str
    statement: str
    source: str
    residual: float
    tolerance: float
    inconclusive: str = ""

    @property
    def status(self) -> str:
        """``inconclusive``, else ``passed`` (residual within tolerance) or ``failed``."""
        if self.inconclusive:
            return "inconclusive"
        return "passed" if self.residual <= self.tolerance else "failed"  # NaN fails

    @property
    def passed(self) -> bool:
        """Whether the check reached its accuracy and the residual is within the tolerance."""
        return self.status == "passed"


@dataclass(frozen=True)
class InstanceReport:
    """A failing or inconclusive instance, with what it takes to run it again."""

    index: int
    status: str
    residual: float
    reason: str
    parameters: dict[str, Any]
    command: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (a residual that is not finite becomes None)."""
        return {
            "instance": self.index,
            "status": self.status,
            "residual": _finite_or_none(self.residual),
            "reason": self.reason,
            "parameters": self.parameters,
            "command": self.command,
        }


@dataclass(frozen=True)
class CheckSummary:
    """A check run on many instances.

    ``max_residual`` is over the conclusive instances (None when there are none). The status
    is ``failed`` if any instance failed, else ``inconclusive`` if any was, else ``passed``.
    """

    name: str
    statement: str
    source: str
    seed: int
    instances: int
    max_residual: float | None
    tolerance: float
    failures: tuple[InstanceReport, ...]
    inconclusive: tuple[InstanceReport, ...]

    @property
    def status(self) -> str:
        """``failed``, ``inconclusive`` or ``passed``."""
        if self.failures:
            return "failed"
        return "inconclusive" if self.inconclusive else "passed"

    @property
    def passed(self) -> bool:
        """Whether every instance passed."""
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "name": self.name,
            "statement": self.statement,
            "source": self.source,
            "seed": self.seed,
            "instances": self.instances,
            "status": self.status,
            "passed": self.passed,
            "failed": len(self.failures),
            "inconclusive": len(self.inconclusive),
            "max_residual": _finite_or_none(self.max_residual),
            "tolerance": self.tolerance,
            "failures": [r.to_dict() for r in self.failures],
            "inconclusive_instances": [r.to_dict() for r in self.inconclusive],
        }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _result(name: str, residual: float, tolerance: float, inconclusive: str = "") -> CheckResult:
    statement, source = STATEMENTS[name]
    return CheckResult(name, statement, source, float(residual), tolerance, inconclusive)


# --------------------------------------------------------------------------------------
# The library side of Theorem 1 on discrete laws.
# --------------------------------------------------------------------------------------
def first_variation(law: DiscreteLaw, p: np.ndarray, procedure: OrderStatistic) -> np.ndarray:
    r"""R_i = dW_T/dp_i on the levels (discrete case).

    With level CDFs A_j = g(P_j), B_j = g(F_j) and
    :math:`W_T = \sum_j (A_j - A_{j-1})(B_j + B_{j-1})/2`,
    :math:`R_i = \sum_{j=i}^{m-1} g'(P_j)\,(B_{j-1} - B_{j+1})/2`.
    """
    P = np.cumsum(p)[:-1]
    B = np.concatenate([[0.0], procedure.g(law.cdf_levels[:-1]), [1.0]])
    dA = procedure.g_prime(np.clip(P, 0.0, 1.0)) * (B[:-2] - B[2:]) / 2.0
    return np.concatenate([np.cumsum(dA[::-1])[::-1], [0.0]])


# --------------------------------------------------------------------------------------
# The checks.
# --------------------------------------------------------------------------------------
def check_theorem1(
    law: DiscreteLaw, procedure: OrderStatistic, beta: float, rng: Any = 0
) -> CheckResult:
    """The direct maximiser of W_T - beta KL is the tilt by its own first variation.

    Side 1: a generic optimiser over the simplex (several starts, the best kept, then a
    Newton polish of its stationarity) on the objective computed from the definitions. Side
    2: the tilt q exp(R(p*)/beta) / Z by the first variation R at that maximiser. The
    residual is the larger of the gap between the two policies (largest mass difference) and
    the gap between their objectives; it is about 1e-10 when the theorem holds.

    Inconclusive when the optimiser stopped short of stationarity by its own measure: the
    tilt by the central-difference gradient of the objective (no first variation involved)
    differs from its answer by more than half the tolerance. The gradient is good to about
    1e-10, so on a conclusive instance a correct first variation leaves a residual below the
    tolerance.
    """
    tolerance = 1e-7
    p_star, value = maximise_directly(law, procedure, beta, np.random.default_rng(rng))
    logq = np.log(law.probs)
    R = first_variation(law, p_star, procedure)
    p_tilt = _softmax(logq + R / beta)
    gap_policy = float(np.max(np.abs(p_tilt - p_star)))
    gap_value = abs(objective_by_definition(law, p_tilt, procedure, beta) - value)
    w_t = _objective_rows(law, procedure, 0.0)
    p_fd = _softmax(logq + _gradient_by_differences(w_t, p_star) / beta)
    stationarity = float(np.max(np.abs(p_fd - p_star)))
    why = ""
    if not stationarity <= tolerance / 2:
        why = f"the generic optimiser stopped {stationarity:.1e} from stationarity"
    return _result("theorem1_optimum_is_tilt", max(gap_policy, gap_value), tolerance, why)


def check_calibration_monotone(
    law: DiscreteLaw | ContinuousLaw, rewards: np.ndarray
) -> CheckResult:
    """C is in [0, 1] and increasing in the reward, strictly between support points."""
    r = np.sort(np.asarray(rewards, dtype=np.float64))
    c = calibrate(law, r)
    bound = float(np.max(np.maximum(-c, c - 1.0), initial=0.0))
    drop = float(np.max(np.maximum(c[:-1] - c[1:], 0.0), initial=0.0))
    strict = 0.0
    if isinstance(law, DiscreteLaw):
        cv = calibrate(law, law.values)
        strict = float(np.max(np.maximum(cv[:-1] - cv[1:] + 1e-15, 0.0), initial=0.0))
        strict = max(strict, float(np.max(np.abs(np.minimum(cv, 1 - cv) <= 0.0), initial=0.0)))
    return _result("calibration_bounded_increasing", max(bound, drop, strict), 0.0)


_INCREASING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "cube+shift": lambda x: x**3 + x - 7.0,
    "arctan": np.arctan,
    "scale": lambda x: 1e-3 * x + 42.0,
}


def check_calibration_invariance(law: DiscreteLaw, rewards: np.ndarray, h: str) -> CheckResult:
    """C_{h(R)}(h(r)) = C_R(r) for a strictly increasing h (Lemma 3), ties included.

    Points where h, rounded to doubles, merges a reward with a different support value
    (say 0 and 1e-83 under r^3 + r - 7) are left out: there h is not strictly increasing.
    """
    fn = _INCREASING[h]
    mapped = DiscreteLaw(fn(law.values), law.probs)
    r = np.asarray(rewards, dtype=np.float64)
    same = r[:, None] == law.values[None, :]
    same_mapped = fn(r)[:, None] == fn(law.values)[None, :]
    keep = np.all(same == same_mapped, axis=1)
    if np.unique(fn(law.values)).size < law.n_levels:
        keep[:] = False  # h merges two support values: no statement to check
    diff = np.abs(calibrate(mapped, fn(r[keep])) - calibrate(law, r[keep]))
    return _result(
        "calibration_invariance", float(np.max(diff, initial=0.0)), 4 * np.finfo(float).eps
    )


def check_standard_win_rate(law: DiscreteLaw, p: np.ndarray) -> CheckResult:
    """W(pi > pi_ref) by the pairwise double sum (ties 1/2) equals E_pi[C]; E_ref[C] = 1/2."""
    pol = DiscretePolicy(law, p)
    m = law.n_levels
    i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    score = np.where(i > j, 1.0, np.where(i == j, 0.5, 0.0))
    pairwise = float(np.sum(pol.probs[:, None] * law.probs[None, :] * score))
    u, _ = level_midpoints(law)
    residual = max(abs(pairwise - standard_win_rate(pol)), abs(float(law.probs @ u) - 0.5))
    return _result("standard_win_rate_is_expected_calibration", residual, 1e-15)


_CONTINUOUS_LAWS: dict[str, Any] = {
    "normal(0,1)": stats.norm(0.0, 1.0),
    "normal(3,0.2)": stats.norm(3.0, 0.2),
    "lognormal(0.9)": stats.lognorm(0.9),
    "gumbel": stats.gumbel_r(1.0, 2.0),
    "student-t(3)": stats.t(3),
    "beta(2,5)": stats.beta(2.0, 5.0),
    "exponential": stats.expon(scale=4.0),
    "logistic": stats.logistic(),
}


def check_model_agnostic(
    laws: list[str], transform: Transform, beta: float, procedure: OrderStatistic
) -> CheckResult:
    """For a transform of the *calibrated* reward, KL and win rates are the same for all laws.

    Each law is integrated in its own reward space (:func:`reward_space_metrics`,
    independent of calibrated space) and compared with the library's calibrated-space
    numbers. Inconclusive when the quadrature's error estimate exceeds a tenth of the
    tolerance.
    """
    tolerance = 1e-9
    pol = tilt(transform, beta)
    ours = np.array([kl(pol), standard_win_rate(pol), win_rate(pol, procedure)])
    residual, error = 0.0, 0.0
    for name in laws:
        theirs, err = reward_space_metrics(_CONTINUOUS_LAWS[name], transform, beta, procedure)
        residual = max(residual, float(np.max(np.abs(theirs - ours))))
        error = max(error, err)
    why = "" if error <= tolerance / 10 else f"reward-space quadrature error {error:.1e}"
    return _result("model_agnostic_calibrated", residual, tolerance, why)


_LIGHT_TAILED = {
    "normal(0,1)": stats.norm(0.0, 1.0),
    "normal(0,3)": stats.norm(0.0, 3.0),
    "uniform(0,1)": stats.uniform(0.0, 1.0),
    "beta(2,5)": stats.beta(2.0, 5.0),
}


def check_raw_reward_not_agnostic(
    laws: list[str], beta: float, procedure: OrderStatistic
) -> CheckResult:
    """For the *raw* reward (the quantile transform) the numbers depend on the law.

    Passes when a counterexample is found: the KL or a win rate differs between two laws
    at the same beta by more than 1e-3. The residual is how far the spread falls short.
    """
    values = []
    for name in laws:
        pol = tilt(Quantile(ContinuousLaw(_LIGHT_TAILED[name])), beta)
        values.append([kl(pol), standard_win_rate(pol), win_rate(pol, procedure)])
    arr = np.array(values)
    spread = float(np.max(arr.max(axis=0) - arr.min(axis=0)))
    return _result("raw_reward_not_model_agnostic", max(0.0, 1e-3 - spread), 0.0)


def check_identity_optimal(
    law: DiscreteLaw | None, competitor: Transform | np.ndarray, beta: float
) -> CheckResult:
    """No policy beats the identity transform's standard win rate at equal KL.

    The competitor is a tilt by another transform (at ``beta``) or, on a discrete law, any
    policy given by its level masses. The identity is solved to the competitor's KL.
    """
    pol: Policy
    if isinstance(competitor, np.ndarray):
        pol = DiscretePolicy(law, competitor)  # type: ignore[arg-type]
    else:
        pol = tilt(competitor, beta, law)
    target, w_comp = kl(pol), standard_win_rate(pol)
    if target <= 1e-12:
        return _result("identity_optimal_for_standard_win_rate", 0.0, 1e-10)
    if law is not None and target >= kl_limit(Identity(), law) * (1 - 1e-12):
        w_id = float(level_midpoints(law)[0][-1])  # the identity's limit: the top level
    else:
        w_id = standard_win_rate(tilt(Identity(), beta_for_kl(Identity(), target, law=law), law))
    return _result("identity_optimal_for_standard_win_rate", max(0.0, w_comp - w_id), 1e-10)


def check_best_of_n_below_frontier(law: DiscreteLaw | None, n: int) -> CheckResult:
    """Best-of-N (N >= 2) has a standard win rate strictly below the identity at its KL.

    The residual is how far the gap falls short of 1e-11 (the gap is 5e-10 at N = 1024 in
    the continuous case and larger for smaller N; errors are about 1e-13).
    """
    bon = apply(best_of(n), base_policy(law))
    target = kl(bon)
    w_id = standard_win_rate(tilt(Identity(), beta_for_kl(Identity(), target, law=law), law))
    gap = w_id - standard_win_rate(bon)
    return _result("best_of_n_strictly_below_frontier", max(0.0, 1e-11 - gap), 0.0)


def check_best_of_n_kl_bound(law: DiscreteLaw | None, n: int) -> CheckResult:
    """KL(Best-of-N || base) <= log N - (N-1)/N: equal without ties, strictly below with ties."""
    value = kl(apply(best_of(n), base_policy(law)))
    bound = math.log(n) - (n - 1) / n
    if law is None:  # no ties: equality
        residual = abs(value - bound)
    elif n == 1 or law.n_levels == 1:
        residual = abs(value)
    else:  # ties: strict inequality
        residual = max(0.0, value - bound + 1e-12)
    return _result("best_of_n_kl_bound", residual, 1e-12)


def check_best_of_n_win_rate_bound(law: DiscreteLaw | None, n: int) -> CheckResult:
    """The standard win rate of Best-of-N is at most N/(N+1) (equal without ties)."""
    value = standard_win_rate(apply(best_of(n), base_policy(law)))
    if law is None:
        residual = abs(value - n / (n + 1))
    else:
        residual = max(0.0, value - n / (n + 1))
    return _result("best_of_n_win_rate_bound", residual, 1e-12)


def check_best_of_n_kl_limit(law: DiscreteLaw) -> CheckResult:
    """As N grows, KL(Best-of-N) increases to -log(eps), eps the mass of the top level."""
    eps = float(law.probs[-1])
    n = int(min(10**6, math.ceil(40.0 / eps)))  # (1 - eps)^N < e^-40
    values = [kl(apply(best_of(m), base_policy(law))) for m in (n // 8, n // 2, n)]
    residual = abs(values[-1] + math.log(eps))
    residual = max(residual, max(0.0, values[0] - values[1]), max(0.0, values[1] - values[2]))
    return _result("best_of_n_kl_limit", residual, 1e-10)


def check_composition(law: DiscreteLaw | None, a: int, b: int) -> CheckResult:
    """Best-of-a of a Best-of-b policy is Best-of-(ab): same policy, KL and win rates."""
    composed = apply(best_of(a), apply(best_of(b), base_policy(law)))
    direct = apply(best_of(a * b), base_policy(law))
    if isinstance(composed, DiscretePolicy) and isinstance(direct, DiscretePolicy):
        residual = float(np.max(np.abs(composed.probs - direct.probs)))
    else:
        residual = max(
            abs(kl(composed) - kl(direct)),
            abs(standard_win_rate(composed) - standard_win_rate(direct)),
            abs(win_rate(composed, worst_of(3)) - win_rate(direct, worst_of(3))),
        )
    return _result("best_of_composition", residual, 1e-10)


def check_best_of_m_win_rate(m: int, n: int) -> CheckResult:
    """A Best-of-m policy has Best-of-N win rate m/(m+1) for every N (continuous case)."""
    pol = base_policy() if m == 1 else tilt(Log(), 1.0 / (m - 1))
    residual = abs(win_rate(pol, best_of(n)) - m / (m + 1))
    return _result("best_of_m_has_best_of_n_win_rate_m_over_m_plus_1", residual, 1e-12 + 2e-15 * n)


def check_mirror(law: DiscreteLaw | None, transform: Transform, beta: float, n: int) -> CheckResult:
    """The mirror u -> 1 - u maps Best-of-N to Worst-of-N: policies, KL, and W to 1 - W."""
    pol: Policy
    mir: Policy
    if law is None:
        cpol, cmir = tilt(transform, beta), tilt(Mirror(transform), beta)
        bon, won = apply(best_of(n), base_policy()), apply(worst_of(n), base_policy())
        assert isinstance(cpol, ContinuousPolicy) and isinstance(cmir, ContinuousPolicy)
        assert isinstance(bon, ContinuousPolicy) and isinstance(won, ContinuousPolicy)
        grid = np.linspace(0.01, 0.99, 25)
        policy_gap = max(
            float(np.max(np.abs(cpol.pdf(grid) - cmir.pdf(1.0 - grid)))),
            float(np.max(np.abs(bon.pdf(grid) - won.pdf(1.0 - grid)))),
        )
        pol, mir = cpol, cmir
    else:
        mlaw = DiscreteLaw(-law.values, law.probs)
        dpol = tilt(transform, beta, law)
        dbon, dwon = apply(best_of(n), base_policy(law)), apply(worst_of(n), base_policy(mlaw))
        assert isinstance(dpol, DiscretePolicy)
        assert isinstance(dbon, DiscretePolicy) and isinstance(dwon, DiscretePolicy)
        policy_gap = float(np.max(np.abs(dbon.probs[::-1] - dwon.probs)))
        pol, mir = dpol, DiscretePolicy(mlaw, dpol.probs[::-1])
    residual = max(
        policy_gap,
        abs(kl(pol) - kl(mir)),
        abs(win_rate(pol, best_of(n)) - (1.0 - win_rate(mir, worst_of(n)))),
        abs(win_rate(pol, worst_of(n)) - (1.0 - win_rate(mir, best_of(n)))),
    )
    return _result("mirror_best_worst", residual, 1e-10)


def check_data_processing(
    rewards: np.ndarray, q: np.ndarray, pi: np.ndarray, spread_like_base: bool
) -> CheckResult:
    """Calibrated-space KL <= true KL on outcomes; equal iff pi/pi_ref is constant per level.

    ``rewards``, ``q`` and ``pi`` are per outcome (several outcomes may share a reward).
    With ``spread_like_base`` the policy is first made proportional to the base inside
    each level, where equality must hold; otherwise the inequality must be strict when the
    ratio varies inside a level.
    """
    law = DiscreteLaw(rewards, q)
    level = np.searchsorted(law.values, rewards)
    p_level = np.bincount(level, weights=pi, minlength=law.n_levels)
    if spread_like_base:
        pi = p_level[level] * q / law.probs[level]
    true_kl = float(np.sum(special.rel_entr(pi, q)))
    cal_kl = kl(DiscretePolicy(law, p_level))
    ratio = pi / q
    varies = any(np.ptp(ratio[level == j]) > 1e-6 for j in range(law.n_levels))
    if spread_like_base or not varies:
        residual = abs(true_kl - cal_kl)
    else:
        residual = max(0.0, cal_kl - true_kl + 1e-12)
    return _result("data_processing_kl", residual, 1e-12)


def check_concavity(
    law: DiscreteLaw, p1: np.ndarray, p2: np.ndarray, lam: float, n: int
) -> CheckResult:
    """W_T is concave in the policy for Best-of-N and convex for Worst-of-N."""

    def w(p: np.ndarray, proc: OrderStatistic) -> float:
        return win_rate(DiscretePolicy(law, p), proc)

    mix = lam * p1 + (1.0 - lam) * p2
    concave_gap = lam * w(p1, best_of(n)) + (1 - lam) * w(p2, best_of(n)) - w(mix, best_of(n))
    convex_gap = w(mix, worst_of(n)) - lam * w(p1, worst_of(n)) - (1 - lam) * w(p2, worst_of(n))
    return _result("win_rate_concave_bon_convex_won", max(0.0, concave_gap, convex_gap), 1e-14)


STATEMENTS: dict[str, tuple[str, str]] = {
    **_procedure_checks.STATEMENTS,
    "theorem1_optimum_is_tilt": (
        "the maximiser of W_T - beta KL is the tilt of the base by the first variation of W_T",
        f"{PAPER}, Lemma 1 and Theorem 1",
    ),
    "calibration_bounded_increasing": (
        "the calibrated reward lies in [0, 1] and increases with the reward",
        f"{PAPER}, Lemma 2",
    ),
    "calibration_invariance": (
        "the calibrated reward is unchanged by any strictly increasing map of the reward",
        f"{PAPER}, Lemma 3",
    ),
    "standard_win_rate_is_expected_calibration": (
        "W(pi > pi_ref) with ties 1/2 equals E_pi[C] exactly, and E_ref[C] = 1/2",
        f"{PAPER}, Definitions 2-3",
    ),
    "model_agnostic_calibrated": (
        "for transforms of the calibrated reward, KL and win rates are the same for every "
        "continuous law",
        f"{PAPER}, calibrated-space analysis (Section 4)",
    ),
    "raw_reward_not_model_agnostic": (
        "for transforms of the raw reward they are not: a counterexample is found",
        f"{PAPER}, calibrated-space analysis (Section 4)",
    ),
    "identity_optimal_for_standard_win_rate": (
        "no policy beats the identity transform's standard win rate at equal KL",
        "Gibbs variational principle; Gui et al., arXiv 2406.00832",
    ),
    "best_of_n_strictly_below_frontier": (
        "Best-of-N (N >= 2) lies strictly below the identity's win-rate/KL frontier",
        "Gui et al. (BoNBoN), arXiv 2406.00832",
    ),
    "best_of_n_kl_bound": (
        "KL(Best-of-N) <= log N - (N-1)/N, with equality iff the reward has no ties",
        "Beirami et al., arXiv 2401.01879",
    ),
    "best_of_n_win_rate_bound": (
        "the standard win rate of Best-of-N is at most N/(N+1)",
        "Beirami et al., arXiv 2401.01879",
    ),
    "best_of_n_kl_limit": (
        "as N -> inf, KL(Best-of-N) increases to -log eps for a unique top level of mass eps",
        "Beirami et al., arXiv 2401.01879",
    ),
    "best_of_composition": (
        "Best-of-a of a Best-of-b policy is Best-of-(ab)",
        "order statistics: g_a(g_b(F)) = F^ab",
    ),
    "best_of_m_has_best_of_n_win_rate_m_over_m_plus_1": (
        "a Best-of-m policy has Best-of-N win rate m/(m+1) for every N",
        "order statistics: int (1 - u^mN) N u^(N-1) du",
    ),
    "mirror_best_worst": (
        "u -> 1 - u maps Best-of-N to Worst-of-N: policies, KL, and W to 1 - W",
        "symmetry of order statistics",
    ),
    "data_processing_kl": (
        "calibrated-space KL <= true KL, with equality iff pi/pi_ref is constant per level",
        "data-processing inequality for KL (log-sum inequality)",
    ),
    "win_rate_concave_bon_convex_won": (
        "W_T is concave in the policy for Best-of-N and convex for Worst-of-N",
        "W_T = 1 - int g(G) dg_ref with g convex (BoN), concave (WoN)",
    ),
}


# --------------------------------------------------------------------------------------
# Instance generators and the battery.
# --------------------------------------------------------------------------------------
def random_discrete_law(rng: np.random.Generator, low: int = 2, high: int = 6) -> DiscreteLaw:
    """A law with ``low``..``high`` levels; raw values repeat, so several merge into a level."""
    while True:
        size = int(rng.integers(low, high + 3))
        values = rng.integers(-4, 5, size).astype(float)
        probs = rng.dirichlet(np.ones(size))
        law = DiscreteLaw(values, probs)
        if low <= law.n_levels <= high and law.probs.min() > 1e-3:
            return law


def random_transform(rng: np.random.Generator) -> Transform:
    """Identity, log, or exponential with t of either sign."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return Identity()
    if kind == 1:
        return Log()
    return Exponential(float(np.round(rng.choice([-1, 1]) * 10 ** rng.uniform(-1, 1.5), 3)))


def random_procedure(rng: np.random.Generator, max_n: int = 8) -> OrderStatistic:
    """Best-of-N, Worst-of-N or an interior order statistic."""
    n = int(rng.integers(1, max_n + 1))
    return order_statistic(int(rng.integers(1, n + 1)), n)


def _beta(rng: np.random.Generator, low: float = 0.05, high: float = 2.0) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _pick(rng: np.random.Generator, options: list[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _instances(name: str, rng: np.random.Generator) -> dict[str, Any]:
    law: Any
    if name == "theorem1_optimum_is_tilt":
        n = int(rng.integers(2, 7))
        inner = order_statistic(int(rng.integers(1, n + 1)), n)
        proc = _pick(rng, [best_of(n), worst_of(n), inner])
        return dict(
            law=random_discrete_law(rng),
            procedure=proc,
            beta=_beta(rng, 0.05, 1.0),
            rng=int(rng.integers(2**31)),
        )
    if name == "calibration_bounded_increasing":
        law = (
            random_discrete_law(rng)
            if rng.random() < 0.7
            else ContinuousLaw(_CONTINUOUS_LAWS[rng.choice(list(_CONTINUOUS_LAWS))])
        )
        return dict(law=law, rewards=rng.normal(0.0, 4.0, 40))
    if name == "calibration_invariance":
        law = random_discrete_law(rng)
        pts = np.concatenate([law.values, rng.uniform(-5, 5, 10)])
        return dict(law=law, rewards=pts, h=str(rng.choice(list(_INCREASING))))
    if name == "standard_win_rate_is_expected_calibration":
        law = random_discrete_law(rng)
        return dict(law=law, p=rng.dirichlet(np.ones(law.n_levels)))
    if name == "model_agnostic_calibrated":
        laws = [str(rng.choice(list(_CONTINUOUS_LAWS)))]  # one law each: all, across instances
        tr = _pick(rng, [Identity(), Log(), Exponential(float(rng.uniform(-8, 8)))])
        return dict(
            laws=laws, transform=tr, beta=_beta(rng, 0.15, 2.0), procedure=random_procedure(rng, 6)
        )
    if name == "raw_reward_not_model_agnostic":
        laws = list(rng.choice(list(_LIGHT_TAILED), size=2, replace=False))
        return dict(laws=laws, beta=_beta(rng, 0.3, 3.0), procedure=random_procedure(rng, 6))
    if name == "identity_optimal_for_standard_win_rate":
        law = random_discrete_law(rng) if rng.random() < 0.5 else None
        if law is not None and rng.random() < 0.5:
            competitor: Any = rng.dirichlet(np.ones(law.n_levels) * 0.7)
        else:
            competitor = random_transform(rng)
        return dict(law=law, competitor=competitor, beta=_beta(rng))
    if name == "best_of_n_strictly_below_frontier":
        # Where the gap is resolvable: it shrinks like the mass Best-of-N leaves off the top
        # (N <= 8 with a top level of mass <= 1/2 on a discrete law; N <= 256 otherwise).
        if rng.random() < 0.5:  # on two levels every policy is a tilt by the identity
            law = random_discrete_law(rng, low=3)
            while law.probs[-1] > 0.5:
                law = random_discrete_law(rng, low=3)
            return dict(law=law, n=int(rng.integers(2, 9)))
        return dict(law=None, n=int(rng.integers(2, 257)))
    if name in ("best_of_n_kl_bound", "best_of_n_win_rate_bound"):
        law = random_discrete_law(rng) if rng.random() < 0.5 else None
        return dict(law=law, n=int(rng.integers(1, 65)))
    if name == "best_of_n_kl_limit":
        return dict(law=random_discrete_law(rng))
    if name == "best_of_composition":
        law = random_discrete_law(rng) if rng.random() < 0.5 else None
        return dict(law=law, a=int(rng.integers(1, 9)), b=int(rng.integers(1, 9)))
    if name == "best_of_m_has_best_of_n_win_rate_m_over_m_plus_1":
        return dict(m=int(rng.integers(1, 65)), n=int(rng.integers(1, 1025)))
    if name == "mirror_best_worst":
        law = random_discrete_law(rng) if rng.random() < 0.5 else None
        return dict(
            law=law, transform=random_transform(rng), beta=_beta(rng), n=int(rng.integers(1, 65))
        )
    if name == "data_processing_kl":
        size = int(rng.integers(3, 10))
        return dict(
            rewards=rng.integers(0, 4, size).astype(float),
            q=rng.dirichlet(np.ones(size)),
            pi=rng.dirichlet(np.ones(size)),
            spread_like_base=bool(rng.random() < 0.5),
        )
    if name == "win_rate_concave_bon_convex_won":
        law = random_discrete_law(rng)
        return dict(
            law=law,
            p1=rng.dirichlet(np.ones(law.n_levels)),
            p2=rng.dirichlet(np.ones(law.n_levels)),
            lam=float(rng.uniform(0.05, 0.95)),
            n=int(rng.integers(1, 33)),
        )
    if name in _procedure_checks.CHECKS:
        return _procedure_checks.instances(name, rng, random_discrete_law)
    raise KeyError(name)


def _procedure_check(name: str) -> Callable[..., CheckResult]:
    def run(**params: Any) -> CheckResult:
        residual, tolerance = _procedure_checks.CHECKS[name](**params)
        return _result(name, residual, tolerance)

    run.__doc__ = _procedure_checks.CHECKS[name].__doc__
    return run


CHECKS: dict[str, Callable[..., CheckResult]] = {
    "theorem1_optimum_is_tilt": check_theorem1,
    "calibration_bounded_increasing": check_calibration_monotone,
    "calibration_invariance": check_calibration_invariance,
    "standard_win_rate_is_expected_calibration": check_standard_win_rate,
    "model_agnostic_calibrated": check_model_agnostic,
    "raw_reward_not_model_agnostic": check_raw_reward_not_agnostic,
    "identity_optimal_for_standard_win_rate": check_identity_optimal,
    "best_of_n_strictly_below_frontier": check_best_of_n_below_frontier,
    "best_of_n_kl_bound": check_best_of_n_kl_bound,
    "best_of_n_win_rate_bound": check_best_of_n_win_rate_bound,
    "best_of_n_kl_limit": check_best_of_n_kl_limit,
    "best_of_composition": check_composition,
    "best_of_m_has_best_of_n_win_rate_m_over_m_plus_1": check_best_of_m_win_rate,
    "mirror_best_worst": check_mirror,
    "data_processing_kl": check_data_processing,
    "win_rate_concave_bon_convex_won": check_concavity,
    **{name: _procedure_check(name) for name in _procedure_checks.CHECKS},
}


def instance_rng(name: str, seed: int, index: int) -> np.random.Generator:
    """The generator of instance ``index`` of check ``name``.

    ``default_rng([seed, crc32(name), index])``: the same whichever checks and instances run
    alongside it.
    """
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


def _describe(value: Any) -> Any:
    """A JSON-ready description of an instance's parameter."""
    if isinstance(value, DiscreteLaw):
        return {"values": value.values.tolist(), "probs": value.probs.tolist()}
    if isinstance(value, ContinuousLaw):
        return value.name
    if isinstance(value, OrderStatistic):
        return {"k": value.k, "n": value.n}
    if isinstance(value, Exponential):
        return {"transform": "exp", "t": value.t}
    if isinstance(value, Transform):
        return {"transform": value.name}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def reproduce_command(name: str, seed: int, index: int) -> str:
    """The ``infalign`` command that runs instance ``index`` of check ``name`` alone."""
    return f"infalign verify --check {name} --seed {seed} --instance {index}"


#: Checks whose instances take seconds each (a Theorem 1 solve for a general procedure) run
#: at most this many instances, whatever ``examples`` asks.
MAX_INSTANCES = {"procedures_theorem1_optimum": 24}


def run_checks(
    examples: int = 20,
    seed: int = 0,
    names: list[str] | None = None,
    instance: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[CheckSummary]:
    """Run every check (or those named) on ``examples`` generated instances each.

    Instance i of a check comes from :func:`instance_rng` (the check's name, ``seed`` and i),
    so a check's instances do not depend on which other checks run. With ``instance`` only
    that one instance of each check runs (``examples`` is then ignored). A check that solves
    for an optimum of a general procedure (seconds an instance) runs at most
    ``MAX_INSTANCES[name]`` instances. ``progress`` is
    called as ``progress(name, done, total)`` after every instance. Every failing or
    inconclusive instance is reported with its parameters and :func:`reproduce_command`.
    """
    selected = names or list(CHECKS)
    for name in selected:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}; the checks are: {', '.join(CHECKS)}")
    out = []
    for name in selected:
        cap = MAX_INSTANCES.get(name, examples)
        indices = range(min(examples, cap)) if instance is None else [instance]
        worst: float | None = None
        tolerance = 0.0
        reports: dict[str, list[InstanceReport]] = {"failed": [], "inconclusive": []}
        for done, index in enumerate(indices, start=1):
            params = _instances(name, instance_rng(name, seed, index))
            res = CHECKS[name](**params)
            tolerance = max(tolerance, res.tolerance)
            if res.status != "inconclusive":
                residual = res.residual if math.isfinite(res.residual) else math.inf
                worst = residual if worst is None else max(worst, residual)
            if res.status != "passed":
                reports[res.status].append(
                    InstanceReport(
                        index,
                        res.status,
                        res.residual,
                        res.inconclusive or f"residual {res.residual:.2e} > {res.tolerance:.1e}",
                        {key: _describe(v) for key, v in params.items()},
                        reproduce_command(name, seed, index),
                    )
                )
            if progress is not None:
                progress(name, done, len(indices))
        statement, source = STATEMENTS[name]
        out.append(
            CheckSummary(
                name,
                statement,
                source,
                seed,
                len(indices),
                worst,
                tolerance,
                tuple(reports["failed"]),
                tuple(reports["inconclusive"]),
            )
        )
    return out
