"""Mutation check: does the test suite catch one wrong exponent, tie weight or sign in the kernels.

Each mutation below changes one exponent (n -> n - 1, k -> k + 1), one tie weight
(1/2 -> 0.4 or 1) or one sign in ``infalign_theory/_kernels.py`` or in the Python code
where order-statistic exponents and tie weights live (calibration, metrics, procedures,
the optimum's first variation). For each, a copy of the repository is mutated and the test
files that exercise that code are run with ``-x``; the mutation is *killed* when a test
fails and *survives* when every test passes. A fresh numba cache per mutation (its own
``NUMBA_CACHE_DIR``) and no bytecode cache make sure a stale compiled kernel cannot hide
the change. Hypothesis runs with a fixed seed, so a result can be reproduced.

Usage (from the repository root)::

    python .ci/mutate_kernels.py              # every mutation, a table at the end
    python .ci/mutate_kernels.py --list       # the mutations, without running them
    python .ci/mutate_kernels.py --only 3 17  # some of them
    python .ci/mutate_kernels.py --json out.json

Exit status 1 if a mutation survives (or one no longer applies to the source).
"""

# The table of mutations holds lines of source code, longer than the line limit.
# ruff: noqa: E501
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The test files that exercise the kernels, fastest and most targeted first (-x stops at
#: the first failure, so a killed mutation costs little).
KERNEL_TESTS = [
    "tests/test_order_statistics.py",
    "tests/test_discrete.py",
    "tests/test_continuous.py",
    "tests/test_tails.py",
    "tests/test_calibration.py",
    "tests/test_transforms.py",
    "tests/test_procedures.py",
    "tests/test_laws.py",
    "tests/test_theory.py",
    "tests/test_edges.py",
    "tests/test_fuzz.py",
    "tests/test_pool.py",
]
OPTIMAL_TESTS = ["tests/test_optimal.py", "tests/test_optimal_range.py"]


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once in ``path``) by ``new``."""

    kind: str  # "exponent", "tie weight" or "sign"
    path: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...] = tuple(KERNEL_TESTS)
    equivalent: str = ""  # why the mutation cannot change a result, if it cannot


KER = "infalign_theory/_kernels.py"
OPT = "infalign_theory/optimal.py"

MUTATIONS = [
    # -- g(F) for Best-of-n and Worst-of-n (cdf_map) --------------------------------------
    Mutation(
        "exponent",
        KER,
        "return math.exp(n * logF), -math.expm1(n * logF)",
        "return math.exp((n - 1) * logF), -math.expm1(n * logF)",
        "cdf_map BoN g: F^n -> F^(n-1)",
    ),
    Mutation(
        "exponent",
        KER,
        "return math.exp(n * logF), -math.expm1(n * logF)",
        "return math.exp(n * logF), -math.expm1((n - 1) * logF)",
        "cdf_map BoN 1-g: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "return -math.expm1(n * logFc), math.exp(n * logFc)",
        "return -math.expm1((n - 1) * logFc), math.exp(n * logFc)",
        "cdf_map WoN g: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "return -math.expm1(n * logFc), math.exp(n * logFc)",
        "return -math.expm1(n * logFc), math.exp((n - 1) * logFc)",
        "cdf_map WoN 1-g: n -> n-1",
    ),
    Mutation(
        "sign",
        KER,
        "return math.exp(n * logF), -math.expm1(n * logF)",
        "return math.exp(n * logF), math.expm1(n * logF)",
        "cdf_map BoN 1-g: sign of expm1",
    ),
    Mutation(
        "sign",
        KER,
        "return -math.expm1(n * logFc), math.exp(n * logFc)",
        "return math.expm1(n * logFc), math.exp(n * logFc)",
        "cdf_map WoN g: sign of expm1",
    ),
    # -- g'(F) (cdf_map_prime) -------------------------------------------------------------
    Mutation(
        "exponent",
        KER,
        "        return n * math.exp((n - 1) * logF)\n",
        "        return n * math.exp(n * logF)\n",
        "cdf_map_prime BoN: F^(n-1) -> F^n",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * math.exp((n - 1) * logF)\n",
        "        return (n - 1) * math.exp((n - 1) * logF)\n",
        "cdf_map_prime BoN: factor n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * math.exp((n - 1) * logFc)\n",
        "        return n * math.exp(n * logFc)\n",
        "cdf_map_prime WoN: (1-F)^(n-1) -> ^n",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * math.exp((n - 1) * logFc)\n",
        "        return (n - 1) * math.exp((n - 1) * logFc)\n",
        "cdf_map_prime WoN: factor n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), F, Fc))",
        "    return n * math.exp(binomial_log_pmf(float(k), float(n - 1), F, Fc))",
        "cdf_map_prime interior: k-1 -> k",
    ),
    Mutation(
        "exponent",
        KER,
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), F, Fc))",
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n), F, Fc))",
        "cdf_map_prime interior: n-1 -> n",
    ),
    Mutation(
        "exponent",
        KER,
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), F, Fc))",
        "    return (n - 1) * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), F, Fc))",
        "cdf_map_prime interior: factor n -> n-1",
    ),
    # -- interior g(F) (order_cdf_pair, _short_lower_tail, betainc_pair) -------------------
    Mutation(
        "exponent",
        KER,
        "    return betainc_pair(float(k), float(n - k + 1), F, Fc)",
        "    return betainc_pair(float(k + 1), float(n - k + 1), F, Fc)",
        "order_cdf_pair betainc: k -> k+1",
    ),
    Mutation(
        "exponent",
        KER,
        "    return betainc_pair(float(k), float(n - k + 1), F, Fc)",
        "    return betainc_pair(float(k), float(n - k), F, Fc)",
        "order_cdf_pair betainc: n-k+1 -> n-k",
    ),
    Mutation(
        "exponent",
        KER,
        "        return _short_lower_tail(k, n, F, Fc)",
        "        return _short_lower_tail(k + 1, n, F, Fc)",
        "order_cdf_pair short lower tail: k -> k+1",
    ),
    Mutation(
        "exponent",
        KER,
        "        lower, upper = _short_lower_tail(n - k + 1, n, Fc, F)",
        "        lower, upper = _short_lower_tail(n - k, n, Fc, F)",
        "order_cdf_pair short upper tail: n-k+1 -> n-k",
    ),
    Mutation(
        "exponent",
        KER,
        "        t *= j / (n - j + 1) * (Fc / F)",
        "        t *= j / (n - j) * (Fc / F)",
        "_short_lower_tail downward ratio: n-j+1 -> n-j",
    ),
    Mutation(
        "exponent",
        KER,
        "    for j in range(j0, k - 1):  # p_{j+1}",
        "    for j in range(j0, k):  # p_{j+1}",
        "_short_lower_tail: one term too many (k-1 -> k)",
    ),
    Mutation(
        "exponent",
        KER,
        "    t = _binomial_pmf(k, n, F, Fc, logF, logFc)\n    upper = t",
        "    t = _binomial_pmf(k + 1, n, F, Fc, logF, logFc)\n    upper = t",
        "_short_lower_tail upper tail starts at k+1",
    ),
    Mutation(
        "exponent",
        KER,
        "        return math.exp(n * logFc)\n    if j == n:",
        "        return math.exp((n - 1) * logFc)\n    if j == n:",
        "_binomial_pmf j = 0: (1-F)^n -> ^(n-1)",
    ),
    Mutation(
        "exponent",
        KER,
        "    if j == n:\n        return math.exp(n * logF)",
        "    if j == n:\n        return math.exp((n - 1) * logF)",
        "_binomial_pmf j = n: F^n -> F^(n-1)",
    ),
    Mutation(
        "exponent",
        KER,
        "    vc = _betainc(b, a, Fc)",
        "    vc = _betainc(a, b, Fc)",
        "betainc_pair upper side: (b, a) -> (a, b)",
    ),
    Mutation(
        "sign",
        KER,
        "    if vc <= _DIFFERENCE_MAX:\n        return 1.0 - vc, vc",
        "    if vc <= _DIFFERENCE_MAX:\n        return vc, 1.0 - vc",
        "betainc_pair upper side: pair swapped",
    ),
    # -- the binomial log density (Loader) ---------------------------------------------------
    Mutation(
        "sign",
        KER,
        "    return lc - 0.5 * math.log(_TWO_PI * x * (N - x) / N)",
        "    return lc + 0.5 * math.log(_TWO_PI * x * (N - x) / N)",
        "binomial_log_pmf: sign of the log term",
    ),
    Mutation(
        "sign",
        KER,
        "_stirlerr(N) - _stirlerr(x) - _stirlerr(N - x)",
        "_stirlerr(N) + _stirlerr(x) - _stirlerr(N - x)",
        "binomial_log_pmf: sign of stirlerr(x)",
    ),
    Mutation(
        "sign",
        KER,
        "- _bd0(x, N * p) - _bd0(N - x, N * q)",
        "- _bd0(x, N * p) + _bd0(N - x, N * q)",
        "binomial_log_pmf: sign of bd0(N-x)",
    ),
    Mutation(
        "sign",
        KER,
        "        return (_S0 - _S1 / nn) / n",
        "        return (_S0 + _S1 / nn) / n",
        "_stirlerr n > 500: sign of the 1/n^3 term",
    ),
    Mutation(
        "sign",
        KER,
        "    return (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / n",
        "    return (_S0 - (_S1 - (_S2 - (_S3 + _S4 / nn) / nn) / nn) / nn) / n",
        "_stirlerr 15 < n <= 35: sign of the 1/n^9 term",
    ),
    Mutation(
        "sign",
        KER,
        "        s = (x - m) * v\n",
        "        s = (m - x) * v\n",
        "_bd0 series: sign of the leading term",
    ),
    # -- the continuous engine: 1 - g and g' by integer powers or logarithms ---------------
    Mutation(
        "exponent",
        KER,
        "            return 1.0 - (F if F <= Fc else 1.0 - Fc) ** n",
        "            return 1.0 - (F if F <= Fc else 1.0 - Fc) ** (n - 1)",
        "_complement BoN n <= 64: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "            return 1.0 if F == 0.0 else -math.expm1(n * math.log(F))",
        "            return 1.0 if F == 0.0 else -math.expm1((n - 1) * math.log(F))",
        "_complement BoN n > 64, F small: n -> n-1",
        equivalent="n >= 65 and F <= 1/2 give F^(n-1) <= 2^-64 < eps/2: 1 - F^n and "
        "1 - F^(n-1) both round to 1.0 exactly",
    ),
    Mutation(
        "exponent",
        KER,
        "        return -math.expm1(n * math.log1p(-Fc))",
        "        return -math.expm1((n - 1) * math.log1p(-Fc))",
        "_complement BoN n > 64, F large: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "            return (Fc if Fc <= F else 1.0 - F) ** n",
        "            return (Fc if Fc <= F else 1.0 - F) ** (n - 1)",
        "_complement WoN n <= 64: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "            return 0.0 if Fc == 0.0 else math.exp(n * math.log(Fc))",
        "            return 0.0 if Fc == 0.0 else math.exp((n - 1) * math.log(Fc))",
        "_complement WoN n > 64, Fc small: n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "        return math.exp(n * math.log1p(-F))",
        "        return math.exp((n - 1) * math.log1p(-F))",
        "_complement WoN n > 64, F small: n -> n-1",
    ),
    Mutation(
        "sign",
        KER,
        "        return -math.expm1(n * math.log1p(-Fc))",
        "        return -math.expm1(n * math.log1p(Fc))",
        "_complement BoN n > 64: sign inside log1p",
    ),
    Mutation(
        "exponent",
        KER,
        "        return 1.0 - _betainc(float(k), float(n - k + 1), F)",
        "        return 1.0 - _betainc(float(k + 1), float(n - k + 1), F)",
        "_complement interior, F small: k -> k+1",
    ),
    Mutation(
        "exponent",
        KER,
        "    return _betainc(float(n - k + 1), float(k), Fc)",
        "    return _betainc(float(n - k), float(k), Fc)",
        "_complement interior, F large: n-k+1 -> n-k",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * u ** (n - 1)",
        "        return n * u ** n",
        "_density BoN: u^(n-1) -> u^n",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * s ** (n - 1)",
        "        return n * s ** n",
        "_density WoN: s^(n-1) -> s^n",
    ),
    Mutation(
        "exponent",
        KER,
        "        return n * s ** (n - 1)",
        "        return (n - 1) * s ** (n - 1)",
        "_density WoN: factor n -> n-1",
    ),
    Mutation(
        "exponent",
        KER,
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), u, s))",
        "    return n * math.exp(binomial_log_pmf(float(k), float(n - 1), u, s))",
        "_density interior: k-1 -> k",
    ),
    Mutation(
        "exponent",
        KER,
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n - 1), u, s))",
        "    return n * math.exp(binomial_log_pmf(float(k - 1), float(n), u, s))",
        "_density interior: n-1 -> n",
    ),
    # -- discrete win rates: ties counted 1/2 ------------------------------------------------
    Mutation(
        "tie weight",
        KER,
        "        w += (a - a_prev) * (b + b_prev) * 0.5",
        "        w += (a - a_prev) * (b + b_prev) * 0.4",
        "discrete_win_rate: tie weight 0.5 -> 0.4",
    ),
    Mutation(
        "tie weight",
        KER,
        "        w += (a - a_prev) * (b + b_prev) * 0.5",
        "        w += (a - a_prev) * (b + 0.0 * b_prev)",
        "discrete_win_rate: ties counted 1 (b_j only)",
    ),
    Mutation(
        "tie weight",
        KER,
        "        w += (a - a_prev) * (b + b_prev) * 0.5",
        "        w += (a - a_prev) * b_prev",
        "discrete_win_rate: ties counted 0 (b_{j-1} only)",
    ),
    Mutation(
        "sign",
        KER,
        "        w += (a - a_prev) * (b + b_prev) * 0.5",
        "        w += (a - a_prev) * (b - b_prev) * 0.5",
        "discrete_win_rate: sign of b_{j-1}",
    ),
    Mutation(
        "sign",
        KER,
        "        out[j] = g - g_prev if g <= 0.5 else gc_prev - gc",
        "        out[j] = g - g_prev if g <= 0.5 else gc - gc_prev",
        "discrete_level_masses: sign of the upper difference",
    ),
    # -- KL, tilts and transforms ------------------------------------------------------------
    Mutation(
        "sign",
        KER,
        "    return 1.0 + (r - 1.0) * er\n",
        "    return 1.0 + (r + 1.0) * er\n",
        "kl_density: sign of the 1 in (r - 1)",
    ),
    Mutation(
        "exponent",
        KER,
        "_PHI_SERIES = np.array([(k - 1) / math.factorial(k) for k in range(2, 22)])",
        "_PHI_SERIES = np.array([(k - 1) / math.factorial(k + 1) for k in range(2, 22)])",
        "kl_density series: k! -> (k+1)!",
    ),
    Mutation(
        "sign",
        KER,
        "        return math.log(F), math.log1p(-F)",
        "        return math.log(F), math.log1p(F)",
        "log_pair: sign inside log1p",
    ),
    Mutation(
        "sign",
        KER,
        "        r = ell[j] - c - logZ\n",
        "        r = ell[j] - c + logZ\n",
        "discrete_tilt: sign of log Z",
    ),
    Mutation(
        "sign",
        KER,
        "            r = phi[p, i] * inv_beta - cs - logZ\n",
        "            r = phi[p, i] * inv_beta - cs + logZ\n",
        "tilt_pass: sign of log Z",
    ),
    Mutation(
        "sign",
        KER,
        "            u = x if side[p] == 0 else 1.0 - x\n            w = h * wi[i]\n            mass",
        "            u = x if side[p] == 0 else x - 1.0\n            w = h * wi[i]\n            mass",
        "tilt_pass W_std: u = x - 1 on side 1",
    ),
    Mutation(
        "sign",
        KER,
        "        return math.log1p(-x) if x < 1.0 else -np.inf",
        "        return math.log1p(x) if x < 1.0 else -np.inf",
        "builtin log transform, side 1: sign",
    ),
    Mutation(
        "sign",
        KER,
        "            return math.exp(-t * (1.0 - x)) * (math.expm1(-t * x) / math.expm1(-t))",
        "            return math.exp(-t * (1.0 + x)) * (math.expm1(-t * x) / math.expm1(-t))",
        "builtin exp(t > 0), side 0: sign in the prefactor",
    ),
    Mutation(
        "constant",
        KER,
        "        corr = -t * u * s / 2.0 + t * t * u * s * (1.0 - 2.0 * u) / 12.0",
        "        corr = -t * u * s / 2.0 + t * t * u * s * (1.0 - 2.0 * u) / 6.0",
        "builtin exp(tiny t) series: 1/12 -> 1/6",
    ),
    Mutation(
        "exponent",
        KER,
        "        w *= ((n - j) * x) / ((j + 1.0) * y)",
        "        w *= ((n - j + 1) * x) / ((j + 1.0) * y)",
        "_binomial_mean upward ratio: n-j -> n-j+1",
    ),
    Mutation(
        "exponent",
        KER,
        "        w *= (j * y) / ((n - j + 1.0) * x)",
        "        w *= (j * y) / ((n - j) * x)",
        "_binomial_mean downward ratio: n-j+1 -> n-j",
    ),
    # -- Python code around the kernels: calibration, metrics, procedures, optimum ----------
    Mutation(
        "tie weight",
        "infalign_theory/calibration.py",
        "        return law.cdf(r) - 0.5 * law.pmf(r)",
        "        return law.cdf(r) - 0.4 * law.pmf(r)",
        "calibrate: mid-rank tie weight 0.5 -> 0.4",
    ),
    Mutation(
        "tie weight",
        "infalign_theory/calibration.py",
        "    return below + 0.5 * q, law.sf_levels + 0.5 * q",
        "    return below + 0.4 * q, law.sf_levels + 0.5 * q",
        "level_midpoints: tie weight 0.5 -> 0.4",
    ),
    Mutation(
        "tie weight",
        "infalign_theory/calibration.py",
        "    return below + 0.5 * q, law.sf_levels + 0.5 * q",
        "    return below + 0.5 * q, law.sf_levels + 0.4 * q",
        "level_midpoints (1 - u): tie weight 0.5 -> 0.4",
    ),
    Mutation(
        "tie weight",
        "infalign_theory/metrics.py",
        "np.dot(np.diff(ga), 0.5 * (gb[1:] + gb[:-1]))",
        "np.dot(np.diff(ga), 0.4 * (gb[1:] + gb[:-1]))",
        "metrics pool win rate: tie weight 0.5 -> 0.4",
    ),
    Mutation(
        "exponent",
        "infalign_theory/procedures.py",
        "OrderStatistic(self.n - self.k + 1, self.n)",
        "OrderStatistic(self.n - self.k, self.n)",
        "procedure mirror: n-k+1 -> n-k",
        tests=tuple(KERNEL_TESTS),
    ),
    Mutation(
        "exponent",
        OPT,
        "        g2 += n * _density(k - 1, n - 1, F, Fc)",
        "        g2 += n * _density(k, n - 1, F, Fc)",
        "optimal g'': k-1 -> k",
        tests=tuple(OPTIMAL_TESTS),
    ),
    Mutation(
        "sign",
        OPT,
        "        g2 -= n * _density(k, n - 1, F, Fc)",
        "        g2 += n * _density(k, n - 1, F, Fc)",
        "optimal g'': sign of the second term",
        tests=tuple(OPTIMAL_TESTS),
    ),
    Mutation(
        "exponent",
        OPT,
        "return OrderStatistic(p.k + r.k - 1, p.n + r.n - 1)",
        "return OrderStatistic(p.k + r.k, p.n + r.n - 1)",
        "optimal R_0 Beta product: a -> a+1",
        tests=tuple(OPTIMAL_TESTS),
    ),
]


def _copy_repo(dest: Path) -> None:
    """Copy the tracked and untracked-but-not-ignored files of the working tree to ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _failed_test(output: str) -> str:
    """Return the first failing test of pytest's summary, with its error.

    An ERROR at the first test's set-up is the session fixture that warms the kernels up:
    the import or a kernel raised.
    """
    m = re.search(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", output, flags=re.M)
    if m:
        where = m.group(2) if m.group(1) == "FAILED" else f"{m.group(2)} (set-up error)"
        return f"{where}: {(m.group(3) or '').strip()[:100]}"
    tail = [line for line in output.strip().splitlines() if line.strip()]
    return tail[-1] if tail else "?"


def run(indices: list[int], timeout: float, python: str) -> list[dict]:
    """Apply each mutation in turn to a fresh copy of the repository and run its tests."""
    results = []
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        _copy_repo(repo)
        originals: dict[str, str] = {}
        for i in indices:
            mut = MUTATIONS[i]
            target = repo / mut.path
            source = originals.setdefault(mut.path, target.read_text())
            count = source.count(mut.old)
            if count != 1:
                results.append({"id": i, "kind": mut.kind, "path": mut.path, "what": mut.what,
                                "status": "not applicable", "killed_by": f"found {count} times",
                                "seconds": 0.0})  # fmt: skip
                print(f"[{i}] {mut.what}: NOT APPLICABLE ({count} matches)", flush=True)
                continue
            target.write_text(source.replace(mut.old, mut.new))
            for cache in repo.rglob("__pycache__"):
                shutil.rmtree(cache)
            env = dict(os.environ)
            env["NUMBA_CACHE_DIR"] = str(Path(tmp) / f"numba-{i}")
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                   "--hypothesis-seed=0", "-rfE", *mut.tests]  # fmt: skip
            start = time.time()
            try:
                proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                                      timeout=timeout)  # fmt: skip
                rc, out = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired:
                rc, out = -1, "timed out"
            seconds = time.time() - start
            target.write_text(source)
            if rc == 0 and mut.equivalent:
                status, killer = "equivalent", mut.equivalent
            elif rc == 0:
                status, killer = "SURVIVED", ""
            elif rc == 1:
                status, killer = "killed", _failed_test(out)
            elif rc == -1:
                status, killer = "timeout", f"no verdict in {timeout:.0f} s"
            else:
                status, killer = "killed (error)", _failed_test(out)
            results.append({"id": i, "kind": mut.kind, "path": mut.path, "what": mut.what,
                            "status": status, "killed_by": killer, "seconds": round(seconds, 1)})  # fmt: skip
            print(f"[{i}] {mut.what}: {status} {killer} ({seconds:.0f} s)", flush=True)
    return results


def main() -> int:
    """Command line: run the mutations, print the table, exit 1 if one survives."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", type=int, nargs="+", help="run only these mutation ids")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--python", default=sys.executable, help="interpreter for pytest")
    args = parser.parse_args()
    if args.list:
        for i, m in enumerate(MUTATIONS):
            found = (ROOT / m.path).read_text().count(m.old)
            note = "" if found == 1 else f"  NOT APPLICABLE ({found} matches)"
            print(f"{i:3d}  {m.kind:10s}  {m.path:32s}  {m.what}{note}")
        return 0
    indices = args.only if args.only else list(range(len(MUTATIONS)))
    results = run(indices, args.timeout, args.python)
    print(f"\n{'id':>3}  {'status':14s}  {'mutation':58s}  killed by")
    for r in results:
        print(f"{r['id']:3d}  {r['status']:14s}  {r['what'][:58]:58s}  {r['killed_by']}")
    survivors = [
        r for r in results if r["status"] not in ("killed", "killed (error)", "equivalent")
    ]
    equivalent = sum(r["status"] == "equivalent" for r in results)
    print(
        f"\n{len(results) - len(survivors) - equivalent} of {len(results)} mutations killed, "
        f"{equivalent} equivalent (no result can change), {len(survivors)} survived"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
