r"""Adaptive panel quadrature for tilts of Uniform[0, 1] -- the continuous engine.

Numerical method
----------------
[0, 1] is cut at u = 1/2 into two *sides*. Side 0 is parameterised by x = u, side 1 by
x = s = 1 - u, so a node at distance 1e-200 from either end is represented exactly and every
transform is evaluated there without cancellation (see :mod:`.transforms`). Each side is a
list of panels [a, b] in its x coordinate carrying a 20-point Gauss-Legendre rule; the
initial panels of a side end at 0, 2^-10, 2^-6, 2^-4, 1/8, 3/16, 1/4, 3/8 and 1/2.

On each panel the density (and, when a win rate is asked for, the win-rate integrand) is
represented by its degree-19 Legendre interpolant. The four highest Legendre coefficients
measure how well the panel resolves it; a panel whose tail, times its half-width, exceeds
the tolerance is split -- at its midpoint, geometrically when b/a > 4, and as
[0, b/256] + [b/256, b] when it touches an end -- and only the new nodes are evaluated.
The tolerance is never asked below the rounding floor of the integrand (Phi/beta carries
an absolute error of about eps(|Phi/beta| + |shift|)), so refinement stops at the best
accuracy double precision allows. Integrals use the Gauss weights (exact to degree 39 on
each panel); the CDF at the nodes uses the spectral integration matrix of the same
interpolant, accumulated from u = 0 on side 0 and from u = 1 on side 1.

Error control: the density is resolved to ``RTOL`` in mass per panel, the KL integrand
phi(log f) to ``RTOL`` relative to KL, and the win-rate integrand to ``ATOL_WIN`` per panel.
The Legendre tail overstates the error of the Gauss sums by many orders, so the results are
far more accurate than these tolerances: against 72 random 40-digit mpmath references on
KL <= 5, N <= 64, |t| <= 300 (tests/data) the largest errors are 7e-15 (KL), 2e-15
(standard win rate) and 5e-14 (inference-time win rate).

Built-in transforms (identity, log, exponential, zero) run the whole refinement in one
kernel call; other transforms run the same rounds with Phi evaluated in Python in between.
A tilt that puts non-negligible mass closer to an end than 2**-1000 (about 1e-301), whose
normaliser diverges (a raw-reward tilt of a heavy-tailed law), or that rounding keeps from
resolving, is refused with a ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import _kernels as K
from .transforms import Transform, _Builtin

RTOL = 1e-12
ATOL_WIN = 1e-12
#: Refuse a result when rounding leaves more than this error in it.
MAX_FLOOR = 1e-8
#: Panels touching an end are not refined below this width (2**-1000).
X_FLOOR = 2.0**-1000
MAX_ROUNDS = 400
#: A density at exact pairs (u, s = 1 - u) of equal shapes.
Density = Callable[[np.ndarray, np.ndarray], np.ndarray]
MAX_PANELS = 100_000
#: The same cap for transforms evaluated in Python (user callables, quantiles, finite-K
#: calibration), whose rounding the engine can only estimate: a tilt that needs more is one
#: that chases that rounding, and is refused in seconds instead of after minutes.
MAX_PANELS_PYTHON = 1_500
#: Ends of the initial panels of each side (x = u on side 0, x = 1 - u on side 1).
_BREAKS = np.array([0.0, 2.0**-10, 2.0**-6, 2.0**-4, 2.0**-3, 0.1875, 2.0**-2, 0.375, 2.0**-1])


@dataclass(eq=False, slots=True)
class Mesh:
    """Panels of both sides, ordered by side then by increasing x, with Phi at their nodes."""

    side: np.ndarray  # (P,) int8: 0 for x = u, 1 for x = 1 - u
    a: np.ndarray  # (P,) left end in x
    b: np.ndarray  # (P,) right end in x
    phi: np.ndarray  # (P, NODES) Phi at the nodes minus the transform's offset for the side

    @property
    def size(self) -> int:
        """Number of panels."""
        return int(self.a.size)


def _evaluate(transform: Transform, side: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Phi at the nodes of panels (side, a, b), relative to the side's offset; checked."""
    x = a[:, None] + 0.5 * (b - a)[:, None] * (1.0 + K.XI[None, :])
    phi = np.empty_like(x)
    left = side == 0
    if np.any(left):
        phi[left] = transform._left(x[left].ravel()).reshape(-1, K.NODES)
    if not np.all(left):
        phi[~left] = transform._right(x[~left].ravel()).reshape(-1, K.NODES)
    bad = np.isnan(phi) | (phi == np.inf)
    if np.any(bad):
        p, i = np.argwhere(bad)[0]
        u = float(x[p, i] if side[p] == 0 else 1.0 - x[p, i])
        raise ValueError(
            f"transform {transform.name} returned {phi[p, i]} at u = {u!r}; a transform must "
            "be finite (or -inf) on (0, 1)"
        )
    return phi


