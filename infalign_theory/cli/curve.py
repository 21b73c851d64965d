"""``infalign curve``: a KL / win-rate trade-off curve."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from ..curves import tradeoff_curve
from ._common import (
    _add_law_options,
    _add_procedure_options,
    _add_subcommand,
    _add_transform_options,
    _count,
    _fail,
    _number,
    _numbers,
    _policy_setup,
    _print_rows,
)


def _add_curve_parser(sub: Any) -> None:
    cu = _add_subcommand(
        sub,
        "curve",
        "a KL / win-rate trade-off curve (CSV, or --json)",
        "The same numbers as evaluate along a grid of KLs or betas: one CSV row per point "
        "(beta, kl, win_rate, standard_win_rate), or one JSON object of lists with --json. "
        "Compare transforms at equal KL, never at equal beta.",
        "infalign curve --procedure won --n 4 --transform exp --t -10 --kl-max 3 --points 31",
    )
    _add_procedure_options(cu)
    _add_transform_options(cu)
    _add_law_options(cu)
    grid = cu.add_mutually_exclusive_group(required=True)
    grid.add_argument(
        "--kls",
        type=_numbers("nonnegative"),
        help="KL grid in nats, comma-separated (0 is the base policy)",
    )
    grid.add_argument("--betas", type=_numbers("positive"), help="beta grid, comma-separated")
    grid.add_argument(
        "--kl-max",
        type=_number("positive"),
        help="largest KL of an evenly spaced grid from 0 (see --points)",
    )
    cu.add_argument(
        "--points",
        type=_count(2, 100_000),
        default=None,
        help="number of grid points with --kl-max (default 31)",
    )
    cu.set_defaults(command_parser=cu, run=_run_curve)


def _run_curve(args: argparse.Namespace) -> int:
    sub, procedure, law, transform, context = _policy_setup(args)
    if args.points is not None and args.kl_max is None:
        sub.error("argument --points: only used with --kl-max (--kls and --betas list the grid)")
    args.points = 31 if args.points is None else args.points
    grid_flag = "--kls" if args.kls is not None else "--kl-max"
    try:
        kls = (
            args.kls
            if args.kls is not None
            else (None if args.kl_max is None else np.linspace(0.0, args.kl_max, args.points))
        )
        if transform is None:
            if kls is None:
                sub.error("argument --betas: the optimal frontier takes --kls or --kl-max")
            from ..optimal import pareto_frontier  # lazy: the solver imports scipy.special

            curve = pareto_frontier(procedure, kls, law=law, against=args.against)
        elif kls is None:
            curve = tradeoff_curve(
                transform, procedure, law=law, betas=args.betas, against=args.against
            )
        else:
            curve = tradeoff_curve(transform, procedure, law=law, kls=kls, against=args.against)
    except ValueError as exc:
        _fail(
            sub,
            exc,
            {
                "kl": grid_flag,
                "kl_grid": grid_flag,
                "beta": "--betas",
                "the": "--betas",
                "n": "--n",
            },
        )
    data = curve.to_dict()
    if args.json:
        print(json.dumps({**context, **data}))
    else:
        keys = ("beta", "kl", "win_rate", "standard_win_rate")
        columns = [data[key] for key in keys]
        _print_rows([dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)])
    return 0
