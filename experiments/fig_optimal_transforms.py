"""The InfAlign optimal transforms for Best-of-N and Worst-of-N, and their exponential fits.

For N in 2, 4, 8, 16, 32 and KL budgets 0.25, 1 and 3 nats: the transform R of Theorem 1
(``solve_optimal``), normalised to R(0) = 0, R(1) = 1, against the calibrated reward u on a
logit axis (both ends matter: Best-of-N acts next to u = 1, Worst-of-N next to u = 0), and,
dashed, the exponential transform Phi_t (already in [0, 1]) whose t minimises the squared
distance to it on a grid uniform in logit(u) over [1e-6, 1 - 1e-6]. The JSON beside the
picture holds every curve, the fitted t, and the win rates at the budget of the optimum and
of the fitted exponential.

    python experiments/fig_optimal_transforms.py            # about half a minute
    python experiments/fig_optimal_transforms.py --quick    # N in 2, 8; KL 1; temp folder
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from scipy import optimize, special

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.optimal import solve_optimal

ROOT = Path(__file__).resolve().parents[1]
NS = (2, 4, 8, 16, 32)
KLS = (0.25, 1.0, 3.0)
GRID = special.expit(np.linspace(special.logit(1e-6), special.logit(1 - 1e-6), 241))


def fit_exponential(values: np.ndarray, sign: float) -> tuple[float, float]:
    """The t (of the given sign) whose Phi_t is closest to ``values`` on GRID, and the RMS."""

    def rms(x: float) -> float:
        return float(np.sqrt(np.mean((ia.Exponential(sign * math.exp(x))(GRID) - values) ** 2)))

    xs = np.linspace(math.log(0.01), math.log(1e5), 61)
    i = int(np.argmin([rms(x) for x in xs]))
    res = optimize.minimize_scalar(
        rms,
        bounds=(xs[max(i - 1, 0)], xs[min(i + 1, xs.size - 1)]),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return sign * math.exp(res.x), float(res.fun)


def compute(ns: tuple[int, ...], kls: tuple[float, ...]) -> dict:
    panels = []
    for name, make in (("best", ia.best_of), ("worst", ia.worst_of)):
        for kl in kls:
            curves = []
            for n in ns:
                proc = make(n)
                sol = solve_optimal(proc, kl=kl)
                values = sol.transform(GRID)
                values = (values - sol.transform([0.0])[0]) / (
                    sol.transform([1.0])[0] - sol.transform([0.0])[0]
                )
                t, err = fit_exponential(values, 1.0 if name == "best" else -1.0)
                try:
                    w_fit = float(
                        ia.tradeoff_curve(ia.Exponential(t), proc, kls=[sol.kl]).win_rate[0]
                    )
                except ValueError:
                    w_fit = None
                curves.append({
                    "n": n, "procedure": proc.name, "kl": sol.kl, "beta": sol.beta,
                    "saturated": sol.saturated, "optimal": values.tolist(),
                    "fitted_t": t, "fit_rms": err, "fitted": ia.Exponential(t)(GRID).tolist(),
                    "win_rate_optimal": sol.win_rate, "win_rate_fitted_exponential": w_fit,
                })  # fmt: skip
            panels.append({"procedure": name, "kl_budget": kl, "curves": curves})
    return {
        "figure": "optimal transforms of InfAlign Theorem 1 with exponential fits",
        "package_version": ia.__version__,
        "u": GRID.tolist(),
        "parameters": {
            "ns": list(ns),
            "kls": list(kls),
            "fit": "least squares on a logit-uniform grid of u in [1e-6, 1 - 1e-6]",
        },
        "panels": panels,
    }


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kls = data["parameters"]["kls"]
    fig, axes = plt.subplots(2, len(kls), figsize=(4.6 * len(kls), 8.0), squeeze=False)
    u = np.array(data["u"])
    cmap = matplotlib.colormaps["plasma"]
    for panel in data["panels"]:
        row = 0 if panel["procedure"] == "best" else 1
        ax = axes[row][kls.index(panel["kl_budget"])]
        for j, c in enumerate(panel["curves"]):
            color = cmap(0.1 + 0.75 * j / max(1, len(panel["curves"]) - 1))
            ax.plot(u, c["optimal"], color=color, lw=2.0, label=f"N = {c['n']}")
            ax.plot(u, c["fitted"], color=color, lw=1.2, ls="--")
        ax.set_xscale("logit")
        ax.set_xlim(1e-6, 1 - 1e-6)
        ax.set_ylim(-0.03, 1.03)
        ticks = [1e-5, 1e-3, 0.5, 1 - 1e-3, 1 - 1e-5]
        ax.set_xticks(ticks, ["1e-5", "1e-3", "0.5", "1-1e-3", "1-1e-5"])
        ax.minorticks_off()
        kind = "Best" if row == 0 else "Worst"
        ax.set_title(f"{kind}-of-N, KL = {panel['kl_budget']:g} nats")
        saturated = [c for c in panel["curves"] if c["saturated"]]
        if saturated:  # W_T within 1e-10 of 1 before the budget: the solver stopped there
            lines = [f"N = {c['n']}: saturated at KL {c['kl']:.2f}" for c in saturated]
            ax.text(
                0.98, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )  # fmt: skip
        ax.set_xlabel("calibrated reward u (logit scale)")
        ax.set_ylabel("normalised transform")
        ax.grid(alpha=0.3)
        if ax is axes[row][0]:
            ax.legend(
                fontsize=8,
                loc="upper left",
                title="solid: optimal\ndashed: exp(t) fit",
                title_fontsize=8,
            )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "N in (2, 8), KL 1")
    args = parser.parse_args(argv)
    ns, kls = ((2, 8), (1.0,)) if args.quick else (NS, KLS)
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(ns, kls)
    seconds = time.perf_counter() - start
    write_json(out / "fig_optimal_transforms.json", data)
    png = out / "fig_optimal_transforms.png"
    plot(data, png)
    print(f"wrote {png} and fig_optimal_transforms.json ({seconds:.1f} s)")
    return png


if __name__ == "__main__":
    main()
