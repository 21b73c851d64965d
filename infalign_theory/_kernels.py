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
* Order statistics: g(F) = I_F(k, n - k + 1) is scipy's incomplete beta (Boost), reached
  through ``scipy.special.cython_special`` by a named cell that holds its address (so the
  kernels stay cacheable, and scipy.special is imported only by the first call that needs
  it), or a short binomial tail summed; g'(F) is n P(Bin(n - 1, F) = k - 1) in
  Loader's saddle-point form. Neither takes a difference of log-gamma values, which loses
  1e-9 at n = 10**6.
"""

from __future__ import annotations

import ctypes
import math
from fractions import Fraction

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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
CUM = np.ascontiguousarray(_IP @ COEF)
# The four highest Legendre coefficients measure how well a panel resolves a function.
TAIL = np.ascontiguousarray(COEF[-4:])
# The interpolant's values at the panel's two ends, z = -1 and z = +1 (P_j(+-1) = (+-1)^j):
# a feature squeezed between a panel's end and its first node shows as a mismatch with the
# neighbouring panel's value there.
ENDS = np.ascontiguousarray(np.stack([(-1.0) ** np.arange(NODES), np.ones(NODES)]) @ COEF)


def _running_mean_matrix(m: int) -> np.ndarray:
    """D with R = D c: the Legendre coefficients of R(z) = (1/(z+1)) int_{-1}^z p, p = sum c_j P_j.

    int_{-1}^z P_j = (P_{j+1} - P_{j-1})/(2j + 1) (P_0 + P_1 for j = 0), then division by
    1 + z = P_0 + P_1 by back-substitution from the top degree, using
    (1 + z) P_j = P_j + ((j + 1) P_{j+1} + j P_{j-1})/(2j + 1). Exact, in rationals; the
    entries of D are at most 1 in size, so R is as well conditioned as p.
    """
    out = np.empty((m, m))
    for col in range(m):
        q = [Fraction(0)] * (m + 1)  # coefficients of int_{-1}^z P_col
        if col == 0:
            q[0] += 1
            q[1] += 1
        else:
            q[col + 1] += Fraction(1, 2 * col + 1)
            q[col - 1] -= Fraction(1, 2 * col + 1)
        r = [Fraction(0)] * (m + 2)
        for j in range(m, 0, -1):  # q_j = r_j + r_{j-1} j/(2j-1) + r_{j+1} (j+1)/(2j+3)
            rest = q[j] - r[j] - r[j + 1] * Fraction(j + 1, 2 * j + 3)
            r[j - 1] = rest * Fraction(2 * j - 1, j)
        out[:, col] = [float(x) for x in r[:m]]
    return out


# Legendre coefficients of the running mean (1/(z+1)) int_{-1}^z f of the interpolant, from
# the values at the nodes: int_a^x f = (x - a) R(z) keeps full relative precision however
# close x is to the panel's left end, where the integrated Legendre sum cancels.
RUNNING_MEAN = np.ascontiguousarray(_running_mean_matrix(NODES) @ COEF)
del _j


# --------------------------------------------------------------------------------------
# Scalar helpers.
# --------------------------------------------------------------------------------------
# phi(r) = sum_{k>=2} (k - 1) r^k / k!, truncated where the next term is below 1e-24 at |r| = 1/2.
_PHI_SERIES = np.array([(k - 1) / math.factorial(k) for k in range(2, 22)])


@jit
def kl_density(r, er):
    """phi(r) = 1 + (r - 1) e^r >= 0, given er = e^r, so that KL(p || q) = E_q[phi(log p/q)].

    Accurate for all r: a Taylor polynomial for |r| < 1/2, where the direct form cancels
    (the cancellation left beyond is a factor below 6).
    """
    if er == 0.0:
        return 1.0
    if abs(r) < 0.5:
        acc = 0.0
        for j in range(_PHI_SERIES.size - 1, -1, -1):
            acc = acc * r + _PHI_SERIES[j]
        return acc * r * r
    return 1.0 + (r - 1.0) * er


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


# Regularised incomplete beta from scipy.special (Boost's ibeta), called from the kernels
# through its C entry point in scipy.special.cython_special. Importing scipy.special takes
# longer than importing numpy, and most calls (Best-of-N, Worst-of-N) never need it, so the
# entry point is found on the first call, not at import. A compiled kernel loads the
# function's address from a named cell (an external global, so the kernels stay cacheable
# on disk) and calls it; the cell first holds a small resolver, which imports
# cython_special, writes the entry point into the cell and computes that first value.
_SPECIAL = ctypes.CFUNCTYPE(
    ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_int
)


class _LazySpecial:
    """The cell of one scipy.special function f(a, b, x), resolved on its first call."""

    def __init__(self, name: str):
        self.name = name
        self.symbol = f"infalign_theory_scipy_{name}_cell"
        self.resolver = _SPECIAL(self._first_call)  # kept alive with the cell
        self.cell = ctypes.c_void_p(ctypes.cast(self.resolver, ctypes.c_void_p).value)
        llvm.add_symbol(self.symbol, ctypes.addressof(self.cell))

    def address(self) -> int:
        """The C entry point of the float64 specialisation in scipy.special.cython_special."""
        from numba.extending import get_cython_function_address
        from scipy.special import cython_special

        fused = f"__pyx_fuse_0{self.name}"  # the float64 specialisation (scipy >= 1.12)
        entry = fused if fused in cython_special.__pyx_capi__ else self.name
        return get_cython_function_address("scipy.special.cython_special", entry)

    def resolve(self) -> None:
        """Point the cell at scipy's function (idempotent)."""
        self.cell.value = self.address()

    def _first_call(self, a: float, b: float, x: float, skip: int) -> float:
        try:
            self.resolve()
            return _SPECIAL(self.cell.value)(a, b, x, skip)
        except Exception:  # scipy.special unusable: an unmistakable value, not a wrong one
            return math.nan

    def intrinsic(self):
        """A kernel-callable f(a, b, x): load the cell, call what it points at."""
        symbol = self.symbol

        @intrinsic
        def call(typingctx, a, b, x):
            sig = types.float64(types.float64, types.float64, types.float64)

            def codegen(context, builder, signature, args):
                double = ir.DoubleType()
                fnty = ir.FunctionType(double, [double, double, double, ir.IntType(32)])
                cell = builder.module.globals.get(symbol)
                if cell is None:
                    cell = ir.GlobalVariable(builder.module, fnty.as_pointer(), symbol)
                    cell.linkage = "external"
                # The trailing int is Cython's skip-dispatch flag (pass 0).
                return builder.call(builder.load(cell), [*args, ir.Constant(ir.IntType(32), 0)])

            return sig, codegen

        return call


_BETAINC = _LazySpecial("betainc")
_BETAINCC = _LazySpecial("betaincc")
_betainc = _BETAINC.intrinsic()  # I_x(a, b)
_betaincc = _BETAINCC.intrinsic()  # 1 - I_x(a, b), computed from its own end


#: Above this, 1 - I is taken from ``betaincc`` instead of as a difference (which would
#: lose up to 64 eps relative); ``betaincc`` costs 10 to 20 times ``betainc``.
_DIFFERENCE_MAX = 1.0 - 1.0 / 64.0


