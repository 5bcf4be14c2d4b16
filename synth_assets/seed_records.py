"""Given samples as tables: root rows and the records of the root's child tables that belong to them, turned into
what a backend receives (GenerateRequest.seed_data and seed_records). One rule for synth.yaml's
generate.seed_records and for the backends' Python APIs."""

from __future__ import annotations

import pandas as pd

from synth_assets.backend import SEED_PARENT
from synth_assets.config import DatasetSpec
from synth_assets.errors import SynthError


def root_table(spec: DatasetSpec) -> str:
    return next(name for name, table in spec.tables.items() if not table.foreign_keys)


def link_records(spec: DatasetSpec, rows: pd.DataFrame, records: dict[str, pd.DataFrame], *,
                 dataset: str | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """`rows` of the root table, holding its key, and per child table of the root its records, whose foreign key
    names a row's key: the rows without their key, and each table's records in order (by that key, then
    `order_by`) with SEED_PARENT, the position of their row, in place of the foreign key."""
    root = root_table(spec)
    key = spec.tables[root].primary_key
    if key is None or key not in rows.columns:
        raise SynthError(f"given records belong to rows of '{root}' named by its key: the rows need the key column "
                         f"'{key}'", dataset=dataset, table=root, column=key, hint="give the rows with their keys")
    rows = rows.reset_index(drop=True)
    position = pd.Series(range(len(rows)), index=rows[key].to_numpy())
    linked = {}
    for table, frame in records.items():
        child = spec.tables.get(table)
        fk = next((f for f in child.foreign_keys if f.references == root), None) if child else None
        if fk is None:
            raise SynthError(f"given records of '{table}': not a table whose foreign key references '{root}'",
                             dataset=dataset, table=table)
        if fk.column not in frame.columns:
            raise SynthError(f"given records need the foreign key column '{fk.column}', naming each record's row",
                             dataset=dataset, table=table, column=fk.column)
        unknown = sorted(set(frame[fk.column]) - set(position.index))
        if unknown:
            raise SynthError(f"given records name rows of '{root}' that are not given ({unknown[:3]})",
                             dataset=dataset, table=table, column=fk.column, hint="give each record's row too")
        frame = frame.sort_values([fk.column, *child.order_by], kind="stable")
        linked[table] = frame.drop(columns=[fk.column]).assign(
            **{SEED_PARENT: position.loc[frame[fk.column].to_numpy()].to_numpy()}).reset_index(drop=True)
    return rows.drop(columns=[key]), linked
