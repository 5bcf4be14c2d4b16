"""Peak memory of generating large samples: in one part against in parts (issue 11).

    OMP_NUM_THREADS=2 .venv/bin/python bench/generation_memory.py [--sizes 1000000 10000000] [--part-rows N]
                                                                  [--budget MINUTES]

Trains a TabularARGN model on the demo's diamonds once (a project in --work), then, for each sample size, in a
process of its own each: draws the sample in one part and in parts of --part-rows rows (synth.yaml's
`parts.rows`, default 1,000,000), one part after another as `python -m synth_assets` does (under Dagster
each part is a step of its own, so no process holds more than one part), then audits the candidate (the
blocking checks), publishes it and computes the quality report: every step after training. It records each
process's peak resident memory and the time of each stage. The section in bench/RESULTS.md is replaced on a
rerun.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.procs import run_measured  # noqa: E402
from bench.results import run_lines, update_results_file  # noqa: E402
from bench.tables import diamonds_project  # noqa: E402

DRAW = """
import json, sys, time
from synth_assets.config import PartsSpec
from synth_assets.project import load_project
from synth_assets.pipeline import DatasetPipeline
pipeline = DatasetPipeline(load_project(sys.argv[1]), "diamonds")
pipeline.spec = pipeline.spec.model_copy(update={"parts": PartsSpec(rows=int(sys.argv[3]))})
options = pipeline.spec.generate.model_copy(update={"sample_size": int(sys.argv[2]), "seed": 1})
started = time.perf_counter()
generated = pipeline.generate(options, device="cpu", publish=False)
generated_at = time.perf_counter()
audit = pipeline.release("synthetic", generated.version, generated)  # audited, then published
assert all(check.passed for check in audit), [check.description for check in audit]
audited_at = time.perf_counter()
pipeline.quality()
open(sys.argv[4], "w").write(json.dumps({
    "rows": sum(generated.rows.values()), "parts": generated.parts, "seconds": generated_at - started,
    "draw_seconds": generated.draw_seconds, "audit_seconds": audited_at - generated_at,
    "quality_seconds": time.perf_counter() - audited_at}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--part-rows", type=int, default=1_000_000, help="parts.rows of the runs in parts")
    ap.add_argument("--budget", type=float, default=0.5, help="training minutes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synth-bench/generation-memory"))
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args()
    work = args.work.resolve()
    if not (work / ".synth" / "diamonds" / "model" / "CURRENT").exists():
        diamonds_project(work, f"max_training_time: {args.budget:g}")
        from synth_assets.project import load_project
        from synth_assets.pipeline import DatasetPipeline

        pipeline = DatasetPipeline(load_project(work), "diamonds")
        pipeline.split(), pipeline.stats(), pipeline.encode(), pipeline.train(device="cpu")
    lines = ["| rows | parts | peak MB | generation s | draw s | rows/s (draw) | audit s | quality s |",
             "|---|---|---|---|---|---|---|---|"]
    for size in args.sizes:
        # one part (the whole sample), then in parts where the sample is larger than one
        for part_rows in [size] + ([args.part_rows] if args.part_rows < size else []):
            out = work / f"draw_{size}_{part_rows}.json"
            print(f"==> drawing {size:,} rows in parts of {part_rows:,}", flush=True)
            measured = run_measured([sys.executable, "-c", DRAW, str(work), str(size), str(part_rows), str(out)])
            if measured.returncode != 0:
                raise SystemExit(f"drawing {size:,} rows failed ({measured.returncode})")
            drawn = json.loads(out.read_text())
            draw = drawn["draw_seconds"] or drawn["seconds"]
            lines.append(f"| {drawn['rows']:,} | {drawn['parts']} | {measured.peak_mb:,.0f} | {drawn['seconds']:.1f} | "
                         f"{draw:.1f} | {drawn['rows'] / draw:,.0f} | {drawn['audit_seconds']:.1f} | "
                         f"{drawn['quality_seconds']:.1f} |")
            shutil.rmtree(work / ".synth" / "diamonds" / "synthetic", ignore_errors=True)  # versions of GBs each
    table = "\n".join(lines)
    print("\n" + table + "\n")
    body = "\n".join([
        *run_lines('bench/generation_memory.py'),
        "- what: one process per row: generate (in one part, or in parts one after another: under Dagster each part "
        "is a step, and no process holds more than one), audit the candidate (schema and keys read in batches, the "
        "DCR share's sample alone), publish, quality report (a flat table's scores read their sample alone); peak "
        "MB is that process's largest resident set.",
        "", table,
    ])
    update_results_file(args.results, "## generation memory · diamonds · one part against parts", body)
    print(f"==> results: {args.results}")

if __name__ == "__main__":
    main()
