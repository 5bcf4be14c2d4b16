"""The LLM backend vs TabularARGN side by side (issue 9): same split, same training budget, same judge.

    .venv/bin/python bench/run_llm.py [--sizes tiny small medium] [--size-budget 3] [--size-gen-rows 2000]
                                      [--model-size SIZE] [--budget 10] [--datasets diamonds rwm5yr]
                                      [--diamonds-gen-rows 5000] [--rwm5yr-gen-persons N]
                                      [--speed-rows 1000] [--speed-subjects 300] [--llm-option KEY=VALUE ...]
                                      [--work /tmp/bench_llm] [--reuse] [--no-results | --results-only]

1. Model size (skipped with --model-size): on diamonds, the LLM backend trains `--size-budget` minutes with each
   of `--sizes` and generates `--size-gen-rows` rows; the size that meets the targets (DCR share <= 0.52, >= 99%
   valid on the first try) with the best accuracy wins.
2. Per dataset, both backends train `--budget` minutes on the same split (bench/tables.py's split_once for
   diamonds; run_sequential.py's split_subjects for rwm5yr: persons = id and the columns constant within every
   person, their yearly records ordered by year) and generate as many rows as `--diamonds-gen-rows` (diamonds),
   or as many persons as the holdout holds (rwm5yr). From the LLM's trained model, run_ours.py generates again:
   with the vLLM engine (same size, also judged), and speed samples with the transformers engine at
   generate.batch_size 64 (again, now warm) and 256, and with vLLM at 256.

Every run is one run_ours.py subprocess (one at a time), judged by mostlyai-qa (qa_eval.py; with the persons as
context for rwm5yr, which adds coherence). Results collect in <work>/summary.json; bench/RESULTS.md gets the
section "LLM backend vs TabularARGN (issue 9)", written whole from that summary: where <work> lacks the earlier
runs (a fresh machine), run with --no-results and add the new subsections by hand, or the recorded history goes.
With --reuse, a run whose folder holds a result of the same command is not run again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.judge import judge  # noqa: E402
from bench.results import cell as _f, command_line, machine, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT, run_engine, say  # noqa: E402
from bench.run_sequential import CONTEXT, RECORDS, our_sequence_scores, split_subjects  # noqa: E402
from bench.tables import read_parquet, split_once  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DIAMONDS, RWM5YR = DATA / "diamonds.csv.gz", DATA / "rwm5yr.csv.gz"
SIZES = ("tiny", "small", "medium")
BACKENDS = ("tabular_argn", "llm")
MAX_DCR_SHARE, MIN_VALID_FIRST_TRY, MAX_ACCURACY_GAP = 0.52, 0.99, 0.05
DCR_ROWS = 5000  # qa_eval.py's max_sample_size_embeddings: the DCR share is measured on at most this many rows
HEADING = "## LLM backend vs TabularARGN (issue 9)"
assert CONTEXT == "context"  # run_ours.py's name for the context table, which run_sequential.py shares


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="*", default=list(SIZES), choices=SIZES)
    ap.add_argument("--size-budget", type=float, default=3.0, help="minutes per size in the comparison")
    ap.add_argument("--size-gen-rows", type=int, default=2000)
    ap.add_argument("--model-size", choices=SIZES, default=None, help="skip the comparison, use this size")
    ap.add_argument("--budget", type=float, default=10.0, help="training minutes for each backend")
    ap.add_argument("--datasets", nargs="*", default=["diamonds", "rwm5yr"], choices=["diamonds", "rwm5yr"])
    ap.add_argument("--diamonds-gen-rows", type=int, default=5000)
    ap.add_argument("--rwm5yr-gen-persons", type=int, default=None, help="default: as many as the holdout")
    ap.add_argument("--speed-rows", type=int, default=1000, help="diamonds rows per batch-size speed sample")
    ap.add_argument("--speed-subjects", type=int, default=300, help="rwm5yr persons per batch-size speed sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--llm-option", nargs="*", default=[], metavar="KEY=VALUE",
                    help="more train options for the LLM runs (say dropout=0.3); their folder's name says them")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_llm"))
    ap.add_argument("--reuse", action="store_true", help="keep runs whose folder holds a result of the same command")
    ap.add_argument("--no-results", action="store_true", help="leave bench/RESULTS.md alone")
    ap.add_argument("--speed-check", action="store_true",
                    help="run nothing else: time the trained LLMs' generation, each engine and batch size in a fresh "
                         "process, twice in a row (cold, warm), with 2 threads and with 1 (--speed-rows/-subjects)")
    ap.add_argument("--generate-from", type=Path, default=None, help=argparse.SUPPRESS)  # one --speed-check process
    ap.add_argument("--engine", default="transformers", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=500, help=argparse.SUPPRESS)
    ap.add_argument("--results-only", action="store_true",
                    help="run nothing: write the section from <work>/summary.json (the runs' own commands kept)")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    return ap.parse_args(argv)


# --- one run: train, generate (and variants), judge -------------------------------------------------------------

def run(args, name: str, out: Path, common: list[str], backend: str, extra: list[str], judged: dict[str, dict]) -> dict:
    """run_ours.py in a subprocess, then qa_eval.py on each output named in `judged` (label -> judge kwargs;
    "" is the first generation). A failure is recorded, not raised: the other runs go on."""
    cmd = [sys.executable, str(REPO / "bench" / "run_ours.py"), *common, "--out", str(out), "--backend", backend,
           *extra]
    saved = out / "bench-run.json"
    if args.reuse and saved.is_file():
        earlier = json.loads(saved.read_text())
        if earlier.get("cmd") == cmd[1:] and "qa" in earlier:
            say(f"{name}: reusing {saved}")
            return {**earlier, "reused": True}
    saved.unlink(missing_ok=True)
    (out / "result.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    try:
        result = run_engine(name, cmd, out)
    except SystemExit as failure:
        say(f"{name}: FAILED ({failure})")
        return {"failed": str(failure), "cmd": cmd[1:], "load_at_start": load}
    result.update(cmd=cmd[1:], load_at_start=load, qa={})
    for label, kwargs in judged.items():
        stem = f"synthetic-{label}" if label else "synthetic"
        say(f"{name}: scoring {stem} with qa_eval.py")
        try:
            result["qa"][label] = judge(args.peer_python, args.qa_script, out / f"{stem}.parquet",
                                        report=out / f"qa-{label or 'first'}.html", **kwargs(stem))
        except RuntimeError as failure:
            say(f"{name}: scoring {stem} failed: {failure}")
    saved.write_text(json.dumps(result, indent=2))
    return result


def flat_judge(split):
    return lambda stem: dict(trn=split.train_path, hol=split.holdout_path)


def sequential_judge(split, out: Path, key: str):
    return lambda stem: dict(trn=split["train"], hol=split["holdout"],
                             ctx=(key, out / f"{stem}-ctx.parquet", split["train_ctx"], split["holdout_ctx"]))


# --- 1. model size ----------------------------------------------------------------------------------------------

def compare_sizes(args, summary: dict) -> str:
    work = args.work / "diamonds"
    split = split_once(DIAMONDS, work, args.seed)
    common = ["--train", str(split.train_path), "--table", split.table, "--budget", f"{args.size_budget:g}",
              "--gen-rows", str(args.size_gen_rows), "--seed", str(args.seed)]
    runs, code = {}, code_version()
    for size in args.sizes:
        runs[size] = run(args, f"llm {size}", work / f"size-{size}", common, "llm",
                         ["--train-option", f"model_size={size}"], {"": flat_judge(split)})
    winner = choose_size(runs, args.size_gen_rows)
    summary["sizes"] = {"runs": runs, "winner": winner, "command": command_line("bench/run_llm.py"), "code": code,
                        "date": now(), "budget": args.size_budget, "gen_rows": args.size_gen_rows,
                        "train_rows": split.train_rows, "holdout_rows": split.holdout_rows}
    say(f"model size: {winner} wins")
    print(size_table(summary["sizes"]))
    return winner


def dcr_allowance(rows: int) -> float:
    """Two standard errors of a DCR share measured on `rows` synthetic rows (the judge embeds at most 5,000):
    on 2,000 rows a private model's share is 0.5 ± 0.011, so 0.524 is no evidence of a problem."""
    return 2 * (0.25 / min(rows, DCR_ROWS)) ** 0.5


