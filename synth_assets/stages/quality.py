"""Quality and privacy of a synthetic table, measured against its training and validation partitions.

- accuracy: 1 − total variation distance between binned distributions (each column alone, and every
  pair of columns), synthetic vs training; the same for the validation holdout gives the ceiling a
  perfect generator would reach with that many rows. Numbers and dates fall into quantile bins, categories
  into their 10 most frequent values, character-encoded codes into their shape ("AB-123" -> "AA-999"), and
  lat/long pairs into a grid of quantile bins.
- DCR share: the share of synthetic rows closer to a training row than to a validation row. A generator
  that does not copy its training data lands near 0.5; copies push it towards 1. Codes count character by
  character, so a copied ID is a copy even when every ID is unique.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from pydantic import BaseModel

from synth_assets.stages.stats import ColumnStats, TableStats, character_matrix, lat_long_parts

N_BINS = 10
LAT_LONG_BINS = 4  # per axis: a 4 x 4 grid
NULL_BIN = "(null)"
OTHER_BIN = "(other)"


class TableQuality(BaseModel):
    table: str
    rows_compared: int
    accuracy: float
    univariate: float
    bivariate: float
    holdout_accuracy: float
    holdout_univariate: float
    holdout_bivariate: float
    dcr_share: float
    dcr_synthetic_median: float
    dcr_holdout_median: float
    columns: dict[str, float]
    holdout_columns: dict[str, float]
    worst_pairs: list[tuple[str, str, float]]


def evaluate_table(
    stats: TableStats,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    max_rows: int = 10_000,
    seed: int = 0,
) -> TableQuality:
    columns = list(stats.columns.values())
    rng = np.random.default_rng(seed)
    n = min(max_rows, len(validation), len(synthetic), len(train))
    if n == 0:
        raise ValueError(f"table '{stats.name}': nothing to compare (validation or synthetic is empty)")
    tr, va, sy = (_sample(df, n, rng) for df in (train, validation, synthetic))

    binned = {name: _bin_frame(df, columns, tr) for name, df in (("train", tr), ("validation", va), ("synthetic", sy))}
    uni_syn = {c.name: _similarity(binned["train"][[c.name]], binned["synthetic"][[c.name]]) for c in columns}
    uni_val = {c.name: _similarity(binned["train"][[c.name]], binned["validation"][[c.name]]) for c in columns}
    pairs = list(combinations([c.name for c in columns], 2))
    bi_syn = {p: _similarity(binned["train"][list(p)], binned["synthetic"][list(p)]) for p in pairs}
    bi_val = {p: _similarity(binned["train"][list(p)], binned["validation"][list(p)]) for p in pairs}

    uni, bi = _mean(uni_syn.values()), _mean(bi_syn.values())
    h_uni, h_bi = _mean(uni_val.values()), _mean(bi_val.values())
    dcr_share, d_syn, d_hold = dcr(columns, train, validation, sy, max_rows=max_rows, rng=rng)
    worst = sorted(((a, b, s) for (a, b), s in bi_syn.items()), key=lambda t: t[2])[:5]
    return TableQuality(
        table=stats.name, rows_compared=n,
        accuracy=_mean([uni, bi] if pairs else [uni]), univariate=uni, bivariate=bi,
        holdout_accuracy=_mean([h_uni, h_bi] if pairs else [h_uni]), holdout_univariate=h_uni, holdout_bivariate=h_bi,
        dcr_share=dcr_share, dcr_synthetic_median=d_syn, dcr_holdout_median=d_hold,
        columns=uni_syn, holdout_columns=uni_val, worst_pairs=worst,
    )


def _sample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(df) <= n:
        return df.reset_index(drop=True)
    return df.iloc[rng.choice(len(df), size=n, replace=False)].reset_index(drop=True)


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def _bin_frame(df: pd.DataFrame, columns: list[ColumnStats], reference: pd.DataFrame) -> pd.DataFrame:
    """Bin each column into at most N_BINS labels, with edges and categories taken from `reference`."""
    return pd.DataFrame({c.name: _bin_column(df[c.name], c, reference[c.name]) for c in columns})


def _is_continuous(column: ColumnStats) -> bool:
    """Dates, and numbers with too many values to compare one by one (whatever their encoding)."""
    return column.kind == "datetime" or (column.kind == "numeric" and column.encoding != "numeric_discrete")


def _bin_column(values: pd.Series, column: ColumnStats, reference: pd.Series) -> pd.Series:
    if _is_continuous(column):
        return _quantile_bins(_as_number(values, column), _as_number(reference, column), N_BINS)
    if column.encoding == "lat_long":
        points, ref = lat_long_parts(values.astype("string")), lat_long_parts(reference.dropna().astype("string"))
        cells = (_quantile_bins(points.lat, ref.lat, LAT_LONG_BINS) + "/"
                 + _quantile_bins(points.long, ref.long, LAT_LONG_BINS))
        return cells.where(points.lat.notna(), NULL_BIN)
    if column.encoding == "character":
        # unique codes share no values with the training data, but should share its formats
        values, reference = _shape(values), _shape(reference)
    top = reference.dropna().astype(str).value_counts().index[:N_BINS]
    text = values.astype(str)
    return text.where(text.isin(top), OTHER_BIN).where(values.notna(), NULL_BIN)


def _quantile_bins(numbers: pd.Series, reference: pd.Series, bins: int) -> pd.Series:
    """Labels of the reference's quantile bins; NULL_BIN where there is no number."""
    ref = reference.dropna().to_numpy(dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))) if len(ref) else np.array([0.0])
    labels = np.searchsorted(edges[1:-1], numbers.to_numpy(dtype=float), side="right").astype(str)
    return pd.Series(labels, index=numbers.index, dtype=object).where(numbers.notna(), NULL_BIN)


