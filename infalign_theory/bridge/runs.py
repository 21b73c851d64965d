"""Whole CTRL runs: train a copy of a base model, evaluate it, and say what theory predicts.

Shared by ``infalign bridge`` and ``experiments/bridge_run.py``. A run directory keeps the
training checkpoint and, once done, ``evaluation.json``: rerunning a finished run reads it
back, an interrupted one resumes.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._validate import integer
from ..laws import DiscreteLaw
from ..metrics import evaluate
from ..procedures import OrderStatistic
from ..prompts import align_prompts
from ..transforms import SampleCalibrated, Transform
from .ctrl import Calibrator, reference_rewards
from .evaluation import Pool, evaluate_pools, sample_pool
from .loop import CTRLConfig, CTRLTrainer, _digest, check_run_dir, run_identity, write_atomic
from .rewards import Reward
from .toy import make_toy


def read_prompts(path: str | Path) -> list[str]:
    """The non-empty lines of a text file, stripped."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line]
    if not prompts:
        raise ValueError(f"prompts file {str(path)!r} holds no prompt")
    return prompts


def split_prompts(
    prompts: Sequence[str], train: int, evaluation: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Disjoint training and held-out prompts, drawn by a seeded permutation."""
    train = integer(train, "train", 1)
    evaluation = integer(evaluation, "evaluation", 1)
    if train + evaluation > len(prompts):
        raise ValueError(
            f"train + evaluation prompts ({train} + {evaluation}) exceed the {len(prompts)} "
            "prompts available"
        )
    order = np.random.default_rng(seed).permutation(len(prompts))
    return [prompts[i] for i in order[:train]], [
        prompts[i] for i in order[train : train + evaluation]
    ]


def prepare(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_prompts: Sequence[str],
    eval_prompts: Sequence[str],
    reward: Reward,
    *,
    references: int,
    base_pool: int,
    max_new_tokens: int,
    estimator: str = "midrank",
    stop_at_eos: bool = True,
    seed: int = 0,
    batch_size: int = 64,
    work: str | Path | None = None,
    progress: bool = True,
) -> tuple[Calibrator, Pool]:
    """What every run on these prompts shares, sampled once from the base (cached in ``work``).

    Returns the calibrator (K = ``references`` rewards per training prompt) and the base pool
    (``base_pool`` samples per held-out prompt). The cache in ``work`` (``references.json``,
    ``base_pool.json``) is keyed by ``shared.json``: the prompts, sizes, seed, model and
    reward; a folder prepared for anything else is refused.
    """
    device = next(model.parameters()).device
    folder = Path(work) if work is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        key = {
            "train_prompts": _digest(train_prompts),
            "eval_prompts": _digest(eval_prompts),
            "references": references,
            "base_pool": base_pool,
            "max_new_tokens": max_new_tokens,
            "stop_at_eos": stop_at_eos,
            "seed": seed,
            "model": getattr(model.config, "_name_or_path", "") or type(model).__name__,
            "reward": type(reward).__name__,
        }
        meta = folder / "shared.json"
        if meta.exists() and json.loads(meta.read_text()) != key:
            raise ValueError(
                f"work folder {str(folder)!r} was prepared for other prompts or sizes "
                f"({json.loads(meta.read_text())}, not {key}); use a new folder"
            )
        write_atomic(meta, json.dumps(key, indent=1))
    cache = folder / "references.json" if folder is not None else None
    if cache is not None and cache.exists():
        refs = np.array(json.loads(cache.read_text()))
    else:
        refs = reference_rewards(
            model, tokenizer, train_prompts, reward, references,
            max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos,
            generator=torch.Generator(device).manual_seed(seed + 10),
            batch_size=batch_size, progress=progress,
        )  # fmt: skip
        if cache is not None:
            write_atomic(cache, json.dumps(refs.tolist()))
    cache = folder / "base_pool.json" if folder is not None else None
    if cache is not None and cache.exists():
        base = Pool(np.array(json.loads(cache.read_text())))
    else:
        base = sample_pool(
            model, tokenizer, eval_prompts, reward, base_pool,
            max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos,
            generator=torch.Generator(device).manual_seed(seed + 20),
            batch_size=batch_size, progress=progress, desc="base samples",
        )  # fmt: skip
        if cache is not None:
            write_atomic(cache, json.dumps(base.rewards.tolist()))
    return Calibrator(refs, estimator), base


def toy_run(
    transform: Transform,
    beta: float,
    procedure: OrderStatistic,
    *,
    steps: int = 300,
    group_size: int = 64,
    learning_rate: float = 1e-2,
    seed: int = 0,
    toy_seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on the enumerable toy (exact calibration) and compare with the exact optimum.

    Returns ``{"trained": ..., "exact": ...}``: the trained model's exact KL, standard and
    inference-time win rates and KL(pi || pi*), by enumeration, and the core's values for
    the optimum pi* at ``beta``.
    """
    toy = make_toy(init_scale=0.1, seed=toy_seed)
    law = toy.law()
    target = toy.target(transform, beta)
    model = copy.deepcopy(toy.model)
    config = CTRLConfig(
        beta=beta, steps=steps, prompts_per_step=1, group_size=group_size,
        max_new_tokens=toy.length, learning_rate=learning_rate, schedule="linear",
        max_grad_norm=None, stop_at_eos=False, seed=seed,
    )  # fmt: skip
    with _one_thread():
        CTRLTrainer(
            model, toy.tokenizer, ["<s>"], toy.reward, transform, config,
            reference=toy.model, calibrator=Calibrator.exact([law]), progress=progress,
        ).train()  # fmt: skip
    return {
        "transform": transform.name,
        "beta": beta,
        "procedure": procedure.name,
        "trained": toy.metrics(model, procedure, target),
        "exact": evaluate(target, procedure).to_dict(),
    }


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread, the caller's setting restored afterwards.

    The toy's matrices are a few dozen wide: one thread is fastest, and several stall when
    the machine is busy (a measured 20 s run took 8 minutes on two threads of two loaded
    cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def predicted(
    base_rewards: np.ndarray,
    transform: Transform,
    beta: float,
    procedure: OrderStatistic,
    *,
    references: int | None = None,
    estimator: str = "midrank",
) -> dict[str, float]:
    """Where a perfectly optimised policy lands at ``beta``, prompt by prompt, exactly.

    Each held-out prompt's base reward law is taken as the empirical law of its base
    samples (ties merged into levels); with ``references`` = K the transform is seen
    through calibration from K samples (:class:`~infalign_theory.transforms.SampleCalibrated`);
    KL and win rates are averaged over prompts (:func:`~infalign_theory.prompts.align_prompts`).
    """
    m = base_rewards.shape[1]
    laws = [DiscreteLaw(row, np.full(m, 1.0 / m)) for row in base_rewards]
    tr = transform if references is None else SampleCalibrated(transform, references, estimator)
    curve = align_prompts(laws, [beta], calibrated=True, transform=tr, procedure=procedure)
    return {
        "kl": float(curve.kl[0]),
        "win_rate": float(curve.win_rate[0]),
        "standard_win_rate": float(curve.standard_win_rate[0]),
    }


def run_ctrl(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_prompts: Sequence[str],
    eval_prompts: Sequence[str],
    reward: Reward,
    transform: Transform,
    config: CTRLConfig,
    *,
    calibrator: Calibrator | None,
    base_pool: Pool,
    pool: int,
    procedures: Sequence[OrderStatistic],
    run_dir: str | Path | None = None,
    batch_size: int = 64,
    keep_checkpoint: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a copy of ``base`` with CTRL, then evaluate it against ``base`` on held-out prompts.

    Returns a JSON-ready record: the configuration, a training summary (steps, seconds, the
    mean of the last five logged steps) and the pool evaluation. In ``run_dir`` a finished
    run leaves ``evaluation.json`` and ``log.jsonl`` (and is not redone), an unfinished one a
    checkpoint to resume from; ``keep_checkpoint=False`` deletes the finished run's
    checkpoint (for SmolLM2 about 1.6 GB with Adam's state).
    """
    folder = Path(run_dir) if run_dir is not None else None
    saved = folder / "evaluation.json" if folder is not None else None
    if folder is not None and saved is not None and saved.exists():  # finished: read it back
        device = next(base.parameters()).device
        check_run_dir(folder, run_identity(config, transform, train_prompts, calibrator, device))
        evaluation = json.loads(saved.read_text())
        history = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]  # type: ignore[operator]
    else:
        policy = copy.deepcopy(base)
        trainer = CTRLTrainer(
            policy,
            tokenizer,
            train_prompts,
            reward,
            transform,
            config,
            reference=base,
            calibrator=calibrator,
            run_dir=folder,
            progress=progress,
        )
        history = trainer.train()
        device = next(base.parameters()).device
        policy_pool = sample_pool(
            policy,
            tokenizer,
            eval_prompts,
            reward,
            pool,
            max_new_tokens=config.max_new_tokens,
            generator=torch.Generator(device).manual_seed(config.seed + 2),
            reference=base,
            batch_size=batch_size,
            stop_at_eos=config.stop_at_eos,
            progress=progress,
            desc="policy samples",
        )
        evaluation = evaluate_pools(policy_pool, base_pool, procedures).to_dict()
        if saved is not None:
            write_atomic(saved, json.dumps(evaluation, indent=1))
            if not keep_checkpoint:
                (folder / "checkpoint.pt").unlink(missing_ok=True)  # type: ignore[operator]
        del policy, trainer
    last = history[-5:]
    summary = {k: float(np.mean([h[k] for h in last])) for k in last[0]} if last else {}
    summary.pop("step", None)
    return {
        "transform": transform.name,
        "beta": config.beta,
        "config": dataclasses.asdict(config),
        "train": {
            "steps": len(history),
            "seconds": float(sum(h["seconds"] for h in history)),
            "last_steps_mean": summary,
        },
        "evaluation": evaluation,
    }
