r"""A policy that trains only a correction to the output layer, on the frozen base model's trunk.

With the trunk (embeddings and transformer blocks) frozen, the policy and the reference share
every hidden state h, and differ only in what reaches the output layer W:

.. math:: \text{logits}_\pi(h) = W\big(h + \mathrm{rms}(h)\,(U D \hat h/\sqrt{r} + c)\big),
          \qquad \text{logits}_{\rm ref}(h) = W h,

with :math:`\hat h = h/\mathrm{rms}(h)`, D (r x hidden), U (hidden x r) and c trainable, U and
c zero at the start (so the policy starts as the base). The sampler already computes h for
every generated token, so the policy's log-probabilities with their gradient, the reference's
log-probabilities and the exact per-token KL all follow from the sampled hidden states
through the output layer -- no second pass through the trunk, for the policy or the
reference: a training step costs little more than sampling (``experiments/bridge_converge.py``
uses it on SmolLM2-135M).

The correction lives in the hidden space, not on the vocabulary: a completion that gains from
"great" moves h toward W's row for "great", and so toward the rows of the words near it
("good", "love"). Every sample then informs every parameter, where a per-token correction
would learn each word's logit from the few samples that contain it -- and an optimiser that
normalises each parameter's step (Adam) would move the logits of the many words that no
sample contains by about the learning rate each step, a drift away from the base that buys
nothing.

:func:`attach_tilted_head` installs it; :func:`rollout_logprobs` is the one place where the
training loop and the evaluation choose between this shortcut and full forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from .._validate import integer
from .rollout import Rollout, token_logprobs


class TiltedHead(torch.nn.Module):
    """The frozen output layer ``base`` applied to the hidden state plus a trainable shift."""

    def __init__(self, base: torch.nn.Module, hidden: int, rank: int) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.down = torch.nn.Linear(hidden, rank, bias=False)
        self.up = torch.nn.Linear(rank, hidden, bias=True)
        with torch.no_grad():
            torch.nn.init.normal_(self.down.weight, std=hidden**-0.5)
            self.up.weight.zero_()
            self.up.bias.zero_()

    def shift(self, hidden: torch.Tensor) -> torch.Tensor:
        """The shift rms(h) (U D h/rms(h) / sqrt(rank) + c) added to the hidden state.

        In units of the state's own scale, so that a step of the parameters moves the logits
        by the same amount whatever the trunk's scale; the 1/sqrt(rank) keeps a step of U
        as large as a step of c.
        """
        rms = torch.sqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-12)
        return rms * self.up(self.down(hidden / rms) * self.down.out_features**-0.5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Policy logits W (h + shift(h))."""
        return self.base(hidden + self.shift(hidden))


def attach_tilted_head(model: PreTrainedModel, rank: int = 16, *, seed: int = 0) -> PreTrainedModel:
    """Freeze ``model`` and make its output layer a :class:`TiltedHead` (in place; returned).

    ``rank`` (>= 1) is the rank of the correction; ``seed`` fixes D's initial weights.
    """
    rank = integer(rank, "rank", 1)
    base = model.get_output_embeddings()
    if isinstance(base, TiltedHead):
        raise ValueError("model already has a tilted head")
    if base is None or not hasattr(base, "weight"):
        raise ValueError("model has no linear output layer to attach a tilted head to")
    hidden = base.weight.shape[1]
    model.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = TiltedHead(base, hidden, rank)
    model.set_output_embeddings(head.to(base.weight.device))
    return model


def tilted_head(model: PreTrainedModel) -> TiltedHead | None:
    """The model's :class:`TiltedHead`, or None when its output layer is an ordinary one."""
    head = model.get_output_embeddings()
    return head if isinstance(head, TiltedHead) else None


@dataclass(frozen=True)
class TokenLogProbs:
    """Per-position log-probabilities of a rollout's completions, shape (B, T), 0 past the end.

    ``policy`` is differentiable when grad is enabled, ``reference`` is not; ``kl`` is the
    exact KL(pi(.|prefix) || pi_ref(.|prefix)) at each position (differentiable), or None
    where it is not cheap.
    """

    policy: torch.Tensor
    reference: torch.Tensor
    kl: torch.Tensor | None


def rollout_logprobs(
    policy: PreTrainedModel, reference: PreTrainedModel, rollout: Rollout
) -> TokenLogProbs:
    """Log pi and log pi_ref of each sampled token and, where cheap, the exact per-token KL.

    Summed over positions, ``kl`` is the chain-rule KL of the completion: an unbiased
    estimate of KL(pi || pi_ref) with less variance than the log-ratio.

    With a :class:`TiltedHead` on ``policy`` and the hidden states kept by the sampler, all
    three come from the hidden states (the trunks are the same frozen weights; ``reference``
    is then not run). Otherwise both models run a forward pass over the rollout, and ``kl``
    is None.
    """
    mask = rollout.completion_mask  # (B, T)
    head = tilted_head(policy)
    if head is None or rollout.hidden is None:
        logp = token_logprobs(policy, rollout)
        with torch.no_grad():
            logp_ref = token_logprobs(reference, rollout)
        return TokenLogProbs(logp, logp_ref, None)
    ref_head = reference.get_output_embeddings()
    if ref_head is None or not torch.equal(ref_head.weight, head.base.weight):
        raise ValueError(
            "reference must be the frozen base of the policy's tilted head (the same output "
            "layer and trunk): its log-probabilities are read from the policy's hidden states"
        )
    tokens = rollout.input_ids[:, -mask.shape[1] :]  # (B, T)
    hidden = rollout.hidden  # (B, T, H), detached
    with torch.no_grad():
        base = head.base(hidden).float()  # (B, T, V)
        base_logp = torch.log_softmax(base, dim=-1)
        logp_ref = base_logp.gather(-1, tokens[..., None]).squeeze(-1) * mask
    logits = head(hidden).float()
    pol_logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    logp = pol_logp.gather(-1, tokens[..., None]).squeeze(-1) * mask
    kl = (pol_logp.exp() * (pol_logp - base_logp)).sum(-1) * mask  # (B, T)
    return TokenLogProbs(logp, logp_ref, kl)
