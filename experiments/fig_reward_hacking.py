"""Reward hacking, exactly: aligning to a reward model that errs, raw or calibrated.

Eight prompts, each with 400 responses equally likely under the base; a true reward (with
ties) and a reward model's score per response. KL-RL with one shared beta optimises the
score -- raw, or the identity of its calibrated value -- and we measure the TRUE
prompt-averaged standard win rate against the exact KL over responses; the oracle aligns
to the true reward's calibrated value (the frontier). Three reward models:

* rare large errors: 2 % of the responses, of poor true quality, get +8 on the score.
  Raw alignment chases them at any KL; calibration caps their pull (their rank can be no
  more than 1) and holds up at moderate KL, but at small beta it is hacked too.
* monotone distortions: on half the prompts the score is an increasing function of the
  true reward (exp(2 r), or 10 r + 5). Calibration is invariant to them (InfAlign Lemma 3):
  the calibrated proxy IS the oracle; the raw scores' new scales misspend the shared beta.
* noise: score = true + N(0, 0.7^2). The ranking itself is wrong; calibration cannot undo
  that, and both fall short of the oracle.

    python experiments/fig_reward_hacking.py            # a few seconds
    python experiments/fig_reward_hacking.py --quick    # coarse; temporary folder
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import numpy as np

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.prompts import ProxyPrompt, align_to_proxy

ROOT = Path(__file__).resolve().parents[1]
RESPONSES = 400
PROMPTS = 8


def scenarios(seed: int = 7) -> dict[str, list[ProxyPrompt]]:
    rng = np.random.default_rng(seed)
    scale = np.array([0.5, 1.0, 2.0, 0.3, 1.5, 1.0, 3.0, 0.8])
    probs = np.full(RESPONSES, 1.0 / RESPONSES)
    out: dict[str, list[ProxyPrompt]] = {
        "rare large errors": [],
        "monotone distortions": [],
        "noise": [],
    }
    for p in range(PROMPTS):
        true = np.round(rng.normal(0.0, 1.0, RESPONSES), 1)  # ties
        hacked = rng.random(RESPONSES) < 0.02
        true_h = np.where(hacked, np.minimum(true, -1.0), true)  # the exploits are poor
        out["rare large errors"].append(
            ProxyPrompt(probs, true_h, true_h + np.where(hacked, 8.0, 0.0))
        )
        distorted = np.exp(2.0 * true) if p % 4 == 0 else 10.0 * true + 5.0 if p % 4 == 1 else true
        out["monotone distortions"].append(
            ProxyPrompt(probs, true * scale[p], distorted * scale[p])
        )
        out["noise"].append(ProxyPrompt(probs, true, true + rng.normal(0.0, 0.7, RESPONSES)))
    return out


#: What each reward model gets wrong (r is the true reward of a response), as the panels say.
ERRORS = {
    "rare large errors": "2 % of responses, all poor (true r <= -1), score r + 8",
    "monotone distortions": "score exp(2 r) or 10 r + 5 on half the prompts, r on the others",
    "noise": "score r + e, e normal with mean 0 and sd 0.7, independent per response",
}


def compute(points: int) -> dict:
    betas = np.geomspace(1e-3, 1e2, points)
    panels = {}
    for name, prompts in scenarios().items():
        curves = {
            r: align_to_proxy(prompts, betas, reward=r).to_dict()
            for r in ("true_calibrated", "proxy_calibrated", "proxy_raw")
        }
        panels[name] = curves
    return {
        "figure": "true win rate against KL when aligning to a reward model that errs",
        "package_version": ia.__version__,
        "parameters": {"prompts": PROMPTS, "responses": RESPONSES, "betas": betas.tolist()},
        "reward_models": ERRORS,
        "panels": panels,
    }


def _wrap(text: str) -> str:
    return textwrap.fill(text, 44, break_on_hyphens=False, break_long_words=False)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {
        "true_calibrated": ("k", "-", "oracle: true reward, calibrated"),
        "proxy_calibrated": ("tab:blue", "-", "reward model, calibrated"),
        "proxy_raw": ("tab:orange", "--", "reward model, raw"),
    }
    fig, axes = plt.subplots(1, len(data["panels"]), figsize=(5.2 * len(data["panels"]), 4.8))
    p = data["parameters"]
    fig.suptitle(
        f"Aligning to a reward model that errs: the true win rate of KL-RL on its score "
        f"({p['prompts']} prompts x {p['responses']} responses, one beta for all prompts)",
        fontsize=12,
    )
    for ax, (name, curves) in zip(axes, data["panels"].items(), strict=True):
        for key, c in curves.items():
            color, ls, label = style[key]
            kl, w = np.array(c["kl"]), np.array(c["standard_win_rate"])
            order = np.argsort(kl)
            oracle = key == "true_calibrated"
            ax.plot(
                kl[order],
                w[order],
                color=color,
                ls=ls,
                lw=4.0 if oracle else 1.8,
                zorder=1 if oracle else 2,
                label=label,
            )
        ax.set_xlim(0, 5)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"{name}\n{_wrap(data['reward_models'][name])}", fontsize=10)
        ax.set_xlabel("prompt-averaged KL over responses [nats]")
        ax.set_ylabel("true standard win rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "10 betas")
    args = parser.parse_args(argv)
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(10 if args.quick else 60)
    seconds = time.perf_counter() - start
    write_json(out / "fig_reward_hacking.json", data)
    png = out / "fig_reward_hacking.png"
    plot(data, png)
    print(f"wrote {png} and fig_reward_hacking.json ({seconds:.1f} s)")
    return png


if __name__ == "__main__":
    main()
