"""Start-up time of the `infalign` command against a bare `python -c "import numpy"`.

    python benchmarks/bench_startup.py            # a table
    python benchmarks/bench_startup.py --json     # one JSON object (ratio, spreads, ...)

Each command runs in a fresh process, as a user's shell runs it: the numba cache is warm (the
commands are run twice, untimed, before timing: a first run on a new machine also compiles the
kernels, about 10 s, once) and so is Python's bytecode cache (PYTHONDONTWRITEBYTECODE is
removed from the commands' environment: without it an editable install recompiles the
package's sources on every call, while numpy's and numba's installed bytecode is used).
Like hyperfine, the commands are timed in rounds, each round running every command once in a
rotating order so that all see the same machine load, and the report gives per command the
median, minimum and interquartile range of the wall times and the median CPU time (user +
system, steadier than wall time on a busy machine), and the ratio median(evaluate) /
median(numpy) with the spread of the per-round ratios.

Commands timed:
  numpy      python -c "import numpy"                     (the reference)
  evaluate   infalign evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json
  import     python -c "import infalign_theory"           (the package's import alone)
  numba      python -c "<import numba, call one cached trivial njit function>": the floor
             of any process that loads a cached numba kernel (numba initialises its
             compiler's registries on the first cache load, whatever the kernel, and
             with them imports scipy.linalg to look for BLAS)
  import_numba  python -c "import numba"                 (numba's import alone)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ["evaluate", "--procedure", "bon", "--n", "4", "--transform", "exp", "--t", "10"]
EVALUATE += ["--kl", "1", "--json"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PROBE = """from numba import njit


@njit(cache=True, error_model="numpy")
def one(x):
    return x + 1.0
"""


def commands(probe_dir: str) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "numpy": [py, "-c", "import numpy"],
        "evaluate": [py, "-m", "infalign_theory.cli", *EVALUATE],
        "import": [py, "-c", "import infalign_theory"],
        "numba": [
            py,
            "-c",
            f"import sys; sys.path.insert(0, {probe_dir!r}); import probe; probe.one(1.0)",
        ],
        "import_numba": [py, "-c", "import numba"],
    }


def run_once(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def quartiles(x: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(x, n=4)
    return q[0], q[2]


def measure(rounds: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as probe_dir:
        Path(probe_dir, "probe.py").write_text(PROBE)
        cmds = commands(probe_dir)
        for _ in range(warmup):  # warm the numba caches and the file system
            for cmd in cmds.values():
                run_once(cmd)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        names = list(cmds)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                wall, used = run_once(cmds[name])
                times[name].append(wall)
                cpu[name].append(used)
    per_round = [e / n for e, n in zip(times["evaluate"], times["numpy"], strict=True)]
    median = statistics.median
    out: dict = {
        "ratio": median(times["evaluate"]) / median(times["numpy"]),
        "ratio_per_round": {
            "median": median(per_round),
            "min": min(per_round),
            "max": max(per_round),
        },
        "cpu_ratio": median(cpu["evaluate"]) / median(cpu["numpy"]),
        "numba_floor_ratio": median(times["numba"]) / median(times["numpy"]),
        "numba_floor_cpu_ratio": median(cpu["numba"]) / median(cpu["numpy"]),
        "numba_import_ratio": median(times["import_numba"]) / median(times["numpy"]),
        "numba_import_cpu_ratio": median(cpu["import_numba"]) / median(cpu["numpy"]),
        "commands": {},
        "rounds": rounds,
        "numba_cache": "warm",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
    }
    for name, t in times.items():
        q1, q3 = quartiles(t) if len(t) > 1 else (t[0], t[0])
        out["commands"][name] = {
            "command": " ".join(cmds[name][1:]) if name != "numba" else "cached numba kernel",
            "median_cpu_ratio": statistics.median(cpu[name]) / median(cpu["numpy"]),
            "median_seconds": statistics.median(t),
            "min_seconds": min(t),
            "iqr_seconds": [q1, q3],
            "median_cpu_seconds": statistics.median(cpu[name]),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.warmup)
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    for name, row in result["commands"].items():
        q1, q3 = row["iqr_seconds"]
        print(
            f"{name:12s} median {row['median_seconds']:6.3f} s  min {row['min_seconds']:6.3f} s"
            f"  IQR {q1:.3f}-{q3:.3f} s  CPU {row['median_cpu_seconds']:6.3f} s  "
            f"{row['command']}"
        )
    spread = result["ratio_per_round"]
    print(
        f"evaluate / numpy: {result['ratio']:.2f}x wall (per round: median "
        f"{spread['median']:.2f}, {spread['min']:.2f}-{spread['max']:.2f}), "
        f"{result['cpu_ratio']:.2f}x CPU; a cached numba kernel alone: "
        f"{result['numba_floor_ratio']:.2f}x wall, {result['numba_floor_cpu_ratio']:.2f}x CPU; "
        f"import numba alone: {result['numba_import_ratio']:.2f}x wall, "
        f"{result['numba_import_cpu_ratio']:.2f}x CPU"
    )
    print(
        f"numba cache warm, {result['rounds']} rounds, load average "
        f"{result['machine']['load_average']}"
    )
    return result


if __name__ == "__main__":
    main()