def choose_size(runs: dict[str, dict], rows: int) -> str:
    """The best accuracy among the sizes that meet the targets: ≥ 99% valid on the first try, and a DCR share not
    clearly above 0.52 (within its sampling error, dcr_allowance); when none does, the best accuracy."""
    def rank(item):
        size, r = item
        qa, report = r.get("qa", {}).get("", {}), r.get("backend_report", {})
        accuracy = (qa.get("accuracy") or {}).get("overall")
        if accuracy is None:
            return (False, -1.0)
        meets = (qa.get("dcr_share", 1) <= MAX_DCR_SHARE + dcr_allowance(rows)
                 and report.get("valid_share_first_try", 0) >= MIN_VALID_FIRST_TRY)
        return (meets, accuracy)

    return max(runs.items(), key=rank)[0]


# --- 2. the datasets --------------------------------------------------------------------------------------------

def bench_diamonds(args, size: str, summary: dict) -> None:
    work = args.work / "diamonds"
    split = split_once(DIAMONDS, work, args.seed)
    rows = min(args.diamonds_gen_rows, split.holdout_rows) if args.diamonds_gen_rows else split.holdout_rows
    common = ["--train", str(split.train_path), "--table", split.table, "--budget", f"{args.budget:g}",
              "--gen-rows", str(rows), "--seed", str(args.seed)]
    code = code_version()
    runs = both_backends(args, work, common, size, args.speed_rows, lambda out: flat_judge(split))
    summary["diamonds"] = {"runs": runs, "command": command_line("bench/run_llm.py"), "date": now(), "code": code,
                           "budget": args.budget, "gen_rows": rows, "size": size,
                           "data": f"{split.train_rows:,} train / {split.holdout_rows:,} holdout rows (seed {args.seed})"}


