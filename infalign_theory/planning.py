r"""A CTRL recipe from one's own rewards: which transform, which beta, and what they buy.

The input is what a practitioner holds before RLHF: for each of P prompts x, the rewards
:math:`r(x, z_1), \dots, r(x, z_{n_x})` that their own reward model gives to
:math:`n_x \ge 2` samples of their own base policy. Each prompt's reward law is its samples
(:meth:`~infalign_theory.laws.DiscreteLaw.from_samples`: equal rewards are one level, masses
are counts), every prompt weighs the same whatever its number of samples, and one beta serves
all prompts, as in RLHF:

.. math:: \overline{\mathrm{KL}}(\beta) = \frac1P \sum_x \mathrm{KL}_x(\beta), \qquad
          \overline W_T(\beta) = \frac1P \sum_x W_{T,x}(\beta),

each term exact on its prompt's law, ties counted one half
(:mod:`~infalign_theory.metrics`). At a budget B on the average KL, :func:`plan` compares

* **the exponential transform** :math:`\Phi_t(u) = (e^{tu} - 1)/(e^t - 1)`, the
  recommendation: t maximises :math:`\overline W_T` at :math:`\overline{\mathrm{KL}} = B`
  (t = 0, the identity, and a log grid of |t| in [1e-2, 1e4] on the side of the sign that
  does better at |t| = 1, refined by bounded scalar minimisation around the best grid point);
* **the identity** (calibrated RLHF) at the same B;
* **the optimum of InfAlign's Theorem 1** on these laws: the largest
  :math:`\overline W_T` of any policy with :math:`\overline{\mathrm{KL}} \le B`. Its
  Lagrangian separates over prompts -- each prompt maximises
  :math:`W_{T,x} - \beta\,\mathrm{KL}_x` with the *same* beta, the multiplier of the budget --
  so it is :func:`~infalign_theory.optimal.solve_optimal` per prompt at a shared beta, found
  by Brent's method on :math:`\log\beta` so that the average KL is B. Such a beta gives the
  optimum for every procedure: any policy within the budget has
  :math:`\overline W_T \le \overline W_T^* - \beta(B - \overline{\mathrm{KL}}) \le
  \overline W_T^*`. For Best-of-N :math:`W_T` is concave and the average KL is continuous in
  beta, so it exists; where the maximisers jump (Worst-of-N can), the point reached is
  reported with its own KL.

Each transform's beta solves :math:`\overline{\mathrm{KL}}(\beta) = B` to a relative 1e-12 by
Newton's method on :math:`\log\overline{\mathrm{KL}}` against :math:`\log\beta`, with
:math:`d\,\mathrm{KL}_x/d\log\beta = -\mathrm{Var}_{\pi_x}(\Phi/\beta)` and a bracket kept.

With ``beta`` instead of ``kl``, beta is the price of KL in the InfAlign objective
:math:`\overline W_T - \beta\,\overline{\mathrm{KL}}`: B is the average KL the optimum spends
at that beta, and the transforms are compared at that B.

When the trainer calibrates each reward against K reference samples of its prompt
(``calibration_samples``), the transforms compared are those KL-RL then sees,
:class:`~infalign_theory.transforms.SampleCalibrated` on each prompt's law (ties included);
the optimum stays that of exact calibration, the best any policy can do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _kernels as K
from ._validate import choice, integer, positive_finite
from .calibration import ESTIMATORS, level_midpoints
from .curves import kl_limit
from .laws import DiscreteLaw
from .metrics import Evaluation, standard_win_rate, win_rate
from .metrics import kl as policy_kl
from .optimal import SATURATION, solve_optimal
from .policy import DiscretePolicy, base_policy, tilt
from .procedures import OrderStatistic
from .transforms import Exponential, Identity, SampleCalibrated, Transform

#: The fewest base samples a prompt may have: one sample is one level, where no beta moves.
MIN_SAMPLES = 2
#: Relative accuracy of the average KL reached at the budget.
KL_RTOL = 1e-12
#: The range of |t| searched for the exponential transform.
T_RANGE = (1e-2, 1e4)
_T_GRID = 31
_LOG_BETA_MIN = math.log(1e-300)
_MAX_ITER = 300
_MAX_STEP = 4.0
#: The ``RLOOConfig`` settings that make TRL's ``RLOOTrainer`` optimise E[Phi(C^)] - beta KL
#: with the reward of :func:`infalign_theory.bridge.trl_reward` (one update per batch, raw
#: leave-one-out advantages, temperature-1 sampling, a constant learning rate);
#: :func:`infalign_theory.bridge.trl_rloo_config` builds its config from them.
RLOO_OBJECTIVE: dict[str, Any] = {
    "num_iterations": 1,
    "normalize_advantages": False,
    "temperature": 1.0,
    "lr_scheduler_type": "constant",
}


# --------------------------------------------------------------------------------------
# Reading a reward file.
# --------------------------------------------------------------------------------------
def read_rewards(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The base samples' rewards per prompt from a CSV or JSONL file.

    Parameters
    ----------
    path : str or path-like
        CSV with a header naming the columns ``prompt`` and ``reward`` (others are ignored),
        or JSONL (``.jsonl``/``.ndjson``, or a file starting with ``{``), one object
        ``{"prompt": ..., "reward": ...}`` a line. One row per base sample.

    Returns
    -------
    dict
        Prompt -> its rewards, in the order of first appearance.

    Raises
    ------
    ValueError
        Naming the file and line: a missing column or key, a reward that is not a finite
        number, a prompt with fewer than ``MIN_SAMPLES`` samples, or no rows at all.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"rewards: cannot read {str(file)!r}: {exc}") from None
    suffix = file.suffix.lower()
    jsonl = suffix in (".jsonl", ".ndjson") or (suffix != ".csv" and text.lstrip().startswith("{"))
    rows = _jsonl_rows(text, file.name) if jsonl else _csv_rows(text, file.name)
    samples: dict[str, list[float]] = {}
    first_line: dict[str, int] = {}
    for line, prompt, reward in rows:
        samples.setdefault(prompt, []).append(reward)
        first_line.setdefault(prompt, line)
    if not samples:
        raise ValueError(f"{file.name}: no rows; one row per base sample is needed")
    for prompt, values in samples.items():
        if len(values) < MIN_SAMPLES:
            raise ValueError(
                f"{file.name}, line {first_line[prompt]}: prompt {prompt!r} has "
                f"{len(values)} sample; each prompt needs at least {MIN_SAMPLES}"
            )
    return {prompt: np.array(values) for prompt, values in samples.items()}


def _reward(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: reward must be a finite number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: reward must be a finite number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: reward must be a finite number, got {value!r}")
    return x


def _csv_rows(text: str, name: str) -> list[tuple[int, str, float]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = [c for c in ("prompt", "reward") if c not in header]
            if missing:
                raise ValueError(
                    f"{name}, line {line}: missing column {' and '.join(map(repr, missing))}; "
                    f"the header must name the columns 'prompt' and 'reward', got {cells!r}"
                )
            at_prompt, at_reward = header.index("prompt"), header.index("reward")
            continue
        if len(cells) != len(header):
            raise ValueError(
                f"{name}, line {line}: {len(cells)} fields where the header has {len(header)}"
            )
        where = f"{name}, line {line}"
        rows.append((line, cells[at_prompt], _reward(cells[at_reward].strip(), where)))
    if header is None:
        raise ValueError(f"{name}: empty; a header 'prompt,reward' and one row per sample needed")
    return rows


def _jsonl_rows(text: str, name: str) -> list[tuple[int, str, float]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{name}, line {line}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: each line must be an object with 'prompt' and 'reward'")
        missing = [k for k in ("prompt", "reward") if k not in obj]
        if missing:
            raise ValueError(f"{where}: missing key {' and '.join(map(repr, missing))}")
        prompt = obj["prompt"]
        if not isinstance(prompt, str | int) or isinstance(prompt, bool):
            raise ValueError(f"{where}: prompt must be a string or an integer, got {prompt!r}")
        rows.append((line, str(prompt), _reward(obj["reward"], where)))
    return rows


# --------------------------------------------------------------------------------------
# Prompt-averaged tilts with one shared beta.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Prompts:
    """The prompts' laws and the calibration the trainer will use."""

    laws: tuple[DiscreteLaw, ...]
    calibration_samples: int | None
    estimator: str

    def seen(self, transform: Transform) -> list[Transform]:
        """Per prompt, the transform KL-RL sees: itself, or E[Phi(C^) | level] with K samples."""
        if self.calibration_samples is None:
            return [transform] * len(self.laws)
        eff = SampleCalibrated(transform, self.calibration_samples, self.estimator)
        return [eff.on(law) for law in self.laws]

    def limit(self, transforms: Sequence[Transform]) -> float:
        """The average KL the tilts approach as beta -> 0."""
        pairs = zip(transforms, self.laws, strict=True)
        return float(np.mean([kl_limit(tr, law) for tr, law in pairs]))

    def tilts(self, transforms: Sequence[Transform], beta: float) -> list[DiscretePolicy]:
        return [tilt(tr, beta, law) for tr, law in zip(transforms, self.laws, strict=True)]  # type: ignore[misc]

    def kl_and_variance(self, transforms: Sequence[Transform], beta: float) -> tuple[float, float]:
        """Average KL and average Var(Phi/beta) (minus its slope in log beta)."""
        total_kl = total_var = 0.0
        for pol in self.tilts(transforms, beta):
            live = pol.probs > 0.0
            ell = pol.log_ratio[live]
            mean = float(np.dot(pol.probs[live], ell))
            total_var += float(np.dot(pol.probs[live], (ell - mean) ** 2))
            total_kl += policy_kl(pol)
        return total_kl / len(self.laws), total_var / len(self.laws)

    def start(self, transforms: Sequence[Transform]) -> float:
        """Log of the median spread of Phi over each prompt's levels: where beta's search starts."""
        spreads = []
        for tr, law in zip(transforms, self.laws, strict=True):
            values = np.asarray(tr(level_midpoints(law)[0]), dtype=np.float64)
            values = values[np.isfinite(values)]
            if values.size > 1 and np.ptp(values) > 0.0:
                spreads.append(float(np.ptp(values)))
        return math.log(float(np.median(spreads))) if spreads else 0.0


