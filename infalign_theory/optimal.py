r"""The InfAlign optimum, computed: the policy maximising W_T - beta KL, and its transform.

InfAlign (Balashankar, Sun, et al., arXiv 2412.19792), Lemma 1 and Theorem 1: for a CDF-map
procedure T the maximiser of :math:`W_T(\pi) - \beta\,\mathrm{KL}(\pi\|\pi_{\rm ref})` is
KL-regularised RL with a transformed reward, :math:`\pi \propto \pi_{\rm ref}\,e^{R/\beta}`,
where R is the first variation of W_T at the optimum itself:

.. math:: R(v) = \int_0^v g'(G(u))\, g_{\rm ref}'(u)\, du \quad \text{(continuous)}, \qquad
          R_i = \sum_{j \ge i} g'(P_j)\,\frac{B_{j-1} - B_{j+1}}{2} \quad \text{(levels)},

with G (P) the optimum's CDF, g the procedure's CDF map and g_ref that of the base's side
(T itself, or sampling for ``against="sample"``).

Method
------
The unknown is the log-density y at the nodes of a quadrature mesh (continuous) or the
log-ratio on the levels (discrete). The fixed point y = T(y) = R[G(e^y)]/beta - log Z is
solved by Newton's method with the exact Jacobian
:math:`T'(y) = \beta^{-1}(I - \mathbf 1 t^\top)\,L\,\mathrm{diag}(g''(G) g'_{\rm ref})\,
\partial G/\partial y`, L the cumulative-integration operator, t the tilt's weights. In
increasing-u order L is block lower triangular, so I - T'(y) is a block-triangular matrix
plus a rank-two term: each Newton system costs one sweep of 20 x 20 panel solves and a
2 x 2 Woodbury correction (O(n), not O(n^3)). For a KL budget the system is *bordered*:
log beta is a further unknown and KL(y) = budget a further equation -- the KKT conditions of
max W_T s.t. KL = budget, valid also where the frontier is not concave. The budget is met
to 1e-11 relative (KL summed as E[1 + (z - 1) e^z], z = log(pi/pi_ref), which has no
cancellation near the base).

Near the base (beta -> inf) y = (R_0 - E R_0)/beta + O(beta^-2), R_0 the first variation at
the base (:class:`BaseVariation`, a scaled Beta CDF for an order statistic), and
KL = Var(R_0)/(2 beta^2) + O(beta^-3). The solution starts there: the tilt by R_0 at
beta_0 = 20 spread(R_0) (or larger, for a smaller budget), where Newton converges in a few
steps, and is continued in log KL (or log beta) to the goal with a tangent predictor (one
more linear solve). Steps are at most 1 in log KL; they shrink when Newton needed many
iterations and halve when it failed. Newton's line search decreases the RMS of the residual
and the KL gap, each in units of its tolerance; updates are linear in beta (y - max y), so
that the 1/beta scaling of log pi far from the mass is followed exactly; a bordered solve
first fits beta to its shape (1/beta = Cov(y, R)/Var(R) under pi). After each stage the
library's own refinement test runs on the solution's density and win-rate integrand, the
flagged panels are split, the solution interpolated onto them and Newton repeated; once the
mesh has doubled it is rebuilt from scratch for the solution's transform (refinement alone
would keep every panel a moving feature ever needed). KL, W_std and W_T of the result are
computed by the library on the policy rebuilt from the transform, which must reproduce the
solver's KL and W_T to 1e-9.

Where beta >= 1e8 spread(R_0) (and beta > n^2 unless T is Best-of-N, which makes the objective
strictly concave) the tilt by R_0 is the answer, its shape right to 1e-8 relative and W_T to
rounding; Newton would lose the digits of log pi ~ R_0/beta to the normaliser's rounding.
beta = 1e300 gives the base policy (KL 0, W_T = 1/2 against T(pi_ref)) with R_0 as transform.

Convergence means max|y - T(y)| < 1e-11 (relative to the spread of y where that is below 1),
or below the level rounding allows and the residual can affect: where W_T nearly saturates
(beta ~ 1e-9) T = R/beta carries an error of eps max|R|/beta, and a residual d moves W_T by
only about max|R| d. Once W_T is within 1e-10 of its supremum (1 in the continuous case; all
mass on the top level on a discrete law), a larger KL (or a smaller beta) cannot raise it by
more than that: the continuation stops and the solution is returned as ``saturated``, its KL
below the budget (or its beta above the one asked for, down to beta = 1e-300).

Best-of-N makes W_T concave in the policy, so the stationary point is the unique optimum.
Otherwise (Worst-of-N is convex) several stationary points may exist: the solver also starts
from exponential transforms with t of the suitable sign at the goal, and on a discrete law
from the base cut off below each of up to twelve levels (large N makes W_T nearly a step
function of the level CDF, with plateaus no path from the base crosses); it keeps every
distinct stationary point it finds (``stationary_points``) and returns the one with the
highest objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from . import _kernels as K
from . import _mesh
from ._validate import beta_or_kl, choice
from .calibration import level_midpoints
from .curves import TradeoffCurve, beta_for_kl, kl_limit
from .laws import ContinuousLaw, DiscreteLaw, RewardLaw
from .metrics import AGAINST, kl, standard_win_rate, win_rate
from .policy import DiscretePolicy, Policy, base_policy, tilt
from .procedures import OrderStatistic
from .transforms import Exponential, Identity, LevelValues, Transform

#: Newton stops when the fixed-point residual max|y - T(y)| falls below this.
TOL = 1e-11
#: The reported KL meets a budget to this relative accuracy (and the policy rebuilt from the
#: transform reproduces the solver's KL and W_T to it), unless the solution is saturated.
KL_RTOL = 1e-9
#: KLs below this are the base's to every digit of W_T: the rebuilt policy's check ignores
#: their ratio.
KL_FLOOR = 1e-30
#: Once W_T is this close to 1 a larger KL budget can raise it by less than this: the
#: continuation stops there and reports the solution as ``saturated``.
SATURATION = 1e-10
_MAX_NEWTON = 60
#: Newton iterations for a continuation stage: from the tangent predictor Newton converges
#: in a few; one that has not in this many is better retried with half the step.
_MAX_NEWTON_STAGE = 20
#: Stages one continuation may take (the tests' longest path takes about 200): more means
#: Newton is not converging (a wrong Jacobian), and the start is given up.
_MAX_STAGES = 2000
#: Where beta >= NEAR_BASE x spread(R_0) the tilt by R_0 (first variation at the base) is the
#: optimum to a relative shape error below 1e-8, and is returned as such.
NEAR_BASE = 1e8
#: The longest continuation step, in log KL or log beta: a longer one can carry the tangent
#: predictor past saturation onto a mesh that cannot resolve what it predicts.
_MAX_STEP = 1.0
#: log beta is kept in [log 1e-300, log 1e300]: beyond it 1/beta or R/beta leaves double
#: precision (and the tilt is the base policy, or saturated, long before).
BETA_RANGE = (1e-300, 1e300)
BETA_NOTE = (
    " (beyond 1e300 the optimum is the base policy to double precision; below 1e-300 the tilt "
    "leaves it)"
)
LOG_BETA_MIN, LOG_BETA_MAX = math.log(BETA_RANGE[0]), math.log(BETA_RANGE[1])
#: The largest N the solver accepts: Best-of-N, Worst-of-N and k-th of N are exercised up to
#: here (continuous and discrete, both comparisons, KL budgets from 1e-15 to 5, beta from
#: 1e-300 to 1e300); larger N is refused rather than attempted.
MAX_N = 1024


# --------------------------------------------------------------------------------------
# The transform found: R as the integral of node values on a mesh.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Interpolated(Transform):
    """A transform given by its values at the nodes of a quadrature mesh.

    Evaluated by the piecewise spectral interpolant of those values, at exact pairs
    (u, 1 - u), so points next to either end keep full precision.
    """

    mesh: _mesh.Mesh
    values: np.ndarray  # (P, NODES)
    label: str = "interpolated"
    __hash__ = None  # type: ignore[assignment]  # (arrays inside: never cached by identity)

    @property
    def name(self) -> str:  # noqa: D102
        return self.label

    def _left(self, u: np.ndarray) -> np.ndarray:
        return _mesh.interpolate(self.mesh, self.values, u, 1.0 - u)

    def _right(self, s: np.ndarray) -> np.ndarray:
        return _mesh.interpolate(self.mesh, self.values, 1.0 - s, s)


# --------------------------------------------------------------------------------------
# The fixed-point map and its derivatives, continuous and discrete.
# --------------------------------------------------------------------------------------
def _density(k: int, n: int, F: np.ndarray, Fc: np.ndarray) -> np.ndarray:
    """g'(F) for the k-th smallest of n (the Beta(k, n - k + 1) density), from exact pairs."""
    out = np.empty(F.size)
    K.cdf_map_prime_array(k, n, np.clip(F, 0.0, 1.0).ravel(), np.clip(Fc, 0.0, 1.0).ravel(), out)
    return out.reshape(F.shape)


