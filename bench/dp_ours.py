"""OURS for the differential-privacy benchmark (run_dp.py): run_ours.py, then our quality stage, in one process.

    .venv/bin/python bench/dp_ours.py RUN_OURS_ARGS...      (the same arguments as bench/run_ours.py)

run_ours.py trains and generates as always (its --train-option carries `differential_privacy={...}`); this
process also counts the optimiser's steps (for the LLM's seconds per pass over the data) and afterwards runs
DatasetPipeline.quality() on the published synthetic tables. It adds to <out>/result.json:
- privacy: the model's privacy.json (PrivacyLedger.summary(): epsilon, delta, epsilon_training, ...), or None;
- optimizer_steps, and progress: each model's progress.json (one per table for a two-table dataset);
- quality: per table our quality stage's privacy figures (dcr_share, dcr_floor, dcr_excess, membership_auc, exact
  copies), and quality_seconds; a failure of the quality stage is kept as quality_error (a traceback), not raised.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def count_steps() -> dict:
    """Count plain AdamW steps (opacus's DP optimiser steps the AdamW it wraps once per step, so each counts once)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    counter = {"steps": 0}

    def hook(optimizer, args, kwargs):
        if type(optimizer) is torch.optim.AdamW:
            counter["steps"] += 1

    register_optimizer_step_post_hook(hook)
    return counter


def model_progress(model_dir: Path) -> dict[str, list[dict]]:
    """Each model's epochs: {"": [...]} for one model, {table: [...]} for a tree of models."""
    if (model_dir / "progress.json").is_file():
        return {"": json.loads((model_dir / "progress.json").read_text())}
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(model_dir.glob("*/progress.json"))}


def our_figures(table: str) -> dict:
    """The quality stage on the published synthetic tables, and the model's ledger and progress."""
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.privacy_budget import LEDGER_FILE, PrivacyLedger

    pipeline = DatasetPipeline(load_project(), table)
    model_dir = pipeline.paths.model
    ledger = model_dir / LEDGER_FILE
    out = {"privacy": PrivacyLedger.model_validate_json(ledger.read_text()).summary() if ledger.is_file() else None,
           "progress": model_progress(model_dir)}
    started = time.perf_counter()
    try:
        results, _ = pipeline.quality()
        out["quality"] = {name: {"privacy": q.privacy, "accuracy": q.accuracy}
                          for name, q in results.items()}
    except Exception:  # noqa: BLE001 - recorded for the report; the trained model's figures still count
        out["quality_error"] = traceback.format_exc()
        print(f"[ours] quality stage FAILED:\n{out['quality_error']}", flush=True)
    out["quality_seconds"] = time.perf_counter() - started
    return out


def main() -> None:
    argv = sys.argv[1:]
    out = Path(argv[argv.index("--out") + 1]).resolve()
    table = argv[argv.index("--table") + 1]
    counter = count_steps()
    from bench import run_ours

    sys.argv = [str(REPO / "bench" / "run_ours.py"), *argv]
    run_ours.main()  # sets SYNTH_CONFIG and SYNTH_HOME for the pipeline below
    result = json.loads((out / "result.json").read_text())
    result["optimizer_steps"] = counter["steps"]
    result.update(our_figures(table))
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"[ours] privacy {json.dumps(result['privacy'])}; quality stage {result['quality_seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    from bench.procs import keep_traceback

    keep_traceback(main)
