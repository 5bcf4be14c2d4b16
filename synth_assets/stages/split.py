"""Split a dataset into training and validation partitions.

The tables of a dataset form a tree (or several), linked by foreign keys:
- a table's FIRST foreign key (self-references aside) links it to its parent in the tree, its "context":
  persons -> yearly records -> events. Its other foreign keys are plain references, which play no part
  in the tree;
- a root is a table without foreign keys (or with self-references only).

Whole trees are kept together: a root is split by its primary key (or by row when it has none), and every
descendant, at any depth, lands in the partition of its root row, following the first foreign key up the
chain. A row whose context key is null (or matches no parent row) is a unit of its own: such rows are split
at random, by row, with the same validation share and seed, and their own descendants follow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from synth_assets.config import DatasetSpec, ForeignKey

PARTITIONS = ("train", "validation")


class Linked(Protocol):
    """A table as its links describe it: a table spec, or its stats."""

    foreign_keys: list[ForeignKey]


@dataclass
class Split:
    train: dict[str, pd.DataFrame]
    validation: dict[str, pd.DataFrame]

    def partition(self, name: str) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation}[name]


def table_order(spec: DatasetSpec) -> list[str]:
    """Tables ordered so that every parent comes before its children (roots first)."""
    return parent_first(spec.tables)


def parent_first(tables: dict[str, Linked]) -> list[str]:
    """Names of `tables` (table specs or stats), every parent before its children."""
    ordered: list[str] = []
    pending = dict(tables)
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


def context_key(name: str, table: Linked) -> ForeignKey | None:
    """The foreign key linking a table to its parent in the tree (its first one that refers to another
    table), or None for a root."""
    return next((fk for fk in table.foreign_keys if fk.references != name), None)


def split_tables(spec: DatasetSpec, tables: dict[str, pd.DataFrame]) -> Split:
    rng = np.random.default_rng(spec.split.seed)
    share = spec.split.validation_share
    train: dict[str, pd.DataFrame] = {}
    validation: dict[str, pd.DataFrame] = {}
    # roots come first in table_order, so they draw from rng exactly as before rows without a context did
    for name in table_order(spec):
        table_spec = spec.tables[name]
        df = tables[name]
        fk = context_key(name, table_spec)
        if fk is None:
            in_train = _random_mask(df, table_spec.primary_key, share, rng)
        else:
            parent_pk = spec.tables[fk.references].primary_key
            context = df[fk.column]
            in_train = context.isin(train[fk.references][parent_pk]).to_numpy()
            own_unit = ~in_train & ~context.isin(validation[fk.references][parent_pk]).to_numpy()  # null, no parent
            if own_unit.any():
                in_train[own_unit] = _random_mask(df[own_unit], None, share, rng).to_numpy()
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
