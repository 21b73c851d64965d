"""The ``infalign`` command: a thin argparse layer over the library, no mathematics here.

    infalign evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json
    infalign curve --procedure won --n 4 --transform exp --t -10 --kl-max 3 --points 31

Invalid arguments exit with status 2 and one line on stderr naming the argument.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .curves import beta_for_kl, tradeoff_curve
from .laws import DiscreteLaw
from .metrics import AGAINST, evaluate
from .policy import tilt
from .procedures import MAX_N, OrderStatistic
from .transforms import Exponential, Identity, Log, Quantile, Transform

PROCEDURES = ("sampling", "bon", "won", "order")
TRANSFORMS = ("identity", "log", "exp", "raw")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if kind == "positive" and not x > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        if kind == "nonnegative" and x < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return x

    return parse


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            k = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= k <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {k}")
        return k

    return parse


def _numbers(kind: str) -> Callable[[str], list[float]]:
    one = _number(kind)

    def parse(text: str) -> list[float]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError("must be a comma-separated list of numbers")
        return [one(p.strip()) for p in parts]

    return parse


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--procedure",
        choices=PROCEDURES,
        default="bon",
        help="inference-time procedure T: sampling, best-of-n (bon), worst-of-n "
        "(won) or the k-th smallest of n (order); default bon",
    )
    p.add_argument(
        "--n",
        type=_count(1, MAX_N),
        default=4,
        help="number of samples N of the procedure (default 4)",
    )
    p.add_argument(
        "--k", type=_count(1, MAX_N), default=None, help="rank k (1 = worst) for --procedure order"
    )
    p.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="identity",
        help="reward transform of the calibrated reward: identity, log, exp (needs "
        "--t) or raw (the reward values themselves; needs --law discrete)",
    )
    p.add_argument(
        "--t",
        type=_number("real"),
        default=None,
        help="exponent t of the exp transform (any finite real; t > 0 for "
        "Best-of-N, t < 0 for Worst-of-N)",
    )
    p.add_argument(
        "--law",
        choices=("continuous", "discrete"),
        default="continuous",
        help="base reward law: continuous calibrated space (default, the same for "
        "every continuous law) or discrete with --values and --probs",
    )
    p.add_argument(
        "--values",
        type=_numbers("real"),
        default=None,
        help="reward values of a discrete law, comma-separated",
    )
    p.add_argument(
        "--probs",
        type=_numbers("nonnegative"),
        default=None,
        help="base probabilities of the values, comma-separated, summing to 1",
    )
    p.add_argument(
        "--against",
        choices=AGAINST,
        default="procedure",
        help="compare T(policy) with T(base) (procedure, default) or with a single "
        "base sample (sample)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    """The ``infalign`` argument parser."""
    parser = _Parser(prog="infalign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"infalign_theory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ev = sub.add_parser("evaluate", help="KL and win rates of one tilted policy")
    _add_common(ev)
    ev.set_defaults(command_parser=ev)
    level = ev.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument(
        "--kl", type=_number("positive"), help="target KL in nats (> 0); beta is solved for"
    )

    cu = sub.add_parser("curve", help="a KL / win-rate trade-off curve")
    _add_common(cu)
    cu.set_defaults(command_parser=cu)
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
        default=31,
        help="number of grid points with --kl-max (default 31)",
    )
    return parser


def _procedure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OrderStatistic:
    if args.procedure == "order":
        if args.k is None:
            parser.error("argument --k: required with --procedure order")
        if args.k > args.n:
            parser.error(f"argument --k: must be in [1, --n = {args.n}], got {args.k}")
        return OrderStatistic(args.k, args.n)
    if args.k is not None:
        parser.error("argument --k: only valid with --procedure order")
    if args.procedure == "sampling":
        return OrderStatistic(1, 1)
    return OrderStatistic(args.n if args.procedure == "bon" else 1, args.n)


def _law(args: argparse.Namespace, parser: argparse.ArgumentParser) -> DiscreteLaw | None:
    if args.law == "continuous":
        for flag in ("values", "probs"):
            if getattr(args, flag) is not None:
                parser.error(f"argument --{flag}: only valid with --law discrete")
        return None
    for flag in ("values", "probs"):
        if getattr(args, flag) is None:
            parser.error(f"argument --{flag}: required with --law discrete")
    try:
        return DiscreteLaw(args.values, args.probs)
    except ValueError as exc:
        parser.error(f"argument --values/--probs: {exc}")


def _transform(
    args: argparse.Namespace, law: DiscreteLaw | None, parser: argparse.ArgumentParser
) -> Transform:
    if args.transform == "exp":
        if args.t is None:
            parser.error("argument --t: required with --transform exp")
        return Exponential(args.t)
    if args.t is not None:
        parser.error("argument --t: only valid with --transform exp")
    if args.transform == "raw":
        if law is None:
            parser.error("argument --transform: raw needs --law discrete with --values/--probs")
        return Quantile(law)
    return Identity() if args.transform == "identity" else Log()


def _fail(parser: argparse.ArgumentParser, exc: ValueError) -> NoReturn:
    message = " ".join(str(exc).split())
    name = message.split(" ", 1)[0]
    flag = f"argument --{name.replace('_', '-')}: " if name in {"kl", "beta", "t", "n"} else ""
    parser.error(f"{flag}{message}")


def _print_rows(rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``infalign`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = args.command_parser
    procedure = _procedure(args, sub)
    law = _law(args, sub)
    transform = _transform(args, law, sub)
    context = {
        "procedure": procedure.name,
        "n": procedure.n,
        "k": procedure.k,
        "transform": transform.name,
        "t": args.t,
        "law": args.law,
        "against": args.against,
    }
    try:
        if args.command == "evaluate":
            beta = args.beta if args.beta is not None else beta_for_kl(transform, args.kl, law=law)
            result = evaluate(tilt(transform, beta, law), procedure, against=args.against)
            out = {**result.to_dict(), **context}
            if args.json:
                print(json.dumps(out))
            else:
                _print_rows([out])
            return 0
        if args.kl_max is not None:
            kls = np.linspace(0.0, args.kl_max, args.points)
            curve = tradeoff_curve(transform, procedure, law=law, kls=kls, against=args.against)
        elif args.kls is not None:
            curve = tradeoff_curve(
                transform, procedure, law=law, kls=args.kls, against=args.against
            )
        else:
            curve = tradeoff_curve(
                transform, procedure, law=law, betas=args.betas, against=args.against
            )
    except ValueError as exc:
        _fail(sub, exc)
    data = curve.to_dict()
    if args.json:
        print(json.dumps({**context, **data}))
    else:
        keys = ("beta", "kl", "win_rate", "standard_win_rate")
        _print_rows(
            [
                dict(zip(keys, vals, strict=True))
                for vals in zip(*(data[k] for k in keys), strict=True)
            ]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