def bench_rwm5yr(args, size: str, summary: dict) -> None:
    key, order_by = "id", ["year"]
    work = args.work / "rwm5yr"
    split = split_subjects(RWM5YR, key, work, args.seed)
    persons = args.rwm5yr_gen_persons or len(read_parquet(split["holdout_ctx"]))
    common = ["--train", str(split["train"]), "--ctx", str(split["train_ctx"]), "--ctx-key", key,
              "--order-by", *order_by, "--table", RECORDS, "--budget", f"{args.budget:g}", "--gen-rows", str(persons),
              "--seed", str(args.seed)]
    code = code_version()
    runs = both_backends(args, work, common, size, args.speed_subjects, lambda out: sequential_judge(split, out, key))
    for r in runs.values():  # our own sequence scores too: records per person is where a JSON model may slip
        out = Path(r["cmd"][r["cmd"].index("--out") + 1]) if "cmd" in r else None
        if out is not None and "failed" not in r and (out / "synthetic.parquet").is_file():
            r["sequence"] = our_sequence_scores(split, key, order_by, out / "synthetic.parquet",
                                                out / "synthetic-ctx.parquet")
    summary["rwm5yr"] = {"runs": runs, "command": command_line("bench/run_llm.py"), "date": now(), "code": code,
                         "budget": args.budget, "gen_rows": persons, "size": size,
                         "data": f"{split['subjects']:,} persons ({', '.join(split['context_columns'])}) with "
                                 f"{split['records']:,} records for training; holdout 20% of persons"}


def both_backends(args, work: Path, common: list[str], size: str, speed_rows: int, judge_for) -> dict:
    runs = {}
    out = work / "tabular_argn"
    runs["tabular_argn"] = run(args, "tabular_argn", out, common, "tabular_argn", [], {"": judge_for(out)})
    out = work / "-".join([f"llm-{size}", *args.llm_option])
    variants = ["vllm:engine=vllm",  # the same rows' count: judged too
                f"tf64:engine=transformers,batch_size=64,sample_size={speed_rows}",
                f"tf256:engine=transformers,batch_size=256,sample_size={speed_rows}",
                f"vllm256:engine=vllm,batch_size=256,sample_size={speed_rows}"]
    runs["llm"] = run(args, f"llm {size}", out, common, "llm",
                      ["--train-option", f"model_size={size}", *args.llm_option, "--generate-option", "engine=transformers",
                       "--variant", *variants], {"": judge_for(out), "vllm": judge_for(out)})
    return runs


