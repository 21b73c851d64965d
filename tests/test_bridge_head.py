"""The tilted output layer on a frozen trunk, and the training loss that uses its exact KL.

The reference for the loss is exact enumeration on the toy: every completion's probability
under the policy and the base, so J = E_pi[Phi] - beta KL and its gradient are finite sums.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import infalign_theory as ia  # noqa: E402
from infalign_theory.bridge import (  # noqa: E402
    Calibrator,
    CTRLConfig,
    CTRLTrainer,
    make_toy,
    sample,
    sequence_logprobs,
    tiny_model,
    word_tokenizer,
)
from infalign_theory.bridge.head import (  # noqa: E402
    FeatureHead,
    TiltedHead,
    TokenLogProbs,  # noqa: E402
    attach_feature_head,
    attach_tilted_head,
    rollout_logprobs,
)
from infalign_theory.bridge.loop import (  # noqa: E402
    _leave_one_out,
    clipped_loss,
    ctrl_loss,
    run_identity,
)
from infalign_theory.bridge.rollout import Rollout  # noqa: E402


def _attach(model, kind, seed=3):
    if kind == "tilted":
        return attach_tilted_head(copy.deepcopy(model), rank=4, seed=seed)
    # every other token, two random features each (a token may have none of them set)
    vocab = model.get_output_embeddings().weight.shape[0]
    ids = torch.arange(1, vocab, 2)
    feats = torch.rand(len(ids), 2, generator=torch.Generator().manual_seed(seed)) > 0.3
    return attach_feature_head(copy.deepcopy(model), ids, feats.float(), rank=2, seed=seed)


def _perturbed(model, seed=3, scale=0.5, kind="tilted"):
    """A policy-head copy of ``model`` whose correction is not zero."""
    policy = _attach(model, kind, seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.get_output_embeddings().parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return policy


def test_attach_freezes_the_trunk_and_starts_at_the_base():
    tok = word_tokenizer(["a", "b", "c"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    policy = attach_tilted_head(copy.deepcopy(model), rank=3)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("lm_head.") and ".base." not in n for n in trainable)
    roll = sample(policy, tok, ["<s> a", "<s> b b"] * 3, max_new_tokens=4,
                  generator=torch.Generator().manual_seed(0), keep_hidden=True)  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(sequence_logprobs(policy, roll), sequence_logprobs(model, roll))
    with pytest.raises(ValueError, match="already has a policy head"):
        attach_tilted_head(policy)
    with pytest.raises(ValueError, match=r"rank must be an integer in \[1, 32\]"):
        attach_tilted_head(copy.deepcopy(model), rank=0)


@pytest.mark.parametrize("kind", ["tilted", "feature"])
def test_hidden_route_equals_full_forward_passes(kind):
    # same log-probabilities from the kept hidden states as from forward passes of both models,
    # and the per-position KL equals the KL of the two next-token distributions
    tok = word_tokenizer(["a", "b", "c", "d"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    policy = _perturbed(model, kind=kind)
    prompts = ["<s> a", "<s> b c", "<s> d"] * 4  # repeated prompts share their encoding
    roll = sample(policy, tok, prompts, max_new_tokens=5,
                  generator=torch.Generator().manual_seed(0), keep_hidden=True)  # fmt: skip
    with torch.no_grad():
        lp = rollout_logprobs(policy, model, roll)
        assert torch.allclose(lp.policy.sum(-1), sequence_logprobs(policy, roll), atol=1e-5)
        assert torch.allclose(lp.reference.sum(-1), sequence_logprobs(model, roll), atol=1e-5)
        assert torch.allclose(lp.policy.sum(-1), roll.logprobs, atol=1e-5)
        # the KL at each position from full next-token distributions of both models
        t = roll.completion_mask.shape[1]
        positions = (roll.attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding
        kw = {"input_ids": roll.input_ids, "attention_mask": roll.attention_mask,
              "position_ids": positions}  # fmt: skip
        p_logits = policy(**kw).logits[:, -t - 1 : -1]
        q_logits = model(**kw).logits[:, -t - 1 : -1]
        p, q = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
        kl = (p.exp() * (p - q)).sum(-1) * roll.completion_mask
        assert torch.allclose(lp.kl, kl, atol=1e-5)
    without = sample(policy, tok, prompts, max_new_tokens=5,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert without.hidden is None
    assert rollout_logprobs(policy, model, without).kl is None


def _enumerated(toy, policy):
    """Every completion of the toy as a rollout with the policy's hidden states kept."""
    roll = toy.rollout
    states = []
    head = policy.get_output_embeddings()
    hook = head.register_forward_pre_hook(lambda _m, args: states.append(args[0]))
    try:
        with torch.no_grad():
            policy(input_ids=roll.input_ids, attention_mask=roll.attention_mask)
    finally:
        hook.remove()
    hidden = states[0][:, :-1]  # the state before each completion token, (B, T, H)
    return Rollout(roll.input_ids, roll.attention_mask, roll.completion_mask,
                   roll.logprobs, roll.completions, hidden)  # fmt: skip


