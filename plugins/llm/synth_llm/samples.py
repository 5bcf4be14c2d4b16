"""A tree of tables as JSON samples, and back.

One sample per root row: its modelled columns (keys left out: the core writes fresh ones), and under each child
table's name the list of that row's child records, ordered by the child's `order_by`, each nested the same way.
Lists are cut at the longest length enough parents reach (the stats' sequence lengths), so no single subject's
long history shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_assets.plugin_api import DatasetStats, SynthError, TableStats, context_key, parent_first
from synth_llm.columns import check_supported, from_json, json_values


@dataclass(frozen=True)
class Tree:
    """The tables of a dataset as a tree: the root, each table's children, and the column linking each child."""

    root: str
    children: dict[str, list[str]]
    link: dict[str, str]  # child table -> its foreign key column to the parent
    stats: DatasetStats

    @classmethod
    def of(cls, stats: DatasetStats) -> "Tree":
        order = parent_first(stats.tables)
        children: dict[str, list[str]] = {name: [] for name in order}
        link = {}
        for name in order:
            fk = context_key(name, stats.tables[name])
            if fk is not None:
                children[fk.references].append(name)
                link[name] = fk.column
        for name, table in stats.tables.items():
            for column in table.columns.values():
                check_supported(column, name)
            clash = set(children[name]) & set(table.columns)
            if clash:
                raise SynthError(f"a column has the name of the child table '{sorted(clash)[0]}', where the JSON "
                                 "sample nests that table's records", dataset=stats.dataset, table=name,
                                 column=sorted(clash)[0], hint="rename the column or the table")
        return cls(order[0], children, link, stats)

    def table(self, name: str) -> TableStats:
        return self.stats.tables[name]

    def columns(self, name: str) -> list[str]:
        """The modelled columns of a table, in the source's order."""
        table = self.table(name)
        return [c for c in table.column_order if c in table.columns]

    def max_records(self, name: str) -> int:
        lengths = self.table(name).sequence_lengths or {0: 1.0}
        return max(int(k) for k in lengths)


def to_samples(frames: dict[str, pd.DataFrame], tree: Tree) -> tuple[list[dict], list]:
    """One JSON-ready dict per root row, and the root rows' keys (their positions where the root has no key)."""
    return _records(tree.root, frames[tree.root], frames, tree)


def _records(name: str, df: pd.DataFrame, frames: dict[str, pd.DataFrame], tree: Tree) -> tuple[list[dict], list]:
    table = tree.table(name)
    columns = tree.columns(name)
    values = {c: json_values(df[c], table.columns[c]) for c in columns}
    records = [dict(zip(columns, row)) for row in zip(*values.values())] if columns else [{} for _ in range(len(df))]
    keys = list(df[table.primary_key]) if table.primary_key else list(range(len(df)))
    for child in tree.children[name]:
        child_df = frames[child]
        table_child = tree.table(child)
        order = [tree.link[child], *[c for c in table_child.order_by if c in child_df.columns]]
        child_df = child_df.sort_values(order, kind="stable") if len(child_df) else child_df
        child_records, _ = _records(child, child_df, frames, tree)
        grouped: dict = {}
        cap = tree.max_records(child)
        for parent, record in zip(child_df[tree.link[child]].tolist(), child_records):
            bucket = grouped.setdefault(parent, [])
            if len(bucket) < cap:
                bucket.append(record)
        for key, record in zip(keys, records):
            record[child] = grouped.get(key, [])
    return records, keys


def from_samples(samples: list[dict], tree: Tree) -> dict[str, pd.DataFrame]:
    """Tables from samples: each column as its stats say, primary keys 0..n-1 per table, foreign keys on them."""
    rows: dict[str, list[dict]] = {name: [] for name in tree.children}
    parents: dict[str, list[int]] = {name: [] for name in tree.children}

    def walk(name: str, record: dict, parent: int | None):
        index = len(rows[name])
        rows[name].append(record)
        if parent is not None:
            parents[name].append(parent)
        for child in tree.children[name]:
            for sub in record.get(child, []):
                walk(child, sub, index)

    for sample in samples:
        walk(tree.root, sample, None)
    frames = {}
    for name, records in rows.items():
        table = tree.table(name)
        df = pd.DataFrame({c: from_json([r.get(c) for r in records], table.columns[c]) for c in tree.columns(name)},
                          index=pd.RangeIndex(len(records)))
        if table.primary_key:
            df[table.primary_key] = np.arange(len(records))
        if name in tree.link:
            df[tree.link[name]] = np.asarray(parents[name], dtype=np.int64)
        frames[name] = df
    return frames
