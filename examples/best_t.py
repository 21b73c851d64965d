"""Find the best exponent t of the exponential transform, and what it gains.

Phi_t(u) = (e^{tu} - 1)/(e^t - 1) of the calibrated reward u; t > 0 for Best-of-N, t < 0
for Worst-of-N. For a procedure and a KL budget, ``best_exponent`` scans t and refines it;
this prints the best t, its beta (and the paper's beta' for the form e^{tu}), its win rate
against the identity's at the same KL and the optimum's (Theorem 1): the gain, and how much
is left on the table.

    python examples/best_t.py --procedure bon --n 4 --kl 1
    python examples/best_t.py --procedure won --n 8 --kl 0.5
"""

from __future__ import annotations

import argparse

import infalign_theory as ia
from infalign_theory.optimal import solve_optimal


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procedure", choices=("bon", "won"), default="bon")
    parser.add_argument("--n", type=int, default=4, help="N (default 4)")
    parser.add_argument("--kl", type=float, default=1.0, help="KL budget in nats (default 1)")
    args = parser.parse_args(argv)
    procedure = ia.best_of(args.n) if args.procedure == "bon" else ia.worst_of(args.n)
    t, best = ia.best_exponent(procedure, args.kl)
    transform = ia.Exponential(t)
    beta = ia.beta_for_kl(transform, args.kl)
    identity = ia.win_rate(
        ia.tilt(ia.Identity(), ia.beta_for_kl(ia.Identity(), args.kl)), procedure
    )
    optimum = solve_optimal(procedure, kl=args.kl).win_rate
    print(f"{procedure.name} at KL {args.kl:g} (continuous case)")
    paper = transform.paper_beta(beta)
    print(f"  best t            {t:.4g}  (beta {beta:.4g}; the paper's beta' {paper:.4g})")
    print(f"  its win rate      {best:.4f}")
    print(f"  identity          {identity:.4f}  -> gain {100 * (best - identity):+.2f} points")
    print(f"  optimum (Thm 1)   {optimum:.4f}  -> {100 * (optimum - best):.2f} points left")


if __name__ == "__main__":
    main()
