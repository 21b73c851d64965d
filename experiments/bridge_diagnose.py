"""Why a run of ``bridge_converge.py`` misses its prediction: the base pool, or the training?

Run after ``experiments/bridge_converge.py`` (it reads that study's work folder: the base
pool, and each run's trained head). It draws ``--samples`` fresh completions of the base
model per prompt (cached beside the study) and asks two questions of every run.

1. **How far is the prediction from the base model's own tilt?** The prediction tilts each
   prompt's *pool* law (256 completions), but the policy that training can reach tilts the
   base model itself. With the fresh completions standing in for the base model, the tilt of
   their law by the trainer's reward (calibrated against the pool, transformed) gives KL and
   the Best-of-N and standard win rates against the pool's law, computed exactly as the
   prediction is; the differences (``base_model_tilt`` minus ``predicted``) are what a finite
   pool adds to the prediction.
2. **Can the trained head represent the tilt, and does training get there?** The first
   token carries about half of the tilt's KL (the prompt ends where the verdict goes). Its law under
   the tilt, pi*(v) proportional to pi_ref(v) E[e^(Phi/beta) | first token v], is estimated
   from the fresh completions (tokens they never start with keep their base probability,
   renormalised). Reported: the trained policy's first-token KL(pi || pi*), and that of a
   fresh head of the same kind fitted to pi* by *exact* gradients (no sampling noise) with the
   study's optimiser and schedule, for the study's number of steps and for ``--fit-scale``
   times as many (the study's ``epochs`` = 3 updates per sampled batch make its 100 steps 300
   updates). If the exact fit gets much closer than training in as many updates, the head can
   represent the tilt and the sampled gradient is what falls short; if it needs many more
   updates, the optimisation is slow even without noise.

    python experiments/bridge_diagnose.py     # paper_figures/bridge_diagnose.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bridge_converge as bc  # noqa: E402

import infalign_theory as ia  # noqa: E402
from infalign_theory.bridge.rewards import score  # noqa: E402
from infalign_theory.bridge.rollout import encode_prompts, sample  # noqa: E402
from infalign_theory.calibration import calibrate_empirical  # noqa: E402
from infalign_theory.figures import write_json  # noqa: E402


def fresh_completions(
    model: Any, tokenizer: Any, prompts: list[str], reward: Any, samples: int, seed: int,
    work: Path,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """First tokens and rewards of ``samples`` base completions per prompt (cached)."""
    cache = work / f"diagnose_pool_{samples}_{seed}.npz"
    if cache.exists():
        saved = np.load(cache)
        return saved["first"], saved["rewards"]
    gen = torch.Generator().manual_seed(seed)
    first, rewards = [], []
    for prompt in prompts:
        toks: list[int] = []
        texts: list[str] = []
        for start in range(0, samples, 256):
            roll = sample(model, tokenizer, [prompt] * min(256, samples - start),
                          max_new_tokens=3, generator=gen, stop_at_eos=True)  # fmt: skip
            toks += roll.input_ids[:, roll.prompt_length].tolist()
            texts += roll.completions
        first.append(toks)
        rewards.append(score(reward, [prompt] * samples, texts))
    first_a, rewards_a = np.array(first), np.array(rewards, dtype=np.float64)
    np.savez(cache, first=first_a, rewards=rewards_a)
    return first_a, rewards_a


def log_tilt_weights(
    rewards: np.ndarray, pool: np.ndarray, tr: ia.Transform, beta: float
) -> np.ndarray:
    """log of e^(Phi(C^)/beta) of each completion, normalised to sum to one; C^ is
    calibrated against ``pool``. In logs, so that no completion's weight underflows to 0."""
    phi = np.asarray(tr(calibrate_empirical(rewards, pool)), dtype=np.float64) / beta
    return phi - logsumexp(phi)


