"""Seed records (issue 25): how much given first records steer what TabularARGN writes after them.

    .venv/bin/python bench/run_seeded.py [--data ../shared/data/rwm5yr.csv.gz] [--budget 2] [--given 2] [--seed 0]
        [--work /tmp/bench_seeded] [--no-results]

1. split: persons 80/20 (run_sequential.py's split_subjects: `id`, the columns constant within a person as the
   context, the yearly records ordered by year).
2. train: TabularARGN's Python API on the training persons and their records, --budget minutes.
3. generate, for the holdout persons with more records than --given: their records (a) continuing their real
   first --given records (seed records), (b) with no records given (the persons only: what generation did before).
4. score the record right after the given ones, against that person's real one: per numeric column the median
   absolute error, per categorical column the share equal; and, for (a), (b) and the real records of the same
   persons, the judge's (mostlyai-qa, qa_eval.py) accuracy and coherence of the records after the given ones
   against the training records (the real ones' figures are the ceiling a same-sized real sample reaches).
5. bench/RESULTS.md gets the section "Seed records (issue 25)" (replaced on a rerun).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.judge import judge  # noqa: E402
from bench.results import cell, run_lines, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT  # noqa: E402
from bench.run_sequential import split_subjects  # noqa: E402
from bench.tables import read_parquet  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "rwm5yr.csv.gz"
KEY, ORDER = "id", "year"
HEADING = "## Seed records (issue 25) · rwm5yr"


def after_given(records: pd.DataFrame, given: int) -> pd.DataFrame:
    """Each person's records after their first `given` (in year order)."""
    ordered = records.sort_values([KEY, ORDER], kind="stable")
    return ordered[ordered.groupby(KEY).cumcount() >= given].reset_index(drop=True)


def next_record_scores(synthetic: pd.DataFrame, real: pd.DataFrame, given: int) -> dict:
    """The record right after the given ones, against the person's real one: median absolute error of each numeric
    column that varies, share equal of each categorical (few-valued) column."""
    def nth(df):
        ordered = df.sort_values([KEY, ORDER], kind="stable")
        return ordered[ordered.groupby(KEY).cumcount() == given].set_index(KEY)

    syn, ref = nth(synthetic), nth(real)
    both = syn.index.intersection(ref.index)
    syn, ref = syn.loc[both], ref.loc[both]
    scores = {"persons": len(both)}
    for column in ref.columns:
        if ref[column].nunique() <= 6:
            scores[f"{column} equal"] = float((syn[column].to_numpy() == ref[column].to_numpy()).mean())
        else:
            scores[f"{column} MAE"] = float(np.median(np.abs(syn[column].astype(float) - ref[column].astype(float))))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--given", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_seeded"))
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    from synth_tabular_argn import TabularARGN

    split = split_subjects(args.data, KEY, args.work, args.seed)
    train, train_ctx = read_parquet(split["train"]), read_parquet(split["train_ctx"])
    holdout, holdout_ctx = read_parquet(split["holdout"]), read_parquet(split["holdout_ctx"])
    started = time.perf_counter()
    model = TabularARGN(tgt_context_key=KEY, ctx_primary_key=KEY, ctx_data=train_ctx, order_by=ORDER,
                        max_training_time=args.budget, seed=args.seed, workspace=args.work / "model").fit(train)
    trained = time.perf_counter() - started
    counts = holdout.groupby(KEY).size()
    persons = holdout_ctx[holdout_ctx[KEY].isin(counts[counts > args.given].index)].reset_index(drop=True)
    real = holdout[holdout[KEY].isin(persons[KEY])].reset_index(drop=True)
    first = real.sort_values([KEY, ORDER], kind="stable").groupby(KEY).head(args.given).reset_index(drop=True)
    runs = {}
    started = time.perf_counter()
    runs["seeded"] = model.sample_records(ctx_data=persons, seed_data=first, seed=args.seed)[1]
    seeded_seconds = time.perf_counter() - started
    runs["persons only"] = model.sample_records(ctx_data=persons, seed=args.seed)[1]
    runs["real"] = real
    rows = {}
    for name, records in runs.items():
        rows[name] = next_record_scores(records, real, args.given) if name != "real" else {}
        later = after_given(records, args.given)
        folder = args.work / name.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        syn, syn_ctx = folder / "syn.parquet", folder / "syn-ctx.parquet"
        later.to_parquet(syn, index=False)
        persons.to_parquet(syn_ctx, index=False)
        qa = judge(PEER_PYTHON, QA_SCRIPT, syn, Path(split["train"]), Path(split["holdout"]), folder / "qa.html",
                   ctx=(KEY, syn_ctx, Path(split["train_ctx"]), Path(split["holdout_ctx"])))
        accuracy = qa["accuracy"]
        rows[name].update({"judge accuracy": accuracy.get("overall"), "judge coherence": accuracy.get("coherence"),
                           "records after the given": len(later)})
        print(name, json.dumps(rows[name]), flush=True)
    (args.work / "summary.json").write_text(json.dumps({"rows": rows, "trained_seconds": trained,
                                                         "seeded_seconds": seeded_seconds}, indent=2))
    if args.no_results:
        return
    columns = [c for c in rows["seeded"] if c not in ("persons",)]
    lines = [*run_lines("bench/run_seeded.py"),
             f"- data: {args.data.name}, persons split 80/20 (seed {args.seed}); TabularARGN trained {trained:.0f} s "
             f"(budget {args.budget} min) on the training persons; {rows['seeded']['persons']:,} holdout persons "
             f"with more than {args.given} records, their first {args.given} given (seeded: {seeded_seconds:.1f} s)",
             "- next record: the record right after the given ones against the person's real one (MAE: median "
             "absolute error; equal: share of persons); judge: mostlyai-qa on the records after the given ones, "
             "with the persons as context, against the training records",
             "", "| run | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, scores in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(scores.get(c), 0 if isinstance(scores.get(c), int) else 3)
                                                  for c in columns) + " |")
    update_results_file(REPO / "bench" / "RESULTS.md", HEADING, "\n".join(lines))


if __name__ == "__main__":
    main()
