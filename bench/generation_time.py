"""Time a trained dataset's generation, apart from its audit: what `DatasetPipeline.generate` spends drawing
(model load, drawing, schema restore, parts) and what publication's audit adds (privacy figures, schema checks).

    .venv/bin/python bench/generation_time.py --config DIR/synth.yaml --home DIR/home --dataset records [--repeats 3]

Point it at a copy of a bench run's folder (run_sequential.py writes `ours/synth.yaml` and `ours/home`): each
generation publishes a new version there. Two versions of the code side by side: run one from another checkout
with `PYTHONPATH=<checkout>:<checkout>/plugins/tabular_argn`, each pinned to a core, then swap the cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["SYNTH_CONFIG"], os.environ["SYNTH_HOME"] = str(args.config), str(args.home)
    import torch  # noqa: F401  (before the clock, as the bench's engines do)

    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.project import load_project

    pipeline = DatasetPipeline(load_project(), args.dataset)
    pipeline.generate()  # warm: the first call loads the model and imports the rest
    runs = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        generated = pipeline.generate()
        runs.append((time.perf_counter() - started, generated.seconds, sum(generated.rows.values())))
    total, before, rows = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
    print(f"{rows:,} rows: generate {total:.2f}s ({rows / total:,.0f} rows/s), before the audit {before:.2f}s, "
          f"audit and publication {total - before:.2f}s (best of {args.repeats})")


if __name__ == "__main__":
    main()
