"""Each experiment script runs end to end with --quick, writing its picture and numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_fig2_quick(tmp_path):
    png = load("fig2").main(["--quick", "--out", str(tmp_path)])
    assert png.exists() and png.stat().st_size > 10_000
    data = json.loads((tmp_path / "fig2.json").read_text())
    assert data["package_version"] and data["parameters"]["n"] == 4
    for panel in ("best", "worst"):
        curves = data["panels"][panel]["curves"]
        names = [c["transform"] for c in curves]
        assert names[:2] == ["identity", "log"] and len(names) >= 4
        for c in curves:
            assert c["kl"][0] == 0.0 and c["kl"][-1] >= 3.0
            assert all(0.0 <= w <= 1.0 for w in c["win_rate"])
    point = data["panels"]["best"]["best_of_n_policy"]
    assert point["kl"] == pytest.approx(math.log(4) - 3 / 4, abs=1e-13)
    assert point["win_rate"] == pytest.approx(0.8, abs=1e-13)


def test_committed_fig2_is_current():
    # The committed numbers are what the library computes now, curve by curve.
    import infalign_theory as ia

    data = json.loads((ROOT / "paper_figures" / "fig2.json").read_text())
    for panel in data["panels"].values():
        proc = ia.best_of(4) if panel["procedure"] == "best-of-4" else ia.worst_of(4)
        for c in panel["curves"]:
            name = c["transform"]
            tr = (
                ia.Identity()
                if name == "identity"
                else ia.Log()
                if name == "log"
                else ia.Exponential(float(name[len("exp(t=") : -1]))
            )
            i = len(c["kl"]) // 2
            fresh = ia.tradeoff_curve(tr, proc, kls=[c["kl"][i]])
            assert fresh.win_rate[0] == pytest.approx(c["win_rate"][i], abs=1e-12)
