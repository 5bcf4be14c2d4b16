"""Read one flat table, optionally subsample it, and split it once into train and holdout.

Both engines train on the same train file and are judged against the same holdout, which neither sees.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HOLDOUT_SHARE = 0.2


@dataclass
class BenchSplit:
    table: str
    train_path: Path
    holdout_path: Path
    train_rows: int
    holdout_rows: int
    fingerprint: str  # identifies the train rows, so a reused reference result can be checked


def diamonds_project(work: Path, train: str) -> None:
    """A fresh project in `work`: the demo's diamonds as dataset `diamonds`, with `train` (synth.yaml's keys)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "data" / "demo" / "diamonds.csv.gz", work)
    (work / "synth.yaml").write_text("datasets:\n  diamonds:\n    tables:\n      diamonds: {source: diamonds.csv.gz}\n"
                                     f"    train: {{{train}}}\n")


def table_name(path: Path) -> str:
    """diamonds.csv.gz -> diamonds; anything else than letters, digits and _ becomes _ (a valid dataset name)."""
    stem = path.name
    for suffix in (".gz", ".csv", ".parquet"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return name if re.match(r"^[A-Za-z_]", name) else f"t_{name}"


def read_parquet(path: Path | str) -> pd.DataFrame:
    """A Parquet file (or folder of parts) read by its path: pandas' read_parquet hands pyarrow a Python file
    object, after which a process aborts at exit now and then (apache/arrow#34314), failing a bench step."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def read_table(path: Path) -> pd.DataFrame:
    if path.name.endswith(".parquet"):
        return read_parquet(path)
    if path.name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    raise SystemExit(f"{path}: expected .csv, .csv.gz or .parquet")


def fingerprint(df: pd.DataFrame) -> str:
    # content hash of the rows (not of the parquet bytes, which carry writer metadata)
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()[:16]


def split_once(source: Path, work: Path, seed: int, sample_rows: int | None = None,
               drop: list[str] = ()) -> BenchSplit:
    df = read_table(source).drop(columns=list(drop), errors="ignore")
    if sample_rows and sample_rows < len(df):
        df = df.sample(n=sample_rows, random_state=seed)
    shuffled = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_holdout = round(len(shuffled) * HOLDOUT_SHARE)
    holdout, train = shuffled.iloc[:n_holdout], shuffled.iloc[n_holdout:]
    work.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = work / "train.parquet", work / "holdout.parquet"
    train.to_parquet(train_path, index=False)
    holdout.to_parquet(holdout_path, index=False)
    return BenchSplit(table_name(source), train_path, holdout_path, len(train), len(holdout), fingerprint(train))