# --- 3. generation speed, each setting in a fresh process -------------------------------------------------------

SPEED_SETTINGS = [(2, "transformers", 64), (2, "transformers", 256), (2, "vllm", 64), (2, "vllm", 256),
                  (1, "transformers", 64), (1, "transformers", 256)]


def speed_check(args, summary: dict) -> None:
    """In run_ours.py's process the transformers engine ran first, and vLLM (which binds threads) before the
    speed samples; here each setting gets a process of its own, over the model the dataset's run trained."""
    for name in args.datasets:
        run_ = summary.get(name, {}).get("runs", {}).get("llm", {})
        if "cmd" not in run_ or "failed" in run_:
            continue
        out = Path(run_["cmd"][run_["cmd"].index("--out") + 1])
        rows = args.speed_rows if name == "diamonds" else args.speed_subjects
        results = []
        for threads, engine, batch in SPEED_SETTINGS:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--generate-from", str(out), "--engine", engine,
                   "--batch-size", str(batch), "--rows", str(rows)]
            load = os.getloadavg()[0]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(REPO))
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                say(f"speed check {name} {threads} threads {engine} {batch}: failed\n{done.stderr[-1500:]}")
                continue
            result = {"threads": threads, "engine": engine, "batch_size": batch, "load_at_start": load,
                      "load_at_end": os.getloadavg()[0], **json.loads(lines[-1])}
            results.append(result)
            say(f"speed check {name}: {json.dumps(result)}")
        summary[name]["speed_check"] = {"rows": rows, "results": results, "date": now(),
                                        "command": command_line("bench/run_llm.py")}


def generate_from(args) -> None:
    """One --speed-check process: generate twice from <out>'s trained model, print the two backend reports."""
    os.environ["SYNTH_CONFIG"] = str(args.generate_from / "synth.yaml")
    os.environ["SYNTH_HOME"] = str(args.generate_from / "home")
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    project = load_project()
    pipeline = DatasetPipeline(project, next(iter(project.datasets)))
    options = pipeline.backend.GenerateOptions.model_validate(
        {**pipeline.spec.generate.model_dump(), "engine": args.engine, "batch_size": args.batch_size,
         "sample_size": args.rows})
    reports = []
    for _ in range(2):
        started = time.perf_counter()
        generated = pipeline.generate(options, device="auto")
        reports.append({**generated.report, "seconds": round(time.perf_counter() - started, 2)})
    print(json.dumps({"cold": reports[0], "warm": reports[1]}), flush=True)


def speed_table(check: dict) -> str:
    columns = ["threads", "engine", "batch_size", "cold: tokens/s", "cold: decode rows/s", "warm: tokens/s",
               "warm: decode rows/s", "valid first try", "load average (start, end)"]
    rows = [[str(r["threads"]), r["engine"], str(r["batch_size"]), _f(r["cold"]["tokens_per_second"], 0),
             _f(r["cold"]["decode_rows_per_second"], 1), _f(r["warm"]["tokens_per_second"], 0),
             _f(r["warm"]["decode_rows_per_second"], 1),
             _f(min(r["cold"]["valid_share_first_try"], r["warm"]["valid_share_first_try"]), 4),
             f"{r['load_at_start']:.1f}, {r['load_at_end']:.1f}"] for r in check["results"]]
    return _table(columns, rows)


