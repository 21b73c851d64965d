r"""The InfAlign-CTRL training loop: RLOO with a sequence-level KL penalty, in plain torch.

Each step takes ``prompts_per_step`` prompts, samples ``group_size`` completions of each from
the current policy (temperature 1, :mod:`.rollout`), scores them, calibrates every reward
against its prompt's cached reference rewards and transforms it (:mod:`.ctrl`), and takes
one optimiser step on

.. math:: J(\pi) = E_{x}\,E_{y\sim\pi(\cdot|x)}\big[\Phi(\hat C(x, y))\big]
          - \beta\, E_x\,\mathrm{KL}\big(\pi(\cdot|x)\,\|\,\pi_{\rm ref}(\cdot|x)\big),

whose maximiser is the tilt :math:`\pi_{\rm ref}\,e^{\Phi(\hat C)/\beta}/Z` that the core
computes. The choices, and where they depart from PPO and GRPO:

* **Total reward with the KL inside.** Each completion's reward is
  :math:`R_i = \Phi(\hat C_i) - \beta \log(\pi(y_i)/\pi_{\rm ref}(y_i))`, the log-ratio
  summed over its tokens and held constant. Because :math:`E_\pi[\nabla\log\pi] = 0`,
  :math:`E_\pi[R\,\nabla\log\pi] = \nabla J` exactly: the sequence-level log-ratio is the
  unbiased single-sample KL estimate whose score-function gradient is the KL's gradient.
  (PPO spreads a per-token KL over a learned value function; GRPO adds a per-token KL
  estimator to the loss, whose gradient is not that of the KL of the sampled policy.)
* **The exact KL where it is cheap.** With a trained output layer on a frozen trunk
  (:mod:`.head`), the exact per-position KL :math:`k_t = \mathrm{KL}(\pi(\cdot|y_{<t})\,\|\,
  \pi_{\rm ref}(\cdot|y_{<t}))` comes with every sample, and the loss is
  :math:`-\sum_t A_t \log\pi(y_t|y_{<t}) + \beta \sum_t k_t` with
  :math:`A_t = \Phi(\hat C) - \beta\sum_{s>t} k_s` minus its leave-one-out baseline: the
  same gradient of J in expectation (the KL's own gradient at each prefix, plus the score of
  each token times the KL still to come), without the sampling noise of the log-ratio.
* **Leave-one-out baseline, no critic.** The advantage is
  :math:`A_i = R_i - \frac{1}{G-1}\sum_{j\ne i} R_j` over the G completions of the same
  prompt (RLOO; Ahmadian et al., arXiv 2402.14740): independent of :math:`y_i`, so the
  gradient stays unbiased. No value network (unlike PPO), and no division by the group's
  standard deviation (unlike GRPO), which would reweight prompts and change the objective.
* **On-policy first, then a few clipped reuses of the batch.** The first update on a batch
  is on-policy: the loss is :math:`-\mathrm{mean}_i(A_i \log\pi(y_i))` on freshly sampled
  completions, with no importance ratio and no clipping, and one forward pass of the policy
  serves both the gradient and the KL (the sampler's own log-probabilities are kept only as
  a check, ``logprob_gap`` in the log). With ``epochs`` > 1 the same batch then takes more
  updates, each on PPO's clipped surrogate (Schulman et al., arXiv 1707.06347): per token,
  :math:`\min(r_t A_t, \mathrm{clip}(r_t, 1 \pm \epsilon) A_t)` with
  :math:`r_t = \pi(y_t|y_{<t})/\pi_{\rm old}(y_t|y_{<t})`, whose gradient at
  :math:`\pi = \pi_{\rm old}` is the on-policy one; the clip stops a reused batch from
  pulling the policy far from where it was sampled. Sampling is most of a step's cost when
  the policy is a head on a frozen trunk, so reuse buys optimiser steps almost for free.
* **Everything else plain:** Adam, optional gradient-norm clipping, dropout off (the model
  stays in eval mode, so the sampled and the differentiated distributions are one).

Runs are reproducible from ``seed`` (prompt order and sampling), log every step as one JSON
line (``log.jsonl``), and resume from ``checkpoint.pt`` in ``run_dir``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._validate import choice, integer, positive_finite
from ..calibration import ESTIMATORS
from ..transforms import Transform
from .ctrl import Calibrator, check_transform, reference_rewards, transformed
from .head import TokenLogProbs, policy_head, rollout_logprobs
from .rewards import Reward, score
from .rollout import sample

SCHEDULES = ("constant", "linear")
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class CTRLConfig:
    """The settings of one CTRL run (all of them are saved with its checkpoints).

    Parameters
    ----------
    beta : float
        KL strength, > 0.
    steps : int
        Optimiser steps in all (a resumed run continues up to it).
    prompts_per_step, group_size : int
        Prompts per step (>= 1) and completions per prompt (>= 2, for the leave-one-out
        baseline).
    max_new_tokens : int
        Completion length limit (>= 1).
    learning_rate : float
        The optimiser's step size, > 0.
    optimizer : {"adam", "sgd"}
        Adam, or plain stochastic gradient descent (no momentum): SGD moves each parameter in
        proportion to its gradient, so parameters that see only noise (the logits of tokens
        that are almost never sampled) stay put, where Adam would move each of them by about
        the learning rate.
    schedule : {"constant", "linear"}
        The step size stays constant, or decays linearly to 0 at ``steps``.
    max_grad_norm : float or None
        Clip the gradient's norm to this (None: no clipping).
    references, estimator :
        K reference samples per training prompt and the estimator of C from them.
    seed : int
        Seeds the prompt order and every sample.
    epochs : int
        Optimiser updates per sampled batch (>= 1): the first on-policy, the others on the
        clipped surrogate (see the module's docstring). A step's logged ``loss`` and
        ``grad_norm`` are the on-policy update's; ``clipped`` is the fraction of completion
        tokens whose ratio lay outside the clip range at the last reuse, before its update.
    clip_ratio : float
        PPO's epsilon, > 0: the reuses' ratio pi/pi_old is clipped to [1 - eps, 1 + eps].
    checkpoint_every : int
        Save a checkpoint every this many steps (and at the end); 0 saves only at the end.
    stop_at_eos : bool
        End a completion at the tokenizer's EOS token.
    """

    beta: float
    steps: int
    prompts_per_step: int = 4
    group_size: int = 4
    max_new_tokens: int = 16
    learning_rate: float = 1e-5
    optimizer: str = "adam"
    schedule: str = "constant"
    max_grad_norm: float | None = 1.0
    references: int = 16
    estimator: str = "midrank"
    seed: int = 0
    epochs: int = 1
    clip_ratio: float = 0.2
    checkpoint_every: int = 10
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        positive_finite(self.beta, "beta")
        positive_finite(self.learning_rate, "learning_rate")
        choice(self.optimizer, "optimizer", OPTIMIZERS)
        choice(self.schedule, "schedule", SCHEDULES)
        if self.max_grad_norm is not None:
            positive_finite(self.max_grad_norm, "max_grad_norm")
        choice(self.estimator, "estimator", ESTIMATORS)
        positive_finite(self.clip_ratio, "clip_ratio")
        counts = {"steps": 0, "prompts_per_step": 1, "group_size": 2, "max_new_tokens": 1,
                  "references": 1, "seed": 0, "epochs": 1, "checkpoint_every": 0}  # fmt: skip
        for name, low in counts.items():  # stored as ints: 2.0 steps is 2
            object.__setattr__(self, name, integer(getattr(self, name), name, low))


def trainable_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that the optimiser updates."""
    return [p for p in model.parameters() if p.requires_grad]


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]


