"""Where a two-table DCR share comes from: the judge's own distance code, scored many times, taken apart.

    /tmp/peer-venv/bin/python bench/dcr_anatomy.py SPLIT LABEL=RECORDS.parquet ... [--scorings 8]

Runs in the peer venv (it imports mostlyai-qa's internals; the project never does). SPLIT is a folder with
train.parquet, train-ctx.parquet, holdout.parquet and holdout-ctx.parquet (run_llm.py's and run_sequential.py's
layout); each RECORDS.parquet is a synthetic records table with its context beside it (RECORDS-ctx.parquet).

mostlyai-qa's DCR share for records with a context: it adds each record's sequence length, draws as many records
from the training table as the holdout holds (so they come from about 2.4 times as many persons as the holdout's
records, which are all of its persons' records), and keeps the largest share over seven column groups (all
columns, three correlated and three random subsets, the random ones drawn anew per scoring). Per sample this
prints, as mean ± standard error over `--scorings` scorings:

- judge: that largest share, as qa_eval.py reports it;
- all columns: the first group's share alone;
- same persons: the all-columns share when the training records drawn are all the records of as many training
  persons as the holdout holds, so both sides cover the same number of persons.

Two baselines come first. Real persons: training persons set aside (as many as the holdout holds), judged
against the other training persons and the holdout: a perfect generator that memorised nothing. Marginals only:
training records with every column shuffled on its own (ids kept, so sequence lengths stay real): a generator that
learnt nothing but each column's training distribution.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results import run_lines, update_results_file  # noqa: E402
from bench.tables import read_parquet  # noqa: E402

COUNT = "__sequence_length"


def _with_lengths(records: pd.DataFrame, context: pd.DataFrame, key: str) -> pd.DataFrame:
    records = records.merge(context[[key]], on=key, how="inner")
    records.insert(0, COUNT, records.groupby(key)[key].transform("size"))
    return records


def score(syn, syn_ctx, trn, trn_ctx, hol, hol_ctx, key: str, scorings: int) -> dict[str, tuple[float, float]]:
    from mostlyai.qa import _distances as dist
    from mostlyai.qa._embeddings import encode_numerics, encode_strings

    def encode(s, t, h):
        numeric = [c for c in t if pd.api.types.is_numeric_dtype(t[c]) or pd.api.types.is_datetime64_dtype(t[c])]
        text = [c for c in t if c not in numeric]
        parts = [encode_numerics(s[numeric], t[numeric], h[numeric])]
        if text:
            parts.append(encode_strings(s[text], t[text], h[text]))
        return [np.hstack([p[i].to_numpy() for p in parts]) for i in range(3)]

    def share(s, t, h, columns=None):
        columns = np.arange(s.shape[1]) if columns is None else columns
        to_trn, _ = dist.calculate_dcrs_nndrs(data=t[:, columns], query=s[:, columns])
        to_hol, _ = dist.calculate_dcrs_nndrs(data=h[:, columns], query=s[:, columns])
        return dist.calculate_dcr_share(to_trn, to_hol)

    syn, trn, hol = (_with_lengths(*pair, key) for pair in ((syn, syn_ctx), (trn, trn_ctx), (hol, hol_ctx)))
    cap = min(trn.groupby(key).size().quantile(0.95), 100)  # the judge caps long sequences at their 95th percentile
    out: dict[str, list[float]] = {"judge": [], "all columns": [], "same persons": []}
    for scoring in range(scorings):
        rng = np.random.default_rng(scoring)
        seed = int(rng.integers(2**31))
        np.random.seed(seed)  # the judge's column groups draw from numpy's global generator
        s, t, h = (x.groupby(key).sample(frac=1, random_state=seed).groupby(key).head(cap) for x in (syn, trn, hol))
        persons = pd.Series(t[key].unique()).sample(n=min(h[key].nunique(), t[key].nunique()), random_state=seed)
        for protocol, t_side in (("judge", t), ("same persons", t[t[key].isin(persons)])):
            n = min(len(s), len(t_side), len(h))
            parts = [x.drop(columns=[key]).sample(n=n, random_state=seed) for x in (s, t_side, h)]
            es, et, eh = encode(*parts)
            if protocol == "same persons":
                out[protocol].append(share(es, et, eh))
                continue
            groups = [np.arange(es.shape[1])]
            if es.shape[1] > 10:
                both = np.vstack((et, eh))
                groups += dist.split_columns_into_correlated_groups(both, k=3)
                groups += dist.split_columns_into_random_groups(both, k=3)
            shares = [share(es, et, eh, g) for g in groups]
            out["judge"].append(max(shares))
            out["all columns"].append(shares[0])
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))) for k, v in out.items()}


def marginals_only(trn: pd.DataFrame, n: int, key: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = trn.sample(n=n, random_state=seed).reset_index(drop=True)
    for column in out.columns.drop(key):
        out[column] = trn[column].to_numpy()[rng.integers(len(trn), size=n)]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("split", type=Path)
    ap.add_argument("samples", nargs="*", metavar="LABEL=RECORDS.parquet")
    ap.add_argument("--key", default="id")
    ap.add_argument("--scorings", type=int, default=8)
    ap.add_argument("--baseline-draws", type=int, default=3)
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args(argv)
    read = read_parquet
    trn, trn_ctx = read(args.split / "train.parquet"), read(args.split / "train-ctx.parquet")
    hol, hol_ctx = read(args.split / "holdout.parquet"), read(args.split / "holdout-ctx.parquet")

    rows = []
    for draw in range(args.baseline_draws):
        aside = trn_ctx[args.key].sample(n=len(hol_ctx), random_state=100 + draw)
        keep = ~trn[args.key].isin(aside)
        rows.append((f"real persons, draw {draw}", score(
            trn[~keep], trn_ctx[trn_ctx[args.key].isin(aside)], trn[keep], trn_ctx[~trn_ctx[args.key].isin(aside)],
            hol, hol_ctx, args.key, args.scorings)))
        fake = marginals_only(trn, len(hol), args.key, seed=200 + draw)
        rows.append((f"marginals only, draw {draw}", score(
            fake, trn_ctx[trn_ctx[args.key].isin(fake[args.key])], trn, trn_ctx, hol, hol_ctx, args.key, args.scorings)))
    for item in args.samples:
        label, _, path = item.partition("=")
        path = Path(path)
        rows.append((label, score(read(path), read(path.with_name(path.stem + "-ctx.parquet")), trn, trn_ctx,
                                  hol, hol_ctx, args.key, args.scorings)))
        print(label, rows[-1][1], flush=True)

    kinds = ["judge", "all columns", "same persons"]
    lines = ["| sample | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    lines += [f"| {label} | " + " | ".join(f"{m:.3f} ± {se:.3f}" for m, se in (r[k] for k in kinds)) + " |"
              for label, r in rows]
    table = "\n".join(lines)
    print("\n" + table + "\n")
    body = "\n".join([*run_lines("bench/dcr_anatomy.py"),
                      f"- what: {args.scorings} scorings per sample (mean ± standard error) of mostlyai-qa's DCR "
                      f"distances on the split in {args.split}; the columns and baselines are described in the "
                      "script's docstring", "", table])
    update_results_file(args.results, f"## DCR share anatomy · {args.split.name}", body)
    print(f"results: {args.results}")


if __name__ == "__main__":
    main()
