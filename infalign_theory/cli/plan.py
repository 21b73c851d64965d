"""``infalign plan``: the transform and beta to train with for one's own rewards."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from ._common import (
    ORDER_PROCEDURES,
    _add_calibration_options,
    _add_procedure_options,
    _add_subcommand,
    _fail,
    _number,
    _procedure,
)


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
    _add_procedure_options(pl, ORDER_PROCEDURES)
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


def _run_plan(args: argparse.Namespace) -> int:
    from ..planning import plan, read_rewards

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