def code_version() -> str:
    """The commit the runs start from, and whether the plugins' or the core's files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "plugins", "synth_assets"], capture_output=True,
                           text=True, cwd=REPO).stdout.strip()
    return head + (" with uncommitted changes" if dirty else "")


def now() -> str:
    return f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"


# --- tables -----------------------------------------------------------------------------------------------------

def _table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _epochs(r: dict) -> str:
    return f"{r['epochs']} ({r['best_epoch']}), {r['stopped_because']}" if "epochs" in r else "–"


def size_table(part: dict) -> str:
    columns = ["model_size", "parameters", "validations (best), stop", "training s", "accuracy", "DCR share",
               "discriminator AUC", "valid first try", "retried", "tokens/s", "generation rows/s"]
    rows = []
    for size, r in part["runs"].items():
        if "failed" in r:
            rows.append([size, *["–"] * 9, "failed: " + r["failed"][:60]])
            continue
        qa, rep = r["qa"].get("", {}), r.get("backend_report", {})
        rows.append([size + (" **(chosen)**" if size == part["winner"] else ""), f"{r['parameters']:,}", _epochs(r),
                     _f(r["training_seconds"], 1), _f(qa.get("accuracy", {}).get("overall")), _f(qa.get("dcr_share")),
                     _f(qa.get("discriminator_auc")), _f(rep.get("valid_share_first_try"), 4),
                     _f(rep.get("retried_outputs"), 0), _f(rep.get("tokens_per_second"), 0),
                     _f(r.get("rows_per_second"), 1)])
    any_qa = next((r["qa"][""] for r in part["runs"].values() if r.get("qa", {}).get("")), None)
    if any_qa:
        rows.append(["holdout (ceiling)", "–", "–", "–", _f(any_qa["accuracy"].get("overall_max")), *["–"] * 6])
    return _table(columns, rows)


def dataset_table(part: dict, sequential: bool) -> str:
    columns = ["backend", "training s", "validations (best), stop", "generation rows/s", "accuracy", "univariate",
               "bivariate", "trivariate", *(["coherence (qa)", "records per person", "repeated year"] if sequential else []),
               "DCR share", "discriminator AUC", "valid first try", "peak MB"]
    rows, first_qa = [], None
    for name, r in part["runs"].items():
        labels = [("", f"{name} ({part['size']}, transformers)" if name == "llm" else name)]
        if name == "llm":
            labels.append(("vllm", f"llm ({part['size']}, vllm)"))
        for label, title in labels:
            if "failed" in r:
                rows.append([title, *["–"] * (len(columns) - 2), "failed"])
                continue
            qa = r["qa"].get(label, {})
            first_qa = first_qa or qa or None
            acc = qa.get("accuracy", {})
            gen = r if not label else r["variants"][label]
            report = gen.get("backend_report", {})
            sequence = r.get("sequence", {}) if not label else {}
            seq = [_f(acc.get("coherence")), _f(sequence.get("length_accuracy")), _f(sequence.get("repeated_order_share"))]
            rows.append([title, _f(r["training_seconds"], 1), _epochs(r), _f(gen.get("rows_per_second"), 1),
                         *[_f(acc.get(k)) for k in ("overall", "univariate", "bivariate", "trivariate")],
                         *(seq if sequential else []), _f(qa.get("dcr_share")), _f(qa.get("discriminator_auc")),
                         _f(report.get("valid_share_first_try"), 4) if report else "–", _f(r.get("peak_mb"), 0)])
    if first_qa:
        acc = first_qa["accuracy"]
        seq_max = [_f(acc.get("coherence_max")), "–", "–"]
        rows.append(["holdout (ceiling)", "–", "–", "–", *[_f(acc.get(f"{k}_max")) for k in
                                                           ("overall", "univariate", "bivariate", "trivariate")],
                     *(seq_max if sequential else []), "–", "–", "–", "–"])
    return _table(columns, rows)


def engine_table(part: dict) -> str:
    r = part["runs"].get("llm", {})
    if "variants" not in r:
        return ""
    columns = ["generation", "engine", "batch_size", "rows generated", "generation s", "engine start s", "rows/s",
               "tokens/s", "decode rows/s", "valid first try", "retried"]
    gens = [("first (cold process)", r, {"engine": "transformers", "batch_size": 64})]
    names = {"vllm": "vllm (judged too)", "tf64": "speed sample", "tf256": "speed sample", "vllm256": "speed sample"}
    gens += [(names.get(label, label), v, v["options"]) for label, v in r["variants"].items()]
    rows = []
    for title, g, options in gens:
        rep = g.get("backend_report", {})
        load = g.get("model_load_seconds")
        rows.append([title, options.get("engine", "transformers"), str(options.get("batch_size", 64)),
                     f"{g['generated_rows']:,}", _f(g["generation_seconds"], 1), _f(load, 1),
                     _f(g.get("rows_per_second"), 1), _f(rep.get("tokens_per_second"), 0),
                     _f(rep.get("decode_rows_per_second"), 1), _f(rep.get("valid_share_first_try"), 4),
                     _f(rep.get("retried_outputs"), 0)])
    return _table(columns, rows)


def verdict(part: dict) -> str:
    runs = part["runs"]
    try:
        ours = runs["llm"]["qa"][""]
        base = runs["tabular_argn"]["qa"][""]
    except KeyError:
        return "- targets: not judged (a run failed)"
    gap = ours["accuracy"]["overall"] - base["accuracy"]["overall"]
    valid = runs["llm"]["backend_report"].get("valid_share_first_try", 0)
    valid_vllm = runs["llm"]["variants"].get("vllm", {}).get("backend_report", {}).get("valid_share_first_try")
    checks = [f"accuracy llm − tabular_argn {gap:+.3f} ({'met' if gap >= -MAX_ACCURACY_GAP else 'NOT met'}: "
              f"≥ −{MAX_ACCURACY_GAP})",
              f"DCR share {ours['dcr_share']:.3f} ({'≤' if ours['dcr_share'] <= MAX_DCR_SHARE else 'ABOVE'} "
              f"{MAX_DCR_SHARE})",
              f"valid on the first try {valid:.2%} transformers"
              + (f", {valid_vllm:.2%} vllm" if valid_vllm is not None else "")
              + f" ({'met' if valid >= MIN_VALID_FIRST_TRY else 'NOT met'}: ≥ {MIN_VALID_FIRST_TRY:.0%})"]
    return "- targets (llm, transformers output): " + "; ".join(checks)


def run_notes(part: dict) -> list[str]:
    notes = []
    for name, r in part["runs"].items():
        if "failed" in r:
            notes.append(f"- {name}: FAILED: {r['failed']}")
            continue
        settings = r.get("train_settings", {})
        what = ", ".join(f"{k} {settings[k]}" for k in ("model", "vocabulary", "train_examples", "batch_size",
                                                        "learning_rate", "dropout") if k in settings)
        notes.append(f"- {name}: train stage {r['train_stage_seconds']:.1f}s of {r['budget_minutes']:g} min, "
                     f"{r['parameters']:,} parameters" + (f" ({what})" if what else "")
                     + f"; load average {r['load_at_start']:.1f} at its start, {r['load_at_end']:.1f} at its end"
                     + (" (reused from an earlier run)" if r.get("reused") else ""))
    return notes


def section(summary: dict) -> str:
    out = [f"- machine: {machine()}; OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 (both cores for torch) while other jobs "
           f"(tests) ran on the same 2 cores part of the time: timings are noisy, the load averages are noted per run",
           "- judge: mostlyai-qa (`qa_eval.py`); the LLM backend trains a GPT-2 from scratch with a tokenizer of the "
           "data (`plugins/llm`), decoding under the JSON schema; generation rows/s excludes model loading (the "
           "engine's start: model load, grammar compiler, vLLM's startup) and counts records for rwm5yr (decode rows/s, "
           "the LLM's own report, counts persons and records); training s includes the LLM's tokenizer training and "
           "tokenizing (inside the budget since b5c0fd8, outside it before); \"validations\" are the training "
           "loop's validation points (an epoch, or a tenth of the budget)",
           f"- targets: LLM accuracy within {MAX_ACCURACY_GAP} of TabularARGN's at the same budget, DCR share ≤ "
           f"{MAX_DCR_SHARE}, ≥ {MIN_VALID_FIRST_TRY:.0%} valid on the first try"]
    if summary.get("findings"):  # written by hand into <work>/summary.json after reading the runs
        out += ["", "Findings:", "", *[f"- {line}" for line in summary["findings"]]]
    if "sizes" in summary:
        part = summary["sizes"]
        out += ["", f"### Model size (diamonds, {part['budget']:g} min each, {part['gen_rows']:,} rows generated)", "",
                f"- date: {part['date']}", f"- command: `{part['command']}`",
                *([f"- code: {part['code']}"] if part.get("code") else []),
                f"- data: {part['train_rows']:,} train / {part['holdout_rows']:,} holdout rows; rule: the best "
                f"accuracy among the sizes ≥ {MIN_VALID_FIRST_TRY:.0%} valid on the first try with a DCR share ≤ "
                f"{MAX_DCR_SHARE} + {dcr_allowance(part['gen_rows']):.3f} (two standard errors of a share measured on "
                f"{part['gen_rows']:,} rows)",
                *[f"- {size}: load average {r['load_at_start']:.1f} at its start" for size, r in part["runs"].items()
                  if "load_at_start" in r],
                "", size_table(part)]
    for key, title, sequential in (
            ("diamonds", "diamonds (flat)", False),
            ("diamonds_old_packing", "diamonds before the packing fix, at today's train batch_size 4 (see the "
                                     "findings)", False),
            ("diamonds_before_packing_fix", "diamonds before the packing fix, train batch_size 16 (the default "
                                            "then)", False),
            ("rwm5yr", "rwm5yr: persons → yearly records by year", True),
            ("rwm5yr_before_packing_fix", "rwm5yr before the packing fix (long samples opened most training "
                                          "examples: see the findings)", True),
            ("rwm5yr_before_fix", "rwm5yr before af5527c (whole numbers written 1984.0, the grammar's 1984: see "
                                  "the findings)", True)):
        if key not in summary:
            continue
        part = summary[key]
        out += ["", f"### {title} · budget {part['budget']:g} min each · "
                    f"{part['gen_rows']:,} {'persons' if sequential else 'rows'} generated · llm {part['size']}", "",
                f"- date: {part['date']}", f"- command: `{part['command']}`",
                *([f"- code: {part['code']}"] if part.get("code") else []), f"- data: {part['data']}",
                *run_notes(part), verdict(part), "", dataset_table(part, sequential)]
        engines = engine_table(part)
        if engines:
            out += ["", "The LLM's generations from the same trained model (transformers' tokens/s, decode rows/s, "
                        "valid share and retries are the backend's generation report; rows/s and engine start are "
                        "timed around the pipeline's generate):", "", engines]
        check = part.get("speed_check")
        if check:
            out += ["", f"Generation speed, each setting in a fresh process over the same model, {check['rows']:,} "
                        f"{'persons' if sequential else 'rows'} generated twice in a row (cold, then warm) "
                        f"({check['date']}; `{check['command']}`):", "", speed_table(check)]
    return "\n".join(out)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    if args.generate_from is not None:
        generate_from(args)
        return
    if args.speed_check:
        speed_check(args, summary)
        path.write_text(json.dumps(summary, indent=2))
        for name in args.datasets:
            if summary.get(name, {}).get("speed_check"):
                print(speed_table(summary[name]["speed_check"]))
        if not args.no_results:
            update_results_file(args.results, HEADING, section(summary))
        return
    if args.results_only:
        update_results_file(args.results, HEADING, section(summary))
        say(f"results: {args.results}")
        return
    size = args.model_size or compare_sizes(args, summary)
    path.write_text(json.dumps(summary, indent=2))
    for name, bench in (("diamonds", bench_diamonds), ("rwm5yr", bench_rwm5yr)):
        if name in args.datasets:
            bench(args, size, summary)
            path.write_text(json.dumps(summary, indent=2))
            print(dataset_table(summary[name], name == "rwm5yr"))
            print(engine_table(summary[name]))
    text = section(summary)
    print()
    print(text)
    if not args.no_results:
        update_results_file(args.results, HEADING, text)
        say(f"results: {args.results}")


if __name__ == "__main__":
    main()