def _shared_beta(
    prompts: _Prompts, transforms: Sequence[Transform], target: float, x: float | None = None
) -> float:
    """The beta whose tilts have average KL ``target`` (Newton on log KL, bracketed).

    ``x`` is where log beta starts (default: from the spread of Phi on the levels).
    """
    x = prompts.start(transforms) if x is None else x
    lo, hi = -math.inf, math.inf
    cap = _MAX_STEP  # the largest step in log beta; it doubles while steps keep hitting it
    best, best_error = math.nan, math.inf
    polish = 2
    for _ in range(_MAX_ITER):
        try:
            value, var = prompts.kl_and_variance(transforms, math.exp(x))
        except ValueError:  # the tilt left double precision: beta is too small
            lo = x
            x = 0.5 * (lo + hi) if math.isfinite(hi) else x + cap
            cap *= 2.0
            continue
        if abs(value - target) < best_error:
            best, best_error = x, abs(value - target)
        if best_error <= 4.0 * K.EPS * target:  # a Newton step past KL_RTOL, while it gains
            break
        if value > target:
            lo = x
        else:
            hi = x
        step = -math.inf if value <= 0.0 or var <= 0.0 else value * math.log(value / target) / var
        if abs(step) > cap:  # far from the root (or Phi/beta below rounding: beta too large)
            step = math.copysign(cap, step)
            cap *= 2.0
        else:
            cap = _MAX_STEP
        x_new = x + step
        if not lo < x_new < hi and math.isfinite(lo) and math.isfinite(hi):
            x_new = 0.5 * (lo + hi)
        polish -= best_error <= KL_RTOL * target  # within KL_RTOL: two more steps at most
        if hi - lo <= 4.0 * K.EPS * max(1.0, abs(x)) or polish < 0:
            break
        x = x_new
    if best_error <= KL_RTOL * target:
        return math.exp(best)
    raise ValueError(f"kl = {target!r} is out of reach for these transforms on these prompts")


