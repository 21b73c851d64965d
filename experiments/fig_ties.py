"""How ties cap the gains: Best-of-4 at KL 0.5 on reward laws with one tied level of mass m.

A reward law with ties enters calibrated space (and so every KL and win rate) only through
its level masses in reward order: a tied level of mass m is an interval of length m in
u-space that a policy can reweight but not split. The figure sweeps m from 0 to 0.6 and
reports, at KL(pi || pi_ref) = 0.5, the Best-of-4 inference-time win rate W(T(pi) > T(pi_ref))
(ties 1/2) of the optimum of Theorem 1 (``solve_optimal`` on the discrete law: the best any
policy can do) and of the identity transform (calibrated RLHF), on two kinds of law:

* **one tied level among many distinct ones.** The untied mass 1 - m is spread evenly over
  200 distinct levels (``levels``), so that without the tie the law is close to continuous:
  at m = 0 the optimum's win rate is within 1e-3 of the model-agnostic continuous value
  (drawn as a grey line) and the identity's within 1e-4. Only the tied level's position in
  the order matters, so the law is written with values 0, 1, 2, ... and the tied level
  placed at the bottom (below every other level), in the middle (half the untied mass below
  it) or at the top (above every other level).
* **a sentiment-like law with many exact zeros.** VADER's compound sentiment of a short
  completion is exactly 0 for about 40 % of a base pool (a "neutral" text; 48 % in the
  SmolLM2 pool of ``experiments/bridge_converge.py``, ``base_rewards_zero`` in
  ``paper_figures/fig_bridge_converge.json``): mass m sits at 0 and the rest on 200 distinct
  non-zero scores in (-1, 1), a third of it negative and two thirds positive (an assumed
  lean to positive text), each sign's scores the quantiles of a Beta(2, 2) law on (0, 1)
  rounded to VADER's four decimals, equally likely. The zeros are a tied level in the lower
  middle of the order.

The third panel is the gain of the optimum over the identity. A tied *top* level caps both:
T(pi_ref) lands on it with probability 1 - (1 - m)^4, and a policy that puts all its mass
there (at KL = -log m) still only ties, so W_T <= 1 - (1 - (1 - m)^4) / 2 (dotted), and the
optimum's edge over calibrated RLHF vanishes with it. Ties below the top barely move the
optimum; they help the identity a little (its tilt cannot spend KL inside the tied level),
so they shrink the gain, but far less.

    python experiments/fig_ties.py            # writes paper_figures/fig_ties.png and .json
    python experiments/fig_ties.py --quick    # three masses, 40 levels; temporary folder
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

import infalign_theory as ia
from infalign_theory.figures import figure_parser, output_folder, save_figure, write_json
from infalign_theory.optimal import solve_optimal

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    """Parameters of the figure; every one is saved in the JSON."""

    n: int = 4
    kl: float = 0.5
    levels: int = 200
    masses: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 0.6, 25), 4).tolist())
    positions: tuple[str, ...] = ("bottom", "middle", "top")
    negative_share: float = 1.0 / 3.0
    # fractions of exact zeros marked on the sentiment panel: a VADER base pool of short
    # completions, and the SmolLM2 pool of experiments/bridge_converge.py
    marks: tuple[float, ...] = (0.40, 0.48388671875)


def tied_law(m: float, position: str, levels: int) -> ia.DiscreteLaw:
    """``levels`` distinct levels sharing mass 1 - m evenly, and one tied level of mass m."""
    values = np.arange(levels, dtype=float)
    probs = np.full(levels, (1.0 - m) / levels)
    if m == 0.0:
        return ia.DiscreteLaw(values, probs)
    tie = {"bottom": -1.0, "middle": (levels - 1) / 2.0, "top": float(levels)}[position]
    if position == "middle" and levels % 2:  # between two levels, not on one
        tie += 0.5
    return ia.DiscreteLaw(np.append(values, tie), np.append(probs, m))


def sentiment_law(m: float, levels: int, negative_share: float) -> ia.DiscreteLaw:
    """Mass m of exact zeros; the rest on ``levels`` distinct VADER-like scores in (-1, 1)."""
    neg = int(round(levels * negative_share))
    pos = levels - neg

    def scores(count: int) -> np.ndarray:
        return np.round(stats.beta(2.0, 2.0).ppf((np.arange(count) + 0.5) / count), 4)

    values = np.concatenate([-scores(neg)[::-1], scores(pos)])
    probs = np.full(levels, (1.0 - m) / levels)
    if m > 0.0:
        values, probs = np.append(values, 0.0), np.append(probs, m)
    law = ia.DiscreteLaw(values, probs)
    if law.n_levels != levels + (m > 0.0):
        raise RuntimeError("the non-zero scores must be distinct after rounding")
    return law


def at_budget(law: ia.DiscreteLaw, procedure: ia.OrderStatistic, kl: float) -> dict:
    """The optimum's and the identity's W_T at KL = ``kl`` on ``law``, with diagnostics."""
    sol = solve_optimal(procedure, kl=kl, law=law)
    beta = ia.beta_for_kl(ia.Identity(), kl, law=law)
    identity = ia.evaluate(ia.tilt(ia.Identity(), beta, law), procedure)
    return {
        "optimal": sol.win_rate,
        "optimal_kl": sol.kl,
        "optimal_beta": sol.beta,
        "optimal_converged": bool(sol.converged),
        "optimal_saturated": bool(sol.saturated),
        "optimal_residual": sol.residual,
        "identity": identity.win_rate,
        "identity_kl": identity.kl,
        "identity_beta": beta,
    }


def _sweep(laws: list[ia.DiscreteLaw], cfg: Config) -> dict:
    rows = [at_budget(law, ia.best_of(cfg.n), cfg.kl) for law in laws]
    out = {key: [r[key] for r in rows] for key in rows[0]}
    out["gain"] = [r["optimal"] - r["identity"] for r in rows]
    return out


def compute(cfg: Config) -> dict:
    """Every number the figure plots, as a JSON-ready dictionary."""
    procedure = ia.best_of(cfg.n)
    masses = list(cfg.masses)
    tied = {
        pos: {"masses": masses, **_sweep([tied_law(m, pos, cfg.levels) for m in masses], cfg)}
        for pos in cfg.positions
    }
    sentiment = {
        "masses": masses,
        **_sweep([sentiment_law(m, cfg.levels, cfg.negative_share) for m in masses], cfg),
    }
    ceiling = [1.0 - 0.5 * (1.0 - (1.0 - m) ** cfg.n) for m in masses]
    continuous = {
        "optimal": solve_optimal(procedure, kl=cfg.kl).win_rate,
        "identity": float(ia.tradeoff_curve(ia.Identity(), procedure, kls=[cfg.kl]).win_rate[0]),
    }
    return {
        "figure": "how ties cap the gains: Best-of-N win rate at a KL budget against tied mass",
        "win_rate": "inference-time: T(policy) against T(base), ties 1/2",
        "procedure": procedure.name,
        "package_version": ia.__version__,
        "parameters": asdict(cfg),
        "continuous": continuous,
        "tied_level": tied,
        "top_ceiling": {
            "masses": masses,
            "win_rate": ceiling,
            "note": "all mass on a tied top level of mass m (KL = -log m): the supremum of W_T",
        },
        "sentiment_like": sentiment,
    }


_COLORS = {"bottom": "tab:blue", "middle": "tab:green", "top": "tab:red", "zeros": "tab:purple"}


def plot(data: dict, path: Path) -> None:
    """Draw the three panels from the computed numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = data["parameters"]
    n, kl = p["n"], p["kl"]
    fig, axes = plt.subplots(1, 3, figsize=(16.5, 5.0))
    fig.suptitle(
        f"How ties cap the gains: Best-of-{n} win rate at KL = {kl:g} against the mass m "
        f"of one tied reward level (optimum of Theorem 1 solid, calibrated RLHF dashed)",
        fontsize=12,
    )
    cont = data["continuous"]
    ax = axes[0]
    for pos, curve in data["tied_level"].items():
        color = _COLORS[pos]
        ax.plot(curve["masses"], curve["optimal"], color=color, lw=2.0, label=f"{pos} tie: optimum")
        ax.plot(
            curve["masses"],
            curve["identity"],
            color=color,
            ls="--",
            lw=1.6,
            label=f"{pos} tie: identity (calibrated RLHF)",
        )
    top = data["top_ceiling"]
    ax.plot(
        top["masses"],
        top["win_rate"],
        color="k",
        ls=":",
        lw=1.6,
        label="top tie: ceiling, all mass on the tied level",
    )
    ax.axhline(cont["optimal"], color="0.6", lw=1.0, zorder=0)
    ax.axhline(cont["identity"], color="0.6", lw=1.0, ls="--", zorder=0)
    ax.text(
        0.005, cont["optimal"] + 0.004, "no ties (continuous): optimum", color="0.4", fontsize=8
    )
    ax.text(0.005, cont["identity"] + 0.004, "no ties: identity", color="0.4", fontsize=8)
    ax.set_title(f"one tied level among {p['levels']} distinct ones", fontsize=10)
    ax.set_ylabel(f"Best-of-{n} win rate vs Best-of-{n} of base, at KL = {kl:g}")

    ax = axes[1]
    s = data["sentiment_like"]
    lo = min(min(s["identity"]), cont["identity"])
    middle = 0.5 * (max(s["identity"]) + min(s["optimal"]))
    ax.plot(s["masses"], s["optimal"], color=_COLORS["zeros"], lw=2.0, label="optimum")
    ax.plot(
        s["masses"],
        s["identity"],
        color=_COLORS["zeros"],
        ls="--",
        lw=1.6,
        label="identity (calibrated RLHF)",
    )
    for mark, text in zip(p["marks"], ("VADER, short completions", "SmolLM2 pool"), strict=True):
        ax.axvline(mark, color="0.5", lw=1.0, ls="-.")
        ax.text(
            mark - 0.012,
            middle,
            f"{text}: {mark:.0%} zeros",
            rotation=90,
            fontsize=8,
            color="0.35",
            ha="center",
            va="center",
        )
    share = p["negative_share"]
    ax.set_title(
        f"sentiment-like: mass m at exactly 0, the rest on {p['levels']} scores in (-1, 1)\n"
        f"({share:.0%} negative, {1 - share:.0%} positive)",
        fontsize=10,
    )
    ax.set_ylabel(f"Best-of-{n} win rate vs Best-of-{n} of base, at KL = {kl:g}")
    axes[0].set_ylim(0.48, 0.9)
    axes[1].set_ylim(lo - 0.02, max(max(s["optimal"]), cont["optimal"]) + 0.02)

    ax = axes[2]
    for pos, curve in data["tied_level"].items():
        ax.plot(curve["masses"], curve["gain"], color=_COLORS[pos], lw=1.8, label=f"{pos} tie")
    ax.plot(s["masses"], s["gain"], color=_COLORS["zeros"], lw=1.8, label="sentiment-like zeros")
    ax.axhline(cont["optimal"] - cont["identity"], color="0.6", lw=1.0, zorder=0)
    ax.text(
        0.005,
        cont["optimal"] - cont["identity"] - 0.004,
        "no ties (continuous)",
        color="0.4",
        fontsize=8,
    )
    ax.set_ylim(bottom=0.0)
    ax.set_title("gain of the optimum over calibrated RLHF", fontsize=10)
    ax.set_ylabel("optimum's win rate - identity's win rate")
    for ax in axes:
        ax.set_xlabel("mass m of the tied level (fraction of base rewards tied)")
        ax.set_xlim(0.0, max(p["masses"] + p["marks"]) + 0.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> Path:
    """Compute, save the JSON, draw the PNG; return the PNG's path."""
    parser = figure_parser(__doc__.splitlines()[0], "three masses, 40 levels")
    args = parser.parse_args(argv)
    cfg = Config(levels=40, masses=(0.0, 0.3, 0.6)) if args.quick else Config()
    out = output_folder(args, ROOT / "paper_figures")
    start = time.perf_counter()
    data = compute(cfg)
    seconds = time.perf_counter() - start
    write_json(out / "fig_ties.json", data)
    png = out / "fig_ties.png"
    plot(data, png)
    print(f"wrote {png} and fig_ties.json (computed in {seconds:.1f} s)")
    return png


if __name__ == "__main__":
    main()
