"""What a perfect generator scores on two-table data: real subjects the model never saw, judged as if synthetic.

    OMP_NUM_THREADS=2 .venv/bin/python bench/dcr_baseline.py [--data PATH] [--key id] [--seed 0] [--draws 3]

The split is run_sequential.py's (same data, key and seed: persons 80/20 into training and holdout). From the
training persons, a share as large as the holdout is set aside as the "synthetic" sample (a fresh draw from the
very distribution the generators learn), and the judge (mostlyai-qa) scores it against the remaining training
persons and the untouched holdout, exactly as it scores an engine's output. Its DCR share is the floor for any
generator on this data: a model that had learnt the distribution perfectly, and memorised nothing, would score
it, up to noise. Its accuracy and coherence are the ceiling such a sample reaches. Each draw sets aside other
persons. The section in bench/RESULTS.md is replaced on a rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.judge import judge  # noqa: E402
from bench.results import run_lines, update_results_file  # noqa: E402
from bench.run_bench import PEER_PYTHON, QA_SCRIPT, say  # noqa: E402
from bench.run_sequential import DEFAULT_DATA, split_subjects  # noqa: E402
from bench.tables import read_parquet, table_name  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--key", default="id")
    ap.add_argument("--seed", type=int, default=0, help="run_sequential.py's split seed")
    ap.add_argument("--draws", type=int, default=3, help="how many different real samples to judge")
    ap.add_argument("--peer-python", default=PEER_PYTHON)
    ap.add_argument("--qa-script", type=Path, default=QA_SCRIPT)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)

    work = Path("/tmp/synth-bench") / f"{table_name(args.data)}_dcr_baseline"
    split = split_subjects(args.data, args.key, work, args.seed)
    records, context = read_parquet(split["train"]), read_parquet(split["train_ctx"])
    holdout_subjects = len(read_parquet(split["holdout_ctx"]))
    rows = []
    for draw in range(args.draws):
        aside = set(context[args.key].sample(n=holdout_subjects, random_state=100 + draw))
        paths = {}
        for part, keep in (("rest", lambda k: ~k.isin(aside)), ("real", lambda k: k.isin(aside))):
            paths[part] = work / f"{part}{draw}.parquet"
            paths[f"{part}_ctx"] = work / f"{part}{draw}-ctx.parquet"
            records[keep(records[args.key])].reset_index(drop=True).to_parquet(paths[part], index=False)
            context[keep(context[args.key])].reset_index(drop=True).to_parquet(paths[f"{part}_ctx"], index=False)
        say(f"draw {draw}: {len(aside):,} real persons judged against {len(context) - len(aside):,} training persons")
        qa = judge(args.peer_python, args.qa_script, paths["real"], paths["rest"], split["holdout"],
                   work / f"qa-report-{draw}.html",
                   ctx=(args.key, paths["real_ctx"], paths["rest_ctx"], split["holdout_ctx"]))
        rows.append((draw, len(aside), qa))
        print(qa, flush=True)
    lines = ["| draw | real persons judged | training persons | accuracy | coherence (qa) | DCR share | discriminator AUC |",
             "|---|---|---|---|---|---|---|"]
    for draw, subjects, qa in rows:
        lines.append(f"| {draw} | {subjects:,} | {len(context) - subjects:,} | {qa['accuracy']['overall']:.3f} | "
                     f"{qa['accuracy']['coherence']:.3f} | {qa['dcr_share']:.3f} | {qa['discriminator_auc']:.3f} |")
    shares = [qa["dcr_share"] for _, _, qa in rows]
    lines.append(f"| mean | – | – | {sum(q['accuracy']['overall'] for *_, q in rows) / len(rows):.3f} | "
                 f"{sum(q['accuracy']['coherence'] for *_, q in rows) / len(rows):.3f} | "
                 f"{sum(shares) / len(shares):.3f} | {sum(q['discriminator_auc'] for *_, q in rows) / len(rows):.3f} |")
    table = "\n".join(lines)
    print("\n" + table + "\n")
    body = "\n".join([
        *run_lines('bench/dcr_baseline.py'),
        f"- what: run_sequential.py's split (seed {args.seed}); from its training persons, as many as the holdout holds "
        "are set aside and judged as the synthetic sample, with their records, against the other training persons "
        "and the holdout (mostlyai-qa, records with their context, as the sequential table is judged). Real persons "
        "no model saw: what a generator that learnt the distribution perfectly, and memorised nothing, would score.",
        "", table,
    ])
    update_results_file(args.results, f"## {table_name(args.data)} sequential · a fresh real sample judged as "
                                       "synthetic (the DCR share's floor)", body)
    say(f"results: {args.results}")


if __name__ == "__main__":
    main()
