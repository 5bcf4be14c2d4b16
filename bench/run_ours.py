"""OURS: train and generate with synth_assets' own pipeline (project venv). Called by run_bench.py.

Writes <out>/synth.yaml (one dataset: one flat table, or with --ctx a context table and the table's
records under it), runs split, stats, encode, train and generate through DatasetPipeline with
SYNTH_HOME=<out>/home, and writes <out>/synthetic.parquet (and <out>/synthetic-ctx.parquet) and
<out>/result.json with the timings.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import time
from pathlib import Path

import yaml


CONTEXT = "context"


def write_project(out: Path, table: str, train_path: Path, budget: float, gen_rows: int, seed: int,
                  ctx: Path | None = None, ctx_key: str | None = None, order_by: list[str] = (),
                  train_options: dict | None = None) -> Path:
    tables = {table: {"source": str(train_path.resolve()), "primary_key": None}}
    if ctx is not None:  # the table's records under the context table's rows; gen_rows counts context rows
        tables = {CONTEXT: {"source": str(ctx.resolve()), "primary_key": ctx_key},
                  table: {"source": str(train_path.resolve()), "order_by": list(order_by),
                          "foreign_keys": [{"column": ctx_key, "references": CONTEXT}]}}
    dataset = {
        "backend": "tabular_argn",
        "tables": tables,
        "split": {"validation_share": 0.2, "seed": seed},
        # max_epochs is high on purpose: the time budget and early stopping decide, as for the reference
        "train": {"max_training_time": budget, "max_epochs": 1000, "seed": seed, **(train_options or {})},
        "generate": {"sample_size": gen_rows, "seed": seed},
    }
    path = out / "synth.yaml"
    path.write_text(yaml.safe_dump({"datasets": {table: dataset}}, sort_keys=False))
    return path


def _timed(function, seconds: dict):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds["model_load"] = seconds.get("model_load", 0.0) + time.perf_counter() - started

    return wrapper


def time_model_loading(seconds: dict) -> bool:
    """Wrap the backend's checkpoint loader so generation can be timed without it, as the reference's is.

    The backend's internals move; whichever loader exists is wrapped. Returns False when none is found
    (generation is then timed with model loading, and the result says so).
    """
    try:
        from synth_tabular_argn import backend
    except ImportError:
        return False
    for owner, name in ((getattr(backend, "TrainedModel", None), "load"), (backend, "load_model")):
        if owner is None or not hasattr(owner, name):
            continue
        timed = _timed(getattr(owner, name), seconds)  # a classmethod comes out bound to its class
        if isinstance(inspect.getattr_static(owner, name), classmethod):
            timed = classmethod(lambda cls, *args, __timed=timed, **kwargs: __timed(*args, **kwargs))
        setattr(owner, name, timed)
        return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--budget", type=float, required=True, help="minutes")
    ap.add_argument("--gen-rows", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ctx", type=Path, default=None, help="a context table: --train holds its rows' records")
    ap.add_argument("--ctx-key", default=None, help="the context's primary key, and the records' foreign key")
    ap.add_argument("--order-by", nargs="*", default=[], help="columns ordering the records")
    ap.add_argument("--train-option", nargs="*", default=[], metavar="KEY=VALUE",
                    help="more train options for synth.yaml (values read as YAML), e.g. dropout=0.2")
    args = ap.parse_args()

    out = args.out.resolve()
    shutil.rmtree(out / "home", ignore_errors=True)  # a stale model must never be picked up
    out.mkdir(parents=True, exist_ok=True)
    os.environ["SYNTH_CONFIG"] = str(write_project(out, args.table, args.train, args.budget, args.gen_rows, args.seed,
                                                   args.ctx, args.ctx_key, args.order_by,
                                                   {k: yaml.safe_load(v) for k, v in
                                                    (o.split("=", 1) for o in args.train_option)}))
    os.environ["SYNTH_HOME"] = str(out / "home")

    # imported after the environment is set, and before the clock starts: the backend imports torch lazily,
    # the reference imports it with the engine, so neither engine's time includes importing torch
    import torch  # noqa: F401
    from synth_assets.config import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(), args.table)
    seconds: dict[str, float] = {}

    def show(record) -> None:  # a ProgressRecord
        print(f"[ours] epoch {record.epoch:>3}  train {record.train_loss:.4f}  val {record.validation_loss:.4f}  "
              f"{record.seconds:.0f}s", flush=True)

    started = time.perf_counter()
    for stage in ("split", "stats", "encode"):
        t = time.perf_counter()
        getattr(pipeline, stage)()
        seconds[stage] = time.perf_counter() - t
    print(f"[ours] split+stats+encode {time.perf_counter() - started:.1f}s; training, budget {args.budget:g} min",
          flush=True)
    t = time.perf_counter()
    trained = pipeline.train(device="auto", progress=show)
    seconds["train"] = time.perf_counter() - t
    training_seconds = time.perf_counter() - started
    print(f"[ours] trained {trained.epochs} epochs ({trained.stopped_because}), best epoch {trained.best_epoch}, "
          f"{seconds['train']:.1f}s", flush=True)

    model_load_timed = time_model_loading(seconds)
    t = time.perf_counter()
    generated = pipeline.generate(device="auto")
    generation_seconds = time.perf_counter() - t
    synthetic = generated.tables[args.table]
    synthetic.to_parquet(out / "synthetic.parquet", index=False)
    if args.ctx is not None:
        generated.tables[CONTEXT].to_parquet(out / "synthetic-ctx.parquet", index=False)
    sampling_seconds = generation_seconds - seconds.get("model_load", 0.0)
    load = f"model load {seconds['model_load']:.2f}s" if model_load_timed else "model load not timed apart"
    print(f"[ours] generated {len(synthetic):,} rows in {generation_seconds:.2f}s ({load})", flush=True)

    result = {
        "engine": "ours",
        "budget_minutes": args.budget,
        "training_seconds": training_seconds,  # split + stats + encode + train
        "train_stage_seconds": seconds["train"],
        "stage_seconds": seconds,
        "generation_seconds": generation_seconds,  # incl. model load, decoding, schema restore, parquet write
        "sampling_seconds": sampling_seconds,  # generation_seconds without model loading
        "model_load_timed": model_load_timed,
        "generated_rows": len(synthetic),
        "rows_per_second": len(synthetic) / sampling_seconds if sampling_seconds > 0 else None,
        "epochs": trained.epochs,
        "best_epoch": trained.best_epoch,
        "stopped_because": trained.stopped_because,
        "parameters": trained.parameters,
        "device": trained.device,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
