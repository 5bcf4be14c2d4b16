"""Free-text columns (issue 24), ours against the reference engine's LANGUAGE model, same split, same budget.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/run_text.py [--budget 3]
        [--data ../shared/data/tate.csv.gz] [--text-columns title medium] [--gen-rows N] [--seed 0]
        [--work /tmp/bench_text] [--reuse-reference] [--judge-only] [--no-results | --results-only]

1. split: the table (tate by default) 80/20 by rows (seed 0; bench/tables.py's split_once, without `id`) into
   <work>/train.parquet and <work>/holdout.parquet.
2. ours: run_ours.py's pipeline (TabularARGN; each text column written by the LLM plugin's word-level GPT-2 on its
   share of the budget) with the training part as source, `train: {max_training_time: B}`. The --text-columns get
   `encoding: text` and the other string columns `encoding: categorical`, so both engines write the same columns as
   text (left alone, our stats take `artist` for text too).
3. reference: mostlyai-engine in the peer venv (this file again, with --reference-step): a TABULAR model of the other
   columns, then a LANGUAGE model (its LSTM from scratch, MOSTLY_AI/LSTMFromScratch-3m: no download) of the text
   columns (LANGUAGE_TEXT) with the row's TABULAR columns as context, generating from the TABULAR output. The budget
   is shared as ours shares it (synth_assets/pipeline.py): the TABULAR model gets (1 - 0.3) B, the LANGUAGE model
   max(0.3 B, B - what the TABULAR training took).
4. judge: per text column, on the synthetic rows and the holdout: share identical to a training text, share new,
   distinct texts per row, mean characters and words, word-frequency similarity to the holdout (1 - total variation
   distance over the training part's 500 most frequent words and one bucket for all others; the holdout's row
   compares a same-sized sample of the training part), share null, empty, _RARE_ or _INVALID_; for the table,
   qa_eval.py's accuracy, DCR share and discriminator AUC (mostlyai-qa takes a text column for a categorical one).
5. bench/RESULTS.md gets the section "Free text (issue 24)" (replaced on a rerun; findings written by hand below
   the tables go with it). Text rows/s = generated rows / seconds spent writing their texts: ours' `text_seconds`
   (the generation report, <work>/ours/home/<table>/synthetic/CURRENT/generation.json), the reference's LANGUAGE
   generate call; both include loading the text model. Text chars/s = the characters of all texts written / those
   seconds (the engines' texts differ in length). "Rows identical to a training row": in every column.

Both engines run one after the other, each in its own process, never together. <work>/summary.json keeps every
figure; --results-only writes the section from it again, --judge-only scores the outputs in <work> again first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.procs import keep_traceback  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "tate.csv.gz"
TEXT_SHARE = 0.3  # train.text.time_share's default: the text model's share of the budget, for both engines
KEY = "row_key"  # the reference's key between its TABULAR rows and their texts
MARKERS = ("_RARE_", "_INVALID_")  # what the reference writes for a protected category, an unparsable text
TOP_WORDS = 500
WORD = re.compile(r"\w+")
HEADING = "## Free text (issue 24)"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--budget", type=float, default=3.0, help="training minutes for each engine, all models together")
    ap.add_argument("--text-columns", nargs="+", default=["title", "medium"])
    ap.add_argument("--drop", nargs="*", default=["id"], help="columns left out first (a key, not data)")
    ap.add_argument("--gen-rows", type=int, default=None, help="rows to generate; default: as many as the holdout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_text"))
    ap.add_argument("--llm", action="store_true",
                    help="also run ours with backend llm (ours-llm): the texts are free strings of its rows' JSON")
    ap.add_argument("--backend", default="tabular_argn", help=argparse.SUPPRESS)  # the ours step's
    ap.add_argument("--reuse-reference", action="store_true",
                    help="keep the reference's result in <work>/reference if it ran on the same rows and settings")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--no-results", action="store_true", help="leave bench/RESULTS.md alone")
    out.add_argument("--results-only", action="store_true", help="run nothing: write the section from summary.json")
    ap.add_argument("--judge-only", action="store_true",
                    help="train nothing: judge the outputs in <work> again (step 4), then write the section")
    ap.add_argument("--peer-python", default=None, help="default: run_bench.py's (the peer venv)")
    ap.add_argument("--qa-script", type=Path, default=None, help="default: run_bench.py's (qa_eval.py)")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    # one engine's process (this file run again): --ours-step in the project venv, --reference-step in the peer's
    ap.add_argument("--ours-step", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--reference-step", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--table", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --- 1. split ---------------------------------------------------------------------------------------------------

def split_data(args):
    from bench.tables import split_once

    split = split_once(args.data, args.work, args.seed, drop=args.drop)
    missing = [c for c in args.text_columns if c not in read(split.train_path).columns]
    if missing:
        raise SystemExit(f"--text-columns {', '.join(missing)}: not columns of {args.data}")
    return split


def read(path: Path):
    from bench.tables import read_parquet

    return read_parquet(path)


# --- 2. ours ----------------------------------------------------------------------------------------------------

def run_ours(args, split, gen_rows: int, backend: str = "tabular_argn") -> dict:
    """run_ours.py's pipeline in its own process (this file with --ours-step), then the generation report's text
    figures. With backend llm the texts come with the rows: its text seconds are the whole generation's (without
    loading the model), its text model's training the whole training."""
    from bench.run_bench import run_engine

    name = "ours" if backend == "tabular_argn" else f"ours-{backend}"
    out = args.work / name
    (out / "result.json").unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--ours-step", "--train", str(split.train_path), "--out", str(out),
           "--table", split.table, "--budget", f"{args.budget:g}", "--gen-rows", str(gen_rows),
           "--seed", str(args.seed), "--backend", backend, "--text-columns", *args.text_columns]
    result = run_engine(name, cmd, out)
    report_file = out / "home" / split.table / "synthetic" / "CURRENT" / "generation.json"
    if report_file.is_file():  # the published version's report; run_ours.py keeps the same one in result.json
        result["backend_report"] = json.loads(report_file.read_text()).get("backend_report") or result["backend_report"]
        result["generation_report_file"] = str(report_file)
    if backend != "tabular_argn":
        result.update(text_seconds=result.get("sampling_seconds"), text_train_seconds=result.get("train_stage_seconds"),
                      text_epochs=result.get("epochs"), text_stopped_because=result.get("stopped_because"),
                      text_parameters=result.get("parameters"))
        return with_text_rate(result)
    text = (result.get("train_settings") or {}).get("text_model") or {}
    result.update(text_seconds=result["backend_report"].get("text_seconds"), text_train_seconds=text.get("seconds"),
                  text_epochs=text.get("epochs"), text_stopped_because=text.get("stopped_because"),
                  text_parameters=text.get("parameters"))
    return with_text_rate(result)


