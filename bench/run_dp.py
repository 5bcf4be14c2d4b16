"""Differential privacy (issue 22): ours (TabularARGN) against the reference (mostlyai-engine) at several ε.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/run_dp.py [--budget 5] [--seed 0]
        [--datasets diamonds rwm5yr] [--epsilons 1 4 8 none] [--llm-epsilons 8 none] [--no-llm]
        [--llm-rows 5000] [--ours-extra DATASET:EPS:KEY=VALUE[,KEY=VALUE] ...] [--work /tmp/bench_dp]
        [--retry-failed] [--pin] [--no-results]

Per dataset, one split (diamonds: bench/tables.py's split_once, 80/20 rows; rwm5yr: run_sequential.py's
split_subjects, persons as the context of their yearly records, 80/20 persons), then one run after another:
ours and the reference at each ε (`none`: no DP at all), both with `--budget` minutes of training, and the LLM
backend (ours, model_size tiny) at `--llm-epsilons`. Ours runs through bench/dp_ours.py (run_ours.py, then our
quality stage's privacy figures and the model's privacy ledger), the reference through bench/dp_reference.py
(run_reference.py with the engine's DifferentialPrivacyConfig, its defaults except max_epsilon). Every output is
judged by mostlyai-qa (qa_eval.py: accuracy, coherence, DCR share, discriminator AUC) and by dcr_excess.py
(the judge's DCR share against its floor, 5 draws).

The budget ε is the total (value protection + training) for both engines. At ε ≤ 1 value protection takes
ε/2 (ours refuses value_protection_epsilon ≥ max_epsilon; the reference would pass max_epsilon at its first
epoch), else the default 1.0. For two tables the reference trains two models on the same persons (the context's
flat model and the records' sequential one): each gets half of ε and half of value protection's, so that the
sum is the same total; its ε spent is the sum of both models' last reported ε.

Run folders: <work>/<dataset>/<engine>-eps<ε>/ (the engine's output under engine/); a run whose result.json exists
is skipped (with --retry-failed, a failed one runs again). bench/RESULTS.md gets the section
"Differential privacy (issue 22) · budget B min each · seed S".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.judge import judge  # noqa: E402
from bench.results import cell as fmt, command_line, machine, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT, run_engine, say  # noqa: E402
from bench.run_sequential import RECORDS, split_subjects  # noqa: E402
from bench.tables import split_once  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DCR_EXCESS = REPO.parent / "shared" / "tools" / "dcr_excess.py"
DATASETS = {"diamonds": DATA / "diamonds.csv.gz", "rwm5yr": DATA / "rwm5yr.csv.gz"}
KEY, ORDER_BY = "id", ["year"]  # rwm5yr: persons and their yearly records
VALUE_PROTECTION_EPSILON = 1.0  # both engines' default


# --- settings ---------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=5.0, help="training minutes per run (both engines)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--epsilons", nargs="*", default=[1.0, 4.0, 8.0, None], type=epsilon)
    ap.add_argument("--llm-epsilons", nargs="*", default=[8.0, None], type=epsilon)
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--ours-extra", nargs="*", default=[], metavar="DATASET:EPS:KEY=VALUE[,KEY=VALUE]",
                    help="more runs of ours with other train options, e.g. diamonds:1:batch_size=128 (extra rows); "
                         "dp.KEY sets one of differential_privacy's, e.g. rwm5yr:4:dp.noise_multiplier=null")
    ap.add_argument("--llm-extra", nargs="*", default=[], metavar="DATASET:EPS:KEY=VALUE[,KEY=VALUE]",
                    help="more runs of the LLM backend, as --ours-extra")
    ap.add_argument("--llm-rows", type=int, default=5000, help="diamonds rows the LLM generates (rwm5yr: persons "
                                                               "as many as the training split, as for the others)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_dp"))
    ap.add_argument("--retry-failed", action="store_true", help="run again the runs whose result.json says failed")
    ap.add_argument("--pin", action="store_true",
                    help="run ours from a snapshot of HEAD (git archive into <work>/code-<commit>), so that commits "
                         "made while the benchmark runs do not change the code under it")
    ap.add_argument("--no-results", action="store_true", help="leave bench/RESULTS.md alone")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    return ap.parse_args(argv)


def epsilon(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def eps_label(eps: float | None) -> str:
    return "none" if eps is None else f"{eps:g}"


def value_protection(eps: float) -> float:
    return min(VALUE_PROTECTION_EPSILON, eps / 2)


def ours_dp(eps: float | None) -> dict | None:
    return None if eps is None else {"max_epsilon": eps, "value_protection_epsilon": value_protection(eps)}


def reference_dp(eps: float | None, models: int) -> dict | None:
    """The engine's config for each of its `models` models (they share the total evenly)."""
    if eps is None:
        return None
    return {"max_epsilon": eps / models, "value_protection_epsilon": value_protection(eps) / models}


