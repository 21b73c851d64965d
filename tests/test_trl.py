"""Scaling out through TRL: the CTRL reward trains inside RLOOTrainer (skipped without TRL)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]


def test_rloo_trainer_runs_with_the_ctrl_reward(tmp_path):
    # no warning filter: the example must run without warnings that are not the user's
    spec = importlib.util.spec_from_file_location("trl_ctrl", ROOT / "experiments" / "trl_ctrl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["trl_ctrl"] = module
    spec.loader.exec_module(module)
    trainer = module.main(
        ["--model", "tiny", "--steps", "3", "--references", "4", "--max-new-tokens", "5",
         "--transform", "exp", "--t", "5", "--lr", "1e-3", "--output-dir", str(tmp_path)]
    )  # fmt: skip
    logs = [h for h in trainer.state.log_history if "rewards/ctrl_exp(t=5)/mean" in h]
    assert len(logs) == 3
    rewards = [h["rewards/ctrl_exp(t=5)/mean"] for h in logs]
    assert all(0.0 <= r <= 1.0 for r in rewards)  # Phi_t maps calibrated rewards into [0, 1]
    assert logs[-1]["kl"] != 0.0  # the policy moved away from the reference
    json.dumps(trainer.state.log_history)


def test_plans_trl_settings_are_those_of_trl_rloo_config():
    import infalign_theory as ia
    from infalign_theory.bridge import trl_rloo_config

    plan = ia.plan({"a": [0.0, 1.0, 1.0, 2.0], "b": [0.0, 3.0, 5.0]}, ia.best_of(4), kl=0.2)
    settings = plan.trl_settings()
    config = trl_rloo_config(
        "out", prompts_per_step=1, group_size=2, max_new_tokens=4, beta=plan.beta,
        learning_rate=1e-5, steps=1, use_cpu=True,
    )  # fmt: skip
    for key, value in settings["config"].items():
        assert getattr(config, key) == value, key
