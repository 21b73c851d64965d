"""Regenerate tests/data/reference_corners.json: independent values at the corners.

    python tests/make_corners.py            # a few minutes on 2 cores

Three groups, every value from `reference.py` (mpmath; nothing here imports the library):

* ``tilts``: the exponential family at t = +-1000 and beta = 1e-4 and 1e6 -- KL, standard
  win rate, and the win rates of Best-of-N and Worst-of-N for N = 64 (the continuous
  engine's integer-power branch) and N = 1024 (its logarithmic branch) and of the 512th of
  1024, at 40 digits through the exponential integral.
* ``power``: the policy with CDF u^a (the log transform at beta = 1/(a - 1)) under the k-th
  of N, for N from 2 to 1024, Best-of-N, Worst-of-N and interior k, by the closed form
  :func:`reference.power_policy_win_rate`. a = 3 (Best-of-3) and a = 1 + 1/sqrt(N), a policy
  close enough to the base that every k gives a win rate well inside (0, 1).
* ``discrete``: a policy and a base on a few levels whose cumulative masses sit where the
  k-th of N is sensitive (Beta(k, N-k+1) quantiles), all masses multiples of 2**-30 (exact
  in binary), with the win rate by 50-digit binomial sums.
"""

from __future__ import annotations

import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mpmath as mp
import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from reference import DPS, Tilt, discrete_win_rate, power_policy_win_rate  # noqa: E402

OUT = Path(__file__).parent / "data" / "reference_corners.json"

TILT_PROCEDURES = [(64, 64), (1, 64), (1024, 1024), (1, 1024), (512, 1024)]
SIZES = [2, 4, 64, 65, 100, 128, 256, 1024]
GRID = 2.0**-30


def tilt_cases() -> list[dict]:
    return [dict(t=t, beta=b) for t in (-1000.0, 1000.0) for b in (1e-4, 1e6)]


def solve_tilt(case: dict) -> dict:
    with mp.workdps(DPS):
        tl = Tilt("exp", case["t"], case["beta"])
        wins = [[k, n, float(tl.win_rate(k, n))] for k, n in TILT_PROCEDURES]
        return dict(case, kl=float(tl.kl()), standard_win_rate=float(tl.standard_win_rate()),
                    win_rates=wins)  # fmt: skip


def ranks(n: int) -> list[int]:
    return sorted({1, 2, max(1, n // 3), max(1, n // 2), max(1, n - 1), n})


def power_cases() -> list[dict]:
    cases = []
    for n in SIZES:
        for a in (3.0, 1.0 + 1.0 / math.sqrt(n)):
            beta = 1.0 / (a - 1.0)
            for k in ranks(n):
                cases.append(dict(beta=beta, k=k, n=n))
    return cases


def solve_power(case: dict) -> dict:
    a = 1 + 1 / mp.mpf(case["beta"])  # the exponent the tilt at this (binary) beta has
    return dict(case, win_rate=float(power_policy_win_rate(a, case["k"], case["n"])))


def discrete_case(k: int, n: int) -> dict:
    """Levels at Beta(k, n-k+1) quantiles of cumulative mass; the policy's at their 1.05th power."""
    qs = stats.beta(k, n - k + 1).ppf([0.02, 0.2, 0.5, 0.8, 0.98])
    cum = np.unique(np.clip(np.round(qs / GRID), 1, 2**30 - 1)) * GRID
    cum_p = np.unique(np.clip(np.round(cum**1.05 / GRID), 1, 2**30 - 1)) * GRID
    cum = np.append(cum, 1.0)
    cum_p = np.append(cum_p, 1.0)
    assert cum_p.size == cum.size
    return dict(k=k, n=n, base=np.diff(cum, prepend=0.0).tolist(),
                policy=np.diff(cum_p, prepend=0.0).tolist())  # fmt: skip


def solve_discrete(case: dict) -> dict:
    w = discrete_win_rate(case["policy"], case["base"], case["k"], case["n"])
    return dict(case, win_rate=float(w))


def write(tilts: list, power: list, discrete: list) -> None:
    OUT.write_text(
        json.dumps(
            {"source": "tests/make_corners.py (mpmath: 40 digits for tilts, closed forms and "
             "50-digit binomial sums otherwise)", "tilts": tilts, "power": power,
             "discrete": discrete},
            indent=1,
        )
        + "\n"
    )  # fmt: skip


def main() -> None:
    discrete = [discrete_case(k, n) for n in SIZES for k in ranks(n)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        discrete = list(pool.map(solve_discrete, discrete))
        power = list(pool.map(solve_power, power_cases()))
        write([], power, discrete)
        tilts = list(pool.map(solve_tilt, tilt_cases()))
    write(tilts, power, discrete)
    print(f"wrote {len(tilts)} tilts, {len(power)} power cases, {len(discrete)} discrete cases")


if __name__ == "__main__":
    main()
