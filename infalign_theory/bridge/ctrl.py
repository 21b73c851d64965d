r"""The C and T of InfAlign-CTRL: calibrate each reward against its prompt, then transform it.

For a prompt x with reference rewards :math:`r(z_1), \dots, r(z_K)` of K base samples, a
response y gets

.. math:: \hat C(y) = \frac{1}{K}\sum_k \big(\mathbb 1\{r(y) > r(z_k)\}
          + \tfrac12 \mathbb 1\{r(y) = r(z_k)\}\big), \qquad R(y) = \Phi(\hat C(y)),

with the library's estimators (:func:`~infalign_theory.calibration.calibrate_empirical`)
and transform objects. The reference rewards are sampled and scored once per prompt and
reused for every step. Where the reward law under the base is known exactly (the
enumerable toy), :meth:`Calibrator.exact` calibrates with it instead.

:func:`trl_reward` packages the same pipeline as a reward function for TRL's trainers, with
the reference rewards as a dataset column.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._validate import choice, finite_array, integer
from ..calibration import ESTIMATORS, calibrate, calibrate_empirical
from ..laws import ContinuousLaw, DiscreteLaw, RewardLaw
from ..planning import RLOO_OBJECTIVE
from ..transforms import Transform
from .evaluation import sample_pool
from .rewards import Reward, score


class Calibrator:
    """Calibrated rewards per prompt: from K reference rewards each, or from exact laws.

    Parameters
    ----------
    references : array_like, shape (P, K)
        The rewards of K base samples for each of P prompts.
    estimator : {"midrank", "smoothed"}
        See :func:`~infalign_theory.calibration.estimate`.
    """

    def __init__(self, references: Any, estimator: str = "midrank") -> None:
        ref = finite_array(references, "references")
        if ref.ndim != 2 or ref.shape[1] < 1:
            raise ValueError("references must have shape (prompts, K) with K >= 1")
        self.estimator = choice(estimator, "estimator", ESTIMATORS)
        self.references: np.ndarray | None = ref
        self.laws: list[RewardLaw] | None = None

    @classmethod
    def exact(cls, laws: Sequence[RewardLaw]) -> Calibrator:
        """Exact calibration C(r) = P(R < r) + P(R = r)/2 under each prompt's base law."""
        if not laws or not all(isinstance(law, DiscreteLaw | ContinuousLaw) for law in laws):
            raise ValueError("laws must be a non-empty list of DiscreteLaw or ContinuousLaw")
        self = cls.__new__(cls)
        self.estimator = "exact"
        self.references = None
        self.laws = list(laws)
        return self

    @property
    def prompts(self) -> int:
        """The number of prompts covered."""
        return len(self.laws) if self.laws is not None else len(self.references)  # type: ignore[arg-type]

    def digest(self) -> str:
        """A short fingerprint of the estimator and the references (or the exact laws)."""
        h = hashlib.sha256(self.estimator.encode())
        if self.references is not None:
            h.update(np.ascontiguousarray(self.references).tobytes())
        for law in self.laws or ():
            if isinstance(law, DiscreteLaw):
                h.update(law.values.tobytes() + law.probs.tobytes())
            else:
                h.update(law.name.encode())  # type: ignore[union-attr]
        return f"{self.estimator}:{h.hexdigest()[:16]}"

    @property
    def reaches_ends(self) -> bool:
        """Whether a calibrated reward can be exactly 0 or 1 (midrank from samples)."""
        return self.estimator == "midrank"

    def __call__(self, prompt_index: Any, rewards: Any) -> np.ndarray:
        """Calibrated rewards of ``rewards[i]`` against prompt ``prompt_index[i]``."""
        idx = np.asarray(prompt_index, dtype=np.int64)
        r = finite_array(rewards, "rewards")
        if idx.shape != r.shape or idx.ndim != 1:
            raise ValueError("prompt_index and rewards must be 1-D arrays of the same length")
        if idx.size and (idx.min() < 0 or idx.max() >= self.prompts):
            raise ValueError(f"prompt_index must lie in [0, {self.prompts - 1}]")
        out = np.empty_like(r)
        for p in np.unique(idx):
            sel = idx == p
            if self.laws is not None:
                out[sel] = calibrate(self.laws[p], r[sel])
            else:
                out[sel] = calibrate_empirical(r[sel], self.references[p], self.estimator)  # type: ignore[index]
        return out


