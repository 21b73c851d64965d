"""How many calibration samples are enough? The cost of estimating C from K references.

InfAlign-CTRL calibrates each reward against K base samples of its prompt; KL-RL then
optimises Phi(C^), and E[Phi(C^) | u] is the exact transform ``SampleCalibrated(Phi, K)``.
This prints the win rate at a KL budget for K = 1, 2, 4, ..., 256 against exact calibration,
and the smallest K from which on every K is within a tolerance -- for the exponential
transform exp(t) (examples/best_t.py finds the best t) and for the identity, which no K
changes at equal KL.

    python examples/calibration_samples.py --procedure bon --n 4 --t 17.3 --kl 1
    python examples/calibration_samples.py --procedure won --n 4 --t -10 --kl 0.5
"""

from __future__ import annotations

import argparse

import infalign_theory as ia


def win_at(transform: ia.Transform, procedure: ia.OrderStatistic, kl: float) -> float:
    return float(ia.tradeoff_curve(transform, procedure, kls=[kl]).win_rate[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procedure", choices=("bon", "won"), default="bon")
    parser.add_argument("--n", type=int, default=4, help="N (default 4)")
    parser.add_argument("--kl", type=float, default=1.0, help="KL budget in nats (default 1)")
    parser.add_argument("--t", type=float, default=None, help="default 10 (bon), -10 (won)")
    parser.add_argument("--tolerance", type=float, default=0.005, help="default half a point")
    args = parser.parse_args(argv)
    procedure = ia.best_of(args.n) if args.procedure == "bon" else ia.worst_of(args.n)
    t = args.t if args.t is not None else (10.0 if args.procedure == "bon" else -10.0)
    ks = [2**i for i in range(9)]
    print(f"{procedure.name} win rate at KL {args.kl:g}, calibration from K samples (mid-rank)")
    print(f"{'K':>6s}" + "".join(f"{k:>8d}" for k in ks) + f"{'exact':>8s}   enough")
    for base in (ia.Exponential(t), ia.Identity()):
        exact = win_at(base, procedure, args.kl)
        wins = [win_at(ia.SampleCalibrated(base, k), procedure, args.kl) for k in ks]
        close = [abs(w - exact) <= args.tolerance for w in wins]
        # the smallest K from which on every K listed is within the tolerance
        enough = next((k for i, k in enumerate(ks) if all(close[i:])), None)
        print(base.name)
        print(f"{'':6s}" + "".join(f"{w:8.4f}" for w in wins) + f"{exact:8.4f}   K = {enough}")


if __name__ == "__main__":
    main()
