"""Split a dataset into training and validation partitions.

Tables without foreign keys are split by primary key (or by row when they have none); a table with a
foreign key follows its parent, so a parent and its children always land in the same partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_assets.config import DatasetSpec

PARTITIONS = ("train", "validation")


@dataclass
class Split:
    train: dict[str, pd.DataFrame]
    validation: dict[str, pd.DataFrame]

    def partition(self, name: str) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation}[name]


def table_order(spec: DatasetSpec) -> list[str]:
    """Tables ordered so that every parent comes before its children."""
    ordered: list[str] = []
    pending = dict(spec.tables)
    while pending:
        ready = [
            name for name, table in pending.items()
            if all(fk.references in ordered or fk.references == name for fk in table.foreign_keys)
        ]
        if not ready:
            raise ValueError(f"foreign keys form a cycle among tables {sorted(pending)}")
        for name in ready:
            ordered.append(name)
            del pending[name]
    return ordered


def split_tables(spec: DatasetSpec, tables: dict[str, pd.DataFrame]) -> Split:
    rng = np.random.default_rng(spec.split.seed)
    train: dict[str, pd.DataFrame] = {}
    validation: dict[str, pd.DataFrame] = {}
    for name in table_order(spec):
        table_spec = spec.tables[name]
        df = tables[name]
        parents = [fk for fk in table_spec.foreign_keys if fk.references != name]
        if parents:
            fk = parents[0]
            parent_pk = spec.tables[fk.references].primary_key
            in_train = df[fk.column].isin(train[fk.references][parent_pk])
        else:
            in_train = _random_mask(df, table_spec.primary_key, spec.split.validation_share, rng)
        train[name] = df[in_train].reset_index(drop=True)
        validation[name] = df[~in_train].reset_index(drop=True)
    return Split(train=train, validation=validation)


def _random_mask(df: pd.DataFrame, key: str | None, validation_share: float, rng: np.random.Generator) -> pd.Series:
    units = df[key].to_numpy() if key else np.arange(len(df))
    n_validation = int(round(len(units) * validation_share))
    if len(units) > 1:
        n_validation = min(max(n_validation, 1), len(units) - 1)
    validation_units = rng.choice(units, size=n_validation, replace=False)
    return pd.Series(~np.isin(units, validation_units), index=df.index)
