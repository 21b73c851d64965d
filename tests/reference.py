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
    return mp.betainc(k, n - k + 1, 0, F, regularized=True)


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