def law_metrics(rewards: np.ndarray, weights: np.ndarray, pool: np.ndarray, n: int) -> list[float]:
    """KL to the sample's own law, and the Best-of-n and standard win rates (ties 1/2) of
    the law (``rewards``, ``weights``) against the pool's empirical law (with replacement)."""
    levels = np.unique(np.concatenate([rewards, pool]))
    p = np.bincount(np.searchsorted(levels, rewards), weights=weights, minlength=levels.size)
    q = np.bincount(np.searchsorted(levels, pool), minlength=levels.size) / pool.size
    f, g = np.cumsum(p), np.cumsum(q)
    f0, g0 = f - p, g - q
    best = np.sum((f**n - f0**n) * (g0**n + 0.5 * (g**n - g0**n)))
    standard = np.sum(p * (g0 + 0.5 * q))
    kl = np.sum(weights * np.log(np.maximum(weights * rewards.size, 1e-300)))
    return [float(kl), float(best), float(standard)]


def first_token_laws(
    model: Any, tokenizer: Any, prompts: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output layer's input after each prompt (P, d) and the base's first-token log-law."""
    states: list[torch.Tensor] = []
    head = model.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda _m, args: states.append(args[0][:, -1]))
    try:
        with torch.no_grad():
            for prompt in prompts:
                ids, mask = encode_prompts(tokenizer, [prompt], torch.device("cpu"))
                model(input_ids=ids, attention_mask=mask)
    finally:
        hook.remove()
    hidden = torch.cat(states)
    with torch.no_grad():
        return hidden, torch.log_softmax(head(hidden).float(), -1)


def tilted_first_token(
    base_logp: torch.Tensor, first: np.ndarray, log_weights: np.ndarray
) -> torch.Tensor:
    """log pi*(v): the base's first-token law times E[w | v]/E[w] where v was seen (the
    weights given by their logs, normalised), renormalised."""
    log_ratio = np.zeros(base_logp.shape[0])
    for v in np.unique(first):
        group = log_weights[first == v]
        log_ratio[v] = logsumexp(group) - np.log(group.size) + np.log(first.size)
    out = base_logp + torch.as_tensor(log_ratio, dtype=base_logp.dtype)
    return out - torch.logsumexp(out, 0)


def reverse_kl(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(p || q) from log-laws over the last axis, averaged over the others."""
    return (logp.exp() * (logp - target)).sum(-1).mean()


def head_for(model: Any, tokenizer: Any, reward: Any, study: bc.Study) -> Any:
    """The study's head, untrained (its output layer and correction)."""
    return bc.initial_policy(model, tokenizer, reward, study).get_output_embeddings()


