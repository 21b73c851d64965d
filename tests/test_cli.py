"""The `infalign` command: JSON keys, agreement with the library, one-line errors (exit 2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import infalign_theory as ia
from infalign_theory.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_json_matches_the_library(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--procedure",
        "bon",
        "--n",
        "4",
        "--transform",
        "exp",
        "--t",
        "10",
        "--kl",
        "1",
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert {"beta", "kl", "win_rate", "standard_win_rate"} <= set(data)
    pol = ia.tilt(ia.Exponential(10.0), data["beta"])
    assert data["kl"] == pytest.approx(1.0, rel=1e-11)
    assert data["win_rate"] == ia.win_rate(pol, ia.best_of(4))
    assert data["standard_win_rate"] == ia.standard_win_rate(pol)


def test_evaluate_on_a_discrete_law_against_one_sample(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--procedure",
        "won",
        "--n",
        "3",
        "--transform",
        "raw",
        "--beta",
        "0.7",
        "--law",
        "discrete",
        "--values",
        "0,1,2",
        "--probs",
        "0.5,0.3,0.2",
        "--against",
        "sample",
        "--json",
    )
    data = json.loads(out)
    law = ia.DiscreteLaw([0, 1, 2], [0.5, 0.3, 0.2])
    pol = ia.tilt(ia.Quantile(law), 0.7, law)
    assert data["win_rate"] == pytest.approx(ia.win_rate(pol, ia.worst_of(3), against="sample"))
    assert data["against"] == "sample" and data["law"] == "discrete"


def test_order_statistic_and_csv(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--procedure",
        "order",
        "--k",
        "2",
        "--n",
        "5",
        "--transform",
        "log",
        "--beta",
        "0.5",
    )
    header, row = out.strip().splitlines()
    assert header.startswith("beta,kl,win_rate,standard_win_rate")
    assert float(row.split(",")[1]) == pytest.approx(math.log(3) - 2 / 3)


def test_curve_json_and_csv(capsys):
    code, out, _ = run(
        capsys,
        "curve",
        "--procedure",
        "won",
        "--n",
        "4",
        "--transform",
        "exp",
        "--t",
        "-10",
        "--kl-max",
        "2",
        "--points",
        "5",
        "--json",
    )
    data = json.loads(out)
    assert data["kl"][0] == 0.0 and data["beta"][0] is None
    assert data["kl"][-1] == pytest.approx(2.0, rel=1e-11) and len(data["win_rate"]) == 5
    code, out, _ = run(capsys, "curve", "--transform", "identity", "--betas", "1,0.1")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0] == "beta,kl,win_rate,standard_win_rate"


@pytest.mark.parametrize(
    "args, flag",
    [
        (["evaluate", "--n", "0", "--beta", "1"], "--n"),
        (["evaluate", "--beta", "-1"], "--beta"),
        (["evaluate", "--beta", "0"], "--beta"),
        (["evaluate", "--kl", "nan"], "--kl"),
        (["evaluate", "--transform", "exp", "--beta", "1"], "--t"),
        (["evaluate", "--transform", "exp", "--t", "inf", "--beta", "1"], "--t"),
        (
            [
                "evaluate",
                "--beta",
                "1",
                "--law",
                "discrete",
                "--values",
                "0,1",
                "--probs",
                "0.5,0.6",
            ],
            "--values/--probs",
        ),
        (
            ["evaluate", "--beta", "1", "--law", "discrete", "--values", "0,1", "--probs", "-1,2"],
            "--probs",
        ),
        (
            ["evaluate", "--kl", "3", "--law", "discrete", "--values", "0,1", "--probs", "0.5,0.5"],
            "--kl",
        ),
        (["evaluate", "--procedure", "order", "--n", "3", "--beta", "1"], "--k"),
        (["evaluate", "--procedure", "order", "--k", "4", "--n", "3", "--beta", "1"], "--k"),
        (["evaluate", "--transform", "raw", "--beta", "1"], "--transform"),
        (["evaluate", "--procedure", "best", "--beta", "1"], "--procedure"),
        (["evaluate"], "--beta"),
        (["curve", "--betas", "1,-2"], "--betas"),
    ],
)
def test_invalid_arguments_exit_2_with_one_line_naming_the_argument(capsys, args, flag):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert len(err.strip().splitlines()) == 1 and flag in err


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--law", "discrete", "--values", "0,1", "--probs", "-0.5,1.5"], "must be >= 0"),
        (["--law", "discrete", "--values", "-inf,1", "--probs", "0.5,0.5"], "must be finite"),
        (["--transform", "exp", "--t", "-infinity"], "must be finite"),
    ],
)
def test_values_starting_with_a_minus_are_checked_not_taken_for_flags(capsys, args, reason):
    # Found in review: argparse took "-0.5,1.5" for an option ("expected one argument").
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--beta", "1", *args])
    assert exc.value.code == 2 and reason in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "infalign_theory.cli", "evaluate", "--beta", "0.5", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["kl"] > 0


def test_optimal_transform_and_solve(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--procedure",
        "bon",
        "--n",
        "4",
        "--transform",
        "optimal",
        "--kl",
        "1",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["transform"] == "optimal"
    assert data["kl"] == pytest.approx(1.0, abs=1e-10)
    best_exp = ia.tradeoff_curve(ia.Exponential(20.0), ia.best_of(4), kls=[1.0]).win_rate[0]
    assert data["win_rate"] > best_exp
    code, out, _ = run(capsys, "solve", "--procedure", "won", "--n", "3", "--kl", "0.5", "--json")
    sol = json.loads(out)
    assert sol["converged"] and sol["kl"] == pytest.approx(0.5, abs=1e-10)
    assert {"residual", "iterations", "stationary_points", "transform_values"} <= set(sol)
    code, out, _ = run(capsys, "solve", "--procedure", "bon", "--n", "2", "--beta", "0.3")
    assert "converged" in out and "transform (normalised R" in out
    code, out, _ = run(capsys, "curve", "--transform", "optimal", "--kls", "0,0.5,1", "--json")
    assert json.loads(out)["transform"] == "optimal"


def test_optimal_errors_name_the_argument(capsys):
    for args, flag in (
        (["curve", "--transform", "optimal", "--betas", "1"], "--betas"),
        (
            ["solve", "--kl", "5", "--law", "discrete", "--values", "0,1", "--probs", "0.5,0.5"],
            "--kl",
        ),
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and flag in err and len(err.strip().splitlines()) == 1


def test_calibration_samples(capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--transform",
        "exp",
        "--t",
        "10",
        "--kl",
        "1",
        "--calibration-samples",
        "8",
        "--json",
    )
    data = json.loads(out)
    expected = ia.tradeoff_curve(
        ia.SampleCalibrated(ia.Exponential(10.0), 8), ia.best_of(4), kls=[1.0]
    ).win_rate[0]
    assert data["win_rate"] == pytest.approx(expected, abs=1e-12)
    for args, flag in (
        (
            ["evaluate", "--transform", "log", "--beta", "1", "--calibration-samples", "4"],
            "--estimator",
        ),
        (["evaluate", "--beta", "1", "--estimator", "smoothed"], "--estimator"),
        (
            ["evaluate", "--transform", "optimal", "--kl", "1", "--calibration-samples", "4"],
            "--calibration-samples",
        ),
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and flag in err


@pytest.mark.parametrize(
    "args, flag",
    [
        (["evaluate", "--procedure", "sampling", "--n", "4", "--beta", "1"], "--n"),
        (["evaluate", "--procedure", "bon", "--k", "2", "--beta", "1"], "--k"),
        (["curve", "--kls", "0,1", "--points", "5"], "--points"),
        (["curve", "--betas", "1,2", "--points", "5"], "--points"),
        (["solve", "--transform", "exp", "--kl", "1"], "--transform"),
        (["solve", "--calibration-samples", "4", "--kl", "1"], "--calibration-samples"),
        (["bridge", "--procedure", "sampling", "--n", "4", "--beta", "1"], "--n"),
        (["verify", "--instance", "0", "--examples", "5"], "--examples"),
    ],
)
def test_options_that_do_not_apply_are_refused(capsys, args, flag):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and flag in err and len(err.strip().splitlines()) == 1


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_help_teaches_every_subcommand_and_option():
    from infalign_theory.cli import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "examples:" in top and "infalign plan --rewards" in top and "``" not in top
    for name, sub in _subparsers(parser).items():
        assert sub.description and "``" not in sub.description, name
        assert "example:" in sub.format_help(), name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    # the first line read, then the pipe closed: no traceback, the status of SIGPIPE
    with subprocess.Popen(
        [sys.executable, "-m", "infalign_theory.cli", "curve", "--betas", ",".join(["1"] * 20000)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait() == 141 and err == ""
