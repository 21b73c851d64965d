r"""First variations of the inference-time win rate: Theorem 1's transformed reward.

InfAlign (Balashankar, Sun, et al., arXiv 2412.19792), Theorem 1: the maximiser of
:math:`W_T(\pi) - \beta\,\mathrm{KL}(\pi\|\pi_{\rm ref})` is the tilt of the base by R, the
first variation of W_T at the maximiser. W_T is linear in the decoded law T(pi), so R is
the derivative of the map pi -> T(pi) applied to the reference side's CDF:

* discrete (levels j, policy masses p_j, decoded masses a_j(p), reference decoded CDF B):
  :math:`W_T = \sum_j a_j(p)\, c_j` with :math:`c_j = (B_j + B_{j-1})/2`, and
  :math:`R_i = \partial W_T / \partial p_i = \sum_j c_j\, \partial a_j / \partial p_i`,
  differentiated exactly (no differences);
* continuous (policy density f, CDF G; decoded CDF H_f; reference decoded density h_ref and
  CDF H_ref): :math:`W_T = 1 - \int_0^1 H_f(u)\, h_{\rm ref}(u)\, du` and
  :math:`R(v) = -\int_0^1 \frac{\delta H_f(u)}{\delta f(v)}\, h_{\rm ref}(u)\, du`.

Both are defined up to an additive constant (the masses sum to one). The formulas:

* CDF map g: :math:`R_i = \sum_{j \ge i} g'(P_j)(c_j - c_{j+1})` (c_{m+1} = 0) and
  :math:`R(v) = \int_0^v g'(G(u))\, h_{\rm ref}(u)\, du`;
* threshold sampling (tau, budget n; x = G_tau the failing mass,
  :math:`S_n(x) = 1 + x + \dots + x^{n-1}`): :math:`H = G^n` below tau and
  :math:`x^n + (G - x) S_n(x)` above, so
  :math:`R(v) = \int_0^v \partial_G H\, h_{\rm ref}\, du + [v > \tau]\int_\tau^1
  \partial_x H\, h_{\rm ref}\, du` with :math:`\partial_x H = n x^{n-1} - S_n(x) + (G - x) S_n'(x)`;
  on levels the same with sums;
* soft Best-of-n (temperature lambda; Q, K as in :mod:`.procedures`): the decoded density is
  :math:`n f K`, so with :math:`\Gamma(x) = e^{-e^{-x}}`, :math:`\gamma = \Gamma'`,

  .. math:: R(v) = n K(v) H_{\rm ref}(v) + n(n-1)\int Q(y)^{n-2} M(y)\,
            \Gamma\big((y - v)/\lambda\big)\, dy, \qquad
            M(y) = \int f(u) H_{\rm ref}(u)\, \gamma\big((y - u)/\lambda\big)\, du/\lambda,

  and on levels :math:`R_i = n c_i K_i + n(n-1)\sum_j c_j p_j \int \gamma(z)\,
  Q(C_j + \lambda z)^{n-2}\, \Gamma((C_j - C_i)/\lambda + z)\, dz`.

Numerical method: the z-integrals on levels use the rule of the decoded masses themselves
(Gauss-Legendre, 23 panels of width 2 on [-5, 41]), exact to rounding. The continuous
integrals are Gauss-Legendre sums on a :class:`Grid` (panels no wider than
:attr:`Procedure.variation_width <infalign_theory.procedures.Procedure>`, 20 nodes each),
with cumulative integrals by spectral integration on each panel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels as K


@dataclass(frozen=True, eq=False)
class Grid:
    r"""Quadrature nodes on [0, 1]: exact pairs (u, s = 1 - u), weights, cumulative operator.

    ``L @ v`` is :math:`\int_0^{u_i} v` at every node (v given at the nodes).
    """

    u: np.ndarray
    s: np.ndarray
    w: np.ndarray
    L: np.ndarray


def cumulative_sum_weights(c: np.ndarray) -> np.ndarray:
    """d_j = c_j - c_{j+1} with c_{m+1} = 0."""
    return c - np.concatenate([c[1:], [0.0]])


def cdf_map_levels(gprime_P: np.ndarray, c: np.ndarray) -> np.ndarray:
    """R_i = sum_{j >= i} g'(P_j) (c_j - c_{j+1}) for a CDF map on levels."""
    terms = gprime_P * cumulative_sum_weights(c)
    return np.cumsum(terms[::-1])[::-1]


def cdf_map_nodes(grid: Grid, gprime_G: np.ndarray, ref_pdf: np.ndarray) -> np.ndarray:
    """R(v) = int_0^v g'(G(u)) h_ref(u) du at the grid's nodes."""
    return grid.L @ (gprime_G * ref_pdf)


