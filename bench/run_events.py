"""The LLM event tasks (issue 25) on a real tree with two event tables, made from the rwm5yr panel.

    OMP_NUM_THREADS=1 .venv/bin/python bench/run_events.py [--budget 3] [--seed 0] [--work /tmp/bench_events]
        [--no-results]

The data: rwm5yr's persons (the columns constant within a person) and, from their yearly records, two event
tables timed by the year: `checkups` (the years with doctor visits: docvis, hhninc, outwork, age) and `stays`
(the years with hospital stays: hospvis). Persons are split 80/20 (run_sequential.py's split_subjects).

1. rel_event, --budget minutes of training: as many persons as the holdout has, written from nothing. Measured:
   the valid share on the first try, events past the data's years, years out of order under a person (must be
   0), events per person against the holdout's, decode rows/s; and the judge's (mostlyai-qa) accuracy, coherence
   and discriminator AUC of each event table with the persons as context, against the holdout (the real
   holdout's own figures against the training data are the ceiling).
2. The same model asked for 2 to 4 events and no stays: the share of persons honouring it (must be 1).
3. rel_event_predict, --budget minutes: the holdout persons with 2+ events, their first event given, the next
   one written (n_future 1): the valid share, and how often the written event's table and year equal the real
   next event's, against always guessing the most common next table and against a draw from the next tables'
   shares (what a model that learnt only the shares scores, as a sampled prediction is a draw).
bench/RESULTS.md gets the section "Event tasks (issue 25)" (replaced on a rerun).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "llm"))

import pandas as pd  # noqa: E402

from bench.judge import judge  # noqa: E402
from bench.results import cell, run_lines, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT  # noqa: E402
from bench.run_sequential import split_subjects  # noqa: E402
from bench.tables import read_parquet  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "rwm5yr.csv.gz"
KEY, TIME = "id", "year"
EVENTS = {"checkups": ("docvis", ["docvis", "hhninc", "outwork", "age"]), "stays": ("hospvis", ["hospvis"])}
LINKS = {"persons": {"primary_key": KEY},
         **{t: {"order_by": TIME, "foreign_keys": [{"column": KEY, "references": "persons"}]} for t in EVENTS}}
HEADING = "## Event tasks (issue 25) · rwm5yr as persons with two event tables"


def event_tables(persons: pd.DataFrame, records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    tables = {"persons": persons.reset_index(drop=True)}
    for name, (flag, columns) in EVENTS.items():
        tables[name] = records.loc[records[flag] > 0, [KEY, TIME, *columns]].reset_index(drop=True)
    return tables


def per_person(tables: dict[str, pd.DataFrame]) -> pd.Series:
    ids = tables["persons"][KEY]
    return sum(tables[t].groupby(KEY).size().reindex(ids, fill_value=0) for t in EVENTS)


def out_of_order(tables: dict[str, pd.DataFrame]) -> int:
    return int(sum((tables[t].groupby(KEY, sort=False)[TIME].diff().dropna() < 0).sum() for t in EVENTS))


def history(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every person's events of both tables in one time order (the tasks' own order: time, then table)."""
    parts = [tables[t][[KEY, TIME]].assign(table=t, rank=i) for i, t in enumerate(EVENTS)]
    both = pd.concat(parts, ignore_index=True)
    return both.sort_values([KEY, TIME, "rank"], kind="stable").reset_index(drop=True)


