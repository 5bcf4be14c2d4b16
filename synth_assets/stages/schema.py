"""Give generated tables the source's schema back: column order, dtypes, and fresh primary keys."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.stages.stats import TableStats


def restore_schema(df: pd.DataFrame, stats: TableStats) -> pd.DataFrame:
    df = df.copy()
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


def synthetic_keys(n: int, dtype: str) -> pd.Series:
    """Keys that carry no information about the source keys: 1..n, as numbers or as text."""
    numbers = np.arange(1, n + 1, dtype="int64")
    if dtype.lower().startswith(("int", "uint", "float")):
        return pd.Series(numbers).astype(dtype)
    width = len(str(n))
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
