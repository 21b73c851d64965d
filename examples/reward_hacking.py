"""Is my reward hackable? Align to a reward model that errs and measure the true win rate.

For each prompt: the base probabilities of its responses, their true rewards (or a trusted
judge's) and the reward model's scores. KL-RL with one beta for all prompts optimises the
score -- raw, or calibrated (its rank under the base) -- and this prints the TRUE standard
win rate against the exact KL, next to the oracle that aligns to the true reward. Where the
true win rate falls as KL grows, the reward is being hacked; the largest KL before that is
the budget to stay under.

The data here are synthetic (6 prompts x 300 responses, 3 % of them exploits that score +6
while being poor); replace ``prompts()`` with your own responses' scores.

    python examples/reward_hacking.py
"""

from __future__ import annotations

import numpy as np

from infalign_theory.prompts import ProxyPrompt, align_to_proxy


def prompts(seed: int = 0) -> list[ProxyPrompt]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(6):
        true = np.round(rng.normal(0.0, 1.0, 300), 1)  # ties, as real judges give
        exploit = rng.random(300) < 0.03
        true = np.where(exploit, np.minimum(true, -1.0), true)  # exploits are poor answers
        score = true + rng.normal(0.0, 0.3, 300) + np.where(exploit, 6.0, 0.0)
        out.append(ProxyPrompt(np.full(300, 1 / 300), true, score))
    return out


def main() -> None:
    betas = np.geomspace(3e-3, 30.0, 25)
    data = prompts()
    curves = {
        "oracle (true, calibrated)": align_to_proxy(data, betas, reward="true_calibrated"),
        "reward model, calibrated": align_to_proxy(data, betas, reward="proxy_calibrated"),
        "reward model, raw": align_to_proxy(data, betas, reward="proxy_raw"),
    }
    print("true standard win rate against the exact KL over responses (one beta for all prompts)")
    for name, c in curves.items():
        order = np.argsort(c.kl)
        kl, w = c.kl[order], c.standard_win_rate[order]
        peak = int(np.argmax(w))
        hacked = peak < kl.size - 1 and w[-1] < w[peak] - 0.01
        verdict = f"hacked beyond KL {kl[peak]:.2f}" if hacked else "not hacked on this range"
        print(f"  {name:27s} best {w[peak]:.3f} at KL {kl[peak]:.2f}; {verdict}")


if __name__ == "__main__":
    main()