@pytest.mark.parametrize("kind", ["tilted", "feature"])
def test_exact_kl_loss_is_an_unbiased_gradient_of_the_objective(kind):
    # E_{y ~ pi}[grad of the per-sample loss] = -grad J, with J = E_pi[Phi] - beta KL computed
    # by enumerating all 64 completions of the toy (the leave-one-out baseline has mean zero)
    toy = make_toy(init_scale=0.3, seed=0)
    policy = _perturbed(toy.model, seed=5, scale=0.3, kind=kind)
    beta = 0.3
    phi = torch.as_tensor(toy.rewards / toy.length, dtype=torch.float32)  # any reward will do
    roll = _enumerated(toy, policy)
    params = [p for p in policy.parameters() if p.requires_grad]

    lp = rollout_logprobs(policy, toy.model, roll)
    logp = lp.policy.sum(-1)
    weights = torch.softmax(logp, 0)  # pi(y) over the enumeration (sums to one)
    objective = (weights * (phi - beta * (logp - lp.reference.sum(-1)))).sum()
    exact = torch.autograd.grad(objective, params)

    # the trainer's own loss, each completion weighted by its probability (no baseline:
    # one that does not depend on the completion adds nothing in expectation)
    lp = rollout_logprobs(policy, toy.model, roll)
    surrogate = ctrl_loss(lp, phi, beta, group=1, weights=weights.detach())
    estimate = torch.autograd.grad(surrogate, params)
    for g, e in zip(exact, estimate, strict=True):
        assert torch.allclose(-e, g, atol=1e-5, rtol=1e-4)
    assert max(float(g.abs().max()) for g in exact) > 1e-3  # not a vacuous comparison