@lru_cache(maxsize=256)
def _initial(transform: Transform) -> Mesh:
    panels = transform.initial_panels()
    if panels is None:
        a_side, b_side = _BREAKS[:-1], _BREAKS[1:]
        side = np.repeat(np.array([0, 1], dtype=np.int8), a_side.size)
        a = np.concatenate([a_side, a_side])
        b = np.concatenate([b_side, b_side])
    else:
        side, a, b = panels
    phi = _evaluate(transform, side, a, b)
    if np.all(phi == -np.inf):
        raise ValueError(
            f"transform {transform.name} is -inf at every node of (0, 1): its tilt gives "
            "no response any weight"
        )
    return Mesh(side, a, b, phi)


def initial_mesh(transform: Transform) -> Mesh:
    """The starting mesh for ``transform`` (its Phi values are cached per transform)."""
    try:
        return _initial(transform)
    except TypeError:  # unhashable transform: no cache
        return _initial.__wrapped__(transform)


@dataclass(eq=False, slots=True)
class Resolved:
    """A tilt resolved on a mesh: log-density and density at the nodes, and its statistics."""

    mesh: Mesh
    r: np.ndarray  # (P, NODES) log-density at the nodes
    f: np.ndarray  # (P, NODES) density at the nodes
    mass: np.ndarray  # (P,) mass of each panel
    stats: np.ndarray  # see _kernels.ST_*
    win_rate: float | None = None


# Placeholders for a first round (never written: the kernels allocate their own).
_NO_NODES = np.empty((0, K.NODES))
_NO_PANELS = np.empty(0)
_NO_STATS = np.zeros(K.N_STATS)


def _raise(status: int, win: np.ndarray, beta: float, transform: Transform) -> None:
    name = transform.name
    limit = MAX_PANELS if isinstance(transform, _Builtin) else MAX_PANELS_PYTHON
    if status == K.AT_FLOOR:
        end = "u = 1" if win[2] == 1 else "u = 0"
        raise ValueError(
            f"the tilt by {name} at beta = {beta:g} puts non-negligible mass within 1e-301 of "
            f"{end}, beyond double precision, or is not normalisable (for a raw reward, "
            "E[exp(r / beta)] is infinite); use a larger beta"
        )
    if status == K.IMPRECISE:
        raise ValueError(
            f"the tilt by {name} at beta = {beta:g} cannot be computed in double precision: "
            "Phi/beta takes astronomically large values, or the tilt is not normalisable (for a "
            "raw reward, E[exp(r / beta)] is infinite); use a larger beta"
        )
    if status == K.TOO_BIG:
        why = "the transform is too irregular to integrate to double precision"
        if not isinstance(transform, _Builtin):
            why += (
                ", or the rounding of its values, magnified by 1/beta, is what refinement "
                "chases; a larger beta avoids the latter"
            )
        raise ValueError(
            f"the tilt by {name} at beta = {beta:g} needs more than {limit} quadrature "
            f"panels: {why}"
        )
    raise RuntimeError(f"the tilt by {name} at beta = {beta:g} did not resolve")


