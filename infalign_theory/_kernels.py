"""Every numba kernel of the library, in float64, under one jit policy.

Kernels never validate: the public functions in the other modules check their inputs,
allocate the outputs and make one call here. The jit options are set once, below:
``cache=True`` (compile once per machine), ``error_model="numpy"`` (division by zero gives
inf/NaN instead of raising) and no ``fastmath``, because log-weights of ``-inf`` and
probabilities of exactly 0 or 1 are legitimate values here.

Conventions shared by the kernels
---------------------------------
* A probability ``F`` always travels with its complement ``Fc = 1 - F``; the smaller of the
  two is the accurate one (it was accumulated from its own end), the larger is recomputed as
  one minus the smaller.  This keeps ``F**N`` and ``(1 - F)**N`` accurate for N up to
  thousands at both ends of [0, 1].
* The continuous engine works on panels of [0, 1] split at u = 1/2: panels of side 0 carry
  the coordinate x = u, panels of side 1 carry x = s = 1 - u, so that the node positions
  near *either* end are exact (see ``_mesh.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

jit = njit(cache=True, error_model="numpy")

EPS = float(np.finfo(np.float64).eps)

# --------------------------------------------------------------------------------------
# Gauss-Legendre panel rule and its spectral companions (computed once, at import).
# --------------------------------------------------------------------------------------
NODES = 20
XI, WI = np.polynomial.legendre.leggauss(NODES)
_V = np.polynomial.legendre.legvander(XI, NODES)  # P_j(xi_i), j = 0..NODES
# Legendre coefficients of the degree-(NODES-1) interpolant: c = COEF @ f (exact by Gauss).
COEF = (np.arange(NODES) + 0.5)[:, None] * (_V[:, :NODES].T * WI[None, :])
# Integrated Legendre polynomials at the nodes: int_{-1}^{xi_i} P_j(x) dx.
_IP = np.empty((NODES, NODES))
_IP[:, 0] = XI + 1.0
for _j in range(1, NODES):
    _IP[:, _j] = (_V[:, _j + 1] - _V[:, _j - 1]) / (2 * _j + 1)
# Spectral integration matrix on [-1, 1]: int_{-1}^{xi_i} f = sum_k CUM[i, k] f_k.
CUM = _IP @ COEF
# The four highest Legendre coefficients measure how well a panel resolves a function.
TAIL = np.ascontiguousarray(COEF[-4:])
del _j


# --------------------------------------------------------------------------------------
# Scalar helpers.
# --------------------------------------------------------------------------------------
@jit
def kl_density(r):
    """phi(r) = 1 + (r - 1) e^r >= 0, so that KL(p || q) = E_q[phi(log p/q)].

    Accurate for all r: a Taylor series near 0, where the direct form cancels.
    """
    if r < -745.0:
        return 1.0
    if abs(r) < 0.25:
        # phi(r) = sum_{k>=2} (k - 1) r^k / k!
        term = r * r / 2.0
        total = term
        k = 2
        while True:
            term *= r / (k + 1)
            k += 1
            add = term * (k - 1)
            total += add
            if abs(add) <= 1e-18 * abs(total) or k > 40:
                break
        return total
    return r * math.exp(r) - math.expm1(r)


@jit
def log_pair(F, Fc):
    """(log F, log(1 - F)) from the pair (F, Fc), trusting the smaller entry."""
    if F <= Fc:
        if F <= 0.0:
            return -np.inf, 0.0
        return math.log(F), math.log1p(-F)
    if Fc <= 0.0:
        return 0.0, -np.inf
    return math.log1p(-Fc), math.log(Fc)


@jit
def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 100000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


@jit
def _lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@jit
def betainc_pair(a, b, F, Fc):
    """Regularised incomplete beta I_F(a, b) and its complement, from the pair (F, Fc)."""
    logF, logFc = log_pair(F, Fc)
    if logF == -np.inf:
        return 0.0, 1.0
    if logFc == -np.inf:
        return 1.0, 0.0
    front = math.exp(a * logF + b * logFc - _lbeta(a, b))
    x = math.exp(logF)
    xc = math.exp(logFc)
    if x < (a + 1.0) / (a + b + 2.0):
        val = front * _betacf(a, b, x) / a
        return val, 1.0 - val
    valc = front * _betacf(b, a, xc) / b
    return 1.0 - valc, valc


@jit
def cdf_map(k, n, F, Fc):
    """g(F) and 1 - g(F) for the k-th smallest of n samples: g(F) = I_F(k, n - k + 1)."""
    if n == 1:
        return F, Fc
    logF, logFc = log_pair(F, Fc)
    if k == n:  # best of n: g = F^n, 1 - g = -expm1(n log F); both exact given log F
        return math.exp(n * logF), -math.expm1(n * logF)
    if k == 1:  # worst of n: 1 - g = (1 - F)^n
        return -math.expm1(n * logFc), math.exp(n * logFc)
    return betainc_pair(float(k), float(n - k + 1), F, Fc)


@jit
def cdf_map_prime(k, n, F, Fc):
    """g'(F) for the k-th smallest of n: F^(k-1) (1 - F)^(n-k) / B(k, n - k + 1)."""
    if n == 1:
        return 1.0
    logF, logFc = log_pair(F, Fc)
    lg = -_lbeta(float(k), float(n - k + 1))
    if k > 1:
        lg += (k - 1) * logF
    if n - k > 0:
        lg += (n - k) * logFc
    return math.exp(lg)