# --- data -------------------------------------------------------------------------------------------------------

def prepare(name: str, args) -> dict:
    """The split, the engines' data arguments, and the judge's inputs for one dataset."""
    work = args.work / name
    if name == "diamonds":
        split = split_once(DATASETS[name], work, args.seed)
        return {"name": name, "work": work, "models": 1, "rows": split.train_rows, "unit": "rows",
                "data": f"{split.train_rows:,} train / {split.holdout_rows:,} holdout rows",
                "engine_args": ["--train", str(split.train_path)], "ours_args": ["--table", split.table],
                "judge": {"trn": split.train_path, "hol": split.holdout_path}}
    split = split_subjects(DATASETS[name], KEY, work, args.seed)
    return {"name": name, "work": work, "models": 2, "rows": split["subjects"], "unit": "persons",
            "data": f"{split['subjects']:,} persons ({', '.join(split['context_columns'])}) with {split['records']:,} "
                    f"records for training; holdout 20% of persons",
            "engine_args": ["--train", str(split["train"]), "--ctx", str(split["train_ctx"]), "--ctx-key", KEY],
            "ours_args": ["--table", RECORDS, "--order-by", *ORDER_BY],
            "judge": {"trn": split["train"], "hol": split["holdout"], "trn_ctx": split["train_ctx"],
                      "hol_ctx": split["holdout_ctx"]}}


# --- one run ----------------------------------------------------------------------------------------------------

def snapshot(work: Path) -> tuple[Path, str]:
    """HEAD's files (git archive) in <work>/code-<commit>: ours runs from there with --pin."""
    commit = git_commit()
    folder = work / f"code-{commit}"
    if not folder.is_dir():
        tmp = work / f".code-{commit}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        subprocess.run(f"git -C {REPO} archive {commit} | tar -x -C {tmp}", shell=True, check=True)
        tmp.rename(folder)
    return folder, commit


def ours_python(args) -> list[str]:
    """The project's python; with --pin, importing the snapshot's core and plugins before the editable installs."""
    if args.code is None:
        return [sys.executable]
    paths = [args.code, args.code / "plugins" / "tabular_argn", args.code / "plugins" / "llm"]
    return ["env", "PYTHONPATH=" + os.pathsep.join(map(str, paths)), sys.executable]


def extra_runs(args, name: str, llm: bool = False) -> list[tuple[float | None, dict]]:
    """--ours-extra (--llm-extra with `llm`) for this dataset: (ε, train options)."""
    out = []
    for text in args.llm_extra if llm else args.ours_extra:
        dataset, eps, options = text.split(":", 2)
        if dataset == name:
            out.append((epsilon(eps), dict(o.split("=", 1) for o in options.split(","))))
    return out


def label(engine: str, extra: dict | None) -> str:
    return engine + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")


