"""Peak memory of training on a large flat table: 1M rows x 20 columns by default, target under 8 GB.

    .venv/bin/python bench/run_memory.py [--rows N] [--budget MINUTES] [--gen-rows N] [--reference]

Builds a reproducible table with numpy (10 numeric and 10 categorical columns, with nulls, skew and
dependencies between columns), then runs ours (and with --reference, the reference engine after it) through
the same engine scripts as run_bench.py, each in its own process, and records the peak resident memory of
that process tree. The section in bench/RESULTS.md is replaced on a rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.results import command_line, machine, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, run_engine  # noqa: E402

TARGET_MB = 8 * 1024


def wide_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """10 numeric and 10 categorical columns; later columns depend on earlier ones, so there is something to learn."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    base = rng.normal(size=rows)
    for k in range(10):
        noise = rng.normal(size=rows)
        values = {0: lambda: np.exp(base + 0.5 * noise),  # skewed, like prices
                  1: lambda: np.round(50 + 10 * base + 5 * noise),  # integers
                  2: lambda: rng.integers(0, 100_000, rows).astype(float)}.get(k % 3, lambda: base * k + noise)()
        values[rng.random(rows) < 0.02 * (k % 4)] = np.nan  # 0-6% nulls
        data[f"num_{k}"] = values
    for k in range(10):
        cardinality = [2, 5, 12, 40, 150, 1000, 3, 8, 25, 400][k]
        # categories ordered by base: the code carries information about the numerics
        shifted = base + rng.normal(scale=0.5 + k / 5, size=rows)
        codes = np.clip(((shifted + 3) / 6 * cardinality).astype(int), 0, cardinality - 1)
        data[f"cat_{k}"] = np.char.add(f"c{k}_", codes.astype(str)).astype(object)
    return pd.DataFrame(data)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--budget", type=float, default=1.0, help="training minutes")
    ap.add_argument("--gen-rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", action="store_true", help="also run the reference engine (in its venv)")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--work", type=Path, default=Path("/tmp/synth-bench/memory"))
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    train = work / f"wide_{args.rows}.parquet"
    if not train.exists():
        print(f"==> building {args.rows:,} rows x 20 columns at {train}", flush=True)
        wide_table(args.rows, args.seed).to_parquet(train, index=False)
    common = ["--train", str(train), "--gen-rows", str(args.gen_rows), "--seed", str(args.seed),
              "--budget", f"{args.budget:g}"]
    runs = {"ours": run_engine("ours", [sys.executable, str(REPO / "bench" / "run_ours.py"), *common,
                                 "--out", str(work / "ours"), "--table", "wide"], work / "ours")}
    if args.reference:
        runs["reference"] = run_engine("reference", [args.peer_python, str(REPO / "bench" / "run_reference.py"), *common,
                                              "--out", str(work / "reference")], work / "reference")

    lines = ["| engine | peak MB | under 8 GB | training s | epochs | generation rows/s |", "|---|---|---|---|---|---|"]
    for name, r in runs.items():
        rate = r.get("rows_per_second")
        lines.append(f"| {name} | {r['peak_mb']:,.0f} | {'yes' if r['peak_mb'] < TARGET_MB else 'no'} | "
                     f"{r['training_seconds']:.1f} | {r.get('epochs', '–')} | {f'{rate:,.0f}' if rate else '–'} |")
    table = "\n".join(lines)
    print("\n" + table + "\n")
    command = command_line("bench/run_memory.py")
    body = "\n".join([
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        "- data: built by `wide_table` (10 numeric, 10 categorical columns of 2 to 1,000 categories, 0-6% nulls); "
        "peak MB is the largest resident set of the engine's process tree (training and generation)",
        "", table,
    ])
    heading = f"## memory · {args.rows:,} rows x 20 columns · budget {args.budget:g} min · {args.gen_rows:,} rows generated"
    update_results_file(args.results, heading, body)
    print(f"==> results: {args.results}")


if __name__ == "__main__":
    main()
