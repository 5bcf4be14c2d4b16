"""The comparison table (printed, and kept in bench/RESULTS.md) and the machine it ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COLUMNS = ["engine", "training s", "generation rows/s", "accuracy", "univariate", "bivariate", "trivariate",
           "DCR share", "discriminator AUC", "peak MB"]
ACCURACY_KEYS = ["overall", "univariate", "bivariate", "trivariate"]


def _row(name: str, run: dict, extra: dict[str, str]) -> list:
    qa = run.get("qa", {})
    acc = qa.get("accuracy", {})
    return [name, run.get("training_seconds"), run.get("rows_per_second"), *[acc.get(k) for k in ACCURACY_KEYS],
            *[run.get(key) for key in extra.values()], qa.get("dcr_share"), qa.get("discriminator_auc"),
            run.get("peak_mb")]


def _fmt(value, column: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if column in ("training s",):
        return f"{value:,.1f}"
    if column in ("generation rows/s", "rows/s before the audit", "peak MB"):
        return f"{value:,.0f}"
    return f"{value:.3f}"


def comparison_table(runs: dict[str, dict], extra: dict[str, str] | None = None,
                     ceilings: dict[str, float] | None = None) -> str:
    """Markdown table: one row per engine, the holdout ceiling, and ours/reference when both ran.

    `extra`: more score columns after the accuracies, column title -> key of a run's result; `ceilings`: their
    holdout values, by the same keys."""
    extra = extra or {}
    columns = COLUMNS[:7] + list(extra) + COLUMNS[7:]
    rows = [_row(name, run, extra) for name, run in runs.items()]
    any_qa = next((r["qa"] for r in runs.values() if r.get("qa")), None)
    if any_qa:
        acc = any_qa["accuracy"]
        rows.append(["holdout (ceiling)", None, None, *[acc.get(f"{k}_max") for k in ACCURACY_KEYS],
                     *[(ceilings or {}).get(key) for key in extra.values()], None, None, None])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(v, c) for v, c in zip(row, columns)) + " |" for row in rows]
    if "ours" in runs and "reference" in runs:
        ours, ref = _row("", runs["ours"], extra), _row("", runs["reference"], extra)
        ratios = ["ours / reference"] + [
            f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "–"
            for a, b in zip(ours[1:], ref[1:])
        ]
        lines.append("| " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def cell(value, digits: int = 3) -> str:
    """A table cell: a number to `digits` places (thousands separated), a string as it is, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                      if l.startswith("MemTotal"))
        mem = f", {mem_kb / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration):
        mem = ""
    return f"nproc {len(os.sched_getaffinity(0))}, {cpu}{mem}, {platform.system()} {platform.machine()}"


def command_line(script: str) -> str:
    """How this run was started, as one would type it in the repository (for the results file)."""
    interpreter = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    # thread limits change the timings a lot on a shared machine, so they belong to the command
    threads = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ]
    return " ".join([*threads, shlex.join([interpreter, script, *sys.argv[1:]])])


def run_lines(script: str) -> list[str]:
    """The date, machine and command lines that open a section of the results file."""
    return [f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", f"- machine: {machine()}",
            f"- command: `{command_line(script)}`"]


HEADER = """# Benchmark results

Written by `bench/run_bench.py` (see docs/benchmarks.md). One section per table and settings; a rerun
with the same settings replaces its section. Accuracy, DCR share and discriminator AUC are mostlyai-qa's
(`qa_eval.py`): accuracy against the train split, "holdout (ceiling)" is what the unseen 20% holdout itself scores;
DCR share about 0.5 is private; discriminator AUC (training vs synthetic rows) about 0.5 means they cannot be
told apart. Training s = split + stats/analyze + encode + train; generation rows/s excludes model loading.
"""


def update_results_file(path: Path, heading: str, body: str) -> None:
    """Replace the section under `heading` (up to the next '## '), or append it."""
    text = path.read_text() if path.exists() else HEADER
    lines = text.rstrip("\n").split("\n")
    section = [heading, "", *body.rstrip("\n").split("\n")]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section + [""]
    else:
        lines += ["", *section]
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
