"""Regenerate Figure 2 of InfAlign (arXiv 2412.19792): win rate against KL for N = 4.

Left: Best-of-4 win rate, right: Worst-of-4 win rate -- both inference-time win rates
W(T(pi) ≻ T(pi_ref)), the procedure applied on both sides -- against KL(pi || pi_ref), for
KL-RL with the identity transform of the calibrated reward (calibrated RLHF), the log
transform (Best-of-N distillation; the Best-of-4 policy itself is the marked point), the
exponential transform at several t (t > 0 on the Best-of-4 panel, t < 0 on the Worst-of-4
panel), and the optimum of Theorem 1 -- the best any policy can do at each KL, computed by
``pareto_frontier``. The curves are model-agnostic: they hold for every continuous reward
law.

    python experiments/fig2.py            # writes paper_figures/fig2.png and fig2.json
    python experiments/fig2.py --quick    # a coarse grid, for smoke tests (to a temp folder)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.optimal import pareto_frontier

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    """Parameters of the figure; every one is saved in the JSON."""

    n: int = 4
    kl_max: float = 3.5
    points: int = 71
    t_best: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0)
    t_worst: tuple[float, ...] = (-2.0, -5.0, -10.0, -20.0)
    optimal: bool = True
    panels: tuple[str, ...] = field(default=("best", "worst"))


def compute(cfg: Config) -> dict:
    """Every number the figure plots, as a JSON-ready dictionary."""
    kls = np.linspace(0.0, cfg.kl_max, cfg.points)
    best_of_n_beta = 1.0 / (cfg.n - 1)
    panels = {}
    for panel in cfg.panels:
        procedure = ia.best_of(cfg.n) if panel == "best" else ia.worst_of(cfg.n)
        ts = cfg.t_best if panel == "best" else cfg.t_worst
        transforms = [ia.Identity(), ia.Log(), *(ia.Exponential(t) for t in ts)]
        curves = [ia.tradeoff_curve(tr, procedure, kls=kls).to_dict() for tr in transforms]
        if cfg.optimal:
            curves.append(pareto_frontier(procedure, kls).to_dict())
        bon_policy = ia.tilt(ia.Log(), best_of_n_beta)
        point = ia.evaluate(bon_policy, procedure).to_dict()
        label = f"Best-of-{cfg.n} policy"
        if panel != "best":  # the same policy, judged by the other procedure
            label += f": its {procedure.name.capitalize()} win rate"
        panels[panel] = {
            "procedure": procedure.name,
            "curves": curves,
            "best_of_n_policy": {"label": label, **point},
        }
    return {
        "figure": "InfAlign (arXiv 2412.19792) Figure 2",
        "win_rate": "inference-time: T(policy) against T(base), ties 1/2",
        "package_version": ia.__version__,
        "parameters": asdict(cfg),
        "panels": panels,
    }


_STYLE = {"identity": ("k", "-"), "log": ("tab:gray", "--"), "optimal": ("tab:red", "-")}


def plot(data: dict, path: Path) -> None:
    """Draw the two panels from the computed numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data["panels"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.6 * len(names), 4.4), squeeze=False)
    n = data["parameters"]["n"]
    for ax, name in zip(axes[0], names, strict=True):
        panel = data["panels"][name]
        exp_curves = [c for c in panel["curves"] if c["transform"].startswith("exp")]
        cmap = matplotlib.colormaps["viridis"]
        for c in panel["curves"]:
            label = c["transform"]
            if label in _STYLE:
                color, ls = _STYLE[label]
                label = {
                    "identity": "identity (calibrated RLHF)",
                    "log": "log (Best-of-N distillation)",
                    "optimal": "optimal (Theorem 1)",
                }[label]
            else:
                i = exp_curves.index(c)
                color, ls = cmap(0.15 + 0.7 * i / max(1, len(exp_curves) - 1)), "-"
            optimal = c["transform"] == "optimal"
            ax.plot(
                c["kl"],
                c["win_rate"],
                color=color,
                ls=ls,
                lw=3.2 if optimal else 1.6,
                alpha=0.55 if optimal else 1.0,
                zorder=1 if optimal else 2,
                label=label,
            )
        pt = panel["best_of_n_policy"]
        ax.plot(pt["kl"], pt["win_rate"], "r*", ms=13, zorder=5, label=pt["label"])
        title = "Best" if name == "best" else "Worst"
        ax.set_title(f"{title}-of-{n}")
        ax.set_xlabel(r"KL($\pi\,\|\,\pi_{\mathrm{ref}}$) [nats]")
        ax.set_ylabel(f"{title}-of-{n} win rate vs {title}-of-{n} of base")
        ax.set_xlim(0, data["parameters"]["kl_max"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path, dpi=150)


def main(argv: list[str] | None = None) -> Path:
    """Compute, save the JSON, draw the PNG; return the PNG's path."""
    parser = figure_parser(__doc__.splitlines()[0], "coarse KL grid (8 points)")
    args = parser.parse_args(argv)
    cfg = Config(points=8) if args.quick else Config()
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(cfg)
    seconds = time.perf_counter() - start
    json_path = out / "fig2.json"
    write_json(json_path, data)
    png = out / "fig2.png"
    plot(data, png)
    total = sum(len(c["kl"]) for p in data["panels"].values() for c in p["curves"])
    print(f"wrote {png} and {json_path} ({total} points, computed in {seconds:.2f} s)")
    return png


if __name__ == "__main__":
    main()
