"""Independent high-precision references (mpmath, 40 digits) for the continuous engine.

Nothing here imports the library. For the exponential family the tilt has closed forms
through the exponential integral Ei: with k = 1 / (beta (e^t - 1)), Phi_t / beta =
k (e^{tu} - 1), and the substitution v = e^{tu} gives

    Z      = e^{-k} / t * [Ei(k v)]_{v=1}^{e^t},
    G(u)   = e^{-k} / t * [Ei(k v)]_{v=1}^{e^{tu}} / Z,
    E_f[Phi/beta] = (k / t) e^{-k} [e^{kv} / k - Ei(k v)]_{v=1}^{e^t} / Z,
    KL     = E_f[Phi/beta] - log Z.

The identity transform has elementary closed forms (c = 1/beta), the log transform gives
f = (a + 1) u^a with a = 1/beta. Win rates are then one-dimensional mpmath quadratures of
(1 - g(G(u))) g'(u) with breakpoints graded geometrically toward both ends.
"""

from __future__ import annotations

import mpmath as mp

DPS = 40


def _breakpoints(depth: int = 60) -> list:
    pts = [mp.mpf(0)]
    pts += [mp.mpf(2) ** -k for k in range(depth, 1, -1)]
    pts += [mp.mpf(1) / 2]
    pts += [1 - mp.mpf(2) ** -k for k in range(2, depth + 1)]
    pts += [mp.mpf(1)]
    return pts


def _order_g(k: int, n: int, F):
    """g(F) = I_F(k, n - k + 1)."""
    if n == 1:
        return F
    if k == n:
        return F**n
    if k == 1:
        return 1 - (1 - F) ** n
    return binomial_tail(k, n, F, mp.mp.dps)[0]


def _order_gprime(k: int, n: int, u):
    if n == 1:
        return mp.mpf(1)
    return u ** (k - 1) * (1 - u) ** (n - k) / mp.beta(k, n - k + 1)


class Tilt:
    """Closed forms of one tilt of Uniform[0, 1]: CDF G, KL, and the standard win rate."""

    def __init__(self, transform: str, t: float, beta: float):
        self.transform = transform
        self.t = mp.mpf(t)
        self.beta = mp.mpf(beta)

    def cdf(self, u):
        u = mp.mpf(u)
        if self.transform == "log":
            return u ** (1 / self.beta + 1)
        if self.transform == "identity" or self.t == 0:
            c = 1 / self.beta
            return mp.expm1(c * u) / mp.expm1(c)
        t, k = self.t, 1 / (self.beta * mp.expm1(self.t))
        num = mp.ei(k * mp.exp(t * u)) - mp.ei(k)
        den = mp.ei(k * mp.exp(t)) - mp.ei(k)
        return num / den

    def pdf(self, u):
        u = mp.mpf(u)
        if self.transform == "log":
            a = 1 / self.beta
            return (a + 1) * u**a
        if self.transform == "identity" or self.t == 0:
            c = 1 / self.beta
            return c * mp.exp(c * u) / mp.expm1(c)
        t, k = self.t, 1 / (self.beta * mp.expm1(self.t))
        Z = mp.exp(-k) / t * (mp.ei(k * mp.exp(t)) - mp.ei(k))
        return mp.exp(k * mp.expm1(t * u)) / Z

    def kl(self):
        if self.transform == "log":
            a = 1 / self.beta
            return mp.log(a + 1) - a / (a + 1)
        if self.transform == "identity" or self.t == 0:
            c = 1 / self.beta
            w = self.standard_win_rate()
            return c * w - mp.log(mp.expm1(c) / c)
        t, k = self.t, 1 / (self.beta * mp.expm1(self.t))
        Zs = mp.ei(k * mp.exp(t)) - mp.ei(k)
        Z = mp.exp(-k) / t * Zs
        prim = lambda v: mp.exp(k * v) / k - mp.ei(k * v)  # noqa: E731
        mean_ell = (k / t) * mp.exp(-k) * (prim(mp.exp(t)) - prim(1)) / Z
        return mean_ell - mp.log(Z)

    def standard_win_rate(self):
        if self.transform == "log":
            a = 1 / self.beta
            return (a + 1) / (a + 2)
        if self.transform == "identity" or self.t == 0:
            c = 1 / self.beta
            return (mp.exp(c) * (c - 1) + 1) / (c * mp.expm1(c))
        return mp.quad(lambda u: u * self.pdf(u), _breakpoints())

    def win_rate(self, k: int, n: int, against: str = "procedure"):
        """W(T(pi) > T(base)) (or against one base sample), T = k-th smallest of n."""
        if against == "procedure":
            dref = lambda u: _order_gprime(k, n, u)  # noqa: E731
        else:
            dref = lambda u: mp.mpf(1)  # noqa: E731
        return mp.quad(lambda u: (1 - _order_g(k, n, self.cdf(u))) * dref(u), _breakpoints())


