"""Start-up: what a plain evaluation imports, and the incomplete beta reached on first call.

`python benchmarks/bench_startup.py` times the command; these tests pin the reasons it is
fast, each in a fresh process (the state under test is a process's first moments).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from scipy import special

# Modules an `infalign evaluate` call with a built-in transform must not import: each costs
# a noticeable share of `import numpy` (scipy.special alone more than all of it).
HEAVY = (
    "scipy.special",
    "scipy.stats",
    "scipy.optimize",
    "infalign_theory.optimal",
    "infalign_theory.planning",
    "infalign_theory.prompts",
    "infalign_theory.verify",
    "torch",
)


def fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return out.stdout


def test_evaluate_imports_nothing_it_does_not_run():
    out = fresh(
        f"""
        import contextlib, io, json, sys
        from infalign_theory.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            main("evaluate --procedure bon --n 4 --transform exp --t 10 --kl 1 --json".split())
        print(json.dumps([json.loads(buf.getvalue()), [m for m in {HEAVY!r} if m in sys.modules]]))
        """
    )
    result, loaded = json.loads(out)
    assert loaded == []
    assert abs(result["kl"] - 1.0) < 1e-12  # and it did evaluate


def test_package_attributes_imported_on_first_use_are_the_real_ones():
    out = fresh(
        """
        import sys
        import infalign_theory as ia
        before = "infalign_theory.planning" in sys.modules
        from infalign_theory.planning import Plan, plan, read_rewards
        print(before, ia.plan is plan, ia.Plan is Plan, ia.read_rewards is read_rewards,
              "plan" in dir(ia))
        """
    )
    assert out.split() == ["False", "True", "True", "True", "True"]


def test_incomplete_beta_resolved_on_first_call_equals_scipy():
    # The first call of a kernel that needs I_x(a, b) goes through the resolver (which
    # imports scipy.special), the next ones straight to scipy's C function: both must return
    # scipy's values bit for bit, on both sides of the pair and through betaincc.
    cases = [(3.0, 5.0, 0.3), (5.0, 3.0, 0.999), (60.0, 141.0, 0.3), (2.5, 40.0, 0.001)]
    out = fresh(
        f"""
        import json, sys
        import infalign_theory._kernels as K
        assert "scipy.special" not in sys.modules
        rows = []
        for a, b, x in {cases!r}:
            rows.append([K.betainc_pair(a, b, x, 1.0 - x), K.betainc_pair(a, b, x, 1.0 - x)])
        print(json.dumps(rows))
        """
    )
    rows = json.loads(out)
    for (a, b, x), (first, second) in zip(cases, rows, strict=True):
        assert first == second
        if x <= 0.5:  # the direct side: I_x(a, b), and its complement when close to one
            value = special.betainc(a, b, x)
            assert first[0] == value
            assert first[1] == (
                1.0 - value if value <= 1.0 - 1.0 / 64.0 else special.betaincc(a, b, x)
            )
        else:  # the mirrored side: 1 - I = I_{1-x}(b, a) from the accurate entry
            value = special.betainc(b, a, 1.0 - x)
            assert first[1] == value
            assert first[0] == 1.0 - value
