"""Per-column statistics of the training partition: type, encoding, protected categories, clipped ranges.

Privacy rules live here, so that every backend inherits them:
- a category held by fewer than `RARE_THRESHOLD` distinct rows (or keys) is not listed, and so never
  appears in the output; backends emit `RARE_TOKEN` in its place;
- min and max are the `RARE_THRESHOLD`-th smallest and largest values, so extreme single values are
  never revealed, and quantiles are taken after clipping to them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from synth_assets.config import DatasetSpec, ForeignKey
from synth_assets.errors import SynthError

RARE_THRESHOLD = 5
RARE_TOKEN = "_RARE_"
DISCRETE_MAX_VALUES = 30  # numeric columns with at most this many values are modelled as categories
N_QUANTILES = 101

Kind = Literal["categorical", "numeric", "datetime"]
Encoding = Literal["categorical", "numeric_discrete", "numeric_binned", "datetime"]


class ColumnStats(BaseModel):
    name: str
    dtype: str = Field(description="pandas dtype of the source column; the synthetic column gets it back")
    kind: Kind
    encoding: Encoding
    null_share: float
    n_unique: int
    categories: list | None = Field(None, description="values kept (held by enough rows), most frequent first")
    category_shares: list[float] | None = None
    rare_share: float = 0.0
    min: float | None = None
    max: float | None = None
    quantiles: list[float] | None = None
    is_integer: bool = False
    decimals: int | None = Field(None, description="digits after the point seen in the source")
    datetime_format: str | None = Field(None, description="strftime format when the source holds dates as text")


class TableStats(BaseModel):
    name: str
    rows: int
    primary_key: str | None
    foreign_keys: list[ForeignKey]
    column_order: list[str]
    dtypes: dict[str, str] = Field(description="pandas dtype of every source column, keys included")
    columns: dict[str, ColumnStats] = Field(description="modelled columns (keys excluded)")


class DatasetStats(BaseModel):
    dataset: str
    tables: dict[str, TableStats]


def compute_stats(spec: DatasetSpec, train: dict[str, pd.DataFrame], *, dataset: str) -> DatasetStats:
    tables = {}
    for name, table_spec in spec.tables.items():
        df = train[name]
        keys = {table_spec.primary_key, *(fk.column for fk in table_spec.foreign_keys)} - {None}
        unit = df[table_spec.primary_key] if table_spec.primary_key else None
        columns = {}
        for column in df.columns:
            if column in keys:
                continue
            override = table_spec.columns.get(column)
            forced = override.encoding if override and override.encoding != "auto" else None
            columns[column] = column_stats(df[column], unit, forced=forced, where=(dataset, name, column))
        tables[name] = TableStats(
            name=name, rows=len(df), primary_key=table_spec.primary_key, foreign_keys=table_spec.foreign_keys,
            column_order=[str(c) for c in df.columns], dtypes={str(c): str(t) for c, t in df.dtypes.items()},
            columns=columns,
        )
    return DatasetStats(dataset=dataset, tables=tables)


def column_stats(series: pd.Series, unit: pd.Series | None, *, forced: str | None, where: tuple) -> ColumnStats:
    dataset, table, column = where
    kind, values, datetime_format = _infer_kind(series, forced, where)
    non_null = values.dropna()
    base = dict(
        name=str(column), dtype=str(series.dtype), kind=kind, null_share=float(series.isna().mean()),
        n_unique=int(non_null.nunique()), datetime_format=datetime_format,
    )
    if non_null.empty:
        raise SynthError("has no values in the training data", dataset=dataset, table=table, column=column,
                         hint="drop the column from the source or fill it")
    if kind == "categorical" or (kind == "numeric" and non_null.nunique() <= DISCRETE_MAX_VALUES):
        categories, shares, rare_share = _protected_categories(values, unit)
        encoding = "categorical" if kind == "categorical" else "numeric_discrete"
        extra = dict(categories=categories, category_shares=shares, rare_share=rare_share)
        if kind == "numeric":
            extra.update(_numeric_range(non_null.astype(float)), is_integer=_is_integer(non_null))
        return ColumnStats(**base, encoding=encoding, **extra)
    numbers = non_null.astype("int64").astype(float) if kind == "datetime" else non_null.astype(float)
    extra = _numeric_range(numbers)
    if kind == "numeric":
        extra.update(is_integer=_is_integer(non_null), decimals=_decimals(non_null))
    return ColumnStats(**base, encoding="datetime" if kind == "datetime" else "numeric_binned", **extra)


def _infer_kind(series: pd.Series, forced: str | None, where: tuple) -> tuple[str, pd.Series, str | None]:
    dataset, table, column = where
    if forced == "categorical" or pd.api.types.is_bool_dtype(series):
        return "categorical", series.astype(object).where(series.notna(), None), None
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", series.dt.tz_localize(None) if series.dt.tz is not None else series, None
    if pd.api.types.is_numeric_dtype(series):
        if forced == "datetime":
            raise SynthError("numbers cannot be encoded as datetime", dataset=dataset, table=table, column=column,
                             hint="store the column as dates, or remove the override")
        return "numeric", series, None
    # text: dates written as text stay text in the output, in the same format
    parsed, fmt = _parse_dates(series)
    if parsed is not None and forced in (None, "datetime"):
        return "datetime", parsed, fmt
    if forced == "datetime":
        raise SynthError("values are not dates", dataset=dataset, table=table, column=column,
                         hint="use ISO dates (2024-01-31) or remove the override")
    if forced == "numeric":
        numbers = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & numbers.isna()
        if bad.any():
            raise SynthError(f"value {series[bad].iloc[0]!r} is not a number", dataset=dataset, table=table,
                             column=column, hint="clean the column or remove the 'numeric' override")
        return "numeric", numbers, None
    return "categorical", series.astype(object).where(series.notna(), None).map(
        lambda v: v if v is None else str(v)), None


def _parse_dates(series: pd.Series) -> tuple[pd.Series | None, str | None]:
    non_null = series.dropna()
    if non_null.empty or not non_null.map(lambda v: isinstance(v, str)).all():
        return None, None
    sample = non_null.iloc[:1000]
    if not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return None, None
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
    if (parsed.isna() & series.notna()).any():
        return None, None
    has_time = bool((parsed.dropna() != parsed.dropna().dt.normalize()).any())
    return parsed, "%Y-%m-%d %H:%M:%S" if has_time else "%Y-%m-%d"


def _protected_categories(values: pd.Series, unit: pd.Series | None) -> tuple[list, list[float], float]:
    """Categories held by at least RARE_THRESHOLD distinct units, most frequent first."""
    non_null = values.dropna()
    if unit is not None:
        holders = pd.DataFrame({"v": values, "u": unit}).dropna(subset=["v"]).groupby("v")["u"].nunique()
    else:
        holders = non_null.value_counts()
    kept = holders[holders >= RARE_THRESHOLD].index
    counts = non_null.value_counts()
    counts = counts[counts.index.isin(kept)]
    total = max(len(non_null), 1)
    categories = [_plain(v) for v in counts.index]
    shares = [float(c) / total for c in counts.to_numpy()]
    return categories, shares, float(1.0 - counts.sum() / total)


def _numeric_range(numbers: pd.Series) -> dict:
    ordered = np.sort(numbers.to_numpy(dtype=float))
    k = min(RARE_THRESHOLD - 1, (len(ordered) - 1) // 2)
    low, high = float(ordered[k]), float(ordered[len(ordered) - 1 - k])
    clipped = np.clip(ordered, low, high)
    quantiles = np.quantile(clipped, np.linspace(0, 1, N_QUANTILES))
    return dict(min=low, max=high, quantiles=[float(q) for q in quantiles])


def _is_integer(numbers: pd.Series) -> bool:
    values = numbers.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _decimals(numbers: pd.Series, most: int = 8) -> int:
    values = numbers.to_numpy(dtype=float)[:10_000]
    for digits in range(most + 1):
        if np.allclose(values, np.round(values, digits), rtol=0, atol=10.0 ** -(digits + 3)):
            return digits
    return most


def _plain(value):
    return value.item() if hasattr(value, "item") else value
