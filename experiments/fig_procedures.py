"""Procedures beyond order statistics: win rate against KL at a sample budget of 4 and 16.

For each budget n, the inference-time win rate W(T(pi) > T(pi_ref)) (ties 1/2, the procedure
applied to the policy and to the base) against KL(pi || pi_ref) of

* Best-of-n (the paper's Figure 2 procedure),
* soft Best-of-n at temperatures 0.05, 0.2 and 1: n draws, one returned with probability
  proportional to exp(C / temperature), C the calibrated reward (Verdun et al., arXiv
  2505.03156),
* threshold sampling at tau = 1 - 1/n: draw until C >= tau, at most n draws, else the best of
  the n (Beirami et al., arXiv 2401.01879, §6). One draw passes with probability 1/n under
  the base, so the base passes within its budget with probability 1 - (1 - 1/n)^n (0.68 at
  n = 4, 0.64 at n = 16) and the threshold binds as often as the budget does,

each aligned by calibrated RLHF (the identity transform, ``tradeoff_curve``; dashed) and by
its own optimum of Theorem 1 (InfAlign, Balashankar, Sun, et al., arXiv 2412.19792;
``solve_optimal(procedure, kl=...)`` at each budget of a modest KL grid; solid, with
markers at the solved budgets). The base law is the model-agnostic continuous one, so the
curves hold for every continuous reward law. Every optimum's fixed-point residual, its
convergence and the seconds its curve took are in the JSON.

The full figure took 8.6 minutes (4.7 minutes of CPU; ``seconds`` in the JSON) on two
shared cores: 48 continuous solves of the procedures beyond order statistics, 2-40 s each,
most of it soft Best-of-n at the lower temperatures. No solve failed; a budget whose solve
raised would be listed under ``failed`` and left out of its curve. ``--quick`` solves
n = 4 at one KL for Best-of-4, one temperature and the threshold (about 15 s).

    python experiments/fig_procedures.py          # paper_figures/fig_procedures.png and .json
    python experiments/fig_procedures.py --quick  # a temporary folder
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.optimal import solve_optimal

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    """Parameters of the figure; every one is saved in the JSON."""

    budgets: tuple[int, ...] = (4, 16)
    temperatures: tuple[float, ...] = (0.05, 0.2, 1.0)
    # KL budgets of the optima (0 is the base policy) and of the identity's denser curves
    optimal_kls: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
    identity_points: int = 13
    kl_max: float = 3.0


QUICK = Config(budgets=(4,), temperatures=(1.0,), optimal_kls=(0.0, 1.0), identity_points=3)


def procedures(n: int, cfg: Config) -> list[ia.Procedure]:
    """Best-of-n, soft Best-of-n at each temperature, threshold sampling at tau = 1 - 1/n."""
    return [
        ia.best_of(n),
        *(ia.soft_best_of(n, t) for t in cfg.temperatures),
        ia.threshold_sampling(n, 1.0 - 1.0 / n),
    ]


def optimal_curve(procedure: ia.Procedure, kls: tuple[float, ...]) -> dict[str, Any]:
    """The optimum at each KL budget, with each solve's diagnostics; failures listed."""
    start = time.perf_counter()
    base = ia.base_policy()
    keys = ("kl", "win_rate", "standard_win_rate", "beta", "residual", "converged",
            "stationary_points")  # fmt: skip
    rows: dict[str, list[Any]] = {key: [] for key in keys}
    failed = []
    for budget in kls:
        if budget == 0.0:
            values = (0.0, ia.win_rate(base, procedure), 0.5, None, 0.0, True, 1)
        else:
            try:
                sol = solve_optimal(procedure, kl=budget)
            except RuntimeError as err:  # reported, never hidden
                failed.append({"kl": budget, "error": str(err)})
                continue
            values = (sol.kl, sol.win_rate, sol.standard_win_rate, sol.beta, sol.residual,
                      bool(sol.converged), len(sol.stationary_points))  # fmt: skip
        for key, v in zip(rows, values, strict=True):
            rows[key].append(v)
    return {"transform": "optimal", **rows, "failed": failed,
            "seconds": time.perf_counter() - start}  # fmt: skip


