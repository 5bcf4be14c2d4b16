"""OURS: train and generate with synth_assets' own pipeline (project venv). Called by run_bench.py.

Writes <out>/synth.yaml (one dataset: one flat table, or with --ctx a context table and the table's
records under it), runs split, stats, encode, train and generate through DatasetPipeline with
SYNTH_HOME=<out>/home, and writes <out>/synthetic.parquet (and <out>/synthetic-ctx.parquet) and
<out>/result.json with the timings.

--backend picks the model backend (default tabular_argn); --generate-option sets more generate options, and
--variant LABEL:KEY=VALUE[,KEY=VALUE...] generates again from the same trained model with other generate options
(e.g. `--variant vllm:engine=vllm`), writing <out>/synthetic-LABEL.parquet and the variant's timings and backend
report under result.json's "variants". The first generation's figures stay at the top level.
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
                  train_options: dict | None = None, backend: str = "tabular_argn",
                  generate_options: dict | None = None) -> Path:
    tables = {table: {"source": str(train_path.resolve()), "primary_key": None}}
    if ctx is not None:  # the table's records under the context table's rows; gen_rows counts context rows
        tables = {CONTEXT: {"source": str(ctx.resolve()), "primary_key": ctx_key},
                  table: {"source": str(train_path.resolve()), "order_by": list(order_by),
                          "foreign_keys": [{"column": ctx_key, "references": CONTEXT}]}}
    dataset = {
        "backend": backend,
        "tables": tables,
        "split": {"validation_share": 0.2, "seed": seed},
        # max_epochs is high on purpose: the time budget and early stopping decide, as for the reference
        "train": {"max_training_time": budget, "max_epochs": 1000, "seed": seed, **(train_options or {})},
        "generate": {"sample_size": gen_rows, "seed": seed, **(generate_options or {})},
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


def time_model_loading(seconds: dict, backend: str = "tabular_argn") -> bool:
    """Wrap the backend's checkpoint loader so generation can be timed without it, as the reference's is.

    The backend's internals move; whichever loader exists is wrapped. Returns False when none is found
    (generation is then timed with model loading, and the result says so). For the llm backend the engine's
    start (model load, grammar compiler; vLLM's startup) counts as the model load.
    """
    if backend == "llm":
        try:
            from synth_llm import engines
        except ImportError:
            return False
        engines.make_engine = _timed(engines.make_engine, seconds)  # imported by name at each generation
        return True
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
    ap.add_argument("--backend", default="tabular_argn", help="the model backend (synth.yaml's backend)")
    ap.add_argument("--generate-option", nargs="*", default=[], metavar="KEY=VALUE",
                    help="more generate options for synth.yaml (values read as YAML), e.g. engine=vllm")
    ap.add_argument("--variant", nargs="*", default=[], metavar="LABEL:KEY=VALUE[,KEY=VALUE]",
                    help="generate again from the same model with these generate options changed")
    args = ap.parse_args()
    variants = {}
    for text in args.variant:
        label, _, assignments = text.partition(":")
        variants[label] = _options([a for a in assignments.split(",") if a])

    out = args.out.resolve()
    shutil.rmtree(out / "home", ignore_errors=True)  # a stale model must never be picked up
    out.mkdir(parents=True, exist_ok=True)
    os.environ["SYNTH_CONFIG"] = str(write_project(out, args.table, args.train, args.budget, args.gen_rows, args.seed,
                                                   args.ctx, args.ctx_key, args.order_by,
                                                   _options(args.train_option), args.backend,
                                                   _options(args.generate_option)))
    os.environ["SYNTH_HOME"] = str(out / "home")

    # imported after the environment is set, and before the clock starts: the backend imports torch lazily,
    # the reference imports it with the engine, so neither engine's time includes importing torch
    import torch  # noqa: F401
    from synth_assets.project import load_project
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

    model_load_timed = time_model_loading(seconds, args.backend)
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
    if generated.report:
        print(f"[ours] backend report {json.dumps(generated.report)}", flush=True)

    primary_load = seconds.get("model_load", 0.0)
    variant_results = {}
    for label, changes in variants.items():  # the same model, other generate options
        options = pipeline.backend.GenerateOptions.model_validate({**pipeline.spec.generate.model_dump(), **changes})
        seconds["model_load"] = 0.0
        t = time.perf_counter()
        variant = pipeline.generate(options, device="auto")
        took = time.perf_counter() - t
        load_seconds = seconds["model_load"]
        rows = variant.tables[args.table]
        rows.to_parquet(out / f"synthetic-{label}.parquet", index=False)
        if args.ctx is not None:
            variant.tables[CONTEXT].to_parquet(out / f"synthetic-{label}-ctx.parquet", index=False)
        variant_results[label] = {
            "options": changes, "generation_seconds": took,
            "model_load_seconds": load_seconds if model_load_timed else None, "sampling_seconds": took - load_seconds,
            "generated_rows": len(rows), "rows_per_second": len(rows) / (took - load_seconds) if took > load_seconds else None,
            "backend_report": variant.report}
        print(f"[ours] variant {label} {changes}: {len(rows):,} rows in {took:.2f}s (model load {load_seconds:.2f}s); "
              f"backend report {json.dumps(variant.report)}", flush=True)
    if variants:
        seconds["model_load"] = primary_load  # stage_seconds: the first generation's

    result = {
        "engine": "ours",
        "backend": args.backend,
        "budget_minutes": args.budget,
        "training_seconds": training_seconds,  # split + stats + encode + train
        "train_stage_seconds": seconds["train"],
        "stage_seconds": seconds,
        "generation_seconds": generation_seconds,  # incl. model load, decoding, schema restore, parquet write
        "sampling_seconds": sampling_seconds,  # generation_seconds without model loading
        "model_load_timed": model_load_timed,
        "generated_rows": len(synthetic),
        "rows_per_second": len(synthetic) / sampling_seconds if sampling_seconds > 0 else None,
        # the same without the privacy and quality audit that publication runs (the reference has none)
        "rows_per_second_before_audit": len(synthetic) / max(generated.seconds - seconds.get("model_load", 0.0), 1e-9),
        "epochs": trained.epochs,
        "best_epoch": trained.best_epoch,
        "stopped_because": trained.stopped_because,
        "parameters": trained.parameters,
        "device": trained.device,
        "train_settings": trained.settings,
        "model_load_seconds": primary_load if model_load_timed else None,
        "backend_report": generated.report,  # the backend's own generation figures (llm: valid share, tokens/s)
        "variants": variant_results,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))


def _options(assignments: list[str]) -> dict:
    """KEY=VALUE strings as a dict, the values read as YAML."""
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in assignments)}


if __name__ == "__main__":
    main()
