"""Every analysis in examples/ runs as a user would run it, and prints what it promises."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("compare_transforms", "optimal (Theorem 1)"),
        ("best_t", "points left"),
        ("calibration_samples", "K = 1"),
        ("reward_hacking", "hacked beyond KL"),
        ("plan_from_rewards", "train exp(t="),
    ],
)
def test_example_runs(name, expected, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"{name}.py"])
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert expected in out


def test_example_reward_file_is_what_its_script_writes(tmp_path, monkeypatch):
    module = runpy.run_path(str(EXAMPLES / "data" / "make_rewards.py"))
    monkeypatch.setitem(module["main"].__globals__, "__file__", str(tmp_path / "make_rewards.py"))
    module["main"]()
    assert (tmp_path / "rewards.csv").read_text() == (EXAMPLES / "data" / "rewards.csv").read_text()