def exact_fit(
    head: Any, hidden: torch.Tensor, target: torch.Tensor, study: bc.Study, steps: int
) -> float:
    """First-token KL(pi || pi*) after ``steps`` exact-gradient steps of the study's optimiser
    (its learning rate, decaying linearly to 0 over ``steps``)."""
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=study.learning_rate)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = study.learning_rate * (1.0 - step / steps)
        loss = reverse_kl(torch.log_softmax(head(hidden).float(), -1), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(reverse_kl(torch.log_softmax(head(hidden).float(), -1), target))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=bc.ROOT / ".bridge_runs" / "converge_cpu")
    parser.add_argument("--samples", type=int, default=2048, help="fresh completions per prompt")
    parser.add_argument("--fit-scale", type=int, default=3, help="longer exact fit, x steps")
    parser.add_argument("--out", type=Path, default=bc.ROOT / "paper_figures")
    args = parser.parse_args(argv)
    for option in ("samples", "fit_scale"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be an integer >= 1")
    if not (args.work / "base_pool.json").exists():
        parser.error(f"{args.work} holds no study: run experiments/bridge_converge.py first")
    start = time.perf_counter()
    study = bc.STUDIES["cpu"]
    torch.set_num_threads(2)
    model, tokenizer, prompts, reward, _ = bc.setup(study)
    saved = json.loads((args.work / "base_pool.json").read_text())
    wanted = bc.base_pool_key(prompts, study)
    if saved.get("key") != wanted:
        parser.error(f"--work {args.work}: its base pool belongs to another study "
                     f"({saved.get('key')}), not this one ({wanted})")  # fmt: skip
    pool = np.array(saved["rewards"])
    first, fresh = fresh_completions(model, tokenizer, prompts, reward, args.samples,
                                     study.seed + 20, args.work)  # fmt: skip
    laws = bc.laws_of(pool)
    procedure = ia.best_of(study.n)
    hidden, base_logp = first_token_laws(model, tokenizer, prompts)
    transforms = {"identity": ia.Identity(), "exponential": ia.Exponential(study.t)}
    runs = []
    for key, tr in transforms.items():
        for kl in study.kls:
            pred = bc.prediction(laws, tr, kl, procedure)
            beta = pred["beta"]
            tilts, targets = [], []
            for r, p, f, b in zip(fresh, pool, first, base_logp, strict=True):
                log_w = log_tilt_weights(r, p, tr, beta)
                tilts.append(law_metrics(r, np.exp(log_w), p, study.n))
                targets.append(tilted_first_token(b, f, log_w))
            tilt, target = np.mean(tilts, axis=0), torch.stack(targets)
            row: dict[str, Any] = {
                "key": key, "transform": tr.name, "target_kl": kl, "beta": beta,
                "predicted": {k: pred[k] for k in ("kl", "win_rate", "standard_win_rate")},
                "base_model_tilt": dict(zip(("kl", "win_rate", "standard_win_rate"),
                                            tilt.tolist(), strict=True)),
                "first_token": {"tilt_kl_to_base": float(reverse_kl(target, base_logp))},
            }  # fmt: skip
            ckpt = args.work / f"{key}_kl{kl:g}" / "checkpoint.pt"
            if ckpt.exists():
                head = head_for(model, tokenizer, reward, study)
                saved_run = torch.load(ckpt, weights_only=True)
                where = f"--work {args.work}: {ckpt}"
                if saved_run.get("step") != study.steps:
                    step = saved_run.get("step")
                    parser.error(f"{where} is at step {step}, not {study.steps} (unfinished)")
                policy = saved_run["policy"]
                trained = {k.removeprefix("lm_head."): v for k, v in policy.items()}
                try:
                    missing, unexpected = head.load_state_dict(trained, strict=False)
                except RuntimeError as err:  # a head of another shape
                    parser.error(f"{where} does not hold this study's head: {err}")
                lost = sorted(
                    {n for n, p in head.named_parameters() if p.requires_grad} & set(missing)
                )
                if unexpected or lost:
                    parser.error(
                        f"{where} does not hold this study's head "
                        f"(unexpected {unexpected[:3]}, missing {lost[:3]})"
                    )
                with torch.no_grad():
                    logp = torch.log_softmax(head(hidden).float(), -1)
                row["first_token"]["trained_kl_to_base"] = float(reverse_kl(logp, base_logp))
                row["first_token"]["trained_kl_to_tilt"] = float(reverse_kl(logp, target))
            for steps in (study.steps, args.fit_scale * study.steps):
                head = head_for(model, tokenizer, reward, study)
                row["first_token"][f"exact_fit_{steps}_steps_kl_to_tilt"] = exact_fit(
                    head, hidden, target, study, steps
                )
            runs.append(row)
            print(json.dumps(row), flush=True)
    data = {
        "what": "the base model's own tilt against the pool prediction, and first-token fits",
        "study": dataclasses.asdict(study),
        "samples_per_prompt": args.samples,
        "runs": runs,
        "seconds": time.perf_counter() - start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bridge_diagnose.json"
    write_json(path, data)
    print(f"wrote {path} ({data['seconds']:.0f} s)")
    return path


if __name__ == "__main__":
    main()
