"""``infalign solve``: the optimal transform of InfAlign's Theorem 1."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from ._common import (
    _FLAGS,
    _add_law_options,
    _add_level_options,
    _add_procedure_options,
    _add_subcommand,
    _fail,
    _policy_setup,
)


def _add_solve_parser(sub: Any) -> None:
    so = _add_subcommand(
        sub,
        "solve",
        "the optimal transform of InfAlign's Theorem 1, with diagnostics",
        "The policy that maximises W_T - beta KL (or W_T at a KL budget) over all policies, "
        "and its transform R, the first variation of W_T at the optimum: beta, KL, win rates, "
        "the fixed-point residual, iterations, convergence, every stationary point found, "
        "and R on u = 0, 0.1, ..., 1.",
        "infalign solve --procedure won --n 4 --kl 1",
    )
    _add_procedure_options(so)
    _add_law_options(so)
    _add_level_options(so, "KL budget in nats (> 0)")
    so.set_defaults(command_parser=so, run=_run_solve)


def _run_solve(args: argparse.Namespace) -> int:
    from ..optimal import solve_optimal  # lazy: the solver imports scipy.special

    sub, procedure, law, transform, context = _policy_setup(args)
    try:
        sol = solve_optimal(procedure, beta=args.beta, kl=args.kl, law=law, against=args.against)
    except ValueError as exc:
        _fail(sub, exc, _FLAGS)
    out = {**sol.to_dict(), **{k: v for k, v in context.items() if k not in ("transform", "t")}}
    if args.json:
        print(json.dumps(out))
        return 0
    for key in (
        "procedure",
        "against",
        "law",
        "beta",
        "kl",
        "win_rate",
        "standard_win_rate",
        "objective",
        "residual",
        "iterations",
        "converged",
        "saturated",
    ):
        print(f"{key:18s} {out[key]}")
    print(f"{'stationary points':18s} {len(sol.stationary_points)}")
    for point in sol.stationary_points:
        print("  " + ", ".join(f"{k} = {v:.12g}" for k, v in point.items()))
    grid = np.linspace(0.0, 1.0, 11)
    values = np.interp(grid, sol.grid, sol.values)
    print("transform (normalised R on u = 0, 0.1, ..., 1):")
    print("  " + " ".join(f"{v:.4f}" for v in values))
    return 0