def engine_command(args, data: dict, engine: str, eps: float | None, out: Path, extra: dict | None = None) -> list[str]:
    rows = args.llm_rows if engine == "llm" and data["name"] == "diamonds" else data["rows"]
    common = [*data["engine_args"], "--out", str(out), "--budget", f"{args.budget:g}", "--gen-rows", str(rows),
              "--seed", str(args.seed)]
    if engine == "reference":
        dp = reference_dp(eps, data["models"])
        return [args.peer_python, str(REPO / "bench" / "dp_reference.py"), *common,
                *(["--dp", json.dumps(dp)] if dp else [])]
    # an extra `dp.KEY=VALUE` (VALUE as JSON: dp.noise_multiplier=null) goes into the differential_privacy section
    dp = {**(ours_dp(eps) or {}), **{k[3:]: json.loads(v) for k, v in (extra or {}).items() if k.startswith("dp.")}}
    options = [f"differential_privacy={json.dumps(dp)}"] if eps is not None else []
    options += [f"{k}={v}" for k, v in (extra or {}).items() if not k.startswith("dp.")]
    cmd = [*ours_python(args), str((args.code or REPO) / "bench" / "dp_ours.py"), *common, *data["ours_args"]]
    if engine == "llm":
        return [*cmd, "--backend", "llm", "--train-option", "model_size=tiny", *options,
                "--generate-option", "engine=transformers"]
    return [*cmd, "--backend", "tabular_argn", *(["--train-option", *options] if options else [])]


def run_one(args, data: dict, engine: str, eps: float | None, extra: dict | None = None) -> dict:
    """Train, generate and judge one (engine, ε); resumable: a finished run's result.json is read back. `extra`:
    more train options for ours (a run of its own, in a folder named after them)."""
    suffix = "".join(f"-{k}={v}" for k, v in (extra or {}).items())
    folder = data["work"] / f"{engine}-eps{eps_label(eps)}{suffix}"
    saved = folder / "result.json"
    if saved.is_file():
        earlier = json.loads(saved.read_text())
        if not (args.retry_failed and "failed" in earlier):
            say(f"{data['name']} {engine} ε {eps_label(eps)}: done before ({saved})")
            return earlier
    out = folder / "engine"
    out.mkdir(parents=True, exist_ok=True)
    cmd = engine_command(args, data, engine, eps, out, extra)
    load = os.getloadavg()[0]
    if not (out / "result.json").is_file() or json.loads((out / "result.json").read_text()).get("cmd") != cmd:
        (out / "result.json").unlink(missing_ok=True)
        (out / "error.txt").unlink(missing_ok=True)
        try:
            result = run_engine(f"{data['name']} {engine} ε {eps_label(eps)}", cmd, out)
        except SystemExit as failure:
            return record_failure(saved, cmd, str(failure), out, run_commit(args, engine))
        result.update(cmd=cmd, load_at_start=load, commit=run_commit(args, engine))
        (out / "result.json").write_text(json.dumps(result, indent=2))
    result = json.loads((out / "result.json").read_text())
    try:
        result["scores"] = score(args, data, out)
    except Exception as failure:  # noqa: BLE001 - the judge's failure: kept, the next runs go on
        return record_failure(saved, cmd, f"scoring failed: {failure}", out, result.get("commit", "?"))
    result["summary"] = summarize(engine, eps, result, data["models"])
    saved.write_text(json.dumps(result, indent=2, default=str))
    say(f"{data['name']} {engine} ε {eps_label(eps)}: {json.dumps(result['summary'])}")
    return result


def run_commit(args, engine: str) -> str:
    return args.code_commit if args.code is not None and engine != "reference" else git_commit()


def record_failure(saved: Path, cmd: list[str], why: str, out: Path, commit: str) -> dict:
    log = out / "error.txt"
    result = {"failed": why, "cmd": cmd, "commit": commit,
              "traceback": log.read_text() if log.is_file() else None}
    saved.write_text(json.dumps(result, indent=2))
    say(f"FAILED: {why}; recorded in {saved}")
    return result


# --- judging ----------------------------------------------------------------------------------------------------

