"""Sampling completions and scoring their log-probabilities, exactly as the policy defines them.

The RL objective and every KL estimate are about the model's own distribution, so sampling
uses temperature 1 with no top-k, top-p or repetition penalty: a completion's probability
is the product of the softmax probabilities of its tokens. Generation stops at the
tokenizer's EOS token (which belongs to the completion) or after ``max_new_tokens``; the
tokens after EOS are padding, outside ``completion_mask``.

The sampler is a plain incremental loop over a key-value cache (not ``generate``), so that
no generation default of a model's config can change the distribution, and the
log-probability of each sampled completion comes out of it for free.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from .._validate import integer


@dataclass
class Rollout:
    """A batch of prompts with one sampled completion each (prompts left-padded).

    Attributes
    ----------
    input_ids, attention_mask : LongTensor, shape (B, Lp + T)
        Prompt then completion tokens; the mask is 0 on left padding and after EOS.
    completion_mask : FloatTensor, shape (B, T)
        1 on the completion's tokens (EOS included), 0 after.
    logprobs : FloatTensor, shape (B,)
        log pi(completion | prompt) under the sampling model, accumulated while sampling.
    completions : list of str
        The decoded completions, special tokens skipped.
    hidden : FloatTensor, shape (B, T, H), or None
        With ``keep_hidden``: the input of the output layer at each completion position (the
        state from which that token was drawn), detached.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    logprobs: torch.Tensor
    completions: list[str]
    hidden: torch.Tensor | None = None

    @property
    def prompt_length(self) -> int:
        """Lp: the padded prompt length."""
        return self.input_ids.shape[1] - self.completion_mask.shape[1]


def _cache_keyword(model: PreTrainedModel) -> str:
    """The forward's cache argument: ``cache`` now, ``past_key_values`` in older releases."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask, tokenized as the tokenizer does it."""
    if tokenizer.padding_side != "left" or tokenizer.pad_token_id is None:
        raise ValueError(
            "tokenizer must pad on the left and have a pad token (generation continues from "
            "the last position); call infalign_theory.bridge.models.prepare_tokenizer on it"
        )
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
    empty = enc["attention_mask"].sum(1) == 0
    if bool(empty.any()):
        raise ValueError(
            f"prompt {list(prompts)[int(empty.nonzero()[0])]!r} tokenizes to no token; every "
            "prompt needs at least one"
        )
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    generator: torch.Generator,
    stop_at_eos: bool = True,
    keep_hidden: bool = False,
) -> Rollout:
    """Sample one completion per prompt at temperature 1 (repeat a prompt for a group).

    ``keep_hidden`` records the output layer's input at every step (``Rollout.hidden``).
    """
    max_new_tokens = integer(max_new_tokens, "max_new_tokens", 1)
    states: list[torch.Tensor] = []
    hook = None
    if keep_hidden:
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError("keep_hidden needs a model with an output layer")
        hook = head.register_forward_pre_hook(lambda _m, args: states.append(args[0][:, -1]))
    try:
        return _sample(model, tokenizer, prompts, max_new_tokens, generator, stop_at_eos, states)
    finally:
        if hook is not None:
            hook.remove()


def _sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    generator: torch.Generator,
    stop_at_eos: bool,
    states: list[torch.Tensor],
) -> Rollout:
    device = next(model.parameters()).device
    ids, mask = encode_prompts(tokenizer, prompts, device)
    eos = tokenizer.eos_token_id if stop_at_eos else None
    batch = ids.shape[0]
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    logprob = torch.zeros(batch, dtype=torch.float32, device=device)
    tokens, keep = [], []
    cache = {_cache_keyword(model): DynamicCache()}  # filled in place by each forward
    # a prompt repeated for a group is encoded once, and its cache shared by the group
    # (tokens and mask: a prompt that starts with the pad token is not its shorter twin)
    unique, inverse = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True)
    rows = torch.empty(unique.shape[0], dtype=torch.long, device=device)
    rows[inverse] = torch.arange(batch, device=device)  # a row of each distinct prompt
    out = model(
        input_ids=ids[rows],
        attention_mask=mask[rows],
        position_ids=_positions(mask[rows]),
        use_cache=True,
        logits_to_keep=1,
        **cache,
    )
    logits = out.logits[inverse]
    if unique.shape[0] < batch:
        next(iter(cache.values())).reorder_cache(inverse)
        if states:
            states[-1] = states[-1][inverse]
    position = _positions(mask)[:, -1:]
    for _ in range(max_new_tokens):
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        nxt = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        logprob += torch.where(alive, logp.gather(1, nxt[:, None]).squeeze(1), 0.0)
        keep.append(alive.clone())
        nxt = torch.where(alive, nxt, tokenizer.pad_token_id)
        tokens.append(nxt)
        if eos is not None:
            alive &= nxt != eos
        mask = torch.cat([mask, keep[-1].long()[:, None]], dim=1)
        position = position + 1
        if not alive.any() or len(tokens) == max_new_tokens:
            break
        out = model(
            input_ids=nxt[:, None],
            attention_mask=mask,
            position_ids=position,
            use_cache=True,
            **cache,
        )
        logits = out.logits
    completion = torch.stack(tokens, dim=1)
    cmask = torch.stack(keep, dim=1).float()
    texts = tokenizer.batch_decode(completion, skip_special_tokens=True)
    hidden = torch.stack(states, dim=1) if states else None  # (B, T, H)
    return Rollout(torch.cat([ids, completion], dim=1), mask, cmask, logprob, texts, hidden)


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, -1)`` at ``index`` (shape of ``index``), without a float copy.

    float32/float64 logits: the gathered logit minus the row's logsumexp. Lower precisions
    go one batch row at a time in float32, so the (B, T, V) tensor is never copied whole.
    """
    if logits.dtype in (torch.float32, torch.float64):
        picked = logits.gather(-1, index[..., None]).squeeze(-1)
        return picked - torch.logsumexp(logits, dim=-1)
    rows = [
        torch.log_softmax(row.float(), dim=-1).gather(-1, idx[..., None]).squeeze(-1)
        for row, idx in zip(logits, index, strict=True)
    ]
    return torch.stack(rows)


def sequence_logprobs(model: PreTrainedModel, rollout: Rollout) -> torch.Tensor:
    """Log pi(completion | prompt) for each row, differentiable when grad is enabled."""
    return token_logprobs(model, rollout).sum(-1)


def token_logprobs(model: PreTrainedModel, rollout: Rollout) -> torch.Tensor:
    """Log pi(token | prefix) at each completion position, (B, T), 0 past the completion."""
    t = rollout.completion_mask.shape[1]
    out = model(
        input_ids=rollout.input_ids,
        attention_mask=rollout.attention_mask,
        position_ids=_positions(rollout.attention_mask),
        logits_to_keep=t + 1,
    )
    token_logp = selective_log_softmax(out.logits[:, :-1], rollout.input_ids[:, -t:])  # (B, T)
    return token_logp * rollout.completion_mask
