"""Evaluating a trained policy on held-out prompts, from finite pools of samples.

For each held-out prompt, M completions are sampled from the policy and M from the base
(the base pool can be shared by every policy evaluated against it). From those pools:

* **KL**: the mean of log(pi(y)/pi_ref(y)) over the policy's samples, an unbiased estimate
  of KL(pi || pi_ref) (the sampler's own log-probability minus the reference's);
* **win rates**: :func:`~infalign_theory.metrics.pool_win_rate` per prompt -- the exact win
  rate of T applied to N draws without replacement from each pool, ties ½ -- for sampling
  (the standard win rate) and every procedure asked for.

Each number is the average over prompts. Its standard error is the spread across prompts,
std / sqrt(P), which contains the sampling noise within each prompt; with a single prompt it
is the two-sample jackknife over the two pools.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._validate import choice, integer
from ..metrics import pool_win_rate
from ..procedures import OrderStatistic, sampling
from .head import policy_head, rollout_logprobs
from .rewards import Reward, score
from .rollout import sample


@dataclass(frozen=True)
class Pool:
    """Rewards (and log-ratios to the reference) of M samples for each of P prompts.

    ``kl_tokens``, where the policy makes it cheap (a
    :class:`~infalign_theory.bridge.head.TiltedHead`), is each sample's chain-rule KL: the sum
    over its positions of KL(pi(.|prefix) || pi_ref(.|prefix)).
    """

    rewards: np.ndarray
    log_ratios: np.ndarray | None = None
    kl_tokens: np.ndarray | None = None


@dataclass(frozen=True)
class Estimate:
    """A prompt-averaged estimate and its standard error."""

    value: float
    se: float

    def to_dict(self) -> dict[str, float]:
        """``{"value": ..., "se": ...}``."""
        return {"value": self.value, "se": self.se}


@dataclass(frozen=True)
class PoolEvaluation:
    """KL and win rates of a policy against the base, estimated from pools of samples."""

    kl: Estimate
    standard_win_rate: Estimate
    win_rates: dict[str, Estimate] = field(default_factory=dict)
    prompts: int = 0
    pool: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "kl": self.kl.to_dict(),
            "standard_win_rate": self.standard_win_rate.to_dict(),
            "win_rates": {k: v.to_dict() for k, v in self.win_rates.items()},
            "prompts": self.prompts,
            "pool": self.pool,
        }


@torch.no_grad()
def sample_pool(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward: Reward,
    m: int,
    *,
    max_new_tokens: int,
    generator: torch.Generator,
    reference: PreTrainedModel | None = None,
    batch_size: int = 64,
    stop_at_eos: bool = True,
    progress: bool = True,
    desc: str = "evaluation samples",
) -> Pool:
    """M samples of ``model`` per prompt: their rewards and, given ``reference``, log-ratios."""
    m = integer(m, "m", 1)
    batch_size = integer(batch_size, "batch_size", 1)
    if (
        reference is not None
        and next(reference.parameters()).device != next(model.parameters()).device
    ):
        raise ValueError("reference must be on the same device as model")
    texts = [p for p in prompts for _ in range(m)]
    rewards = np.empty(len(texts))
    ratios = np.empty(len(texts)) if reference is not None else None
    hidden = reference is not None and policy_head(model) is not None
    chain = np.empty(len(texts)) if hidden else None
    bar = tqdm(total=len(texts), desc=desc, unit="sample", disable=not progress)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        roll = sample(
            model,
            tokenizer,
            chunk,
            max_new_tokens=max_new_tokens,
            generator=generator,
            stop_at_eos=stop_at_eos,
            keep_hidden=hidden,
        )
        rows = slice(start, start + len(chunk))
        rewards[rows] = score(reward, chunk, roll.completions)
        if ratios is not None:
            lp = rollout_logprobs(model, reference, roll)  # type: ignore[arg-type]
            ratios[rows] = (roll.logprobs - lp.reference.sum(-1)).cpu().numpy()
            if chain is not None and lp.kl is not None:
                chain[rows] = lp.kl.sum(-1).cpu().numpy()
        bar.update(len(chunk))
    bar.close()
    shape = (len(prompts), m)
    return Pool(
        rewards.reshape(shape),
        None if ratios is None else ratios.reshape(shape),
        None if chain is None else chain.reshape(shape),
    )


def _jackknife(
    stat: Callable[[np.ndarray, np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    *,
    base: bool = True,
) -> float:
    """Jackknife standard error of ``stat(a, b)``, deleting from each pool in turn.

    ``base=False`` deletes from the policy pool ``a`` only: the error given the base pool.
    """
    var = 0.0
    for pool, other, first in ((a, b, True), (b, a, False))[: 2 if base else 1]:
        m = pool.size
        if m < 2:
            continue
        loo = np.array(
            [
                stat(np.delete(pool, i), other) if first else stat(other, np.delete(pool, i))
                for i in range(m)
            ]
        )
        var += (m - 1) / m * float(np.sum((loo - loo.mean()) ** 2))
    return float(np.sqrt(var))


def _average(per_prompt: np.ndarray, single: Callable[[], float]) -> Estimate:
    value = float(per_prompt.mean())
    if per_prompt.size >= 2:
        return Estimate(value, float(per_prompt.std(ddof=1) / np.sqrt(per_prompt.size)))
    return Estimate(value, single())


NOISES = ("prompts", "policy")


def _conditional(per_prompt: np.ndarray, se: np.ndarray) -> Estimate:
    return Estimate(float(per_prompt.mean()), float(np.sqrt(np.sum(se**2)) / per_prompt.size))


def evaluate_pools(
    policy: Pool,
    base: Pool,
    procedures: Sequence[OrderStatistic] = (),
    *,
    noise: str = "prompts",
) -> PoolEvaluation:
    """KL and win rates (standard and for each procedure) from a policy and a base pool.

    ``noise`` says what the standard errors measure. ``"prompts"`` (default): the spread across
    prompts, std / sqrt(P) -- for held-out prompts drawn from a population, it contains the
    sampling noise within each prompt. ``"policy"``: the noise of the policy's samples given
    these prompts and this base pool, sqrt(sum_p se_p^2) / P with se_p the jackknife over
    prompt p's policy pool (the sample standard error for KL) -- for comparing with a
    prediction computed on the same prompts and base pool.
    """
    choice(noise, "noise", NOISES)
    if policy.log_ratios is None:
        raise ValueError("the policy pool needs log_ratios (sample it with a reference model)")
    a, b = policy.rewards, base.rewards
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[0] == 0:
        raise ValueError("policy and base pools must have shape (P, M) with the same P >= 1")
    if a.shape[0] == 1:  # one prompt: the jackknife needs a pool to spare
        for proc in (sampling(), *procedures):
            if min(a.shape[1], b.shape[1]) < proc.n + 1 or a.shape[1] < 2:
                raise ValueError(
                    f"with one prompt, each pool must hold at least {max(proc.n + 1, 2)} "
                    f"samples for the standard error of {proc.name}; got {a.shape[1]} and "
                    f"{b.shape[1]}"
                )
    ratios = policy.log_ratios
    if ratios.shape != a.shape or not np.all(np.isfinite(ratios)):
        raise ValueError(
            f"the policy pool's log_ratios must be finite, of the rewards' shape {a.shape}; "
            f"got shape {ratios.shape}"
        )
    if noise == "policy":
        largest = max((p.n for p in procedures), default=1)
        if a.shape[1] < max(2, largest + 1):
            raise ValueError(
                f"noise='policy' needs at least {max(2, largest + 1)} policy samples per prompt "
                f"(the jackknife leaves one out of n = {largest}); got {a.shape[1]}"
            )
        kl = _conditional(ratios.mean(1), ratios.std(1, ddof=1) / np.sqrt(ratios.shape[1]))
    else:
        kl = _average(
            ratios.mean(1), lambda: float(ratios[0].std(ddof=1) / np.sqrt(ratios.shape[1]))
        )

    def win(proc: OrderStatistic) -> Estimate:
        def stat(x: np.ndarray, y: np.ndarray) -> float:
            return pool_win_rate(x, y, proc)

        per = np.array([stat(x, y) for x, y in zip(a, b, strict=True)])
        if noise == "policy":
            se = [_jackknife(stat, x, y, base=False) for x, y in zip(a, b, strict=True)]
            return _conditional(per, np.array(se))
        return _average(per, lambda: _jackknife(stat, a[0], b[0]))

    return PoolEvaluation(
        kl=kl,
        standard_win_rate=win(sampling()),
        win_rates={p.name: win(p) for p in procedures},
        prompts=a.shape[0],
        pool=a.shape[1],
    )
