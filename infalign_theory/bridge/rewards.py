"""Reward functions: a callable interface, VADER sentiment, and a programmatic toy reward.

A reward is any callable ``reward(prompts, completions) -> sequence of floats`` over lists of
strings of equal length. Rewards must be finite; ties are allowed (the calibration counts
them one half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Reward(Protocol):
    """A reward model: one finite float per (prompt, completion) pair."""

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> Sequence[float]:
        """Rewards, one per completion."""
        ...


def score(reward: Reward, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    """Call ``reward`` and check its answer: one finite float per completion."""
    out = np.asarray(reward(list(prompts), list(completions)), dtype=np.float64)
    if out.shape != (len(completions),):
        raise ValueError(
            f"reward must return one value per completion ({len(completions)}), "
            f"got shape {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError("reward returned a NaN or infinite value; rewards must be finite")
    return out


class VaderSentiment:
    """VADER's compound sentiment score of the completion, in [-1, 1] (``vaderSentiment``).

    The lexicon ships inside the ``vaderSentiment`` wheel; nothing is downloaded. With
    ``include_prompt=True`` the whole text (prompt + completion) is scored.
    """

    def __init__(self, *, include_prompt: bool = False) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("VaderSentiment needs the package vaderSentiment") from exc
        self._analyzer = SentimentIntensityAnalyzer()
        self.include_prompt = include_prompt

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Compound scores, one per completion."""
        texts = (
            [p + c for p, c in zip(prompts, completions, strict=True)]
            if self.include_prompt
            else list(completions)
        )
        return [float(self._analyzer.polarity_scores(t)["compound"]) for t in texts]


class WordCount:
    """The number of whitespace-separated occurrences of ``word`` in the completion.

    A programmatic reward with many ties: on completions of length L it takes L + 1 values.
    """

    def __init__(self, word: str) -> None:
        if not word or word.split() != [word]:
            raise ValueError(f"word must be one non-empty token without spaces, got {word!r}")
        self.word = word

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """Counts, one per completion."""
        return [float(c.split().count(self.word)) for c in completions]
