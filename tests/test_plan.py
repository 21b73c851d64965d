"""`ia.plan` and `infalign plan`: a CTRL recipe from a reward file, exact on the file's laws.

The oracle below reads the CSV with the csv module and computes every number with mpmath at
40 digits from the definitions (empirical law per prompt, mid-rank calibration, the tilt
q exp(Phi(C)/beta), KL, ties counted one half, W_T with g(F) = F^N on both sides); it imports
nothing from the package.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest

import infalign_theory as ia
from infalign_theory.cli import main

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ROOT / "examples" / "data" / "rewards.csv"
mp.mp.dps = 40


# ----------------------------------------------------------------------------------------
# The independent oracle.
# ----------------------------------------------------------------------------------------
def oracle_laws(path):
    groups = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            groups[row["prompt"]].append(mp.mpf(row["reward"]))
    laws = []
    for values in groups.values():
        levels = sorted(set(values))
        laws.append((levels, [mp.mpf(values.count(v)) / len(values) for v in levels]))
    return laws


def midranks(q):
    out, below = [], mp.mpf(0)
    for qj in q:
        out.append(below + qj / 2)
        below += qj
    return out


def win(p, q, g):
    """P(T(pi) > T(ref)) + P(=)/2 on levels, with CDF map g on both sides."""
    P = [sum(p[: j + 1]) for j in range(len(p))]
    F = [sum(q[: j + 1]) for j in range(len(q))]
    total = mp.mpf(0)
    for j in range(len(p)):
        x = g(P[j]) - (g(P[j - 1]) if j else 0)
        b_lo = g(F[j - 1]) if j else mp.mpf(0)
        total += x * (b_lo + (g(F[j]) - b_lo) / 2)
    return total


def phi(t):
    t = mp.mpf(t)
    return (lambda u: u) if t == 0 else (lambda u: mp.expm1(t * u) / mp.expm1(t))


def tilt_numbers(laws, transform, beta, g):
    """Prompt-averaged KL, W_T and W_std of the tilt q exp(Phi(C)/beta), one beta."""
    beta = mp.mpf(beta)
    kl = w_t = w_std = mp.mpf(0)
    for _, q in laws:
        c = midranks(q)
        weights = [qj * mp.exp(transform(cj) / beta) for qj, cj in zip(q, c, strict=True)]
        z = sum(weights)
        p = [w / z for w in weights]
        kl += sum(pj * mp.log(pj / qj) for pj, qj in zip(p, q, strict=True))
        w_t += win(p, q, g)
        w_std += sum(pj * cj for pj, cj in zip(p, c, strict=True))
    n = len(laws)
    return float(kl / n), float(w_t / n), float(w_std / n)


def best_of(n):
    return lambda F: F**n


# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bon8():
    return ia.plan(REWARDS, ia.best_of(8), kl=1.0)


def test_plan_numbers_are_exact_on_the_files_laws(bon8):
    laws = oracle_laws(REWARDS)
    assert bon8.prompts == len(laws) and bon8.samples == 210
    kl, w_t, w_std = tilt_numbers(laws, phi(bon8.t), bon8.beta, best_of(8))
    assert abs(kl - 1.0) < 1e-12 and abs(bon8.kl - kl) < 1e-12
    assert abs(bon8.win_rate - w_t) < 1e-12 and abs(bon8.standard_win_rate - w_std) < 1e-12
    ident = bon8.identity
    kl, w_t, w_std = tilt_numbers(laws, phi(0), ident.beta, best_of(8))
    assert abs(kl - 1.0) < 1e-12 and abs(ident.kl - kl) < 1e-12
    assert abs(ident.win_rate - w_t) < 1e-12 and abs(ident.standard_win_rate - w_std) < 1e-12
    # what the plan claims: the exponential beats the identity, the optimum beats both
    assert bon8.identity.win_rate < bon8.win_rate <= bon8.optimum.win_rate + 1e-12
    assert bon8.notes == ()


def test_plans_optimum_is_theorem_1_with_one_beta_for_all_prompts(bon8):
    """Each prompt's optimum is the tilt by its own first variation at the shared beta."""
    laws = oracle_laws(REWARDS)
    beta = mp.mpf(bon8.optimum.beta)
    g = best_of(8)
    kl = w_t = mp.mpf(0)
    for (_, q), pol in zip(laws, bon8.optimum_policies, strict=True):
        p = [mp.mpf(float(x)) for x in pol.probs]

        def w_of(x, i, p=p, q=q):
            moved = list(p)
            moved[i] = x
            return win(moved, q, g)

        # R_i = dW_T/dp_i (the first variation); the optimum is q_i exp(R_i / beta) / Z
        r = [mp.diff(lambda x, i=i: w_of(x, i), p[i]) for i in range(len(p))]
        logs = [mp.log(pj / qj) - ri / beta for pj, qj, ri in zip(p, q, r, strict=True)]
        assert float(max(logs) - min(logs)) < 1e-8
        kl += sum(pj * mp.log(pj / qj) for pj, qj in zip(p, q, strict=True))
        w_t += win(p, q, g)
    assert abs(float(kl / len(laws)) - 1.0) < 1e-9
    assert abs(float(w_t / len(laws)) - bon8.optimum.win_rate) < 1e-9