@jit
def betainc_pair(a, b, F, Fc):
    """Regularised incomplete beta I_F(a, b) and its complement, from the pair (F, Fc).

    The argument passed on is the accurate entry of the pair (I_F(a, b) = 1 - I_{1-F}(b, a)).
    The result on that side is computed directly; its complement is one minus it, unless it
    is below 1/64, when it is computed directly as well. Both keep scipy's relative accuracy
    (5e-13 or better at a, b ~ 1e6 against exact binomial sums) to within 64 eps.
    """
    if F <= Fc:
        if F <= 0.0:
            return 0.0, 1.0
        v = _betainc(a, b, F)
        if v <= _DIFFERENCE_MAX:
            return v, 1.0 - v
        vc = _betaincc(a, b, F)
        return 1.0 - vc, vc
    if Fc <= 0.0:
        return 1.0, 0.0
    vc = _betainc(b, a, Fc)
    if vc <= _DIFFERENCE_MAX:
        return 1.0 - vc, vc
    v = _betaincc(b, a, Fc)
    return v, 1.0 - v


# stirlerr(n) = log(n!) - log(sqrt(2 pi n) (n/e)^n) for n = 0..15 (mpmath, 40 digits).
_STIRLERR = np.array([
    0.0, 0.08106146679532726, 0.0413406959554093, 0.02767792568499834,
    0.020790672103765093, 0.016644691189821193, 0.013876128823070748,
    0.01189670994589177, 0.010411265261972096, 0.009255462182712733,
    0.00833056343336287, 0.007573675487951841, 0.00694284010720953,
    0.006408994188004207, 0.0059513701127588475, 0.005554733551962801,
])  # fmt: skip
_TWO_PI = 2.0 * math.pi
# Coefficients of the asymptotic series of stirlerr: 1/12, 1/360, 1/1260, 1/1680, 1/1188.
_S0, _S1, _S2, _S3, _S4 = 1.0 / 12.0, 1.0 / 360.0, 1.0 / 1260.0, 1.0 / 1680.0, 1.0 / 1188.0


@jit
def _stirlerr(n):
    """The error of Stirling's formula for log(n!), n a non-negative integer (as float).

    A table up to 15, then the asymptotic series 1/(12n) - 1/(360n^3) + ... truncated where
    its next term is below 1e-17 relative (Loader 2000; R's ``stirlerr``).
    """
    if n <= 15.0:
        return _STIRLERR[int(n)]
    nn = n * n
    if n > 500.0:
        return (_S0 - _S1 / nn) / n
    if n > 80.0:
        return (_S0 - (_S1 - _S2 / nn) / nn) / n
    if n > 35.0:
        return (_S0 - (_S1 - (_S2 - _S3 / nn) / nn) / nn) / n
    return (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / n


@jit
def _bd0(x, m):
    """The deviance term x log(x / m) + m - x >= 0, without cancellation when x is near m.

    Near m it is the series (x - m) v + 2x sum_{j>=1} v^(2j+1) / (2j+1), v = (x - m)/(x + m),
    whose terms are all small (Loader 2000; R's ``bd0``).
    """
    if abs(x - m) < 0.1 * (x + m):
        v = (x - m) / (x + m)
        s = (x - m) * v
        ej = 2.0 * x * v
        v2 = v * v
        for j in range(1, 1000):
            ej *= v2
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
        return s
    return x * math.log(x / m) + m - x


@jit
def binomial_log_pmf(x, N, p, q):
    """The log-probability log P(Bin(N, p) = x), integer 0 < x < N, given p and q = 1 - p.

    Loader's saddle-point form (C. Loader, "Fast and accurate computation of binomial
    probabilities", 2000; R's ``dbinom`` and Boost): no difference of large logarithms,
    so the relative error stays a few eps times |x - Np| + 1 for N up to 10**6 and beyond,
    where lgamma(N + 1) - lgamma(x + 1) - lgamma(N - x + 1) loses 1e-9.
    """
    lc = _stirlerr(N) - _stirlerr(x) - _stirlerr(N - x) - _bd0(x, N * p) - _bd0(N - x, N * q)
    # log(2 pi x (N - x) / N): N - x is exact, where 1 - x/N would lose log10(N) digits
    return lc - 0.5 * math.log(_TWO_PI * x * (N - x) / N)


#: An order statistic whose shorter binomial tail has at most this many terms sums them;
#: scipy's ``betainc`` loses up to 1e-11 there (first parameter below ~40, second ~1e6).
SHORT_TAIL = 50


@jit
def _binomial_pmf(j, n, F, Fc, logF, logFc):
    """P(Bin(n, F) = j) for an integer 0 <= j <= n, from the pair and its logarithms."""
    if j == 0:
        return math.exp(n * logFc)
    if j == n:
        return math.exp(n * logF)
    return math.exp(binomial_log_pmf(float(j), float(n), F, Fc))


@jit
def _short_lower_tail(k, n, F, Fc):
    """(P(Bin(n, F) >= k), P(Bin(n, F) < k)) summing the lower tail {0, ..., k - 1} (k small).

    The k terms are summed outward from the largest (the mode, clipped to the tail) by the
    ratio of neighbouring terms, so every term is below the first and none overflows. When
    the lower tail exceeds 1/2, the upper tail is small and is summed as well, upward from k
    (its terms fall from there) until they no longer count; the lower tail is then one minus
    it.
    """
    logF, logFc = log_pair(F, Fc)
    j0 = min(k - 1, int((n + 1) * F))
    t0 = _binomial_pmf(j0, n, F, Fc, logF, logFc)
    lower = t0
    t = t0
    for j in range(j0, 0, -1):  # p_{j-1} = p_j j / (n - j + 1) * Fc / F
        t *= j / (n - j + 1) * (Fc / F)
        lower += t
    t = t0
    for j in range(j0, k - 1):  # p_{j+1} = p_j (n - j) / (j + 1) * F / Fc
        t *= (n - j) / (j + 1) * (F / Fc)
        lower += t
    if lower <= 0.5:
        return 1.0 - lower, lower
    t = _binomial_pmf(k, n, F, Fc, logF, logFc)
    upper = t
    for j in range(k, n):
        t *= (n - j) / (j + 1) * (F / Fc)
        upper += t
        if t <= 1e-17 * upper:
            break
    # The lower tail is near one here: one minus the small tail is exact to half an ulp,
    # where the summed lower tail can round above one (and break monotonicity of g).
    return upper, 1.0 - upper


@jit
def order_cdf_pair(k, n, F, Fc):
    """(I_F(k, n - k + 1), its complement) for 1 < k < n, both to relative precision.

    I_F(k, n - k + 1) = P(Bin(n, F) >= k). A tail of at most ``SHORT_TAIL`` terms is summed
    (:func:`_short_lower_tail`, on the mirrored binomial for the upper tail); otherwise
    scipy's incomplete beta (:func:`betainc_pair`).
    """
    if F <= 0.0:
        return 0.0, 1.0
    if Fc <= 0.0:
        return 1.0, 0.0
    if k <= SHORT_TAIL and k <= n - k + 1:
        return _short_lower_tail(k, n, F, Fc)
    if n - k + 1 <= SHORT_TAIL:  # P(Bin(n, F) >= k) = P(Bin(n, 1 - F) < n - k + 1)
        lower, upper = _short_lower_tail(n - k + 1, n, Fc, F)
        return upper, lower
    return betainc_pair(float(k), float(n - k + 1), F, Fc)


@jit
def cdf_map(k, n, F, Fc):
    """g(F) and 1 - g(F) for the k-th smallest of n: g(F) = I_F(k, n - k + 1)."""
    if n == 1:
        return F, Fc
    logF, logFc = log_pair(F, Fc)
    if k == n:  # best of n: g = F^n, 1 - g = -expm1(n log F); both exact given log F
        return math.exp(n * logF), -math.expm1(n * logF)
    if k == 1:  # worst of n: 1 - g = (1 - F)^n
        return -math.expm1(n * logFc), math.exp(n * logFc)
    return order_cdf_pair(k, n, F, Fc)


@jit
def cdf_map_prime(k, n, F, Fc):
    """g'(F) for the k-th smallest of n: F^(k-1) (1 - F)^(n-k) / B(k, n - k + 1).

    Best-of-n and Worst-of-n as n F^(n-1) and n (1 - F)^(n-1) in log space; an interior k
    as n P(Bin(n - 1, F) = k - 1), by :func:`binomial_log_pmf`.
    """
    if n == 1:
        return 1.0
    logF, logFc = log_pair(F, Fc)
    if k == n:
        return n * math.exp((n - 1) * logF)
    if k == 1:
        return n * math.exp((n - 1) * logFc)
    if logF == -np.inf or logFc == -np.inf:
        return 0.0
    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), F, Fc))


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
def level_sums(level, x, out):
    """out[j] = sum of x[i] over i with level[i] == j, each sum compensated (Neumaier).

    The error of each sum is a rounding or two of the sum itself, however many terms a
    level merges (a plain running sum of 10**6 masses drifts by 1e-11).
    """
    comp = np.zeros(out.size)
    out[:] = 0.0
    for i in range(x.size):
        j = level[i]
        s = out[j]
        t = s + x[i]
        if abs(s) >= abs(x[i]):
            comp[j] += (s - t) + x[i]
        else:
            comp[j] += (x[i] - t) + s
        out[j] = t
    for j in range(out.size):
        out[j] += comp[j]


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
        kl += q[j] * kl_density(r, math.exp(r))
    return kl / S


