"""InfAlign-CTRL on SmolLM2-135M-Instruct, evaluated on held-out prompts: does it generalise?

Movie-review openers (experiments/data/movie_openers.txt, written for this project) are
split into training and held-out prompts; the reward is VADER's compound sentiment of the
completion. For the identity and the exponential transform -- its exponent t chosen by the
core as the best for Best-of-4 at KL = 1 -- and for each beta of the preset (the betas at
which the *continuous* theory reaches the preset's KL targets), a copy of the base model is
trained with CTRL (K reference samples per training prompt), then evaluated on the held-out
prompts: KL and the standard and Best-of-4 win rates against the base, with standard errors
across prompts, from finite pools (``pool_win_rate``). Drawn over the analytic curves of the
same transforms (continuous case), with, for each run, the exact optimum at its beta for the
held-out prompts' empirical reward laws (ties and calibration from K samples included).

Whether RL reaches the tilted policy at all, on the prompts it trains on, is the question of
``experiments/bridge_converge.py`` (2 CPU cores); this script asks whether it carries over to
prompts it never saw, which needs the whole model and a GPU:

    python experiments/bridge_run.py --preset gpu     # paper_figures/fig_bridge_gpu.{png,json}
    python experiments/bridge_run.py --preset smoke   # a minute on CPU: the wiring, no conclusion

The figure and JSON are named after the preset and labelled with the device they ran on;
with --device, --steps or --kls overriding the preset, the name and the default run folder
end in ``_custom``, so the preset's own figure stays as it is. Run directories (checkpoints,
logs) go to --work (default .bridge_runs/<preset>); an interrupted run resumes where it
stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import infalign_theory as ia
from infalign_theory.bridge import CTRLConfig, VaderSentiment, load_model
from infalign_theory.bridge.runs import predicted, prepare, read_prompts, run_ctrl, split_prompts
from infalign_theory.cli._common import _number
from infalign_theory.figures import save_figure, write_json

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "experiments" / "data" / "movie_openers.txt"
PROCEDURE = ia.best_of(4)


@dataclass(frozen=True)
class Preset:
    """Sizes of one preset; every number below is recorded in the figure's JSON."""

    device: str
    train_prompts: int
    eval_prompts: int
    references: int
    max_new_tokens: int
    prompts_per_step: int
    group_size: int
    steps: int
    learning_rate: float
    pool: int
    base_pool: int
    kls: tuple[float, ...]
    batch_size: int
    checkpoint_every: int = 10
    model: str = "smollm2"
    t_kl: float = 1.0
    seed: int = 0


PRESETS = {
    "smoke": Preset(  # a minute on CPU: the whole pipeline, for CI, not for conclusions
        device="cpu",
        train_prompts=4,
        eval_prompts=4,
        references=4,
        max_new_tokens=4,
        prompts_per_step=2,
        group_size=2,
        steps=2,
        learning_rate=1e-5,
        pool=4,
        base_pool=4,
        kls=(0.5,),
        batch_size=16,
    ),
    "gpu": Preset(
        device="cuda",
        train_prompts=236,  # with the 64 held out, all 300 openers
        eval_prompts=64,
        references=16,
        max_new_tokens=24,
        prompts_per_step=16,
        group_size=8,
        steps=60,  # 1.3 s a step on an H200: four runs, pools and figure in about 7 minutes
        learning_rate=1e-5,
        pool=16,
        base_pool=32,
        kls=(0.25, 1.0),
        batch_size=256,
        checkpoint_every=0,  # a run trains in 80 s; the whole model and Adam's state are 1.6 GB
    ),
}


def analytic_curves(transforms: dict[str, ia.Transform], kl_max: float) -> dict:
    """Continuous-case trade-off curves of the transforms and the optimal frontier."""
    kls = np.linspace(0.0, kl_max, 41)
    out = {}
    for key, tr in transforms.items():
        c = ia.tradeoff_curve(tr, PROCEDURE, kls=kls)
        out[key] = {
            "kl": c.kl.tolist(),
            "win_rate": c.win_rate.tolist(),
            "standard_win_rate": c.standard_win_rate.tolist(),
        }
    from infalign_theory.optimal import pareto_frontier

    front = pareto_frontier(PROCEDURE, kls)
    out["optimal"] = {"kl": front.kl.tolist(), "win_rate": front.win_rate.tolist()}
    return out


