"""Training speed of TabularARGN by itself: a fixed number of epochs on a diamonds sample, to time as a whole process
(two checkouts side by side, A B A B, `/usr/bin/time -v` each).

    OMP_NUM_THREADS=1 PYTHONPATH=.:plugins/tabular_argn .venv/bin/python bench/train_speed.py [--rows 5000] [--epochs 12]

The epochs, not a time budget, end the training, so a faster step shows as a shorter run (bench/RESULTS.md,
"Training speed").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

DIAMONDS = Path(__file__).resolve().parent.parent / "data" / "demo" / "diamonds.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    from synth_tabular_argn import TabularARGN

    data = pd.read_csv(DIAMONDS).sample(6000, random_state=4).reset_index(drop=True).iloc[: args.rows]
    with tempfile.TemporaryDirectory() as workspace:
        model = TabularARGN(max_training_time=60, max_epochs=args.epochs, seed=3, workspace=workspace).fit(data)
        assert len(model.training.progress) == args.epochs, "stopped before its epochs: time the run again"


if __name__ == "__main__":
    main()