def _average(policies: Sequence[Any], procedure: OrderStatistic) -> tuple[float, float, float]:
    """Average KL, W_T and W_std of per-prompt policies."""
    rows = np.array(
        [(policy_kl(p), win_rate(p, procedure), standard_win_rate(p)) for p in policies]
    )
    kl_avg, w_t, w_std = rows.mean(axis=0)
    return float(kl_avg), float(w_t), float(w_std)


@dataclass(frozen=True, eq=False)
class _Tilted:
    """One transform at the shared beta that spends the budget: its numbers and policies."""

    transform: Transform
    beta: float
    kl: float
    win_rate: float
    standard_win_rate: float
    policies: tuple[DiscretePolicy, ...]


def _at_budget(
    prompts: _Prompts,
    transform: Transform,
    procedure: OrderStatistic,
    budget: float,
    start: float | None = None,
) -> _Tilted:
    seen = prompts.seen(transform)
    beta = _shared_beta(prompts, seen, budget, None if start is None else math.log(start))
    policies = tuple(prompts.tilts(seen, beta))
    return _Tilted(transform, beta, *_average(policies, procedure), policies)


def _best_exponential(prompts: _Prompts, procedure: OrderStatistic, budget: float) -> _Tilted:
    """Phi_t with the largest average W_T at the budget (t = 0 is the identity)."""
    from scipy import optimize  # imported here only: the rest of the package does without it

    found: dict[float, _Tilted | None] = {}

    def at(t: float) -> _Tilted | None:
        if t not in found:
            # beta starts from that of the nearest t solved (same sign, nearest log |t|)
            near = [u for u, v in found.items() if v is not None and u * t > 0.0]
            start = None
            if near:
                nearest = min(near, key=lambda u: abs(math.log(abs(u / t))))
                start = found[nearest].beta  # type: ignore[union-attr]
            try:
                found[t] = _at_budget(prompts, Exponential(t), procedure, budget, start)
            except ValueError:  # this t cannot reach the budget on these prompts
                found[t] = None
        return found[t]

    def score(t: float) -> float:
        point = at(t)
        return -1.0 if point is None else point.win_rate

    sign = 1.0 if score(1.0) >= score(-1.0) else -1.0
    logs = np.linspace(math.log(T_RANGE[0]), math.log(T_RANGE[1]), _T_GRID)
    values = [score(sign * math.exp(x)) for x in logs]
    i = int(np.argmax(values))
    res = optimize.minimize_scalar(
        lambda x: -score(sign * math.exp(x)),
        bounds=(logs[max(i - 1, 0)], logs[min(i + 1, logs.size - 1)]),
        method="bounded",
        options={"xatol": 1e-5},
    )
    score(sign * math.exp(float(res.x)))
    score(0.0)
    best = max((p for p in found.values() if p is not None), key=lambda p: p.win_rate, default=None)
    if best is None:
        raise ValueError(f"kl = {budget!r} is out of reach for every exponential transform")
    return best


