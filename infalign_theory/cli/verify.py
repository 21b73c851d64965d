"""``infalign verify``: every theorem checked on generated instances."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import _count, _fail

VERIFY_DESCRIPTION = (
    "Each check computes both sides of a result (a lemma or theorem of InfAlign, or a known "
    "bound) by independent routes on generated instances and compares the residual with its "
    "tolerance. Each instance passes, fails (the residual exceeds the tolerance), or is "
    "inconclusive (the check's own numerics could not reach the accuracy the tolerance needs); "
    "every failing or inconclusive instance is printed with the one command that reruns it "
    "alone. Exit status: 0 when no instance failed (inconclusive ones are listed, with a "
    "warning on stderr), 1 when any failed, 2 for invalid arguments. Progress goes to stderr, "
    "so --json output stays clean."
)


def _add_verify_parser(sub: Any) -> None:
    ve = sub.add_parser("verify", help="check every theorem on generated instances")
    ve.add_argument(
        "--examples",
        type=_count(1, 1_000_000),
        default=None,
        help="instances per check (default 20: the whole battery in seconds)",
    )
    ve.add_argument(
        "--seed",
        type=_count(0, 2**63 - 1),
        default=0,
        help="seed of the instance generator (default 0); instance I of check NAME depends "
        "only on (seed, NAME, I)",
    )
    ve.add_argument(
        "--check",
        action="append",
        default=None,
        metavar="NAME",
        help="run only this check (repeatable); the table lists the names",
    )
    ve.add_argument(
        "--instance",
        type=_count(0, 2**63 - 1),
        default=None,
        metavar="I",
        help="run only instance I (counted from 0) of each selected check, the same instance "
        "the battery draws with this seed (not with --examples)",
    )
    ve.add_argument("--json", action="store_true", help="print JSON")
    ve.set_defaults(command_parser=ve, run=_run_verify)


class _Progress:
    """One line on stderr per finished check; a live counter while one runs on a terminal."""

    def __init__(self, total_checks: int) -> None:
        from time import monotonic

        self.clock = monotonic
        self.total, self.index, self.started = total_checks, 0, monotonic()
        self.live = sys.stderr.isatty()

    def __call__(self, name: str, done: int, instances: int) -> None:
        if self.live and (done == instances or done % 10 == 0):
            print(f"\r{name} {done}/{instances}", end="", file=sys.stderr, flush=True)
        if done == instances:
            self.index += 1
            seconds, self.started = self.clock() - self.started, self.clock()
            line = f"[{self.index}/{self.total}] {name}: {instances} instances, {seconds:.1f} s"
            clear = "\r\033[K" if self.live else ""  # erase the live counter
            print(clear + line, file=sys.stderr, flush=True)


def _run_verify(args: argparse.Namespace) -> int:
    from ..verify import CHECKS, run_checks  # the battery imports scipy's optimisers

    if args.instance is not None and args.examples is not None:
        args.command_parser.error("argument --examples: not used with --instance (one instance)")
    args.examples = 20 if args.examples is None else args.examples
    names = args.check or list(CHECKS)
    try:
        summaries = run_checks(
            args.examples, args.seed, args.check, args.instance, _Progress(len(names))
        )
    except ValueError as exc:
        _fail(args.command_parser, exc, {"unknown": "--check"})
    failed = sum(s.status == "failed" for s in summaries)
    inconclusive = sum(len(s.inconclusive) for s in summaries)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=1))
    else:
        header = ("check", "source", "instances", "max residual", "tolerance", "status")
        rows = [
            (
                s.name,
                s.source,
                str(s.instances),
                "-" if s.max_residual is None else f"{s.max_residual:.2e}",
                f"{s.tolerance:.1e}",
                s.status if s.status == "passed" else s.status.upper(),
            )
            for s in summaries
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        for s in summaries:
            for report in (*s.failures, *s.inconclusive):
                print(f"{report.status} {s.name} instance {report.index}: {report.reason}")
                print(f"  rerun: {report.command}")
        which = (
            f"instance {args.instance}"
            if args.instance is not None
            else f"{args.examples} examples each"
        )
        print(
            f"{sum(s.passed for s in summaries)} of {len(summaries)} checks passed, "
            f"{failed} failed, {inconclusive} inconclusive instances (seed {args.seed}, {which})"
        )
    if inconclusive:
        print(
            f"warning: {inconclusive} instances were inconclusive (a check could not reach its "
            "own accuracy there); they are not failures and do not change the exit status",
            file=sys.stderr,
        )
    return 1 if failed else 0