def score(args, data: dict, out: Path) -> dict:
    """mostlyai-qa (qa_eval.py) and dcr_excess.py (5 draws) on the run's synthetic output."""
    j = data["judge"]
    syn, syn_ctx = out / "synthetic.parquet", out / "synthetic-ctx.parquet"
    ctx = (KEY, syn_ctx, j["trn_ctx"], j["hol_ctx"]) if "trn_ctx" in j else None
    say(f"scoring {out} with qa_eval.py and dcr_excess.py")
    qa = judge(args.peer_python, args.qa_script, syn, j["trn"], j["hol"], out / "qa-report.html", ctx=ctx)
    cmd = [args.peer_python, str(DCR_EXCESS), "--syn", str(syn), "--trn", str(j["trn"]), "--hol", str(j["hol"]),
           "--draws", "5", "--seed", str(args.seed)]
    if ctx is not None:
        cmd += ["--ctx-key", KEY, "--syn-ctx", str(syn_ctx), "--trn-ctx", str(j["trn_ctx"]), "--hol-ctx",
                str(j["hol_ctx"])]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=str(out))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"dcr_excess.py (exit {done.returncode}): {done.stderr[-1500:]}")
    return {"qa": qa, "dcr_excess": json.loads(lines[-1])}


# --- one run's figures ------------------------------------------------------------------------------------------

def seconds_per_epoch(records: list[dict], key: str) -> float | None:
    """The median epoch's seconds (validation included); the last epoch is left out, a budget may cut it short."""
    times = [r[key] for r in records if r.get(key) is not None]
    durations = [b - a for a, b in zip([0.0, *times], times)]
    if len(durations) > 1:
        durations = durations[:-1]
    return statistics.median(durations) if durations else None


def llm_passes(result: dict) -> float | None:
    """Passes over the LLM's training examples: its optimiser steps over the steps a pass takes (the LLM validates
    at the end of a pass or every tenth of the budget, so its records are not epochs)."""
    settings = result.get("train_settings", {})
    dp = settings.get("differential_privacy")
    per_pass = round(1 / dp["sample_rate"]) if dp else math.ceil(settings["train_examples"] / settings["batch_size"])
    return result["optimizer_steps"] / per_pass if result.get("optimizer_steps") else None


def summarize(engine: str, eps: float | None, result: dict, models: int) -> dict:
    qa, excess = result["scores"]["qa"], result["scores"]["dcr_excess"]
    acc = qa.get("accuracy", {})
    out = {"accuracy": acc.get("overall"), "univariate": acc.get("univariate"), "bivariate": acc.get("bivariate"),
           "coherence": acc.get("coherence"), "discriminator_auc": qa.get("discriminator_auc"),
           "dcr_share": qa.get("dcr_share"), "judge_share": excess["share"], "judge_floor": excess["floor"],
           "judge_excess": excess["excess"], "train_stage_seconds": result.get("train_stage_seconds")}
    if engine == "reference":
        progress = result.get("progress", {})
        ends = {name: list({m["epoch"]: m for m in reversed(messages) if m.get("val_loss") is not None}.values())[::-1]
                for name, messages in progress.items()}  # the first message of each epoch end
        eps_last = [m[-1].get("dp_eps") for m in progress.values() if m]
        eps_kept = [next((r.get("dp_eps") for r in reversed(m) if r.get("is_checkpoint")), None) for m in progress.values()]
        out.update(epochs=len(ends.get("", [])), seconds_per_epoch=seconds_per_epoch(ends.get("", []), "total_time"),
                   epsilon=_sum(eps_last), epsilon_kept=_sum(eps_kept),
                   context_epochs=len(ends["context"]) if "context" in ends else None)
        return out
    progress = result.get("progress", {})
    main_model = progress.get(RECORDS) or progress.get("") or []
    privacy = result.get("privacy") or {}
    figures = (result.get("quality") or {}).get(RECORDS if models > 1 else next(iter(result.get("quality") or {}), ""))
    out.update(epsilon=privacy.get("epsilon") if eps is not None else None, ledger=privacy or None,
               dp_settings=dp_settings(result.get("train_settings") or {}),
               stopped=result.get("stopped_because"), optimizer_steps=result.get("optimizer_steps"),
               ours_privacy=(figures or {}).get("privacy"), quality_error=result.get("quality_error"),
               context_epochs=len(progress["context"]) if "context" in progress else None)
    if engine == "llm":
        passes = llm_passes(result)
        last = main_model[-1]["seconds"] if main_model else None
        out.update(epochs=passes, seconds_per_epoch=last / passes if passes and last else None)
    else:
        out.update(epochs=len(main_model), seconds_per_epoch=seconds_per_epoch(main_model, "seconds"))
    return out