@jit
def discrete_kl(q, r):
    """KL(p || q) = sum_j q_j phi(r_j) with r_j = log(p_j / q_j) (r = -inf where p_j = 0).

    Every term is >= 0, so tiny KLs keep full relative precision.
    """
    kl = 0.0
    for j in range(q.size):
        kl += q[j] * kl_density(r[j], math.exp(r[j]))
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
# Built-in transforms, evaluated inside the kernels (transforms.py calls these as well).
# --------------------------------------------------------------------------------------
T_IDENTITY, T_LOG, T_EXP, T_ZERO = 0, 1, 2, 3


@jit
def builtin_offsets(kind, t):
    """The constants (side 0, side 1) that values of a built-in transform are relative to."""
    if kind == T_IDENTITY:
        return 0.0, 1.0
    if kind == T_EXP:
        if t < 0.0:
            return 1.0, 1.0
        return 0.0, 1.0
    return 0.0, 0.0


@jit
def builtin_value(kind, t, x, side):
    """Phi minus the side's offset at x = u (side 0) or x = s = 1 - u (side 1)."""
    if kind == T_ZERO:
        return 0.0
    if kind == T_LOG:
        if side == 0:
            return math.log(x) if x > 0.0 else -np.inf
        return math.log1p(-x) if x < 1.0 else -np.inf
    if kind == T_IDENTITY or t == 0.0:
        return x if side == 0 else -x
    if abs(t) < 1e-8:
        # Phi_t(u) = u - t u s / 2 + t^2 u s (1 - 2u) / 12 + O(t^3), s = 1 - u: exact to
        # rounding here, where expm1(t) loses t's own digits (subnormal t above all).
        u = x if side == 0 else 1.0 - x
        s = 1.0 - x if side == 0 else x
        corr = -t * u * s / 2.0 + t * t * u * s * (1.0 - 2.0 * u) / 12.0
        if side == 0:
            return (u if t > 0.0 else -s) + corr
        return -s + corr
    if t > 0.0:
        if side == 0:  # e^{-t(1-u)} (1 - e^{-tu}) / (1 - e^{-t}): no overflow for any t
            return math.exp(-t * (1.0 - x)) * (math.expm1(-t * x) / math.expm1(-t))
        return math.expm1(-t * x) / -math.expm1(-t)  # Phi - 1
    tau = -t
    if side == 0:  # Phi - 1 = e^{-tau u} (e^{-tau (1-u)} - 1) / (1 - e^{-tau})
        return math.exp(-tau * x) * (math.expm1(-tau * (1.0 - x)) / -math.expm1(-tau))
    # Phi - 1 = -(e^{-tau u} - e^{-tau}) / (1 - e^{-tau}), the difference taken exactly:
    # e^{-tau} (e^{tau s} - 1), or e^{-tau u} (1 - e^{-tau s}) where e^{-tau} underflows.
    if tau < 700.0:
        diff = math.exp(-tau) * math.expm1(tau * x)
    else:
        diff = math.exp(-tau * (1.0 - x)) * -math.expm1(-tau * x)
    return diff / math.expm1(-tau)


@jit
def builtin_array(kind, t, x, side, out):
    for i in range(x.size):
        out[i] = builtin_value(kind, t, x[i], side)


# --------------------------------------------------------------------------------------
# Finite-K calibration (transforms.SampleCalibrated): binomial and trinomial means.
# --------------------------------------------------------------------------------------
#: A walk over binomial masses stops once a mass is below MIX_CUT of the mode's and its
#: term below MIX_REL of the sum so far (the rest is then below ~1e-18 of it).
MIX_CUT = 1e-40
MIX_REL = 1e-20


@jit
def _binomial_mean(n, x, y, delta, phi, offset, step, phimax):
    """E[phi[offset + step J]] for J ~ Binomial(n, p), p / (1 - p) = (x / y) (1 + delta).

    x, y >= 0 with x + y > 0; ``delta`` (|delta| ~ 1e-16) carries what rounding took from
    x / y, e.g. when x = 1 - y was rounded. The masses are walked from the mode outwards by
    the ratio P(j + 1) / P(j) = (n - j) x / ((j + 1) y), starting from 1 at the mode, and
    the sum is divided by their own total: no factorials, no normalising constant. Each
    ratio is formed afresh, and the one rounding common to every step -- of the odds
    themselves, which would compound to m roundings m steps away -- is put back to first
    order through ``delta``: mass j is scaled by 1 + (j - mode) delta. ``phimax`` bounds
    |phi|: a walk goes on past the mode's neighbourhood while its terms still matter to the
    sum (when phi vanishes at the mode, the sum is made of terms of mass 1e-150).
    """
    if y == 0.0 or x > 1e300 * y:  # P(J < n) < 1e-295: the mode holds everything
        return phi[offset + step * n]
    if x == 0.0 or y > 1e300 * x:
        return phi[offset]
    mode = min(max(int(math.floor((n + 1.0) * (x / (x + y)))), 0), n)
    total = 1.0
    acc = phi[offset + step * mode]
    total1 = 0.0  # sums of (j - mode) w_j and (j - mode) w_j phi_j: the delta correction
    acc1 = 0.0
    w = 1.0
    j = mode
    while j < n:
        w *= ((n - j) * x) / ((j + 1.0) * y)
        j += 1
        if w == 0.0 or (w < MIX_CUT and w * phimax <= MIX_REL * abs(acc)):
            break
        v = phi[offset + step * j]
        total += w
        acc += w * v
        total1 += (j - mode) * w
        acc1 += (j - mode) * w * v
    w = 1.0
    j = mode
    while j > 0:
        w *= (j * y) / ((n - j + 1.0) * x)
        j -= 1
        if w == 0.0 or (w < MIX_CUT and w * phimax <= MIX_REL * abs(acc)):
            break
        v = phi[offset + step * j]
        total += w
        acc += w * v
        total1 += (j - mode) * w
        acc1 += (j - mode) * w * v
    return (acc + delta * acc1) / (total + delta * total1)