def generate(model, report: dict, **options) -> dict[str, pd.DataFrame]:
    """The model's tables, its generation figures in `report`."""
    from synth_llm.options import LLMGenerateOptions

    return model.pipeline.generate_frames(LLMGenerateOptions(**options), report=report)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_events"))
    ap.add_argument("--no-results", action="store_true")
    args = ap.parse_args()
    from synth_llm.api import RelEvent, RelEventPredict

    split = split_subjects(args.data, KEY, args.work, args.seed)
    train = event_tables(read_parquet(split["train_ctx"]), read_parquet(split["train"]))
    holdout = event_tables(read_parquet(split["holdout_ctx"]), read_parquet(split["holdout"]))
    options = {"max_training_time": args.budget, "seed": args.seed, "model_size": "tiny"}
    rows = {}

    # 1. rel_event from nothing
    started = time.perf_counter()
    model = RelEvent(tables=LINKS, workspace=args.work / "rel_event", **options).fit(train)
    trained = time.perf_counter() - started
    report: dict = {}
    started = time.perf_counter()
    synthetic = generate(model, report, sample_size=len(holdout["persons"]), seed=args.seed)
    seconds = time.perf_counter() - started
    counts, real_counts = per_person(synthetic), per_person(holdout)
    rows["rel_event"] = {"train s": trained, "valid first try": report["valid_share_first_try"],
                         "events past the years": report["events_past_the_time_range"],
                         "out of order": out_of_order(synthetic), "events per person": counts.mean(),
                         "holdout's": real_counts.mean(), "decode rows/s": report["decode_rows_per_second"],
                         "generate s": seconds}
    for table in EVENTS:
        for side, tables in (("synthetic", synthetic), ("holdout", holdout)):
            folder = args.work / "judge" / f"{side}-{table}"
            folder.mkdir(parents=True, exist_ok=True)
            syn, syn_ctx = folder / "syn.parquet", folder / "syn-ctx.parquet"
            tables[table].to_parquet(syn, index=False)
            tables["persons"].to_parquet(syn_ctx, index=False)
            trn, trn_ctx = folder / "trn.parquet", folder / "trn-ctx.parquet"
            train[table].to_parquet(trn, index=False)
            train["persons"].to_parquet(trn_ctx, index=False)
            hol, hol_ctx = folder / "hol.parquet", folder / "hol-ctx.parquet"
            holdout[table].to_parquet(hol, index=False)
            holdout["persons"].to_parquet(hol_ctx, index=False)
            qa = judge(PEER_PYTHON, QA_SCRIPT, syn, trn, hol, folder / "qa.html", ctx=(KEY, syn_ctx, trn_ctx, hol_ctx))
            accuracy = qa["accuracy"]
            rows["rel_event"][f"{table} accuracy ({side})"] = accuracy.get("overall")
            rows["rel_event"][f"{table} coherence ({side})"] = accuracy.get("coherence")
            if side == "synthetic":
                rows["rel_event"][f"{table} discriminator AUC"] = qa.get("discriminator_auc")
    print("rel_event", json.dumps(rows["rel_event"]), flush=True)

    # 2. limits
    report = {}
    limited = generate(model, report, sample_size=len(holdout["persons"]), seed=args.seed + 1, min_n_events=2,
                       max_n_events=4, forbidden_events=["stays"])
    counts = per_person(limited)
    rows["limits"] = {"valid first try": report["valid_share_first_try"],
                      "honoured": float(counts.between(2, 4).mean()),
                      "stays written": len(limited["stays"]), "out of order": out_of_order(limited)}
    print("limits", json.dumps(rows["limits"]), flush=True)

    # 3. rel_event_predict: the next event after the first
    started = time.perf_counter()
    predictor = RelEventPredict(tables=LINKS, workspace=args.work / "rel_event_predict", **options).fit(train)
    trained = time.perf_counter() - started
    real = history(holdout)
    two = real.groupby(KEY).size()
    ids = two[two >= 2].index
    given = {"persons": holdout["persons"][holdout["persons"][KEY].isin(ids)].reset_index(drop=True),
             **{t: holdout[t][holdout[t][KEY].isin(ids)] for t in EVENTS}}
    rows["rel_event_predict"] = {"train s": trained, **predict_scores(predictor, given, real, ids, args.seed)}
    print("rel_event_predict", json.dumps(rows["rel_event_predict"]), flush=True)
    (args.work / "summary.json").write_text(json.dumps(rows, indent=2, default=float))
    if args.no_results:
        return
    lines = [*run_lines("bench/run_events.py"),
             f"- data: {args.data.name}; persons split 80/20 (seed {args.seed}): {len(train['persons']):,} training "
             f"persons with {len(train['checkups']):,} checkups and {len(train['stays']):,} stays, "
             f"{len(holdout['persons']):,} holdout persons; the LLM backend, model_size tiny, {args.budget} min of "
             "training per task, the transformers engine on the CPU",
             "- judge: mostlyai-qa on each event table with the persons as context, against the training data "
             "(synthetic, and the real holdout as the ceiling)", ""]
    for name, scores in rows.items():
        columns = list(scores)
        lines += [f"**{name}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                  "| " + " | ".join(cell(scores[c], 0 if isinstance(scores[c], int) else 3) for c in columns) + " |",
                  ""]
    update_results_file(REPO / "bench" / "RESULTS.md", HEADING, "\n".join(lines).rstrip())


def predict_scores(predictor, given: dict, real: pd.DataFrame, ids, seed: int) -> dict:
    """The written next event against each person's real second event: its table, and its year."""
    from synth_llm.options import LLMGenerateOptions

    report: dict = {}
    seed_data, seed_records = predictor._given_tables(given)  # as RelEventPredict.predict hands them over
    started = time.perf_counter()
    out = predictor.pipeline.generate_frames(LLMGenerateOptions(n_events=1, n_future=1, only_future=True, seed=seed),
                                             seed_data=seed_data, seed_records=seed_records, report=report)
    seconds = time.perf_counter() - started
    written = history(out)
    written = written.groupby(KEY).head(1).set_index(KEY)
    # the output's persons are the given ones in order, with fresh keys
    fresh = dict(zip(out["persons"][KEY], given["persons"][KEY]))
    written.index = written.index.map(fresh)
    second = real[real[KEY].isin(ids)].groupby(KEY).nth(1).set_index(KEY)
    both = second.index.intersection(written.index)
    shares = second["table"].value_counts(normalize=True)
    return {"persons": len(ids), "valid first try": report["valid_share_first_try"],
            "written a next event": len(written) / len(ids),
            "next table equal": float((written.loc[both, "table"] == second.loc[both, "table"]).mean()),
            "always the most common table": float(shares.iloc[0]),
            "a draw from the tables' shares": float((shares ** 2).sum()),
            "next year equal": float((written.loc[both, TIME] == second.loc[both, TIME]).mean()),
            "predict s": seconds}


if __name__ == "__main__":
    main()
