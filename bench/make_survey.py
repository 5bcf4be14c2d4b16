"""rwm5yr as a survey table is stored in production: the 0/1 columns outwork, female, married and kids as
booleans, and the counts and years (docvis, hospvis, age, educ, edlevel) as floats; `id` left out (a key).

    .venv/bin/python bench/make_survey.py [--out /tmp/synth-bench/sources/rwm5yr_survey.parquet]

Then `bench/run_bench.py --data <that file>` compares both engines on it: booleans, integers stored as
floats, few-valued floats, and an income whose values heap on round numbers (3.0, 3.5) among
float32-rounded ones (3.04999995231628).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "data" / "rwm5yr.csv.gz"
BOOLEANS = ["outwork", "female", "married", "kids"]
FLOATS = ["docvis", "hospvis", "age", "educ", "edlevel"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--out", type=Path, default=Path("/tmp/synth-bench/sources/rwm5yr_survey.parquet"))
    args = ap.parse_args()
    df = pd.read_csv(args.source).drop(columns=["id"])
    df = df.astype({**{c: bool for c in BOOLEANS}, **{c: float for c in FLOATS}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out, index=False)
    print(f"{args.out}: {len(df):,} rows; {', '.join(f'{c} {t}' for c, t in df.dtypes.astype(str).items())}")


if __name__ == "__main__":
    main()
