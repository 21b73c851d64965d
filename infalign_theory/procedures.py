r"""Inference-time procedures as CDF maps.

Every procedure the library handles acts on reward *levels*: if the reward level of one
sample has CDF :math:`F`, the level of the procedure's output has CDF :math:`g(F)`, with
:math:`g:[0,1]\to[0,1]` increasing, :math:`g(0)=0`, :math:`g(1)=1`.  The family here is the
k-th smallest of N independent samples (ties inside a level broken uniformly, which does not
affect any win rate):

.. math:: g(F) = I_F(k, N-k+1) = P(\mathrm{Bin}(N, F) \ge k), \qquad
          g'(F) = \frac{F^{k-1}(1-F)^{N-k}}{B(k, N-k+1)} .

Sampling is k = N = 1, Best-of-N is k = N (g = F^N), Worst-of-N is k = 1
(g = 1 - (1-F)^N), the model InfAlign (arXiv 2412.19792) uses for Best-of-N jailbreaking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _kernels as K
from ._validate import integer, unit_interval

#: Largest N accepted; the kernels are exact in log space well beyond it.
MAX_N = 1_000_000


@dataclass(frozen=True)
class OrderStatistic:
    """The k-th smallest reward among n independent samples (1 <= k <= n).

    Parameters
    ----------
    k : int
        Rank of the returned sample, 1 = worst, n = best.
    n : int
        Number of samples drawn, 1 <= n <= 10**6.
    """

    k: int
    n: int

    def __post_init__(self) -> None:
        n = integer(self.n, "n", 1, MAX_N)
        k = integer(self.k, "k", 1, n)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "k", k)

    @property
    def name(self) -> str:
        """Short label: ``sampling``, ``best-of-4``, ``worst-of-4`` or ``2nd-of-5``."""
        if self.n == 1:
            return "sampling"
        if self.k == self.n:
            return f"best-of-{self.n}"
        if self.k == 1:
            return f"worst-of-{self.n}"
        return f"order-{self.k}-of-{self.n}"

    def mirror(self) -> OrderStatistic:
        """The procedure seen through u -> 1 - u: the (n - k + 1)-th smallest of n."""
        return OrderStatistic(self.n - self.k + 1, self.n)

    def g(self, F: ArrayLike) -> np.ndarray:
        """The CDF map g(F) = I_F(k, n - k + 1), elementwise, for F in [0, 1]."""
        F = unit_interval(F, "F")
        flat = np.ascontiguousarray(F, dtype=np.float64).ravel()
        out = np.empty_like(flat)
        outc = np.empty_like(flat)
        K.cdf_map_array(self.k, self.n, flat, 1.0 - flat, out, outc)
        return out.reshape(F.shape)

    def g_prime(self, F: ArrayLike) -> np.ndarray:
        """The derivative g'(F) = F^(k-1) (1-F)^(n-k) / B(k, n-k+1), for F in [0, 1]."""
        F = unit_interval(F, "F")
        flat = np.ascontiguousarray(F, dtype=np.float64).ravel()
        out = np.empty_like(flat)
        K.cdf_map_prime_array(self.k, self.n, flat, 1.0 - flat, out)
        return out.reshape(F.shape)


def sampling() -> OrderStatistic:
    """Plain sampling: g(F) = F."""
    return OrderStatistic(1, 1)


def best_of(n: int) -> OrderStatistic:
    """Best-of-n: return the highest-reward of n samples, g(F) = F^n."""
    n = integer(n, "n", 1, MAX_N)
    return OrderStatistic(n, n)


def worst_of(n: int) -> OrderStatistic:
    """Worst-of-n: return the lowest-reward of n samples, g(F) = 1 - (1 - F)^n."""
    n = integer(n, "n", 1, MAX_N)
    return OrderStatistic(1, n)


def order_statistic(k: int, n: int) -> OrderStatistic:
    """The k-th smallest of n samples."""
    return OrderStatistic(k, n)