@pytest.mark.parametrize("exact_kl", [True, False])
def test_clipped_surrogate_at_the_sampling_policy_is_the_on_policy_gradient(exact_kl):
    # a batch's reuses start where it was sampled: there the clipped surrogate's gradient is
    # ctrl_loss's, with the exact per-position KL (a policy head) and without it (the
    # sequence log-ratio); G = 4 completions per prompt, so the baselines matter too
    toy = make_toy(init_scale=0.3, seed=0)
    policy = _perturbed(toy.model, seed=5, scale=0.3, kind="tilted")
    roll = sample(policy, toy.tokenizer, ["<s>"] * 8, max_new_tokens=toy.length,
                  generator=torch.Generator().manual_seed(4), stop_at_eos=False,
                  keep_hidden=True)  # fmt: skip
    phi = torch.linspace(0.0, 1.0, 8)
    params = [p for p in policy.parameters() if p.requires_grad]

    def logprobs():
        lp = rollout_logprobs(policy, toy.model, roll)
        return lp if exact_kl else TokenLogProbs(lp.policy, lp.reference, None)

    on_policy = torch.autograd.grad(ctrl_loss(logprobs(), phi, 0.3, group=4), params)
    lp = logprobs()
    loss, clipped = clipped_loss(lp, lp.policy.detach(), roll.completion_mask, phi, 0.3, 4, 0.2)
    reused = torch.autograd.grad(loss, params)
    assert clipped == 0.0
    for a, b in zip(on_policy, reused, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert max(float(g.abs().max()) for g in on_policy) > 1e-3


def test_clipped_surrogate_stops_pulling_past_the_clip():
    # one token of one completion (G = 1, no baseline, no KL): with a positive advantage the
    # surrogate pushes pi(y) up until pi/pi_old = 1 + eps and not beyond; with a negative one
    # it pushes down until 1 - eps. Hand-made log-probabilities: the gradient of the loss
    # with respect to log pi is -A r inside the range and 0 past it.
    eps = 0.2
    mask = torch.ones(1, 1)
    old = torch.log(torch.tensor([[0.5]]))
    cases = [(1.0, 1.1, True), (1.0, 1.3, False), (1.0, 0.7, True),
             (-1.0, 0.9, True), (-1.0, 0.7, False), (-1.0, 1.3, True)]  # fmt: skip
    for advantage, ratio, inside in cases:
        logp = (old + np.log(ratio)).clone().requires_grad_(True)
        lp = TokenLogProbs(logp, torch.zeros(1, 1), torch.zeros(1, 1))
        loss, clipped = clipped_loss(lp, old, mask, torch.tensor([advantage]), 0.5, 1, eps)
        (grad,) = torch.autograd.grad(loss, logp)
        expected = -advantage * ratio if inside else 0.0
        assert float(grad) == pytest.approx(expected, rel=1e-6, abs=1e-12)
        assert clipped == (0.0 if abs(ratio - 1) <= eps else 1.0)


def test_reusing_each_batch_trains_the_toy_and_logs_the_clipped_fraction():
    toy = make_toy(init_scale=0.3, seed=0)
    law = toy.law()
    policy = attach_tilted_head(copy.deepcopy(toy.model), rank=2)
    cfg = CTRLConfig(beta=0.5, steps=3, prompts_per_step=1, group_size=8,
                     max_new_tokens=toy.length, learning_rate=5e-2, stop_at_eos=False,
                     epochs=3)  # fmt: skip
    trainer = CTRLTrainer(policy, toy.tokenizer, ["<s>"], toy.reward, ia.Identity(), cfg,
                          reference=toy.model, calibrator=Calibrator.exact([law]),
                          progress=False)  # fmt: skip
    history = trainer.train()
    assert len(history) == 3 and all(0.0 <= h["clipped"] <= 1.0 for h in history)
    assert history[0]["clipped"] > 0.0  # the reuses moved the policy away from the sampler
    # three optimiser updates per batch
    for p in policy.parameters():
        if p.requires_grad:
            assert int(trainer.optimizer.state[p]["step"]) == 9

    # the reuses are clipped: a tiny clip range leaves them only the KL's pull
    def trained(clip):
        pol = attach_tilted_head(copy.deepcopy(toy.model), rank=2)
        CTRLTrainer(pol, toy.tokenizer, ["<s>"], toy.reward, ia.Identity(),
                    dataclasses.replace(cfg, clip_ratio=clip), reference=toy.model,
                    calibrator=Calibrator.exact([law]), progress=False).train()  # fmt: skip
        return [p.detach() for p in pol.parameters() if p.requires_grad]

    for a, b in zip(trained(0.2), policy_params(policy), strict=True):
        assert torch.equal(a, b)  # reproducible
    assert any(not torch.equal(a, b) for a, b in zip(trained(1e-6), trained(10.0), strict=True))

    for bad, match in [({"epochs": 0}, "epochs"), ({"clip_ratio": 0.0}, "clip_ratio"),
                       ({"epochs": 1.5}, "epochs"), ({"epochs": True}, "epochs")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            CTRLConfig(beta=0.5, steps=1, **bad)
    two = CTRLConfig(beta=0.5, steps=1, epochs=2.0)
    assert two.epochs == 2 and type(two.epochs) is int
    # each batch used once: the run folder records neither option (older folders still match)
    once = run_identity(CTRLConfig(beta=0.5, steps=1), ia.Identity(), ["<s>"], None,
                        torch.device("cpu"))  # fmt: skip
    assert "epochs" not in once["config"] and "clip_ratio" not in once["config"]
    assert (
        run_identity(cfg, ia.Identity(), ["<s>"], None, torch.device("cpu"))["config"]["epochs"]
        == 3
    )


def test_reusing_each_batch_without_a_head_keeps_the_reference_pass_of_the_first_update():
    # the whole model trained (no head): each reuse reruns the policy, not the reference
    toy = make_toy(init_scale=0.3, seed=0)
    policy = copy.deepcopy(toy.model)
    calibrator = Calibrator.exact([toy.law()])
    calls = []
    hook = toy.model.register_forward_hook(lambda *_: calls.append(1))
    cfg = CTRLConfig(beta=0.5, steps=2, prompts_per_step=1, group_size=4,
                     max_new_tokens=toy.length, learning_rate=1e-2, stop_at_eos=False,
                     epochs=3)  # fmt: skip
    try:
        history = CTRLTrainer(policy, toy.tokenizer, ["<s>"], toy.reward, ia.Identity(), cfg,
                              reference=toy.model, calibrator=calibrator,
                              progress=False).train()  # fmt: skip
    finally:
        hook.remove()
    assert len(history) == 2 and "clipped" in history[-1]
    assert len(calls) == 2  # one reference pass per step


def policy_params(model):
    return [p.detach() for p in model.parameters() if p.requires_grad]


def test_leave_one_out_baseline():
    returns = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 9.0]])
    got = _leave_one_out(returns, 2)
    expected = torch.tensor([[-2.0, -2.0], [2.0, 2.0], [-2.0, -3.0], [2.0, 3.0]])
    assert torch.equal(got, expected)


