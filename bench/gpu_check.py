"""The CUDA paths, on a machine that has CUDA: `make gpu-check` (python -m bench.gpu_check).

Trains and generates on `cuda` through the product's own pipeline: TabularARGN on a flat table (diamonds) and on
persons with their yearly records (the rwm5yr panel), and the LLM backend on the same panel, generating with the
transformers engine and with vLLM. Each step's device, seconds, epochs and rows per second go to
bench/results/gpu_check.json and are printed as a table; a step that fails is recorded with its error, and the
others still run. About 4 minutes with the default budget of 0.5 minutes per training.

On a machine without CUDA it says so and exits 0: nothing to check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"


def project_file(folder: Path, minutes: float) -> Path:
    panel = {"persons": {"source": str(DEMO / "persons.csv.gz"), "primary_key": "id"},
             "years": {"source": str(DEMO / "years.csv.gz"), "order_by": "year",
                       "foreign_keys": [{"column": "id", "references": "persons"}]}}
    datasets = {
        "gems": {"backend": "tabular_argn", "tables": {"diamonds": {"source": str(DEMO / "diamonds.csv.gz")}},
                 "train": {"max_training_time": minutes}, "generate": {"sample_size": 20_000, "seed": 1}},
        "panel": {"backend": "tabular_argn", "tables": panel, "train": {"max_training_time": minutes},
                  "generate": {"sample_size": 2_000, "seed": 1}},
        "panel_llm": {"backend": "llm", "tables": panel,
                      "train": {"max_training_time": minutes, "model_size": "tiny", "context_window": 512},
                      "generate": {"sample_size": 300, "seed": 1, "engine": "transformers"}},
    }
    (folder / "synth.yaml").write_text(yaml.safe_dump({"datasets": datasets}, sort_keys=False))
    return folder


def step(rows: list[dict], dataset: str, what: str, run) -> bool:
    """Run one step and record its figures (or its error); whether it worked."""
    started = time.perf_counter()
    try:
        figures = run()
    except Exception as exc:  # noqa: BLE001 - a failed step is a finding; the other datasets still run
        rows.append({"dataset": dataset, "step": what, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()[-3000:], "seconds": round(time.perf_counter() - started, 1)})
        print(f"{dataset} {what}: FAILED {type(exc).__name__}: {exc}", flush=True)
        return False
    rows.append({"dataset": dataset, "step": what, "seconds": round(time.perf_counter() - started, 1), **figures})
    print(f"{dataset} {what}: {figures}", flush=True)
    return True


def check(folder: Path, rows: list[dict], device: str = "cuda") -> None:
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.project import load_project

    project = load_project(folder)
    for name in project.spec.datasets:
        pipeline = DatasetPipeline(project, name)

        def prepare(pipeline=pipeline):
            pipeline.split(), pipeline.stats(), pipeline.encode()
            return {}

        def train(pipeline=pipeline):
            result = pipeline.train(device=device)  # audited (the checkpoint's soundness) and published
            return {"device": result.device, "epochs": result.epochs, "stopped": result.stopped_because,
                    "best_validation_loss": round(result.best_validation_loss, 4)}

        if not (step(rows, name, "split, stats, encode", prepare) and step(rows, name, f"train on {device}", train)):
            continue
        for engine in (["transformers", "vllm"] if pipeline.spec.backend == "llm" else [None]):
            def generate(pipeline=pipeline, engine=engine):
                options = pipeline.spec.generate
                if engine is not None:
                    options = options.model_copy(update={"engine": engine})
                # a candidate: a device check publishes no synthetic tables, so no privacy gate
                generated = pipeline.generate(options, device=device, publish=False)
                drawn = sum(generated.rows.values())
                return {"rows": drawn, "rows_per_second": int(drawn / max(generated.seconds, 1e-9)),
                        "draw_rows_per_second": int(drawn / generated.draw_seconds) if generated.draw_seconds else None}

            step(rows, name, f"generate on {device}{f' ({engine})' if engine else ''}", generate)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=0.5, help="training budget of each model, in minutes")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="cpu: the same steps on the CPU, to try this script where no GPU is")
    args = ap.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA on this machine (torch.cuda.is_available() is False): nothing to check; run `make gpu-check` "
              "where a GPU is")
        return 0
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SYNTH_HOME"] = str(Path(tmp) / "store")
        os.environ.pop("SYNTH_CONFIG", None)
        check(project_file(Path(tmp), args.minutes), rows, args.device)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none (--device cpu)"
    report = {"gpu": gpu, "torch": torch.__version__, "minutes_per_training": args.minutes,
              "steps": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\n{report['gpu']}, torch {report['torch']}")
    for row in rows:
        figures = {k: v for k, v in row.items() if k not in ("dataset", "step", "traceback")}
        print(f"  {row['dataset']:<10} {row['step']:<28} {figures}")
    print(f"written: {args.out}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
