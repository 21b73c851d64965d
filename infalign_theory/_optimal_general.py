r"""The InfAlign optimum for any procedure that gives its first variation (Theorem 1).

For a procedure T that is not an order statistic (soft Best-of-n, threshold sampling, a
user's CDF map or subclass) the optimum of :math:`W_T(\pi) - \beta\,\mathrm{KL}` is the
fixed point

.. math:: \pi^* \propto \pi_{\rm ref}\, \exp\big(R_{\pi^*}/\beta\big),

R the first variation of W_T at :math:`\pi^*` (InfAlign, Balashankar, Sun, et al., arXiv
2412.19792, Theorem 1), which the procedure computes (:meth:`Procedure.level_variation`,
:meth:`Procedure.density_variation`; formulas in :mod:`._variation`).

Method
------
The unknown is R at the levels of a discrete law (exact), or at the nodes of a fixed
quadrature grid on [0, 1] (20-point Gauss-Legendre panels, graded geometrically toward both
ends down to 2^-30, no wider than the procedure's ``variation_width``, cut at its
breakpoints). The map R -> R_{pi(R)}, with pi(R) the tilt of the base by R at beta -- or,
for a KL budget, at the beta whose tilt meets the budget (found by bracketing in log beta)
-- is iterated with Anderson acceleration (memory 8; a plain step where Anderson's would
raise the residual). The iteration is continued from near the base (a small KL, or a large
beta) to the goal in steps of a factor of 3, each stage started from the last. Because W_T
need not be concave in the policy, the goal is also solved from exponential starts
(t = +-3, +-8), and the stationary point with the highest objective (W_T at a KL budget,
W_T - beta KL at a beta) is returned; every distinct one is listed.

Convergence: the residual max|log pi - (R_pi/beta - log Z)|, taken after removing the best
constant, below 1e-10 (the first-order condition on the levels or nodes). The policy
returned is the library's tilt by the interpolated R; its KL and W_T are computed by the
library's own routes (exact on levels; adaptive quadrature in the continuous case).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from . import _kernels as K
from . import _mesh
from ._validate import beta_or_kl, choice
from ._variation import Grid
from .calibration import level_midpoints
from .curves import TradeoffCurve, kl_limit
from .laws import ContinuousLaw, DiscreteLaw
from .metrics import AGAINST, kl, win_rate
from .policy import apply, base_policy, tilt
from .procedures import Procedure, sampling
from .transforms import Exponential, Identity, LevelValues, Transform

TOL = 1e-10
_MAX_ITER = 300
_MEMORY = 8
_STARTS = (3.0, 8.0, -3.0, -8.0)
#: Geometric grading of the continuous grid toward both ends.
_GRADING = 30
#: Temperatures of soft Best-of-n below this would need grids too large for a dense solve.
MIN_TEMPERATURE = 0.005


class _Interpolated(Transform):
    """R given at the grid's nodes, interpolated panel by panel, panels kept (jumps at cuts)."""

    def __init__(self, mesh: _mesh.Mesh, values: np.ndarray, label: str):
        self.mesh, self.values, self.label = mesh, values, label

    @property
    def name(self) -> str:  # noqa: D102
        return self.label

    def initial_panels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: D102
        return self.mesh.side, self.mesh.a, self.mesh.b

    def _left(self, u: np.ndarray) -> np.ndarray:
        return _mesh.interpolate(self.mesh, self.values, u, 1.0 - u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return _mesh.interpolate(self.mesh, self.values, 1.0 - s, s)


def _side_edges(cap: float, cuts: list[float]) -> np.ndarray:
    geo = 0.5 ** np.arange(_GRADING, 0, -1)  # 2^-30 .. 1/2
    edges = np.unique(np.concatenate([[0.0], geo, [c for c in cuts if 0.0 < c < 0.5]]))
    out = [edges[0]]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        k = max(int(math.ceil((b - a) / cap)), 1)
        out.extend(np.linspace(a, b, k + 1)[1:])
    return np.asarray(out)


def _grid(procedure: Procedure) -> _mesh.Mesh:
    cap = procedure.variation_width
    cuts = [float(t) for t in procedure.breakpoints]
    sides, lo, hi = [], [], []
    for sd, cut in ((0, cuts), (1, [1.0 - c for c in cuts])):
        e = _side_edges(cap, cut)
        sides.append(np.full(e.size - 1, sd, dtype=np.int8))
        lo.append(e[:-1])
        hi.append(e[1:])
    side, a, b = np.concatenate(sides), np.concatenate(lo), np.concatenate(hi)
    return _mesh.Mesh(side, a, b, np.zeros((a.size, K.NODES)))


class _Model:
    """Levels (exact) or grid nodes: base weights w and R -> R_pi for the procedure."""

    def __init__(self, procedure: Procedure, ref: Procedure, law: DiscreteLaw | None):
        self.procedure, self.law = procedure, law
        if law is not None:
            self.mid = level_midpoints(law)
            self.w = law.probs
            b = apply(ref, base_policy(law)).probs
            B = np.cumsum(b)
            self.c = 0.5 * (B + np.concatenate([[0.0], B[:-1]]))
            self.u = self.mid[0]
        else:
            self.mesh = _grid(procedure)
            u, s, w = _mesh.nodes(self.mesh)
            L, _ = _mesh.cumulative_matrices(self.mesh)
            self.grid = Grid(u.ravel(), s.ravel(), w.ravel(), L)
            self.w, self.u = self.grid.w, self.grid.u
            decoded = apply(ref, base_policy())
            self.ref_cdf = decoded._cdf_pair(self.grid.u, self.grid.s)[0]
            self.ref_pdf = decoded._pdf_pair(self.grid.u, self.grid.s)
        self.logw = np.log(self.w)

    def variation(self, p: np.ndarray) -> np.ndarray:
        if self.law is not None:
            return self.procedure.level_variation(p, self.mid, self.c)
        f = p / self.w
        G = self.grid.L @ f
        return self.procedure.density_variation(
            self.grid, f, np.clip(G, 0.0, 1.0), self.ref_cdf, self.ref_pdf
        )

    def tilt(self, R: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(p, log(p / w), KL) of the tilt by R at beta."""
        y = R / beta
        y = y - y.max()
        logz = float(np.log(np.dot(self.w, np.exp(y))))
        y = y - logz
        p = self.w * np.exp(y)
        return p, y, float(np.dot(p, y))

    def beta_for(self, R: np.ndarray, budget: float) -> float:
        spread = float(np.ptp(R))
        if spread == 0.0:
            return 1.0

        def gap(x: float) -> float:
            return math.log(max(self.tilt(R, math.exp(x))[2], 1e-300)) - math.log(budget)

        lo = hi = math.log(spread)
        while gap(lo) < 0.0 and lo > -700:
            lo -= 2.0
        while gap(hi) > 0.0 and hi < 700:
            hi += 2.0
        if gap(lo) < 0.0:  # the budget is beyond what R can reach
            raise ValueError(f"kl = {budget!r} is beyond the reach of this tilt")
        return math.exp(optimize.brentq(gap, lo, hi, xtol=1e-14, rtol=1e-15))


def _center(R: np.ndarray, w: np.ndarray) -> np.ndarray:
    return R - float(np.dot(w, R))


@dataclass
class _Solution:
    R: np.ndarray
    beta: float
    residual: float
    iterations: int
    converged: bool


def _iterate(model: _Model, R: np.ndarray, beta: float | None, budget: float | None) -> _Solution:
    """Anderson-accelerated fixed point R = R_{pi(R)}, beta fixed or fitted to the budget."""

    def step(R: np.ndarray) -> tuple[np.ndarray, float, float]:
        b = model.beta_for(R, budget) if budget is not None else beta
        p, _, _ = model.tilt(R, b)
        new = _center(model.variation(p), model.w)
        d = (new - R) / b
        return new, b, 0.5 * float(np.ptp(d))

    R = _center(R, model.w)
    xs: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    best = None
    for it in range(1, _MAX_ITER + 1):
        new, b, res = step(R)
        if best is None or res < best.residual:
            best = _Solution(R, b, res, it, res < TOL)
        if res < TOL or not np.all(np.isfinite(new)):
            break
        xs.append(R)
        gs.append(new - R)
        xs, gs = xs[-_MEMORY:], gs[-_MEMORY:]
        cand = new
        if len(gs) > 1:
            dG = np.stack([gs[i + 1] - gs[i] for i in range(len(gs) - 1)], axis=1)
            dX = np.stack([xs[i + 1] - xs[i] for i in range(len(xs) - 1)], axis=1)
            try:
                gamma = np.linalg.lstsq(dG, gs[-1], rcond=None)[0]
                cand = R + gs[-1] - (dX + dG) @ gamma
            except np.linalg.LinAlgError:
                cand = new
        R = _center(cand, model.w) if np.all(np.isfinite(cand)) else new
    assert best is not None
    best.iterations = it
    return best


def _stages(start: float, goal: float) -> np.ndarray:
    """From start to goal in factors of 3 (geometric), goal last."""
    steps = max(int(math.ceil(abs(math.log(goal / start)) / math.log(3.0))), 1)
    return np.geomspace(start, goal, steps + 1)[1:]


def _solve_tracks(model: _Model, beta: float | None, budget: float | None) -> list[_Solution]:
    base = np.exp(model.logw)
    R0 = _center(model.variation(base), model.w)
    spread = float(np.ptp(R0)) or 1.0
    out: list[_Solution] = []
    # continuation from near the base
    R, iters = R0, 0
    if budget is not None:
        plan = [(None, k) for k in _stages(min(budget, 1e-3), budget)]
    else:
        plan = [(b, None) for b in _stages(max(beta, 20.0 * spread), beta)]
    sol = None
    for b, k in plan:
        sol = _iterate(model, R, b, k)
        iters += sol.iterations
        R = sol.R
    assert sol is not None
    sol.iterations = iters
    out.append(sol)
    # exponential starts at the goal
    for t in _STARTS:
        Rt = spread * Exponential(t)(np.clip(model.u, 0.0, 1.0))
        try:
            s = _iterate(model, Rt, beta, budget)
        except ValueError:
            continue
        out.append(s)
    return out


def _check(procedure: Any, against: str, law: Any) -> tuple[Procedure, Procedure]:
    if not isinstance(procedure, Procedure):
        raise ValueError(f"procedure must be a Procedure, got {procedure!r}")
    choice(against, "against", AGAINST)
    if law is not None and not isinstance(law, DiscreteLaw | ContinuousLaw):
        raise ValueError(f"law must be a DiscreteLaw, ContinuousLaw or None, got {law!r}")
    temperature = getattr(procedure, "temperature", None)
    if not isinstance(law, DiscreteLaw) and temperature is not None:
        if temperature < MIN_TEMPERATURE:
            raise ValueError(
                f"temperature must be >= {MIN_TEMPERATURE} for the continuous optimum, got "
                f"{temperature!r}"
            )
    return procedure, procedure if against == "procedure" else sampling()


def _candidates(model: _Model, sols: list[_Solution], law: Any, procedure: Procedure,
                against: str, name: str) -> list[dict[str, Any]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    kept: list[_Solution] = []
    for s in sols:
        if not s.converged or any(
            abs(s.beta - k.beta) <= 1e-9 * k.beta and np.max(np.abs(s.R - k.R)) <= 1e-7 * k.beta
            for k in kept
        ):  # a start that found a stationary point already kept
            continue
        kept.append(s)
        R = s.R - float(np.max(s.R))
        if model.law is not None:
            transform: Transform = LevelValues(model.law, R, name)
        else:
            transform = _Interpolated(model.mesh, R.reshape(model.mesh.size, K.NODES), name)
        pol = tilt(transform, s.beta, law)
        value = kl(pol)
        w = win_rate(pol, procedure, against=against)
        rows.append({"kl": value, "beta": s.beta, "win_rate": w,
                     "objective": w - s.beta * value, "_sol": s, "_pol": pol,
                     "_transform": transform})  # fmt: skip
    return rows


def solve(
    procedure: Any,
    *,
    beta: float | None,
    kl_budget: float | None,
    law: Any,
    against: str,
) -> Any:
    """The optimum of W_T - beta KL (or of W_T at KL = budget); see the module docstring."""
    from .optimal import BETA_NOTE, BETA_RANGE, OptimalTransform  # the public module sits above

    procedure, ref = _check(procedure, against, law)
    beta, kl_budget = beta_or_kl(beta, kl_budget, BETA_RANGE, BETA_NOTE)
    discrete = law if isinstance(law, DiscreteLaw) else None
    if kl_budget is not None:
        if discrete is not None:
            limit = kl_limit(Identity(), discrete)
            if not kl_budget < limit:
                raise ValueError(
                    f"kl must be in (0, {limit:.12g}) on this law (the KL of its top level "
                    f"alone), got {kl_budget!r}"
                )
    model = _Model(procedure, ref, discrete)
    sols = _solve_tracks(model, beta, kl_budget)
    name = f"optimal[{procedure.name}]"
    rows = _candidates(model, sols, law, procedure, against, name)
    if not rows:
        best_res = min(s.residual for s in sols)
        raise RuntimeError(
            f"the optimum for {procedure.name} did not converge (residual {best_res:.3g})"
        )
    key = "win_rate" if kl_budget is not None else "objective"
    rows.sort(key=lambda d: -d[key])
    distinct: list[dict[str, Any]] = []
    for d in rows:
        if all(abs(d["win_rate"] - e["win_rate"]) > 1e-9 or abs(d["kl"] - e["kl"]) > 1e-9
               for e in distinct):  # fmt: skip
            distinct.append(d)
    top = distinct[0]
    pol, transform, s = top["_pol"], top["_transform"], top["_sol"]
    if discrete is not None:
        grid = model.u
    else:
        grid = np.linspace(0.0, 1.0, 201)
    raw = transform(grid)
    span = raw[-1] - raw[0]
    values = (raw - raw[0]) / span if span > 0 else np.zeros_like(raw)
    return OptimalTransform(
        procedure=procedure, against=against, beta=s.beta, kl=top["kl"],
        win_rate=top["win_rate"], standard_win_rate=_std(pol), policy=pol,
        transform=transform, grid=grid, values=values, residual=s.residual,
        iterations=sum(x.iterations for x in sols), converged=s.converged,
        stationary_points=tuple({k: v for k, v in d.items() if not k.startswith("_")}
                                for d in distinct),
    )  # fmt: skip


def _std(pol: Any) -> float:
    from .metrics import standard_win_rate

    return standard_win_rate(pol)


def frontier(procedure: Any, kl_grid: Any, *, law: Any, against: str) -> TradeoffCurve:
    """The best W_T at each KL budget (each budget solved; 0 is the base policy)."""
    procedure, _ = _check(procedure, against, law)
    grid = np.atleast_1d(np.asarray(kl_grid, dtype=np.float64))
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0.0):
        raise ValueError("kl_grid must be a non-empty list of finite numbers >= 0")
    if isinstance(law, DiscreteLaw) and not np.all(grid < kl_limit(Identity(), law)):
        raise ValueError(
            f"kl_grid must lie in [0, {kl_limit(Identity(), law):.12g}) on this law (the KL "
            "of its top level alone)"
        )
    rows = np.empty((4, grid.size))
    for i, budget in enumerate(grid):
        if budget == 0.0:
            pol = base_policy(law)
            rows[:, i] = math.inf, 0.0, win_rate(pol, procedure, against=against), 0.5
            continue
        sol = solve(procedure, beta=None, kl_budget=float(budget), law=law, against=against)
        rows[:, i] = sol.beta, sol.kl, sol.win_rate, sol.standard_win_rate
    return TradeoffCurve(
        transform="optimal", procedure=procedure.name, against=against,
        beta=rows[0], kl=rows[1], win_rate=rows[2], standard_win_rate=rows[3],
    )  # fmt: skip
