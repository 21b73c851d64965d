"""Each experiment script runs end to end with --quick, writing its picture and numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
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
    from infalign_theory.optimal import pareto_frontier

    data = json.loads((ROOT / "paper_figures" / "fig2.json").read_text())
    for panel in data["panels"].values():
        proc = ia.best_of(4) if panel["procedure"] == "best-of-4" else ia.worst_of(4)
        for c in panel["curves"]:
            name = c["transform"]
            i = len(c["kl"]) // 2
            if name == "optimal":
                fresh = pareto_frontier(proc, [c["kl"][i]])
                assert fresh.win_rate[0] == pytest.approx(c["win_rate"][i], abs=1e-9)
                continue
            if name in ("identity", "log"):
                tr = ia.Identity() if name == "identity" else ia.Log()
            else:
                tr = ia.Exponential(float(name[len("exp(t=") : -1]))
            fresh = ia.tradeoff_curve(tr, proc, kls=[c["kl"][i]])
            assert fresh.win_rate[0] == pytest.approx(c["win_rate"][i], abs=1e-12)


def test_fig2_has_the_optimal_curve_above_every_other():
    data = json.loads((ROOT / "paper_figures" / "fig2.json").read_text())
    for panel in data["panels"].values():
        curves = {c["transform"]: c for c in panel["curves"]}
        best = curves["optimal"]
        for name, c in curves.items():
            assert all(
                w <= b + 1e-10 for w, b in zip(c["win_rate"], best["win_rate"], strict=True)
            ), name


def test_table_best_t_quick(tmp_path):
    load("table_best_t").main(["--quick", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "table_best_t.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert r["win_rate_optimal"] >= r["win_rate_exp"] - 1e-10
        assert r["win_rate_exp"] >= r["win_rate_identity"] - 1e-10
    assert (tmp_path / "table_best_t.md").read_text().count("\n") >= 10


def test_fig_optimal_transforms_quick(tmp_path):
    png = load("fig_optimal_transforms").main(["--quick", "--out", str(tmp_path)])
    assert png.exists()
    data = json.loads((tmp_path / "fig_optimal_transforms.json").read_text())
    for panel in data["panels"]:
        for c in panel["curves"]:
            assert -1e-9 <= c["optimal"][0] <= 0.01  # the grid starts at u = 1e-6
            assert 0.99 <= c["optimal"][-1] <= 1.0 + 1e-9  # the grid ends at u = 1 - 1e-6
            assert min(c["optimal"]) >= -1e-9 and max(c["optimal"]) <= 1.0 + 1e-9
            assert c["fit_rms"] < 0.2


@pytest.mark.parametrize("name", ["fig_calibration_k", "fig_miscalibration", "fig_reward_hacking"])
def test_calibration_experiments_quick(tmp_path, name):
    png = load(name).main(["--quick", "--out", str(tmp_path)])
    assert png.exists() and png.stat().st_size > 10_000
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["package_version"]
    if name == "fig_miscalibration":
        assert data["raw_never_above_frontier"] and data["largest_gap"]["gap"] > 0.05
    if name == "fig_calibration_k":
        rows = data["smallest_k_within_half_a_point_at_kl_1"]
        assert all(r["smallest_k"] >= 1 for r in rows)
        assert [r["smallest_k"] for r in rows if r["transform"] == "identity"] == [1, 1]


def test_bridge_converge_quick_wiring(tmp_path, monkeypatch):
    # the whole pipeline on the enumerable toy: base pool, exact prediction, training steps
    # in two worker processes, pool evaluation and the JSON keys (a few steps: wiring, not
    # convergence)
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))  # the workers import the module
    module = load("bridge_converge")
    work = tmp_path / "work"
    args = ["--quick", "--out", str(tmp_path), "--work", str(work), "--no-progress", "--jobs", "2"]
    png = module.main(args)
    assert png.exists() and png.stat().st_size > 10_000
    data = json.loads((tmp_path / "fig_bridge_converge.json").read_text())
    assert {"runs", "procedure", "device", "threads", "seconds", "study", "acceptance"} <= set(data)
    assert data["processes"] == 2 and data["study"]["jobs"] == 2
    assert data["seconds"]["total"] > 0 and data["procedure"] == "best-of-4"
    study = data["study"]
    assert len(data["runs"]) == 2 * len(study["kls"])
    for run in data["runs"]:
        assert set(run) >= {"transform", "target_kl", "beta", "measured", "predicted"}
        # the prediction is exact at the shared beta: its KL is the target
        assert run["predicted"]["kl"] == pytest.approx(run["target_kl"], rel=1e-9)
        for key in ("kl", "win_rate", "standard_win_rate"):
            assert set(run["measured"][key]) == {"value", "se"}
            assert math.isfinite(run["measured"][key]["value"])
        assert len(run["training"]) == study["steps"]
        assert "kl_tokens" in run["training"][-1]
    exponent = data["exponent"]
    assert exponent["t"] == study["t"]
    for target in data["acceptance"]["targets"]:
        assert target["predicted_gain"] > 0.0
        # the exponent report's gain at the study's t is the runs' predicted gain, and the
        # core's best t gains at least as much
        key = str(target["target_kl"])
        assert exponent["predicted_gain"][key] == pytest.approx(target["predicted_gain"], rel=1e-9)
        assert exponent["best_gain_per_target"][key] >= exponent["predicted_gain"][key] - 1e-9
    # a second call, in this process, reads the finished runs back instead of training again
    again = module.compute(module.STUDIES["quick"], work, progress=False)
    assert [r["measured"] for r in again["runs"]] == [r["measured"] for r in data["runs"]]


@pytest.mark.parametrize(("option", "value"), [("--jobs", "0"), ("--threads", "-1"),
                                                ("--steps", "0")])  # fmt: skip
def test_bridge_converge_refuses_counts_below_one(tmp_path, capsys, option, value):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    module = load("bridge_converge")
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--quick", "--out", str(tmp_path), "--work", str(work), option, value])
    assert exit_info.value.code == 2
    assert f"{option} must be an integer >= 1, got {value}" in capsys.readouterr().err
    assert not work.exists()  # refused before any work


def test_bridge_run_presets_fit_the_prompts_and_the_committed_gpu_figure_is_the_preset():
    # every preset's training and held-out prompts must exist in the prompts file (a preset
    # asking for more than it holds fails only after the model is loaded on the GPU), and the
    # committed GPU figure must come from the preset as committed
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import dataclasses

    module = load("bridge_run")
    available = len(module.read_prompts(module.PROMPTS))
    for name, preset in module.PRESETS.items():
        assert preset.train_prompts + preset.eval_prompts <= available, name
    committed = json.loads((ROOT / "paper_figures" / "fig_bridge_gpu.json").read_text())
    expected = json.loads(json.dumps(dataclasses.asdict(module.PRESETS["gpu"])))
    assert committed["preset"] == expected
    assert len(committed["runs"]) == 2 * len(expected["kls"])
    assert committed["device"] != "cpu"


@pytest.mark.parametrize("t", [0.0, 5.0])
def test_bridge_diagnose_metrics_of_the_pool_itself_are_the_prediction(t, monkeypatch):
    # tilting the pool's own samples by the trainer's reward (mid-rank calibration against the
    # pool) must give the core's exact prediction for the pool's law: the diagnosis's numpy
    # route against align_prompts, on pools with heavy ties
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    bc = load("bridge_converge")
    diag = load("bridge_diagnose")
    import infalign_theory as ia

    rng = np.random.default_rng(7)
    pools = [np.where(rng.random(256) < 0.45, 0.0, np.round(rng.normal(0.3, 0.4, 256), 1))
             for _ in range(3)]  # fmt: skip
    tr = ia.Exponential(t) if t else ia.Identity()
    for kl in (0.15, 0.6):
        pred = bc.prediction(bc.laws_of(np.array(pools)), tr, kl, ia.best_of(8))
        rows = [diag.law_metrics(p, np.exp(diag.log_tilt_weights(p, p, tr, pred["beta"])), p, 8)
                for p in pools]  # fmt: skip
        mine = np.mean(rows, axis=0)
        want = [pred["kl"], pred["win_rate"], pred["standard_win_rate"]]
        assert mine == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_bridge_diagnose_tilted_first_token():
    # pi*(v) = pi_ref(v) E[w | v] / E[w] on the tokens seen, base probability elsewhere,
    # renormalised; uniform weights give the base law back
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    diag = load("bridge_diagnose")
    base = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    first = np.array([0, 0, 1, 1])
    assert torch.allclose(diag.tilted_first_token(base, first, np.log(np.full(4, 0.25))), base)
    w = np.array([0.1, 0.1, 0.3, 0.5])  # E[w | 0] = 0.1, E[w | 1] = 0.4, E[w] = 0.25
    got = diag.tilted_first_token(base, first, np.log(w)).exp()
    raw = torch.tensor([0.5 * 0.4, 0.3 * 1.6, 0.15, 0.05], dtype=torch.float64)
    assert torch.allclose(got, raw / raw.sum())
    # a weight far below float64's range (a tiny beta) stays finite in logs: token 0's ratio
    # is e^-1000 / (1/4), token 1's is (1/2) / (1/4)
    log_w = np.array([-1000.0, -1000.0, np.log(0.5), np.log(0.5)])
    got = diag.tilted_first_token(base, first, log_w)
    norm = np.log(0.3 * 2 + 0.15 + 0.05)  # token 0's share, e^-1000, is below rounding
    assert float(got[0]) == pytest.approx(np.log(0.5) - 1000 + np.log(4) - norm, rel=1e-12)
    assert torch.allclose(got[1:].exp(), torch.tensor([0.6, 0.15, 0.05], dtype=torch.float64) / 0.8)


def test_bridge_diagnose_reverse_kl_and_exact_fit_schedule(monkeypatch):
    # KL(pi || pi*) in that direction (closed form for two-point laws), and the exact fit's
    # step size decaying linearly to 0 as the trainer's "linear" schedule does
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    diag = load("bridge_diagnose")
    pi = torch.tensor([[0.25, 0.75]], dtype=torch.float64).log()
    star = torch.tensor([[0.5, 0.5]], dtype=torch.float64).log()
    want = 0.25 * np.log(0.5) + 0.75 * np.log(1.5)
    assert float(diag.reverse_kl(pi, star)) == pytest.approx(want, rel=1e-12)
    lrs = []

    class Recording(torch.optim.Adam):
        def step(self, *args, **kwargs):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", Recording)
    torch.manual_seed(0)
    head, hidden = torch.nn.Linear(3, 2), torch.randn(4, 3)
    target = star.float().expand(4, 2)
    kl = diag.exact_fit(head, hidden, target, SimpleNamespace(learning_rate=0.04), 4)
    assert lrs == pytest.approx([0.04, 0.03, 0.02, 0.01], rel=1e-12)
    with torch.no_grad():
        after = float(diag.reverse_kl(torch.log_softmax(head(hidden), -1), target))
    assert kl == pytest.approx(after, rel=1e-6)


def test_fig_ties_quick(tmp_path):
    png = load("fig_ties").main(["--quick", "--out", str(tmp_path)])
    assert png.exists() and png.stat().st_size > 10_000
    data = json.loads((tmp_path / "fig_ties.json").read_text())
    assert data["package_version"] and data["procedure"] == "best-of-4"
    families = [*data["tied_level"].values(), data["sentiment_like"]]
    assert len(families) == 4
    for f in families:
        assert all(f["optimal_converged"])
        # both at the budget, and the optimum above the identity there
        # the budget is met unless W_T saturated first (within 1e-10 of its supremum: a tied
        # top level of mass 0.6 on 40 levels)
        for kl, saturated in zip(f["optimal_kl"], f["optimal_saturated"], strict=True):
            assert kl <= 0.5 * (1 + 1e-9) if saturated else kl == pytest.approx(0.5, rel=1e-9)
        assert f["identity_kl"] == pytest.approx([0.5] * len(f["masses"]), rel=1e-9)
        assert all(g >= -1e-10 for g in f["gain"])
        # m = 0: the same law in calibrated space, whatever the values
        assert f["masses"][0] == 0.0
        assert f["optimal"][0] == pytest.approx(families[0]["optimal"][0], abs=1e-12)
    # a tied top level of mass m: W_T <= 1 - (1 - (1 - m)^4) / 2, reached at KL = -log m
    top, ceiling = data["tied_level"]["top"], data["top_ceiling"]["win_rate"]
    assert all(w <= c + 1e-12 for w, c in zip(top["optimal"], ceiling, strict=True))
    assert ceiling[-1] == pytest.approx(1 - (1 - 0.4**4) / 2, abs=1e-15)


def test_committed_fig_ties_is_current():
    # one point of each family recomputed from the script's own law builders
    import infalign_theory as ia

    module = load("fig_ties")
    data = json.loads((ROOT / "paper_figures" / "fig_ties.json").read_text())
    p = data["parameters"]
    i = p["masses"].index(0.4)
    for pos in ("bottom", "middle"):
        law = module.tied_law(0.4, pos, p["levels"])
        row = module.at_budget(law, ia.best_of(p["n"]), p["kl"])
        assert row["optimal"] == pytest.approx(data["tied_level"][pos]["optimal"][i], abs=1e-9)
        assert row["identity"] == pytest.approx(data["tied_level"][pos]["identity"][i], abs=1e-12)
    law = module.sentiment_law(0.4, p["levels"], p["negative_share"])
    assert law.pmf([0.0])[0] == pytest.approx(0.4, abs=1e-15)
    row = module.at_budget(law, ia.best_of(p["n"]), p["kl"])
    assert row["optimal"] == pytest.approx(data["sentiment_like"]["optimal"][i], abs=1e-9)


def test_fig_procedures_quick(tmp_path):
    png = load("fig_procedures").main(["--quick", "--out", str(tmp_path)])
    assert png.exists() and png.stat().st_size > 10_000
    data = json.loads((tmp_path / "fig_procedures.json").read_text())
    assert data["package_version"] and [p["n"] for p in data["panels"]] == [4]
    curves = data["panels"][0]["curves"]
    assert [c["kind"] for c in curves] == ["OrderStatistic", "SoftBestOf", "ThresholdSampling"]
    for c in curves:
        opt, idt = c["optimal"], c["identity"]
        assert not opt["failed"] and all(opt["converged"])
        assert max(opt["residual"]) < 1e-9
        assert opt["kl"] == pytest.approx(data["parameters"]["optimal_kls"], abs=1e-9)
        # the base (KL 0) wins half of the time; the optimum is at least the identity
        assert opt["win_rate"][0] == pytest.approx(0.5, abs=1e-12)
        assert idt["win_rate"][0] == pytest.approx(0.5, abs=1e-12)
        assert all(g >= -1e-9 for g in opt["gain_over_identity"])
        assert opt["win_rate"][-1] > idt["win_rate"][0]


def test_committed_fig_procedures_is_current():
    import infalign_theory as ia
    from infalign_theory.optimal import solve_optimal

    data = json.loads((ROOT / "paper_figures" / "fig_procedures.json").read_text())
    assert [p["n"] for p in data["panels"]] == [4, 16]
    for panel in data["panels"]:
        for c in panel["curves"]:
            opt = c["optimal"]
            # every budget solved, converged, above calibrated RLHF and increasing in KL
            assert not opt["failed"] and all(opt["converged"]), c["procedure"]
            assert len(opt["kl"]) == len(data["parameters"]["optimal_kls"])
            assert max(opt["residual"]) < 1e-9
            assert all(g >= -1e-9 for g in opt["gain_over_identity"]), c["procedure"]
            assert all(np.diff(opt["win_rate"]) > 0)
    # one optimum and one identity point recomputed (threshold sampling at n = 16, KL 0.5)
    c = data["panels"][1]["curves"][-1]
    proc = ia.threshold_sampling(16, c["parameters"]["tau"])
    assert c["procedure"] == proc.name
    i = int(np.argmin(np.abs(np.asarray(c["optimal"]["kl"]) - 0.5)))
    assert solve_optimal(proc, kl=0.5).win_rate == pytest.approx(
        c["optimal"]["win_rate"][i], abs=1e-9
    )
    j = len(c["identity"]["kl"]) // 2
    fresh = ia.tradeoff_curve(ia.Identity(), proc, kls=[c["identity"]["kl"][j]])
    assert fresh.win_rate[0] == pytest.approx(c["identity"]["win_rate"][j], abs=1e-10)
