"""Side-by-side benchmark on two-table data: subjects (a context table) with their ordered records.

    .venv/bin/python bench/run_sequential.py [--data PATH] [--key id] [--order-by year] [--budget MINUTES]
                                             [--seed S] [--ours-only | --reference-only] [--reuse]

Default: ../shared/data/rwm5yr.csv.gz, persons (`id` and the columns constant within every person) as the
context, their yearly records (ordered by year) as the sequences. The persons are split 80/20 (train/holdout)
once, each with all their records. Both engines get the same budget (default 5 minutes, the issue's cap) and
generate a fully synthetic copy: as many persons as the training split, and their records. The judge
(mostlyai-qa) scores the records with their context (accuracy, coherence, DCR share); our own sequence scores
(records per person, coherence, parent-child accuracy: synth_assets/stages/sequence_quality.py) are computed
for both engines too. bench/RESULTS.md keeps the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.judge import judge  # noqa: E402
from bench.results import command_line, comparison_table, machine, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT, run_engine, say  # noqa: E402
from bench.tables import HOLDOUT_SHARE, fingerprint, read_parquet, read_table, table_name  # noqa: E402
from synth_assets.files import write_parquet  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "rwm5yr.csv.gz"
RECORDS = "records"
CONTEXT = "context"  # the name run_ours.py gives the context table


def seed_suffix(seed: int) -> str:
    """What a seed other than 0 adds to the names of its split's files and its runs' folders."""
    return "" if seed == 0 else f"-seed{seed}"


def split_subjects(source: Path, key: str, work: Path, seed: int) -> dict:
    """Context (the key and the columns constant within every subject) and records, split 80/20 by subject."""
    df = read_table(source)
    constant = [c for c in df.columns if c != key and (df.groupby(key)[c].nunique(dropna=False) <= 1).all()]
    ctx = df.groupby(key, sort=True)[constant].first().reset_index()
    records = df.drop(columns=constant)
    subjects = ctx[key].sample(frac=1.0, random_state=seed).to_numpy()
    holdout = set(subjects[: round(len(subjects) * HOLDOUT_SHARE)])
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    # each seed's split in files of its own: runs of two seeds side by side once judged one against the other's
    seeded = seed_suffix(seed)
    for part, in_part in (("train", lambda k: ~k.isin(holdout)), ("holdout", lambda k: k.isin(holdout))):
        paths[part] = work / f"{part}{seeded}.parquet"
        paths[f"{part}_ctx"] = work / f"{part}-ctx{seeded}.parquet"
        # whole or not at all (the project's atomic writer): two runs side by side once read a half-written split
        write_parquet(records[in_part(records[key])].reset_index(drop=True), paths[part])
        write_parquet(ctx[in_part(ctx[key])].reset_index(drop=True), paths[f"{part}_ctx"])
    train = read_parquet(paths["train"])
    return {**paths, "context_columns": constant, "subjects": len(read_parquet(paths["train_ctx"])),
            "records": len(train), "fingerprint": fingerprint(train)}


def context_dcr_share(python: str, qa_script: Path, split: dict, key: str, folder: Path) -> float | None:
    """The judge's DCR share of the context table alone (the subjects), as a flat table without its key: the
    records' DCR share covers the records with their count, not the subjects' own columns."""
    if not split["context_columns"]:
        return None
    paths = {}
    for side, source in (("syn", folder / "synthetic-ctx.parquet"), ("trn", split["train_ctx"]),
                         ("hol", split["holdout_ctx"])):
        paths[side] = folder / f"ctx-{side}-keyless.parquet"
        read_parquet(source)[split["context_columns"]].to_parquet(paths[side], index=False)
    qa = judge(python, qa_script, paths["syn"], paths["trn"], paths["hol"], folder / "qa-report-ctx.html")
    return qa.get("dcr_share")


def our_sequence_scores(split: dict, key: str, order_by: list[str], synthetic: Path, synthetic_ctx: Path) -> dict:
    """Our own sequence scores of one engine's output (see synth_assets/stages/sequence_quality.py)."""
    from synth_assets.config import DatasetSpec, ForeignKey, TableSpec
    from synth_assets.stages.sequence_quality import evaluate_sequences
    from synth_assets.stages.stats import compute_stats

    spec = DatasetSpec(tables={
        CONTEXT: TableSpec(source="c.parquet", primary_key=key),
        RECORDS: TableSpec(source="r.parquet", foreign_keys=[ForeignKey(column=key, references=CONTEXT)],
                           order_by=order_by)})
    frames = {side: {CONTEXT: read_parquet(split[f"{side}_ctx"]), RECORDS: read_parquet(split[side])}
              for side in ("train", "holdout")}
    stats = compute_stats(spec, frames["train"], dataset="bench")
    syn = {CONTEXT: read_parquet(synthetic_ctx), RECORDS: read_parquet(synthetic)}
    q = evaluate_sequences(stats.tables[RECORDS], stats.tables[CONTEXT], frames["train"], frames["holdout"], syn)
    return q.model_dump()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--key", default="id", help="the column naming the subject of each record")
    ap.add_argument("--order-by", nargs="*", default=["year"], help="columns ordering a subject's records")
    ap.add_argument("--budget", type=float, default=5.0, help="training minutes for each engine (both models)")
    ap.add_argument("--seed", type=int, default=0)
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--ours-only", action="store_true")
    only.add_argument("--reference-only", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse the reference's earlier result (same split, budget)")
    ap.add_argument("--ours-train", nargs="*", default=[], metavar="KEY=VALUE",
                    help="train options for ours beyond the budget, e.g. dropout=0.2")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)

    work = Path("/tmp/synth-bench") / f"{table_name(args.data)}_sequential"
    load = os.getloadavg()[0]
    split = split_subjects(args.data, args.key, work, args.seed)
    say(f"{split['subjects']:,} subjects ({', '.join(split['context_columns']) or 'no other columns'}) with "
        f"{split['records']:,} records for training, in {work}")
    common = ["--train", str(split["train"]), "--ctx", str(split["train_ctx"]), "--ctx-key", args.key,
              "--budget", f"{args.budget:g}", "--gen-rows", str(split["subjects"]), "--seed", str(args.seed)]
    runs, folders = {}, {}
    # another seed is another split: its runs get folders of their own, so seed 0's reference stays reusable
    suffix = seed_suffix(args.seed)
    if not args.reference_only:
        # runs with other train options get folders of their own, so that two can run side by side
        out = folders["ours"] = work / ("ours" + suffix + "".join(f"-{option}" for option in args.ours_train))
        runs["ours"] = run_engine("ours", [sys.executable, str(REPO / "bench" / "run_ours.py"), *common,
                                           "--out", str(out), "--table", RECORDS, "--order-by", *args.order_by,
                                           "--train-option", *args.ours_train], out)
    folders["reference"] = work / f"reference{suffix}"
    reference_result = folders["reference"] / "result.json"
    if not args.ours_only:
        reused = None
        if args.reuse and reference_result.exists():
            reused = json.loads(reference_result.read_text())
            if reused.get("fingerprint") != split["fingerprint"] or reused.get("budget_minutes") != args.budget:
                reused = None
        if reused is not None:
            say(f"reference: reusing {reference_result}")
            runs["reference"] = {**reused, "reused": True}
        else:
            out = folders["reference"]
            runs["reference"] = run_engine("reference", [args.peer_python, str(REPO / "bench" / "run_reference.py"),
                                                         *common, "--out", str(out), "--fingerprint",
                                                         split["fingerprint"]], out)
    ceilings = {}
    for name, run in runs.items():
        # the folder the engine wrote: a run with other train options has its own (judging `ours` there once
        # scored the default run's tables under every variant's name)
        folder = folders[name]
        say(f"{name}: scoring with qa_eval.py and our sequence scores")
        run["qa"] = judge(args.peer_python, args.qa_script, folder / "synthetic.parquet", split["train"],
                          split["holdout"], folder / "qa-report.html",
                          ctx=(args.key, folder / "synthetic-ctx.parquet", split["train_ctx"], split["holdout_ctx"]))
        ours = our_sequence_scores(split, args.key, args.order_by, folder / "synthetic.parquet",
                                   folder / "synthetic-ctx.parquet")
        run.update(length_accuracy=ours["length_accuracy"], our_coherence=ours["coherence"],
                   parent_child=ours["parent_child_accuracy"])
        ceilings = {"length_accuracy": ours["holdout_length_accuracy"], "our_coherence": ours["holdout_coherence"],
                    "parent_child": ours["holdout_parent_child_accuracy"],
                    "qa_coherence": run["qa"]["accuracy"].get("coherence_max")}
        run["qa_coherence"] = run["qa"]["accuracy"].get("coherence")
        run.setdefault("rows_per_second_before_audit", run.get("rows_per_second"))  # the reference audits nothing
        run["context_dcr_share"] = context_dcr_share(args.peer_python, args.qa_script, split, args.key, folder)
    extra = {"rows/s before the audit": "rows_per_second_before_audit", "coherence (qa)": "qa_coherence", "records per subject": "length_accuracy",
             "coherence (ours)": "our_coherence", "parent-child": "parent_child",
             "DCR share (context table)": "context_dcr_share"}
    table = comparison_table(runs, extra, ceilings)
    print()
    print(table)
    print()
    heading = f"## {table_name(args.data)} sequential · {args.key} → records by {', '.join(args.order_by)} · " \
              f"budget {args.budget:g} min each · seed {args.seed}"
    notes = [f"- {name}: training (both models) {run['training_seconds']:.1f}s; generated {run['generated_rows']:,} "
             f"records in {run['generation_seconds']:.2f}s incl. model load"
             + (" (reused from an earlier run)" if run.get("reused") else "") for name, run in runs.items()]
    body = "\n".join([
        f"- date: {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"- machine: {machine()}; load average {load:.1f} at the start",
        f"- command: `{command_line('bench/run_sequential.py')}`",
        f"- data: {split['subjects']:,} subjects ({', '.join(split['context_columns'])}) with {split['records']:,} "
        f"records for training; holdout 20% of subjects. Both engines generate as many synthetic subjects and "
        f"their records. Coherence (qa) and accuracy are mostlyai-qa's on the records with their context; records "
        f"per subject, coherence (ours) and parent-child are ours (synth_assets/stages/sequence_quality.py). "
        f"DCR share is the judge's on the records (with their number per subject); DCR share (context table) "
        f"the judge's on the context table alone, without its key.",
        *notes, "", table,
    ])
    update_results_file(args.results, heading, body)
    say(f"results: {args.results}")


if __name__ == "__main__":
    main()
