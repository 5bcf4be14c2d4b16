"""The DCR share of one trained model over several draws: is a share above 0.52 the model, or the judge's noise?

    .venv/bin/python bench/dcr_draws.py RUN [--draws 4] [--first-seed 100] [--generate-option KEY=VALUE ...]

RUN is a folder that run_ours.py wrote (through run_bench.py, run_sequential.py or run_llm.py): its synth.yaml
and its trained model under home/. The model draws `--draws` more samples of the run's size, each with its own
seed, and the judge (mostlyai-qa) scores each against the run's split: the training table synth.yaml names and
the holdout beside it (train.parquet -> holdout.parquet; a context table's train-ctx -> holdout-ctx). The judge
reports the largest share over seven column groups (all columns, then correlated and random subsets), and picks
the random ones anew each time, so one scoring of one draw moves by up to 0.015 on rwm5yr; the mean over draws
is what the model leaks. bench/dcr_baseline.py gives the floor: real unseen subjects scored the same way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.judge import judge  # noqa: E402
from bench.results import run_lines, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT, say  # noqa: E402
from bench.run_ours import _options  # noqa: E402


def holdout_of(train: Path) -> Path:
    """The split's holdout file beside its training file (bench/tables.py and run_sequential.py name them so)."""
    path = train.with_name(train.name.replace("train", "holdout", 1))
    if not path.is_file():
        raise SystemExit(f"no holdout beside {train} (looked for {path})")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run_ours.py output folder (synth.yaml, home/)")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=100, help="draw i generates with seed first_seed + i")
    ap.add_argument("--generate-option", nargs="*", default=[], metavar="KEY=VALUE",
                    help="generate options changed for every draw (say engine=vllm)")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)
    run = args.run.resolve()
    os.environ["SYNTH_CONFIG"] = str(run / "synth.yaml")
    os.environ["SYNTH_HOME"] = str(run / "home")
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    name, spec = next(iter(yaml.safe_load((run / "synth.yaml").read_text())["datasets"].items()))
    pipeline = DatasetPipeline(load_project(), name)
    tables = spec["tables"]
    child = next((t for t, s in tables.items() if s.get("foreign_keys")), None)
    target = child or name
    context = tables[child]["foreign_keys"][0]["references"] if child else None
    train = Path(tables[target]["source"])

    rows = []
    for draw in range(args.draws):
        seed = args.first_seed + draw
        options = pipeline.backend.GenerateOptions.model_validate(
            {**pipeline.spec.generate.model_dump(), **_options(args.generate_option), "seed": seed})
        tables_out = pipeline.generate(options, device="auto").tables
        syn = run / f"draw-{seed}.parquet"
        tables_out[target].to_parquet(syn, index=False)
        ctx = None
        if context:
            tables_out[context].to_parquet(run / f"draw-{seed}-ctx.parquet", index=False)
            ctx_train = Path(tables[context]["source"])
            ctx = (tables[context]["primary_key"], run / f"draw-{seed}-ctx.parquet", ctx_train, holdout_of(ctx_train))
        qa = judge(args.peer_python, args.qa_script, syn, train, holdout_of(train), run / f"qa-draw-{seed}.html", ctx=ctx)
        rows.append((seed, len(tables_out[target]), qa))
        say(f"draw seed {seed}: DCR share {qa['dcr_share']:.3f}, accuracy {qa['accuracy']['overall']:.3f}")

    shares = [qa["dcr_share"] for *_, qa in rows]
    lines = ["| seed | rows | accuracy | DCR share | discriminator AUC |", "|---|---|---|---|---|"]
    lines += [f"| {seed} | {n:,} | {qa['accuracy']['overall']:.3f} | {qa['dcr_share']:.3f} | "
              f"{qa['discriminator_auc']:.3f} |" for seed, n, qa in rows]
    spread = f" ± {statistics.stdev(shares):.3f} (sd)" if len(shares) > 1 else ""
    lines.append(f"| mean | – | {statistics.mean(q['accuracy']['overall'] for *_, q in rows):.3f} | "
                 f"{statistics.mean(shares):.3f}{spread} | {statistics.mean(q['discriminator_auc'] for *_, q in rows):.3f} |")
    table = "\n".join(lines)
    print("\n" + table + "\n")
    what = (f"- what: the model {run} trained ({spec.get('backend', 'tabular_argn')}, {dict(spec['train'])}), "
            f"{args.draws} more draws of {spec['generate'].get('sample_size')} {'subjects' if context else 'rows'}"
            + (f" with {args.generate_option}" if args.generate_option else "")
            + ", each judged against the run's training and holdout split" + (" (records with their context)" if context else ""))
    update_results_file(args.results, f"## DCR share over draws · {run.parent.name}/{run.name}"
                        + (f" · {' '.join(args.generate_option)}" if args.generate_option else ""),
                        "\n".join([*run_lines("bench/dcr_draws.py"), what, "", table]))
    say(f"results: {args.results}")


if __name__ == "__main__":
    main()