def compute(preset: Preset, work: Path, progress: bool = True) -> dict:
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(preset.seed)
    t_star, w_star = ia.best_exponent(PROCEDURE, preset.t_kl)
    transforms = {"identity": ia.Identity(), "exponential": ia.Exponential(round(t_star, 2))}
    model, tokenizer = load_model(preset.model, device=preset.device)
    loaded = time.perf_counter()
    train, held_out = split_prompts(
        read_prompts(PROMPTS), preset.train_prompts, preset.eval_prompts, preset.seed
    )
    reward = VaderSentiment()
    device = next(model.parameters()).device
    calibrator, base = prepare(
        model, tokenizer, train, held_out, reward, references=preset.references,
        base_pool=preset.base_pool, max_new_tokens=preset.max_new_tokens, seed=preset.seed,
        batch_size=preset.batch_size, work=work, progress=progress,
    )  # fmt: skip
    sampled = time.perf_counter()

    runs = []
    for key, tr in transforms.items():
        for kl in preset.kls:
            beta = ia.beta_for_kl(tr, kl)
            config = CTRLConfig(
                beta=beta,
                steps=preset.steps,
                prompts_per_step=preset.prompts_per_step,
                group_size=preset.group_size,
                max_new_tokens=preset.max_new_tokens,
                learning_rate=preset.learning_rate,
                references=preset.references,
                seed=preset.seed,
                checkpoint_every=preset.checkpoint_every,
            )
            record = run_ctrl(
                model, tokenizer, train, held_out, reward, tr, config,
                calibrator=calibrator, base_pool=base, pool=preset.pool,
                procedures=[PROCEDURE], run_dir=work / f"{key}_kl{kl:g}",
                batch_size=preset.batch_size, keep_checkpoint=False, progress=progress,
            )  # fmt: skip
            record["key"] = key
            record["target_kl_continuous"] = kl
            record["predicted"] = predicted(
                base.rewards, tr, beta, PROCEDURE, references=preset.references
            )
            runs.append(record)
            print(
                f"{key:12s} beta={beta:.4g}: KL {record['evaluation']['kl']['value']:.3f}, "
                f"BoN-4 win rate "
                f"{record['evaluation']['win_rates'][PROCEDURE.name]['value']:.3f}",
                flush=True,
            )
    trained = time.perf_counter()
    kl_max = max(2.0, 1.2 * max(max(preset.kls), *(r["evaluation"]["kl"]["value"] for r in runs)))
    curves = analytic_curves(transforms, kl_max)
    return {
        "figure": "InfAlign-CTRL on SmolLM2-135M-Instruct: measured points over the analytic "
        "Best-of-4 curves",
        "package_version": ia.__version__,
        "preset": dataclasses.asdict(preset),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "procedure": PROCEDURE.name,
        "reward": "VADER compound sentiment of the completion",
        "exponent": {
            "t": transforms["exponential"].t,
            "chosen_at_kl": preset.t_kl,
            "continuous_win_rate": w_star,
        },  # fmt: skip
        "prompts": {"train": len(train), "held_out": len(held_out), "file": PROMPTS.name},
        "base_rewards_zero": float(np.mean(base.rewards == 0.0)),
        "analytic": curves,
        "runs": runs,
        "seconds": {
            "load": loaded - start,
            "reference_and_base_samples": sampled - loaded,
            "training_and_evaluation": trained - sampled,
            "total": time.perf_counter() - start,
        },
    }


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"identity": "tab:blue", "exponential": "tab:red"}
    t = data["exponent"]["t"]
    labels = {"identity": "identity (calibrated RLHF)", "exponential": f"exponential, t = {t:g}"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    panels = (("win_rate", "Best-of-4 win rate vs base Best-of-4"),
              ("standard_win_rate", "standard win rate vs base"))  # fmt: skip
    for ax, (field, ylabel) in zip(axes, panels, strict=True):
        if field == "win_rate":
            opt = data["analytic"]["optimal"]
            ax.plot(opt["kl"], opt["win_rate"], "k--", lw=1.2, label="optimal (Theorem 1)")
        for key, color in colors.items():
            c = data["analytic"][key]
            ax.plot(c["kl"], c[field], color=color, lw=1.6, label=f"theory: {labels[key]}")
            runs = [r for r in data["runs"] if r["key"] == key]
            for i, r in enumerate(runs):
                ev = r["evaluation"]
                est = ev["win_rates"][data["procedure"]] if field == "win_rate" else ev[field]
                ax.errorbar(
                    ev["kl"]["value"], est["value"], xerr=ev["kl"]["se"], yerr=est["se"],
                    fmt="o", color=color, ms=6, capsize=3,
                    label=f"measured: {key}" if i == 0 else None,
                )  # fmt: skip
                p = r["predicted"]
                ax.plot(p["kl"], p[field], "s", mfc="none", color=color, ms=8,
                        label=f"optimum at the run's beta: {key}" if i == 0 else None)  # fmt: skip
        ax.set_xlabel("KL(policy || base) [nats]")
        ax.set_ylabel(ylabel)
        ax.set_xlim(left=-0.05)
        ax.grid(alpha=0.3)
    for ax in axes:  # the right panel draws the same series: the same legend
        ax.legend(fontsize=7, loc="lower right")
    pre = data["preset"]
    fig.suptitle(
        f"CTRL on SmolLM2-135M ({data['device']}): {pre['steps']} steps x "
        f"{pre['prompts_per_step']}x{pre['group_size']} samples, {pre['max_new_tokens']} new "
        f"tokens, K = {pre['references']}; held-out {data['prompts']['held_out']} prompts",
        fontsize=9,
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="gpu",
        help="gpu: the study (one GPU); smoke: the whole pipeline in a minute on CPU",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "paper_figures", help="output folder")
    parser.add_argument("--work", type=Path, default=None, help="run directories")
    parser.add_argument("--device", default=None, help="override the preset's device")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument(
        "--kls", type=_number("positive"), nargs="+", default=None,
        help="override the preset's KL targets (distinct, > 0)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.device is not None:
        preset = dataclasses.replace(preset, device=args.device)
    if args.steps is not None:
        preset = dataclasses.replace(preset, steps=args.steps)
    if args.kls is not None:
        if len(set(args.kls)) < len(args.kls):
            parser.error(f"argument --kls: the targets must be distinct, got {args.kls}")
        preset = dataclasses.replace(preset, kls=tuple(args.kls))
    # an overridden preset does not write over the preset's own figure or runs
    label = args.preset + ("_custom" if preset != PRESETS[args.preset] else "")
    work = args.work or ROOT / ".bridge_runs" / label
    data = compute(preset, work, progress=not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"fig_bridge_{label}"
    write_json(args.out / f"{name}.json", data)
    png = args.out / f"{name}.png"
    plot(data, png)
    print(f"wrote {png} and {name}.json ({data['seconds']['total']:.0f} s)")
    return png


if __name__ == "__main__":
    main()
