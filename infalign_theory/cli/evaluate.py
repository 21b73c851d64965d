"""``infalign evaluate``: KL and win rates of one KL-regularised policy."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..curves import beta_for_kl
from ..metrics import evaluate
from ..policy import tilt
from ._common import (
    _FLAGS,
    _add_law_options,
    _add_level_options,
    _add_procedure_options,
    _add_subcommand,
    _add_transform_options,
    _fail,
    _policy_setup,
    _print_rows,
)


def _add_evaluate_parser(sub: Any) -> None:
    ev = _add_subcommand(
        sub,
        "evaluate",
        "KL and win rates of one KL-regularised policy",
        "The policy pi ∝ pi_ref exp(Phi(C)/beta) for a transform Phi of the calibrated reward "
        "C, at a given beta or at the beta that reaches a KL: its KL to the base, its standard "
        "win rate and its inference-time win rate T(pi) against T(pi_ref), ties counted 1/2. "
        "Exact on a discrete law, to 1e-13 in the continuous case.",
        "infalign evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json",
    )
    _add_procedure_options(ev)
    _add_transform_options(ev)
    _add_law_options(ev)
    _add_level_options(ev, "target KL in nats (> 0); beta is solved for")
    ev.set_defaults(command_parser=ev, run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    sub, procedure, law, transform, context = _policy_setup(args)
    out: dict[str, Any]
    try:
        if transform is None:
            from ..optimal import solve_optimal  # lazy: the solver imports scipy.special

            sol = solve_optimal(
                procedure, beta=args.beta, kl=args.kl, law=law, against=args.against
            )
            out = {
                "beta": sol.beta,
                "kl": sol.kl,
                "win_rate": sol.win_rate,
                "standard_win_rate": sol.standard_win_rate,
                "saturated": sol.saturated,
            }
            if sol.saturated:
                print(
                    f"infalign: note: W_T is within 1e-10 of 1 at KL {sol.kl:.6g} < --kl "
                    f"{args.kl:g}; more KL cannot raise it measurably (saturated)",
                    file=sys.stderr,
                )
        else:
            beta = args.beta if args.beta is not None else beta_for_kl(transform, args.kl, law=law)
            out = evaluate(tilt(transform, beta, law), procedure, against=args.against).to_dict()
    except ValueError as exc:
        _fail(sub, exc, _FLAGS)
    out = {**out, **context}
    if args.json:
        print(json.dumps(out))
    else:
        _print_rows([out])
    return 0
