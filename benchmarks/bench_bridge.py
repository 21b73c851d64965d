"""RL steps per second: the bridge's CTRL loop against TRL's RLOOTrainer, in one run.

    python benchmarks/bench_bridge.py            # a table
    python benchmarks/bench_bridge.py --json     # one JSON object (steps_per_second_ratio, ...)

Both train the same tiny GPT-2 (built in code over a word vocabulary) on the same prompts
toward the same objective: E[Phi(C^)] - beta KL with C^ from K reference rewards per prompt
(the library's ``trl_reward`` in TRL, the bridge's own calibrator in the loop), RLOO with a
leave-one-out baseline, the sequence-level KL penalty in the reward, one optimiser step per
generated batch (``num_iterations=1``), no advantage normalisation, the same beta, group
size, prompts per step, completion length, learning rate (constant), gradient clipping,
temperature 1 and dtype (float32), on CPU. A step is everything from sampling to the
optimiser update. Each side runs ``--warmup`` steps first, then ``--steps`` timed steps;
the ratio is (ours / TRL) in steps per second, medians of per-step times, in one process.

Where the two differ in work: TRL runs a separate no-grad forward of the policy for the
"old" log-probabilities and generates with ``model.generate``; the bridge takes the KL's
log-ratio from the one differentiable forward and samples with its own cached loop.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import infalign_theory as ia
from infalign_theory.bridge import (
    Calibrator,
    CTRLConfig,
    CTRLTrainer,
    WordCount,
    reference_rewards,
    tiny_model,
    trl_reward,
    trl_rloo_config,
    word_tokenizer,
)

WORDS = [f"w{i}" for i in range(60)] + ["good"]
PROMPTS = [f"<s> w{i} w{i + 1} w{i + 2}" for i in range(0, 48, 3)]


def setup(hidden: int, layers: int):
    tok = word_tokenizer(WORDS, eos=True)
    model = tiny_model(
        len(tok), hidden_size=hidden, layers=layers, heads=4, init_scale=0.05,
        eos_token_id=tok.eos_token_id, max_positions=128,
    )  # fmt: skip
    return model, tok


def time_bridge(model, tok, refs, args) -> list[float]:
    config = CTRLConfig(
        beta=args.beta, steps=args.warmup + args.steps, prompts_per_step=args.prompts_per_step,
        group_size=args.group_size, max_new_tokens=args.max_new_tokens,
        learning_rate=args.lr, max_grad_norm=1.0, checkpoint_every=0,
    )  # fmt: skip
    trainer = CTRLTrainer(
        model, tok, PROMPTS, WordCount("good"), ia.Identity(), config,
        calibrator=Calibrator(refs), progress=False,
    )  # fmt: skip
    times = []
    for _ in range(config.steps):
        start = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


def time_trl(model, tok, refs, args) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RLOOTrainer

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[float] = []

        def on_step_begin(self, *a, **k):  # noqa: D102
            self.marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):  # noqa: D102
            self.marks.append(time.perf_counter())

    folder = Path(tempfile.mkdtemp(prefix="bench_trl_"))
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    dataset = Dataset.from_dict({"prompt": PROMPTS, "reference_rewards": refs.tolist()})
    config = trl_rloo_config(
        str(folder / "out"),
        prompts_per_step=args.prompts_per_step,
        group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        beta=args.beta,
        learning_rate=args.lr,
        steps=args.warmup + args.steps,
        max_grad_norm=1.0,
        use_cpu=True,
        disable_tqdm=True,
        model_init_kwargs={"dtype": torch.float32},
    )
    clock = Clock()
    trainer = RLOOTrainer(
        model=str(folder / "model"),
        reward_funcs=trl_reward(WordCount("good"), ia.Identity()),
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[clock],
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints every log line
        trainer.train()
    marks = clock.marks
    times = [marks[i + 1] - marks[i] for i in range(0, len(marks) - 1, 2)]
    return times[args.warmup :]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--hidden", type=int, default=128, help="model width")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # TRL / transformers deprecations

    import trl

    model, tok = setup(args.hidden, args.layers)
    refs = reference_rewards(
        model, tok, PROMPTS, WordCount("good"), 8, max_new_tokens=args.max_new_tokens,
        generator=torch.Generator().manual_seed(0), progress=False,
    )  # fmt: skip
    import copy

    ours = time_bridge(copy.deepcopy(model), tok, refs, args)
    theirs = time_trl(copy.deepcopy(model), tok, refs, args)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    result = {
        "steps_per_second_ratio": theirs_s / ours_s,
        "bridge_seconds_per_step": ours_s,
        "trl_seconds_per_step": theirs_s,
        "settings": {**vars(args), "json": None, "parameters": model.num_parameters()},
        "versions": {"torch": torch.__version__, "trl": trl.__version__},
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"bridge  {ours_s * 1e3:8.1f} ms/step")
        print(f"TRL     {theirs_s * 1e3:8.1f} ms/step")
        print(f"steps_per_second_ratio (ours / TRL) {result['steps_per_second_ratio']:.2f}")
    return result


if __name__ == "__main__":
    main()
