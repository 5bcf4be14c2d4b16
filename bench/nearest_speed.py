"""The nearest-neighbour search (synth_assets/stages/nearest.py) on random points of the shapes the privacy
figures search: best of 5 per shape, and the distances checked against a brute-force search where it fits.

    .venv/bin/python bench/nearest_speed.py        # one core: OMP_NUM_THREADS=1 taskset -c 1 ...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from synth_assets.stages.nearest import nearest  # noqa: E402

SHAPES = [(4_300, 4_500, 25), (10_000, 9_052, 11), (1_600, 320, 14), (160, 160, 14)]  # points, pool, features


def main() -> None:
    rng = np.random.default_rng(0)
    for n, m, d in SHAPES:
        points, pool = rng.random((n, d)), rng.random((m, d))
        best = min(_timed(points, pool) for _ in range(5))
        exact = "-"
        if n * m <= 20_000_000:
            brute = np.sqrt(((points[:, None, :] - pool[None, :, :]) ** 2).sum(-1).min(axis=1))
            exact = bool(np.allclose(nearest(points, pool)[0], brute))
        print(f"{n:>6} x {m:>6} points of {d:>2} features: {best * 1000:7.1f} ms   distances exact: {exact}")


def _timed(points, pool) -> float:
    started = time.perf_counter()
    nearest(points, pool)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
