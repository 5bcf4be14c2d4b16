"""Score a synthetic table with the shared judge (mostlyai-qa, run by qa_eval.py in the peer venv)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def judge(python: str, qa_script: Path, syn: Path, trn: Path, hol: Path, report: Path,
          ctx: tuple[str, Path, Path, Path] | None = None) -> dict:
    """Returns qa_eval's JSON: accuracy {overall, univariate, ..., *_max}, dcr_share, discriminator_auc.

    `ctx` = (key, synthetic, training, holdout context tables) judges records under their context rows (adds
    coherence)."""
    cmd = [python, str(qa_script), "--syn", str(syn), "--trn", str(trn), "--hol", str(hol), "--report", str(report)]
    if ctx is not None:
        key, syn_ctx, trn_ctx, hol_ctx = ctx
        cmd += ["--ctx-key", key, "--syn-ctx", str(syn_ctx), "--trn-ctx", str(trn_ctx), "--hol-ctx", str(hol_ctx)]
    # the judge logs to stdout too; its result is the last line that parses as JSON
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=report.parent)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise RuntimeError(f"qa_eval.py gave no JSON (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
