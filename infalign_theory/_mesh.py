r"""Adaptive panel quadrature for tilts of Uniform[0, 1] -- the continuous engine.

Numerical method
----------------
[0, 1] is cut at u = 1/2 into two *sides*. Side 0 is parameterised by x = u, side 1 by
x = s = 1 - u, so a node at distance 1e-200 from either end is represented exactly and every
transform is evaluated there without cancellation (see :mod:`.transforms`). Each side is a
list of panels [a, b] in its x coordinate carrying a 20-point Gauss-Legendre rule; the
initial panels are octaves [2^-k-1, 2^-k], k = 1..12, plus [0, 2^-13].

On each panel the density (and, when a win rate is asked for, the win-rate integrand) is
represented by its degree-19 Legendre interpolant. The four highest Legendre coefficients
measure how well the panel resolves it; a panel whose tail, times its half-width, exceeds
the tolerance is split -- at its midpoint, geometrically when b/a > 4, and as
[0, b/256] + [b/256, b] when it touches an end -- and only the new nodes are evaluated.
The tolerance is never asked below the rounding floor of the integrand (the value of
Phi/beta carries an absolute error of about eps(|Phi/beta| + |shift|)), so refinement stops
at the best accuracy double precision allows. Integrals use the Gauss weights (exact to
degree 39 on each panel); the CDF at the nodes uses the spectral integration matrix of the
same interpolant, accumulated from u = 0 on side 0 and from u = 1 on side 1.

Error control: the density is resolved to ``RTOL`` in mass per panel, the KL integrand
phi(log f) to ``RTOL`` relative to KL, and the win-rate integrand to ``ATOL_WIN`` per panel.
Test-suite references (mpmath at 30+ digits and closed forms) show errors below 1e-12 on
KL <= 5, N <= 64, |t| <= 300.

A tilt that puts non-negligible mass closer to an end than 2**-1000 (about 1e-301), or whose
normaliser diverges (a raw-reward tilt of a heavy-tailed law), is refused with a ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import _kernels as K
from .transforms import Transform

RTOL = 1e-14
ATOL_WIN = 1e-14
#: Refuse a result when rounding leaves more than this error in it.
MAX_FLOOR = 1e-8
#: Panels touching an end are not refined below this width (2**-1000).
X_FLOOR = 2.0**-1000
MAX_ROUNDS = 400
MAX_PANELS = 200_000
_INITIAL_OCTAVES = 12


@dataclass(frozen=True, eq=False)
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

    def nodes(self) -> np.ndarray:
        """Node coordinates x, shape (P, NODES)."""
        return self.a[:, None] + 0.5 * (self.b - self.a)[:, None] * (1.0 + K.XI[None, :])

    def u_and_s(self) -> tuple[np.ndarray, np.ndarray]:
        """The node pairs (u, s = 1 - u), each exact on its own side."""
        x = self.nodes()
        one = self.side[:, None] == 1
        return np.where(one, 1.0 - x, x), np.where(one, x, 1.0 - x)

    def weights(self) -> np.ndarray:
        """Quadrature weights in u, shape (P, NODES)."""
        return 0.5 * (self.b - self.a)[:, None] * K.WI[None, :]


def _evaluate(transform: Transform, side: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
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
        xv = x[p, i]
        u = xv if side[p] == 0 else 1.0 - xv
        raise ValueError(
            f"transform {transform.name} returned {phi[p, i]} at u = {u!r}; a transform must "
            "be finite (or -inf) on (0, 1)"
        )
    return phi


@lru_cache(maxsize=256)
def _initial(transform: Transform) -> Mesh:
    ks = np.arange(1, _INITIAL_OCTAVES + 1)
    a_side = np.concatenate([[0.0], 2.0 ** -(ks[::-1] + 1.0)])
    b_side = np.concatenate([[2.0 ** -(_INITIAL_OCTAVES + 1.0)], 2.0 ** -ks[::-1]])
    side = np.repeat(np.array([0, 1], dtype=np.int8), a_side.size)
    a = np.concatenate([a_side, a_side])
    b = np.concatenate([b_side, b_side])
    mesh = Mesh(side, a, b, _evaluate(transform, side, a, b))
    for arr in (mesh.side, mesh.a, mesh.b, mesh.phi):
        arr.setflags(write=False)
    return mesh


def initial_mesh(transform: Transform) -> Mesh:
    """The starting mesh for ``transform`` (its Phi values are cached per transform)."""
    try:
        return _initial(transform)
    except TypeError:  # unhashable transform: no cache
        return _initial.__wrapped__(transform)


def split(mesh: Mesh, flags: np.ndarray, transform: Transform) -> Mesh:
    """Split the flagged panels in two, evaluating Phi at the new nodes only."""
    a, b = mesh.a[flags], mesh.b[flags]
    with np.errstate(divide="ignore"):
        ratio = np.where(a > 0.0, b / np.where(a > 0.0, a, 1.0), np.inf)
    mid = np.where(
        a == 0.0, b / 256.0, np.where(ratio > 4.0, np.sqrt(a) * np.sqrt(b), 0.5 * (a + b))
    )
    new_a = np.stack([a, mid], axis=1).ravel()
    new_b = np.stack([mid, b], axis=1).ravel()
    new_side = np.repeat(mesh.side[flags], 2)
    new_phi = _evaluate(transform, new_side, new_a, new_b)
    # Each kept panel takes one slot, each split panel two, in the original order.
    counts = np.where(flags, 2, 1)
    total = int(counts.sum())
    slot = np.cumsum(counts) - counts
    side = np.empty(total, dtype=np.int8)
    aa = np.empty(total)
    bb = np.empty(total)
    phi = np.empty((total, K.NODES))
    keep = ~flags
    ks = slot[keep]
    side[ks], aa[ks], bb[ks], phi[ks] = mesh.side[keep], mesh.a[keep], mesh.b[keep], mesh.phi[keep]
    ss = np.stack([slot[flags], slot[flags] + 1], axis=1).ravel()
    side[ss], aa[ss], bb[ss], phi[ss] = new_side, new_a, new_b, new_phi
    return Mesh(side, aa, bb, phi)


@dataclass(frozen=True, eq=False)
class Resolved:
    """A tilt resolved on a mesh: the log-density at the nodes and its statistics."""

    mesh: Mesh
    r: np.ndarray  # (P, NODES) log-density at the nodes
    mass: np.ndarray  # (P,) mass of each panel
    stats: np.ndarray  # see _kernels.ST_*
    rounds: int


def _refuse_if_at_floor(mesh: Mesh, flags: np.ndarray, beta: float, transform: Transform) -> None:
    stuck = flags & (mesh.a == 0.0) & (mesh.b <= X_FLOOR)
    if np.any(stuck):
        end = "u = 1" if mesh.side[np.argmax(stuck)] == 1 else "u = 0"
        raise ValueError(
            f"the tilt by {transform.name} at beta = {beta:g} puts non-negligible mass within "
            f"1e-301 of {end}, beyond double precision, or is not normalisable (for a raw "
            "reward, E[exp(r / beta)] is infinite); use a larger beta"
        )
    if mesh.size > MAX_PANELS:
        raise RuntimeError(
            f"the tilt by {transform.name} at beta = {beta:g} needs more than {MAX_PANELS} "
            "quadrature panels; the transform is too irregular to integrate"
        )


def _refuse_if_imprecise(floor: float, beta: float, transform: Transform) -> None:
    if floor > MAX_FLOOR:
        raise ValueError(
            f"the tilt by {transform.name} at beta = {beta:g} cannot be computed in double "
            f"precision (rounding leaves an error of about {floor:.1g}): Phi/beta takes "
            "astronomically large values, or the tilt is not normalisable (for a raw reward, "
            "E[exp(r / beta)] is infinite); use a larger beta"
        )


def resolve_tilt(transform: Transform, beta: float, mesh: Mesh | None = None) -> Resolved:
    """Refine until the tilt exp(Phi/beta) and its KL integrand are resolved."""
    mesh = initial_mesh(transform) if mesh is None else mesh
    for rounds in range(MAX_ROUNDS):
        P = mesh.size
        r = np.empty((P, K.NODES))
        mass = np.empty(P)
        flags = np.empty(P, dtype=np.bool_)
        stats = np.empty(K.N_STATS)
        off_l, off_r = transform.offsets
        K.tilt_pass(
            mesh.side, mesh.a, mesh.b, mesh.phi, off_l, off_r, beta, RTOL,
            K.XI, K.WI, K.TAIL, r, mass, flags, stats,
        )  # fmt: skip
        if not flags.any():
            _refuse_if_imprecise(stats[K.ST_FLOOR], beta, transform)
            return Resolved(mesh, r, mass, stats, rounds)
        _refuse_if_at_floor(mesh, flags, beta, transform)
        mesh = split(mesh, flags, transform)
    raise RuntimeError(f"the tilt by {transform.name} at beta = {beta:g} did not resolve")


def resolve_win(
    resolved: Resolved, transform: Transform, beta: float, k: int, n: int, kr: int, nr: int
) -> tuple[float, Resolved]:
    """W(T(pi) ≻ T'(base)) on a mesh refined until the win-rate integrand is resolved."""
    res = resolved
    for _ in range(MAX_ROUNDS):
        mesh = res.mesh
        flags = np.empty(mesh.size, dtype=np.bool_)
        w, floor = K.win_pass(
            mesh.side, mesh.a, mesh.b, res.r, k, n, kr, nr, ATOL_WIN, RTOL,
            K.XI, K.WI, K.CUM, K.TAIL, flags,
        )  # fmt: skip
        if not flags.any():
            _refuse_if_imprecise(floor, beta, transform)
            return min(max(float(w), 0.0), 1.0), res
        _refuse_if_at_floor(mesh, flags, beta, transform)
        res = resolve_tilt(transform, beta, split(mesh, flags, transform))
    raise RuntimeError(f"the win rate of the tilt by {transform.name} did not resolve")