def compute(cfg: Config) -> dict:
    """Every number the figure plots, as a JSON-ready dictionary."""
    identity_kls = np.linspace(0.0, cfg.kl_max, cfg.identity_points)
    panels = []
    for n in cfg.budgets:
        curves = []
        for proc in procedures(n, cfg):
            t0 = time.perf_counter()
            identity = ia.tradeoff_curve(ia.Identity(), proc, kls=identity_kls).to_dict()
            identity["seconds"] = time.perf_counter() - t0
            optimal = optimal_curve(proc, cfg.optimal_kls)
            # the optimum against the identity at the optimum's budgets
            at = ia.tradeoff_curve(ia.Identity(), proc, kls=optimal["kl"]).win_rate
            optimal["gain_over_identity"] = (np.asarray(optimal["win_rate"]) - at).tolist()
            curves.append({
                "procedure": proc.name,
                "kind": type(proc).__name__,
                "parameters": proc.parameters(),
                "identity": identity,
                "optimal": optimal,
            })  # fmt: skip
            gain = max(optimal["gain_over_identity"])
            print(f"{proc.name}: optimum {optimal['seconds']:.1f} s, largest gain {gain:.4f}",
                  flush=True)  # fmt: skip
        panels.append({"n": n, "curves": curves})
    return {
        "figure": "win rate against KL for Best-of-n, soft Best-of-n and threshold sampling",
        "win_rate": "inference-time: T(policy) against T(base), ties 1/2",
        "law": "continuous (model-agnostic)",
        "package_version": ia.__version__,
        "parameters": asdict(cfg),
        "panels": panels,
    }


def _label(curve: dict) -> str:
    p = curve["parameters"]
    if curve["kind"] == "SoftBestOf":
        return f"soft Best-of-{p['n']}, temperature {p['temperature']:g}"
    if curve["kind"] == "ThresholdSampling":
        return f"threshold, tau = {p['tau']:g}"
    return f"Best-of-{p['n']}"


def plot(data: dict, path: Path) -> None:
    """One panel per budget n; a colour per procedure, solid optimum, dashed identity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = data["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 5.4), squeeze=False)
    fig.suptitle(
        "Inference-time win rate against KL: each procedure with its own optimum of "
        "Theorem 1 (solid, solved at the markers) and with calibrated RLHF (dashed)",
        fontsize=11,
    )
    colors = ["k", "tab:blue", "tab:cyan", "tab:olive", "tab:red", "tab:purple"]
    for ax, panel in zip(axes[0], panels, strict=True):
        for curve, color in zip(panel["curves"], colors, strict=False):
            label = _label(curve)
            opt, idt = curve["optimal"], curve["identity"]
            ax.plot(opt["kl"], opt["win_rate"], color=color, lw=2.0, marker="o", ms=3.5,
                    label=f"{label}: optimum")  # fmt: skip
            ax.plot(idt["kl"], idt["win_rate"], color=color, lw=1.4, ls="--",
                    label=f"{label}: calibrated RLHF")  # fmt: skip
        n = panel["n"]
        ax.set_title(f"sample budget n = {n}")
        ax.set_xlabel(r"KL($\pi\,\|\,\pi_{\mathrm{ref}}$) [nats]")
        ax.set_ylabel(r"win rate of T($\pi$) against T($\pi_{\mathrm{ref}}$)")
        ax.set_xlim(0, data["parameters"]["kl_max"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path, dpi=150)


def main(argv: list[str] | None = None) -> Path:
    """Compute, save the JSON, draw the PNG; return the PNG's path."""
    parser = figure_parser(__doc__.splitlines()[0], "n = 4, one temperature, the optimum at one KL")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(cfg)
    data["seconds"] = time.perf_counter() - start
    json_path = out / "fig_procedures.json"
    write_json(json_path, data)
    png = out / "fig_procedures.png"
    plot(data, png)
    print(f"wrote {png} and {json_path} (computed in {data['seconds']:.0f} s)")
    return png


if __name__ == "__main__":
    main()
