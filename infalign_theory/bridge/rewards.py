"""Reward functions: a callable interface, VADER sentiment, and a programmatic toy reward.

A reward is any callable ``reward(prompts, completions) -> sequence of floats`` over lists of
strings of equal length. Rewards must be finite; ties are allowed (the calibration counts
them one half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

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

    #: Edges of the valence bins of :meth:`token_features` (VADER's scale is [-4, 4]); finer
    #: where the strongest words are, which decide the top of a prompt's reward law.
    VALENCE_EDGES = (0.0, 1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 4.0)

    def token_features(self, tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and features that describe what this reward responds to, per token.

        A token counts when its text, stripped and lower-cased, is a word of VADER's lexicon,
        a negation, a booster, "but" or a run of exclamation marks. Its features (0/1): one
        per valence bin, positive and negative (edges :attr:`VALENCE_EDGES`, a word's bin is
        the one its absolute valence falls in, upper edge included), then negation, booster,
        "but", exclamation. One-hot bins, not the valence itself, because a word's effect on
        the compound score, and more so on a prompt's calibrated reward, is not linear in
        its valence. For :class:`~infalign_theory.bridge.head.FeatureHead`.

        Returns
        -------
        token_ids : ndarray of int64, shape (k,)
        features : ndarray of float32, shape (k, 2 (len(VALENCE_EDGES) - 1) + 4)
        """
        from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE

        lexicon = self._analyzer.lexicon
        edges = np.asarray(self.VALENCE_EDGES)
        bins = len(edges) - 1
        ids, rows = [], []
        for i in range(len(tokenizer)):
            word = tokenizer.decode([i]).strip().lower()
            if not word:
                continue
            row = np.zeros(2 * bins + 4, dtype=np.float32)
            valence = lexicon.get(word, 0.0)
            if valence != 0.0:
                b = min(max(int(np.searchsorted(edges, abs(valence))) - 1, 0), bins - 1)
                row[b + (bins if valence < 0 else 0)] = 1.0
            row[2 * bins :] = [word in NEGATE, word in BOOSTER_DICT, word == "but",
                               set(word) == {"!"}]  # fmt: skip
            if row.any():
                ids.append(i)
                rows.append(row)
        return np.array(ids, dtype=np.int64), np.array(rows, dtype=np.float32).reshape(
            -1, 2 * bins + 4
        )


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

    def token_features(self, tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
        """The tokens whose text, stripped, is ``word``, each with one feature (1).

        For :class:`~infalign_theory.bridge.head.FeatureHead`; raises ValueError when no token
        of ``tokenizer`` is the word.
        """
        ids = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).strip() == self.word]
        if not ids:
            raise ValueError(f"no token of the tokenizer is the word {self.word!r}")
        return np.array(ids, dtype=np.int64), np.ones((len(ids), 1), dtype=np.float32)
