"""What every subcommand shares: the parser class, number parsing, common options, checks."""

from __future__ import annotations

import argparse
import csv
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..calibration import ESTIMATORS
from ..laws import DiscreteLaw
from ..metrics import AGAINST
from ..procedures import (
    MAX_N,
    Procedure,
    best_of,
    order_statistic,
    sampling,
    soft_best_of,
    threshold_sampling,
    worst_of,
)
from ..transforms import Exponential, Identity, Log, Quantile, SampleCalibrated, Transform

TRANSFORMS = ("identity", "log", "exp", "raw", "optimal")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


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
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of numbers, got {text!r}"
            )
        return [one(p) for p in parts]

    return parse


#: The procedures of the command line: the options each one takes and how it is built from
#: them. A new procedure is one line here; a new option of procedures is one line in
#: PROCEDURE_OPTIONS.
PROCEDURES: dict[str, tuple[tuple[str, ...], Callable[[Any], Procedure]]] = {
    "sampling": ((), lambda a: sampling()),
    "bon": (("n",), lambda a: best_of(a.n)),
    "won": (("n",), lambda a: worst_of(a.n)),
    "order": (("k", "n"), lambda a: order_statistic(a.k, a.n)),
    "soft-bon": (("n", "temperature"), lambda a: soft_best_of(a.n, a.temperature)),
    "threshold": (("n", "tau"), lambda a: threshold_sampling(a.n, a.tau)),
}
#: The order statistics: the procedures of subcommands that need their CDF map (plan, bridge).
ORDER_PROCEDURES = ("sampling", "bon", "won", "order")


#: The options of procedures: their argparse settings and the value taken when a procedure
#: that uses the option is given without it (None: the option is then required).
PROCEDURE_OPTIONS: dict[str, tuple[dict[str, Any], Any]] = {
    "n": ({"type": _count(1, MAX_N), "help": "number of samples N (default 4)"}, 4),
    "k": ({"type": _count(1, MAX_N), "help": "rank k of the sample returned, 1 = worst"}, None),
    "temperature": (
        {"type": _number("positive"), "help": "temperature lambda > 0 of soft Best-of-N"},
        None,
    ),
    "tau": (
        {
            "type": _number("nonnegative"),
            "help": "threshold tau in [0, 1] on the calibrated reward",
        },
        None,
    ),
}


_PROCEDURE_HELP = {
    "sampling": "one sample",
    "bon": "best of N",
    "won": "worst of N, a model of Best-of-N jailbreaking",
    "order": "the k-th smallest of N",
    "soft-bon": "N samples, one picked with probability proportional to exp(C/temperature)",
    "threshold": "sample until C >= tau, at most N samples, else the best of them",
}


def _add_procedure_options(
    p: argparse.ArgumentParser,
    names: Sequence[str] = tuple(PROCEDURES),
    types: dict[str, Callable[[str], Any]] | None = None,
) -> None:
    """--procedure and the options of procedures (each refused where it does not apply)."""
    listed = ", ".join(f"{name} ({_PROCEDURE_HELP[name]})" for name in names)
    p.add_argument(
        "--procedure",
        choices=names,
        default="bon",
        help=f"inference-time procedure T applied to the policy and to the base: {listed}; "
        "default bon",
    )
    for option, (settings, default) in PROCEDURE_OPTIONS.items():
        users = [name for name in names if option in PROCEDURES[name][0]]
        if not users:
            continue
        kwargs = {**settings, **({"type": types[option]} if types and option in types else {})}
        kwargs["help"] = f"{kwargs['help']}; with --procedure {' or '.join(users)}" + (
            ", required" if default is None else ""
        )
        p.add_argument(f"--{option}", default=None, **kwargs)


def _add_transform_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="identity",
        help="reward transform Phi of the calibrated reward: identity (default), log, exp "
        "(needs --t), raw (the reward values themselves; needs --law discrete) or optimal "
        "(the InfAlign optimum for --procedure, solved at --beta or --kl)",
    )
    p.add_argument(
        "--t",
        type=_number("real"),
        default=None,
        help="exponent t of --transform exp, Phi_t(u) = (e^(tu) - 1)/(e^t - 1): any finite "
        "real; t > 0 for Best-of-N, t < 0 for Worst-of-N",
    )
    _add_calibration_options(p, ", never 0: needed with --transform log")


