"""Regenerate tests/data/reference_continuous.json from mpmath at 40 digits.

    python tests/make_reference.py            # about ten minutes on 2 cores

Cases are drawn from a fixed seed over the accuracy box of the core: KL <= 5 nats,
N <= 64, |t| <= 300, for the exponential family (both signs of t), the identity and the log
transform, and order statistics k-th of N (Best-of-N, Worst-of-N and interior k), each win
rate both against the procedure applied to the base and against one base sample. Nothing
here imports the library: every value comes from `reference.py`.
"""

from __future__ import annotations

import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import mpmath as mp  # noqa: E402
from reference import Tilt, reference  # noqa: E402

OUT = Path(__file__).parent / "data" / "reference_continuous.json"


def draw_cases(seed: int = 20261126, count: int = 72) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kind = rng.choice(["exp", "exp", "exp", "identity", "log"])
        t = 0.0
        if kind == "exp":
            t = float(np.round(rng.choice([-1, 1]) * 10 ** rng.uniform(-1, math.log10(300)), 3))
        n = int(rng.choice([1, 2, 3, 4, 8, 16, 32, 64]))
        which = rng.choice(["best", "worst", "inner"])
        k = n if which == "best" else 1 if which == "worst" else int(rng.integers(1, n + 1))
        beta = float(np.round(10 ** rng.uniform(-3.5, 1.0), 6))
        with mp.workdps(30):
            kl = float(Tilt(str(kind), t, beta).kl())
        if not 1e-4 <= kl <= 5.0:
            continue
        against = str(rng.choice(["procedure", "procedure", "sample"]))
        cases.append(dict(transform=str(kind), t=t, beta=beta, k=k, n=n, against=against))
    return cases


def solve(case: dict) -> dict:
    kl, wstd, w = reference(
        case["transform"], case["t"], case["beta"], case["k"], case["n"], case["against"]
    )
    return dict(case, kl=kl, standard_win_rate=wstd, win_rate=w)


def main() -> None:
    cases = draw_cases()
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(solve, cases))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"source": "tests/make_reference.py (mpmath, 40 digits)", "cases": rows}, indent=1
        )
        + "\n"
    )
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()
