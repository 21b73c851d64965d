"""``infalign verify``: every theorem checked on generated instances."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import _count, _fail

VERIFY_DESCRIPTION = (
    "Each check computes both sides of a result (a lemma or theorem of InfAlign, or a known "
    "bound) by independent routes on generated instances and reports the largest residual "
    "against its tolerance; the exit status is 1 if any check fails."
)


def _add_verify_parser(sub: Any) -> None:
    ve = sub.add_parser("verify", help="check every theorem on generated instances")
    ve.add_argument(
        "--examples",
        type=_count(1, 1_000_000),
        default=20,
        help="instances per check (default 20)",
    )
    ve.add_argument(
        "--seed",
        type=_count(0, 2**63 - 1),
        default=0,
        help="seed of the instance generator (default 0)",
    )
    ve.add_argument(
        "--check",
        action="append",
        default=None,
        metavar="NAME",
        help="run only this check (repeatable); the table lists the names",
    )
    ve.add_argument("--json", action="store_true", help="print JSON")
    ve.set_defaults(command_parser=ve, run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from ..verify import run_checks  # the battery imports scipy's optimisers and integrators

    try:
        summaries = run_checks(args.examples, args.seed, args.check)
    except ValueError as exc:
        _fail(args.command_parser, exc, {"unknown": "--check"})
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=1))
    else:
        header = ("check", "source", "instances", "max residual", "tolerance", "pass")
        rows = [
            (
                s.name,
                s.source,
                str(s.instances),
                f"{s.max_residual:.2e}",
                f"{s.tolerance:.1e}",
                "yes" if s.passed else "NO",
            )
            for s in summaries
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        failed = sum(not s.passed for s in summaries)
        print(
            f"{len(summaries) - failed} of {len(summaries)} checks passed "
            f"(seed {args.seed}, {args.examples} examples each)"
        )
    return 0 if all(s.passed for s in summaries) else 1
