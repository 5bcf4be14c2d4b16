"""Score a synthetic table with the shared judge (mostlyai-qa, run by qa_eval.py in the peer venv)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def judge(python: str, qa_script: Path, syn: Path, trn: Path, hol: Path, report: Path) -> dict:
    """Returns qa_eval's JSON: accuracy {overall, univariate, ..., *_max}, dcr_share, discriminator_auc."""
    cmd = [python, str(qa_script), "--syn", str(syn), "--trn", str(trn), "--hol", str(hol), "--report", str(report)]
    # the judge logs to stdout too; its result is the last line that parses as JSON
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=report.parent)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise RuntimeError(f"qa_eval.py gave no JSON (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
