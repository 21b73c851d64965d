"""Speed of the analytic core against a plain scipy.integrate.quad reference, in one run.

    python benchmarks/bench_core.py            # a table
    python benchmarks/bench_core.py --json     # one JSON object (speedup_single, fig2_seconds, ...)

The reference is what one would write without this library: scipy.integrate.quad for the
normaliser, KL and standard win rate, and *nested* quad for the inference-time win rate
(an inner quad for the CDF G(u) at every outer node), with breakpoints graded toward both
ends. Both routes are scored against 40-digit mpmath values (tests/reference.py) so that
the reference is shown to reach at least the library's accuracy. Timings are medians over
repeats on this machine, after the kernels are compiled.

Reported:
  speedup_single   reference time / library time for one (beta -> KL, W_std, W_T)
                   evaluation at the headline case (Best-of-4, exp(t=10), KL = 1, a point
                   of Figure 2); every case's own ratio is listed too;
  fig2_seconds     the library computing every number of Figure 2 (994 points, beta solved
                   for each KL, the two optimal frontiers included), compiled;
                   fig2_paper_curves_seconds the same without the optimal frontiers;
  frontier_seconds a 50-point optimal frontier for Best-of-32 (KL 0.1 to 5), compiled;
  speedup_fig2     the reference's time per Figure 2 point (beta by brentq on the quad KL,
                   then the nested quad win rate; measured on 24 points, two of every paper
                   curve) times the number of the paper's curve points, over
                   fig2_paper_curves_seconds; both timed back to back in each repeat, the
                   median of the per-repeat ratios (speedup_fig2_spread: their min, max);
  fig2_script_seconds[_no_cache]
                   `python experiments/fig2.py` in a fresh process, with the numba cache
                   warm, and with an empty cache (everything compiled from scratch).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from scipy import integrate, optimize, special

import infalign_theory as ia
from infalign_theory.optimal import pareto_frontier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reference import reference as mpmath_reference  # noqa: E402

TOL = 1e-13
POINTS = (1e-3, 1e-2, 0.1, 0.5, 0.9, 0.99, 0.999)

# name, transform name, t, procedure (k, n), target KL
CASES = [
    ("best-of-4, exp(t=10), KL=1 [headline]", "exp", 10.0, (4, 4), 1.0),
    ("worst-of-4, exp(t=-10), KL=1", "exp", -10.0, (1, 4), 1.0),
    ("best-of-4, identity, KL=2", "identity", 0.0, (4, 4), 2.0),
    ("best-of-64, exp(t=300), KL=3", "exp", 300.0, (64, 64), 3.0),
]


def _phi(kind: str, t: float):
    if kind == "identity" or t == 0.0:
        return lambda u: u
    return lambda u: math.expm1(t * u) / math.expm1(t)


def reference_kl(phi, beta: float) -> float:
    """KL of the tilt exp(phi/beta) of Uniform[0, 1], by quad."""
    top = max(phi(u) for u in np.linspace(0.0, 1.0, 2001)) / beta
    w = lambda u: math.exp(phi(u) / beta - top)  # noqa: E731
    opts = dict(epsabs=TOL, epsrel=TOL, limit=500, points=POINTS)
    Z = integrate.quad(w, 0, 1, **opts)[0]
    log_z = math.log(Z)
    return integrate.quad(lambda u: w(u) / Z * (phi(u) / beta - top - log_z), 0, 1, **opts)[0]


def reference_evaluate(phi, beta: float, k: int, n: int) -> tuple[float, float, float]:
    """(KL, W_std, W_T) by quad, the CDF inside W_T by a nested quad at every outer node."""
    top = max(phi(u) for u in np.linspace(0.0, 1.0, 2001)) / beta
    w = lambda u: math.exp(phi(u) / beta - top)  # noqa: E731
    opts = dict(epsabs=TOL, epsrel=TOL, limit=500, points=POINTS)
    Z = integrate.quad(w, 0, 1, **opts)[0]
    log_z = math.log(Z)
    kl = integrate.quad(lambda u: w(u) / Z * (phi(u) / beta - top - log_z), 0, 1, **opts)[0]
    w_std = integrate.quad(lambda u: u * w(u) / Z, 0, 1, **opts)[0]

    def cdf(u: float) -> float:
        pts = [p for p in POINTS if p < u]
        return integrate.quad(w, 0, u, epsabs=TOL, epsrel=TOL, limit=500, points=pts or None)[0] / Z

    log_b = special.betaln(k, n - k + 1)

    def integrand(u: float) -> float:  # (1 - g(G(u))) g'(u), g = I(k, n - k + 1)
        dref = math.exp((k - 1) * math.log(u) + (n - k) * math.log1p(-u) - log_b)
        return special.betaincc(k, n - k + 1, min(max(cdf(u), 0.0), 1.0)) * dref

    w_t = integrate.quad(integrand, 0, 1, **opts)[0]
    return kl, w_std, w_t


def library_evaluate(transform, beta: float, procedure) -> tuple[float, float, float]:
    pol = ia.tilt(transform, beta)
    return ia.kl(pol), ia.standard_win_rate(pol), ia.win_rate(pol, procedure)


def _time(fn, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def median_time(fn, repeat: int, inner: int = 1) -> float:
    return statistics.median(_time(fn, inner) for _ in range(repeat))


def paired(ours, theirs, repeat: int, inner: int) -> tuple[float, float, float]:
    """Median times of both routes and the median of their per-repeat ratios, the two timed
    back to back in each repeat so that both see the same machine load."""
    t_ours, t_ref = [], []
    for _ in range(repeat):
        t_ours.append(_time(ours, inner))
        t_ref.append(_time(theirs, 1))
    ratio = statistics.median(r / o for o, r in zip(t_ours, t_ref, strict=True))
    return statistics.median(t_ours), statistics.median(t_ref), ratio


def run_cases(repeat: int) -> list[dict]:
    rows = []
    for name, kind, t, (k, n), target in CASES:
        transform = ia.Exponential(t) if kind == "exp" else ia.Identity()
        procedure = ia.order_statistic(k, n)
        beta = ia.beta_for_kl(transform, target)
        exact = mpmath_reference(kind, t, beta, k, n)
        ours = library_evaluate(transform, beta, procedure)
        ref = reference_evaluate(_phi(kind, t), beta, k, n)
        t_ours, t_ref, speedup = paired(
            partial(library_evaluate, transform, beta, procedure),
            partial(reference_evaluate, _phi(kind, t), beta, k, n),
            repeat,
            50,
        )
        rows.append(
            {
                "case": name,
                "beta": beta,
                "library_seconds": t_ours,
                "reference_seconds": t_ref,
                "speedup": speedup,
                "library_max_error": max(abs(a - b) for a, b in zip(ours, exact, strict=True)),
                "reference_max_error": max(abs(a - b) for a, b in zip(ref, exact, strict=True)),
            }
        )
    return rows


def _load_fig2():
    spec = importlib.util.spec_from_file_location("fig2", ROOT / "experiments" / "fig2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fig2"] = module
    spec.loader.exec_module(module)
    return module


def reference_fig2_point(kind: str, t: float, k: int, n: int, target: float) -> float:
    """One Figure 2 point by the reference: beta by brentq on the quad KL, then W_T."""
    phi = _phi(kind, t)
    if kind == "log":
        phi = lambda u: math.log(u) if u > 0 else -math.inf  # noqa: E731
    lo, hi = math.log(1e-6), math.log(1e3)
    while reference_kl(phi, math.exp(lo)) < target:  # exp(t = -20) needs beta ~ 1e-8 at KL 2
        lo -= math.log(100.0)
    x = optimize.brentq(lambda x: reference_kl(phi, math.exp(x)) - target, lo, hi, xtol=1e-13)
    return reference_evaluate(phi, math.exp(x), k, n)[2]


def fig2_sample(cfg) -> list[tuple[str, float, int, int, float]]:
    """Points of every paper curve of Figure 2 (both panels, every transform) at two KLs."""
    n = cfg.n
    sample = []
    for k, ts in ((n, cfg.t_best), (1, cfg.t_worst)):
        for kind, t in [("identity", 0.0), ("log", 0.0), *(("exp", t) for t in ts)]:
            for target in (cfg.kl_max / 3.0, 2.0 * cfg.kl_max / 3.0):
                sample.append((kind, t, k, n, target))
    return sample


def fig2_timings(repeat: int) -> dict:
    """The library's Figure 2 against the reference's time per point, in paired repeats.

    The reference is timed on a sample of points from every paper curve (24 points), and in
    each repeat the library's whole figure and the reference's sample run back to back, so
    that both see the same machine load; the speed-up is the median of the per-repeat
    ratios, reported with their spread.
    """
    fig2 = _load_fig2()
    cfg = fig2.Config()
    fig2.compute(cfg)
    seconds = median_time(lambda: fig2.compute(cfg), repeat)
    paper_only = fig2.Config(optimal=False)
    points = 2 * (2 + len(cfg.t_best)) * cfg.points
    sample = fig2_sample(cfg)
    paper_times, per_point = [], []
    for _ in range(repeat):
        paper_times.append(_time(lambda: fig2.compute(paper_only), 1))
        start = time.perf_counter()
        for kind, t, k, n, target in sample:
            reference_fig2_point(kind, t, k, n, target)
        per_point.append((time.perf_counter() - start) / len(sample))
    ratios = [r * points / p for r, p in zip(per_point, paper_times, strict=True)]
    return {
        "fig2_points": points + 2 * cfg.points,
        "fig2_seconds": seconds,
        "fig2_paper_curves_seconds": statistics.median(paper_times),
        "reference_seconds_per_fig2_point": statistics.median(per_point),
        "reference_sample_points": len(sample),
        "speedup_fig2": statistics.median(ratios),
        "speedup_fig2_spread": [min(ratios), max(ratios)],
    }


def frontier_timings(repeat: int) -> dict:
    grid = np.linspace(0.1, 5.0, 50)
    pareto_frontier(ia.best_of(32), grid[:2])
    return {
        "frontier_seconds": median_time(
            lambda: pareto_frontier(ia.best_of(32), grid), max(3, repeat // 3)
        )
    }


def script_timings() -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, env in (
            ("fig2_script_seconds", {}),
            ("fig2_script_seconds_no_cache", {"NUMBA_CACHE_DIR": tmp + "/cache"}),
        ):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, str(ROOT / "experiments" / "fig2.py"), "--out", tmp],
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            out[key] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=9, help="repeats per timing (median)")
    parser.add_argument(
        "--no-script",
        action="store_true",
        help="skip the fresh-process timings of experiments/fig2.py",
    )
    args = parser.parse_args(argv)
    library_evaluate(ia.Exponential(3.0), 0.5, ia.best_of(4))  # compile / load the kernels
    cases = run_cases(args.repeat)
    result = {
        "speedup_single": cases[0]["speedup"],
        **fig2_timings(args.repeat),
        **frontier_timings(args.repeat),
        **({} if args.no_script else script_timings()),
        "cases": cases,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for row in cases:
            print(
                f"{row['case']:40s} library {row['library_seconds'] * 1e6:8.1f} us  "
                f"reference {row['reference_seconds'] * 1e3:8.2f} ms  speedup "
                f"{row['speedup']:7.0f}x  errors {row['library_max_error']:.1e} / "
                f"{row['reference_max_error']:.1e}"
            )
        for key, value in result.items():
            if key not in ("cases", "machine", "speedup_fig2_spread"):
                print(f"{key:36s} {value:.4g}")
        low, high = result["speedup_fig2_spread"]
        print(f"{'speedup_fig2_spread':36s} {low:.4g} - {high:.4g}")
    return result


if __name__ == "__main__":
    main()