def transformed(transform: Transform, calibrated: np.ndarray) -> np.ndarray:
    """Phi(C), refusing a transform that is infinite where the calibration lands."""
    out = np.asarray(transform(calibrated), dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"transform {transform.name!r} is infinite at a calibrated reward of "
            f"{calibrated[~np.isfinite(out)][0]!r}; with rewards calibrated from samples use "
            "estimator='smoothed', which keeps C inside (0, 1)"
        )
    return out


def check_transform(transform: Transform, calibrator: Calibrator) -> None:
    """Fail early, before any sampling, when Phi would be infinite at C = 0 or 1."""
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    if calibrator.reaches_ends:
        transformed(transform, np.array([0.0, 1.0]))


@torch.no_grad()
def reference_rewards(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward: Reward,
    k: int,
    *,
    max_new_tokens: int,
    generator: torch.Generator,
    batch_size: int = 64,
    stop_at_eos: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Rewards of K base samples for each prompt, shape (P, K): sampled and scored once."""
    k = integer(k, "k", 1)
    pool = sample_pool(
        model, tokenizer, prompts, reward, k, max_new_tokens=max_new_tokens,
        generator=generator, batch_size=batch_size, stop_at_eos=stop_at_eos,
        progress=progress, desc="reference samples",
    )  # fmt: skip
    return pool.rewards


def trl_reward(
    reward: Reward,
    transform: Transform,
    *,
    estimator: str = "midrank",
    column: str = "reference_rewards",
) -> Callable[..., list[float]]:
    """The CTRL reward as a TRL reward function: ``f(prompts, completions, **columns)``.

    Each dataset row carries its prompt's K reference rewards in ``column`` (a list of
    floats, e.g. from :func:`reference_rewards`); every completion is scored by ``reward``,
    calibrated against its row's references with ``estimator`` and transformed by
    ``transform``. Works with any trainer that passes dataset columns to reward functions
    as keyword lists (TRL's ``RLOOTrainer`` and ``GRPOTrainer``).
    """
    choice(estimator, "estimator", ESTIMATORS)
    if not isinstance(transform, Transform):
        raise ValueError(f"transform must be a Transform, got {transform!r}")
    if estimator == "midrank":
        transformed(transform, np.array([0.0, 1.0]))

    def ctrl_reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        if column not in columns:
            raise ValueError(f"the dataset must have a column {column!r} of reference rewards")
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        raw = score(reward, [str(p) for p in prompts], texts)
        refs = columns[column]
        cal = np.array(
            [calibrate_empirical([r], ref, estimator)[0] for r, ref in zip(raw, refs, strict=True)]
        )
        return transformed(transform, cal).tolist()

    ctrl_reward.__name__ = f"ctrl_{transform.name.replace(' ', '_')}"
    return ctrl_reward


#: TRL 1.16 still uses transformers' ``gradient_checkpointing*`` names, deprecated for v6, in
#: its config and trainer: warnings about TRL's code, not the user's. :func:`trl_rloo_config`
#: and ``experiments/trl_ctrl.py`` silence these (and only these).
TRL_DEPRECATIONS = r"`(is_)?gradient_checkpointing\w*` is deprecated"


def trl_rloo_config(
    output_dir: str,
    *,
    prompts_per_step: int,
    group_size: int,
    max_new_tokens: int,
    beta: float,
    learning_rate: float,
    steps: int,
    **overrides: Any,
) -> Any:
    """TRL's ``RLOOConfig`` for the objective the bridge's loop optimises.

    One update per batch (``num_iterations=1``), raw leave-one-out advantages (no
    normalisation), temperature-1 sampling, a constant learning rate and the same beta,
    group size, prompts per step and completion length as the bridge's
    :class:`~infalign_theory.bridge.loop.CTRLConfig`; with :func:`trl_reward` as the
    reward, ``RLOOTrainer`` then maximises E[Phi(C^)] - beta KL.
    ``overrides`` go to ``RLOOConfig`` as they are (devices, seeds, logging). Needs ``trl``.
    """
    from trl import RLOOConfig

    settings: dict[str, Any] = dict(
        output_dir=output_dir,
        per_device_train_batch_size=prompts_per_step * group_size,
        num_generations=group_size,
        max_completion_length=max_new_tokens,
        beta=beta,
        **RLOO_OBJECTIVE,  # one update per batch, raw advantages, temperature 1, constant lr
        learning_rate=learning_rate,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TRL_DEPRECATIONS, category=FutureWarning)
        return RLOOConfig(**{**settings, **overrides})