def _optimum_at(
    prompts: _Prompts, procedure: OrderStatistic, beta: float
) -> tuple[float, float, float, tuple[Any, ...]]:
    """Each prompt's maximiser of W_T - beta KL; the average KL, W_T, W_std and the policies."""
    policies = tuple(
        base_policy(law)
        if law.n_levels == 1  # one level: every policy is the base
        else solve_optimal(procedure, beta=beta, law=law).policy
        for law in prompts.laws
    )
    return (*_average(policies, procedure), policies)


def _optimum_for_kl(
    prompts: _Prompts, procedure: OrderStatistic, budget: float, start: float
) -> tuple[float, tuple[float, float, float, tuple[Any, ...]]]:
    """The shared beta at which the per-prompt optima spend the budget on average."""
    from scipy import optimize  # imported here only: the rest of the package does without it

    cache: dict[float, tuple[float, float, float, tuple[Any, ...]]] = {}

    class Saturated(Exception):
        """W_T within 1e-10 of 1 below the budget: no more KL can raise it measurably."""

    def excess(x: float) -> float:
        if x not in cache:
            cache[x] = _optimum_at(prompts, procedure, math.exp(x))
        kl_avg, w_t = cache[x][:2]
        if kl_avg < budget and 1.0 - w_t <= SATURATION:
            raise Saturated(x)
        return kl_avg - budget

    lo = hi = math.log(start)
    step = 1.0
    try:
        while excess(lo) < 0.0:  # KL below the budget: beta too large
            if lo - step < _LOG_BETA_MIN:
                return math.exp(lo), cache[lo]
            hi, lo, step = lo, lo - step, 2.0 * step
        while excess(hi) > 0.0:
            lo, hi, step = hi, hi + step, 2.0 * step
        x = lo if excess(lo) == 0.0 else optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=1e-15)
    except Saturated as stop:
        x = stop.args[0]
    return math.exp(x), cache[x]