def _shape(values: pd.Series) -> pd.Series:
    """Letters become A or a, digits 9; the rest stays: the format of a code without its content."""
    text = values.astype("string")
    shaped = text.str.replace(r"[A-Z]", "A", regex=True).str.replace(r"[a-z]", "a", regex=True)
    return shaped.str.replace(r"[0-9]", "9", regex=True).astype(object).where(values.notna())


def _as_number(values: pd.Series, column: ColumnStats) -> pd.Series:
    if column.kind == "datetime":
        stamps = pd.to_datetime(values, errors="coerce", format="ISO8601" if column.datetime_format else None)
        return pd.Series(stamps.astype("int64").astype(float), index=values.index).where(stamps.notna())
    return pd.to_numeric(values, errors="coerce").astype(float)


def _similarity(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """1 − total variation distance between the joint label distributions of two frames."""
    pa = a.value_counts(normalize=True)
    pb = b.value_counts(normalize=True)
    joined = pd.concat([pa, pb], axis=1).fillna(0.0)
    return float(1.0 - 0.5 * np.abs(joined.iloc[:, 0] - joined.iloc[:, 1]).sum())


def _features(df: pd.DataFrame, columns: list[ColumnStats], reference: pd.DataFrame) -> np.ndarray:
    """Rows as points: numbers by their position among the reference's quantiles, categories one-hot."""
    parts = []
    for c in columns:
        if _is_continuous(c):
            numbers = _as_number(df[c.name], c)
            parts.append(_quantile_position(numbers, _as_number(reference[c.name], c)))
            parts.append(numbers.isna().to_numpy(dtype=float)[:, None])
        elif c.encoding == "lat_long":
            points, ref = lat_long_parts(df[c.name].astype("string")), lat_long_parts(reference[c.name].astype("string"))
            parts += [_quantile_position(points[axis], ref[axis]) for axis in ("lat", "long")]
            parts.append(points.lat.isna().to_numpy(dtype=float)[:, None])
        elif c.encoding == "character" and c.characters:
            parts.append(_character_onehot(df[c.name], c.characters))
        else:
            top = reference[c.name].dropna().astype(str).value_counts().index[:50]
            text = df[c.name].astype(str).where(df[c.name].notna(), NULL_BIN)
            onehot = (text.to_numpy()[:, None] == np.asarray(list(top) + [NULL_BIN], dtype=object)[None, :])
            # one-hot vectors are sqrt(2) apart; scale so a category change weighs like a full numeric range
            parts.append(onehot.astype(float) / np.sqrt(2))
    return np.hstack(parts) if parts else np.zeros((len(df), 0))


def _quantile_position(numbers: pd.Series, reference: pd.Series) -> np.ndarray:
    """Each number's position in [0, 1] among the reference's percentiles, as a column; 0 where missing."""
    ref = reference.dropna().to_numpy(dtype=float)
    grid = np.quantile(ref, np.linspace(0, 1, 101)) if len(ref) else np.zeros(101)
    position = np.interp(numbers.to_numpy(dtype=float), grid, np.linspace(0, 1, 101))
    return np.nan_to_num(position, nan=0.0)[:, None]


def _character_onehot(values: pd.Series, characters: list[str]) -> np.ndarray:
    """Per position, one-hot over the characters the stats kept (others and the end count as one more);
    scaled so two codes differing everywhere are about as far apart as two categories."""
    points = character_matrix(values.fillna("").astype(str), len(characters))
    blocks = []
    for j, kept in enumerate(characters):
        codes = np.asarray([ord(ch) for ch in kept] + [0])  # 0: past the end
        blocks.append(points[:, j : j + 1] == codes[None, :])
    onehot = np.hstack(blocks).astype(float)
    return onehot / np.sqrt(2 * len(characters))


def _nearest(points: np.ndarray, pool: np.ndarray, chunk: int = 1024) -> np.ndarray:
    pool_sq = (pool**2).sum(axis=1)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        d2 = (block**2).sum(axis=1)[:, None] - 2 * block @ pool.T + pool_sq[None, :]
        out[start : start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def dcr(columns: list[ColumnStats], train: pd.DataFrame, validation: pd.DataFrame, synthetic: pd.DataFrame,
        *, max_rows: int = 10_000, rng: np.random.Generator | None = None):
    """DCR share with equally many training and validation rows, ties split evenly.

    Returns (share, median distance synthetic→training, median distance validation→training)."""
    rng = rng or np.random.default_rng(0)
    n = min(len(train), len(validation), max_rows)
    tr, va = _sample(train, n, rng), _sample(validation, n, rng)
    f_tr, f_va, f_sy = (_features(df, columns, train) for df in (tr, va, synthetic))
    to_train, to_val = _nearest(f_sy, f_tr), _nearest(f_sy, f_va)
    closer = (to_train < to_val - 1e-12).mean() + 0.5 * (np.abs(to_train - to_val) <= 1e-12).mean()
    holdout_to_train = _nearest(f_va, f_tr)
    return float(closer), float(np.median(to_train)), float(np.median(holdout_to_train))
