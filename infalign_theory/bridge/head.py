r"""A policy that trains only a correction to the output layer, on the frozen base model's trunk.

With the trunk (embeddings and transformer blocks) frozen, the policy and the reference share
every hidden state h and differ only in the output layer: the reference's logits are W h,
the policy's those of a :class:`PolicyHead` around W. The sampler already computes h for
every generated token, so the policy's log-probabilities with their gradient, the
reference's log-probabilities and the exact per-token KL all follow from the sampled hidden
states through the output layer -- no second pass through the trunk, for the policy or the
reference: a training step costs little more than sampling.

Two heads, both zero-initialised (the policy starts as the base):

* :class:`TiltedHead` (:func:`attach_tilted_head`): :math:`W\big(h + \mathrm{rms}(h)(U D
  \hat h/\sqrt r + c)\big)`, a low-rank shift of the hidden state, for any reward. The
  correction lives in the hidden space, not on the vocabulary: a completion that gains from
  "great" moves h toward W's row for "great", and so toward the rows of the words near it
  ("good", "love"). Every sample then informs every parameter, where a per-token correction
  would learn each word's logit from the few samples that contain it -- and an optimiser
  that normalises each parameter's step (Adam) would move the logits of the many words that
  no sample contains by about the learning rate each step, a drift away from the base that
  buys nothing.
* :class:`FeatureHead` (:func:`attach_feature_head`): a context-dependent correction along
  fixed features of the words the reward responds to (a reward's ``token_features``), plus
  the same low-rank shift, scaled down, for the other words: the features say which words
  matter, the hidden state says where. On SmolLM2 with VADER
  (``experiments/bridge_converge.py``) it brings calibrated RLHF to its predicted point,
  where the low-rank shift alone (on eight-token completions) spent 20-50 % of its KL.

:func:`rollout_logprobs` is the one place where the training loop and the evaluation choose
between this shortcut and full forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from .._validate import integer
from .rollout import Rollout, token_logprobs


class PolicyHead(torch.nn.Module):
    """A frozen output layer ``base`` plus a trainable correction: the policy's logits.

    The subclasses differ in the correction; :func:`rollout_logprobs` and the training loop
    only need ``base`` (the reference's output layer) and ``forward`` (the policy's logits).
    """

    base: torch.nn.Module


class TiltedHead(PolicyHead):
    """The frozen output layer ``base`` applied to the hidden state plus a trainable shift."""

    def __init__(self, base: torch.nn.Module, hidden: int, rank: int) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.down, self.up = _low_rank(hidden, rank)

    def shift(self, hidden: torch.Tensor) -> torch.Tensor:
        """The shift rms(h) (U D h/rms(h) / sqrt(rank) + c) added to the hidden state.

        In units of the state's own scale, so that a step of the parameters moves the logits
        by the same amount whatever the trunk's scale; the 1/sqrt(rank) keeps a step of U
        as large as a step of c.
        """
        return _low_rank_shift(hidden, self.down, self.up)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Policy logits W (h + shift(h))."""
        return self.base(hidden + self.shift(hidden))


class FeatureHead(PolicyHead):
    r"""The frozen output layer plus a logit correction along fixed token features.

    .. math:: \text{logits}_\pi(h)_v = \big(W (h + s(h)/\sqrt d)\big)_v
              + f_v^\top (A \hat h / d + b),

    with :math:`f_v` (m features) nonzero only for the tokens ``token_ids``, :math:`\hat h =
    h/\mathrm{rms}(h)` of dimension d, A (m x d) and b trainable, and s the low-rank shift of
    :class:`TiltedHead` (rank ``rank``; none when 0); A, b and the shift's U and c are zero
    at the start, so the policy starts as the base.

    The feature term moves the words the reward responds to
    (:meth:`~infalign_theory.bridge.rewards.VaderSentiment.token_features`), by an amount
    that depends on the context h; the shift moves every other word, through the hidden
    space, e.g. a "the" that often leads to "the best". The scales make a step of an
    optimiser that moves every entry by about the same amount (Adam) move the logits about
    equally through each part: the d entries of a row of A act through :math:`\hat h/d`,
    and the shift's d coordinates through :math:`1/\sqrt d` (at full scale, on SmolLM2-135M,
    ten Adam steps of 0.04 took the policy to a KL of 19).
    """

    def __init__(
        self,
        base: torch.nn.Module,
        hidden: int,
        token_ids: torch.Tensor,
        features: torch.Tensor,
        rank: int = 0,
    ) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.register_buffer("token_ids", token_ids.long())
        self.register_buffer("features", features.to(base.weight.dtype))
        self.proj = torch.nn.Linear(hidden, features.shape[1], bias=True)
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.bias.zero_()
        self.rank = rank
        if rank > 0:
            self.down, self.up = _low_rank(hidden, rank)

    def correction(self, hidden: torch.Tensor) -> torch.Tensor:
        """f^T (A h/(d rms(h)) + b) for the feature tokens, shape (..., len(token_ids))."""
        unit = hidden / torch.sqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-12)
        return self.proj(unit / unit.shape[-1]) @ self.features.T

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Policy logits: the base's at the shifted state, plus the feature correction."""
        shifted = hidden
        if self.rank > 0:
            shifted = hidden + _low_rank_shift(hidden, self.down, self.up) / hidden.shape[-1] ** 0.5
        logits = self.base(shifted)
        return logits.index_add(-1, self.token_ids, self.correction(hidden).to(logits.dtype))