def _add_calibration_options(p: argparse.ArgumentParser, smoothed: str = ", never 0") -> None:
    p.add_argument(
        "--calibration-samples",
        type=_count(1, 100_000),
        default=None,
        metavar="K",
        help="the trainer calibrates each reward from K base samples of its prompt instead "
        "of exactly: the transform becomes E[Phi(C^) | u], computed exactly",
    )
    p.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=None,
        help="estimate C^ from the K samples, with --calibration-samples: midrank (default; "
        f"unbiased) or smoothed ((rank + 1/2)/(K + 1){smoothed})",
    )


def _add_law_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--law",
        choices=("continuous", "discrete"),
        default="continuous",
        help="base reward law: continuous (default: calibrated space, the same for every "
        "continuous law) or discrete with --values and --probs (ties allowed)",
    )
    p.add_argument(
        "--values",
        type=_numbers("real"),
        default=None,
        help="reward values of --law discrete, comma-separated (ties allowed)",
    )
    p.add_argument(
        "--probs",
        type=_numbers("nonnegative"),
        default=None,
        help="base probabilities of --values, comma-separated, summing to 1",
    )
    p.add_argument(
        "--against",
        choices=AGAINST,
        default="procedure",
        help="compare T(policy) with T(base) (procedure, default) or with one base sample (sample)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_level_options(p: argparse.ArgumentParser, kl_help: str) -> None:
    level = p.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument("--kl", type=_number("positive"), help=kl_help)


def _add_subcommand(sub: Any, name: str, summary: str, description: str, example: str) -> Any:
    """A subcommand parser whose help has a description and an example."""
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, 88),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _procedure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Procedure:
    """The procedure asked for; an option of procedures that it does not take is refused."""
    takes, build = PROCEDURES[args.procedure]
    for option, (_, default) in PROCEDURE_OPTIONS.items():
        if not hasattr(args, option):
            continue
        if getattr(args, option) is not None and option not in takes:
            parser.error(f"argument --{option}: not used by --procedure {args.procedure}")
        if getattr(args, option) is None and option in takes:
            if default is None:
                parser.error(f"argument --{option}: required with --procedure {args.procedure}")
            setattr(args, option, default)
    try:
        return build(args)
    except ValueError as exc:
        _fail(parser, exc, {option: f"--{option}" for option in PROCEDURE_OPTIONS})


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
) -> Transform | None:
    """The transform asked for; None for ``optimal`` (solved for, not given)."""
    k = getattr(args, "calibration_samples", None)
    if k is None and getattr(args, "estimator", None) is not None:
        parser.error("argument --estimator: only valid with --calibration-samples")
    if k is not None and args.transform == "optimal":
        parser.error("argument --calibration-samples: not available with --transform optimal")
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
    if args.transform == "optimal":
        return None
    return Identity() if args.transform == "identity" else Log()


def _sample_calibrated(
    args: argparse.Namespace, tr: Transform, parser: argparse.ArgumentParser
) -> Transform:
    """``tr`` seen through calibration from ``--calibration-samples`` reference samples."""
    k = getattr(args, "calibration_samples", None)
    if k is None:
        return tr
    try:
        return SampleCalibrated(tr, k, args.estimator or "midrank")
    except ValueError as exc:
        parser.error(f"argument --estimator: {exc}")


def _fail(parser: argparse.ArgumentParser, exc: Exception, flags: dict[str, str]) -> NoReturn:
    message = " ".join(str(exc).split())
    name = message.split(" ", 1)[0]
    prefix = f"argument {flags[name]}: " if name in flags else ""
    parser.error(f"{prefix}{message}")


def _print_rows(rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _policy_setup(args: argparse.Namespace) -> tuple[Any, ...]:
    sub = args.command_parser
    procedure = _procedure(args, sub)
    law = _law(args, sub)
    transform = None  # solve has no --transform: it computes the optimal one
    if hasattr(args, "transform"):
        transform = _transform(args, law, sub)
        if transform is not None:
            transform = _sample_calibrated(args, transform, sub)
    context = {
        "procedure": procedure.name,
        "n": procedure.n,
        "k": procedure.parameters().get("k"),
        **{
            key: procedure.parameters()[key]
            for key in ("temperature", "tau")
            if key in procedure.parameters()
        },
        "transform": "optimal" if transform is None else transform.name,
        "t": getattr(args, "t", None),
        "law": args.law,
        "against": args.against,
    }
    return sub, procedure, law, transform, context


_FLAGS = {"kl": "--kl", "beta": "--beta", "the": "--beta", "n": "--n"}
