"""REFERENCE: train and generate with mostlyai-engine's functional API (peer venv). Called by run_bench.py.

Standalone on purpose: the peer venv has mostlyai-engine but not this project. Runs split, analyze,
encode, train and generate in a fresh workspace <out>/workspace, with the engine's default settings
except the time budget when one is given, and writes <out>/synthetic.parquet and <out>/result.json.
With --ctx (a context table whose rows own the records of --train), it does what the engine's users do for a
fully synthetic two-table copy: a flat model of the context, then the sequential model of the records with
that context, generating the records of the synthetic context rows (<out>/synthetic-ctx.parquet). The budget
is shared in proportion to the tables' cells.
The engine's own log goes to <out>/engine.log; only one line per epoch is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

# the engine reads parquet through Hugging Face `datasets`; keep it offline and its cache in our folder
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")



def read_parquet(path):
    """By path (pandas hands pyarrow a Python file object, after which a process aborts at exit now and then:
    apache/arrow#34314); standalone, like the rest of this script."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()

def log_to_file(path: Path) -> None:
    logger = logging.getLogger("mostlyai.engine")
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)-7s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def show_epochs(**kwargs) -> None:
    """update_progress callback: the engine sends a message per epoch (with val_loss) and a few without."""
    message = kwargs.get("message") or {}
    if message.get("val_loss") is not None:
        print(f"[reference] epoch {message['epoch']:>5.1f}  train {message['trn_loss']:.4f}  "
              f"val {message['val_loss']:.4f}  {message['total_time']:.0f}s"
              f"{'  *' if message.get('is_checkpoint') else ''}", flush=True)