@jit
def cdf_map_array(k, n, F, Fc, out, outc):
    for i in range(F.size):
        out[i], outc[i] = cdf_map(k, n, F[i], Fc[i])


@jit
def cdf_map_prime_array(k, n, F, Fc, out):
    for i in range(F.size):
        out[i] = cdf_map_prime(k, n, F[i], Fc[i])


# --------------------------------------------------------------------------------------
# Discrete calibrated space: levels j = 0..m-1 with base masses q_j.
# --------------------------------------------------------------------------------------
@jit
def _shift(values, weights):
    """A shift c for log-weights: their weighted mean when they vary little, else their max.

    Any c gives the same normalised result; the mean keeps tiny tilts (large beta) exact
    to relative precision, the max prevents overflow.
    """
    top = -np.inf
    mean = 0.0
    for i in range(values.size):
        if values[i] > top:
            top = values[i]
        mean += weights[i] * values[i]
    if np.isfinite(mean) and top - mean <= 1.0:
        return mean
    return top


@jit
def discrete_tilt(q, ell, p_out, r_out):
    """Tilt p_j ∝ q_j exp(ell_j); writes p and r = log(p/q); returns KL(p || q).

    The masses q are used as q / sum(q), so that a sum of one missed by rounding does not
    leave an absolute error of 1e-17 in a KL of 1e-20.
    """
    m = q.size
    S = 0.0
    for j in range(m):
        S += q[j]
    c = _shift(ell, q)
    M = 0.0
    Z = 0.0
    for j in range(m):
        d = ell[j] - c
        M += q[j] * math.expm1(d)
        Z += q[j] * math.exp(d)
    M /= S
    logZ = math.log1p(M) if abs(M) < 0.5 else math.log(Z / S)
    kl = 0.0
    for j in range(m):
        r = ell[j] - c - logZ
        r_out[j] = r
        p_out[j] = q[j] / S * math.exp(r)
        kl += q[j] * kl_density(r)
    return kl / S


@jit
def discrete_kl(q, r):
    """KL(p || q) = sum_j q_j phi(r_j) with r_j = log(p_j / q_j) (r = -inf where p_j = 0).

    Every term is >= 0, so tiny KLs keep full relative precision.
    """
    kl = 0.0
    for j in range(q.size):
        kl += q[j] * kl_density(r[j])
    return kl


@jit
def _cumulative_pair(p, F, Fc):
    """F_j = p_0 + ... + p_j from below and Fc_j = p_{j+1} + ... from above."""
    m = p.size
    acc = 0.0
    for j in range(m):
        acc += p[j]
        F[j] = acc
    acc = 0.0
    for j in range(m - 1, -1, -1):
        Fc[j] = acc
        acc += p[j]


@jit
def discrete_win_rate(p, q, k, n, kr, nr):
    """W(T(p) ≻ T'(q)) with ties ½, T = k-th of n on p, T' = kr-th of nr on q.

    Both sides have level CDFs g(P_j) and g'(F_j); with A, B the two level CDFs,
    W = sum_j (A_j - A_{j-1}) (B_j + B_{j-1}) / 2.
    """
    m = q.size
    P = np.empty(m)
    Pc = np.empty(m)
    F = np.empty(m)
    Fc = np.empty(m)
    _cumulative_pair(p, P, Pc)
    _cumulative_pair(q, F, Fc)
    a_prev = 0.0
    b_prev = 0.0
    w = 0.0
    for j in range(m):
        a, _ = cdf_map(k, n, P[j], Pc[j])
        b, _ = cdf_map(kr, nr, F[j], Fc[j])
        if j == m - 1:
            a = 1.0
            b = 1.0
        w += (a - a_prev) * (b + b_prev) * 0.5
        a_prev = a
        b_prev = b
    return w


