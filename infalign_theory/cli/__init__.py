"""The ``infalign`` command: a thin argparse layer over the library, no mathematics here.

Each subcommand parses and checks its options, calls the library and prints CSV, a short
table or JSON (``--json``). Invalid arguments, and options that do not apply to the others
given, exit with status 2 and one line on stderr naming the argument; output piped into a
reader that stops early (``head``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Sequence

from .. import __version__
from ._common import _Parser
from .bridge import _add_bridge_parser
from .curve import _add_curve_parser
from .evaluate import _add_evaluate_parser
from .plan import _add_plan_parser
from .solve import _add_solve_parser
from .verify import VERIFY_DESCRIPTION, _add_verify_parser

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

    _add_evaluate_parser(sub)
    _add_curve_parser(sub)
    _add_solve_parser(sub)
    _add_plan_parser(sub)

    _add_verify_parser(sub)
    _add_bridge_parser(sub)
    verify = sub.choices["verify"]
    verify.description = textwrap.fill(VERIFY_DESCRIPTION, 88)
    verify.epilog = "example:\n  infalign verify --examples 50 --seed 1"
    verify.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


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