@jit
def bernstein_mix(u, s, k, phi, out):
    """out_i = sum_j Binomial(j; k, u_i) phi_j at pairs (u_i, s_i = 1 - u_i).

    The smaller of u_i, s_i is exact and the larger is 1 minus it, rounded; the rounding is
    recovered exactly (Sterbenz) and passed on as the odds' correction.
    """
    phimax = np.max(np.abs(phi))
    for i in range(u.size):
        x = u[i]
        y = s[i]
        if x <= y:  # y = 1 - x + lo
            delta = -(((1.0 - y) - x) / y) if y > 0.0 else 0.0
        else:  # x = 1 - y + lo
            delta = ((1.0 - x) - y) / x if x > 0.0 else 0.0
        out[i] = _binomial_mean(k, x, y, delta, phi, 0, 1, phimax)


@jit
def trinomial_mix(below, tie, above, k, phi, out):
    """out_i = E[phi[S]], S = 2 B + T, (B, T, A) ~ Multinomial(k; below_i, tie_i, above_i).

    The score of K comparisons with ties counted one half: T ~ Binomial(k, tie) and, given
    T = tau, B ~ Binomial(k - tau, below / (below + above)). Walked like
    :func:`_binomial_mean` in both variables (the rounding of below + above put back in the
    odds of T); tie_i > 0.
    """
    phimax = np.max(np.abs(phi))
    for i in range(below.size):
        b = below[i]
        a = above[i]
        t = tie[i]
        rest = b + a
        if rest == 0.0 or t > 1e300 * rest:  # every comparison ties
            out[i] = phi[k]
            continue
        bb = rest - a  # two-sum: rest + lo = b + a exactly
        lo = (a - (rest - bb)) + (b - bb)
        delta = -lo / rest  # odds t / (b + a) = (t / rest) (1 + delta)
        mode = min(max(int(math.floor((k + 1.0) * (t / (t + rest)))), 0), k)
        total = 1.0
        acc = _binomial_mean(k - mode, b, a, 0.0, phi, mode, 2, phimax)
        total1 = 0.0
        acc1 = 0.0
        w = 1.0
        tau = mode
        while tau < k:
            w *= ((k - tau) * t) / ((tau + 1.0) * rest)
            tau += 1
            if w == 0.0 or (w < MIX_CUT and w * phimax <= MIX_REL * abs(acc)):
                break
            v = _binomial_mean(k - tau, b, a, 0.0, phi, tau, 2, phimax)
            total += w
            acc += w * v
            total1 += (tau - mode) * w
            acc1 += (tau - mode) * w * v
        w = 1.0
        tau = mode
        while tau > 0:
            w *= (tau * rest) / ((k - tau + 1.0) * t)
            tau -= 1
            if w == 0.0 or (w < MIX_CUT and w * phimax <= MIX_REL * abs(acc)):
                break
            v = _binomial_mean(k - tau, b, a, 0.0, phi, tau, 2, phimax)
            total += w
            acc += w * v
            total1 += (tau - mode) * w
            acc1 += (tau - mode) * w * v
        out[i] = (acc + delta * acc1) / (total + delta * total1)


# --------------------------------------------------------------------------------------
# Continuous calibrated space: a tilt exp(Phi(u)/beta) of Uniform[0, 1] on a panel mesh.
# --------------------------------------------------------------------------------------
# Layout of the `stats` vector written by `tilt_pass`.
ST_LOGZ, ST_KL, ST_WSTD, ST_VAR, ST_CL, ST_CR, ST_MEAN, ST_FLOOR = range(8)
N_STATS = 8
# What one refinement round concluded.
DONE, SPLIT, AT_FLOOR, IMPRECISE, TOO_BIG, NO_CONVERGENCE = range(6)


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
def _junction_flags(side, a, b, vals, ends, tol, flags):
    """Flag both panels at a junction where their interpolants disagree.

    The disagreement is measured per unit width of the wider panel and compared with
    ``tol``. ``vals`` holds one integrand at the nodes, (P, NODES). Adjacent panels of a side
    meet at b[p] = a[p + 1]; the two sides meet at u = 1/2 (x = 1/2 on both).
    """
    P = vals.shape[0]
    left_end = np.empty(P)
    right_end = np.empty(P)
    for p in range(P):
        lo = 0.0
        hi = 0.0
        for i in range(vals.shape[1]):
            lo += ends[0, i] * vals[p, i]
            hi += ends[1, i] * vals[p, i]
        left_end[p] = lo
        right_end[p] = hi
    last0 = -1
    last1 = -1
    for p in range(P):
        if side[p] == 0 and b[p] == 0.5:
            last0 = p
        if side[p] == 1 and b[p] == 0.5:
            last1 = p
        if p + 1 < P and side[p + 1] == side[p] and a[p + 1] == b[p]:
            width = max(b[p] - a[p], b[p + 1] - a[p + 1])
            if width * abs(right_end[p] - left_end[p + 1]) > tol:
                if _splittable(a[p], b[p]):
                    flags[p] = True
                if _splittable(a[p + 1], b[p + 1]):
                    flags[p + 1] = True
    if last0 >= 0 and last1 >= 0:
        width = max(b[last0] - a[last0], b[last1] - a[last1])
        if width * abs(right_end[last0] - right_end[last1]) > tol:
            if _splittable(a[last0], b[last0]):
                flags[last0] = True
            if _splittable(a[last1], b[last1]):
                flags[last1] = True


@jit
def _splittable(a, b):
    return (b - a) > 64.0 * EPS * b