def test_plan_json_from_the_command_line(capsys, bon8):
    args = ["plan", "--rewards", str(REWARDS), "--procedure", "bon", "--n", "8", "--kl", "1"]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"transform", "t", "beta", "kl", "win_rate", "standard_win_rate"} <= set(data)
    assert set(data["identity"]) >= {"beta", "kl", "win_rate", "standard_win_rate"}
    assert data["t"] == bon8.t and data["win_rate"] == bon8.win_rate
    assert data["optimum"]["win_rate"] == bon8.optimum.win_rate
    assert data["trl"]["config"]["beta"] == bon8.beta
    assert data["trl"]["reward"]["transform"] == f"Exponential({bon8.t!r})"
    # the printed numbers themselves, recomputed by the oracle at the printed t and beta
    laws = oracle_laws(REWARDS)
    for row, transform in ((data, phi(data["t"])), (data["identity"], phi(0))):
        kl, w_t, w_std = tilt_numbers(laws, transform, row["beta"], best_of(8))
        assert abs(row["kl"] - kl) < 1e-12 and abs(kl - 1.0) < 1e-12
        assert abs(row["win_rate"] - w_t) < 1e-12
        assert abs(row["standard_win_rate"] - w_std) < 1e-12
    paper_beta = mp.mpf(data["beta"]) * abs(mp.expm1(mp.mpf(data["t"])))  # beta' = beta |e^t - 1|
    assert abs(data["paper_beta"] / float(paper_beta) - 1.0) < 1e-14


