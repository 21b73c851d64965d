"""Compare reward transforms at equal KL for a chosen Best-of-N (or Worst-of-N).

Transforms are compared at equal KL, never at equal beta: a transform and its beta can be
rescaled together without changing the policy. For each KL budget this prints the
inference-time win rate (T(policy) against T(base), ties 1/2) of calibrated RLHF (identity),
Best-of-N distillation (log), the exponential transform at several t, and the optimum of
InfAlign's Theorem 1 -- the continuous, model-agnostic case.

    python examples/compare_transforms.py --n 8
    python examples/compare_transforms.py --n 4 --worst --kls 0.25,0.5,1
"""

from __future__ import annotations

import argparse

import infalign_theory as ia
from infalign_theory.optimal import pareto_frontier


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="N of Best-of-N (default 8)")
    parser.add_argument("--worst", action="store_true", help="Worst-of-N instead")
    parser.add_argument("--kls", default="0.25,0.5,1,2", help="KL budgets in nats")
    args = parser.parse_args(argv)
    kls = [float(x) for x in args.kls.split(",")]
    procedure = ia.worst_of(args.n) if args.worst else ia.best_of(args.n)
    sign = -1.0 if args.worst else 1.0
    transforms = [ia.Identity(), ia.Log(), *(ia.Exponential(sign * t) for t in (5, 10, 20, 40))]
    rows = {tr.name: ia.tradeoff_curve(tr, procedure, kls=kls).win_rate for tr in transforms}
    rows["optimal (Theorem 1)"] = pareto_frontier(procedure, kls).win_rate
    print(f"{procedure.name} win rate at equal KL (continuous case)")
    print(f"{'transform':22s}" + "".join(f"{f'KL {kl:g}':>10s}" for kl in kls))
    for name, wins in rows.items():
        print(f"{name:22s}" + "".join(f"{w:10.4f}" for w in wins))


if __name__ == "__main__":
    main()
