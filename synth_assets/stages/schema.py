"""Give generated tables the source's schema back: column order, dtypes, and fresh keys.

Key contract for backends: a backend returns every table of the dataset. A table that another table
refers to carries its primary key column, filled with keys of the backend's own choosing (any unique values,
e.g. 0..n-1), and its children carry their foreign key columns holding those keys (or null). A table that
nothing refers to may leave its primary key out. `restore_tables` then writes fresh keys: every primary key
becomes 1..n (or "s001", ... for text keys), and every foreign key is mapped to the fresh key of the row it
referred to, in the dtype of the source column. No key of the source, nor of the backend, comes out.
Child records come out grouped under their parents, in their parents' order, and ordered by the table's
`order_by` columns within each parent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.errors import SynthError
from synth_assets.stages.split import context_key, parent_first
from synth_assets.stages.stats import DatasetStats, TableStats


def _backend_bug(rule: str) -> str:
    """The hint of an error that only a faulty backend causes."""
    return f"{rule}; this is a bug in the backend: report it to its authors"


def restore_tables(raw: dict[str, pd.DataFrame], stats: DatasetStats, *, dataset: str) -> dict[str, pd.DataFrame]:
    """Every generated table with fresh primary keys, foreign keys that follow them, and the source's schema."""
    referenced = {fk.references for table in stats.tables.values() for fk in table.foreign_keys}
    raw = _in_record_order(raw, stats)
    tables: dict[str, pd.DataFrame] = {}
    backend_keys: dict[str, pd.Index] = {}  # referenced table -> the backend's keys, in row order
    for name, table in stats.tables.items():
        if name not in raw:
            raise SynthError("the backend generated no such table", dataset=dataset, table=name,
                             hint=_backend_bug("a backend returns every table"))
        df = raw[name].reset_index(drop=True)
        pk = table.primary_key
        if pk is None:
            tables[name] = df
            continue
        if name in referenced:
            if pk not in df.columns:
                raise SynthError("the backend generated no primary key column, yet other tables refer to this one",
                                 dataset=dataset, table=name, column=pk,
                                 hint=_backend_bug("a referenced table must carry its keys (any unique values)"))
            keys = df[pk]
            if keys.isna().any() or keys.duplicated().any():
                problem = (f"{int(keys.isna().sum())} empty" if keys.isna().any()
                           else f"not unique ({int(keys.duplicated().sum())} repeat an earlier row's)")
                raise SynthError(f"the backend generated primary keys: {problem}", dataset=dataset,
                                 table=name, column=pk, hint=_backend_bug("each row needs a key of its own"))
            backend_keys[name] = pd.Index(keys)
        df = df.copy()
        df[pk] = synthetic_keys(len(df), table.dtypes[pk]).to_numpy()
        tables[name] = df
    for name, table in stats.tables.items():
        for fk in table.foreign_keys:
            df = tables[name]
            if fk.column not in df.columns:
                raise SynthError("the backend generated no foreign key column", dataset=dataset, table=name,
                                 column=fk.column, hint=_backend_bug("children carry their parents' keys"))
            fresh = tables[fk.references][stats.tables[fk.references].primary_key]
            mapped, lost = _follow_keys(df[fk.column], backend_keys[fk.references], fresh, table.dtypes[fk.column])
            if lost:
                raise SynthError(f"{lost} of {len(df)} rows hold foreign keys that match no generated row "
                                 f"of table '{fk.references}'", dataset=dataset, table=name, column=fk.column,
                                 hint=_backend_bug("children refer to keys of generated parent rows"))
            df = df.copy()
            df[fk.column] = mapped
            tables[name] = df
    return {name: restore_schema(tables[name], table) for name, table in stats.tables.items()}


def _follow_keys(old: pd.Series, old_parent_keys: pd.Index, new_parent_keys: pd.Series,
                 dtype: str) -> tuple[pd.Series, int]:
    """Foreign keys `old`, which refer to parent rows by `old_parent_keys` (in row order), mapped to those rows'
    `new_parent_keys`; and how many non-null keys matched no parent row. Nulls stay null."""
    positions = old_parent_keys.get_indexer(old)
    found = positions >= 0
    lost = int((~found & old.notna().to_numpy()).sum())
    mapped = pd.Series(new_parent_keys.to_numpy()[np.maximum(positions, 0)], index=old.index)
    if not found.all():
        mapped = mapped.where(found)
    return cast_to(mapped, dtype), lost