def dp_settings(settings: dict) -> dict:
    """The DP-SGD settings each of ours' models chose ({"": ...} for one model, {table: ...} for a tree)."""
    if "differential_privacy" in settings:
        return {"": settings["differential_privacy"]}
    return {name: s["differential_privacy"] for name, s in settings.items()
            if isinstance(s, dict) and "differential_privacy" in s}


def _sum(values: list) -> float | None:
    return None if not values or any(v is None for v in values) else float(sum(values))


# --- the results ------------------------------------------------------------------------------------------------

def ratio(runs: dict, engine: str, eps) -> float | None:
    plain = runs.get((engine.split(" (")[0], None), {}).get("summary", {}).get("seconds_per_epoch")
    mine = runs.get((engine, eps), {}).get("summary", {}).get("seconds_per_epoch")
    return mine / plain if mine and plain else None


def row(runs: dict, engine: str, eps, sequential: bool) -> list[str]:
    run = runs.get((engine, eps), {})
    if "failed" in run or "summary" not in run:
        return [engine, eps_label(eps), "FAILED" if "failed" in run else "not run"] + ["–"] * (11 + sequential)
    s = run["summary"]
    p = s.get("ours_privacy") or {}
    eps_text = fmt(s["epsilon"]) if s.get("epsilon") is not None else "–"
    if engine == "reference" and s.get("epsilon_kept") not in (None, s.get("epsilon")):
        eps_text += f" (kept {fmt(s['epsilon_kept'])})"
    epochs = f"{s['epochs']:.1f}" if isinstance(s.get("epochs"), float) else str(s.get("epochs"))
    if s.get("context_epochs") is not None:
        epochs += f" (+{s['context_epochs']})"
    cells = [engine, eps_label(eps), eps_text, epochs, fmt(s.get("seconds_per_epoch"), 2),
             fmt(ratio(runs, engine, eps), 2) if eps is not None else "1", fmt(s["accuracy"]), fmt(s["univariate"]),
             fmt(s["bivariate"])]
    if sequential:
        cells.append(fmt(s["coherence"]))
    cells += [fmt(s["discriminator_auc"]), " / ".join(fmt(s[k]) for k in ("judge_share", "judge_floor", "judge_excess")),
              " / ".join(fmt(p.get(k)) for k in ("dcr_share", "dcr_floor", "dcr_excess")) if p else "–",
              fmt(p.get("membership_auc")) if p else "–",
              " / ".join(fmt(p.get(k), 4) for k in ("exact_copy_share", "holdout_exact_copy_share")) if p else "–"]
    return cells


def table(runs: dict, keys: list[tuple[str, float | None]], sequential: bool, first: str = "engine") -> str:
    columns = [first, "ε target", "ε spent", "epochs", "s/epoch", "DP/non-DP s/epoch", "accuracy", "univariate",
               "bivariate", *(["coherence"] if sequential else []), "discriminator AUC",
               "judge DCR share / floor / excess", "ours: DCR share / floor / excess", "ours: membership AUC",
               "ours: exact copies / holdout's"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row(runs, engine, eps, sequential)) + " |" for engine, eps in keys]
    return "\n".join(lines)