def test_plan_table_and_jsonl_input(tmp_path, capsys):
    groups = {
        "a": [0.0, 1.0, 1.0, 2.0, 0.5],
        "b": [3.0, 3.0, -1.0],
        "c": [0.1, 0.2, 0.3, 0.3, 0.3, 0.9],
    }
    path = tmp_path / "r.jsonl"
    path.write_text(
        "\n".join(json.dumps({"prompt": k, "reward": v}) for k, vs in groups.items() for v in vs)
    )
    read = ia.read_rewards(path)
    assert list(read) == list(groups)
    assert all(read[k].tolist() == v for k, v in groups.items())
    args = ["plan", "--rewards", str(path), "--procedure", "won", "--n", "3", "--kl", "0.3"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "train this" in text and "identity" in text and "trl_rloo_config" in text
    assert "Exponential(-" in text  # Worst-of-N wants the low rewards weighted


def test_sampling_plan_is_the_identity_and_its_optimum_is_gibbs():
    p = ia.plan(REWARDS, ia.sampling(), kl=0.5)
    assert p.t == 0.0  # the identity is optimal for the standard win rate
    assert p.optimum.win_rate == pytest.approx(p.identity.win_rate, abs=1e-9)
    # under sampling W_T is W_std; the two routes (order-statistic sums, E[C]) agree to rounding
    assert p.win_rate == pytest.approx(p.standard_win_rate, abs=4e-16)


def test_plan_with_calibration_samples_uses_the_transform_seen_with_k():
    p = ia.plan(REWARDS, ia.best_of(4), kl=0.5, calibration_samples=8)
    seen = ia.SampleCalibrated(p.transform, 8)
    pols = [ia.tilt(seen, p.beta, law) for law in p.laws]
    assert np.mean([ia.kl(x) for x in pols]) == pytest.approx(0.5, rel=1e-12)
    assert np.mean([ia.win_rate(x, ia.best_of(4)) for x in pols]) == pytest.approx(
        p.win_rate, abs=1e-14
    )
    assert p.to_dict()["trl"]["reward"]["references_per_prompt"] == 8


def test_plan_at_a_price_of_kl_spends_what_the_optimum_spends():
    p = ia.plan(REWARDS, ia.best_of(4), beta=0.05)
    assert p.optimum.beta == 0.05 and p.kl == pytest.approx(p.kl_budget, rel=1e-12)
    assert p.optimum.kl == p.kl_budget


@pytest.mark.parametrize(
    "text, message",
    [
        ("prompt,reward\na,1\na,2\nb,3\n", "line 4: prompt 'b' has 1 sample"),
        ("prompt,reward\na,1\na,nan\n", "line 3: reward must be a finite number, got 'nan'"),
        ("prompt,reward\na,1\na,\n", "line 3: reward must be a finite number"),
        ("prompt,score\na,1\n", "line 1: missing column 'reward'"),
        ("prompt,reward\na,1,2\n", "line 2: 3 fields"),
        ("", "empty"),
    ],
)
def test_bad_reward_files_are_refused_naming_the_line(tmp_path, capsys, text, message):
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ia.plan(str(path), ia.best_of(4), kl=1.0)
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--rewards", str(path), "--kl", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "argument --rewards" in err and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"prompt": "a", "reward": 1}', '{"prompt": "a"}'], "line 2: missing key 'reward'"),
        (['{"prompt": "a", "reward": 1}', "[1, 2]"], "line 2: each line must be an object"),
        (['{"prompt": "a", "reward": true}', '{"prompt": "a", "reward": 1}'], "line 1: reward"),
        (['{"prompt": "a", "reward": NaN}'], "line 1: reward must be a finite number"),
        (['{"prompt": "a", "reward": 1', ""], "line 1: not valid JSON"),
    ],
)
def test_bad_jsonl_files_are_refused_naming_the_line(tmp_path, lines, message):
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=message):
        ia.plan(str(path), ia.best_of(4), kl=1.0)


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--kl", "5"], "--kl"),  # beyond the average KL of keeping only the top rewards
        (["--kl", "1", "--procedure", "sampling", "--n", "4"], "--n"),
        (["--kl", "1", "--k", "2"], "--k"),
        (["--kl", "1", "--estimator", "smoothed"], "--estimator"),
        (["--kl", "1", "--beta", "1"], "--beta"),
        (["--kl", "1", "--transform", "exp"], "--transform"),
    ],
)
def test_plan_options_that_do_not_apply_are_refused(capsys, extra, flag):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--rewards", str(REWARDS), *extra])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and flag in err and len(err.strip().splitlines()) == 1


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one of kl and beta"):
        ia.plan(REWARDS, ia.best_of(4))
    with pytest.raises(ValueError, match="procedure"):
        ia.plan(REWARDS, 4, kl=1.0)
    with pytest.raises(ValueError, match="estimator is only used with calibration_samples"):
        ia.plan(REWARDS, ia.best_of(4), kl=1.0, estimator="smoothed")
    with pytest.raises(ValueError, match="every prompt's samples are tied"):
        ia.plan({"a": [1.0, 1.0]}, ia.best_of(4), kl=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        ia.plan({"a": [1.0, 2.0], "b": [3.0]}, ia.best_of(4), kl=0.1)


def test_a_saturated_optimum_is_reported_below_the_budget_with_a_note():
    # Worst-of-32 on two small prompts: the optimum's win rate reaches 1 - 1e-10 before KL 1.2
    p = ia.plan({"a": [0, 1, 2, 3, 4, 5], "b": [1, 2, 2, 3, 9, 9]}, ia.worst_of(32), kl=1.2)
    assert p.kl == pytest.approx(1.2, rel=1e-12)
    assert p.optimum.kl < 1.2 and p.optimum.win_rate >= 1.0 - 1e-10
    assert p.win_rate <= p.optimum.win_rate + 1e-10
    assert len(p.notes) == 1 and "more KL cannot raise it" in p.notes[0]