def reference(transform: str, t: float, beta: float, k: int, n: int, against: str = "procedure"):
    """(KL, standard win rate, inference-time win rate) at 40 digits, as floats."""
    with mp.workdps(DPS):
        tl = Tilt(transform, t, beta)
        return float(tl.kl()), float(tl.standard_win_rate()), float(tl.win_rate(k, n, against))


# --------------------------------------------------------------------------------------
# Order statistics: the CDF map, its density, and win rates with closed forms.
# --------------------------------------------------------------------------------------
def binomial_tail(k: int, n: int, F, dps: int = 50):
    """(P(Bin(n, F) >= k), P(Bin(n, F) < k)) = (I_F(k, n-k+1), its complement), as mpf.

    Both come from one positive series summed outward from k, on the side away from the
    mode, where the terms decrease geometrically: no cancellation for any n.
    """
    with mp.workdps(dps + 10):
        F = mp.mpf(F)
        q = 1 - F
        if F == 0:
            return mp.mpf(0), mp.mpf(1)
        if q == 0:
            return mp.mpf(1), mp.mpf(0)

        def term(j):
            return mp.exp(
                mp.loggamma(n + 1) - mp.loggamma(j + 1) - mp.loggamma(n - j + 1)
                + j * mp.log(F) + (n - j) * mp.log(q)
            )  # fmt: skip

        tiny = mp.mpf(10) ** -(dps + 5)
        if k > (n + 1) * F:  # upper tail j >= k: the terms fall from j = k on
            t = s = term(k)
            for j in range(k, n):
                t = t * (n - j) / (j + 1) * F / q
                s += t
                if t < tiny * s:
                    break
            return +s, 1 - s
        t = s = term(k - 1)  # lower tail j < k: the terms fall from j = k - 1 down
        for j in range(k - 1, 0, -1):
            t = t * j / (n - j + 1) * q / F
            s += t
            if t < tiny * s:
                break
        return 1 - s, +s


def order_density(k: int, n: int, F, dps: int = 50):
    """g'(F) = F^(k-1) (1 - F)^(n-k) / B(k, n-k+1), as mpf (log-gamma at dps digits)."""
    with mp.workdps(dps + 10):
        F = mp.mpf(F)
        if (k > 1 and F == 0) or (k < n and F == 1):
            return mp.mpf(0)
        lg = mp.loggamma(n + 1) - mp.loggamma(k) - mp.loggamma(n - k + 1)
        out = lg
        if k > 1:
            out += (k - 1) * mp.log(F)
        if k < n:
            out += (n - k) * mp.log1p(-F)
        return mp.exp(out)


def power_policy_win_rate(a, k: int, n: int, dps: int = 30):
    """W(T(pi) > T(base)) for the policy with CDF u^a (a > 0), T the k-th smallest of n.

    That policy is the log-transform tilt at beta = 1/(a - 1) (Best-of-m for a = m). With
    Z ~ Beta(k, n-k+1) (the law of T(base)) and the identity
    P(Bin(n, F) >= k) = sum_{i=k}^n (-1)^(i-k) C(i-1, k-1) C(n, i) F^i,

        W = 1 - E[g(Z^a)] = 1 - sum_i (-1)^(i-k) C(i-1, k-1) C(n, i) E[Z^(a i)],
        E[Z^(a i)] = Gamma(k + a i) Gamma(n + 1) / (Gamma(k) Gamma(n + 1 + a i)),

    a closed form (for k = n it is a / (a + 1)). The alternating sum cancels down from
    about 2^n, so it is evaluated with n log10(2) extra digits; ``a`` is taken as exact.
    """
    with mp.workdps(dps + int(n * 0.302) + 20):
        a = mp.mpf(a)
        c = mp.binomial(n, k)  # C(i - 1, k - 1) C(n, i) at i = k
        base = mp.loggamma(n + 1) - mp.loggamma(k)
        total = mp.mpf(0)
        for i in range(k, n + 1):
            moment = mp.exp(base + mp.loggamma(k + a * i) - mp.loggamma(n + 1 + a * i))
            total += (-1) ** (i - k) * c * moment
            c = c * i / (i - k + 1) * (n - i) / (i + 1)
        return 1 - total


def discrete_win_rate(p, q, k: int, n: int, dps: int = 50):
    """W(T(p) > T(q)) with ties 1/2 on levels with masses p and q, T the k-th of n.

    Level CDFs A_j = g(P_j), B_j = g(F_j) from :func:`binomial_tail`, then
    W = sum_j (A_j - A_{j-1}) (B_j + B_{j-1}) / 2 (P(X > Y) + P(X = Y)/2 level by level).
    The masses are taken as exact (pass fractions or strings for exact decimals).
    """
    with mp.workdps(dps + 10):
        P = F = mp.mpf(0)
        a_prev = b_prev = mp.mpf(0)
        w = mp.mpf(0)
        for pj, qj in zip(p, q, strict=True):
            P += mp.mpf(pj)
            F += mp.mpf(qj)
            a = binomial_tail(k, n, P, dps)[0]
            b = binomial_tail(k, n, F, dps)[0]
            w += (a - a_prev) * (b + b_prev) / 2
            a_prev, b_prev = a, b
        return w