def findings(results: dict, epsilons: list, llm_epsilons: list) -> list[str]:
    """The issue's targets, checked on the numbers (one sentence each)."""
    out = []
    for name, runs in results.items():
        get = lambda e, k, eng="ours": runs.get((eng, e), {}).get("summary", {}).get(k)  # noqa: E731
        plain = get(None, "accuracy")
        low = [e for e in epsilons if e is not None and e <= 4]
        gaps = {e: get(e, "accuracy") - plain for e in low if get(e, "accuracy") is not None and plain is not None}
        if gaps:
            ok = all(g >= -0.03 for g in gaps.values())
            out.append(f"{name}: at ε ≤ 4 ours is {'within' if ok else 'NOT within'} 0.03 of its non-DP accuracy "
                       f"({plain:.3f}): " + ", ".join(f"ε {e:g} {g:+.3f}" for e, g in gaps.items()) + ".")
        pairs = {e: (get(e, "accuracy"), get(e, "accuracy", "reference")) for e in epsilons if e is not None}
        pairs = {e: p for e, p in pairs.items() if None not in p}
        if pairs:
            ahead = [e for e, (a, b) in pairs.items() if a >= b]
            out.append(f"{name}: ours ≥ the reference's DP accuracy at {len(ahead)} of {len(pairs)} ε (" + ", ".join(
                f"ε {e:g} {a:.3f} vs {b:.3f}" for e, (a, b) in pairs.items()) + ").")
        for engine in ("ours", "reference"):
            ratios = {e: ratio(runs, engine, e) for e in epsilons if e is not None}
            ratios = {e: r for e, r in ratios.items() if r is not None}
            if ratios:
                ok = all(r <= 2 for r in ratios.values())
                out.append(f"{name}: a DP epoch of {engine} takes {'≤' if ok else 'MORE than'} 2× a non-DP one ("
                           + ", ".join(f"ε {e:g} {r:.2f}×" for e, r in ratios.items()) + ").")
        private = {e: get(e, "ours_privacy") for e in epsilons if e is not None and get(e, "ours_privacy")}
        if private:
            ok = all(p["dcr_excess"] <= 0.015 and p["membership_auc"] <= 0.55 for p in private.values())
            out.append(f"{name}: ours' DP runs {'meet' if ok else 'do NOT all meet'} dcr_excess ≤ 0.015 and membership "
                       f"AUC ≤ 0.55 (" + ", ".join(f"ε {e:g} {p['dcr_excess']:+.3f} / {p['membership_auc']:.3f}"
                                                  for e, p in private.items()) + ").")
        dp_llm = [e for e in llm_epsilons if e is not None]
        llm_plain = get(None, "accuracy", "llm")
        for e in dp_llm:
            acc = get(e, "accuracy", "llm")
            if acc is not None and llm_plain is not None:
                out.append(f"{name}: the LLM at ε {e:g} is {'within' if acc - llm_plain >= -0.05 else 'NOT within'} "
                           f"0.05 of its non-DP accuracy ({acc:.3f} vs {llm_plain:.3f}, {acc - llm_plain:+.3f}).")
    return out


def notes(results: dict) -> list[str]:
    lines = []
    for name, runs in results.items():
        for (engine, eps), run in runs.items():
            what = f"{name} {engine} ε {eps_label(eps)}"
            if "failed" in run:
                why = (run.get("traceback") or run["failed"]).strip().splitlines()[-1]
                lines.append(f"- {what}: FAILED: {why}")
                continue
            s = run.get("summary", {})
            text = f"- {what}: commit {run.get('commit', '?')}, train stage {s.get('train_stage_seconds') or 0:.0f}s"
            if s.get("stopped"):
                text += f", stopped: {s['stopped']}"
            if s.get("dp_settings"):
                text += "; DP-SGD " + "; ".join(f"{k + ': ' if k else ''}noise {d.get('noise_multiplier')}, sample rate "
                                                f"{d.get('sample_rate')}, batch {d.get('expected_batch', d.get('expected_batch_subjects'))}"
                                                for k, d in s["dp_settings"].items())
            if s.get("ledger"):
                text += (f"; ledger ε {s['ledger']['epsilon']} (value protection {s['ledger']['epsilon_value_protection']}"
                         f", training {s['ledger']['epsilon_training']}), δ {s['ledger']['delta']}, "
                         f"{s['ledger']['steps']} DP steps ({s.get('optimizer_steps')} optimiser steps counted)")
            if s.get("quality_error"):
                text += f"; our quality stage FAILED: {s['quality_error'].strip().splitlines()[-1]}"
            text += f"; load average {run.get('load_at_start', 0):.1f} at its start, {run.get('load_at_end', 0):.1f} at its end"
            lines.append(text)
    return lines


