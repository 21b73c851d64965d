"""Write examples/data/rewards.csv: a small reward file of the kind `infalign plan` reads.

Six prompts, 24 to 48 base samples each, one row per sample (``prompt,reward``), scored by
reward models of different scales and shapes, with the ties real reward models produce
(scores rounded to a grid, a 1-5 rating). Seeded: running it again writes the same file.

    python examples/data/make_rewards.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 20250101


def rewards(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        # a reward model's logit, rounded to 0.1 (ties from rounding)
        "Summarise the plot of Hamlet in two sentences.": np.round(rng.normal(0.5, 1.2, 40), 1),
        # a wide, right-skewed score
        "Write a haiku about autumn rain.": np.round(rng.gamma(2.0, 1.5, 32), 1),
        # a 1-5 rating: heavy ties
        "Explain recursion to a ten-year-old.": rng.choice(
            [1.0, 2.0, 3.0, 4.0, 5.0], 48, p=[0.05, 0.15, 0.4, 0.3, 0.1]
        ),
        # a narrow score on a small scale
        "Give three tips for a job interview.": np.round(rng.normal(0.02, 0.01, 24), 3),
        # a heavy-tailed score
        "Translate 'good morning' into French and Spanish.": np.round(rng.standard_t(3, 36), 2),
        # most samples neutral (0), a few better or worse
        "Reply politely to an angry customer email.": np.round(
            np.where(rng.random(30) < 0.5, 0.0, rng.normal(0.0, 0.6, 30)), 2
        ),
    }


def main() -> None:
    path = Path(__file__).with_name("rewards.csv")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["prompt", "reward"])
        for prompt, values in rewards(np.random.default_rng(SEED)).items():
            for v in values:
                writer.writerow([prompt, repr(float(v))])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
