"""Side-by-side benchmark: our TabularARGN backend vs the reference engine (mostlyai-engine), same data.

    .venv/bin/python bench/run_bench.py [--data PATH ...] [--budget MINUTES] [--gen-rows N] [--seed S]
                                        [--sample-rows N] [--drop COLUMN ...]
                                        [--ours-only | --reference-only] [--reuse]

Per table: split once 80/20 (train/holdout), run OURS and the REFERENCE one after the other (never both
at once: on 2 cores each slows the other several times), each in its own subprocess, then score both
synthetic tables with the shared judge and print one table; bench/RESULTS.md keeps it.

Without --budget the reference trains with its own defaults (early stopping decides) and runs first;
ours then gets the same number of minutes that the reference's train stage took. With --budget both get it,
and ours runs first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.judge import judge  # noqa: E402
from bench.procs import run_measured  # noqa: E402
from bench.results import command_line, comparison_table, machine, update_results_file  # noqa: E402
from bench.tables import BenchSplit, split_once, table_name  # noqa: E402

DEFAULT_DATA = REPO / "data" / "demo" / "diamonds.csv.gz"  # the full 53,940 rows, same file as shared/data
PEER_PYTHON = "/tmp/peer-venv/bin/python"
QA_SCRIPT = REPO.parent / "shared" / "tools" / "qa_eval.py"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", default=[DEFAULT_DATA],
                    help="flat tables (.csv, .csv.gz, .parquet); default: diamonds")
    ap.add_argument("--budget", type=float, default=None,
                    help="training minutes for both; default: what the reference needs with its defaults")
    ap.add_argument("--gen-rows", type=int, default=None, help="rows to generate; default: as many as train rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-rows", type=int, default=None, help="subsample the input to N rows first")
    ap.add_argument("--drop", nargs="+", default=[], metavar="COLUMN",
                    help="columns to leave out first (an id that is a key, not data); absent ones are ignored")
    ap.add_argument("--work", type=Path, default=None, help="work folder; default /tmp/synth-bench/<table>")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--ours-only", action="store_true")
    only.add_argument("--reference-only", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the reference's result from an earlier run in the same work folder (same split)")
    ap.add_argument("--peer-python", default=PEER_PYTHON, help="python of the venv with mostlyai-engine and -qa")
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT, help="the judge, qa_eval.py")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)
    if len(args.data) > 1 and args.work:
        ap.error("--work takes one table; leave it out for several --data")
    return args


# --- the two engines --------------------------------------------------------------------------------------------

def run_engine(name: str, cmd: list[str], out: Path) -> dict:
    say(f"{name}: {shlex.join(cmd)}")
    proc = run_measured(cmd, env=dict(os.environ), cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see its output above")
    result = json.loads((out / "result.json").read_text())
    # the engine itself keeps about nproc threads busy; a 1-minute load well above that means company
    load = os.getloadavg()[0]
    result.update(peak_mb=proc.peak_mb, process_seconds=proc.seconds, load_at_end=load)
    (out / "result.json").write_text(json.dumps(result, indent=2))  # peak MB kept for a later --reuse
    say(f"{name}: done in {proc.seconds:.0f}s, peak {proc.peak_mb:,.0f} MB, load average {load:.1f}")
    if load > len(os.sched_getaffinity(0)) + 0.5:
        say(f"warning: other processes ran alongside {name}; its timings are not reliable")
    return result


def run_ours(split: BenchSplit, work: Path, budget: float, gen_rows: int, seed: int) -> dict:
    out = work / "ours"
    cmd = [sys.executable, str(REPO / "bench" / "run_ours.py"), "--train", str(split.train_path), "--out", str(out),
           "--table", split.table, "--budget", f"{budget:g}", "--gen-rows", str(gen_rows), "--seed", str(seed)]
    return run_engine("ours", cmd, out)


def run_reference(args, split: BenchSplit, work: Path, gen_rows: int) -> dict:
    out = work / "reference"
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "qa.json"):  # a failed run must not leave an old result to reuse
        (out / stale).unlink(missing_ok=True)
    cmd = [args.peer_python, str(REPO / "bench" / "run_reference.py"), "--train", str(split.train_path),
           "--out", str(out), "--gen-rows", str(gen_rows), "--seed", str(args.seed), "--fingerprint", split.fingerprint]
    if args.budget is not None:
        cmd += ["--budget", f"{args.budget:g}"]
    return run_engine("reference", cmd, out)


def reusable_reference(args, split: BenchSplit, work: Path, gen_rows: int) -> dict | None:
    """The earlier reference result, if it was made from the same train rows and settings."""
    path = work / "reference" / "result.json"
    if not path.exists():
        say("reference: nothing to reuse")
        return None
    result = json.loads(path.read_text())
    problems = [what for what, same in [
        ("train rows", result.get("fingerprint") == split.fingerprint),
        ("budget", result.get("budget_minutes") == args.budget),  # None: the engine's default
        ("generated rows", result.get("generated_rows") == gen_rows),
    ] if not same]
    if problems:
        say(f"reference: earlier result differs in {', '.join(problems)}; not reused")
        return None
    qa_path = work / "reference" / "qa.json"
    if qa_path.exists():
        result["qa"] = json.loads(qa_path.read_text())
    result["reused"] = True
    say(f"reference: reusing {path} (trained {result['training_seconds']:.0f}s)")
    return result


# --- one table --------------------------------------------------------------------------------------------------

def bench_table(args, source: Path) -> None:
    work = (args.work or Path("/tmp/synth-bench") / table_name(source)).resolve()
    load = os.getloadavg()[0]
    if load > 0.5:  # the engines time themselves; anything else running on 2 cores slows them a lot
        say(f"warning: load average {load:.1f} before starting; other processes skew the timings")
    split = split_once(source, work, args.seed, args.sample_rows, args.drop)
    gen_rows = args.gen_rows or split.train_rows
    say(f"{split.table}: {split.train_rows:,} train / {split.holdout_rows:,} holdout rows in {work}")

    runs: dict[str, dict] = {}
    reference = reusable_reference(args, split, work, gen_rows) if args.reuse and not args.reference_only else None
    want_ours = not args.reference_only
    want_reference = not args.ours_only and reference is None

    budget = args.budget
    if budget is None and want_ours:
        # ours needs the reference's time first: run the reference now (its defaults), not after ours
        if reference is None:
            if args.ours_only:
                raise SystemExit("--ours-only needs --budget, or --reuse with an earlier reference run")
            reference = run_reference(args, split, work, gen_rows)
            want_reference = False
        budget = reference["train_stage_seconds"] / 60
        say(f"budget for ours: {budget:.2f} min, the reference's train stage ({reference['train_stage_seconds']:.0f}s)")

    if want_ours:
        runs["ours"] = run_ours(split, work, budget, gen_rows, args.seed)
    if want_reference:
        reference = run_reference(args, split, work, gen_rows)
    if reference is not None:
        runs["reference"] = reference

    for name, run in runs.items():
        if "qa" not in run:  # a reused reference keeps its earlier scores
            say(f"{name}: scoring with qa_eval.py")
            run["qa"] = judge(args.peer_python, args.qa_script, work / name / "synthetic.parquet", split.train_path,
                              split.holdout_path, work / name / "qa-report.html")
            (work / name / "qa.json").write_text(json.dumps(run["qa"], indent=2))

    for run in runs.values():  # the reference audits nothing before it hands its tables over
        run.setdefault("rows_per_second_before_audit", run.get("rows_per_second"))
    table = comparison_table(runs, {"rows/s before the audit": "rows_per_second_before_audit"})
    print()
    print(table)
    print()
    record(args, split, budget, gen_rows, runs, table, load)


def record(args, split: BenchSplit, budget: float | None, gen_rows: int, runs: dict, table: str,
           load: float) -> None:
    budget_text = f"{args.budget:g} min" if args.budget is not None else "reference default"
    sample = f" · sample {args.sample_rows:,}" if args.sample_rows else ""
    sample += f" · without {', '.join(args.drop)}" if args.drop else ""
    heading = f"## {split.table} · budget {budget_text} · {gen_rows:,} rows generated{sample} · seed {args.seed}"
    command = command_line("bench/run_bench.py")
    notes = []
    for name, run in runs.items():
        epochs = run.get("epochs")
        notes.append(
            f"- {name}: train stage {run['train_stage_seconds']:.1f}s"
            + (f" of a {run['budget_minutes']:.3g} min budget" if run.get("budget_minutes") is not None else
               " (engine defaults)")
            + (f", {epochs:g} epochs" if epochs is not None else "")
            + (f" (best {run['best_epoch']:g})" if run.get("best_epoch") is not None else "")
            + (f", stopped: {run['stopped_because']}" if run.get("stopped_because") else "")
            + f"; generation {run['generation_seconds']:.2f}s incl. model load"
            + (f" {run['stage_seconds']['model_load']:.2f}s" if run.get("model_load_timed") else " (not timed apart)")
            + (f"; load average {run['load_at_end']:.1f} at its end" if "load_at_end" in run else "")
            + (" (reused from an earlier run)" if run.get("reused") else "")
        )
    body = "\n".join([
        f"- date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: {machine()}; load average {load:.1f} at the start",
        f"- command: `{command}`",
        f"- data: {split.train_rows:,} train / {split.holdout_rows:,} holdout rows (seed {args.seed})"
        + (f"; ours' budget {budget:.2f} min = the reference's train stage" if args.budget is None and budget else ""),
        *notes, "", table,
    ])
    update_results_file(args.results, heading, body)
    say(f"results: {args.results}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    needs = [(Path(args.peer_python), "the peer venv's python (build it with ../shared/tools/peer_setup.sh)"),
             (args.qa_script, "the judge qa_eval.py (--qa-script)"), *[(d, "the table") for d in args.data]]
    for path, what in needs:
        if not path.exists():
            raise SystemExit(f"{path}: not found; it is {what}")
    for source in args.data:
        bench_table(args, source)


if __name__ == "__main__":
    main()