def test_training_with_a_tilted_head_resumes_bit_for_bit(tmp_path):
    toy = make_toy(init_scale=0.3, seed=0)
    law = toy.law()

    def run(steps, folder):
        policy = attach_tilted_head(copy.deepcopy(toy.model), rank=2)
        cfg = CTRLConfig(beta=0.5, steps=steps, prompts_per_step=1, group_size=8,
                         max_new_tokens=toy.length, learning_rate=1e-2, stop_at_eos=False,
                         checkpoint_every=1)  # fmt: skip
        trainer = CTRLTrainer(policy, toy.tokenizer, ["<s>"], toy.reward, ia.Identity(), cfg,
                              reference=toy.model, calibrator=Calibrator.exact([law]),
                              run_dir=folder, progress=False)  # fmt: skip
        trainer.train()
        return policy, trainer

    whole, trainer = run(4, tmp_path / "whole")
    assert all("kl_tokens" in h for h in trainer.history)
    run(2, tmp_path / "part")
    # the checkpoint holds only what training changes
    state = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert set(state["policy"]) == {"lm_head.down.weight", "lm_head.up.weight", "lm_head.up.bias"}
    cfg_dir = tmp_path / "part"
    (cfg_dir / "config.json").write_text(
        (tmp_path / "whole" / "config.json").read_text()
    )  # same run, more steps
    resumed, _ = run(4, cfg_dir)
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(resumed.get_output_embeddings(), TiltedHead)


