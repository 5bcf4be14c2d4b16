"""Each column becomes integer tokens, and tokens become values again.

Token layout of a column: [null?] [rare?] then one token per kept category or per quantile bin.
- categorical / numeric_discrete: one token per category kept by the stats stage. Rare text values
  share one `_RARE_` token; a rare number or a rare non-text value takes its nearest kept value.
- numeric_binned / datetime: one token per quantile bin; decoding draws uniformly inside the bin,
  then rounds to the source's precision and clips to the protected min/max.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel

from synth_assets.stages.stats import RARE_TOKEN, ColumnStats, TableStats

NULL = "<null>"
RARE = "<rare>"
TEXT_DTYPES = ("object", "string", "str", "category")


class ColumnCode(BaseModel):
    column: str
    encoding: str
    has_null: bool
    has_rare: bool
    values: list | None = None  # categories, for categorical and numeric_discrete
    edges: list[float] | None = None  # bin edges, for numeric_binned and datetime

    @property
    def offset(self) -> int:
        return int(self.has_null) + int(self.has_rare)

    @property
    def cardinality(self) -> int:
        body = len(self.values) if self.values is not None else len(self.edges) - 1
        return self.offset + body

    @property
    def sub_columns(self) -> list[tuple[str, int]]:
        """(name, cardinality) of each token this column becomes, in the order they are modelled.

        Multi-token encodings carry the null/rare tokens in their first sub-column."""
        return [(self.column, self.cardinality)]


def build_codes(table: TableStats) -> list[ColumnCode]:
    return [build_code(table.columns[c]) for c in table.column_order if c in table.columns]


def build_code(stats: ColumnStats) -> ColumnCode:
    has_null = stats.null_share > 0
    if stats.encoding in ("categorical", "numeric_discrete"):
        is_text = stats.dtype.split("[")[0] in TEXT_DTYPES
        values = list(stats.categories or [])
        has_rare = is_text and (stats.rare_share > 0 or not values)
        return ColumnCode(column=stats.name, encoding=stats.encoding, has_null=has_null, has_rare=has_rare,
                          values=values)
    edges = np.unique(np.asarray(stats.quantiles, dtype=float))
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0]])
    return ColumnCode(column=stats.name, encoding=stats.encoding, has_null=has_null, has_rare=False,
                      edges=[float(e) for e in edges])


def encode_column(series: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    is_null = series.isna().to_numpy()
    tokens = np.zeros(len(series), dtype=np.int64)
    present = ~is_null
    if code.values is not None:
        body = _category_tokens(series[present], code, stats)
    else:
        numbers = _to_numbers(series[present], stats)
        inner = np.asarray(code.edges[1:-1])
        body = np.searchsorted(inner, np.clip(numbers, code.edges[0], code.edges[-1]), side="right")
    tokens[present] = body + code.offset
    if is_null.any():
        # a null where training saw none (validation data) takes the most frequent token
        tokens[is_null] = 0 if code.has_null else code.offset
    return tokens


def _category_tokens(values: pd.Series, code: ColumnCode, stats: ColumnStats) -> np.ndarray:
    if stats.encoding == "numeric_discrete":
        kept = np.asarray(code.values, dtype=float)
        order = np.argsort(kept)
        numbers = values.to_numpy(dtype=float)
        pos = np.clip(np.searchsorted(kept[order], numbers), 0, len(kept) - 1)
        left = np.clip(pos - 1, 0, len(kept) - 1)
        nearer_left = np.abs(numbers - kept[order][left]) < np.abs(numbers - kept[order][pos])
        return order[np.where(nearer_left, left, pos)]
    is_text = code.has_rare or stats.dtype.split("[")[0] in TEXT_DTYPES
    lookup = {(str(v) if is_text else v): i for i, v in enumerate(code.values)}
    keys = values.astype(str) if is_text else values
    fallback = -1 if code.has_rare else 0  # rare text -> the rare token; anything else -> most frequent
    return keys.map(lookup).fillna(fallback).to_numpy(dtype=np.int64)


def _to_numbers(values: pd.Series, stats: ColumnStats) -> np.ndarray:
    if stats.kind == "datetime":
        stamps = pd.to_datetime(values, format="ISO8601" if stats.datetime_format else None)
        return stamps.astype("int64").to_numpy(dtype=float)
    return values.to_numpy(dtype=float)


def decode_column(tokens: np.ndarray, code: ColumnCode, stats: ColumnStats, rng: np.random.Generator) -> pd.Series:
    tokens = np.asarray(tokens, dtype=np.int64)
    is_null = code.has_null & (tokens == 0)
    is_rare = code.has_rare & (tokens == int(code.has_null))
    body = np.clip(tokens - code.offset, 0, None)
    if code.values is not None:
        if not code.values:
            out = pd.Series([RARE_TOKEN] * len(tokens), dtype=object)
        else:
            out = pd.Series(np.asarray(code.values, dtype=object)[np.clip(body, 0, len(code.values) - 1)], dtype=object)
            out[is_rare] = RARE_TOKEN
        if stats.encoding == "numeric_discrete":
            out = pd.to_numeric(out)
    else:
        edges = np.asarray(code.edges)
        low, high = edges[body], edges[np.minimum(body + 1, len(edges) - 1)]
        numbers = low + (high - low) * rng.random(len(tokens))
        numbers = np.clip(numbers, stats.min, stats.max)
        if stats.kind == "datetime":
            stamps = pd.to_datetime(np.round(numbers).astype("int64"))
            if stats.datetime_format:
                out = pd.Series(stamps.strftime(stats.datetime_format), dtype=object)
            else:
                out = pd.Series(stamps)
        else:
            if stats.is_integer:
                numbers = np.round(numbers)
            elif stats.decimals is not None:
                numbers = np.round(numbers, stats.decimals)
            out = pd.Series(numbers)
    if is_null.any():
        out = out.astype(object) if out.dtype.kind in "iub" else out
        out[is_null] = None
    return out


def sub_column_groups(codes: list[ColumnCode]) -> list[list[int]]:
    """For each column, the indices of its sub-columns in the flat token matrix."""
    groups, start = [], 0
    for code in codes:
        width = len(code.sub_columns)
        groups.append(list(range(start, start + width)))
        start += width
    return groups


def cardinalities(codes: list[ColumnCode]) -> list[int]:
    return [k for code in codes for _, k in code.sub_columns]


def encode_table(df: pd.DataFrame, codes: list[ColumnCode], table: TableStats) -> pd.DataFrame:
    """One narrow integer column per sub-column, named `<column>` or `<column>__<part>`."""
    narrow = {}
    for code in codes:
        tokens = encode_column(df[code.column], code, table.columns[code.column])
        tokens = tokens.reshape(len(df), -1)
        for j, (name, k) in enumerate(code.sub_columns):
            dtype = np.uint8 if k <= 255 else np.uint16 if k <= 65535 else np.int32
            narrow[name] = tokens[:, j].astype(dtype)
    return pd.DataFrame(narrow)


def decode_table(tokens: np.ndarray, codes: list[ColumnCode], table: TableStats, rng: np.random.Generator) -> pd.DataFrame:
    out = {}
    for code, group in zip(codes, sub_column_groups(codes)):
        part = tokens[:, group]
        out[code.column] = decode_column(part[:, 0] if len(group) == 1 else part, code, table.columns[code.column], rng)
    return pd.DataFrame(out)