@jit
def discrete_level_masses(p, k, n, out):
    """Masses of the k-th of n of p on each level: g(P_j) - g(P_{j-1}).

    Each difference is taken on the side where it is accurate: of g below 1/2, of 1 - g above.
    """
    m = p.size
    P = np.empty(m)
    Pc = np.empty(m)
    _cumulative_pair(p, P, Pc)
    g_prev = 0.0
    gc_prev = 1.0
    for j in range(m):
        g, gc = cdf_map(k, n, P[j], Pc[j])
        if j == m - 1:
            g = 1.0
            gc = 0.0
        out[j] = g - g_prev if g <= 0.5 else gc_prev - gc
        g_prev = g
        gc_prev = gc


# --------------------------------------------------------------------------------------
# Continuous calibrated space: a tilt exp(ell(u)) of Uniform[0, 1] on a panel mesh.
# --------------------------------------------------------------------------------------
# Layout of the `stats` vector written by `tilt_pass`.
ST_LOGZ, ST_KL, ST_WSTD, ST_VAR, ST_CL, ST_CR, ST_MEAN, ST_FLOOR = range(8)
N_STATS = 8


@jit
def _panel_tail(values, tail):
    """Largest of the four highest Legendre coefficients of `values` on one panel."""
    t = 0.0
    for k in range(tail.shape[0]):
        c = 0.0
        for i in range(values.size):
            c += tail[k, i] * values[i]
        if abs(c) > t:
            t = abs(c)
    return t


@jit
def _splittable(a, b):
    return (b - a) > 64.0 * EPS * b


@jit
def tilt_pass(side, a, b, phi, off_l, off_r, beta, rtol, xi, wi, tail, r_out, mass_out, flags,
              stats):
    """One pass over the mesh for the tilt f(u) ∝ exp(Phi(u) / beta).

    ``phi[p, i]`` holds Phi at node i of panel p minus the side's offset (``off_l`` on side
    0, ``off_r`` on side 1).  Writes the log-density r = log f at the nodes, each panel's
    mass, the panels that need splitting, and the summary statistics (see ``ST_*``).
    """
    P, n = phi.shape
    inv_beta = 1.0 / beta
    ol = off_l * inv_beta
    orr = off_r * inv_beta
    # Pass 1: the shift. Each side keeps its own shift, relative to its own offset, so that
    # differences near the maximum are exact (no rounding through a large common constant).
    max_l = -np.inf
    max_r = -np.inf
    mean = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        for i in range(n):
            v = phi[p, i] * inv_beta
            if side[p] == 0:
                if v > max_l:
                    max_l = v
                mean += h * wi[i] * (v + ol)
            else:
                if v > max_r:
                    max_r = v
                mean += h * wi[i] * (v + orr)
    top_l = max_l + ol
    top_r = max_r + orr
    top = max(top_l, top_r)
    if np.isfinite(mean) and top - mean <= 1.0:
        c_l = mean - ol
        c_r = mean - orr
    elif top_r >= top_l:
        c_r = max_r
        c_l = max_r + (off_r - off_l) * inv_beta
    else:
        c_l = max_l
        c_r = max_l + (off_l - off_r) * inv_beta
    # Pass 2: normaliser, with the weights' own sum W (1 up to rounding) divided out so
    # that tiny KLs keep relative precision.
    M = 0.0
    Z = 0.0
    W = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        cs = c_l if side[p] == 0 else c_r
        for i in range(n):
            d = phi[p, i] * inv_beta - cs
            M += h * wi[i] * math.expm1(d)
            Z += h * wi[i] * math.exp(d)
            W += h * wi[i]
    M /= W
    logZ = math.log1p(M) if abs(M) < 0.5 else math.log(Z / W)
    # Pass 3: log-density, masses, KL, standard win rate.
    kl = 0.0
    wstd = 0.0
    mean_r = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        cs = c_l if side[p] == 0 else c_r
        mass = 0.0
        for i in range(n):
            r = phi[p, i] * inv_beta - cs - logZ
            r_out[p, i] = r
            fi = math.exp(r)
            x = a[p] + h * (1.0 + xi[i])
            u = x if side[p] == 0 else 1.0 - x
            w = h * wi[i]
            mass += w * fi
            kl += w * kl_density(r)
            wstd += w * u * fi
            if fi > 0.0:
                mean_r += w * fi * r
        mass_out[p] = mass
    kl /= W
    wstd /= W
    mean_r /= W
    # Pass 4: variance of ell under the tilt (dKL/dlog(beta) = -Var) and the error flags:
    # a panel is split while the density or the KL integrand is not resolved to tolerance
    # above its rounding floor (ell = Phi/beta - c carries an error of about EPS(|ell|+|c|)).
    f = np.empty(n)
    g = np.empty(n)
    var = 0.0
    kl_tol = rtol * kl
    floor = 0.0  # error left in panels that rounding keeps from resolving
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        cs = c_l if side[p] == 0 else c_r
        noise_f = 0.0
        noise_g = 0.0
        top = -np.inf
        for i in range(n):
            top = max(top, r_out[p, i])
        rel_err = 0.0  # relative rounding of f where f matters on this panel
        for i in range(n):
            r = r_out[p, i]
            fi = math.exp(r)
            f[i] = fi
            g[i] = kl_density(r)
            if fi > 0.0:
                d = r - mean_r
                var += h * wi[i] * fi * d * d
            err_r = 4.0 * EPS * (1.0 + abs(phi[p, i] * inv_beta) + abs(cs))
            if r > top - 40.0 and err_r > rel_err:
                rel_err = err_r
            if fi * err_r > noise_f:
                noise_f = fi * err_r
            if abs(r) * fi * err_r > noise_g:
                noise_g = abs(r) * fi * err_r
        # Rounding may stop refinement only where it is small in relative terms; where it is
        # large, the nodes sit at huge |Phi/beta| and splitting moves them where it is not.
        if rel_err > 1e-6:
            noise_f = 0.0
            noise_g = 0.0
        flags[p] = False
        tail_f = h * _panel_tail(f, tail)
        tail_g = h * _panel_tail(g, tail)
        if _splittable(a[p], b[p]):
            if tail_f > rtol + 64.0 * h * noise_f:
                flags[p] = True
            elif tail_g > kl_tol + 64.0 * h * noise_g:
                flags[p] = True
        if not flags[p] and (tail_f > rtol or tail_g > kl_tol):
            floor += max(tail_f, tail_g / max(kl, 1.0))
    stats[ST_LOGZ] = logZ
    stats[ST_KL] = kl
    stats[ST_WSTD] = wstd
    stats[ST_VAR] = var / W
    stats[ST_FLOOR] = floor
    stats[ST_CL] = c_l
    stats[ST_CR] = c_r
    stats[ST_MEAN] = mean_r
    return kl