def _powers_sum(x: float, n: int) -> tuple[float, float]:
    """S_n(x) = sum_{k<n} x^k and S_n'(x) = sum_{k<n} k x^(k-1), for x in [0, 1]."""
    k = np.arange(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pw = np.where(k == 0, 1.0, x**k)
        dpw = np.where(k <= 1, k, k * x ** np.maximum(k - 1, 0))
    return float(pw.sum()), float(dpw.sum())


def threshold_levels(p: np.ndarray, failing: int, n: int, c: np.ndarray) -> np.ndarray:
    """Exact R_i on levels for threshold sampling; ``failing`` levels lie below tau."""
    m = p.size
    P = np.cumsum(p)
    x = float(P[failing - 1]) if failing > 0 else 0.0
    S, dS = _powers_sum(x, n)
    out = np.zeros(m)
    if failing > 0:
        # sum_{j < F} c_j (A_j - A_{j-1}) = sum_{j < F-1} A_j (c_j - c_{j+1}) + c_{F-1} A_{F-1},
        # A_j = P_j^n, dA_j/dp_i = n P_j^(n-1) [i <= j]
        d = np.empty(failing)
        d[:-1] = c[: failing - 1] - c[1:failing]
        d[-1] = c[failing - 1]
        terms = n * P[:failing] ** (n - 1) * d
        out[:failing] = np.cumsum(terms[::-1])[::-1]
        out[:failing] += dS * float(np.dot(c[failing:], p[failing:]))
    out[failing:] = S * c[failing:]
    return out


def threshold_nodes(
    grid: Grid, G: np.ndarray, x: float, tau: float, n: int, ref_pdf: np.ndarray
) -> np.ndarray:
    """R(v) at the grid's nodes for threshold sampling; x = G(tau)."""
    S, dS = _powers_sum(x, n)
    above = grid.u >= tau
    dG = np.where(above, S, n * G ** (n - 1))
    dx = np.where(above, n * x ** (n - 1) - S + (G - x) * dS, 0.0)
    jump = float(np.dot(grid.w, dx * ref_pdf))
    return grid.L @ (dG * ref_pdf) + np.where(grid.u > tau, jump, 0.0)


def _gumbel_cdf(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-np.exp(-x))


def _gumbel_pdf(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-x)
        return np.where(x <= -40.0, 0.0, np.exp(-x - np.minimum(e, 1e300)))


def _z_rule() -> tuple[np.ndarray, np.ndarray]:
    """The decoded masses' rule in z: 23 Gauss-Legendre panels of width 2 on [-5, 41]."""
    starts = K.GUMBEL_LO + 2.0 * np.arange(K.GUMBEL_PANELS)
    z = (starts[:, None] + 1.0 + K.XI[None, :]).ravel()
    return z, np.tile(K.WI, K.GUMBEL_PANELS)


def soft_levels(p: np.ndarray, mid: np.ndarray, n: int, lam: float, c: np.ndarray) -> np.ndarray:
    """Exact R_i on levels for soft Best-of-n at temperature lam."""
    if n == 1:
        return c.copy()
    z, wz = _z_rule()
    d = (mid[:, None] - mid[None, :]) / lam  # (m, m): (C_j - C_l) / lam
    gam = _gumbel_pdf(z) * wz  # (Z,)
    G = _gumbel_cdf(d[:, :, None] + z[None, None, :])  # (j, l, Z)
    Q = np.minimum(np.einsum("jlz,l->jz", G, p), 1.0)  # Q(C_j + lam z)
    Kj = (Q ** (n - 1)) @ gam
    inner = (Q ** (n - 2)) * gam[None, :] * (c * p)[:, None]  # (j, Z)
    return n * c * Kj + n * (n - 1) * np.einsum("jz,jiz->i", inner, G)


def _y_rule(lam: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = K.GAM_ZERO * lam, 1.0 + K.GAM_ONE * lam
    count = max(int(np.ceil((hi - lo) / width)), 1)
    edges = np.linspace(lo, hi, count + 1)
    h = 0.5 * np.diff(edges)
    y = (edges[:-1, None] + h[:, None] * (1.0 + K.XI[None, :])).ravel()
    return y, (h[:, None] * K.WI[None, :]).ravel()


def soft_nodes(grid: Grid, f: np.ndarray, n: int, lam: float, ref_cdf: np.ndarray) -> np.ndarray:
    """R(v) at the grid's nodes for soft Best-of-n of the density f (values at the nodes)."""
    y, wy = _y_rule(lam, 4.0 * lam)
    arg = (y[:, None] - grid.u[None, :]) / lam  # (Y, U)
    Gam = _gumbel_cdf(arg)
    mass = grid.w * f
    Q = np.minimum(Gam @ mass, 1.0)  # (Y,)
    gam = _gumbel_pdf(arg) / lam
    K1 = (wy * Q ** (n - 1)) @ gam  # K(v) at the nodes
    if n == 1:
        return ref_cdf * K1
    M = gam @ (mass * ref_cdf)
    return n * K1 * ref_cdf + n * (n - 1) * ((wy * Q ** (n - 2) * M) @ Gam)