def _check_input_rounding(transform: Transform, beta: float, mesh: Mesh, f: np.ndarray) -> None:
    """Refuse a tilt that the rounding of the transform's own argument visibly moves.

    A transform that sees its argument rounded by up to delta (a user's callable sees
    u = 1 - s rounded) computes the density at a point displaced by up to delta, which
    moves at most delta * TV(f) of mass (TV, the total variation of f along the side).
    Where that exceeds ``MAX_FLOOR`` the tilt lives on the scale of the rounding itself.
    """
    moved = 0.0
    for side, delta in enumerate(transform.input_rounding):
        if delta > 0.0:
            values = f[mesh.side == side].ravel()  # in increasing x on the side
            with np.errstate(invalid="ignore"):
                jumps = np.abs(np.diff(values))
            moved += delta * float(np.sum(np.where(np.isnan(jumps), np.inf, jumps)))
    if moved > MAX_FLOOR:
        end = "u = 1" if transform.input_rounding[1] > 0.0 else "u = 0"
        raise ValueError(
            f"the tilt by {transform.name} at beta = {beta:g} varies on the scale at which the "
            f"transform's argument is rounded next to {end} (steps of "
            f"{2.0 * max(transform.input_rounding):.2g}): that rounding moves {moved:.1e} of its "
            f"mass, more than {MAX_FLOOR:g}; use a larger beta or a built-in transform"
        )


#: The degree-19 interpolant of node values at 65 equispaced points of each panel.
_DENSE = np.polynomial.legendre.legvander(np.linspace(-1.0, 1.0, 65), K.NODES - 1) @ K.COEF


def _hidden_maxima(mesh: Mesh, beta: float, stats: np.ndarray) -> np.ndarray:
    """Panels whose Phi, interpolated between the nodes, rises where the tilt would see it.

    The density exp(Phi/beta) is judged at the nodes; a narrow interior maximum of a
    transform evaluated in Python (a user's sin(40 u) at beta = 1e-4) can fall between them
    and leave every node at e^-100 of it, so the panel looks resolved and the peak's mass is
    lost. Phi itself is smooth there: its interpolant, sampled densely, rises more than one
    unit of Phi/beta above the nodes' best. Such a panel is split if the mass it might hold,
    exp(top - log Z) times its width, is above 1e-16.
    """
    inv_beta = 1.0 / beta
    shift = np.where(mesh.side == 0, stats[K.ST_CL], stats[K.ST_CR])
    h = mesh.b - mesh.a
    finite = np.all(np.isfinite(mesh.phi), axis=1) & (h > 64.0 * K.EPS * mesh.b)
    out = np.zeros(mesh.size, dtype=np.bool_)
    if not np.any(finite):
        return out
    phi = mesh.phi[finite]
    with np.errstate(over="ignore", invalid="ignore"):
        node_top = phi.max(axis=1) * inv_beta
        dense_top = (phi @ _DENSE.T).max(axis=1) * inv_beta
        # the interpolant's own rounding, in units of Phi/beta (64 eps |Phi| / beta): a
        # rise below it says nothing (at beta = 1e-20 a constant Phi = 9 wobbles by 1e5)
        noise = 64.0 * K.EPS * np.abs(phi).max(axis=1) * inv_beta
        reach = dense_top - shift[finite] - stats[K.ST_LOGZ] + np.log(h[finite])
        out[finite] = (dense_top > node_top + 1.0 + noise) & (reach > math.log(1e-16))
    return out


