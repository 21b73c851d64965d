"""Speed of soft Best-of-n and threshold sampling, once compiled.

Run: ``python benchmarks/bench_procedures.py``. Prints the median time of one evaluation
(the decoded masses, and the inference-time win rate) on a discrete law of 20 levels, and
of one continuous win rate (a fresh policy each time, nothing cached).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
import infalign_theory as ia  # noqa: E402


def median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    law = ia.DiscreteLaw(np.arange(20.0), np.full(20, 0.05))
    pol = ia.tilt(ia.Identity(), 0.3, law)
    for n, lam in ((4, 0.1), (16, 0.01), (64, 1e-3), (64, 10.0)):
        T = ia.soft_best_of(n, lam)
        t_apply = median_time(lambda T=T: ia.apply(T, pol), 200)
        t_win = median_time(lambda T=T: ia.win_rate(pol, T), 200)
        print(f"soft best-of-{n} temperature {lam:g}, 20 levels: apply {t_apply * 1e3:.3f} ms, "
              f"win rate {t_win * 1e3:.3f} ms")  # fmt: skip
    T = ia.threshold_sampling(16, 0.8)
    t_thr = median_time(lambda: ia.win_rate(pol, T), 200)
    print(f"threshold-16, 20 levels: win rate {t_thr * 1e3:.3f} ms")
    for proc in (
        ia.soft_best_of(4, 0.1),
        ia.soft_best_of(64, 1e-3),
        ia.threshold_sampling(16, 0.8),
    ):
        t = median_time(
            lambda proc=proc: ia.win_rate(
                ia.tilt(ia.Identity(), 0.3 + 1e-9 * np.random.rand()), proc
            ),
            3,
        )
        print(f"{proc.name}, continuous: win rate {t * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