def ours_step(args) -> None:
    """run_ours.py's main, its project given the column encodings: the text columns text, other strings categories."""
    import yaml

    import bench.run_ours as run_ours

    import pandas as pd

    strings = [c for c, dtype in read(args.train).dtypes.items()
               if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)]
    columns = {c: {"encoding": "text" if c in args.text_columns else "categorical"} for c in strings}
    write_project = run_ours.write_project

    def with_columns(out, table, *rest, **options):
        path = write_project(out, table, *rest, **options)
        project = yaml.safe_load(path.read_text())
        project["datasets"][table]["tables"][table]["columns"] = columns
        path.write_text(yaml.safe_dump(project, sort_keys=False))
        return path

    run_ours.write_project = with_columns  # main() looks it up by name
    sys.argv = ["run_ours.py", "--train", str(args.train), "--out", str(args.out), "--table", args.table,
                "--budget", f"{args.budget:g}", "--gen-rows", str(args.gen_rows), "--seed", str(args.seed),
                "--backend", args.backend]
    run_ours.main()


# --- 3. the reference -------------------------------------------------------------------------------------------

def run_reference(args, split, gen_rows: int) -> dict:
    """The reference in the peer venv (this file with --reference-step). A failure is recorded, not raised."""
    from bench.run_bench import PEER_PYTHON, run_engine

    out = args.work / "reference"
    saved = out / "result.json"
    settings = {"fingerprint": split.fingerprint, "budget_minutes": args.budget, "generated_rows": gen_rows,
                "text_columns": args.text_columns}
    if args.reuse_reference and saved.is_file():
        earlier = json.loads(saved.read_text())
        if all(earlier.get(k) == v for k, v in settings.items()):
            print(f"==> reference: reusing {saved}", flush=True)
            return {**earlier, "reused": True}
    for stale in ("result.json", "error.txt"):
        (out / stale).unlink(missing_ok=True)
    cmd = [args.peer_python or PEER_PYTHON, __file__, "--reference-step", "--train", str(split.train_path),
           "--out", str(out), "--budget", f"{args.budget:g}", "--gen-rows", str(gen_rows), "--seed", str(args.seed),
           "--text-columns", *args.text_columns]
    try:
        result = run_engine("reference", cmd, out)
    except SystemExit as failure:
        error = (out / "error.txt").read_text() if (out / "error.txt").is_file() else str(failure)
        print(f"==> reference: FAILED\n{error}", flush=True)
        return {"engine": "reference", "failed": error.strip().splitlines()[-1], "traceback": error}
    result.update(fingerprint=split.fingerprint, text_columns=args.text_columns)
    saved.write_text(json.dumps(result, indent=2))
    return with_text_rate(result)