def resolve(
    transform: Transform,
    beta: float,
    procedure: tuple[int, int, int, int] = (0, 0, 0, 0),
    start: Resolved | None = None,
) -> Resolved:
    """Refine the mesh until the tilt and the asked-for win rate are resolved.

    Resolves the tilt exp(Phi/beta), its KL integrand and -- when ``procedure`` =
    (k, n, kr, nr) has n > 0 -- the win rate of T = k-th of n against T' = kr-th of nr,
    from the initial mesh or from ``start``, the same tilt already resolved. Built-in
    transforms run the whole loop in one kernel call; others evaluate Phi in Python
    between rounds of the same kernels.
    """
    k, n, kr, nr = procedure
    consts = (K.XI, K.WI, K.TAIL, K.CUM)
    if start is None:  # the kernels allocate r, f, mass and stats themselves
        mesh, done = initial_mesh(transform), False
        r, f, mass, stats = _NO_NODES, _NO_NODES, _NO_PANELS, _NO_STATS
    else:
        mesh, done = start.mesh, True
        r, f, mass, stats = start.r, start.f, start.mass, start.stats.copy()
    if isinstance(transform, _Builtin):
        status, side, a, b, phi, r, f, mass, stats, win = K.resolve_builtin(
            transform.kernel, transform.kernel_param, mesh.side, mesh.a, mesh.b, mesh.phi,
            r, f, mass, stats, done, beta, k, n, kr, nr, RTOL, ATOL_WIN, MAX_FLOOR, X_FLOOR,
            MAX_PANELS, MAX_ROUNDS, *consts,
        )  # fmt: skip
        mesh = Mesh(side, a, b, phi)
    else:
        off_l, off_r = transform.offsets
        if not done:
            stats = np.zeros(K.N_STATS)  # written by the rounds below: never the placeholder
        win = np.zeros(3)
        status = K.NO_CONVERGENCE
        for _ in range(MAX_ROUNDS):
            P = mesh.size
            if not done:
                r, f, mass = np.empty((P, K.NODES)), np.empty((P, K.NODES)), np.empty(P)
            flags = np.zeros(P, dtype=np.bool_)
            status = K.refine_round(
                mesh.side, mesh.a, mesh.b, mesh.phi, off_l, off_r, beta, k, n, kr, nr, RTOL,
                ATOL_WIN, MAX_FLOOR, X_FLOOR, MAX_PANELS_PYTHON, *consts, r, f, mass, flags,
                stats, win, done, transform.rounding_ulps,
            )  # fmt: skip
            if not done:  # the tilt was computed this round
                _check_input_rounding(transform, beta, mesh, f)
                if status in (K.SPLIT, K.DONE):
                    hidden = _hidden_maxima(mesh, beta, stats)
                    if np.any(hidden):
                        flags |= hidden
                        status = K.SPLIT
            done = False
            if status != K.SPLIT:
                break
            side, a, b, phi, fresh = K.split_panels(mesh.side, mesh.a, mesh.b, mesh.phi, flags)
            phi[fresh] = _evaluate(transform, side[fresh], a[fresh], b[fresh])
            mesh = Mesh(side, a, b, phi)
    if status != K.DONE:
        _raise(status, win, beta, transform)
    w = min(max(float(win[0]), 0.0), 1.0) if n > 0 else None
    return Resolved(mesh, r, f, mass, stats, w)


# --------------------------------------------------------------------------------------
# Working with functions given by their values at the nodes of a mesh.
# --------------------------------------------------------------------------------------
def nodes(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s = 1 - u, quadrature weight) at every node, shape (P, NODES), u and s exact."""
    h = 0.5 * (mesh.b - mesh.a)
    x = mesh.a[:, None] + h[:, None] * (1.0 + K.XI[None, :])
    one = mesh.side[:, None] == 1
    return np.where(one, 1.0 - x, x), np.where(one, x, 1.0 - x), h[:, None] * K.WI[None, :]


def _legendre_series(coef: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum_j coef[:, j] P_j(z) for each row, by the three-term recurrence."""
    p_prev, p_cur = np.ones_like(z), z.copy()
    out = coef[:, 0] + coef[:, 1] * z
    for j in range(1, coef.shape[1] - 1):
        p_prev, p_cur = p_cur, ((2 * j + 1) * z * p_cur - j * p_prev) / (j + 1)
        out += coef[:, j + 1] * p_cur
    return out


def _locate(mesh: Mesh, x: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Panel index and local coordinate z in [-1, 1] of points x on their side."""
    p = np.empty(x.size, dtype=np.int64)
    for sd in (0, 1):
        sel = np.flatnonzero(left if sd == 0 else ~left)
        panels = np.flatnonzero(mesh.side == sd)
        j = np.clip(np.searchsorted(mesh.b[panels], x[sel], side="left"), 0, panels.size - 1)
        p[sel] = panels[j]
    a, b = mesh.a[p], mesh.b[p]
    return p, np.clip((2.0 * x - a - b) / (b - a), -1.0, 1.0)


def interpolate(mesh: Mesh, values: np.ndarray, u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The spectral interpolant of node values ``values`` (P, NODES) at exact pairs (u, s)."""
    u, s = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64))
    left = np.ravel(u <= s)
    p, z = _locate(mesh, np.where(left, np.ravel(u), np.ravel(s)), left)
    return _legendre_series(values[p] @ K.COEF.T, z).reshape(u.shape)


def _side_starts(mesh: Mesh, panel_total: np.ndarray) -> np.ndarray:
    """Mass of the panels before each panel on its own side, counted from that side's end."""
    starts = np.empty(mesh.size)
    for sd in (0, 1):
        panels = np.flatnonzero(mesh.side == sd)
        starts[panels] = np.concatenate([[0.0], np.cumsum(panel_total[panels])[:-1]])
    return starts