def timed_model_load(seconds: dict) -> None:
    """Wrap the engine's model loader (a name generation imports into its module) to time it apart."""
    from mostlyai.engine._tabular import generation

    original = generation.create_and_load_model

    def create_and_load_model(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds["model_load"] = seconds.get("model_load", 0.0) + time.perf_counter() - started

    generation.create_and_load_model = create_and_load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=None, help="minutes; default: the engine's own default")
    ap.add_argument("--gen-rows", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fingerprint", default=None, help="of the train rows; stored so a later --reuse can check it")
    ap.add_argument("--ctx", type=Path, default=None, help="a context table: --train holds its rows' records")
    ap.add_argument("--ctx-key", default=None, help="the context's primary key, and the records' foreign key")
    args = ap.parse_args()

    out = args.out.resolve()
    ws = out / "workspace"
    shutil.rmtree(ws, ignore_errors=True)  # a fresh workspace: no resumed model, no stale synthetic parts
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_DATASETS_CACHE", str(out / "hf-cache"))

    import pandas as pd
    from mostlyai import engine

    log_to_file(out / "engine.log")
    engine.set_random_state(args.seed)
    tgt = read_parquet(args.train)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    budget_minutes = args.budget
    synthetic_ctx = None
    if args.ctx is not None:
        ctx = read_parquet(args.ctx)
        share = ctx.size / (ctx.size + tgt.size)
        ctx_budget = None if args.budget is None else args.budget * share
        budget_minutes = None if args.budget is None else args.budget - ctx_budget
        synthetic_ctx = context_model(engine, ctx, args.ctx_key, out / "workspace-ctx", ctx_budget, seconds)
        synthetic_ctx.to_parquet(out / "synthetic-ctx.parquet", index=False)
    t = time.perf_counter()
    if args.ctx is not None:
        engine.split(tgt_data=tgt, ctx_data=ctx, tgt_context_key=args.ctx_key, ctx_primary_key=args.ctx_key,
                     model_type="TABULAR", workspace_dir=ws)
    else:
        engine.split(tgt_data=tgt, model_type="TABULAR", workspace_dir=ws)  # its own 80/20 train/validation split
    seconds["split"] = time.perf_counter() - t
    t = time.perf_counter()
    engine.analyze(workspace_dir=ws)
    seconds["analyze"] = time.perf_counter() - t
    t = time.perf_counter()
    engine.encode(workspace_dir=ws)
    seconds["encode"] = time.perf_counter() - t
    budget = "engine default" if args.budget is None else f"{args.budget:g} min"
    print(f"[reference] split+analyze+encode {time.perf_counter() - started:.1f}s; training, budget {budget}",
          flush=True)
    # max_training_time is in minutes (the engine multiplies it by 60); left out, the engine's default applies
    train_kwargs = {} if budget_minutes is None else {"max_training_time": budget_minutes}
    t = time.perf_counter()
    engine.train(workspace_dir=ws, update_progress=show_epochs, **train_kwargs)
    seconds["train"] = time.perf_counter() - t
    training_seconds = time.perf_counter() - started
    epochs = progress_summary(ws / "ModelStore" / "model-data" / "progress-messages.csv")
    ran = f"{epochs['epochs']:g}" if "epochs" in epochs else "?"
    best = f"{epochs['best_epoch']:g}" if "best_epoch" in epochs else "none (no epoch finished)"
    print(f"[reference] trained {ran} epochs, best epoch {best}, {seconds['train']:.1f}s", flush=True)

    timed_model_load(seconds)
    t = time.perf_counter()
    if synthetic_ctx is not None:  # the records of the synthetic context rows
        engine.generate(workspace_dir=ws, ctx_data=synthetic_ctx)
    else:
        engine.generate(workspace_dir=ws, sample_size=args.gen_rows)
    generation_seconds = time.perf_counter() - t
    synthetic = read_parquet(ws / "SyntheticData").reset_index(drop=True)  # parts are written with an index
    synthetic.to_parquet(out / "synthetic.parquet", index=False)
    sampling_seconds = generation_seconds - seconds.get("model_load", 0.0)
    print(f"[reference] generated {len(synthetic):,} rows in {generation_seconds:.2f}s "
          f"(model load {seconds.get('model_load', float('nan')):.2f}s)", flush=True)

    result = {
        "engine": "reference",
        "engine_version": engine.__version__,
        "budget_minutes": args.budget,
        "fingerprint": args.fingerprint,
        "seed": args.seed,
        "training_seconds": training_seconds,  # split + analyze + encode + train (both models with --ctx)
        "train_stage_seconds": seconds["train"],
        "stage_seconds": seconds,
        "generation_seconds": generation_seconds,  # incl. model load, decoding, parquet write
        "sampling_seconds": sampling_seconds,  # generation_seconds without model loading
        "model_load_timed": "model_load" in seconds,
        "generated_rows": len(synthetic),
        "rows_per_second": len(synthetic) / sampling_seconds if sampling_seconds > 0 else None,
        **epochs,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))


def context_model(engine, ctx, key: str, ws: Path, budget: float | None, seconds: dict):
    """A flat model of the context table, and as many synthetic context rows as it has."""
    import pandas as pd

    shutil.rmtree(ws, ignore_errors=True)
    t = time.perf_counter()
    engine.split(tgt_data=ctx, tgt_primary_key=key, model_type="TABULAR", workspace_dir=ws)
    engine.analyze(workspace_dir=ws)
    engine.encode(workspace_dir=ws)
    engine.train(workspace_dir=ws, **({} if budget is None else {"max_training_time": budget}))
    seconds["context_train"] = time.perf_counter() - t
    engine.generate(workspace_dir=ws, sample_size=len(ctx))
    return read_parquet(ws / "SyntheticData").reset_index(drop=True)


def progress_summary(path: Path) -> dict:
    """Epochs run and the best one, from the progress log the engine keeps beside the model."""
    import pandas as pd

    if not path.exists():
        return {}
    log = pd.read_csv(path)
    if log.empty:
        return {}
    summary = {"epochs": float(log["epoch"].max())}  # fractional when stopped mid-epoch
    # epoch-end messages carry val_loss; a run stopped by time inside its first epoch has none
    per_epoch = log[log["val_loss"].notna()] if "val_loss" in log else log.iloc[0:0]
    if not per_epoch.empty:
        best = per_epoch.loc[per_epoch["val_loss"].idxmin()]
        summary.update(best_epoch=float(best["epoch"]), best_val_loss=float(best["val_loss"]))
    return summary

if __name__ == "__main__":
    main()
