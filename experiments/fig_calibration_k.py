"""How many reference samples does calibration need? Win rate against KL for finite K.

InfAlign-CTRL calibrates each response against K base samples of its prompt; KL-RL then
optimises Phi(C^), whose conditional mean given the true calibrated reward is the exact
transform ``SampleCalibrated(Phi, K)`` (a Bernstein polynomial of Phi; mid-rank estimator).
Best-of-4 (left) and Worst-of-4 (right) inference-time win rate against KL for
K in 4, 8, 16, 32, 128 and infinity (exact calibration), with the exponential transform
(t = 10 for Best-of-4, t = -10 for Worst-of-4) and the identity -- which no K changes at
equal KL: the Bernstein polynomial of u is u. The lower panels show the difference to exact
calibration in points of win rate, where the K curves that overlap above come apart. The KL
grid is quadratic (dense near 0, where the curves rise fastest). The JSON also holds, for
each procedure and transform, the smallest K whose win rate at KL = 1 is within 0.5 points
of K = infinity.

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


def kl_grid(points: int, kl_max: float = 3.0) -> np.ndarray:
    """KLs from 0 to kl_max, quadratically spaced: dense near 0, where the curves rise fast."""
    return kl_max * np.linspace(0.0, 1.0, points) ** 2


def compute(ks: tuple[int, ...], points: int) -> dict:
    kls = kl_grid(points)
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
    """Top: win rate against KL. Bottom: what calibration from K samples costs, in points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = data["parameters"]["ks"]
    cmap = matplotlib.colormaps["viridis"]
    styles = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))

    def style(k: int) -> dict:
        i = ks.index(k)
        return {
            "color": cmap(0.85 * i / max(1, len(ks) - 1)),
            "ls": styles[i % len(styles)],
            "lw": 1.5,
        }

    fig, axes = plt.subplots(
        2, 2, figsize=(11.2, 7.4), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for col, (name, panel) in enumerate(data["panels"].items()):
        top, bottom = axes[0, col], axes[1, col]
        exact = next(c for c in panel["curves"] if c["base"] != "identity" and c["k"] is None)
        for c in panel["curves"]:
            if c["base"] == "identity":
                if c["k"] is None:
                    top.plot(c["kl"], c["win_rate"], "k-", lw=1.6, label="identity, any K")
                continue
            if c["k"] is None:
                top.plot(
                    c["kl"], c["win_rate"], color="tab:red", lw=2.4, label=f"{c['base']}, K = inf"
                )
                continue
            label = f"{c['base']}, K = {c['k']}"
            top.plot(c["kl"], c["win_rate"], label=label, **style(c["k"]))
            loss = 100 * (np.array(c["win_rate"]) - np.array(exact["win_rate"]))
            bottom.plot(c["kl"], loss, label=f"K = {c['k']}", **style(c["k"]))
        bottom.axhline(0.0, color="tab:red", lw=2.4, label="K = inf (exact calibration)")
        kind = "Best" if name == "best" else "Worst"
        top.set_title(f"{kind}-of-4, calibration from K samples (mid-rank)")
        top.set_ylabel(f"{kind}-of-4 win rate")
        top.set_ylim(0.5, 1.0)
        top.legend(fontsize=8, loc="lower right")
        bottom.set_title(f"{exact['transform']}: win rate with K samples minus exact", fontsize=10)
        bottom.set_ylabel("difference [points]")
        bottom.set_xlabel(r"KL($\pi\,\|\,\pi_{\mathrm{ref}}$) [nats]")
        bottom.legend(fontsize=8, loc="lower right", ncol=2)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "K in (4, 32), 7 KL points")
    args = parser.parse_args(argv)
    ks, points = ((4, 32), 7) if args.quick else (KS, 41)
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
