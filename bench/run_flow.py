"""Flows (issue 26): a synthetic table of 1M and 10M rows through filter → drop_duplicates → derive, time and peak
memory, each size in a process of its own.

    .venv/bin/python bench/run_flow.py [--rows 1000000 10000000] [--work /tmp/bench_flow] [--budget 0.3]

1. input: TabularARGN trained on diamonds for --budget minutes, then draws of 1,000,000 synthetic rows (each its own
   seed) appended to <work>/synthetic_<rows>.parquet until it holds the rows asked (a draw is reused for the next
   size; 10M rows are ten draws, so their rows are as distinct as the model makes them).
2. flow: `python -m synth_assets flow diamonds_clean` on a project file in <work> whose flow reads that file:
   filter (carat ≥ 0.4) → drop_duplicates on every column → derive (price per carat), default batches (50,000
   rows), a checkpoint after each. Peak MB: the largest resident set of the flow's process (os.wait4), which
   includes the interpreter and its imports (about 130 MB). The input is drawn in a process of its own, so that
   the flow's process never starts as a copy of one holding the model.
3. bench/RESULTS.md gets the section "Flows (issue 26)" (replaced on a rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.procs import run_measured  # noqa: E402
from bench.results import cell, run_lines, update_results_file  # noqa: E402

DIAMONDS = REPO / "data" / "demo" / "diamonds.csv.gz"
DRAW = 1_000_000
HEADING = "## Flows (issue 26) · filter → drop_duplicates → derive"
FLOW = """
flows:
  diamonds_clean:
    input: {{source: {source}}}
    blocks:
      - block_type: filter
        block_config: {{column: carat, operator: ge, value: 0.4}}
      - block_type: drop_duplicates
      - block_type: derive
        block_config: {{column: price_per_carat, expression: "price / carat"}}
  without_dedup:
    input: {{source: {source}}}
    blocks:
      - block_type: filter
        block_config: {{column: carat, operator: ge, value: 0.4}}
      - block_type: derive
        block_config: {{column: price_per_carat, expression: "price / carat"}}
"""
# the chain, and the same without drop_duplicates: what memory grows by besides the set of rows seen
FLOWS = {"diamonds_clean": "filter → drop_duplicates → derive", "without_dedup": "filter → derive"}


def synthetic_input(work: Path, rows: int, budget: float) -> Path:
    """A Parquet file of `rows` synthetic diamonds, drawn in 1M-row draws from one trained model."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = work / f"synthetic_{rows}.parquet"
    if target.is_file():
        return target
    from synth_tabular_argn import TabularARGN

    model_dir = work / "model"
    model = (TabularARGN.load(model_dir) if (model_dir / "frames").is_dir() else
             TabularARGN(max_training_time=budget, seed=0, workspace=model_dir).fit(pd.read_csv(DIAMONDS)))
    writer = None
    tmp = target.with_suffix(".tmp")
    for seed in range(-(-rows // DRAW)):
        started = time.perf_counter()
        draw = model.sample(n_samples=min(DRAW, rows - seed * DRAW), seed=seed)
        print(f"draw {seed}: {len(draw):,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        table = pa.Table.from_pandas(draw, preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table.cast(writer.schema))
    writer.close()
    os.replace(tmp, target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_flow"))
    ap.add_argument("--budget", type=float, default=0.3, help="TabularARGN's training minutes for the input")
    ap.add_argument("--no-results", action="store_true")
    ap.add_argument("--make-input", type=int, help=argparse.SUPPRESS)  # the child that draws the input
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.make_input:
        synthetic_input(args.work, args.make_input, args.budget)
        return
    results = []
    for rows in args.rows:
        # drawn in a process of its own: a child forked from a parent holding the model and the draws would count
        # the parent's memory in its own peak
        source = args.work / f"synthetic_{rows}.parquet"
        if not source.is_file():
            subprocess.run([sys.executable, __file__, "--work", str(args.work), "--budget", str(args.budget),
                            "--make-input", str(rows)], check=True)
        folder = args.work / f"flow_{rows}"
        folder.mkdir(exist_ok=True)
        (folder / "synth.yaml").write_text(FLOW.format(source=source))
        env = {**os.environ, "SYNTH_CONFIG": str(folder / "synth.yaml"), "SYNTH_HOME": str(folder / "store")}
        for flow, chain in FLOWS.items():
            run = run_measured([sys.executable, "-m", "synth_assets", "flow", flow], env=env, cwd=str(REPO))
            if run.returncode != 0:
                raise SystemExit(f"flow {flow} over {rows:,} rows failed ({run.returncode})")
            import pyarrow.parquet as pq

            output = next((folder / "store" / "flows" / flow / "output" / "CURRENT").glob("*.parquet"))
            out_rows = pq.ParquetFile(output).metadata.num_rows
            results.append({"flow": chain, "rows": rows, "seconds": run.seconds, "peak_mb": run.peak_mb,
                            "rows_out": out_rows, "rows_per_second": rows / run.seconds})
            print(json.dumps(results[-1]), flush=True)
    (args.work / "summary.json").write_text(json.dumps(results, indent=2))
    if args.no_results:
        return
    lines = [*run_lines("bench/run_flow.py"),
             "- input: diamonds drawn from TabularARGN (trained on the 53,940 rows) in 1M-row draws of their own "
             "seed; the flow: filter carat ≥ 0.4 → drop_duplicates (every column) → derive price / carat, "
             "batches of 50,000 rows, a checkpoint after each; seconds and peak MB of the whole "
             "`python -m synth_assets flow` process (imports, joining the parts, publishing)",
             "", "| flow | input rows | rows out | seconds | input rows/s | peak MB |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['flow']} | {r['rows']:,} | {r['rows_out']:,} | {cell(r['seconds'], 1)} | "
                     f"{cell(r['rows_per_second'], 0)} | {cell(r['peak_mb'], 0)} |")
    update_results_file(REPO / "bench" / "RESULTS.md", HEADING, "\n".join(lines))


if __name__ == "__main__":
    main()