def reference_step(args) -> None:
    """mostlyai-engine: TABULAR model of the structured columns, LANGUAGE model of the texts given them.

    Runs in the peer venv: only the standard library, pandas, the engine and bench/run_reference.py's helpers."""
    import shutil

    from bench.run_reference import log_to_file, progress_summary, read_parquet  # sets HF offline

    out = args.out.resolve()
    tab_ws, lang_ws = out / "workspace-tabular", out / "workspace-language"
    for ws in (tab_ws, lang_ws):
        shutil.rmtree(ws, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_DATASETS_CACHE", str(out / "hf-cache"))

    from mostlyai import engine

    log_to_file(out / "engine.log")
    engine.set_random_state(args.seed)
    train = read_parquet(args.train)
    texts = list(args.text_columns)
    structured = [c for c in train.columns if c not in texts]
    train[KEY] = range(len(train))
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    engine.split(tgt_data=train[[KEY, *structured]], tgt_primary_key=KEY, model_type="TABULAR", workspace_dir=tab_ws)
    engine.split(tgt_data=train[[KEY, *texts]], ctx_data=train[[KEY, *structured]], tgt_context_key=KEY,
                 ctx_primary_key=KEY, model_type="LANGUAGE", tgt_encoding_types={c: "LANGUAGE_TEXT" for c in texts},
                 workspace_dir=lang_ws)
    for ws in (tab_ws, lang_ws):
        engine.analyze(workspace_dir=ws)
        engine.encode(workspace_dir=ws)
    seconds["prepare"] = time.perf_counter() - started
    print(f"[reference] split+analyze+encode (both models) {seconds['prepare']:.1f}s; budget {args.budget:g} min",
          flush=True)

    t = time.perf_counter()
    engine.train(workspace_dir=tab_ws, max_training_time=args.budget * (1 - TEXT_SHARE), update_progress=show_epochs)
    seconds["train_tabular"] = time.perf_counter() - t
    language_minutes = max(TEXT_SHARE * args.budget, args.budget - seconds["train_tabular"] / 60)  # as ours shares it
    print(f"[reference] TABULAR trained {seconds['train_tabular']:.1f}s; LANGUAGE gets {language_minutes:.2f} min",
          flush=True)
    t = time.perf_counter()
    engine.train(workspace_dir=lang_ws, max_training_time=language_minutes, update_progress=show_epochs)
    seconds["train_language"] = time.perf_counter() - t
    training_seconds = time.perf_counter() - started
    print(f"[reference] LANGUAGE trained {seconds['train_language']:.1f}s", flush=True)

    load = time_language_model_load()
    t = time.perf_counter()
    engine.generate(workspace_dir=tab_ws, sample_size=args.gen_rows)
    seconds["generate_tabular"] = time.perf_counter() - t
    rows = read_parquet(tab_ws / "SyntheticData").reset_index(drop=True)
    t = time.perf_counter()
    engine.generate(workspace_dir=lang_ws, ctx_data=rows)
    seconds["generate_language"] = time.perf_counter() - t
    written = read_parquet(lang_ws / "SyntheticData").reset_index(drop=True)
    generation_seconds = seconds["generate_tabular"] + seconds["generate_language"]
    synthetic = rows.merge(written, on=KEY, how="left")[[c for c in train.columns if c != KEY]]
    synthetic.to_parquet(out / "synthetic.parquet", index=False)
    print(f"[reference] generated {len(synthetic):,} rows: TABULAR {seconds['generate_tabular']:.1f}s, "
          f"LANGUAGE {seconds['generate_language']:.1f}s (model load {load.get('seconds', float('nan')):.1f}s)",
          flush=True)

    from mostlyai.engine import __version__

    result = {
        "engine": "reference", "engine_version": __version__, "budget_minutes": args.budget, "seed": args.seed,
        "text_columns": texts, "language_model": "MOSTLY_AI/LSTMFromScratch-3m",
        "training_seconds": training_seconds,  # split + analyze + encode + train, both models
        "train_stage_seconds": seconds["train_tabular"] + seconds["train_language"],
        "text_train_seconds": seconds["train_language"], "language_budget_minutes": language_minutes,
        "stage_seconds": seconds, "generation_seconds": generation_seconds,
        "text_seconds": seconds["generate_language"],  # the LANGUAGE generate call, model load included
        "text_model_load_seconds": load.get("seconds"),
        "generated_rows": len(synthetic),
        "rows_per_second": len(synthetic) / generation_seconds if generation_seconds > 0 else None,
        "tabular": progress_summary(tab_ws / "ModelStore" / "model-data" / "progress-messages.csv"),
        "language": progress_summary(lang_ws / "ModelStore" / "model-data" / "progress-messages.csv"),
    }
    result["text_epochs"] = result["language"].get("epochs")
    (out / "result.json").write_text(json.dumps(result, indent=2))


def show_epochs(**kwargs) -> None:
    """update_progress callback, one line per epoch: run_reference.py's, but the LANGUAGE model's messages may have a
    validation loss and no training loss."""
    message = kwargs.get("message") or {}
    if message.get("val_loss") is not None:
        train = message.get("trn_loss")
        print(f"[reference] epoch {message['epoch']:>5.2f}  train {'–' if train is None else f'{train:.4f}'}  "
              f"val {message['val_loss']:.4f}  {message['total_time']:.0f}s"
              f"{'  *' if message.get('is_checkpoint') else ''}", flush=True)


def time_language_model_load() -> dict:
    """Time the LANGUAGE engine's start (model and tokenizer load) apart: its generate builds a HuggingFaceEngine."""
    from mostlyai.engine._language.engine import hf_engine

    timed: dict = {}
    original = hf_engine.HuggingFaceEngine.__init__

    def __init__(self, *args, **kwargs):
        t = time.perf_counter()
        original(self, *args, **kwargs)
        timed["seconds"] = timed.get("seconds", 0.0) + time.perf_counter() - t

    hf_engine.HuggingFaceEngine.__init__ = __init__
    return timed


def with_text_rate(result: dict) -> dict:
    seconds = result.get("text_seconds")
    result["text_rows_per_second"] = result["generated_rows"] / seconds if seconds else None
    return result


# --- 4. judge ---------------------------------------------------------------------------------------------------

def judge_texts(synthetic, train, holdout, columns: list[str]) -> dict[str, dict]:
    """Per text column: the synthetic texts' scores (see the module's docstring)."""
    return {c: text_scores(synthetic[c], train[c], holdout[c]) for c in columns}


def holdout_texts(train, holdout, columns: list[str], seed: int) -> dict[str, dict]:
    """The same scores for the holdout itself; its word similarity is a same-sized training sample's."""
    sample = train.sample(n=min(len(holdout), len(train)), random_state=seed)
    scores = {}
    for c in columns:
        scores[c] = text_scores(holdout[c], train[c], holdout[c])
        scores[c]["word_similarity"] = word_similarity(sample[c], holdout[c], vocabulary(train[c]))
    return scores


def text_scores(texts, train, holdout) -> dict:
    present = texts[texts.notna()].astype(str)
    marked = present.map(lambda t: t.strip() == "" or any(m in t for m in MARKERS))
    missing = len(texts) - len(present) + int(marked.sum())
    seen = set(train.dropna().astype(str))
    identical = float(present.isin(seen).mean()) if len(present) else None
    return {
        "identical_to_training": identical,
        "new": None if identical is None else 1 - identical,
        "distinct_per_row": present.nunique() / len(present) if len(present) else None,
        "mean_characters": float(present.str.len().mean()) if len(present) else None,
        "mean_words": float(present.map(lambda t: len(WORD.findall(t))).mean()) if len(present) else None,
        "word_similarity": word_similarity(present, holdout, vocabulary(train)),
        "null_or_rare": missing / len(texts) if len(texts) else None,
    }


def words(texts) -> list[str]:
    return [w for t in texts.dropna().astype(str) for w in WORD.findall(t.lower())]


def vocabulary(train) -> list[str]:
    from collections import Counter

    return [w for w, _ in Counter(words(train)).most_common(TOP_WORDS)]


def word_similarity(texts, reference, vocab: list[str]) -> float | None:
    """1 - total variation distance between the two word distributions over `vocab` and one bucket of the rest."""
    from collections import Counter

    def distribution(series) -> dict[str, float]:
        known, counts = set(vocab), Counter(words(series))
        total = sum(counts.values())
        shares = {w: counts[w] / total for w in vocab} if total else {}
        shares["<other>"] = sum(n for w, n in counts.items() if w not in known) / total if total else 0.0
        return shares

    p, q = distribution(texts), distribution(reference)
    if not p or not q:
        return None
    return 1 - 0.5 * sum(abs(p.get(w, 0.0) - q.get(w, 0.0)) for w in set(p) | set(q))


def rows_identical(rows, train) -> float:
    """Share of `rows` identical to a training row in every column."""
    columns = list(train.columns)
    seen = set(train[columns].astype(str).itertuples(index=False, name=None))
    return float(rows[columns].astype(str).apply(tuple, axis=1).isin(seen).mean())


def judge_table(args, split, name: str) -> dict:
    """qa_eval.py's accuracy, DCR share and discriminator AUC; a failure is recorded, not raised."""
    from bench.judge import judge
    from bench.run_bench import PEER_PYTHON, QA_SCRIPT

    folder = args.work / name
    print(f"==> {name}: scoring with qa_eval.py", flush=True)
    try:
        return judge(args.peer_python or PEER_PYTHON, args.qa_script or QA_SCRIPT, folder / "synthetic.parquet",
                     split.train_path, split.holdout_path, folder / "qa-report.html")
    except RuntimeError as failure:
        print(f"==> {name}: qa_eval.py failed: {failure}", flush=True)
        return {"failed": str(failure).splitlines()[0]}


# --- 5. results -------------------------------------------------------------------------------------------------

def results_section(summary: dict) -> str:
    from bench.results import cell

    runs = summary["runs"]
    ran = {name: run for name, run in runs.items() if "failed" not in run}
    lines = [
        f"- date: {summary['date']}",
        f"- machine: {summary['machine']}",
        f"- command: `{summary['command']}`",
        f"- code: {summary['code']}",
        *([f"- judged again (the same outputs): `{summary['judged_again']}`"] if summary.get("judged_again") else []),
        f"- data: {summary['data']}; {summary['gen_rows']:,} rows generated by each"
        f"{' (as many as the holdout)' if summary['gen_rows'] == summary.get('holdout_rows') else ''}; text "
        f"columns {', '.join(summary['text_columns'])} (`encoding: text` for ours, LANGUAGE_TEXT for the reference), "
        f"the other string columns categorical",
        f"- budget: {summary['budget']:g} min for each engine, all its models together; the text model's share as ours "
        f"takes it: {TEXT_SHARE:g} of the budget, or what the tabular model leaves of it if more",
    ]
    for name, run in runs.items():
        lines.append(f"- {name}: " + engine_note(name, run))
    columns = ["engine", "training s", "text model train s", "generation s", "text s", "text rows/s", "text chars/s",
               "accuracy", "DCR share", "discriminator AUC", "rows identical to a training row", "peak MB"]
    rows = []
    for name, run in ran.items():
        qa = run.get("qa") or {}
        rows.append([name, cell(run["training_seconds"], 1), cell(run.get("text_train_seconds"), 1),
                     cell(run["generation_seconds"], 1), cell(run.get("text_seconds"), 1),
                     cell(run.get("text_rows_per_second"), 1), cell(run.get("text_characters_per_second"), 0),
                     cell((qa.get("accuracy") or {}).get("overall")), cell(qa.get("dcr_share")),
                     cell(qa.get("discriminator_auc")), cell(run.get("rows_identical_to_training")),
                     cell(run.get("peak_mb"), 0)])
    any_qa = next((r["qa"] for r in ran.values() if (r.get("qa") or {}).get("accuracy")), None)
    if any_qa:
        rows.append(["holdout (ceiling)", *["–"] * 6, cell(any_qa["accuracy"].get("overall_max")), "–", "–",
                     cell(summary.get("holdout_rows_identical_to_training")), "–"])
    for ours_name in ("ours", "ours-llm"):
        if {ours_name, "reference"} <= set(ran):
            ours, ref = ran[ours_name], ran["reference"]
            rows.append([f"{ours_name} / reference", *[ratio(ours.get(k), ref.get(k)) for k in (
                "training_seconds", "text_train_seconds", "generation_seconds", "text_seconds", "text_rows_per_second",
                "text_characters_per_second")], *["–"] * 5])
    lines += ["", markdown_table(columns, rows), ""]

    text_columns = ["column", "texts from", "identical to a training text", "new", "distinct per row", "mean chars",
                    "mean words", "word similarity", "null / empty / _RARE_ / _INVALID_"]
    keys = ["identical_to_training", "new", "distinct_per_row", "mean_characters", "mean_words", "word_similarity",
            "null_or_rare"]
    rows = []
    for column in summary["text_columns"]:
        sources = [(name, run.get("texts", {}).get(column)) for name, run in ran.items()]
        sources.append(("holdout", summary["holdout_texts"][column]))
        for name, scores in sources:
            if scores:
                rows.append([column, name] + [cell(scores[k], 1 if k.startswith("mean") else 3) for k in keys])
    lines += [markdown_table(text_columns, rows)]
    failed = {name: run for name, run in runs.items() if "failed" in run}
    for name, run in failed.items():
        lines += ["", f"{name} FAILED: `{run['failed']}`"]
    return "\n".join(lines)


def engine_note(name: str, run: dict) -> str:
    from bench.results import cell

    if "failed" in run:
        return f"failed: `{run['failed']}`"
    stages = run.get("stage_seconds", {})
    if name == "ours-llm":
        report = run.get("backend_report", {})
        text = (f"train stage {run['train_stage_seconds']:.1f}s (gpt2 {run.get('parameters', 0):,} parameters, "
                f"{run.get('epochs')} epochs, {run.get('stopped_because')}; the texts are free strings of its rows' "
                f"JSON, so its text columns' seconds are the whole generation's); generation report: " + ", ".join(
                    f"{k} {cell(report[k])}" for k in ("valid_share_first_try", "outputs_written_again_for_a_text",
                                                       "texts_cut_share", "tokens_per_second") if k in report))
    elif name == "ours":
        text = (f"train stage {run['train_stage_seconds']:.1f}s, of which the text model (gpt2 "
                f"{run.get('text_parameters', 0):,} parameters) {cell(run.get('text_train_seconds'), 1)}s, "
                f"{run.get('text_epochs')} epochs ({run.get('text_stopped_because')}); TabularARGN {run.get('epochs')} "
                f"epochs ({run.get('stopped_because')})")
        report = run.get("backend_report", {})
        extra = [f"{k} {cell(report[k])}" for k in ("texts_rewritten_share", "texts_cut_share",
                                                    "text_tokens_per_second") if k in report]
        text += f"; generation report: text_seconds {cell(run.get('text_seconds'), 2)}" + "".join(
            f", {e}" for e in extra)
    else:
        lang, tab = run.get("language", {}), run.get("tabular", {})
        text = (f"TABULAR trained {stages.get('train_tabular', 0):.1f}s ({cell(tab.get('epochs'), 1)} epochs), "
                f"LANGUAGE ({run.get('language_model')}) {stages.get('train_language', 0):.1f}s of "
                f"{run['language_budget_minutes']:.2f} min ({cell(lang.get('epochs'), 1)} epochs, best "
                f"{cell(lang.get('best_epoch'), 1)}); generation TABULAR {stages.get('generate_tabular', 0):.1f}s, "
                f"LANGUAGE {stages.get('generate_language', 0):.1f}s incl. model load "
                f"{cell(run.get('text_model_load_seconds'), 1)}s; engine {run.get('engine_version')}")
    qa = run.get("qa") or {}
    if "failed" in qa:
        text += f"; qa_eval.py failed: `{qa['failed']}`"
    load = run.get("load_at_end")
    return text + (f"; load average {load:.1f} at its end" if load is not None else "") + (
        " (reused from an earlier run)" if run.get("reused") else "")


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "–"


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def command() -> str:
    """command_line(), with the CPU pinning the run had (taskset), which the timings depend on."""
    from bench.results import command_line

    cpus = sorted(os.sched_getaffinity(0))
    pinned = f"taskset -c {','.join(map(str, cpus))} " if len(cpus) < (os.cpu_count() or len(cpus)) else ""
    text = command_line("bench/run_text.py")
    threads, _, rest = text.rpartition("MKL_NUM_THREADS=")
    if threads:  # thread limits, then taskset, then the interpreter
        value, _, interpreter = rest.partition(" ")
        return f"{threads}MKL_NUM_THREADS={value} {pinned}{interpreter}"
    return pinned + text


# --- the run ----------------------------------------------------------------------------------------------------

def bench(args) -> dict:
    import datetime as dt

    from bench.results import machine
    from bench.run_llm import code_version

    args.work = args.work.resolve()
    load = os.getloadavg()[0]
    split = split_data(args)
    gen_rows = args.gen_rows or split.holdout_rows
    print(f"==> {split.table}: {split.train_rows:,} train / {split.holdout_rows:,} holdout rows in {args.work}; "
          f"{gen_rows:,} rows to generate, {args.budget:g} min each", flush=True)
    summary = {"date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
               "machine": f"{machine()}; load average {load:.1f} at the start", "command": command(),
               "code": code_version(), "budget": args.budget, "gen_rows": gen_rows, "holdout_rows": split.holdout_rows,
               "text_columns": args.text_columns,
               "data": f"{args.data.name}, {split.train_rows:,} train / {split.holdout_rows:,} holdout rows "
                       f"(seed {args.seed}; without {', '.join(args.drop) or 'nothing'})"}
    summary["runs"] = {"ours": run_ours(args, split, gen_rows)}
    if args.llm:
        summary["runs"]["ours-llm"] = run_ours(args, split, gen_rows, backend="llm")
    summary["runs"]["reference"] = run_reference(args, split, gen_rows)
    return judge_all(args, split, summary)


def judge_all(args, split, summary: dict) -> dict:
    """Step 4 for every engine that ran, and the holdout's own figures; the summary, also kept in summary.json."""
    train, holdout = read(split.train_path), read(split.holdout_path)
    for name, run in summary["runs"].items():
        if "failed" in run:
            continue
        synthetic = read(args.work / name / "synthetic.parquet")
        run["texts"] = judge_texts(synthetic, train, holdout, args.text_columns)
        run["rows_identical_to_training"] = rows_identical(synthetic, train)
        seconds = run.get("text_seconds")
        characters = sum(int(synthetic[c].dropna().astype(str).str.len().sum()) for c in args.text_columns)
        run["text_characters_per_second"] = characters / seconds if seconds else None
        run["qa"] = run.get("qa") if run.get("reused") and run.get("qa") else judge_table(args, split, name)
        if name == "reference":
            (args.work / name / "result.json").write_text(json.dumps(run, indent=2))  # with its scores, for reuse
    summary["holdout_texts"] = holdout_texts(train, holdout, args.text_columns, args.seed)
    summary["holdout_rows_identical_to_training"] = rows_identical(holdout, train)
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.ours_step:
        return keep_traceback(lambda: ours_step(args))
    if args.reference_step:
        return keep_traceback(lambda: reference_step(args))
    if args.results_only:
        summary = json.loads((args.work / "summary.json").read_text())
    elif args.judge_only:
        summary = json.loads((args.work / "summary.json").read_text())
        summary["judged_again"] = command()
        summary = judge_all(args, split_data(args), summary)
    else:
        summary = bench(args)
    section = results_section(summary)
    print()
    print(section)
    if not args.no_results:
        from bench.results import update_results_file

        update_results_file(args.results, HEADING, section)
        print(f"==> results: {args.results}", flush=True)


if __name__ == "__main__":
    main()
