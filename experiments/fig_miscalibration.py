"""Raw against calibrated RLHF across prompts whose reward models are miscalibrated.

A toy analogue of InfAlign's Figure 3 (reward scores against reward ranks on 10 prompts)
and of its standard win-rate comparison. Ten prompts, each with its own reward law under
the base -- Gaussians of five scales, skewed Beta laws, a uniform, and two discrete laws
with ties (one heavy-tailed) -- are aligned with ONE shared beta:

* left: each prompt's reward against its calibrated rank u (the law's quantile function);
* right: prompt-averaged standard win rate against prompt-averaged KL, for raw-reward KL-RL
  (each prompt tilted by its own reward) and calibrated KL-RL (identity of the calibrated
  reward). The calibrated curve is the frontier (the Gibbs principle, prompt by prompt);
  the raw curve falls below it, by the amount the JSON records.

    python experiments/fig_miscalibration.py            # a few seconds
    python experiments/fig_miscalibration.py --quick    # coarse; temporary folder
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.prompts import align_prompts, frontier_gap

ROOT = Path(__file__).resolve().parents[1]


def prompt_set() -> list[tuple[str, ia.ContinuousLaw | ia.DiscreteLaw]]:
    """The ten prompts' reward laws (fixed; the discrete ones from seeded samples)."""
    rng = np.random.default_rng(3)
    heavy = np.round(stats.t(2).rvs(size=40, random_state=rng), 1)
    ties = np.round(rng.normal(1.0, 0.7, size=60))
    return [
        ("normal, mean 0, sd 0.2", ia.ContinuousLaw(stats.norm(0.0, 0.2))),
        ("normal, mean 1, sd 0.5", ia.ContinuousLaw(stats.norm(1.0, 0.5))),
        ("normal, mean -1, sd 1", ia.ContinuousLaw(stats.norm(-1.0, 1.0))),
        ("normal, mean 2, sd 2", ia.ContinuousLaw(stats.norm(2.0, 2.0))),
        ("normal, mean 0, sd 4", ia.ContinuousLaw(stats.norm(0.0, 4.0))),
        ("beta(2, 5)", ia.ContinuousLaw(stats.beta(2.0, 5.0))),
        ("3 x beta(5, 2)", ia.ContinuousLaw(stats.beta(5.0, 2.0, scale=3.0))),
        ("uniform on [-2, 2]", ia.ContinuousLaw(stats.uniform(-2.0, 4.0))),
        ("60 normals (mean 1, sd 0.7) rounded: ties", ia.DiscreteLaw.from_samples(ties)),
        ("40 Student-t(2) rounded to 0.1: ties", ia.DiscreteLaw.from_samples(heavy)),
    ]


def compute(points: int) -> dict:
    named = prompt_set()
    laws = [law for _, law in named]
    cal = align_prompts(laws, np.geomspace(0.012, 30.0, points), calibrated=True)
    raw = align_prompts(laws, np.geomspace(0.45, 400.0, points), calibrated=False)
    gap = frontier_gap(cal, raw)
    u = np.linspace(0.005, 0.995, 199)
    scores = [
        {"prompt": name, "u": u.tolist(), "reward": law.ppf(u).tolist()} for name, law in named
    ]
    ok = ~np.isnan(gap)
    i = int(np.nanargmax(gap))
    return {
        "figure": "raw against calibrated RLHF across miscalibrated prompts",
        "package_version": ia.__version__,
        "prompts": [name for name, _ in named],
        "reward_against_rank": scores,
        "calibrated": cal.to_dict(),
        "raw": raw.to_dict(),
        "gap_at_raw_points": [None if np.isnan(g) else float(g) for g in gap],
        "largest_gap": {
            "gap": float(gap[i]),
            "kl": float(raw.kl[i]),
            "raw_win_rate": float(raw.standard_win_rate[i]),
            "calibrated_win_rate": float(raw.standard_win_rate[i] + gap[i]),
        },
        "raw_never_above_frontier": bool(np.all(gap[ok] >= -1e-12)),
    }


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.4, 5.6))
    cmap = matplotlib.colormaps["tab10"]
    for j, s in enumerate(data["reward_against_rank"]):
        left.plot(s["u"], s["reward"], color=cmap(j), lw=1.5, label=s["prompt"])
    left.set_xlabel("calibrated reward (rank under the base) u")
    left.set_ylabel("reward score")
    left.set_title("Ten prompts: reward against rank")
    low = min(min(s["reward"]) for s in data["reward_against_rank"])
    high = max(max(s["reward"]) for s in data["reward_against_rank"])
    left.set_ylim(low - 0.5, high + 0.5)  # every curve whole
    left.grid(alpha=0.3)
    left.legend(fontsize=7.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    cal, raw = data["calibrated"], data["raw"]
    right.plot(
        cal["kl"],
        cal["standard_win_rate"],
        "k-",
        lw=2.0,
        label="calibrated (identity): the frontier",
    )
    right.plot(raw["kl"], raw["standard_win_rate"], color="tab:orange", lw=2.0, label="raw reward")
    g = data["largest_gap"]
    right.annotate(
        f"gap {100 * g['gap']:.1f} points",
        xy=(g["kl"], g["raw_win_rate"]),
        xytext=(g["kl"] + 0.4, g["raw_win_rate"] - 0.08),
        arrowprops={"arrowstyle": "->"},
        fontsize=9,
    )
    right.set_xlim(0, 5)
    right.set_xlabel("prompt-averaged KL [nats]")
    right.set_ylabel("prompt-averaged standard win rate")
    right.set_title("One shared beta across the ten prompts")
    right.grid(alpha=0.3)
    right.legend(fontsize=9, loc="lower right")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "8 betas per curve")
    args = parser.parse_args(argv)
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(8 if args.quick else 40)
    seconds = time.perf_counter() - start
    write_json(out / "fig_miscalibration.json", data)
    png = out / "fig_miscalibration.png"
    plot(data, png)
    g = data["largest_gap"]
    print(f"largest gap {g['gap']:.4f} at KL {g['kl']:.3f}; wrote {png} ({seconds:.1f} s)")
    return png


if __name__ == "__main__":
    main()