@jit
def tilt_pass(
    side, a, b, phi, off_l, off_r, beta, rtol, xi, wi, tail, r_out, f, mass_out, flags, stats,
    ulps,
):  # fmt: skip
    """One pass over the mesh for the tilt f(u) ∝ exp(Phi(u) / beta).

    ``phi[p, i]`` holds Phi at node i of panel p minus the side's offset (``off_l`` on side
    0, ``off_r`` on side 1), with a relative error of about ``ulps`` units of rounding.
    Writes the log-density r = log f and the density f at the nodes, each panel's mass, the
    panels that need splitting, and the statistics (``ST_*``).
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
    small = np.isfinite(mean) and top - mean <= 1.0
    if small:  # the mean keeps tiny tilts (large beta) exact to relative precision
        c_l = mean - ol
        c_r = mean - orr
    elif max_r - max_l >= (off_l - off_r) * inv_beta:  # the maximum prevents overflow
        # (compared without the offsets/beta added to both: at beta = 1e-25 they absorb the
        # difference, and equal offsets then picked the wrong side)
        c_r = max_r
        c_l = max_r + (off_r - off_l) * inv_beta
    else:
        c_l = max_l
        c_r = max_l + (off_l - off_r) * inv_beta
    # Pass 2: the normaliser, with the weights' own sum W (1 up to rounding) divided out so
    # that tiny KLs keep relative precision.
    M = 0.0
    Z = 0.0
    W = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        cs = c_l if side[p] == 0 else c_r
        for i in range(n):
            d = phi[p, i] * inv_beta - cs
            w = h * wi[i]
            e = math.exp(d)
            f[p, i] = e
            Z += w * e
            W += w
            if small:
                M += w * math.expm1(d)
    logZ = math.log1p(M / W) if small else math.log(Z / W)
    scale = math.exp(-logZ)
    # Pass 3: log-density, density, KL integrand phi(log f), and the totals.
    g = np.empty((P, n))
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
            fi = f[p, i] * scale
            f[p, i] = fi
            gi = kl_density(r, fi)
            g[p, i] = gi
            x = a[p] + h * (1.0 + xi[i])
            u = x if side[p] == 0 else 1.0 - x
            w = h * wi[i]
            mass += w * fi
            kl += w * gi
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
    var = 0.0
    kl_tol = rtol * kl
    floor = 0.0  # error left in panels that rounding keeps from resolving
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        for i in range(n):
            if f[p, i] > 0.0:
                d = r_out[p, i] - mean_r
                var += h * wi[i] * f[p, i] * d * d
        flags[p] = False
        tail_f = h * _panel_tail(f[p], tail)
        tail_g = h * _panel_tail(g[p], tail)
        if tail_f <= rtol and tail_g <= kl_tol:
            continue
        cs = c_l if side[p] == 0 else c_r
        noise_f = 0.0
        noise_g = 0.0
        top = -np.inf
        for i in range(n):
            top = max(top, r_out[p, i])
        rel_err = 0.0  # relative rounding of f where f matters on this panel
        for i in range(n):
            r = r_out[p, i]
            err_r = ulps * EPS * (1.0 + abs(phi[p, i] * inv_beta) + abs(cs))
            if r > top - 40.0 and err_r > rel_err:
                rel_err = err_r
            noise_f = max(noise_f, f[p, i] * err_r)
            noise_g = max(noise_g, abs(r) * f[p, i] * err_r)
        # Rounding may stop refinement only where it is small in relative terms; where it is
        # large, the nodes sit at huge |Phi/beta| and splitting moves them where it is not.
        if rel_err > 1e-6:
            noise_f = 0.0
            noise_g = 0.0
        if _splittable(a[p], b[p]) and (
            tail_f > rtol + 64.0 * h * noise_f or tail_g > kl_tol + 64.0 * h * noise_g
        ):
            flags[p] = True
        else:
            floor += max(tail_f, tail_g / max(kl, 1.0))
    _junction_flags(side, a, b, f, ENDS, rtol, flags)
    _junction_flags(side, a, b, g, ENDS, kl_tol, flags)
    stats[ST_LOGZ] = logZ
    stats[ST_KL] = kl
    stats[ST_WSTD] = wstd
    stats[ST_VAR] = var / W
    stats[ST_CL] = c_l
    stats[ST_CR] = c_r
    stats[ST_MEAN] = mean_r
    stats[ST_FLOOR] = floor


@jit
def cdf_at_nodes(side, a, b, f, cum, wi, G, Gc):
    """CDF pair at every node from the density f, by spectral integration per panel.

    Side 0 accumulates G = P(U <= u) from u = 0; side 1 accumulates Gc = P(U > u) from
    u = 1, so each side's small probabilities are exact sums, never differences.
    """
    P, n = f.shape
    partial = np.dot(f, cum.T)  # (P, n): int over [panel start, node] of the interpolant
    acc0 = 0.0
    acc1 = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        acc = acc0 if side[p] == 0 else acc1
        for i in range(n):
            v = acc + h * partial[p, i]
            if side[p] == 0:
                G[p, i] = v
                Gc[p, i] = 1.0 - v
            else:
                Gc[p, i] = v
                G[p, i] = 1.0 - v
        mass = 0.0
        for i in range(n):
            mass += wi[i] * f[p, i]
        if side[p] == 0:
            acc0 = acc + h * mass
        else:
            acc1 = acc + h * mass


@jit
def _complement(k, n, F, Fc):
    """1 - g(F) for the k-th smallest of n, taking only the logarithm it needs.

    Best-of-n and Worst-of-n with n <= 64 use integer powers of the accurate entry of the
    pair: an absolute error of about n eps, all the win-rate integral needs, and no
    transcendental call.
    """
    F = min(max(F, 0.0), 1.0)  # a CDF accumulated by quadrature may stray by a rounding
    Fc = min(max(Fc, 0.0), 1.0)
    if n == 1:
        return Fc
    if k == n:  # 1 - F^n
        if n <= 64:
            return 1.0 - (F if F <= Fc else 1.0 - Fc) ** n
        if F <= Fc:
            return 1.0 if F == 0.0 else -math.expm1(n * math.log(F))
        return -math.expm1(n * math.log1p(-Fc))
    if k == 1:  # (1 - F)^n
        if n <= 64:
            return (Fc if Fc <= F else 1.0 - F) ** n
        if Fc <= F:
            return 0.0 if Fc == 0.0 else math.exp(n * math.log(Fc))
        return math.exp(n * math.log1p(-F))
    if k <= SHORT_TAIL or n - k + 1 <= SHORT_TAIL:
        return order_cdf_pair(k, n, F, Fc)[1]
    # 1 - I_F(k, n - k + 1) = I_{1-F}(n - k + 1, k): one call, on the accurate entry; as
    # for Best-of-n, the absolute error (eps) is all the integral needs.
    if F <= Fc:
        return 1.0 - _betainc(float(k), float(n - k + 1), F)
    return _betainc(float(n - k + 1), float(k), Fc)


@jit
def _density(k, n, u, s):
    """g'(u) for the k-th smallest of n at an exact pair (u, s = 1 - u).

    Best-of-n and Worst-of-n by integer powers (relative error about 2 log2(n) eps, no
    logarithms); an interior k as a binomial probability (:func:`binomial_log_pmf`), where
    1/B(k, n - k + 1) alone overflows for n near 1000.
    """
    if n == 1:
        return 1.0
    if k == n:
        return n * u ** (n - 1)
    if k == 1:
        return n * s ** (n - 1)
    if u <= 0.0 or s <= 0.0:
        return 0.0
    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), u, s))


@jit
def win_pass(side, a, b, f, k, n, kr, nr, atol, rtol_cdf, xi, wi, cum, tail, flags):
    """W(T(pi) ≻ T'(base)) = int_0^1 (1 - g(G(u))) g_ref'(u) du on the mesh, with flags.

    T is the k-th smallest of n applied to the tilt with density f, T' the kr-th
    smallest of nr applied to Uniform[0, 1].  A panel is flagged when the integrand is not
    resolved to ``atol`` above the level that the CDF's own error (``rtol_cdf``) allows.
    Returns the win rate and the error left in panels where that floor stopped refinement.
    """
    P, m = f.shape
    G = np.empty((P, m))
    Gc = np.empty((P, m))
    cdf_at_nodes(side, a, b, f, cum, wi, G, Gc)
    vals = np.empty(m)
    allv = np.empty((P, m))
    dref = np.empty(m)
    err_G = max(rtol_cdf, 16.0 * EPS)
    w_total = 0.0
    floor = 0.0
    for p in range(P):
        h = 0.5 * (b[p] - a[p])
        for i in range(m):
            x = a[p] + h * (1.0 + xi[i])
            if side[p] == 0:
                dref[i] = _density(kr, nr, x, 1.0 - x)
            else:
                dref[i] = _density(kr, nr, 1.0 - x, x)
            vals[i] = _complement(k, n, G[p, i], Gc[p, i]) * dref[i]
            allv[p, i] = vals[i]
            w_total += h * wi[i] * vals[i]
        flags[p] = False
        t = h * _panel_tail(vals, tail)
        if t <= atol:
            continue
        # How much of the tail the CDF's own error can explain: |d(integrand)/dG| err_G.
        noise = 0.0
        for i in range(m):
            F = min(max(G[p, i], 0.0), 1.0)
            Fc = min(max(Gc[p, i], 0.0), 1.0)
            noise = max(noise, cdf_map_prime(k, n, F, Fc) * dref[i] * err_G)
        if _splittable(a[p], b[p]) and t > atol + 8.0 * h * noise:
            flags[p] = True
        else:
            floor += t
    _junction_flags(side, a, b, allv, ENDS, atol, flags)
    return w_total, floor


@jit
def refine_round(
    side,
    a,
    b,
    phi,
    off_l,
    off_r,
    beta,
    k,
    n,
    kr,
    nr,
    rtol,
    atol,
    max_floor,
    x_floor,
    max_panels,
    xi,
    wi,
    tail,
    cum,
    r,
    f,
    mass,
    flags,
    stats,
    win,
    tilt_done,
    ulps,
):
    """One refinement round: the tilt pass, then the win-rate pass.

    The tilt pass is skipped when ``tilt_done`` (r, f, mass and stats already hold it); the
    win-rate pass runs once the tilt is resolved and if n > 0. Returns DONE, SPLIT (``flags``
    marks the panels) or why it stopped; ``win`` receives (win rate, its rounding floor, the
    side of a panel stuck at the floor).
    """
    if tilt_done:
        flags[:] = False
    else:
        tilt_pass(
            side, a, b, phi, off_l, off_r, beta, rtol, xi, wi, tail, r, f, mass, flags, stats,
            ulps,
        )  # fmt: skip
    if not np.any(flags):
        if stats[ST_FLOOR] > max_floor:
            return IMPRECISE
        if n == 0:
            return DONE
        w, floor = win_pass(side, a, b, f, k, n, kr, nr, atol, rtol, xi, wi, cum, tail, flags)
        win[0] = w
        win[1] = floor
        if not np.any(flags):
            return IMPRECISE if floor > max_floor else DONE
    for p in range(a.size):
        if flags[p] and a[p] == 0.0 and b[p] <= x_floor:
            win[2] = side[p]
            return AT_FLOOR
    if a.size > max_panels:
        return TOO_BIG
    return SPLIT


@jit
def split_panels(side, a, b, phi, flags):
    """Split the flagged panels in two, keeping the order; new panels are marked ``fresh``.

    A panel [0, b] touching an end splits at b/256, one with b > 4a at sqrt(ab) (computed
    as sqrt(a) sqrt(b), which cannot underflow), any other at its midpoint. The Phi rows of
    fresh panels are left for the caller to fill.
    """
    P, n = phi.shape
    m = P
    for p in range(P):
        if flags[p]:
            m += 1
    side2 = np.empty(m, dtype=side.dtype)
    a2 = np.empty(m)
    b2 = np.empty(m)
    phi2 = np.empty((m, n))
    fresh = np.zeros(m, dtype=np.bool_)
    j = 0
    for p in range(P):
        if flags[p]:
            lo = a[p]
            hi = b[p]
            if lo == 0.0:
                mid = hi / 256.0
            elif hi > 4.0 * lo:
                mid = math.sqrt(lo) * math.sqrt(hi)
            else:
                mid = 0.5 * (lo + hi)
            side2[j] = side[p]
            side2[j + 1] = side[p]
            a2[j] = lo
            b2[j] = mid
            a2[j + 1] = mid
            b2[j + 1] = hi
            fresh[j] = True
            fresh[j + 1] = True
            j += 2
        else:
            side2[j] = side[p]
            a2[j] = a[p]
            b2[j] = b[p]
            for i in range(n):
                phi2[j, i] = phi[p, i]
            j += 1
    return side2, a2, b2, phi2, fresh


@jit
def builtin_fill(kind, t, side, a, b, phi, fresh, xi):
    """Phi of a built-in transform at the nodes of the fresh panels."""
    P, n = phi.shape
    for p in range(P):
        if fresh[p]:
            h = 0.5 * (b[p] - a[p])
            for i in range(n):
                phi[p, i] = builtin_value(kind, t, a[p] + h * (1.0 + xi[i]), side[p])


@jit
def resolve_builtin(
    kind,
    t,
    side,
    a,
    b,
    phi,
    r,
    f,
    mass,
    stats,
    tilt_done,
    beta,
    k,
    n,
    kr,
    nr,
    rtol,
    atol,
    max_floor,
    x_floor,
    max_panels,
    max_rounds,
    xi,
    wi,
    tail,
    cum,
):
    """The whole refinement for a built-in transform, in one call (see ``refine_round``).

    With ``tilt_done`` the mesh comes resolved for this tilt, with r, f, mass and stats.
    """
    off_l, off_r = builtin_offsets(kind, t)
    win = np.zeros(3)
    if not tilt_done:
        stats = np.zeros(N_STATS)
    for _ in range(max_rounds):
        P = a.size
        if not tilt_done:
            r = np.empty((P, NODES))
            f = np.empty((P, NODES))
            mass = np.empty(P)
        flags = np.zeros(P, dtype=np.bool_)
        status = refine_round(
            side,
            a,
            b,
            phi,
            off_l,
            off_r,
            beta,
            k,
            n,
            kr,
            nr,
            rtol,
            atol,
            max_floor,
            x_floor,
            max_panels,
            xi,
            wi,
            tail,
            cum,
            r,
            f,
            mass,
            flags,
            stats,
            win,
            tilt_done,
            4.0,  # built-in transforms are evaluated to a few ulps
        )
        tilt_done = False
        if status != SPLIT:
            return status, side, a, b, phi, r, f, mass, stats, win
        side, a, b, phi, fresh = split_panels(side, a, b, phi, flags)
        builtin_fill(kind, t, side, a, b, phi, fresh, xi)
    return NO_CONVERGENCE, side, a, b, phi, r, f, mass, stats, win


# --------------------------------------------------------------------------------------
# The optimum's Newton systems (see optimal.py): the panel-to-panel sweep.
# --------------------------------------------------------------------------------------
@jit
def panel_sweep(X, B, f, d, wloc, r, out):
    """Combine per-panel solutions into the solution of (I - A) x = rhs, A = L D L F / beta.

    ``X[p]`` holds, for panel p (in increasing u), the local solves of the r right-hand
    sides and of the two unit responses (to the carried integrals V and Z). Z carries
    int f x over the earlier panels, V carries int d z; x_p = X_b + X_e V + X_c Z.
    """
    P, m, _ = X.shape
    Z = np.zeros(r)
    V = np.zeros(r)
    for p in range(P):
        for j in range(r):
            for i in range(m):
                out[p, i, j] = X[p, i, j] + X[p, i, r] * V[j] + X[p, i, r + 1] * Z[j]
        for j in range(r):
            dz = 0.0
            dv = 0.0
            for i in range(m):
                zi = Z[j]
                for k in range(m):
                    zi += B[p, i, k] * f[p, k] * out[p, k, j]
                dv += wloc[p, i] * d[p, i] * zi
                dz += wloc[p, i] * f[p, i] * out[p, i, j]
            Z[j] += dz
            V[j] += dv


# --------------------------------------------------------------------------------------
# Procedures beyond order statistics (see procedures.py).
# --------------------------------------------------------------------------------------
# Soft Best-of-n picks one of n draws with probability proportional to exp(u / lam). By the
# Gumbel-max trick that is the draw maximising u_i + lam Z_i, Z_i standard Gumbel, so the
# pick's density is n f(u) E[Q(u + lam Z)^(n-1)] with Q(y) = P(U + lam Z <= y) =
# E_U[Gam((y - U) / lam)], Gam(x) = exp(-e^-x) and Z's density gam(z) = exp(-z - e^-z).
# In z both gam and Q^(n-1) extend analytically to the strip |Im z| < pi/2 with modulus at
# most e^-Re z and 1, so Gauss-Legendre on panels of width 2 converges like 3.3^-40.
#: z-range kept of the Gumbel density: gam(-5) = 2e-62 and the mass above 41 is 2e-18.
GUMBEL_LO = -5.0
GUMBEL_PANELS = 23
#: Gam(x) rounds to 1 for x >= 38 and underflows to 0 for x <= -7.
GAM_ONE = 38.0
GAM_ZERO = -7.0


@jit
def gumbel_cdf(x):
    """Gam(x) = exp(-e^-x), the standard Gumbel CDF (0 and 1 exactly where it rounds so)."""
    if x <= GAM_ZERO:
        return 0.0
    return math.exp(-math.exp(-x))


@jit
def gumbel_pdf(z):
    """gam(z) = exp(-z - e^-z), the standard Gumbel density."""
    if z <= -40.0:
        return 0.0
    e = math.exp(-z)
    return math.exp(-z - e)


@jit
def _soft_q_levels(anchor, o, c, cum, p, lam):
    """Q at y = c[anchor] + lam o on a discrete law: sum_l p_l Gam((y - c_l) / lam).

    d_l = (c[anchor] - c_l) / lam + o decreases with l; levels with d_l >= GAM_ONE count
    in full (``cum``, the masses below them), those with d_l <= GAM_ZERO not at all.
    """
    m = c.size
    # first level with d_l < GAM_ONE
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) // 2
        if (c[anchor] - c[mid]) / lam + o >= GAM_ONE:
            lo = mid + 1
        else:
            hi = mid
    q = cum[lo]
    for i in range(lo, m):
        d = (c[anchor] - c[i]) / lam + o
        if d <= GAM_ZERO:
            break
        q += p[i] * gumbel_cdf(d)
    return min(q, 1.0)


@jit
def soft_best_levels(p, c, n, lam, xi, wi, out):
    """Masses of soft Best-of-n on the levels of a discrete law, exact to rounding.

    Level j (calibrated reward c_j, increasing; policy mass p_j) is picked with probability
    n p_j int gam(z) Q(c_j + lam z)^(n-1) dz. The z-panels of width 2 are shared by every
    level whose windows [-5, 41] overlap (a cluster, anchored at its first level, offsets
    o in units of lam), so Q is computed once per node.
    """
    m = p.size
    cum = np.zeros(m + 1)
    for i in range(m):
        cum[i + 1] = cum[i] + p[i]
    span = 2.0 * GUMBEL_PANELS
    # clusters: anchor level and the number of panels each holds
    anchors = np.empty(m, dtype=np.int64)
    counts = np.empty(m, dtype=np.int64)
    nc = 0
    j = 0
    while j < m:
        a = j
        end = span  # in offsets from GUMBEL_LO, units of lam
        j += 1
        while j < m:
            start = (c[j] - c[a]) / lam
            if start > end:
                break
            end = max(end, start + span)
            j += 1
        anchors[nc] = a
        counts[nc] = int(math.ceil(end / 2.0))
        nc += 1
    nodes = xi.size
    for ci in range(nc):
        a = anchors[ci]
        panels = counts[ci]
        qn = np.empty((panels, nodes))
        for k in range(panels):
            for i in range(nodes):
                o = GUMBEL_LO + 2.0 * k + 1.0 + xi[i]
                qn[k, i] = _soft_q_levels(a, o, c, cum, p, lam) ** (n - 1)
        last = m if ci == nc - 1 else anchors[ci + 1]
        for jj in range(a, last):
            if p[jj] == 0.0:
                out[jj] = 0.0
                continue
            shift = (c[jj] - c[a]) / lam  # z = o - shift
            k0 = max(int(math.floor(shift / 2.0)) - 1, 0)
            k1 = min(int(math.ceil(shift / 2.0)) + GUMBEL_PANELS + 1, panels)
            acc = 0.0
            for k in range(k0, k1):
                for i in range(nodes):
                    o = GUMBEL_LO + 2.0 * k + 1.0 + xi[i]
                    acc += wi[i] * gumbel_pdf(o - shift) * qn[k, i]
            out[jj] = n * p[jj] * acc


#: Clenshaw's Legendre coefficients (2j + 1)/(j + 1) and (j + 1)/(j + 2), the same doubles
#: as computed in the loop, without its divisions.
_CLENSHAW_A = (2.0 * np.arange(NODES + 1) + 1.0) / (np.arange(NODES + 1) + 1.0)
_CLENSHAW_B = (np.arange(NODES + 1) + 1.0) / (np.arange(NODES + 1) + 2.0)


@jit
def _legendre_value(coef, z):
    """sum_j coef[j] P_j(z) by Clenshaw's recurrence."""
    m = coef.size
    b1 = 0.0
    b2 = 0.0
    for j in range(m - 1, 0, -1):
        b0 = coef[j] + _CLENSHAW_A[j] * z * b1 - _CLENSHAW_B[j] * b2
        b2 = b1
        b1 = b0
    return coef[0] + z * b1 - 0.5 * b2


@jit
def _find_panel(ua, x):
    """Index p of the panel [ua[p], ua[p + 1]) holding x (clamped to the ends)."""
    lo, hi = 0, ua.size - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ua[mid] <= x:
            lo = mid
        else:
            hi = mid - 1
    return lo


#: Zones of x = (y - v)/lam for the Gumbel smoothing, from x = GAM_ONE down to GAM_ZERO:
#: (upper x, lower x, widest piece in units of lam). Where x >= 3, Gam(x) = exp(-e^-x) has
#: e^-x <= 0.05 on a Bernstein ellipse of parameter 3 around each piece (its modulus stays
#: within e^0.2 of one), so 20 Gauss nodes are exact to about 3^-40 on pieces of 4 to 13
#: lam; below x = 3 it needs pieces of 2 lam (analytic in |Im x| < pi/2 only).
_SMOOTH_ZONES = np.array([
    [GAM_ONE, 25.0, 13.0], [25.0, 15.0, 10.0], [15.0, 7.0, 8.0], [7.0, 3.0, 4.0],
    [3.0, GAM_ZERO, 2.0],
])  # fmt: skip


@jit
def gumbel_smooth(y, lam, ua, ub, coef, cdf_a, xi, wi, out):
    """Q(y) = int_0^1 f(v) Gam((y - v) / lam) dv for a density given on panels of [0, 1].

    ``ua``, ``ub``: panel ends in u, increasing and contiguous; ``coef``: Legendre
    coefficients of f per panel; ``cdf_a``: the CDF at each panel's start. Below
    v = y - GAM_ONE lam the weight is 1 (the CDF there); the window up to y - GAM_ZERO lam
    is integrated on pieces inside the panels of f, no wider than 2 lam where Gam varies
    fastest and wider where it is flat (``_SMOOTH_ZONES``).
    """
    P = ua.size
    nodes = xi.size
    for t in range(y.size):
        lo = y[t] - GAM_ONE * lam
        hi = y[t] - GAM_ZERO * lam
        if hi <= 0.0:
            out[t] = 0.0
            continue
        if lo >= ub[P - 1]:
            out[t] = 1.0
            continue
        p = _find_panel(ua, max(lo, 0.0))
        acc = cdf_a[p]
        while p < P and ua[p] < hi:
            a = ua[p]
            b = ub[p]
            width = b - a
            x0 = a
            if lo > a:  # weight 1 on [a, lo]: f's own integral, exact by Gauss
                hh = 0.5 * (lo - a)
                for i in range(nodes):
                    v = a + hh * (1.0 + xi[i])
                    acc += hh * wi[i] * _legendre_value(coef[p], (2.0 * v - a - b) / width)
                x0 = lo
            x1 = min(b, hi)
            for zone in range(_SMOOTH_ZONES.shape[0]):
                z0 = max(x0, y[t] - _SMOOTH_ZONES[zone, 0] * lam)
                z1 = min(x1, y[t] - _SMOOTH_ZONES[zone, 1] * lam)
                if zone == _SMOOTH_ZONES.shape[0] - 1:
                    z1 = x1
                if zone == 0:
                    z0 = x0
                if z1 <= z0:
                    continue
                pieces = int(math.ceil((z1 - z0) / (_SMOOTH_ZONES[zone, 2] * lam)))
                if pieces < 1:
                    pieces = 1
                step = (z1 - z0) / pieces
                hh = 0.5 * step
                for k in range(pieces):
                    s0 = z0 + k * step
                    for i in range(nodes):
                        v = s0 + hh * (1.0 + xi[i])
                        fv = _legendre_value(coef[p], (2.0 * v - a - b) / width)
                        acc += hh * wi[i] * fv * gumbel_cdf((y[t] - v) / lam)
            p += 1
        out[t] = min(max(acc, 0.0), 1.0)


@jit
def _factor_terms(u, lam, m, z0, z1, width, ya, yb, qcoef, xi, wi, grid_w):
    """The sum of w gam(z) Q(u + lam z)^m over the Gauss nodes of [z0, z1] in pieces of ``width``.

    ``grid_w``: the weights w gam(z) of the width-2 pieces from GUMBEL_LO, precomputed
    (used when ``width`` is 2 and z0 is on that grid); empty otherwise.
    """
    P = ya.size
    nodes = xi.size
    pieces = int(math.ceil((z1 - z0) / width - 1e-9))
    if pieces < 1:
        pieces = 1
    step = (z1 - z0) / pieces
    hh = 0.5 * step
    first = int(round((z0 - GUMBEL_LO) / 2.0)) if grid_w.size > 0 else 0
    acc = 0.0
    p = 0
    for k in range(pieces):
        s0 = z0 + k * step
        for i in range(nodes):
            z = s0 + hh * (1.0 + xi[i])
            y = u + lam * z
            if y < ya[0]:
                continue
            if grid_w.size > 0:
                w = grid_w[(first + k) * nodes + i]
            else:
                w = hh * wi[i] * math.exp(-z - math.exp(-z))
            if y >= yb[P - 1]:
                acc += w
                continue
            while p + 1 < P and ya[p + 1] <= y:
                p += 1
            q = _legendre_value(qcoef[p], (2.0 * y - ya[p] - yb[p]) / (yb[p] - ya[p]))
            q = min(max(q, 0.0), 1.0)
            acc += w * q**m
    return acc


@jit
def soft_best_log_factor(u, lam, n, ya, yb, qcoef, xi, wi, out):
    """The log of K(u) = int gam(z) Q(u + lam z)^(n-1) dz, by Gauss-Legendre in z.

    The integral over Gumbel panels of z on few nodes: panels of width 2 in z (the
    integrand is analytic in |Im z| < pi/2 only) up to z = 3 and up to where y = u + lam z
    passes b = 1 + lam max(1, log n); beyond both, gam(z) and Q(y)^(n-1) are analytic and
    bounded (by 1.4 e^-Re z and about e) in the half-plane Re z > max(1, (b - u)/lam), so
    a piece [z0, z0 + w] with w <= 3 (z0 - that bound) keeps a Bernstein ellipse of
    parameter 3 inside it, where 20 nodes are exact to about 3^-40. Where K underflows
    (Q^(n-1) next to u = 0 for n in the thousands) the sum is redone in log space.
    """
    nodes = xi.size
    grid_w = np.empty(GUMBEL_PANELS * nodes)
    for k in range(GUMBEL_PANELS):
        for i in range(nodes):
            grid_w[k * nodes + i] = wi[i] * gumbel_pdf(GUMBEL_LO + 2.0 * k + 1.0 + xi[i])
    no_grid = np.empty(0)
    log_n = math.log(n) if n > 1 else 0.0
    m = n - 1.0
    z_hi = GUMBEL_LO + 2.0 * GUMBEL_PANELS
    for t in range(u.size):
        bound = max(1.0, (1.0 - u[t]) / lam + max(1.0, log_n))
        z_wide = min(max(3.0, bound + 2.0), z_hi)
        z_narrow = min(GUMBEL_LO + 2.0 * math.ceil((z_wide - GUMBEL_LO) / 2.0), z_hi)
        acc = _factor_terms(u[t], lam, m, GUMBEL_LO, z_narrow, 2.0, ya, yb, qcoef, xi, wi,
                            grid_w)  # fmt: skip
        z0 = z_narrow
        while z0 < z_hi:
            z1 = min(z0 + min(3.0 * (z0 - bound), 12.0), z_hi)
            acc += _factor_terms(u[t], lam, m, z0, z1, z1 - z0, ya, yb, qcoef, xi, wi, no_grid)
            z0 = z1
        if acc > 1e-250:
            out[t] = math.log(acc)
        else:
            out[t] = _log_factor_slow(u[t], lam, m, ya, yb, qcoef, xi, wi)


@jit
def _log_factor_slow(u, lam, m, ya, yb, qcoef, xi, wi):
    """The log of K(u) on the width-2 panels, as a running log-sum-exp (no underflow)."""
    P = ya.size
    nodes = xi.size
    top = -np.inf
    acc = 0.0
    p = 0
    for k in range(GUMBEL_PANELS):
        for i in range(nodes):
            z = GUMBEL_LO + 2.0 * k + 1.0 + xi[i]
            y = u + lam * z
            if y < ya[0]:
                continue
            term = math.log(wi[i]) - z - math.exp(-z)
            if y < yb[P - 1]:
                while p + 1 < P and ya[p + 1] <= y:
                    p += 1
                q = _legendre_value(qcoef[p], (2.0 * y - ya[p] - yb[p]) / (yb[p] - ya[p]))
                if q <= 0.0:
                    continue
                term += m * math.log(min(q, 1.0))
            if term > top:
                acc = acc * math.exp(top - term) + 1.0
                top = term
            else:
                acc += math.exp(term - top)
    return top + math.log(acc) if acc > 0.0 else -np.inf


@jit
def panel_interpolate(x, xa, xb, coef, out):
    """The piecewise Legendre interpolant at x: panels [xa[p], xb[p]] increasing, contiguous.

    Points outside [xa[0], xb[-1]] take the nearest panel's value at its end.
    """
    for t in range(x.size):
        p = _find_panel(xa, x[t])
        z = (2.0 * x[t] - xa[p] - xb[p]) / (xb[p] - xa[p])
        out[t] = _legendre_value(coef[p], min(max(z, -1.0), 1.0))


@jit
def threshold_sum(x, n):
    """S_n(x) = 1 + x + ... + x^(n-1) = (1 - x^n) / (1 - x), n at x = 1, without cancellation."""
    if x >= 1.0:
        return float(n)
    if x <= 0.5:
        return (1.0 - x**n) / (1.0 - x)
    return -math.expm1(n * math.log(x)) / (1.0 - x)


@jit
def threshold_levels(p, first, n, out):
    """Masses of threshold sampling: levels below ``first`` fail, the others pass.

    A failing level j gets P(all n fail, best is j) = P_j^n - P_{j-1}^n; a passing level
    gets p_j S_n(P_fail), the first passing draw being distributed as the policy there.
    """
    m = p.size
    fail = 0.0
    for j in range(first):
        fail += p[j]
    prev = 0.0
    acc = 0.0
    for j in range(first):
        acc += p[j]
        cur = acc**n
        out[j] = max(cur - prev, 0.0)
        prev = cur
    s = threshold_sum(fail, n)
    for j in range(first, m):
        out[j] = p[j] * s


@jit
def discrete_win_from_masses(a, b):
    """W(A ≻ B) = sum_j a_j (B_{j-1} + b_j / 2) for two laws on the same levels, ties ½."""
    w = 0.0
    below = 0.0
    for j in range(a.size):
        w += a[j] * (below + 0.5 * b[j])
        below += b[j]
    return w