def replace_durably(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by what ``write`` writes to a binary file, atomically and durably.

    ``write`` fills a temporary file of a name no other writer uses (same folder, created
    exclusively), which is flushed and fsync-ed before ``os.replace`` moves it over
    ``path``; the folder is fsync-ed after. Readers and a crash at any point see the old
    file or the new one, whole; concurrent writers each replace it with a whole file (the
    last one wins). The temporary file is removed if ``write`` fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (POSIX; folders cannot be opened on Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``: never a truncated file, see :func:`replace_durably`."""
    data = text.encode("utf-8")
    replace_durably(path, lambda fh: fh.write(data))


def run_identity(
    config: CTRLConfig,
    transform: Transform,
    prompts: Sequence[str],
    calibrator: Calibrator | None,
    device: torch.device,
) -> dict[str, Any]:
    """What a run directory's ``config.json`` records, and a resumed run must match."""
    return json.loads(
        json.dumps(
            {
                "config": _settings(config),
                "transform": transform.name,
                "prompts": _digest(prompts),
                "calibration": "references sampled by the run"
                if calibrator is None
                else calibrator.digest(),
                "device": device.type,
            }
        )
    )


def _settings(config: CTRLConfig) -> dict[str, Any]:
    """The config as a dict, as a run folder records it.

    Without ``epochs`` and ``clip_ratio`` when each batch is used once (the clip then plays
    no part), so run folders from before the option still match.
    """
    out = dataclasses.asdict(config)
    if config.epochs == 1:
        del out["epochs"], out["clip_ratio"]
    return out


def check_run_dir(folder: Path, identity: dict[str, Any]) -> None:
    """Record ``identity`` in ``folder/config.json``, or refuse a folder holding another run."""
    meta = folder / "config.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        if saved != identity:
            raise ValueError(
                f"run_dir {str(folder)!r} holds a run with another configuration ({saved}, "
                f"not {identity}); use a new run_dir"
            )
    else:
        write_atomic(meta, json.dumps(identity, indent=1))


def _leave_one_out(returns: torch.Tensor, group: int) -> torch.Tensor:
    """Returns minus the mean of the other members of their group (rows come in groups)."""
    if group == 1:
        return returns
    g = returns.reshape(-1, group, *returns.shape[1:])
    return (g - (g.sum(1, keepdim=True) - g) / (group - 1)).reshape(returns.shape)


def ctrl_loss(
    lp: TokenLogProbs,
    reward: torch.Tensor,
    beta: float,
    group: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss whose gradient is an unbiased estimate of -grad(E[Phi] - beta KL).

    ``reward`` (B,) is Phi(C^) of each completion; rows come in groups of ``group``
    completions of one prompt (the leave-one-out baseline; ``group`` = 1: none). Without the
    exact per-position KL the KL enters through the sequence's log-ratio; with it, each
    position's KL contributes its own gradient and the KL still to come is a cost in the
    advantage. The rows are averaged, or weighted by ``weights`` (summing to one).
    """
    if lp.kl is None:
        logp = lp.policy.sum(-1)
        advantage = _advantage(lp, logp.detach(), reward, beta, group)
        per_row = -advantage * logp
    else:
        advantage = _advantage(lp, None, reward, beta, group)
        per_row = -(advantage * lp.policy).sum(-1) + beta * lp.kl.sum(-1)
    return per_row.mean() if weights is None else (weights * per_row).sum()


def _advantage(
    lp: TokenLogProbs, logp: torch.Tensor | None, reward: torch.Tensor, beta: float, group: int
) -> torch.Tensor:
    """Leave-one-out advantages of :func:`ctrl_loss` and :func:`clipped_loss`.

    Without the exact per-position KL, of each completion (B,): Phi minus beta times its
    log-ratio, with log pi = ``logp``. With it, of each position (B, T): Phi minus beta
    times the exact KL still to come after it.
    """
    if lp.kl is None:
        assert logp is not None
        return _leave_one_out(reward - beta * (logp - lp.reference.sum(-1)), group)
    kl_now = lp.kl.detach()
    to_come = kl_now.flip(-1).cumsum(-1).flip(-1) - kl_now  # sum over s > t, (B, T)
    return _leave_one_out(reward[:, None] - beta * to_come, group)


def clipped_loss(
    lp: TokenLogProbs,
    old: torch.Tensor,
    mask: torch.Tensor,
    reward: torch.Tensor,
    beta: float,
    group: int,
    clip: float,
) -> tuple[torch.Tensor, float]:
    """PPO's clipped surrogate of :func:`ctrl_loss` on a batch sampled from an older policy.

    ``old`` (B, T) are the sampling policy's log-probabilities of the tokens, ``mask`` the
    completion mask. The advantages are :func:`ctrl_loss`'s (the KL still to come at the
    current policy; without the exact per-position KL, the sequence log-ratio at the
    sampling policy); each token's score term becomes min(r A, clip(r, 1 -+ clip) A) with
    r = pi/pi_old. At pi = pi_old the gradient is :func:`ctrl_loss`'s. Returns the loss and
    the fraction of completion tokens whose ratio is outside the clip range.
    """
    ratio = torch.exp(lp.policy - old)  # 1 past the completions (both are 0 there)
    if lp.kl is None:
        advantage = _advantage(lp, old.sum(-1), reward, beta, group)[:, None]
        kl_cost: torch.Tensor | float = 0.0
    else:
        advantage = _advantage(lp, None, reward, beta, group)
        kl_cost = beta * lp.kl.sum(-1)
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    per_row = -(surrogate * mask).sum(-1) + kl_cost
    outside = ((ratio - 1).abs().detach() > clip) & mask.bool()
    return per_row.mean(), float(outside.sum()) / max(float(mask.sum()), 1.0)


class CTRLTrainer:
    """Train ``model`` in place with InfAlign-CTRL toward the tilt of its initial self.

    Parameters
    ----------
    model : PreTrainedModel
        The policy; its state at construction is the frozen reference (copied), unless
        ``reference`` is given.
    tokenizer : PreTrainedTokenizerBase
        Left-padding tokenizer (see :func:`~infalign_theory.bridge.models.prepare_tokenizer`).
    prompts : sequence of str
        The training prompts, visited in a seeded random order, epoch after epoch.
    reward : Reward
        ``reward(prompts, completions) -> floats``.
    transform : Transform
        Phi, applied to the calibrated reward (identity, log, exponential, optimal...).
    config : CTRLConfig
    calibrator : Calibrator, optional
        Default: K = ``config.references`` samples of the reference per prompt, scored once
        (and cached in ``run_dir``).
    run_dir : path, optional
        Where ``config.json``, ``references.json``, ``log.jsonl`` and ``checkpoint.pt`` live;
        an existing checkpoint there is resumed (the configuration must match).
    progress : bool
        Show progress bars.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        reward: Reward,
        transform: Transform,
        config: CTRLConfig,
        *,
        reference: PreTrainedModel | None = None,
        calibrator: Calibrator | None = None,
        run_dir: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, CTRLConfig):
            raise ValueError(f"config must be a CTRLConfig, got {config!r}")
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be a non-empty list of strings")
        self.policy = model.eval()
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.reward = reward
        self.transform = transform
        self.config = config
        self.progress = progress
        self.device = next(model.parameters()).device
        if reference is None:
            reference = copy.deepcopy(model).requires_grad_(False)
        if reference is model:
            raise ValueError("reference must be a separate (frozen) model, not the policy itself")
        if next(reference.parameters()).device != self.device:
            raise ValueError(
                f"reference must be on the policy's device {self.device}, "
                f"not {next(reference.parameters()).device}"
            )
        self.reference = reference.eval()  # only ever run under no_grad
        trainable = trainable_params(self.policy)
        if not trainable:
            raise ValueError("model has no parameter with requires_grad=True to train")
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                trainable, lr=config.learning_rate
            )
        else:
            self.optimizer = torch.optim.SGD(trainable, lr=config.learning_rate)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if calibrator is not None and calibrator.prompts != len(self.prompts):
            raise ValueError(
                f"calibrator covers {calibrator.prompts} prompts, the run has {len(self.prompts)}"
            )
        self.calibrator = calibrator
        self._given_calibrator = calibrator
        if calibrator is not None:
            check_transform(transform, calibrator)
        elif config.estimator == "midrank":
            transformed(transform, np.array([0.0, 1.0]))
        if self.run_dir is not None:
            self._open_run_dir()

    # ----------------------------------------------------------------- run directory
    def identity(self) -> dict[str, Any]:
        """The :func:`run_identity` of this run."""
        return run_identity(
            self.config, self.transform, self.prompts, self._given_calibrator, self.device
        )

    def _open_run_dir(self) -> None:
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_run_dir(self.run_dir, self.identity())
        refs = self.run_dir / "references.json"
        if self.calibrator is None and refs.exists():
            self.calibrator = Calibrator(json.loads(refs.read_text()), self.config.estimator)
        ckpt = self.run_dir / "checkpoint.pt"
        if ckpt.exists():
            # tensors, numbers, strings and lists only: a planted pickle is refused, not run
            state = torch.load(ckpt, map_location=self.device, weights_only=True)
            missing, unexpected = self.policy.load_state_dict(state["policy"], strict=False)
            if unexpected or set(missing) & set(self._trainable_names()):
                raise ValueError(
                    f"checkpoint {str(ckpt)!r} does not hold this model's trainable parameters"
                )
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"].cpu())
            self.step_count = int(state["step"])
            self.history = list(state["history"])
        # keep the log in step with the checkpoint (a crash may have logged more steps)
        write_atomic(
            self.run_dir / "log.jsonl",
            "".join(json.dumps(h, allow_nan=False) + "\n" for h in self.history),
        )

    def save(self) -> None:
        """Write ``checkpoint.pt`` atomically: trainable parameters, optimiser, sampler, history."""
        if self.run_dir is None:
            return
        names = set(self._trainable_names())
        state = {  # the frozen weights are the reference's: only what training changes
            "policy": {k: v for k, v in self.policy.state_dict().items() if k in names},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step_count,
            "history": self.history,
        }
        replace_durably(self.run_dir / "checkpoint.pt", lambda fh: torch.save(state, fh))

    def _trainable_names(self) -> list[str]:
        return [name for name, p in self.policy.named_parameters() if p.requires_grad]

    # ------------------------------------------------------------------- calibration
    def calibrate(self) -> Calibrator:
        """The calibrator: built on first use from K reference samples per prompt."""
        if self.calibrator is None:
            cfg = self.config
            refs = reference_rewards(
                self.reference,
                self.tokenizer,
                self.prompts,
                self.reward,
                cfg.references,
                max_new_tokens=cfg.max_new_tokens,
                generator=torch.Generator(self.device).manual_seed(cfg.seed + 1),
                stop_at_eos=cfg.stop_at_eos,
                progress=self.progress,
            )
            self.calibrator = Calibrator(refs, cfg.estimator)
            if self.run_dir is not None:
                write_atomic(self.run_dir / "references.json", json.dumps(refs.tolist()))
        return self.calibrator

    # -------------------------------------------------------------------- training
    def prompt_indices(self, step: int) -> np.ndarray:
        """The prompts of step ``step``: a seeded permutation per epoch, so resumable."""
        n, per = len(self.prompts), self.config.prompts_per_step
        slots = np.arange(step * per, (step + 1) * per)
        out = np.empty(per, dtype=np.int64)
        for epoch in np.unique(slots // n):
            order = np.random.default_rng([self.config.seed, int(epoch)]).permutation(n)
            sel = slots // n == epoch
            out[sel] = order[slots[sel] % n]
        return out

    def step(self) -> dict[str, Any]:
        """One CTRL step; returns (and logs) its record."""
        cfg = self.config
        calibrator = self.calibrate()
        start = time.perf_counter()
        idx = np.repeat(self.prompt_indices(self.step_count), cfg.group_size)
        texts = [self.prompts[i] for i in idx]
        roll = sample(
            self.policy,
            self.tokenizer,
            texts,
            max_new_tokens=cfg.max_new_tokens,
            generator=self.generator,
            stop_at_eos=cfg.stop_at_eos,
            keep_hidden=policy_head(self.policy) is not None,
        )
        raw = score(self.reward, texts, roll.completions)
        cal = calibrator(idx, raw)
        phi = transformed(self.transform, cal)

        lp = rollout_logprobs(self.policy, self.reference, roll)
        logp = lp.policy.sum(-1)
        log_ratio = logp.detach() - lp.reference.sum(-1)
        reward = torch.as_tensor(phi, dtype=torch.float32, device=self.device)
        loss = ctrl_loss(lp, reward, cfg.beta, cfg.group_size)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"step {self.step_count + 1}: the loss is {float(loss.detach())} (a "
                "log-probability or reward overflowed); nothing was updated"
            )

        if cfg.schedule == "linear":
            for group_ in self.optimizer.param_groups:
                group_["lr"] = cfg.learning_rate * (1.0 - self.step_count / cfg.steps)
        grad_norm = self._update(loss, "nothing was updated")
        old = lp.policy.detach()
        clipped = 0.0
        for reuse in range(1, cfg.epochs):  # reuse the batch (PPO's clipped surrogate)
            again = rollout_logprobs(self.policy, self.reference, roll, reference_logp=lp.reference)
            surrogate, clipped = clipped_loss(
                again, old, roll.completion_mask, reward, cfg.beta, cfg.group_size,
                cfg.clip_ratio,
            )  # fmt: skip
            self._update(
                surrogate,
                f"update {reuse + 1} of {cfg.epochs} on this batch was not applied, the "
                f"{reuse} before it were, and the step was not counted or logged",
            )
        self.step_count += 1

        kl = float(log_ratio.mean())
        record = {
            "step": self.step_count,
            "reward": float(raw.mean()),
            "calibrated": float(cal.mean()),
            "transformed": float(phi.mean()),
            "kl": kl,
            **({} if lp.kl is None else {"kl_tokens": float(lp.kl.detach().sum(-1).mean())}),
            "objective": float(phi.mean()) - cfg.beta * kl,
            "loss": float(loss.detach()),
            "learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            "grad_norm": float(grad_norm),
            "completion_tokens": float(roll.completion_mask.sum(1).mean()),
            "logprob_gap": float((roll.logprobs - logp.detach()).abs().max()),
            **({} if cfg.epochs == 1 else {"clipped": clipped}),
            "seconds": time.perf_counter() - start,
        }
        self.history.append(record)
        if self.run_dir is not None:
            with open(self.run_dir / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record, allow_nan=False) + "\n")
        return record

    def _update(self, loss: torch.Tensor, applied: str) -> torch.Tensor:
        """One optimiser step on ``loss``; returns the gradient's norm before clipping.

        ``applied`` says, in the error raised for a non-finite gradient, what state the
        policy is left in.
        """
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.max_grad_norm if self.config.max_grad_norm is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable_params(self.policy), clip)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"step {self.step_count + 1}: the gradient norm is {float(grad_norm)}; "
                f"{applied} (lower learning_rate or set max_grad_norm)"
            )
        self.optimizer.step()
        return grad_norm

    def train(self) -> list[dict[str, Any]]:
        """Run (or resume) up to ``config.steps`` steps; returns the whole history."""
        cfg = self.config
        self.calibrate()
        bar = tqdm(
            total=cfg.steps,
            initial=self.step_count,
            desc=f"CTRL {self.transform.name} beta={cfg.beta:g}",
            unit="step",
            disable=not self.progress,
        )
        while self.step_count < cfg.steps:
            rec = self.step()
            bar.update(1)
            bar.set_postfix(reward=f"{rec['reward']:.3f}", kl=f"{rec['kl']:.3f}")
            if cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0:
                self.save()
        bar.close()
        self.save()
        return self.history
