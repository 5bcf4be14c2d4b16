"""Peak memory of generating large samples in one step: today's baseline for partitioned generation (issue 11).

    OMP_NUM_THREADS=2 .venv/bin/python bench/generation_memory.py [--sizes 1000000 10000000] [--budget MINUTES]

Trains a TabularARGN model on the demo's diamonds once (a project in --work), then draws each sample size in a
process of its own, as the synthetic asset does (generate, restore dtypes, write the Parquet version, no
publication), and records that process's peak resident memory and time. The section in bench/RESULTS.md is
replaced on a rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.procs import run_measured  # noqa: E402
from bench.results import command_line, machine, update_results_file  # noqa: E402

DRAW = """
import json, sys, time
from synth_assets.config import load_project
from synth_assets.pipeline import DatasetPipeline
pipeline = DatasetPipeline(load_project(sys.argv[1]), "diamonds")
options = pipeline.spec.generate.model_copy(update={"sample_size": int(sys.argv[2]), "seed": 1})
started = time.perf_counter()
generated = pipeline.generate(options, device="cpu", publish=False)
rows = sum(len(df) for df in generated.tables.values())
open(sys.argv[3], "w").write(json.dumps({"rows": rows, "seconds": time.perf_counter() - started,
                                         "draw_seconds": generated.draw_seconds}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--budget", type=float, default=0.5, help="training minutes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synth-bench/generation-memory"))
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args()
    work = args.work.resolve()
    if not (work / ".synth" / "diamonds" / "model" / "CURRENT").exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shutil.copy(REPO / "data" / "demo" / "diamonds.csv.gz", work)
        (work / "synth.yaml").write_text(
            "datasets:\n  diamonds:\n    tables:\n      diamonds: {source: diamonds.csv.gz}\n"
            f"    train: {{max_training_time: {args.budget:g}}}\n")
        from synth_assets.config import load_project
        from synth_assets.pipeline import DatasetPipeline

        pipeline = DatasetPipeline(load_project(work), "diamonds")
        pipeline.split(), pipeline.stats(), pipeline.encode(), pipeline.train(device="cpu")
    lines = ["| rows | peak MB | seconds | draw seconds | rows/s (draw) | MB per million rows |", "|---|---|---|---|---|---|"]
    for size in args.sizes:
        out = work / f"draw_{size}.json"
        print(f"==> drawing {size:,} rows", flush=True)
        measured = run_measured([sys.executable, "-c", DRAW, str(work), str(size), str(out)])
        if measured.returncode != 0:
            raise SystemExit(f"drawing {size:,} rows failed ({measured.returncode})")
        drawn = json.loads(out.read_text())
        draw = drawn["draw_seconds"] or drawn["seconds"]
        lines.append(f"| {drawn['rows']:,} | {measured.peak_mb:,.0f} | {drawn['seconds']:.1f} | {draw:.1f} | "
                     f"{drawn['rows'] / draw:,.0f} | {measured.peak_mb / (drawn['rows'] / 1e6):,.0f} |")
        shutil.rmtree(work / ".synth" / "diamonds" / "synthetic", ignore_errors=True)  # versions of GBs each
    table = "\n".join(lines)
    print("\n" + table + "\n")
    body = "\n".join([
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- command: `{command_line('bench/generation_memory.py')}`",
        "- what: one process draws the whole sample (generate, restore dtypes, write the Parquet version), as the "
        "synthetic asset does today; peak MB is that process's largest resident set. Memory that grows with the "
        "sample is what partitioned generation is to flatten.",
        "", table,
    ])
    update_results_file(args.results, "## generation memory · diamonds · one process", body)
    print(f"==> results: {args.results}")

if __name__ == "__main__":
    main()