def _slopes(k: int, n: int, F: np.ndarray, Fc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g'(F) and g''(F) for the k-th smallest of n, from exact pairs (F, 1 - F).

    g'' by the Beta-density identity g''_{k,n} = n (g'_{k-1,n-1} - g'_{k,n-1}), which has no
    division by F or 1 - F and so no overflow next to the ends.
    """
    g1 = _density(k, n, F, Fc)
    if n == 1:
        return g1, np.zeros_like(g1)
    g2 = np.zeros_like(g1)
    if k > 1:
        g2 += n * _density(k - 1, n - 1, F, Fc)
    if k < n:
        g2 -= n * _density(k, n - 1, F, Fc)
    return g1, g2


@dataclass(frozen=True)
class BaseVariation(Transform):
    r"""The first variation of W_T at the base.

    :math:`R_0(v) = \int_0^v g'(u)\,g_{\rm ref}'(u)\,du`.

    The product of the two Beta(k, n - k + 1) densities is a Beta density itself, so
    :math:`R_0 = C\,I_v(a, b)` with a = k + k_ref - 1, b = n - k + n_ref - k_ref + 1 and
    :math:`C = B(a, b) / (B(k, n-k+1)\,B(k_{\rm ref}, n_{\rm ref}-k_{\rm ref}+1))`: the CDF
    map of the a-th smallest of n + n_ref - 1, scaled. Near the base (beta -> inf) the optimum
    is the tilt by R_0, with KL = Var(R_0) / (2 beta^2) + O(beta^-3).
    """

    procedure: OrderStatistic
    reference: OrderStatistic
    label: str = ""

    @property
    def shape(self) -> OrderStatistic:
        """The order statistic whose CDF map R_0 is proportional to."""
        p, r = self.procedure, self.reference
        return OrderStatistic(p.k + r.k - 1, p.n + r.n - 1)

    @property
    def scale(self) -> float:
        """C, the value R_0(1) (R_0(0) = 0)."""
        p, r, sh = self.procedure, self.reference, self.shape
        return math.exp(
            special.betaln(sh.k, sh.n - sh.k + 1)
            - special.betaln(p.k, p.n - p.k + 1)
            - special.betaln(r.k, r.n - r.k + 1)
        )

    @property
    def name(self) -> str:  # noqa: D102
        return self.label or f"first variation at the base [{self.procedure.name}]"

    @property
    def offsets(self) -> tuple[float, float]:  # noqa: D102
        return (0.0, self.scale)

    def _values(self, F: np.ndarray, Fc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat, flatc = np.ravel(F).astype(np.float64), np.ravel(Fc).astype(np.float64)
        out, outc = np.empty(flat.size), np.empty(flat.size)
        K.cdf_map_array(self.shape.k, self.shape.n, flat, flatc, out, outc)
        return out.reshape(np.shape(F)), outc.reshape(np.shape(F))

    def _left(self, u: np.ndarray) -> np.ndarray:
        return self.scale * self._values(u, 1.0 - u)[0]

    def _right(self, s: np.ndarray) -> np.ndarray:
        return -self.scale * self._values(1.0 - s, s)[1]


class _Model:
    """What the continuous and the discrete fixed-point maps share.

    The unknown y is a log-density against the quadrature (or level) weights ``w``.
    """

    w: np.ndarray

    def dT_dlogbeta(self, st: dict[str, Any]) -> np.ndarray:
        return -(st["R"] - float(st["t"] @ st["R"])) / st["beta"]

    def kl(self, y: np.ndarray) -> tuple[float, np.ndarray]:
        return _kl(self.w, y)

    def normalise(self, y: np.ndarray) -> np.ndarray:
        return _normalise(self.w, y)


class _Continuous(_Model):
    """The fixed-point map on one mesh of [0, 1], unknowns in increasing-u order.

    In that order the cumulative-integration operator L is block lower triangular: panel p
    has its own spectral block B_p and sees every earlier panel q through the row of
    weights w_q. The Newton matrix J = I - T'(y) is (I - A) plus a rank-two term, with
    A = beta^-1 L diag(g'' g_ref') L diag(f), so J^-1 costs one sweep of 20 x 20 panel
    solves (the scalars integral(f x) and integral(g'' g_ref' z) carried from panel to
    panel) and a 2 x 2 Woodbury correction -- never a dense n x n factorisation.
    """

    def __init__(self, mesh: _mesh.Mesh, proc: OrderStatistic, ref: OrderStatistic):
        self.mesh = mesh
        P, m = mesh.size, K.NODES
        order = np.concatenate(
            [np.flatnonzero(mesh.side == 0), np.flatnonzero(mesh.side == 1)[::-1]]
        )
        idx = np.arange(P * m).reshape(P, m)
        self.perm = np.concatenate([idx[p] if mesh.side[p] == 0 else idx[p][::-1] for p in order])
        h = 0.5 * (mesh.b - mesh.a)[order]
        right = mesh.side[order] == 1
        lower_of_right = (np.ones((m, 1)) * K.WI[None, :] - K.CUM)[::-1, ::-1]
        self.B = h[:, None, None] * np.where(
            right[:, None, None], lower_of_right[None], K.CUM[None]
        )
        self.wloc = h[:, None] * np.where(right[:, None], K.WI[::-1][None, :], K.WI[None, :])
        u, s, w = (v.ravel()[self.perm] for v in _mesh.nodes(mesh))
        self.u, self.s, self.w = u, s, w
        self.proc = proc
        self.ref = ref
        self.dref, _ = _slopes(ref.k, ref.n, u, s)

    # -- conversions between increasing-u order and the mesh's (P, NODES) layout ----------
    def to_mesh(self, v: np.ndarray) -> np.ndarray:
        out = np.empty(v.size)
        out[self.perm] = v
        return out.reshape(self.mesh.size, K.NODES)

    def from_mesh(self, v: np.ndarray) -> np.ndarray:
        return v.ravel()[self.perm]

    def _accumulated(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(int_0^u v on side 0, int_u^1 v on side 1) at the nodes, each exact from its end."""
        mesh = self.mesh
        lo = np.empty((mesh.size, K.NODES))
        up = np.empty((mesh.size, K.NODES))
        K.cdf_at_nodes(mesh.side, mesh.a, mesh.b, self.to_mesh(v), K.CUM, K.WI, lo, up)
        return self.from_mesh(lo), self.from_mesh(up)

    def _L(self, v: np.ndarray) -> np.ndarray:
        P, m = self.B.shape[:2]
        v = v.reshape(P, m, -1)
        local = np.matmul(self.B, v)
        tot = np.einsum("pj,pjr->pr", self.wloc, v)
        return (local + (np.cumsum(tot, axis=0) - tot)[:, None, :]).reshape(P * m, -1)

    def _Lt(self, v: np.ndarray) -> np.ndarray:
        P, m = self.B.shape[:2]
        v = v.reshape(P, m, -1)
        local = np.matmul(self.B.transpose(0, 2, 1), v)
        tot = v.sum(axis=1)
        after = np.cumsum(tot[::-1], axis=0)[::-1] - tot
        return (local + self.wloc[:, :, None] * after[:, None, :]).reshape(P * m, -1)

    def tilt_map(self, y: np.ndarray, beta: float) -> dict[str, Any]:
        f = np.exp(_normalise(self.w, y))
        right = np.repeat(self.mesh.side == 1, K.NODES)[self.perm]
        lo, up = self._accumulated(f)
        G, Gc = np.where(right, 1.0 - up, lo), np.where(right, up, 1.0 - lo)
        g1, g2 = _slopes(self.proc.k, self.proc.n, G, Gc)
        q = g1 * self.dref
        qlo, qup = self._accumulated(q)
        R = np.where(right, float(self.w @ q) - qup, qlo)
        ell = R / beta
        T = ell - float(ell.max())
        T -= math.log(float(self.w @ np.exp(T)))
        return {
            "T": T,
            "f": f,
            "G": G,
            "D2": g2 * self.dref,
            "q": q,
            "R": R,
            "beta": beta,
            "t": self.w * np.exp(T),
            "dT_dlogbeta": None,
        }

    def jacobian_solve(self, st: dict[str, Any], rhs: np.ndarray) -> np.ndarray:
        """J^-1 rhs for J = I - T'(y) at the state ``st``; rhs of shape (n, r)."""
        beta, f, D2, t = st["beta"], st["f"], st["D2"], st["t"]
        P, m = self.B.shape[:2]
        wf = self.w * f
        a = self._L(D2 * st["G"])[:, 0] / beta
        At = f * self._Lt(D2 * self._Lt(t)[:, 0])[:, 0] / beta
        Uc = np.column_stack([a, np.ones_like(a)])
        Vc = np.column_stack([wf, At - float(t @ a) * wf])
        cols = np.column_stack([rhs, Uc])  # solve (I - A) for all at once
        r = cols.shape[1]
        fp, dp = f.reshape(P, m), D2.reshape(P, m)
        BD = self.B * dp[:, None, :]
        Mp = np.eye(m)[None] - np.matmul(BD, self.B * fp[:, None, :]) / beta
        e = np.full((P, m, 1), 1.0 / beta)
        c = (BD.sum(axis=2) / beta)[:, :, None]
        X = np.linalg.solve(Mp, np.concatenate([cols.reshape(P, m, r), e, c], axis=2))
        out = np.empty((P, m, r))
        K.panel_sweep(np.ascontiguousarray(X), self.B, fp, dp, self.wloc, r, out)
        Y = out.reshape(P * m, r)
        Yb, Yu = Y[:, : rhs.shape[1]], Y[:, rhs.shape[1] :]
        S = np.eye(2) + Vc.T @ Yu
        return Yb - Yu @ np.linalg.solve(S, Vc.T @ Yb)

    def summary(
        self,
        y: np.ndarray,
        key: tuple[int, int, int, int],
        refine: bool = True,
        noise: float = 0.0,
    ) -> tuple[int, Any]:
        """Run one refinement round of the library's engine on the density e^y.

        Returns DONE with (KL, W_std, W_T), or SPLIT with the refined model and y
        interpolated onto it. Without ``refine`` the numbers are computed on this mesh as
        it is.
        """
        mesh = self.mesh
        phi = self.to_mesh(self.normalise(y))
        P = mesh.size
        r = np.empty((P, K.NODES))
        f = np.empty((P, K.NODES))
        mass = np.empty(P)
        flags = np.zeros(P, dtype=np.bool_)
        stats = np.zeros(K.N_STATS)
        win = np.zeros(3)
        if not refine:
            K.tilt_pass(
                mesh.side,
                mesh.a,
                mesh.b,
                phi,
                0.0,
                0.0,
                1.0,
                _mesh.RTOL,
                K.XI,
                K.WI,
                K.TAIL,
                r,
                f,
                mass,
                flags,
                stats,
                4.0,
            )
            w, _ = K.win_pass(
                mesh.side,
                mesh.a,
                mesh.b,
                f,
                *key,
                _mesh.ATOL_WIN,
                _mesh.RTOL,
                K.XI,
                K.WI,
                K.CUM,
                K.TAIL,
                flags,
            )
            return K.DONE, (float(stats[K.ST_KL]), float(stats[K.ST_WSTD]), float(w))
        # The tests may not ask for more than the solution's own accuracy: y carries the
        # Newton residual, so densities and win-rate integrands carry that relative error.
        status = K.refine_round(
            mesh.side,
            mesh.a,
            mesh.b,
            phi,
            0.0,
            0.0,
            1.0,
            *key,
            max(_mesh.RTOL, 10.0 * noise),
            max(_mesh.ATOL_WIN, 10.0 * noise),
            _mesh.MAX_FLOOR,
            _mesh.X_FLOOR,
            _mesh.MAX_PANELS,
            K.XI,
            K.WI,
            K.TAIL,
            K.CUM,
            r,
            f,
            mass,
            flags,
            stats,
            win,
            False,
            4.0,
        )
        if status == K.DONE:
            return status, (float(stats[K.ST_KL]), float(stats[K.ST_WSTD]), float(win[0]))
        if status != K.SPLIT:
            return status, None
        side, a, b, new_phi, fresh = K.split_panels(mesh.side, mesh.a, mesh.b, phi, flags)
        refined = _mesh.Mesh(side, a, b, new_phi)
        u, s, _ = _mesh.nodes(refined)
        new_phi[fresh] = _mesh.interpolate(mesh, phi, u[fresh], s[fresh])
        model = _Continuous(refined, self.proc, self.ref)
        return status, (model, model.from_mesh(new_phi))


class _Discrete(_Model):
    """The fixed-point map on the levels of a discrete law; y = log(p/q). Dense: m is small."""

    def __init__(self, law: DiscreteLaw, proc: OrderStatistic, ref: OrderStatistic):
        self.w = law.probs
        m = law.n_levels
        self.L = np.tril(np.ones((m, m)))  # P_j = sum_{i <= j} p_i
        B = np.concatenate([[0.0], ref.g(law.cdf_levels[:-1]), [1.0]])
        self.c = np.concatenate([(B[:-2] - B[2:]) / 2.0, [0.0]])  # zero for the top level
        self.suffix = np.triu(np.ones((m, m)))  # R_i = sum_{j >= i} a_j
        self.proc = proc
        self.law = law

    def tilt_map(self, y: np.ndarray, beta: float) -> dict[str, Any]:
        p = self.w * np.exp(_normalise(self.w, y))
        P = np.cumsum(p)
        Pc = np.concatenate([np.cumsum(p[::-1])[::-1][1:], [0.0]])
        g1, g2 = _slopes(self.proc.k, self.proc.n, P, Pc)
        R = self.suffix @ (g1 * self.c)
        ell = R / beta
        T = ell - ell.max()
        T -= math.log(float(self.w @ np.exp(T)))
        t = self.w * np.exp(T)
        dP = self.L * p[None, :] - P[:, None] * p[None, :]
        dR = self.suffix @ ((g2 * self.c)[:, None] * dP)
        dT = (dR - np.outer(np.ones_like(t), t @ dR)) / beta
        return {"T": T, "dT": dT, "R": R, "t": t, "beta": beta}

    def jacobian_solve(self, st: dict[str, Any], rhs: np.ndarray) -> np.ndarray:
        return np.linalg.solve(np.eye(self.w.size) - st["dT"], rhs)

    def summary(
        self,
        y: np.ndarray,
        key: tuple[int, int, int, int],
        refine: bool = True,
        noise: float = 0.0,
    ) -> tuple[int, Any]:
        pol = DiscretePolicy(self.law, self.w * np.exp(_normalise(self.w, y)))
        proc = self.proc
        against = "procedure" if key[2:] == key[:2] else "sample"
        return K.DONE, (kl(pol), standard_win_rate(pol), win_rate(pol, proc, against=against))


def _normalise(w: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Y - log sum(w e^y), computed without overflow."""
    top = float(np.max(y))
    return y - top - math.log(float(w @ np.exp(y - top)))


#: phi(z) = sum_{k>=2} (k - 1) z^k / k!, the series used for |z| < 1/2 (terms to 1e-24 there).
_PHI_SERIES = np.array([(k - 1) / math.factorial(k) for k in range(2, 22)])


def _kl_density(z: np.ndarray, ez: np.ndarray) -> np.ndarray:
    """phi(z) = 1 + (z - 1) e^z >= 0, so that KL = sum(w phi(z)) when sum(w e^z) = sum(w) = 1.

    Unlike sum(w e^z z) it has no cancellation: near the base (z ~ 1e-8, KL ~ 1e-16) each term
    is z^2/2 to full relative precision, and a rounding d in the normalisation moves it by
    d KL, not by d.
    """
    out = np.ones_like(z)
    small = np.abs(z) < 0.5
    zs = z[small]
    acc = np.zeros_like(zs)
    for c in _PHI_SERIES[::-1]:
        acc = acc * zs + c
    out[small] = acc * zs * zs
    big = ~small & (ez > 0.0)
    out[big] = 1.0 + (z[big] - 1.0) * ez[big]
    return out


def _kl(w: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """KL of the density e^y / sum(w e^y) against the weights w, and its gradient in y."""
    z = _normalise(w, y)
    ez = np.exp(z)
    p = w * ez
    value = float(w @ _kl_density(z, ez))
    return value, p * (z - value)


def _merit(F: np.ndarray, gap: float) -> float:
    """Root-mean-square residual, the line search's measure of progress (inf past overflow)."""
    scale = max(float(np.max(np.abs(F))) if F.size else 0.0, abs(gap))
    if not math.isfinite(scale):
        return math.inf
    if scale == 0.0:
        return 0.0
    f = F / scale
    return scale * math.sqrt(float(np.mean(f * f)) + (gap / scale) ** 2)


def _floor(st: dict[str, Any], y: np.ndarray) -> float:
    """The fixed-point residual below which Newton has converged at the tilt-map state ``st``.

    The residual is judged against what it can change and what rounding allows. A residual d
    in log pi moves W_T by about max|R| d (R the first variation), and T = R/beta - log Z
    carries an absolute error of about eps max|R| / beta. Where W_T saturates (beta ~ 1e-10,
    R tiny) both exceed the plain tolerance. Near the base log pi itself is small (its
    spread ~ sqrt(KL)): the tolerance is relative to it.
    """
    r_max = float(np.max(np.abs(st["R"])))
    size = min(1.0, float(np.ptp(st["T"])))
    return max(TOL * size, 64.0 * K.EPS * r_max / st["beta"], 1e-14 * size / max(r_max, 1e-300))


def _scale_to_kl(model: Any, y: np.ndarray, target: float) -> np.ndarray | None:
    """Log pi scaled about its maximum, a (y - max y), with a > 0 such that KL = target.

    KL grows with a (d KL / d a = a Var_pi(y)); Newton on log KL against log a, kept inside
    a bracket that bisection narrows when a step leaves it. None if y is constant.
    """
    v = y - float(np.max(y))
    if not np.any(v < 0.0):
        return None
    lo, hi, x = -math.inf, math.inf, 0.0
    for _ in range(100):
        z = model.normalise(math.exp(x) * v)
        value, _ = model.kl(z)
        if abs(value - target) <= 1e-13 * target:
            return z
        p = model.w * np.exp(z)
        var = float(p @ (z - float(p @ z)) ** 2)
        if value > target:
            hi = x
        else:
            lo = x
        step = (math.log(target) - math.log(value)) * value / var if value > 0 and var > 0 else 1.0
        x_new = x + max(-2.0, min(2.0, step))
        if not lo < x_new < hi:
            x_new = 0.5 * (lo + hi) if math.isfinite(lo) and math.isfinite(hi) else x_new
        if hi - lo < 1e-15:
            break
        x = x_new
    return None


def _fit_beta(model: Any, y: np.ndarray, log_beta: float) -> float:
    """The log beta that best fits log pi = R/beta + c at the shape y (weighted least squares).

    At a fixed shape T is linear in 1/beta, so the fit is a weighted regression of y on R:
    1/beta = Cov_pi(y, R) / Var_pi(R). A start whose shape is right but whose beta is off by
    a factor 50 (a cut of the base at the right KL, on a law where R grows by e^10 across a
    level) is then solved at once, where Newton would first have to crawl along beta
    through the stiffness of R. The old value is kept where the fit is not positive.
    """
    st = model.tilt_map(y, math.exp(log_beta))
    p = model.w * np.exp(model.normalise(y))
    R = st["R"] - float(p @ st["R"])
    var = float(p @ R**2)
    cov = float(p @ (R * (y - float(p @ y))))
    if not (var > 0.0 and cov > 0.0 and math.isfinite(cov / var)):
        return log_beta
    fitted = -math.log(cov / var)
    return fitted if LOG_BETA_MIN <= fitted <= LOG_BETA_MAX else log_beta


def _advance(model: Any, y: np.ndarray, dy: np.ndarray, dx: float, step: float) -> np.ndarray:
    """Y moved by ``step`` along the direction (dy, dx) in (y, log beta), beta scaling exactly.

    Away from the mass, log pi = (R - c)/beta with R hardly moving: over a range of 1e4
    (Worst-of-256 at KL 5) the linear update y + dy would miss the 1/beta scaling by far
    more than the residual it corrects. The update is linear in z = beta (y - max y) (the
    transform) instead -- the same to first order, exact for that scaling:
    y -> (v + step (dy + v dx)) e^(-step dx), v = y - max y.
    """
    v = y - float(np.max(y))
    if not abs(step * dx) < 700.0:  # beta off by more than e^700: no usable point
        return np.full_like(y, np.nan)
    return model.normalise((v + step * (dy + v * dx)) * math.exp(-step * dx))


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # checked: isfinite
def _tangent(model: Any, y: np.ndarray, log_beta: float, by_kl: bool) -> tuple[np.ndarray, float]:
    """Derivative of the solution along the continuation parameter (KL, or log beta)."""
    st = model.tilt_map(y, math.exp(log_beta))
    Tx = model.dT_dlogbeta(st)
    if not by_kl:  # y - T(y, x) = 0  =>  J dy/dx = T_x
        return model.jacobian_solve(st, Tx[:, None])[:, 0], 1.0
    _, dkl = model.kl(y)  # [J, -T_x; dkl, 0] [dy; dx] = [0; 1]
    sol = model.jacobian_solve(st, np.column_stack([np.zeros_like(y), Tx]))
    denom = float(dkl @ sol[:, 1])
    dx = 1.0 / denom if denom != 0.0 else 0.0
    return sol[:, 1] * dx, dx


@np.errstate(over="ignore", invalid="ignore", divide="ignore")  # checked: isfinite
def _newton(
    model: Any,
    y: np.ndarray,
    log_beta: float,
    target: float | None,
    max_iter: int = _MAX_NEWTON,
) -> tuple[np.ndarray, float, int, float, bool]:
    """Newton on y = T(y) (bordered by KL(y) = target when given, log beta then free)."""

    def state(y: np.ndarray, log_beta: float) -> tuple[dict, float, np.ndarray, float, float]:
        """(tilt map, convergence measure, residual, KL gap, merit) at (y, log beta).

        Both parts of the residual count in units of their tolerances: the fixed-point
        residual against its floor, the KL gap relative to the budget. The line search's
        merit is the RMS of the two so scaled, so that neither swamps the other (with R
        ~ 1e-156, as on a level Worst-of-1024 barely sees, the fixed-point residual is
        irrelevant and the KL is all that matters).
        """
        if not LOG_BETA_MIN <= log_beta <= LOG_BETA_MAX:  # 1/beta or R/beta would overflow
            return {}, math.inf, np.full_like(y, math.inf), math.inf, math.inf
        st = model.tilt_map(y, math.exp(log_beta))
        F = y - st["T"]
        floor = _floor(st, y)
        weight = TOL / floor if floor > 0.0 else 0.0
        norm = float(np.max(np.abs(F))) * weight
        gap = 0.0
        if target is not None:
            value, _ = model.kl(y)
            gap = value - target
            norm = max(norm, abs(gap) / target)  # the KL budget is met to relative accuracy
        relative_gap = gap / target if target is not None else 0.0
        return st, norm, F, gap, _merit(F * weight, relative_gap)

    if target is not None:
        log_beta = _fit_beta(model, y, log_beta)
    st, norm, F, gap, merit = state(y, log_beta)
    if not math.isfinite(norm):
        return y, log_beta, 0, math.inf, False
    for it in range(max_iter):
        if norm < TOL:
            return y, log_beta, it, float(np.max(np.abs(F))), True
        if target is not None and float(np.max(np.abs(F))) < _floor(st, y):
            # Only the KL is off, and the fixed-point residual cannot move W_T measurably
            # (R ~ 1e-100: W_T is flat to rounding here). Newton's direction, set by those
            # meaningless equations, need not reduce the gap; rescaling log pi does.
            y_kl = _scale_to_kl(model, y, target)
            if y_kl is not None:
                x_kl = _fit_beta(model, y_kl, log_beta)
                trial = state(y_kl, x_kl)
                if trial[1] < TOL:
                    return y_kl, x_kl, it + 1, float(np.max(np.abs(trial[2]))), True
        try:
            if target is None:
                dy, dx = model.jacobian_solve(st, -F[:, None])[:, 0], 0.0
            else:
                _, dkl = model.kl(y)
                sol = model.jacobian_solve(st, np.column_stack([-F, model.dT_dlogbeta(st)]))
                denom = float(dkl @ sol[:, 1])
                if denom == 0.0 or not math.isfinite(denom):
                    break
                dx = float(np.clip((-gap - float(dkl @ sol[:, 0])) / denom, -2.0, 2.0))
                dy = sol[:, 0] + sol[:, 1] * dx
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(dy)) or not math.isfinite(dx):
            break
        for step in (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125):
            y_new = _advance(model, y, dy, dx, step)
            x_new = log_beta + step * dx
            trial = state(y_new, x_new)
            if np.isfinite(trial[1]) and trial[4] < merit:
                st, norm, F, gap, merit = trial
                y, log_beta = y_new, x_new
                break
        else:
            break
    return y, log_beta, max_iter, float(np.max(np.abs(F))), norm < TOL


# --------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OptimalTransform:
    """The InfAlign optimum for one procedure at one beta or KL budget.

    Attributes
    ----------
    procedure, against :
        T, and what T(pi) is compared with ("procedure": T(pi_ref); "sample": one sample).
    beta, kl, win_rate, standard_win_rate : float
        The optimum's beta (solved for a KL budget), KL, W_T and W_std.
    policy : ContinuousPolicy or DiscretePolicy
        The optimal policy: the tilt of the base by ``transform`` at ``beta``.
    transform : Transform
        R, the transformed reward of Theorem 1, up to an additive constant (a callable of u:
        the solver's log-density times beta, interpolated between the mesh nodes).
    grid, values : ndarray
        R normalised to [0, 1] ((R - R(0)) / (R(1) - R(0))) on a grid of u (the levels'
        calibrated rewards on a discrete law).
    residual : float
        The fixed-point residual max |log pi - (R/beta - log Z)| at the solution.
    iterations : int
        Newton iterations spent in all.
    converged : bool
        Whether the residual reached the tolerance: 1e-11, or the rounding floor
        64 eps max|R| / beta where that is larger (beta tiny: W_T within ~1e-9 of 1).
    stationary_points : tuple of dict
        Every distinct stationary point found (kl, beta, win_rate, objective W_T - beta KL),
        best first; more than one only where W_T is not concave (Worst-of-N).
    saturated : bool
        True when W_T came within 1e-10 of its supremum (1; on a discrete law, W_T of all
        mass on the top level) before the goal: at a KL budget, with a smaller ``kl``; at a
        given beta, at a larger ``beta`` (``objective`` is at that beta). Neither more KL nor
        a smaller beta can raise W_T by more than 1e-10, so the solution returned is within
        1e-10 of the frontier at the budget, and its W_T - beta KL within 1e-10 + beta KL of
        the supremum at the beta asked for.
    """

    procedure: OrderStatistic
    against: str
    beta: float
    kl: float
    win_rate: float
    standard_win_rate: float
    policy: Policy = field(repr=False)
    transform: Transform = field(repr=False)
    grid: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    residual: float
    iterations: int
    converged: bool
    stationary_points: tuple[dict[str, float], ...] = ()
    saturated: bool = False

    @property
    def objective(self) -> float:
        """W_T - beta KL at the optimum."""
        return self.win_rate - self.beta * self.kl

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the policy and the transform objects)."""
        return {
            "procedure": self.procedure.name,
            "against": self.against,
            "beta": self.beta,
            "kl": self.kl,
            "win_rate": self.win_rate,
            "standard_win_rate": self.standard_win_rate,
            "objective": self.objective,
            "residual": self.residual,
            "iterations": self.iterations,
            "converged": self.converged,
            "saturated": self.saturated,
            "stationary_points": list(self.stationary_points),
            "transform_grid": self.grid.tolist(),
            "transform_values": self.values.tolist(),
        }


# --------------------------------------------------------------------------------------
# Solving.
# --------------------------------------------------------------------------------------
def _reference(procedure: OrderStatistic, against: str) -> OrderStatistic:
    return procedure if against == "procedure" else OrderStatistic(1, 1)


@dataclass
class _Track:
    """A solution followed along a continuation: model, unknowns, beta, bookkeeping."""

    model: Any
    y: np.ndarray
    log_beta: float
    iterations: int = 0
    residual: float = math.inf
    numbers: tuple[float, float, float] | None = None  # KL, W_std, W_T on the final mesh
    saturated: bool = False  # stopped short of the goal: W_T within SATURATION of its sup
    ceiling: float = 1.0  # the supremum of W_T over all policies
    beta: float | None = None  # the beta asked for, when solved at a given beta
    mesh_size: int = 0  # panels after the last fresh re-meshing


def _solve_at(
    track: _Track,
    target: float | None,
    log_beta: float | None,
    key: tuple[int, int, int, int],
    max_iter: int = _MAX_NEWTON,
) -> bool:
    """Solve one stage (a KL budget, or a log beta), re-meshing as the engine asks.

    Newton runs until the library's refinement test is satisfied with the solution's density
    and win-rate integrand. A solution that Newton could only bring to its rounding floor
    (beta tiny, W_T within ~1e-9 of 1) is not refined further: its wiggles at that level are
    rounding, not shape.
    """
    for _ in range(50):
        start = track.log_beta if log_beta is None else log_beta
        y, lb, it, norm, ok = _newton(track.model, track.y, start, target, max_iter)
        track.iterations += it
        if not ok:
            return False
        track.y, track.log_beta, track.residual = y, lb, norm
        status, out = track.model.summary(y, key, refine=norm <= 1e3 * TOL, noise=norm)
        if status == K.DONE:
            track.numbers = out
            return True
        if status != K.SPLIT:
            return False
        track.model, track.y = out
    return False


def _continue(
    track: _Track, goal: float, start: float, by_kl: bool, key: tuple[int, int, int, int]
) -> bool:
    """Follow the solution from ``start`` to ``goal`` (KL budgets, or log betas).

    The parameter is log KL (or log beta), so that a path from KL 1e-7 to 5 takes as many
    steps as one from 0.1 to 5. Each stage starts from the tangent predictor (the derivative
    of the solution along the parameter, one more linear solve) and is corrected by Newton;
    the step halves whenever Newton fails and grows when it succeeds. Heading for more KL
    (a larger budget, a smaller beta), the path stops once W_T is within SATURATION of its
    supremum: the solution is then returned as ``saturated``.
    """
    to_x = math.log if by_kl else float
    x_goal, x_start = to_x(goal), to_x(start)
    current = x_start
    step = math.copysign(min(abs(x_goal - x_start), _MAX_STEP), x_goal - x_start)
    outward = (x_goal > x_start) == by_kl  # towards more KL
    tangent: tuple[np.ndarray, float] | None = None
    if x_start != x_goal:
        tangent = _tangent_at(track, by_kl)
    for _ in range(_MAX_STAGES):
        nxt = x_goal if abs(x_goal - current) <= abs(step) else current + step
        saved = (track.model, track.y.copy(), track.log_beta)
        if tangent is not None and tangent[0].size == track.y.size:
            dy, dx = tangent
            predicted = _advance(track.model, track.y, dy, dx, nxt - current)
            if np.all(np.isfinite(predicted)):
                track.y = predicted
                track.log_beta += dx * (nxt - current)
        value = (goal if nxt == x_goal else math.exp(nxt)) if by_kl else None
        spent = track.iterations
        if _solve_at(track, value, None if by_kl else nxt, key, _MAX_NEWTON_STAGE):
            spent = track.iterations - spent
            current = nxt
            _coarsen(track, value, None if by_kl else nxt, key)
            if current == x_goal:
                return True
            if outward and track.ceiling - track.numbers[2] < SATURATION:  # type: ignore[index]
                track.saturated = True  # more KL cannot raise W_T measurably
                return True
            # Newton's iterations measure how far the predictor was off: aim at about six.
            grow = 2.0 if spent <= 4 else 1.4 if spent <= 8 else 1.0 if spent <= 12 else 0.7
            step = math.copysign(min(grow * abs(step), _MAX_STEP), step)
            tangent = _tangent_at(track, by_kl)
        else:
            track.model, track.y, track.log_beta = saved
            step /= 2.0
            if abs(step) < 1e-7 * max(1.0, abs(x_goal)) or not np.isfinite(step):
                return False
    return False  # a path that needs this many stages is not converging: a failed start


def _coarsen(
    track: _Track, target: float | None, log_beta: float | None, key: tuple[int, int, int, int]
) -> None:
    """Re-mesh the solution afresh once its mesh has doubled since the last time.

    Refinement only ever splits panels, so a sharp feature that moves along the path (the
    edge of the suppressed region of Worst-of-N) leaves fine panels everywhere it passed:
    ten times the panels the solution needs, and as much more work per Newton step. The
    library's engine resolves the solution's own transform from the initial mesh, and Newton
    polishes it there; if either fails the old mesh is kept.
    """
    model = track.model
    if not isinstance(model, _Continuous) or model.mesh.size < 2 * max(track.mesh_size, 40):
        return
    saved = (model, track.y, track.log_beta, track.residual, track.numbers)
    beta = math.exp(track.log_beta)
    try:
        res = _mesh.resolve(_transform_of(track, "path"), beta, key)
    except ValueError:
        track.mesh_size = model.mesh.size
        return
    fresh = _Continuous(res.mesh, model.proc, model.ref)
    track.model, track.y = fresh, fresh.from_mesh(res.r)
    if not _solve_at(track, target, log_beta, key, _MAX_NEWTON_STAGE):
        track.model, track.y, track.log_beta, track.residual, track.numbers = saved
    track.mesh_size = track.model.mesh.size


def _tangent_at(track: _Track, by_kl: bool) -> tuple[np.ndarray, float] | None:
    """The tangent along log KL (or log beta) at the track's solution; None if singular."""
    try:
        dy, dx = _tangent(track.model, track.y, track.log_beta, by_kl)
    except np.linalg.LinAlgError:
        return None
    if by_kl:  # d/dlog KL = KL d/dKL
        value = track.model.kl(track.y)[0]
        dy, dx = dy * value, dx * value
    if not (np.all(np.isfinite(dy)) and math.isfinite(dx)):
        return None
    return dy, dx


def _guesses(
    procedure: OrderStatistic, law: DiscreteLaw | None
) -> list[tuple[Transform, float | None]]:
    """Further starts where W_T is not concave, as (transform, beta of the starting tilt).

    Exponential transforms, with the sign of t that suits the procedure, tilted at the goal
    (beta None). On a discrete law also the base cut off below level j, for up to twelve j
    spread over the levels: the tilt by -1 below j and 0 above at beta = 1/30 (a factor
    e^-30). Worst-of-N and low order statistics can gain by emptying the lowest levels
    entirely, an optimum no path from the base reaches when g'(F) is negligible there
    (Worst-of-1024 with 30 % of the base on its lowest level: g'(0.3) ~ 1e-155). Best-of-N
    needs none: its stationary point is unique, and the path from the base reaches it.
    """
    if procedure.k == procedure.n:
        return []
    if procedure.k == 1:
        out: list[tuple[Transform, float | None]] = [
            (Exponential(t), None) for t in (-3.0, -15.0, -60.0)
        ]
    else:
        out = [(Exponential(-5.0), None), (Exponential(5.0), None)]
    if law is not None and law.n_levels > 1:
        cuts = np.unique(np.linspace(1, law.n_levels - 1, 12).round().astype(int))
        for j in cuts:
            values = np.where(np.arange(law.n_levels) < j, -1.0, 0.0)
            out.append((LevelValues(law, values, f"cut below level {j}"), 1.0 / 30.0))
    return out


def _cut_depth(
    cut: Transform, law: DiscreteLaw, procedure: OrderStatistic, ref: OrderStatistic, beta: float
) -> float:
    """The beta at which the tilt by a cut (-1 below, 0 above) best serves W_T - beta KL.

    A scan over suppressions e^-60 to e^-0.1 of the levels below the cut: with large N the
    optimum often lowers them just far enough to move the procedure's quantile past a level
    boundary, not to zero, and Newton converges to it only from close by.
    """
    against = "procedure" if ref == procedure else "sample"
    best, best_value = 1.0 / 30.0, -math.inf
    for depth in np.geomspace(1.0 / 60.0, 10.0, 25):
        pol = tilt(cut, float(depth), law)
        value = win_rate(pol, procedure, against=against) - beta * kl(pol)
        if value > best_value:
            best, best_value = float(depth), value
    return best


def _start(
    guess: Transform,
    beta: float,
    law: DiscreteLaw | None,
    procedure: OrderStatistic,
    ref: OrderStatistic,
) -> _Track:
    """A track starting at the tilt by ``guess`` at ``beta``."""
    if law is not None:
        pol = tilt(guess, beta, law)
        assert isinstance(pol, DiscretePolicy)
        track = _Track(_Discrete(law, procedure, ref), np.array(pol.log_ratio), math.log(beta))
    else:
        res = _mesh.resolve(guess, beta, (procedure.k, procedure.n, ref.k, ref.n))
        model = _Continuous(res.mesh, procedure, ref)
        track = _Track(model, model.from_mesh(res.r), math.log(beta))
    track.ceiling = _ceiling(law, procedure, ref)
    return track


def _ceiling(law: DiscreteLaw | None, procedure: OrderStatistic, ref: OrderStatistic) -> float:
    """The supremum of W_T: 1 (continuous), or W_T of all mass on the top level (discrete)."""
    if law is None:
        return 1.0
    top = np.zeros(law.n_levels)
    top[-1] = 1.0
    against = "procedure" if ref == procedure else "sample"
    return win_rate(DiscretePolicy(law, top), procedure, against=against)


def _base_start(
    procedure: OrderStatistic,
    ref: OrderStatistic,
    law: DiscreteLaw | None,
    beta: float | None,
    budget: float | None,
) -> tuple[_Track, float]:
    """The optimum near the base: the tilt by R_0 (first variation at the base) at beta_0.

    beta_0 is at least 20 times the spread of R_0, where R's change along the way is a few
    per cent of R_0 and Newton converges from the tilt in a few steps; for a KL budget it is
    also at least the beta that the expansion KL = Var(R_0) / (2 beta^2) gives. Returns the
    track (not yet solved) and beta_0.
    """
    if law is None:
        variation = BaseVariation(procedure, ref)
        spread = variation.scale
        model: Any = _Continuous(_mesh.initial_mesh(Identity()), procedure, ref)
    else:
        model = _Discrete(law, procedure, ref)
    r0 = model.tilt_map(np.zeros(model.w.size), 1.0)["R"]
    spread = float(np.ptp(r0)) if law is not None else spread
    var = float(model.w @ (r0 - float(model.w @ r0)) ** 2)
    beta0 = 20.0 * spread if spread > 0.0 else 1.0
    if beta is not None:
        beta0 = max(beta0, beta)
    elif var > 0.0:
        beta0 = max(beta0, math.sqrt(var / (2.0 * budget)))  # type: ignore[operator]
    beta0 = min(beta0, 1e300)
    if law is not None:
        y = model.tilt_map(np.zeros(model.w.size), beta0)["T"]
        track = _Track(model, y, math.log(beta0))
    else:
        track = _start(variation, beta0, None, procedure, ref)
    track.ceiling = _ceiling(law, procedure, ref)
    return track, beta0


def _solve(
    procedure: OrderStatistic,
    ref: OrderStatistic,
    beta: float | None,
    budget: float | None,
    law: DiscreteLaw | None,
    first_only: bool = False,
) -> list[_Track]:
    """Every stationary point reached: the path from the base first, then the other starts."""
    key = (procedure.k, procedure.n, ref.k, ref.n)
    tracks = []
    try:
        track, beta0 = _base_start(procedure, ref, law, beta, budget)
        ok = _solve_at(track, None, math.log(beta0), key)
        if ok and budget is not None:
            ok = _continue(track, budget, track.numbers[0], True, key)  # type: ignore[index]
        elif ok and beta is not None and beta < beta0:
            ok = _continue(track, math.log(beta), math.log(beta0), False, key)
        if ok:
            track.beta = beta
            tracks.append(track)
    except ValueError:  # a tilt the engine refuses on the way (beyond double precision)
        pass
    if first_only or (tracks and tracks[0].saturated):
        return tracks  # saturated: within SATURATION of the supremum, no start can do better
    for guess, guess_beta in _guesses(procedure, law):
        try:
            if budget is not None and guess_beta is not None and budget >= kl_limit(guess, law):
                # More KL than emptying the levels below the cut costs. Where the empty cut
                # saturates W_T, it is the answer (with its smaller KL): follow the cut to
                # smaller beta until it does.
                track = _start(guess, guess_beta, law, procedure, ref)
                ok = _continue(track, LOG_BETA_MIN, math.log(guess_beta), False, key)
                ok = ok and track.saturated and track.numbers[0] <= budget  # type: ignore[index]
            elif budget is not None:
                start = beta_for_kl(guess, budget, law=law)
                track = _start(guess, start, law, procedure, ref)
                ok = _continue(track, budget, budget, True, key)
            else:
                assert beta is not None
                if guess_beta is not None and law is not None:
                    guess_beta = _cut_depth(guess, law, procedure, ref, beta)
                track = _start(guess, guess_beta or beta, law, procedure, ref)
                ok = _continue(track, math.log(beta), math.log(beta), False, key)
        except ValueError:  # a start this transform cannot reach (a KL beyond its limit)
            continue
        if ok:
            track.beta = beta
            tracks.append(track)
    return tracks


def _check_procedure(procedure: Any) -> OrderStatistic:
    if not isinstance(procedure, OrderStatistic):
        raise ValueError(f"procedure must be an OrderStatistic, got {procedure!r}")
    if procedure.n > MAX_N:
        raise ValueError(
            f"n must be in [1, {MAX_N}] for the optimal transform (the range the solver is "
            f"tested on), got {procedure.n}"
        )
    return procedure


def _beta_of(track: _Track) -> float:
    """The track's beta: the one asked for at a given beta, else exp(log beta).

    exp(log beta) would round the beta asked for.
    """
    if track.beta is not None and not track.saturated:
        return track.beta
    return math.exp(track.log_beta)


def _transform_of(track: _Track, name: str) -> Transform:
    """The optimum's transform R = beta log(pi / pi_ref) + a constant.

    It is the solver's own log-density scaled by beta, so the policy rebuilt from it is the
    solution itself. The constant is the maximum of log(pi / pi_ref), not log Z: near the base
    log pi is ~R/beta (1e-298 at beta = 1e300), and a normaliser's rounding (1e-16) times beta
    would swamp R.
    """
    beta = _beta_of(track)
    y = track.y - float(np.max(track.y))
    if isinstance(track.model, _Discrete):
        return LevelValues(track.model.law, beta * y, name)
    return Interpolated(track.model.mesh, beta * track.model.to_mesh(y), name)


def _result(
    tracks: list[_Track],
    procedure: OrderStatistic,
    ref: OrderStatistic,
    budget: float | None,
    law: RewardLaw | None,
) -> OptimalTransform:
    if not tracks:
        raise RuntimeError(f"the optimum for {procedure.name} did not converge")
    against = "procedure" if ref == procedure else "sample"
    points: list[dict[str, Any]] = []
    for tr in tracks:
        value, _, w = tr.numbers  # type: ignore[misc]
        b = _beta_of(tr)
        points.append(
            {"kl": value, "beta": b, "win_rate": w, "objective": w - b * value, "_track": tr}
        )
    # Best first: by W_T at a KL budget, by the objective at the beta asked for (a saturated
    # solution sits at a larger beta, and is judged at the one asked for).
    asked = min(p["beta"] for p in points)
    # Equal values to rounding (W_T saturated at 1, beta 1e-300): the smaller KL is the optimum.
    points.sort(
        key=lambda d: (
            -(d["win_rate"] if budget is not None else d["win_rate"] - asked * d["kl"]),
            d["kl"],
        )
    )
    distinct: list[dict] = []
    for d in points:
        if all(
            abs(d["win_rate"] - e["win_rate"]) > 1e-9 or abs(d["kl"] - e["kl"]) > 1e-9
            for e in distinct
        ):
            distinct.append(d)
    for d in distinct:  # the best whose rebuilt policy the library confirms
        best: _Track = d["_track"]
        beta = _beta_of(best)
        transform = _transform_of(best, f"optimal[{procedure.name}]")
        try:
            pol = tilt(transform, beta, law)
        except ValueError:
            continue
        value = kl(pol)
        w = win_rate(pol, procedure, against=against)
        goal = budget if budget is not None else d["kl"]
        # KL_FLOOR: a policy within KL 1e-30 of the base is the base to every digit of W_T
        # (its W_T moves by about sqrt(KL)), so two such KLs agree whatever their ratio.
        if best.saturated or (
            abs(value - goal) <= KL_RTOL * goal + KL_FLOOR and abs(w - d["win_rate"]) <= KL_RTOL
        ):
            break
    else:
        raise RuntimeError(
            f"the optimum for {procedure.name} did not converge: the policy rebuilt from its "
            "transform disagrees with the solution"
        )
    return _package(
        procedure, against, pol, transform, best.residual,
        sum(d["_track"].iterations for d in points), best.saturated,
        tuple({k: v for k, v in d.items() if not k.startswith("_")} for d in distinct),
        kl_value=value, w=w,
    )  # fmt: skip


def _package(
    procedure: OrderStatistic,
    against: str,
    pol: Policy,
    transform: Transform,
    residual: float,
    iterations: int,
    saturated: bool,
    points: tuple[dict[str, float], ...] | None,
    kl_value: float | None = None,
    w: float | None = None,
) -> OptimalTransform:
    """The result object for the policy ``pol``, the tilt by ``transform`` at its beta."""
    law = pol.law
    beta = float(pol.beta)  # type: ignore[arg-type]
    kl_value = kl(pol) if kl_value is None else kl_value
    w = win_rate(pol, procedure, against=against) if w is None else w
    if points is None:
        point = {"kl": kl_value, "beta": beta, "win_rate": w, "objective": w - beta * kl_value}
        points = (point,)
    grid = level_midpoints(law)[0] if isinstance(law, DiscreteLaw) else np.linspace(0, 1, 201)
    raw = transform(grid)
    span = raw[-1] - raw[0]
    values = (raw - raw[0]) / span if span > 0 else np.zeros_like(raw)
    return OptimalTransform(
        procedure=procedure, against=against, beta=beta, kl=kl_value, win_rate=w,
        standard_win_rate=standard_win_rate(pol), policy=pol, transform=transform,
        grid=grid, values=values, residual=residual, iterations=iterations,
        converged=True, saturated=saturated, stationary_points=points,
    )  # fmt: skip


def _near_base(
    procedure: OrderStatistic,
    ref: OrderStatistic,
    law: RewardLaw | None,
    beta: float | None,
    budget: float | None,
) -> OptimalTransform | None:
    """The optimum far out near the base, from the expansion in 1/beta; None elsewhere.

    With y = log(pi / pi_ref), the fixed point y = R[e^y]/beta - log Z expands as
    y = (R_0 - E R_0)/beta + O(beta^-2), R_0 the first variation at the base. Once
    beta >= NEAR_BASE x spread(R_0) the tilt by R_0 itself is the optimum with a shape error
    below 1e-8 relative (the O(beta^-2) term) -- W_T exact to rounding, since W_T is
    stationary there -- while Newton on y, whose entries are below 1e-8, would lose their
    digits to the normaliser's rounding. For a KL budget beta is found by
    :func:`~infalign_theory.curves.beta_for_kl` on that tilt, so the KL is met exactly. The
    residual reported is the second-order term: max |T'(0) y_1| = max|D R_0[y_1]| / beta.
    """
    discrete = law if isinstance(law, DiscreteLaw) else None
    if discrete is not None:
        model: Any = _Discrete(discrete, procedure, ref)
    else:
        variation = BaseVariation(procedure, ref)
        res = _mesh.resolve(variation, 20.0 * variation.scale)
        model = _Continuous(res.mesh, procedure, ref)
    st = model.tilt_map(np.zeros(model.w.size), 1.0)
    r0 = st["R"] - float(model.w @ st["R"])
    spread = float(np.ptp(r0))
    var = float(model.w @ r0**2)
    if spread == 0.0:  # one level: the base is the only policy
        beta = 1.0 if beta is None else beta
    elif beta is None:
        assert budget is not None
        if math.sqrt(var / (2.0 * budget)) < NEAR_BASE * spread:
            return None
    elif beta < NEAR_BASE * spread:
        return None
    if procedure.k != procedure.n and (beta is None or beta <= procedure.n**2):
        # Beyond beta = n^2 > max|g''| the objective is strictly concave (the second
        # variation of W_T is at most max|g''| ||h||_1^2, that of KL at least ||h||_1^2), so
        # the stationary point near the base is the global optimum. Below, or for a KL
        # budget, another may beat it: the full solver compares the starts.
        return None
    if discrete is not None:
        transform: Transform = LevelValues(discrete, st["R"], f"optimal[{procedure.name}]")
        second = st["dT"] @ r0  # T'(0) r0 at beta = 1
    else:
        transform = BaseVariation(procedure, ref, f"optimal[{procedure.name}]")
        Hv = model._L(r0[:, None])[:, 0]  # G - u along r0
        second = model._L((st["D2"] * Hv)[:, None])[:, 0]
        second = second - float(model.w @ second)
    if beta is None:
        beta = beta_for_kl(transform, budget, law=law)  # type: ignore[arg-type]
    pol = tilt(transform, beta, law)
    against = "procedure" if ref == procedure else "sample"
    residual = float(np.max(np.abs(second))) / beta / beta
    return _package(procedure, against, pol, transform, residual, 0, False, None)


def solve_optimal(
    procedure: OrderStatistic,
    *,
    beta: float | None = None,
    kl: float | None = None,
    law: RewardLaw | None = None,
    against: str = "procedure",
) -> OptimalTransform:
    r"""The policy maximising W_T - beta KL (or W_T at KL = ``kl``) and its transform.

    Parameters
    ----------
    procedure : OrderStatistic
        The inference-time procedure T, n <= 1024.
    beta, kl : float
        Give exactly one: the KL strength in [1e-300, 1e300], or a KL budget in nats, > 0
        (below the KL of the top level alone on a discrete law); beta is then solved for
        and the KL returned meets the budget to 1e-9 relative unless ``saturated``.
    law : DiscreteLaw, ContinuousLaw or None
        The base reward law (None or continuous: the model-agnostic continuous case).
    against : {"procedure", "sample"}
        What T(pi) is compared with, as in :func:`~infalign_theory.metrics.win_rate`.

    Returns
    -------
    OptimalTransform
        At beta = 1e300 (or a budget of 1e-40) the base policy tilted by R_0, the first
        variation at the base; towards beta = 1e-300 the solution saturates (W_T within
        1e-10 of its supremum) and is returned as such, with its own beta.

    Raises
    ------
    ValueError
        For an argument out of range (the message names it and the range).

    Notes
    -----
    A procedure that is not an order statistic (soft Best-of-n, threshold sampling, a
    user's CDF map) is solved by :mod:`._optimal_general` from its own first variation.
    """
    if not isinstance(procedure, OrderStatistic):
        from . import _optimal_general

        return _optimal_general.solve(procedure, beta=beta, kl_budget=kl, law=law, against=against)
    _check_procedure(procedure)
    choice(against, "against", AGAINST)
    beta, kl = beta_or_kl(beta, kl, BETA_RANGE, BETA_NOTE)
    ref = _reference(procedure, against)
    if law is not None and not isinstance(law, DiscreteLaw | ContinuousLaw):
        raise ValueError(f"law must be a DiscreteLaw, ContinuousLaw or None, got {law!r}")
    discrete = law if isinstance(law, DiscreteLaw) else None
    if discrete is not None and kl is not None:
        limit = kl_limit(Identity(), discrete)
        if not kl < limit:
            raise ValueError(
                f"kl must be in (0, {limit:.12g}) on this law (the KL of its top "
                f"level alone), got {kl!r}"
            )
    near = _near_base(procedure, ref, law, beta, kl)
    if near is not None:
        return near
    return _result(_solve(procedure, ref, beta, kl, discrete), procedure, ref, kl, law)


def pareto_frontier(
    procedure: OrderStatistic,
    kl_grid: Any,
    *,
    law: RewardLaw | None = None,
    against: str = "procedure",
) -> TradeoffCurve:
    """The best achievable W_T at each KL budget: the optimum followed along the grid.

    The solution is continued from budget to budget (increasing), re-meshed as it goes;
    where W_T is not concave (anything but Best-of-N) it is also continued down from the
    largest budget, starting from several transforms, and the best value at each budget is
    kept. Returns a :class:`~infalign_theory.curves.TradeoffCurve` (transform "optimal");
    a budget of 0 is the base policy. Each row is a real policy: its beta, KL and win rates.
    Past saturation (W_T within 1e-10 of 1) a larger budget cannot raise W_T measurably, so
    the row of such a budget is the saturated solution itself, whose KL is *below* the
    budget and whose W_T is within 1e-10 of the frontier's value there. A procedure that is
    not an order statistic is solved budget by budget (:mod:`._optimal_general`).
    """
    if not isinstance(procedure, OrderStatistic):
        from . import _optimal_general

        return _optimal_general.frontier(procedure, kl_grid, law=law, against=against)
    _check_procedure(procedure)
    choice(against, "against", AGAINST)
    grid = np.atleast_1d(np.asarray(kl_grid, dtype=np.float64))
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0.0):
        raise ValueError("kl_grid must be a non-empty list of finite numbers >= 0")
    ref = _reference(procedure, against)
    discrete = law if isinstance(law, DiscreteLaw) else None
    if discrete is not None and not np.all(grid < kl_limit(Identity(), discrete)):
        raise ValueError(
            f"kl_grid must lie in [0, {kl_limit(Identity(), discrete):.12g}) on "
            "this law (the KL of its top level alone)"
        )
    key = (procedure.k, procedure.n, ref.k, ref.n)
    best = np.full((4, grid.size), -np.inf)
    positive = np.flatnonzero(grid > 0.0)
    sweeps = [(positive[np.argsort(grid[positive])], True)]
    if procedure.k != procedure.n:
        sweeps.append((positive[np.argsort(-grid[positive])], False))
    for order, upward in sweeps:
        if order.size == 0:
            continue
        # Upward: the solution continued from the base. Downward: the best of the starts at
        # the largest budget.
        tracks = _solve(procedure, ref, None, float(grid[order[0]]), discrete, first_only=upward)
        if not tracks:
            continue
        tr = max(tracks, key=lambda t: t.numbers[2])  # type: ignore[index]
        for i in order:
            budget = float(grid[i])
            # A saturated solution serves every budget above its own KL (to within 1e-10);
            # below it the track must be continued down to the budget.
            if not (tr.saturated and budget >= tr.numbers[0]):  # type: ignore[index]
                tr.saturated = False
                if not _continue(tr, budget, tr.numbers[0], True, key):  # type: ignore[index]
                    break
            value, w_std, w = tr.numbers  # type: ignore[misc]
            if w > best[2, i]:
                best[:, i] = math.exp(tr.log_beta), value, w, w_std
    for i in np.flatnonzero(grid == 0.0):
        pol = base_policy(law)
        best[:, i] = math.inf, 0.0, win_rate(pol, procedure, against=against), 0.5
    for i in np.flatnonzero(best[2] == -np.inf):  # a budget the sweeps did not reach: alone
        tracks = _solve(procedure, ref, None, float(grid[i]), discrete)
        if tracks:
            tr = max(tracks, key=lambda t: t.numbers[2])  # type: ignore[index]
            value, w_std, w = tr.numbers  # type: ignore[misc]
            best[:, i] = math.exp(tr.log_beta), value, w, w_std
    if np.any(best[2] == -np.inf):
        failed = ", ".join(f"{v:g}" for v in grid[best[2] == -np.inf])
        raise RuntimeError(f"the optimum for {procedure.name} did not converge at KL {failed}")
    return TradeoffCurve(
        transform="optimal",
        procedure=procedure.name,
        against=against,
        beta=best[0],
        kl=best[1],
        win_rate=best[2],
        standard_win_rate=best[3],
    )