def test_reference_must_be_the_frozen_base_and_pad_started_prompts_stay_apart():
    tok = word_tokenizer(["a", "b", "c"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    other = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=7)
    policy = _perturbed(model)
    roll = sample(policy, tok, ["<s> a"] * 3, max_new_tokens=3,
                  generator=torch.Generator().manual_seed(2), keep_hidden=True)  # fmt: skip
    with pytest.raises(ValueError, match="reference must be the frozen base"):
        rollout_logprobs(policy, other, roll)
    with pytest.raises(ValueError, match="reference must be the frozen base"):
        rollout_logprobs(policy, policy, roll)  # a reference with a policy head of its own
    # "<s> a" starts with the pad token: left-padded "a" has the same ids, another mask
    roll = sample(model, tok, ["<s> a", "a"] * 2, max_new_tokens=3,
                  generator=torch.Generator().manual_seed(1))  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(roll.logprobs, sequence_logprobs(model, roll), atol=1e-5)


def test_evaluate_pools_refuses_mismatched_log_ratios_and_small_policy_pools():
    from infalign_theory.bridge import Pool, evaluate_pools

    a, b = np.zeros((3, 8)), np.zeros((3, 8))
    with pytest.raises(ValueError, match="log_ratios must be finite"):
        evaluate_pools(Pool(a, np.zeros((3, 5))), Pool(b))
    with pytest.raises(ValueError, match="log_ratios must be finite"):
        evaluate_pools(Pool(a, np.full((3, 8), np.nan)), Pool(b))
    with pytest.raises(ValueError, match="needs at least 5 policy samples"):
        evaluate_pools(Pool(a[:, :4], np.zeros((3, 4))), Pool(b), [ia.best_of(4)], noise="policy")


def test_feature_head_starts_at_the_base_and_moves_only_its_tokens():
    tok = word_tokenizer(["a", "b", "c", "d"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    ids = torch.tensor([2, 4])  # "a" and "c"
    feats = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    policy = attach_feature_head(copy.deepcopy(model), ids, feats)
    head = policy.get_output_embeddings()
    assert isinstance(head, FeatureHead)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable == ["lm_head.proj.weight", "lm_head.proj.bias"]
    hidden = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(head(hidden), head.base(hidden))  # zero correction at the start
        head.proj.bias.copy_(torch.tensor([0.3, -2.0]))
        moved = head(hidden) - head.base(hidden)
    # logit shift f_v . b on the feature tokens, nothing elsewhere
    expected = torch.zeros(5, len(tok))
    expected[:, 2], expected[:, 4] = 0.3, 0.5 * 0.3 - 2.0
    assert torch.allclose(moved, expected, atol=1e-6)
    with pytest.raises(ValueError, match="already has a policy head"):
        attach_feature_head(policy, ids, feats)
    fresh = lambda: copy.deepcopy(model)  # noqa: E731
    with pytest.raises(ValueError, match=r"token_ids must lie in \[0, 6\)"):
        attach_feature_head(fresh(), torch.tensor([1, 6]), feats)
    with pytest.raises(ValueError, match="token_ids must be distinct"):
        attach_feature_head(fresh(), torch.tensor([2, 2]), feats)
    with pytest.raises(ValueError, match="non-empty 1-D tensor of integer"):
        attach_feature_head(fresh(), torch.tensor([2.0, 4.0]), feats)
    with pytest.raises(ValueError, match=r"features must have shape \(len\(token_ids\), m\)"):
        attach_feature_head(fresh(), ids, feats[:1])
    with pytest.raises(ValueError, match="features must be finite"):
        attach_feature_head(fresh(), ids, torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"rank must be an integer in \[0, 32\]"):
        attach_feature_head(fresh(), ids, feats, rank=-1)
    # with a shift: its U and c start at zero, so the policy still starts as the base
    shifted = attach_feature_head(fresh(), ids, feats, rank=3)
    names = [n for n, p in shifted.named_parameters() if p.requires_grad]
    assert names == ["lm_head.proj.weight", "lm_head.proj.bias", "lm_head.down.weight",
                     "lm_head.up.weight", "lm_head.up.bias"]  # fmt: skip
    head = shifted.get_output_embeddings()
    with torch.no_grad():
        assert torch.equal(head(hidden), head.base(hidden))
        head.up.bias.fill_(0.1)  # the shift moves the logits of every token, through W
        assert bool((head(hidden) - head.base(hidden)).abs().gt(0).all())


def test_vader_token_features_follow_the_lexicon():
    pytest.importorskip("vaderSentiment")
    from infalign_theory.bridge import VaderSentiment

    words = ["great", "good", "horrible", "table", "not", "very", "but", "!!!", "GREAT"]
    tok = word_tokenizer(words)
    reward = VaderSentiment()
    ids, feats = reward.token_features(tok)
    lexicon = reward._analyzer.lexicon
    edges = np.asarray(VaderSentiment.VALENCE_EDGES)
    bins = len(edges) - 1
    by_word = {tok.decode([int(i)]): row for i, row in zip(ids, feats, strict=True)}
    assert set(by_word) == set(words) - {"table"}  # "table" is in none of VADER's lists
    assert feats.shape[1] == 2 * bins + 4 and np.all(feats.sum(1) >= 1)
    for word in ("great", "good", "horrible"):
        v = lexicon[word]
        (hot,) = np.flatnonzero(by_word[word])
        sign = bins if v < 0 else 0
        assert edges[hot - sign] < abs(v) <= edges[hot - sign + 1]
    assert np.array_equal(by_word["GREAT"], by_word["great"])  # case folded as VADER does
    for word, col in (("not", 0), ("very", 1), ("but", 2), ("!!!", 3)):
        assert np.flatnonzero(by_word[word]).tolist() == [2 * bins + col]


def _formula_logits(head, h, kind):
    """The head's documented logits, in float64 numpy from its parameters (not its code).

    Tilted: W (h + s(h)); feature: W (h + s(h)/sqrt(d)) + F (A h/(d rms(h)) + b) on its
    tokens; s(h) = rms(h) (U D h/(rms(h) sqrt(r)) + c), rms(h) = sqrt(mean(h^2)).
    """
    par = {n: p.detach().double().numpy() for n, p in head.named_parameters()}
    h = h.detach().double().numpy()
    d = h.shape[-1]
    rms = np.sqrt((h**2).mean(-1, keepdims=True))
    shift = np.zeros_like(h)
    if "down.weight" in par:
        r = par["down.weight"].shape[0]
        low = (h / rms) @ par["down.weight"].T / np.sqrt(r)
        shift = rms * (low @ par["up.weight"].T + par["up.bias"])
    if kind == "tilted":
        return (h + shift) @ par["base.weight"].T
    logits = (h + shift / np.sqrt(d)) @ par["base.weight"].T
    feats = head.features.double().numpy()
    move = ((h / rms) @ par["proj.weight"].T / d + par["proj.bias"]) @ feats.T
    for j, v in enumerate(head.token_ids.tolist()):
        logits[:, v] += move[:, j]
    return logits


@pytest.mark.parametrize(("kind", "rank"), [("feature", 0), ("feature", 1), ("feature", 3),
                                            ("tilted", 1), ("tilted", 3)])  # fmt: skip
def test_policy_head_logits_follow_their_formula(kind, rank):
    # every trainable parameter nonzero, token ids out of order, a float64 model (the head
    # follows its dtype): the logits equal the formula of the class docstrings
    tok = word_tokenizer(["a", "b", "c", "d"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1).double()
    if kind == "tilted":
        policy = attach_tilted_head(model, rank=rank, seed=2)
    else:
        ids, feats = torch.tensor([5, 2, 3]), torch.tensor([[1.0, 0.0], [0.5, 2.0], [0.0, -1.0]])
        policy = attach_feature_head(model, ids, feats, rank=rank, seed=2)
    head = policy.get_output_embeddings()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in head.parameters():
            if p.requires_grad:
                assert p.dtype == torch.float64
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
        hidden = 3.0 * torch.randn(7, 32, generator=gen, dtype=torch.float64)
        got = head(hidden).numpy()
    want = _formula_logits(head, hidden, kind)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert np.abs(want - head.base(hidden).detach().numpy()).max() > 0.1  # not the base's


def test_feature_head_seed_is_its_own_and_checked():
    tok = word_tokenizer(["a", "b", "c"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    ids, feats = torch.tensor([2, 4]), torch.ones(2, 1)

    def down(seed):
        policy = attach_feature_head(copy.deepcopy(model), ids, feats, rank=3, seed=seed)
        return policy.get_output_embeddings().down.weight

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = down(5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is untouched
    assert torch.equal(first, down(5)) and not torch.equal(first, down(6))
    for bad in (-1, 1.5, None, True):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            attach_feature_head(copy.deepcopy(model), ids, feats, rank=1, seed=bad)
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            attach_tilted_head(copy.deepcopy(model), rank=1, seed=bad)


def test_feature_head_refuses_what_it_cannot_represent():
    tok = word_tokenizer(["a", "b", "c"], eos=True)
    model = tiny_model(len(tok), init_scale=0.3, eos_token_id=tok.eos_token_id, seed=1)
    feats = torch.ones(2, 1)
    fresh = lambda: copy.deepcopy(model)  # noqa: E731
    for ids in (torch.tensor([True, False]), torch.tensor([2 + 0j, 4 + 0j])):
        with pytest.raises(ValueError, match="token_ids must be a non-empty 1-D tensor of int"):
            attach_feature_head(fresh(), ids, feats)
    with pytest.raises(ValueError, match="token_ids must be a numeric tensor"):
        attach_feature_head(fresh(), np.array(["2", "4"]), feats)
    with pytest.raises(ValueError, match="features must be real"):
        attach_feature_head(fresh(), [2, 4], torch.ones(2, 1, dtype=torch.complex64))
    # finite in float64 but not in the float32 of the output layer
    with pytest.raises(ValueError, match="features must be finite in the output layer's dtype"):
        attach_feature_head(fresh(), [2, 4], torch.full((2, 1), 1e300, dtype=torch.float64))
    # the shift's rank is at most the hidden size (32)
    with pytest.raises(ValueError, match=r"rank must be an integer in \[0, 32\]"):
        attach_feature_head(fresh(), [2, 4], feats, rank=33)
    with pytest.raises(ValueError, match=r"rank must be an integer in \[1, 32\]"):
        attach_tilted_head(fresh(), rank=10**12)
    # a bfloat16 model: the head follows its dtype and starts at the base
    half = attach_feature_head(fresh().to(torch.bfloat16), [2, 4], feats, rank=2)
    head = half.get_output_embeddings()
    hidden = torch.randn(3, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(head(hidden), head.base(hidden))


class _Decoder:
    """A tokenizer stand-in: token i decodes to ``pieces[i]``, as a BPE piece with its space."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __len__(self):
        return len(self.pieces)

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_token_features_read_pieces_as_vader_reads_words():
    pytest.importorskip("vaderSentiment")
    from infalign_theory.bridge import VaderSentiment, WordCount

    reward = VaderSentiment()
    lexicon = reward._analyzer.lexicon
    edges = np.asarray(VaderSentiment.VALENCE_EDGES)
    bins = len(edges) - 1
    # VADER's scale is [-4, 4] (Hutto & Gilbert 2014): every valence has a bin
    assert edges[0] == 0.0 and edges[-1] == 4.0
    pieces = [" Great", "euphoria ", " kill", "!?", " !!", "great!", " the", " NOT"]
    ids, feats = reward.token_features(_Decoder(pieces))
    assert ids.tolist() == [0, 1, 2, 4, 7]  # "!?", "great!" and "the" are none of them
    rows = dict(zip(ids.tolist(), feats, strict=True))
    for i, word in ((0, "great"), (1, "euphoria"), (2, "kill")):
        v = lexicon[word]
        assert abs(v) > 3.0 or word == "great"  # "euphoria" and "kill" in the top bins
        (hot,) = np.flatnonzero(rows[i])
        sign = bins if v < 0 else 0
        assert 0 <= hot - sign < bins and edges[hot - sign] < abs(v) <= edges[hot - sign + 1]
    assert np.flatnonzero(rows[4]).tolist() == [2 * bins + 3]  # a run of "!"
    assert np.flatnonzero(rows[7]).tolist() == [2 * bins]  # negation, case folded

    count = WordCount("good")
    ids, feats = count.token_features(_Decoder([" good", "Good", "goods", "good ", "a"]))
    assert ids.tolist() == [0, 3] and ids.dtype == np.int64
    assert feats.shape == (2, 1) and np.all(feats == 1.0)
    with pytest.raises(ValueError, match="no token of the tokenizer is the word 'good'"):
        count.token_features(_Decoder(["a", "Good"]))
