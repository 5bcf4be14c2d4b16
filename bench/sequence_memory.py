"""Peak memory of generating many subjects with long histories, in parts (issue 25: memory flat in the subjects).

    .venv/bin/python bench/sequence_memory.py [--model /tmp/synth-bench/nafld_long_sequential/ours]
                                              [--subjects 8000 32000 128000] [--part-rows 200000]

Takes the project of a trained tree model that `bench/run_sequential.py` left behind (default: NAFLD's, from
`run_sequential.py --data /tmp/nafld_long.csv.gz --key id --order-by days`), and for each number of subjects, in a
process of its own, draws them with `parts.rows` set to --part-rows, one part after another as `python -m
synth_assets` does, into a copy of the project's store (the model's own store is left as it was), without the
audit. Prints each process's peak resident memory, rows, parts and seconds as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.procs import run_measured  # noqa: E402

DRAW = """
import json, os, sys, time
from synth_assets.config import PartsSpec
from synth_assets.project import load_project
from synth_assets.pipeline import DatasetPipeline
project, subjects, part_rows, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pipeline = DatasetPipeline(load_project(project), os.environ["DATASET"])
pipeline.spec = pipeline.spec.model_copy(update={"parts": PartsSpec(rows=part_rows)})
options = pipeline.spec.generate.model_copy(update={"sample_size": subjects, "seed": 1})
started = time.perf_counter()
generated = pipeline.generate(options, device="cpu", publish=False)
open(out, "w").write(json.dumps({"rows": sum(generated.rows.values()), "parts": generated.parts,
                                 "seconds": time.perf_counter() - started}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("/tmp/synth-bench/nafld_long_sequential/ours"),
                    help="a project folder (synth.yaml, home/) with a trained model")
    ap.add_argument("--dataset", default="records")
    ap.add_argument("--subjects", type=int, nargs="+", default=[8_000, 32_000, 128_000])
    ap.add_argument("--part-rows", type=int, default=200_000)
    args = ap.parse_args()
    print("| subjects | rows (all tables) | parts | seconds | peak MB |\n|---|---|---|---|---|")
    for subjects in args.subjects:
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch) / "home"
            shutil.copytree(args.model / "home", home, symlinks=True)
            out = Path(scratch) / "result.json"
            env = {**os.environ, "SYNTH_HOME": str(home), "DATASET": args.dataset}
            run = run_measured([sys.executable, "-c", DRAW, str(args.model), str(subjects), str(args.part_rows),
                                str(out)], env=env)
            if run.returncode != 0:
                raise SystemExit(f"drawing {subjects:,} subjects failed ({run.returncode})")
            drawn = json.loads(out.read_text())
            print(f"| {subjects:,} | {drawn['rows']:,} | {drawn['parts']} | {drawn['seconds']:.1f} | {run.peak_mb:,.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
