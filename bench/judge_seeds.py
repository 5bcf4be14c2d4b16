"""The judge's accuracy and coherence of synthetic records, scored several times with its random state set.

    /tmp/peer-venv/bin/python bench/judge_seeds.py SPLIT ENGINE_FOLDER ... [--suffix=-seed1] [--key id] [--seeds 1 2 3]

Runs in the peer venv (it imports mostlyai-qa; the project never does). SPLIT is run_sequential.py's folder of a
dataset (train.parquet, train-ctx.parquet, holdout.parquet, holdout-ctx.parquet; `--suffix=-seed1` for the files
of another split seed); each ENGINE_FOLDER holds an engine's synthetic.parquet and synthetic-ctx.parquet.

Why: on records with a context the judge draws one pair of consecutive records per subject at random, with a random
state of its own each run, so one run's accuracy and coherence move by about ±0.004 on NAFLD (bench/RESULTS.md).
Two engines compared by one run each can swap places; scored with the same seeds, they are compared on the same
draws. Prints one line per engine and seed, then each engine's means.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.tables, run from the peer venv
from bench.tables import read_parquet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", type=Path)
    ap.add_argument("engines", type=Path, nargs="+")
    ap.add_argument("--suffix", default="", help="the split files' suffix, e.g. --suffix=-seed1 (with the =)")
    ap.add_argument("--key", default="id")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()

    from mostlyai import qa
    from mostlyai.qa.random_state import set_random_state

    def table(name: str):
        return read_parquet(args.split / f"{name}{args.suffix}.parquet")

    real = {"trn_tgt_data": table("train"), "hol_tgt_data": table("holdout"),
            "trn_ctx_data": table("train-ctx"), "hol_ctx_data": table("holdout-ctx")}
    means = {}
    with tempfile.TemporaryDirectory() as work:
        for folder in args.engines:
            synthetic = {"syn_tgt_data": read_parquet(folder / "synthetic.parquet"),
                         "syn_ctx_data": read_parquet(folder / "synthetic-ctx.parquet")}
            scores = []
            for seed in args.seeds:
                set_random_state(seed)
                _, metrics = qa.report(**synthetic, **real, tgt_context_key=args.key, ctx_primary_key=args.key,
                                       max_sample_size_accuracy=20_000, max_sample_size_embeddings=5_000,
                                       report_path=Path(work) / "report.html")
                accuracy = metrics.accuracy
                scores.append((accuracy.overall, accuracy.coherence or float("nan")))
                print(f"{folder.name} seed {seed}: accuracy {accuracy.overall:.4f}, coherence {scores[-1][1]:.4f}",
                      flush=True)
            means[folder.name] = [sum(s[i] for s in scores) / len(scores) for i in (0, 1)]
    for name, (accuracy, coherence) in means.items():
        print(f"{name}: mean accuracy {accuracy:.4f}, mean coherence {coherence:.4f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