def offset_keys(tables: dict[str, pd.DataFrame], stats: DatasetStats, offsets: dict[str, int],
                totals: dict[str, int]) -> dict[str, pd.DataFrame]:
    """One part of a sample generated in parts (its tables as `restore_tables` wrote them, keys 1..n of its own)
    with keys that go on after the `offsets` rows of each table written before it, numbered as in tables of
    `totals` rows, and foreign keys that follow them: the parts joined hold unique keys that all resolve."""
    out, part_keys = dict(tables), {}
    for name, table in stats.tables.items():
        pk = table.primary_key
        if pk is None or pk not in out[name].columns:
            continue
        df = out[name].copy()
        part_keys[name] = pd.Index(df[pk])
        df[pk] = synthetic_keys(len(df), table.dtypes[pk], start=offsets[name] + 1, total=totals[name]).to_numpy()
        out[name] = df
    for name, table in stats.tables.items():
        for fk in table.foreign_keys:
            parent_pk = stats.tables[fk.references].primary_key
            df = out[name].copy()
            df[fk.column], _ = _follow_keys(df[fk.column], part_keys[fk.references], out[fk.references][parent_pk],
                                            table.dtypes[fk.column])
            out[name] = df
    return out


def _in_record_order(raw: dict[str, pd.DataFrame], stats: DatasetStats) -> dict[str, pd.DataFrame]:
    """Each child table's rows grouped under their parent rows, in the parents' order, then by `order_by`
    (stable: records a backend drew in order keep it). Parents are ordered before their children."""
    ordered = dict(raw)
    for name in parent_first(stats.tables):
        table, context = stats.tables[name], context_key(name, stats.tables[name])
        parent = ordered.get(context.references) if context else None
        if parent is None or name not in raw:
            continue
        df, parent_pk = ordered[name], stats.tables[context.references].primary_key
        if context.column not in df.columns or parent_pk not in parent.columns or not parent[parent_pk].is_unique:
            continue  # nothing to order by: restore_tables names what is wrong
        position = pd.Index(parent[parent_pk]).get_indexer(df[context.column])
        keys = pd.DataFrame({"__parent": np.where(position < 0, len(parent), position)}, index=df.index)
        for column in table.order_by:
            if column in df.columns:
                keys[column] = df[column]
        order = keys.sort_values(list(keys.columns), kind="stable", na_position="last").index
        ordered[name] = df.loc[order].reset_index(drop=True)
    return ordered


def restore_schema(df: pd.DataFrame, stats: TableStats) -> pd.DataFrame:
    """One table in the source's schema; a missing primary key gets fresh keys, a present one is kept."""
    df = df.reset_index(drop=True)  # new columns line up by position
    if stats.primary_key and stats.primary_key not in df.columns:
        df[stats.primary_key] = synthetic_keys(len(df), stats.dtypes[stats.primary_key])
    for column in stats.empty_columns:
        df[column] = None
    missing = [c for c in stats.column_order if c not in df.columns]
    if missing:
        raise ValueError(f"table '{stats.name}': the backend generated no column {missing}")
    df = df[stats.column_order]
    for column in stats.column_order:
        df[column] = cast_to(df[column], stats.dtypes[column])
    return df.reset_index(drop=True)


def synthetic_keys(n: int, dtype: str, *, start: int = 1, total: int | None = None) -> pd.Series:
    """Keys that carry no information about the source keys: 1..n (or start..start+n-1), as numbers or as text
    (as wide as the last of `total` keys needs)."""
    numbers = np.arange(start, start + n, dtype="int64")
    if dtype.lower().startswith(("int", "uint", "float")):
        return pd.Series(numbers).astype(dtype)
    width = len(str(total if total is not None else start + n - 1))
    return pd.Series([f"s{i:0{width}d}" for i in numbers], dtype=object)


def cast_to(values: pd.Series, dtype: str) -> pd.Series:
    if values.dtype.name == dtype:
        return values
    if dtype.startswith("datetime64"):
        stamps = pd.to_datetime(values)
        zone = getattr(pd.api.types.pandas_dtype(dtype), "tz", None)
        if zone is not None and stamps.dt.tz is None:  # modelled in UTC
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(zone)
        return stamps.astype(dtype)
    if dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64") and values.isna().any():
        return values.astype(dtype.capitalize().replace("Uint", "UInt"))  # keep nulls with pandas' nullable ints
    if dtype == "bool" and values.isna().any():
        return values.astype("boolean")
    if dtype == "object":
        return values.astype(object).where(values.notna(), None)
    return values.astype(dtype)
