"""`--procedure soft-bon` and `--procedure threshold` on the command line."""

from __future__ import annotations

import json

import pytest

import infalign_theory as ia
from infalign_theory.cli import main

LAW = ["--law", "discrete", "--values", "0,1,1,2", "--probs", "0.25,0.25,0.25,0.25"]


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("options", "procedure"),
    [(["--procedure", "soft-bon", "--n", "4", "--temperature", "0.2"], ia.soft_best_of(4, 0.2)),
     (["--procedure", "threshold", "--n", "4", "--tau", "0.7"], ia.threshold_sampling(4, 0.7))],
)  # fmt: skip
def test_evaluate_and_curve_match_the_library(capsys, options, procedure):
    code, out, _ = run(capsys, "evaluate", *options, "--transform", "identity", "--beta", "0.5",
                       *LAW, "--json")  # fmt: skip
    assert code == 0
    got = json.loads(out)
    law = ia.DiscreteLaw([0, 1, 1, 2], [0.25] * 4)
    pol = ia.tilt(ia.Identity(), 0.5, law)
    assert got["win_rate"] == ia.win_rate(pol, procedure)
    assert got["procedure"] == procedure.name and got["n"] == 4 and got["k"] is None
    assert {"beta", "kl", "standard_win_rate", "transform", "law", "against"} <= set(got)
    code, out, _ = run(capsys, "curve", *options, "--transform", "identity", "--betas", "0.5,2",
                       *LAW, "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["win_rate"][0] == ia.win_rate(pol, procedure)


@pytest.mark.parametrize(
    ("options", "flag"),
    [(["--procedure", "soft-bon", "--n", "4"], "--temperature"),
     (["--procedure", "soft-bon", "--n", "4", "--temperature", "0"], "--temperature"),
     (["--procedure", "soft-bon", "--n", "4", "--temperature", "nan"], "--temperature"),
     (["--procedure", "threshold", "--n", "4", "--tau", "1.5"], "--tau"),
     (["--procedure", "threshold", "--n", "4"], "--tau"),
     (["--procedure", "threshold", "--n", "0", "--tau", "0.5"], "--n"),
     (["--procedure", "bon", "--n", "4", "--tau", "0.5"], "--tau")],
)  # fmt: skip
def test_invalid_options_exit_2_naming_them(capsys, options, flag):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", *options, "--transform", "identity", "--beta", "1"])
    assert exc.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
