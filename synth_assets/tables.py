"""Reading source tables (.csv, .csv.gz, .parquet) and checking their keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from synth_assets.config import DatasetSpec
from synth_assets.errors import SynthError
from synth_assets.stages.stats import plain_value


def read_source(path: Path, *, dataset: str, table: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SynthError(
            f"source file {path} not found", dataset=dataset, table=table, hint="fix 'source' in synth.yaml"
        )
    kind = "Parquet" if path.name.lower().endswith(".parquet") else "CSV"
    try:
        if kind == "Parquet":
            df = pq.read_table(path).to_pandas()
        else:
            df = pd.read_csv(path, low_memory=False)
    except Exception as exc:  # parser errors carry the line; keep them, drop the traceback
        raise SynthError(f"cannot read {path} as {kind}{' (gzip)' if path.name.lower().endswith('.gz') else ''}: "
                         f"{exc}", dataset=dataset, table=table,
                         hint="check that the file holds what its suffix says, and is complete") from None
    if df.empty:
        raise SynthError(f"{path} has no rows", dataset=dataset, table=table, hint="point 'source' at a non-empty table")
    unnamed = [c for c in df.columns if not isinstance(c, str) or not c.strip()]
    if unnamed:
        raise SynthError(f"{path} has columns without a name", dataset=dataset, table=table)
    return df


def read_sources(spec: DatasetSpec, paths: dict[str, Path], *, dataset: str) -> dict[str, pd.DataFrame]:
    """Read every table of a dataset and check that its keys hold."""
    tables = {name: read_source(paths[name], dataset=dataset, table=name) for name in spec.tables}
    check_keys(spec, tables, dataset=dataset)
    return tables


def check_keys(spec: DatasetSpec, tables: dict[str, pd.DataFrame], *, dataset: str) -> None:
    for name, table_spec in spec.tables.items():
        df = tables[name]
        for column in table_spec.columns:
            if column not in df.columns:
                raise SynthError(
                    "has an override in synth.yaml but is not in the source",
                    dataset=dataset, table=name, column=column, hint="remove the override or fix its name",
                )
        pk = table_spec.primary_key
        if pk is not None:
            if pk not in df.columns:
                raise SynthError("primary key column not in the source", dataset=dataset, table=name, column=pk,
                                 hint=f"columns are: {', '.join(map(str, df.columns))}")
            if df[pk].isna().any():
                raise SynthError("primary key has empty values", dataset=dataset, table=name, column=pk,
                                 hint="every row needs a key")
            if df[pk].duplicated().any():
                dup = plain_value(df.loc[df[pk].duplicated(), pk].iloc[0])
                raise SynthError(f"primary key is not unique (e.g. {dup!r} repeats)", dataset=dataset, table=name,
                                 column=pk, hint="use a unique column as primary_key, or set it to null")
        for column in table_spec.order_by:
            if column not in df.columns:
                raise SynthError("order_by column not in the source", dataset=dataset, table=name, column=column,
                                 hint=f"columns are: {', '.join(map(str, df.columns))}")
        for fk in table_spec.foreign_keys:
            if fk.column not in df.columns:
                raise SynthError("foreign key column not in the source", dataset=dataset, table=name, column=fk.column)
            parent = tables[fk.references][spec.tables[fk.references].primary_key]
            orphans = ~df[fk.column].isna() & ~df[fk.column].isin(parent)
            if orphans.any():
                examples = ", ".join(repr(plain_value(v)) for v in df.loc[orphans, fk.column].drop_duplicates().head(3))
                raise SynthError(
                    f"{int(orphans.sum())} rows refer to keys missing from table '{fk.references}' (e.g. {examples})",
                    dataset=dataset, table=name, column=fk.column, hint="remove those rows or add their parents",
                )
