r"""An enumerable toy: a tiny causal LM whose whole sequence distribution is a finite sum.

The vocabulary is ``<s>`` plus a few words; the prompt is ``<s>`` and every completion has
exactly ``length`` tokens (no EOS), so with V tokens there are :math:`V^L` completions and
each policy is a vector of :math:`V^L` probabilities. The reward counts one word (many
ties). Everything the bridge estimates from samples is then exact here:

* the base reward law (a :class:`~infalign_theory.laws.DiscreteLaw`), hence the exact
  calibration C and, through the core, the exact optimum
  :math:`\pi^* \propto \pi_{\rm ref}\, e^{\Phi(C)/\beta}` with its KL and win rates;
* for any trained model, its KL to the reference, its win rates against it, and
  :math:`\mathrm{KL}(\pi\,\|\,\pi^*) = (J(\pi^*) - J(\pi))/\beta`, the objective gap.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ..laws import DiscreteLaw
from ..metrics import standard_win_rate, win_rate
from ..policy import DiscretePolicy, tilt
from ..procedures import OrderStatistic
from ..transforms import Transform
from .models import tiny_model, word_tokenizer
from .rewards import WordCount
from .rollout import Rollout, sequence_logprobs

PROMPT = "<s>"


@dataclass
class Toy:
    """The toy problem: tokenizer, base model, reward, and every completion enumerated."""

    tokenizer: PreTrainedTokenizerFast
    model: PreTrainedModel
    reward: WordCount
    length: int
    rollout: Rollout
    rewards: np.ndarray

    @torch.no_grad()
    def probabilities(self, model: PreTrainedModel | None = None) -> np.ndarray:
        """pi(y) for every completion y (the base model's by default), in float64."""
        m = self.model if model is None else model
        logp = sequence_logprobs(m, self.rollout).double().cpu().numpy()
        p = np.exp(logp - logp.max())
        return p / p.sum()

    def law(self) -> DiscreteLaw:
        """The base's reward law: levels are reward values, with their exact probabilities."""
        return DiscreteLaw(self.rewards, self.probabilities())

    def target(self, transform: Transform, beta: float) -> DiscretePolicy:
        """The core's exact optimum: the tilt of the base law by Phi(C)/beta."""
        policy = tilt(transform, beta, self.law())
        assert isinstance(policy, DiscretePolicy)
        return policy

    def metrics(
        self,
        model: PreTrainedModel,
        procedure: OrderStatistic,
        target: DiscretePolicy | None = None,
    ) -> dict[str, Any]:
        """Exact KL, standard and inference-time win rates of ``model`` against the base.

        With ``target`` (a tilt of :meth:`law`), also KL(pi || target) over completions.
        """
        q, p = self.probabilities(), self.probabilities(model)
        law = self.law()
        level = np.searchsorted(law.values, self.rewards)
        on_levels = DiscretePolicy(law, np.bincount(level, weights=p, minlength=law.n_levels))
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = float(np.sum(np.where(p > 0, p * np.log(p / q), 0.0)))
        out = {
            "kl": kl,
            "standard_win_rate": standard_win_rate(on_levels),
            "win_rate": win_rate(on_levels, procedure),
        }
        if target is not None:
            star = q * np.exp(target.log_ratio[level])
            star /= star.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                out["kl_to_target"] = float(np.sum(np.where(p > 0, p * np.log(p / star), 0.0)))
        return out


def make_toy(
    words: tuple[str, ...] = ("a", "b", "c"),
    *,
    length: int = 3,
    rewarded: str = "a",
    init_scale: float = 0.5,
    hidden_size: int = 32,
    seed: int = 0,
) -> Toy:
    """Build the toy: vocabulary ``<s>`` + ``words``, completions of ``length`` tokens.

    The base model is a tiny GPT-2 with seeded weights of scale ``init_scale`` (large enough
    for a base policy visibly different from uniform); the reward counts ``rewarded``.
    """
    tokenizer = word_tokenizer(list(words))
    vocab = len(tokenizer)
    model = tiny_model(
        vocab, hidden_size=hidden_size, init_scale=init_scale, max_positions=length + 2, seed=seed
    )
    seqs = torch.tensor(list(itertools.product(range(vocab), repeat=length)), dtype=torch.long)
    ids = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), seqs], dim=1)
    texts = tokenizer.batch_decode(seqs, skip_special_tokens=True)
    rollout = Rollout(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        completion_mask=torch.ones(len(seqs), length),
        logprobs=torch.zeros(len(seqs)),
        completions=texts,
    )
    reward = WordCount(rewarded)
    rewards = np.asarray(reward([PROMPT] * len(texts), texts), dtype=np.float64)
    return Toy(tokenizer, model, reward, length, rollout, rewards)