# --------------------------------------------------------------------------------------
# The plan.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Plan:
    """A CTRL recipe for one's own prompts and rewards, and what it buys (see the module).

    Attributes
    ----------
    procedure : OrderStatistic
        The inference-time procedure T.
    prompts, samples : int
        The number of prompts and of base samples over all of them.
    kl_budget : float
        B, the average KL at which the transforms are compared.
    calibration_samples : int or None
        K when the trainer calibrates from K reference samples (None: exact calibration).
    estimator : str
        The estimator of C from the K samples.
    transform : Exponential
        The recommended transform Phi_t of the calibrated reward (of its estimate with K).
    beta : float
        Its KL strength; ``paper_beta`` is the paper's beta' for the form e^{tu}.
    kl, win_rate, standard_win_rate : float
        Its average KL (= ``kl_budget``), inference-time and standard win rates.
    identity, optimum : Evaluation
        The identity transform at the same average KL, and the optimum of Theorem 1 (its
        ``beta`` the shared multiplier of the budget).
    notes : tuple of str
        What the numbers cannot promise here: the per-prompt optimum found is only a local
        one (a tilt scores more in W_T - beta KL at the optimum's beta), or the per-prompt
        optima jump across the budget so that the optimum's KL differs from it.
    laws : tuple of DiscreteLaw
        Each prompt's empirical reward law, in input order.
    policies, optimum_policies : tuple of DiscretePolicy
        Per prompt, the recommended tilt and the optimum.
    """

    procedure: OrderStatistic
    prompts: int
    samples: int
    kl_budget: float
    calibration_samples: int | None
    estimator: str
    transform: Exponential
    beta: float
    kl: float
    win_rate: float
    standard_win_rate: float
    identity: Evaluation
    optimum: Evaluation
    notes: tuple[str, ...]
    laws: tuple[DiscreteLaw, ...] = field(repr=False)
    policies: tuple[DiscretePolicy, ...] = field(repr=False)
    optimum_policies: tuple[DiscretePolicy, ...] = field(repr=False)

    @property
    def t(self) -> float:
        """The exponent of the recommended transform."""
        return self.transform.t

    @property
    def paper_beta(self) -> float:
        r"""The paper's beta' = beta |e^t - 1|: the same policy with its reward e^{tu} (-e^{tu})."""
        return self.transform.paper_beta(self.beta)

    def trl_settings(self) -> dict[str, Any]:
        """The TRL reward function and ``RLOOConfig`` settings that train the recommendation.

        ``reward`` gives the arguments of :func:`infalign_theory.bridge.trl_reward`,
        ``config`` those of :func:`infalign_theory.bridge.trl_rloo_config` that fix the
        objective (the rest -- batch, lengths, learning rate, steps -- are the trainer's).
        Plain data: neither torch nor trl is imported.
        """
        return {
            "reward": {
                "transform": f"Exponential({self.t!r})",
                "estimator": self.estimator,
                "column": "reference_rewards",
                "references_per_prompt": self.calibration_samples,
            },
            "config": {"beta": self.beta, **RLOO_OBJECTIVE},
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every number above (not the laws and policies)."""
        return {
            "procedure": self.procedure.name,
            "prompts": self.prompts,
            "samples": self.samples,
            "kl_budget": self.kl_budget,
            "calibration_samples": self.calibration_samples,
            "estimator": self.estimator if self.calibration_samples is not None else None,
            "transform": self.transform.name,
            "t": self.t,
            "beta": self.beta,
            "paper_beta": self.paper_beta,
            "kl": self.kl,
            "win_rate": self.win_rate,
            "standard_win_rate": self.standard_win_rate,
            "identity": self.identity.to_dict(),
            "optimum": self.optimum.to_dict(),
            "notes": list(self.notes),
            "trl": self.trl_settings(),
        }


def _laws(rewards: Any) -> tuple[tuple[DiscreteLaw, ...], int]:
    if isinstance(rewards, Mapping):
        groups = list(rewards.items())
    elif isinstance(rewards, Sequence) and not isinstance(rewards, str | bytes):
        groups = list(enumerate(rewards))
    else:
        raise ValueError(
            "rewards must be a file path, a mapping prompt -> rewards or a list of reward "
            f"arrays, got {type(rewards).__name__}"
        )
    if not groups:
        raise ValueError("rewards must hold at least one prompt")
    laws = []
    for prompt, values in groups:
        law = DiscreteLaw.from_samples(values)
        if np.size(values) < MIN_SAMPLES:
            raise ValueError(
                f"rewards of prompt {prompt!r}: {np.size(values)} sample; each prompt needs "
                f"at least {MIN_SAMPLES}"
            )
        laws.append(law)
    return tuple(laws), int(sum(np.size(values) for _, values in groups))


def plan(
    rewards: Any,
    procedure: OrderStatistic,
    *,
    kl: float | None = None,
    beta: float | None = None,
    calibration_samples: int | None = None,
    estimator: str = "midrank",
) -> Plan:
    """The exponential transform and beta to train with, and what they buy (module docstring).

    Parameters
    ----------
    rewards : path, mapping or sequence
        A CSV/JSONL file (:func:`read_rewards`), a mapping prompt -> rewards of its base
        samples, or a list of such arrays; at least ``MIN_SAMPLES`` (2) finite rewards each.
    procedure : OrderStatistic
        The inference-time procedure T (``best_of(n)``, ``worst_of(n)``, ...).
    kl, beta : float
        Give exactly one: the budget on the prompt-averaged KL in nats, or the price of KL
        in the InfAlign objective (the budget is then what the optimum spends at it).
    calibration_samples : int, optional
        K, when the trainer calibrates each reward from K reference samples of its prompt.
    estimator : {"midrank", "smoothed"}
        The estimate of C from those K samples (only with ``calibration_samples``).

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        On a bad argument (named), or a budget at or above the largest reachable average KL.
    """
    if isinstance(rewards, str | os.PathLike):
        rewards = read_rewards(rewards)
    laws, samples = _laws(rewards)
    if not isinstance(procedure, OrderStatistic):
        raise ValueError(f"procedure must be an OrderStatistic, got {procedure!r}")
    if (kl is None) == (beta is None):
        raise ValueError("give exactly one of kl and beta")
    choice(estimator, "estimator", ESTIMATORS)
    if calibration_samples is not None:
        calibration_samples = integer(calibration_samples, "calibration_samples", 1, 100_000)
    elif estimator != "midrank":
        raise ValueError("estimator is only used with calibration_samples")
    prompts = _Prompts(laws, calibration_samples, estimator)
    limit = prompts.limit([Identity()] * len(laws))
    if limit <= 0.0:
        raise ValueError("rewards: every prompt's samples are tied, so no beta moves the policy")
    if beta is not None:
        price = positive_finite(beta, "beta")
        budget, w_t, w_std, opt_policies = _optimum_at(prompts, procedure, price)
        if not budget > 0.0:
            raise ValueError(f"beta = {price!r} is so large that the optimum is the base policy")
    else:
        budget = positive_finite(kl, "kl")
        if not budget < limit:
            raise ValueError(
                f"kl must be in (0, {limit:.12g}) on these prompts (the average KL of keeping "
                f"only each prompt's top reward), got {budget!r}"
            )
    identity = _at_budget(prompts, Identity(), procedure, budget)
    if beta is None:
        price, optimum = _optimum_for_kl(prompts, procedure, budget, identity.beta)
        opt_kl, w_t, w_std, opt_policies = optimum
    else:
        opt_kl = budget
    best = _best_exponential(prompts, procedure, budget)
    notes = []
    local = _beaten(procedure, price, opt_policies, [best.policies, identity.policies])
    if local:
        notes.append(
            f"on {len(local)} of {len(laws)} prompts the solver's optimum is a local one: "
            "the exponential or the identity tilt scores more in W_T - beta KL at the "
            f"optimum's beta (W_T is not concave for {procedure.name}); the optimum's numbers "
            "are a lower bound on the best achievable"
        )
    if not abs(opt_kl - budget) <= 1e-9 * max(1.0, budget):
        if opt_kl < budget and 1.0 - w_t <= SATURATION:
            notes.append(
                f"the optimum's win rate is within {SATURATION:g} of 1 at KL {opt_kl:.6g}, "
                "below the budget: more KL cannot raise it measurably"
            )
        else:
            notes.append(
                f"the per-prompt optima jump across the budget: the nearest found spends "
                f"KL {opt_kl:.6g} instead of {budget:.6g}"
            )
    return Plan(
        procedure=procedure,
        prompts=len(laws),
        samples=samples,
        kl_budget=budget,
        calibration_samples=calibration_samples,
        estimator=estimator,
        transform=best.transform,  # type: ignore[arg-type]
        beta=best.beta,
        kl=best.kl,
        win_rate=best.win_rate,
        standard_win_rate=best.standard_win_rate,
        identity=Evaluation(
            identity.beta, identity.kl, identity.win_rate, identity.standard_win_rate
        ),
        optimum=Evaluation(price, opt_kl, w_t, w_std),
        notes=tuple(notes),
        laws=laws,
        policies=best.policies,
        optimum_policies=opt_policies,
    )


def _beaten(
    procedure: OrderStatistic,
    beta: float,
    optima: Sequence[Any],
    others: Sequence[Sequence[Any]],
) -> list[int]:
    """Prompts where another policy scores more than the solver's in W_T - beta KL."""
    out = []
    for i, opt in enumerate(optima):
        best = win_rate(opt, procedure) - beta * policy_kl(opt)
        score = max(win_rate(p[i], procedure) - beta * policy_kl(p[i]) for p in others)
        if score > best + 1e-12 * max(1.0, abs(best)):
            out.append(i)
    return out
