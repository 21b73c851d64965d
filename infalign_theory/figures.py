"""How the experiment scripts write their numbers and pictures: one convention for all.

Each script in ``experiments/`` takes ``--quick`` (a coarse run, written to a temporary folder
so that the committed figures stay as they are) and ``--out`` (the folder), writes its numbers
as JSON -- never NaN -- and its picture as PNG beside them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

#: Where ``--quick`` runs write when no ``--out`` is given.
QUICK_FOLDER = Path(tempfile.gettempdir()) / "infalign_quick_figures"


def figure_parser(description: str, quick: str) -> argparse.ArgumentParser:
    """An argument parser with ``--quick`` (``quick`` says what it coarsens) and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{quick}; written to a temporary folder unless --out is given",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default paper_figures/)"
    )
    return parser


def output_folder(args: argparse.Namespace, default: Path) -> Path:
    """``--out``, else the temporary folder for ``--quick``, else ``default``; created."""
    out: Path = args.out or (QUICK_FOLDER if args.quick else default)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_json(path: Path, data: Any) -> None:
    """The numbers behind a figure, indented; a NaN or infinity is an error, not output."""
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def save_figure(fig: Any, path: Path, dpi: int = 140) -> None:
    """Lay out, save and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