def _low_rank(hidden: int, rank: int) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """D (rank x hidden, random N(0, 1/hidden)) and U, c (hidden x rank and hidden, zero)."""
    down = torch.nn.Linear(hidden, rank, bias=False)
    up = torch.nn.Linear(rank, hidden, bias=True)
    with torch.no_grad():
        torch.nn.init.normal_(down.weight, std=hidden**-0.5)
        up.weight.zero_()
        up.bias.zero_()
    return down, up


def _low_rank_shift(
    hidden: torch.Tensor, down: torch.nn.Linear, up: torch.nn.Linear
) -> torch.Tensor:
    """rms(h) (U D h/rms(h) / sqrt(rank) + c): in units of the state's own scale."""
    rms = torch.sqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-12)
    return rms * up(down(hidden / rms) * down.out_features**-0.5)


def attach_tilted_head(model: PreTrainedModel, rank: int = 16, *, seed: int = 0) -> PreTrainedModel:
    """Freeze ``model`` and make its output layer a :class:`TiltedHead` (in place; returned).

    ``rank`` (1 to the hidden size) is the rank of the correction; ``seed`` (>= 0) fixes D's
    initial weights. The head's parameters take the output layer's dtype and device.
    """
    base = _output_layer(model)
    hidden = base.weight.shape[1]
    rank = integer(rank, "rank", 1, hidden)
    seed = integer(seed, "seed", 0)
    model.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = TiltedHead(base, hidden, rank)
    model.set_output_embeddings(head.to(device=base.weight.device, dtype=base.weight.dtype))
    return model


def attach_feature_head(
    model: PreTrainedModel,
    token_ids: torch.Tensor,
    features: torch.Tensor,
    rank: int = 0,
    *,
    seed: int = 0,
) -> PreTrainedModel:
    """Freeze ``model`` and make its output layer a :class:`FeatureHead` (in place; returned).

    ``token_ids`` (k distinct integer ids inside the vocabulary) and ``features`` (k x m,
    real, finite in the output layer's dtype) fix the directions in which the policy may move
    the logits of the words the reward responds to; ``rank`` (0 to the hidden size) is the
    rank of the shift that moves the others, ``seed`` (>= 0) fixes its D's initial weights.
    The head's parameters and features take the output layer's dtype and device.
    """
    base = _output_layer(model)
    vocab, hidden = base.weight.shape
    rank = integer(rank, "rank", 0, hidden)
    seed = integer(seed, "seed", 0)
    token_ids = _tensor(token_ids, "token_ids")
    features = _tensor(features, "features")
    kind = token_ids.dtype
    if token_ids.ndim != 1 or token_ids.numel() == 0 or not _integral(kind):
        raise ValueError(
            f"token_ids must be a non-empty 1-D tensor of integer token ids, got shape "
            f"{tuple(token_ids.shape)} of {kind}"
        )
    if int(token_ids.min()) < 0 or int(token_ids.max()) >= vocab:
        raise ValueError(f"token_ids must lie in [0, {vocab}) (the vocabulary)")
    if token_ids.unique().numel() != token_ids.numel():
        raise ValueError("token_ids must be distinct")
    if features.ndim != 2 or features.shape[0] != token_ids.numel() or features.shape[1] < 1:
        raise ValueError("features must have shape (len(token_ids), m) with m >= 1")
    if features.dtype.is_complex:
        raise ValueError("features must be real, got complex values")
    if not bool(torch.isfinite(features.to(base.weight.dtype)).all()):
        raise ValueError(f"features must be finite in the output layer's dtype {base.weight.dtype}")
    model.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = FeatureHead(base, hidden, token_ids, features, rank)
    model.set_output_embeddings(head.to(device=base.weight.device, dtype=base.weight.dtype))
    return model


def _tensor(values: object, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a numeric tensor ({exc})") from exc


def _integral(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _output_layer(model: PreTrainedModel) -> torch.nn.Module:
    base = model.get_output_embeddings()
    if isinstance(base, PolicyHead):
        raise ValueError("model already has a policy head")
    if base is None or not hasattr(base, "weight"):
        raise ValueError("model has no linear output layer to attach a policy head to")
    return base


def policy_head(model: PreTrainedModel) -> PolicyHead | None:
    """The model's :class:`PolicyHead`, or None when its output layer is an ordinary one."""
    head = model.get_output_embeddings()
    return head if isinstance(head, PolicyHead) else None


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
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    rollout: Rollout,
    *,
    reference_logp: torch.Tensor | None = None,
) -> TokenLogProbs:
    """Log pi and log pi_ref of each sampled token and, where cheap, the exact per-token KL.

    Summed over positions, ``kl`` is the chain-rule KL of the completion: an unbiased
    estimate of KL(pi || pi_ref) with less variance than the log-ratio.

    With a :class:`PolicyHead` on ``policy`` and the hidden states kept by the sampler, all
    three come from the hidden states (the trunks are the same frozen weights; ``reference``
    is then not run). Otherwise both models run a forward pass over the rollout, and ``kl``
    is None; ``reference_logp``, the reference's log-probabilities of this rollout from an
    earlier call, spares the reference's pass.
    """
    mask = rollout.completion_mask  # (B, T)
    head = policy_head(policy)
    if head is None or rollout.hidden is None:
        logp = token_logprobs(policy, rollout)
        if reference_logp is None:
            with torch.no_grad():
                reference_logp = token_logprobs(reference, rollout)
        return TokenLogProbs(logp, reference_logp, None)
    ref_weight = getattr(reference.get_output_embeddings(), "weight", None)
    if ref_weight is None or not torch.equal(ref_weight, head.base.weight):
        raise ValueError(
            "reference must be the frozen base of the policy's head (the same output "
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