def _running_mean_coef(values: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first node value, Legendre coefficients of the running mean of the rest) per point."""
    first = values[p, 0]
    return first, (values[p] - first[:, None]) @ K.RUNNING_MEAN.T


def _from_start(
    x: np.ndarray, a: np.ndarray, b: np.ndarray, first: np.ndarray, coef: np.ndarray
) -> np.ndarray:
    """int_a^x of a panel's interpolant, given by :func:`_running_mean_coef`."""
    z = np.clip((2.0 * x - a - b) / (b - a), -1.0, 1.0)
    return (np.minimum(x, b) - a) * (first + _legendre_series(coef, z))


def _from_panel_start(mesh: Mesh, values: np.ndarray, p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int_{a_p}^{x} of the interpolant on panel p, as (x - a_p) times its running mean.

    Relative precision is kept however close x is to a_p (the integrated Legendre sum would
    cancel there: a relative error eps / (z + 1)). The value at the panel's first node is
    taken out first and added back exactly, so that the rounding in the spectral matrices
    (a few hundred eps, the same for every function) multiplies only the variation of the
    values across the panel, not their size.
    """
    return _from_start(x, mesh.a[p], mesh.b[p], *_running_mean_coef(values, p))


def _from_end(density: Density, x: np.ndarray, left: np.ndarray) -> np.ndarray:
    """int_0^x of the density on side 0 (``left``) or int_{1-x}^1 on side 1, by Gauss-Legendre.

    For points in a panel that touches an end: the rule on [0, x] itself integrates the
    density's own values (the panel resolves it, so the rule is exact to rounding), which
    keeps relative precision even where the density vanishes at the end (u^a next to 0),
    where no interpolant of the node values can.
    """
    out = np.zeros(x.shape)
    pos = x > 0.0
    t = 0.5 * x[pos, None] * (1.0 + K.XI[None, :])
    side0 = left[pos, None]
    u = np.where(side0, t, 1.0 - t)
    s = np.where(side0, 1.0 - t, t)
    out[pos] = 0.5 * x[pos] * (density(u, s) @ K.WI)
    return out


def accumulate(
    mesh: Mesh,
    values: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    density: Density | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """int_0^u v and int_u^1 v of the spectral interpolant of ``values`` (P, NODES).

    Points are exact pairs (u, s = 1 - u); each integral is accumulated from the nearer end
    of [0, 1] and the other is the total minus it. With ``density`` (the function whose
    node values ``values`` are, at exact pairs), points in the panels that touch an end
    integrate it directly (:func:`_from_end`).
    """
    u, s = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64))
    panel_total = 0.5 * (mesh.b - mesh.a) * (values @ K.WI)
    total = float(panel_total.sum())
    starts = _side_starts(mesh, panel_total)
    left = np.ravel(u <= s)
    x = np.where(left, np.ravel(u), np.ravel(s))
    p, _ = _locate(mesh, x, left)
    near = starts[p] + _from_panel_start(mesh, values, p, x)
    if density is not None:
        end = mesh.a[p] == 0.0
        if np.any(end):
            near[end] = _from_end(density, x[end], left[end])
    lower = np.where(left, near, total - near).reshape(u.shape)
    upper = np.where(left, total - near, near).reshape(u.shape)
    return lower, upper


def quantile(
    mesh: Mesh, values: np.ndarray, q: np.ndarray, density: Density | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The pair (u, s = 1 - u) with int_0^u v = q int_0^1 v, for a density's node values.

    The mass q (or 1 - q, when the point lies on side 1) is located in its panel from the
    side's own end, then the panel's integral -- (x - a) R(z), or with ``density`` the
    density itself integrated from the end in the end panels, as in :func:`accumulate` --
    is inverted by Newton's method kept inside the panel, so quantiles down to the smallest
    doubles keep relative precision.
    """
    q = np.asarray(q, dtype=np.float64)
    flat = q.ravel()
    panel_total = 0.5 * (mesh.b - mesh.a) * (values @ K.WI)
    total = float(panel_total.sum())
    starts = _side_starts(mesh, panel_total)
    ends = starts + panel_total
    mass0 = float(panel_total[mesh.side == 0].sum())
    left = flat * total <= mass0
    target = np.where(left, flat * total, (1.0 - flat) * total)  # from the side's end
    p = np.empty(flat.size, dtype=np.int64)
    for sd in (0, 1):
        sel = np.flatnonzero(left if sd == 0 else ~left)
        panels = np.flatnonzero(mesh.side == sd)
        j = np.searchsorted(ends[panels], target[sel], side="right")
        p[sel] = panels[np.minimum(j, panels.size - 1)]
    rest = np.clip(target - starts[p], 0.0, panel_total[p])
    a, b = mesh.a[p], mesh.b[p]
    # Unknown: d = x - a in (0, b - a]. Newton on log(int_a^x) against log(d), which is
    # linear next to the panel's start whether the density is positive there (slope 1) or
    # vanishes like a power (slope > 1), so tiny masses take a step or two.
    width = b - a
    lo, hi = np.zeros(flat.size), width.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(panel_total[p] > 0.0, width * (rest / panel_total[p]), 0.0)
    d = np.clip(d, 0.0, width)
    first, mean_coef = _running_mean_coef(values, p)
    coef = values[p] @ K.COEF.T
    idx = np.flatnonzero((rest > 0.0) & (d > 0.0))
    for _ in range(100):  # Newton converges in a few steps; bisection only guards it
        if idx.size == 0:
            break
        di, ai, bi, ri = d[idx], a[idx], b[idx], rest[idx]
        z = np.clip((2.0 * di - (bi - ai)) / (bi - ai), -1.0, 1.0)
        mass = di * (first[idx] + _legendre_series(mean_coef[idx], z))
        dens = _legendre_series(coef[idx], z)
        end = ai == 0.0
        if density is not None and np.any(end):
            le = left[idx][end]
            mass[end] = _from_end(density, di[end], le)
            xe = di[end]
            dens[end] = density(np.where(le, xe, 1.0 - xe), np.where(le, 1.0 - xe, xe))
        lo[idx] = np.where(mass <= ri, di, lo[idx])
        hi[idx] = np.where(mass >= ri, di, hi[idx])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = di * np.exp(-np.log(mass / ri) * mass / (di * dens))
        newton = np.isfinite(step) & (step >= lo[idx]) & (step <= hi[idx]) & (step > 0.0)
        geometric = (lo[idx] > 0.0) & (hi[idx] > 4.0 * lo[idx])
        mid = np.where(geometric, np.sqrt(lo[idx]) * np.sqrt(hi[idx]), 0.5 * (lo[idx] + hi[idx]))
        mid = np.where(lo[idx] == 0.0, hi[idx] * 2.0**-64, mid)  # toward the start, fast
        new = np.where(newton, step, mid)
        done = (
            (mass == ri)
            | (newton & (np.abs(step - di) <= 4.0 * K.EPS * di))
            | (hi[idx] <= lo[idx] * (1.0 + 4.0 * K.EPS))
        )
        d[idx] = np.where(mass == ri, di, new)
        idx = idx[~done]
    x = a + d
    x = x.reshape(q.shape)
    left = left.reshape(q.shape)
    return np.where(left, x, 1.0 - x), np.where(left, 1.0 - x, x)


def cumulative_matrices(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Dense (L, U) with (L v)_i = int_0^{u_i} v and (U v)_i = int_{u_i}^1 v, v at the nodes.

    Row i of the operator on node i's own side is exact spectral integration from that
    side's end; the other is the total minus it (L + U = the row of weights).
    """
    P, m = mesh.size, K.NODES
    n = P * m
    h = 0.5 * (mesh.b - mesh.a)
    near = np.zeros((n, n))
    for sd in (0, 1):
        before = np.zeros(n)
        for p in np.flatnonzero(mesh.side == sd):
            rows = slice(p * m, (p + 1) * m)
            near[rows] = before[None, :]
            near[rows, rows] += h[p] * K.CUM
            before[rows] = h[p] * K.WI
    weights = (h[:, None] * K.WI[None, :]).ravel()
    one = np.repeat(mesh.side == 1, m)
    L = np.where(one[:, None], weights[None, :] - near, near)
    U = np.where(one[:, None], near, weights[None, :] - near)
    return L, U