def record(args, datasets: dict, results: dict, llm_results: dict, started: float, commit: str) -> None:
    heading = f"## Differential privacy (issue 22) · budget {args.budget:g} min each · seed {args.seed}"
    commits = {run.get("commit", "?") for runs in (*results.values(), *llm_results.values())
               for (engine, _), run in runs.items() if engine != "reference"}
    body = [f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {machine()}", f"- command: `{command_line('bench/run_dp.py')}`",
            f"- commit: {commit} at the start, {git_commit()} at the end"
            + (f"; ours ran from a snapshot of {args.code_commit} (--pin)" if args.code is not None else "")
            + "; ours' runs started from " + ", ".join(sorted(commits)) + " (each run's below; the reference's runs "
            "use none of our code)",
            f"- wall time: {(time.time() - started) / 60:.0f} min (this invocation; finished runs are reused)",
            "- settings: ε is the total budget (value protection + training); value protection takes ε/2 at ε ≤ 1, "
            "else 1.0; the reference's two-table runs give each of its two models half of both. Each engine's defaults "
            "otherwise (max grad norm 1; noise multiplier: the reference 1.5, ours 1.5 up to a14ed43 and chosen "
            "(`noise_multiplier: null`) from 387c94b on, each run's in the notes below; δ: ours 1/n^1.2, the reference "
            "1e-5 a model). "
            "ε spent: ours the model's privacy ledger, the reference the ε it reports last (summed over its models; "
            "'kept': at the checkpoint it keeps). Epochs and s/epoch: the records' model for rwm5yr ('+N': the "
            "context model's epochs); s/epoch is the median epoch, validation included, the last epoch left out. "
            "Judge: mostlyai-qa (qa_eval.py) against the holdout; judge DCR share / floor / excess from dcr_excess.py "
            "(5 draws); ours: our quality stage's privacy figures (records table for rwm5yr, whole persons)."]
    for name, data in datasets.items():
        body += ["", f"### {name} · {data['data']}", ""]
        keys = [(e, eps) for eps in args.epsilons for e in ("ours", "reference")]
        keys += [(label("ours", extra), eps) for eps, extra in extra_runs(args, name)]
        body.append(table(results[name], keys, data["models"] > 1))
    if llm_results:
        body += ["", f"### LLM backend (ours, model_size tiny) · {args.budget:g} min each · diamonds "
                     f"{args.llm_rows:,} rows, rwm5yr as many persons as the training split", ""]
        # rows named by dataset, an extra run's options after it ("diamonds (dp.noise_multiplier=null)")
        merged = {(name + engine[len("llm"):], eps): run for name, runs in llm_results.items()
                  for (engine, eps), run in runs.items()}
        keys = list(merged)
        body.append(table(merged, keys, True, first="dataset"))
    body += ["", "Runs:", *notes(results), *notes({f"{n} (llm)": r for n, r in llm_results.items()})]
    combined = {name: {**results.get(name, {}), **llm_results.get(name, {})} for name in datasets}
    body += ["", "Findings (checked on the numbers above):", "",
             *[f"- {line}" for line in findings(combined, args.epsilons, args.llm_epsilons)]]
    update_results_file(args.results, heading, "\n".join(body))
    say(f"results: {args.results}")


def git_commit() -> str:
    """The code a run starts from (the lead commits while the benchmark runs)."""
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    commit = git_commit()
    args.code, args.code_commit = snapshot(args.work) if args.pin else (None, None)
    say(f"commit {commit}; runs under {args.work}" + (f"; ours from {args.code}" if args.code else ""))
    datasets = {name: prepare(name, args) for name in args.datasets}
    results, llm_results = {}, {}
    for name, data in datasets.items():
        results[name] = {}
        for eps in args.epsilons:
            for engine in ("ours", "reference"):
                results[name][(engine, eps)] = run_one(args, data, engine, eps)
        for eps, extra in extra_runs(args, name):
            results[name][(label("ours", extra), eps)] = run_one(args, data, "ours", eps, extra)
    if not args.no_llm:
        for name, data in datasets.items():
            llm_results[name] = {("llm", eps): run_one(args, data, "llm", eps) for eps in args.llm_epsilons}
            for eps, extra in extra_runs(args, name, llm=True):
                llm_results[name][(label("llm", extra), eps)] = run_one(args, data, "llm", eps, extra)
    if not args.no_results:
        record(args, datasets, results, llm_results, started, commit)
    say(f"done in {(time.time() - started) / 60:.0f} min")


if __name__ == "__main__":
    main()
