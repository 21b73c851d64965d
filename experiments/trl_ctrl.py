"""Scaling out through TRL: InfAlign-CTRL's reward in TRL's ``RLOOTrainer``.

Users who outgrow one GPU run RL with TRL on accelerate / DeepSpeed; the library supplies
the C and T of CTRL as an ordinary TRL reward function. Each dataset row carries its
prompt's K reference rewards (scored once, here with the base model before training) in a
``reference_rewards`` column; :func:`infalign_theory.bridge.trl_reward` calibrates every
completion against them and applies the transform. TRL's RLOO with ``beta`` puts the same
sequence-level KL penalty in the reward as the bridge's own loop.

    python experiments/trl_ctrl.py --model tiny --steps 20             # seconds, CPU
    python experiments/trl_ctrl.py --model smollm2 --transform exp --t 10 --steps 200
    accelerate launch experiments/trl_ctrl.py --model smollm2 ...      # many GPUs
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch
from datasets import Dataset
from trl import RLOOTrainer

import infalign_theory as ia
from infalign_theory.bridge import (
    VaderSentiment,
    WordCount,
    load_model,
    reference_rewards,
    tiny_model,
    trl_reward,
    trl_rloo_config,
    word_tokenizer,
)
from infalign_theory.bridge.ctrl import TRL_DEPRECATIONS
from infalign_theory.bridge.runs import read_prompts

ROOT = Path(__file__).resolve().parents[1]
TINY_WORDS = ["good", "bad", "film", "plot", "the", "was", "and"]
TINY_PROMPTS = ["<s> the film was", "<s> the plot", "<s> and the", "<s> was the film"]


def setup(name: str, device: str) -> tuple:
    """Model, tokenizer, prompts and reward: the tiny word-level model, or a real one."""
    if name == "tiny":
        tok = word_tokenizer(TINY_WORDS, eos=True)
        model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id)
        return model.to(device), tok, TINY_PROMPTS, WordCount("good")
    model, tok = load_model(name, device=device)
    prompts = read_prompts(ROOT / "experiments" / "data" / "movie_openers.txt")
    return model, tok, prompts, VaderSentiment()


def main(argv: list[str] | None = None) -> RLOOTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2 or a local model path")
    parser.add_argument("--transform", choices=("identity", "exp"), default="identity")
    parser.add_argument("--t", type=float, default=10.0, help="exponent of --transform exp")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--references", type=int, default=8, help="K reference samples")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with warnings.catch_warnings():  # TRL's own deprecation warnings, not the user's
        warnings.filterwarnings("ignore", message=TRL_DEPRECATIONS, category=FutureWarning)
        return _train(args)


def _train(args: argparse.Namespace) -> RLOOTrainer:
    model, tok, prompts, reward = setup(args.model, args.device)
    transform = ia.Identity() if args.transform == "identity" else ia.Exponential(args.t)
    refs = reference_rewards(
        model, tok, prompts, reward, args.references, max_new_tokens=args.max_new_tokens,
        generator=torch.Generator(model.device).manual_seed(args.seed),
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": list(prompts), "reference_rewards": refs.tolist()})
    out = args.output_dir or Path(tempfile.mkdtemp(prefix="trl_ctrl_"))
    # TRL builds its frozen reference from a model path: hand it a local directory
    source = Path(args.model)
    if not source.is_dir():
        source = out / "base_model"
        model.save_pretrained(source)
        tok.save_pretrained(source)
    config = trl_rloo_config(
        str(out),
        prompts_per_step=args.prompts_per_step,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        beta=args.beta,
        learning_rate=args.lr,
        steps=args.steps,
        use_cpu=args.device == "cpu",
        seed=args.seed,
        model_init_kwargs={"dtype": torch.float32},
    )
    trainer = RLOOTrainer(
        model=str(source),
        reward_funcs=trl_reward(reward, transform),
        args=config,
        train_dataset=dataset,
        processing_class=tok,
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    main()
