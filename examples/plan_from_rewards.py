"""Plan a CTRL run from my own rewards: which transform, which beta, what it buys.

The input is a file with the rewards your reward model gives to samples of your base policy
(``prompt,reward``, one row per sample; ``examples/data/rewards.csv`` is a small one, made
by ``examples/data/make_rewards.py``). ``ia.plan`` takes each prompt's samples as its reward
law (ties exact), one beta for all prompts, and compares, at a budget on the prompt-averaged
KL, the best exponential transform with the identity and with the optimum of Theorem 1 --
then what changes when the trainer calibrates from only K reference samples per prompt.

    python examples/plan_from_rewards.py
    python examples/plan_from_rewards.py --rewards my_rewards.csv --n 16 --kl 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import infalign_theory as ia

DATA = Path(__file__).resolve().parent / "data" / "rewards.csv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rewards", default=str(DATA), help="CSV or JSONL reward file")
    parser.add_argument("--n", type=int, default=8, help="N of Best-of-N (default 8)")
    parser.add_argument("--kl", type=float, default=1.0, help="KL budget in nats (default 1)")
    args = parser.parse_args(argv)
    procedure = ia.best_of(args.n)
    for k in (None, 16):
        plan = ia.plan(args.rewards, procedure, kl=args.kl, calibration_samples=k)
        how = "exact calibration" if k is None else f"calibration from K = {k} samples"
        print(f"{procedure.name}, {plan.prompts} prompts, KL {plan.kl_budget:g}, {how}:")
        print(
            f"  train {plan.transform.name} at beta {plan.beta:.4g}: win rate {plan.win_rate:.4f}"
        )
        print(f"  identity at the same KL:            win rate {plan.identity.win_rate:.4f}")
        print(f"  optimum of Theorem 1:               win rate {plan.optimum.win_rate:.4f}")
        for note in plan.notes:
            print(f"  note: {note}")


if __name__ == "__main__":
    main()