@jit
def cdf_at_nodes(side, a, b, r, cum, wi, G, Gc):
    """CDF pair at every node from the log-density r, by spectral integration per panel.

    Side 0 accumulates G = P(U <= u) from u = 0; side 1 accumulates Gc = P(U > u) from
    u = 1, so each side's small probabilities are exact sums, never differences.
    """
    P, n = r.shape
    f = np.empty(n)
    acc0 = 0.0
    acc1 = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        for i in range(n):
            f[i] = math.exp(r[p, i])
        acc = acc0 if side[p] == 0 else acc1
        for i in range(n):
            s = 0.0
            for k in range(n):
                s += cum[i, k] * f[k]
            v = acc + h * s
            if side[p] == 0:
                G[p, i] = v
                Gc[p, i] = 1.0 - v
            else:
                Gc[p, i] = v
                G[p, i] = 1.0 - v
        mass = 0.0
        for i in range(n):
            mass += wi[i] * f[i]
        if side[p] == 0:
            acc0 = acc + h * mass
        else:
            acc1 = acc + h * mass


@jit
def win_pass(side, a, b, r, k, n, kr, nr, atol, rtol_cdf, xi, wi, cum, tail, flags):
    """W(T(pi) ≻ T'(base)) = int_0^1 (1 - g(G(u))) g_ref'(u) du on the mesh, with flags.

    T is the k-th smallest of n applied to the tilt with log-density r, T' the kr-th
    smallest of nr applied to Uniform[0, 1].  A panel is flagged when the integrand is not
    resolved to ``atol`` above the level that the CDF's own error (``rtol_cdf``) allows.
    Returns the win rate and the error left in panels where that floor stopped refinement.
    """
    P, m = r.shape
    G = np.empty((P, m))
    Gc = np.empty((P, m))
    cdf_at_nodes(side, a, b, r, cum, wi, G, Gc)
    vals = np.empty(m)
    err_G = max(rtol_cdf, 16.0 * EPS)
    w_total = 0.0
    floor = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        noise = 0.0
        for i in range(m):
            x = a[p] + h * (1.0 + xi[i])
            if side[p] == 0:
                u = x
                s = 1.0 - x
            else:
                u = 1.0 - x
                s = x
            _, gc = cdf_map(k, n, G[p, i], Gc[p, i])
            dref = cdf_map_prime(kr, nr, u, s)
            vals[i] = gc * dref
            w_total += h * wi[i] * vals[i]
            sens = cdf_map_prime(k, n, G[p, i], Gc[p, i]) * dref * err_G
            if sens > noise:
                noise = sens
        flags[p] = False
        t = h * _panel_tail(vals, tail)
        if _splittable(a[p], b[p]) and t > atol + 8.0 * h * noise:
            flags[p] = True
        elif t > atol:
            floor += t
    return w_total, floor
