"""The demo's diamonds group materialized in process with a short training budget: the synthetic asset's rate
figures (the draw apart from the overhead), and the time the quality charts take for one table.

    OMP_NUM_THREADS=2 .venv/bin/python bench/demo_figures.py [--store /tmp/demo_store] [--minutes 0.25]

Run it alone on the machine: other work slows both figures."""

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=tempfile.mkdtemp(prefix="demo_store_"))
    parser.add_argument("--minutes", type=float, default=0.25, help="training budget")
    args = parser.parse_args()
    os.environ["SYNTH_HOME"] = args.store
    import dagster as dg

    from synth_assets.definitions import build_definitions
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.project import load_project
    from synth_assets.stages.charts import table_charts
    from synth_assets.stages.quality import evaluate_table

    defs = build_definitions(REPO)
    job = dg.define_asset_job("diamonds_only", selection=dg.AssetSelection.groups("diamonds"))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    config = {"ops": {"diamonds__model": {"config": {"max_training_time": args.minutes}}}}
    result = defs.resolve_job_def("diamonds_only").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                      run_config=config)
    synthetic = result.asset_materializations_for_node("diamonds__synthetic")[0].metadata
    for key in ("generation_seconds", "draw_seconds", "overhead_seconds", "rows_per_second",
                "end_to_end_rows_per_second", "version", "published"):
        print(f"{key}: {synthetic[key].value}")

    pipeline = DatasetPipeline(load_project(REPO), "diamonds")
    split, stats, tables = pipeline.load_split(), pipeline.load_stats(), pipeline.load_synthetic()
    table = stats.tables["diamonds"]
    quality = evaluate_table(table, split.train["diamonds"], split.validation["diamonds"], tables["diamonds"])
    started = time.perf_counter()
    table_charts(table, split.train["diamonds"], tables["diamonds"], split.validation["diamonds"], quality)
    print(f"charts for one table ({len(table.columns)} columns): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
