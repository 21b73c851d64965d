"""How many reference samples does calibration need? Win rate against KL for finite K.

InfAlign-CTRL calibrates each response against K base samples of its prompt; KL-RL then
optimises Phi(C^), whose conditional mean given the true calibrated reward is the exact
transform ``SampleCalibrated(Phi, K)`` (a Bernstein polynomial of Phi; mid-rank estimator).
Best-of-4 (left) and Worst-of-4 (right) inference-time win rate against KL for
K in 4, 8, 16, 32, 128 and infinity (exact calibration), with the exponential transform
(t = 10 for Best-of-4, t = -10 for Worst-of-4) and the identity -- which no K changes at
equal KL: the Bernstein polynomial of u is u. The JSON also holds, for each procedure and
transform, the smallest K whose win rate at KL = 1 is within 0.5 points of K = infinity.

    python experiments/fig_calibration_k.py            # about half a minute
    python experiments/fig_calibration_k.py --quick    # coarse; temporary folder
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json

ROOT = Path(__file__).resolve().parents[1]
KS = (4, 8, 16, 32, 128)
TOLERANCE = 0.005  # half a point of win rate


def win_at(transform: ia.Transform, proc: ia.OrderStatistic, kl: float) -> float:
    return float(ia.tradeoff_curve(transform, proc, kls=[kl]).win_rate[0])


def smallest_k(transform: ia.Transform, proc: ia.OrderStatistic, kl: float = 1.0) -> dict:
    """The smallest K with |W_K - W_inf| <= 0.005 at this KL (doubling, then bisection)."""
    exact = win_at(transform, proc, kl)

    def close(k: int) -> bool:
        return abs(win_at(ia.SampleCalibrated(transform, k), proc, kl) - exact) <= TOLERANCE

    hi = 1
    while not close(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if close(mid) else (mid, hi)
    k = hi if hi == 1 or not close(lo) else lo
    return {
        "procedure": proc.name,
        "transform": transform.name,
        "kl": kl,
        "win_rate_exact": exact,
        "smallest_k": k,
        "win_rate_at_smallest_k": win_at(ia.SampleCalibrated(transform, k), proc, kl),
    }


def compute(ks: tuple[int, ...], points: int) -> dict:
    kls = np.linspace(0.0, 3.0, points)
    panels = {}
    table = []
    for name, proc, t in (("best", ia.best_of(4), 10.0), ("worst", ia.worst_of(4), -10.0)):
        curves = []
        for base in (ia.Exponential(t), ia.Identity()):
            for k in (*ks, None):
                tr = base if k is None else ia.SampleCalibrated(base, k)
                c = ia.tradeoff_curve(tr, proc, kls=kls).to_dict()
                curves.append({"base": base.name, "k": k, **c})
            table.append(smallest_k(base, proc))
        panels[name] = {"procedure": proc.name, "curves": curves}
    return {
        "figure": "inference-time win rate against KL with calibration from K samples",
        "package_version": ia.__version__,
        "parameters": {"ks": list(ks), "estimator": "midrank", "tolerance": TOLERANCE},
        "panels": panels,
        "smallest_k_within_half_a_point_at_kl_1": table,
    }


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = data["parameters"]["ks"]
    cmap = matplotlib.colormaps["cividis"]
    fig, axes = plt.subplots(1, 2, figsize=(11.2, 4.6))
    for ax, (name, panel) in zip(axes, data["panels"].items(), strict=True):
        for c in panel["curves"]:
            if c["base"] == "identity":
                if c["k"] is None:
                    ax.plot(c["kl"], c["win_rate"], "k-", lw=1.6, label="identity, any K")
                continue
            if c["k"] is None:
                color, label, lw = "tab:red", f"{c['base']}, K = inf", 2.2
            else:
                color = cmap(0.05 + 0.8 * ks.index(c["k"]) / max(1, len(ks) - 1))
                label, lw = f"{c['base']}, K = {c['k']}", 1.4
            ax.plot(c["kl"], c["win_rate"], color=color, lw=lw, label=label)
        kind = "Best" if name == "best" else "Worst"
        ax.set_title(f"{kind}-of-4, calibration from K samples (mid-rank)")
        ax.set_xlabel(r"KL($\pi\,\|\,\pi_{\mathrm{ref}}$) [nats]")
        ax.set_ylabel(f"{kind}-of-4 win rate")
        ax.set_ylim(0.5, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "K in (4, 32), 7 KL points")
    args = parser.parse_args(argv)
    ks, points = ((4, 32), 7) if args.quick else (KS, 31)
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(ks, points)
    seconds = time.perf_counter() - start
    write_json(out / "fig_calibration_k.json", data)
    png = out / "fig_calibration_k.png"
    plot(data, png)
    for row in data["smallest_k_within_half_a_point_at_kl_1"]:
        print(f"  {row['procedure']:11s} {row['transform']:12s} smallest K = {row['smallest_k']}")
    print(f"wrote {png} and fig_calibration_k.json ({seconds:.1f} s)")
    return png


if __name__ == "__main__":
    main()
