"""Quality and privacy of a synthetic table, measured against its training and validation partitions.

- accuracy: 1 − total variation distance between binned distributions (each column alone, and every
  pair of columns), synthetic vs training; the same for the validation holdout gives the ceiling a
  perfect generator would reach with that many rows. Numbers and dates fall into quantile bins, categories
  into their 10 most frequent values, character-encoded codes into their shape ("AB-123" -> "AA-999"), and
  lat/long pairs into a grid of quantile bins.
- DCR share: the share of synthetic rows closer to a training row than to a validation row. A generator
  that does not copy its training data lands near 0.5; copies push it towards 1. Codes count character by
  character, so a copied ID is a copy even when every ID is unique.
- discriminator AUC: a gradient-boosted classifier trained to tell synthetic rows from as many training
  rows, scored out of sample (ROC AUC, stratified k-fold): 0.5 means it cannot tell them apart, 1.0 that it
  always can. It sees the values as a user would: numbers and dates as they are, with the number of decimals
  (or a date's precision) beside them, so integers drawn as 12.85 give the rows away; categories as
  categories; free text also by its length, its words and its character trigrams (text_quality.py).
- free text (text_quality.py): lengths, word frequencies, copies of training texts beside the holdout's.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from synth_assets.stages.nearest import TIE, nearest
from synth_assets.stages.stats import ColumnStats, TableStats, character_matrix, lat_long_parts, value_decimals
from synth_assets.stages.text_quality import TextQuality, text_features, text_quality

N_BINS = 10
LAT_LONG_BINS = 4  # per axis: a 4 x 4 grid
NULL_BIN = "(null)"
PAIR_BLOCK_CELLS = 4_000_000  # joint-histogram indices built at once (int64: 32 MB)

# the discriminator: HistGradientBoostingClassifier, 3-fold, early stopping. 63 bins and 15 leaves score as
# 255 and 31 do, in 40% of the time (bench/RESULTS.md, "Design measurements").
# A categorical feature takes fewer categories than bins: each side's DISCRIMINATOR_TOP most frequent values
# keep their own code, the rest share one, nulls are missing values.
DISCRIMINATOR_FOLDS = 3
DISCRIMINATOR_MAX_ITER = 100
DISCRIMINATOR_MAX_BINS = 63
DISCRIMINATOR_MAX_LEAF_NODES = 15
DISCRIMINATOR_TOP = (DISCRIMINATOR_MAX_BINS - 2) // 2


class SequenceQuality(BaseModel):
    """A child table as sequences under its parent rows (computed in sequence_quality.py)."""

    parent: str
    parents_compared: int
    length_accuracy: float
    holdout_length_accuracy: float
    mean_length: float  # of the synthetic table
    training_mean_length: float
    coherence: float
    holdout_coherence: float
    parent_child_accuracy: float
    holdout_parent_child_accuracy: float
    # records whose first order_by value equals the previous record's of the same parent (None: no order_by);
    # a panel's year repeated under one person is a defect no per-column score shows
    repeated_order_share: float | None = None
    training_repeated_order_share: float | None = None


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
    discriminator_auc: float = Field(
        description="ROC AUC of a classifier telling synthetic from training rows, out of sample: 0.5 = indistinguishable")
    columns: dict[str, float]
    holdout_columns: dict[str, float]
    worst_pairs: list[tuple[str, str, float]]
    sequence: SequenceQuality | None = None  # child tables: lengths, coherence, parent-child accuracy
    text: dict[str, TextQuality] = Field(default_factory=dict)  # free-text columns (text_quality.py)
    # the privacy figures against real unseen data (privacy.PrivacyFigures.summary: dcr_floor, dcr_excess,
    # membership_auc, exact copies, attribute inference), filled in by the pipeline
    privacy: dict[str, float] | None = None
    # figures that could not be computed (NaN above, or left out), with the reason: the report says so, and the
    # run goes on, its tables already published
    unavailable: dict[str, str] = Field(default_factory=dict)


def measured(figure: str, compute, unavailable: dict[str, str], default=float("nan")):
    """`compute()`, or `default` with the reason recorded under `figure` when it fails: no quality figure may fail
    a run whose synthetic tables are out."""
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - any failure of one figure is reported, not raised
        unavailable[figure] = f"{type(exc).__name__}: {exc}"
        return default


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
    nan = float("nan")
    unavailable: dict[str, str] = {}

    def figure(name: str, compute, default):
        if not columns:  # a parent holding only its key: its rows are judged through its children
            unavailable[name] = "the table holds only keys: no column to compare"
            return default
        return measured(name, compute, unavailable, default)

    uni_syn, uni_val, bi_syn, bi_val = figure("accuracy", lambda: _accuracies(columns, tr, va, sy), ({}, {}, {}, {}))
    uni, bi = _mean(uni_syn.values()), _mean(bi_syn.values())
    h_uni, h_bi = _mean(uni_val.values()), _mean(bi_val.values())
    paired = len(columns) > 1
    dcr_share, d_syn, d_hold = figure(
        "dcr_share", lambda: dcr(columns, train, validation, synthetic, max_rows=max_rows, seed=seed), (nan, nan, nan))
    auc = figure("discriminator_auc", lambda: discriminator_auc(columns, tr, sy, seed=seed), nan)
    worst = sorted(((a, b, s) for (a, b), s in bi_syn.items()), key=lambda t: t[2])[:5]
    texts = {c.name: measured(f"text/{c.name}", lambda c=c: text_quality(
        c.name, tr[c.name], va[c.name], sy[c.name], every_training_text=train[c.name], seed=seed), unavailable, None)
        for c in columns if c.text_form == "text"}
    return TableQuality(
        table=stats.name, rows_compared=n,
        accuracy=_mean([uni, bi] if paired else [uni]), univariate=uni, bivariate=bi,
        holdout_accuracy=_mean([h_uni, h_bi] if paired else [h_uni]), holdout_univariate=h_uni, holdout_bivariate=h_bi,
        dcr_share=dcr_share, dcr_synthetic_median=d_syn, dcr_holdout_median=d_hold, discriminator_auc=auc,
        columns=uni_syn, holdout_columns=uni_val, worst_pairs=worst, unavailable=unavailable,
        text={name: q for name, q in texts.items() if q is not None},
    )


def _accuracies(columns: list[ColumnStats], train: pd.DataFrame, validation: pd.DataFrame, synthetic: pd.DataFrame):
    """Per column and per pair of columns, the score of the synthetic rows and of the validation rows against
    training: (univariate synthetic, univariate validation, bivariate synthetic, bivariate validation)."""
    codes, n_codes = _bin_codes([train, validation, synthetic], columns, train)
    names = [c.name for c in columns]
    pairs = list(combinations(names, 2))
    syn_scores, val_scores = _bivariate(codes[0], [codes[2], codes[1]], n_codes)
    return (dict(zip(names, _univariate(codes[0], codes[2], n_codes))),
            dict(zip(names, _univariate(codes[0], codes[1], n_codes))),
            dict(zip(pairs, syn_scores)), dict(zip(pairs, val_scores)))


def synthetic_sample(rows: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """Which of `rows` synthetic rows the DCR share judges: all of them up to `max_rows`, else a seeded sample,
    in row order. The privacy gate reads just these rows of a large table, and finds the share the quality
    report computes on the whole table."""
    if rows <= max_rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng([seed, rows]).choice(rows, size=max_rows, replace=False))


def _sample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(df) <= n:
        return df.reset_index(drop=True)
    return df.iloc[rng.choice(len(df), size=n, replace=False)].reset_index(drop=True)


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def _is_continuous(column: ColumnStats) -> bool:
    """Dates, and numbers with too many values to compare one by one (whatever their encoding)."""
    return column.kind == "datetime" or (column.kind == "numeric" and not column.discrete)


def _bin_codes(frames: list[pd.DataFrame], columns: list[ColumnStats], reference: pd.DataFrame
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """Every column binned, with edges and categories taken from `reference`: per frame a (columns, rows) matrix
    of small integer codes, the same code for the same bin in every frame, and per column how many codes."""
    codes = [np.empty((len(columns), len(df)), dtype=np.int64) for df in frames]
    n_codes = np.ones(len(columns), dtype=np.int64)
    for j, c in enumerate(columns):
        binned = _bin_column([df[c.name] for df in frames], c, reference[c.name])
        # number the bins that occur 0, 1, ...: a pair's joint histogram then needs few cells
        seen, joined = np.unique(np.concatenate(binned), return_inverse=True)
        n_codes[j] = max(len(seen), 1)
        start = 0
        for k, part in enumerate(binned):
            codes[k][j] = joined[start : start + len(part)]
            start += len(part)
    return codes, n_codes


def _bin_column(values: list[pd.Series], column: ColumnStats, reference: pd.Series) -> list[np.ndarray]:
    """Bin codes of each series: numbers and dates by the reference's quantiles (N_BINS), lat/long pairs on a
    grid of them, codes by their shape, categories by the reference's N_BINS most frequent values; then one
    code for the other values and one for nulls."""
    if _is_continuous(column):
        return _quantile_codes([_as_number(v, column) for v in values], _as_number(reference, column), N_BINS)
    if column.text_form == "lat_long":
        points, ref = [lat_long_parts(v.astype("string")) for v in values], lat_long_parts(reference.dropna().astype("string"))
        lat = _quantile_codes([p.lat for p in points], ref.lat, LAT_LONG_BINS)
        long = _quantile_codes([p.long for p in points], ref.long, LAT_LONG_BINS)
        width = LAT_LONG_BINS + 3  # each axis: at most LAT_LONG_BINS bins, then null, -inf and +inf
        null = width * width
        return [np.where(p.lat.notna().to_numpy(), a * width + b, null) for p, a, b in zip(points, lat, long)]
    if column.text_form == "code":
        # unique codes share no values with the training data, but should share its formats
        values, reference = [_shape(v) for v in values], _shape(reference)
    top = pd.Index(reference.dropna().astype(str).value_counts().index[:N_BINS])
    other, null = len(top), len(top) + 1
    out = []
    for v in values:
        code = top.get_indexer(v.astype(str))
        out.append(np.where(v.notna().to_numpy(), np.where(code < 0, other, code), null))
    return out


def labelled_bins(values: list[pd.Series], column: ColumnStats, reference: pd.Series
                  ) -> tuple[list[str], list[np.ndarray]]:
    """The bins the accuracy scores (`_bin_column`) with a label for every code, what the charts draw: "≥1.5"
    (the lower edge of a quantile bin), a category or a code's shape, "other", "null", "-inf", "+inf"; a
    lat/long cell as its two ranges. Codes no value falls in have an empty label."""
    codes = _bin_column(values, column, reference)
    if _is_continuous(column):
        return _range_labels(_quantile_edges(_as_number(reference, column), N_BINS), N_BINS, column), codes
    if column.text_form == "lat_long":
        ref = lat_long_parts(reference.dropna().astype("string"))
        lat, long = (_range_labels(_quantile_edges(ref[axis], LAT_LONG_BINS), LAT_LONG_BINS) for axis in ("lat", "long"))
        return [*(f"{a} / {b}" for a in lat for b in long), "null"], codes
    top = (_shape(reference) if column.text_form == "code" else reference).dropna().astype(str)
    return [*top.value_counts().index[:N_BINS], "other", "null"], codes


def _range_labels(edges: np.ndarray, bins: int, column: ColumnStats | None = None) -> list[str]:
    """Labels of `_quantile_codes`' codes: each bin's lower edge, unused codes empty, then null, -inf, +inf."""
    def edge(x: float) -> str:
        return "≥" + str(pd.Timestamp(int(x)).date()) if column is not None and column.kind == "datetime" \
            else f"≥{x:.4g}"

    used = [edge(x) for x in edges[:-1]] if len(edges) > 1 else [edge(edges[0])]
    return [*used, *[""] * (bins - len(used)), "null", "-inf", "+inf"]


def _quantile_edges(reference: pd.Series, bins: int) -> np.ndarray:
    """The distinct quantiles (bins + 1 of them at most) of the reference's finite values."""
    ref = reference.to_numpy(dtype=float, na_value=np.nan)
    ref = ref[np.isfinite(ref)]
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))) if len(ref) else np.array([0.0])


def _quantile_codes(numbers: list[pd.Series], reference: pd.Series, bins: int) -> list[np.ndarray]:
    """The bin of each number among the reference's quantiles (0 .. bins - 1; edges from its finite values);
    `bins` where there is no number, bins + 1 for -inf and bins + 2 for +inf."""
    edges = _quantile_edges(reference, bins)
    out = []
    for x in numbers:
        values = x.to_numpy(dtype=float, na_value=np.nan)
        code = np.searchsorted(edges[1:-1], values, side="right")
        code = np.where(np.isinf(values), np.where(values > 0, bins + 2, bins + 1), code)
        out.append(np.where(np.isnan(values), bins, code))
    return out


def _shape(values: pd.Series) -> pd.Series:
    """Letters become A or a, digits 9; the rest stays: the format of a code without its content."""
    text = values.astype("string")
    shaped = text.str.replace(r"[A-Z]", "A", regex=True).str.replace(r"[a-z]", "a", regex=True)
    return shaped.str.replace(r"[0-9]", "9", regex=True).astype(object).where(values.notna())


def _as_number(values: pd.Series, column: ColumnStats) -> pd.Series:
    """Numbers as floats; dates as nanoseconds since 1970 (UTC for zoned dates), whatever their unit; NaN where
    there is none."""
    if column.kind == "datetime":
        counts, missing, unit_ns = _date_counts(values, column)
        return pd.Series(counts.astype(float) * unit_ns, index=values.index).where(~missing)
    return pd.to_numeric(values, errors="coerce").astype(float)


def _date_counts(values: pd.Series, column: ColumnStats) -> tuple[np.ndarray, np.ndarray, int]:
    """Dates as int64 counts of their own unit since 1970 (UTC for zoned dates), where they are missing, and the
    nanoseconds in that unit."""
    parse = dict(errors="coerce", format="ISO8601" if column.datetime_format else None)
    stamps = pd.Series(pd.to_datetime(values, **parse), index=values.index)
    if not pd.api.types.is_datetime64_any_dtype(stamps):  # text with mixed zones
        stamps = pd.Series(pd.to_datetime(values, utc=True, **parse), index=values.index)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert(None)
    unit = np.datetime_data(stamps.dtype)[0]
    counts = stamps.to_numpy().view(np.int64)
    return counts, stamps.isna().to_numpy(), {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]


def _similarity_of_counts(counts_a: np.ndarray, counts_b: np.ndarray) -> np.ndarray:
    """1 − total variation distance between histograms (along the last axis), each normalised by its total."""
    pa = counts_a / np.maximum(counts_a.sum(axis=-1, keepdims=True), 1)
    pb = counts_b / np.maximum(counts_b.sum(axis=-1, keepdims=True), 1)
    return np.clip(1.0 - 0.5 * np.abs(pa - pb).sum(axis=-1), 0.0, 1.0)  # no -2e-16 for disjoint histograms


def _univariate(reference: np.ndarray, other: np.ndarray, n_codes: np.ndarray) -> list[float]:
    return [float(_similarity_of_counts(np.bincount(reference[j], minlength=k), np.bincount(other[j], minlength=k)))
            for j, k in enumerate(n_codes)]


def _pair_counts(codes: np.ndarray, j: int, start: int, stop: int, width: int) -> np.ndarray:
    """Joint histograms of column j with each of columns start .. stop-1: (stop - start, width**2) counts."""
    cells = width * width
    index = codes[start:stop] + (np.arange(stop - start, dtype=np.int64) * cells)[:, None]
    index += codes[j][None, :] * width
    return np.bincount(index.ravel(), minlength=(stop - start) * cells).reshape(stop - start, cells)


def _bivariate(reference: np.ndarray, others: list[np.ndarray], n_codes: np.ndarray) -> list[list[float]]:
    """1 − TVD of every pair's joint histogram, reference vs each of `others`, pairs in combinations() order.

    A pair's histogram is the bincount of code_a * width + code_b (width: the most codes any column has),
    done at once for the pairs sharing their first column: the numbers value_counts gives per pair, without
    a pandas call per pair (300 columns are 44,850 pairs)."""
    m = len(n_codes)
    width = int(n_codes.max(initial=1))
    scores: list[list[float]] = [[] for _ in others]
    rows = max(reference.shape[1], *(o.shape[1] for o in others), 1)
    step = max(1, PAIR_BLOCK_CELLS // rows)  # columns paired in one bincount, so its index stays small
    for j in range(m - 1):
        for start in range(j + 1, m, step):
            stop = min(start + step, m)
            ref = _pair_counts(reference, j, start, stop, width)
            for k, other in enumerate(others):
                scores[k].extend(_similarity_of_counts(ref, _pair_counts(other, j, start, stop, width)).tolist())
    return scores


class FeatureSpace:
    """Rows as points for nearest-neighbour distances: numbers by their position among the reference's
    percentiles, categories one-hot over the reference's most held. What it takes from the reference is learnt
    once, so the privacy figures' samples do not read the whole training table again each."""

    def __init__(self, columns: list[ColumnStats], reference: pd.DataFrame):
        self.columns = columns
        self.learnt: dict[str, object] = {}
        for c in columns:
            if _is_continuous(c):
                self.learnt[c.name] = _percentiles(_as_number(reference[c.name], c))
            elif c.text_form == "lat_long":
                ref = lat_long_parts(reference[c.name].astype("string"))
                self.learnt[c.name] = (_percentiles(ref.lat), _percentiles(ref.long))
            elif not (c.text_form == "code" and c.characters):
                top = reference[c.name].dropna().astype(str).value_counts().index[:50]
                self.learnt[c.name] = np.asarray(list(top) + [NULL_BIN], dtype=object)

    def points(self, df: pd.DataFrame) -> np.ndarray:
        parts = []
        for c in self.columns:
            learnt = self.learnt.get(c.name)
            if _is_continuous(c):
                numbers = _as_number(df[c.name], c)
                parts.append(_position(numbers, learnt))
                parts.append(numbers.isna().to_numpy(dtype=float)[:, None])
            elif c.text_form == "lat_long":
                points = lat_long_parts(df[c.name].astype("string"))
                parts += [_position(points[axis], grid) for axis, grid in zip(("lat", "long"), learnt)]
                parts.append(points.lat.isna().to_numpy(dtype=float)[:, None])
            elif learnt is None:  # codes, character by character
                parts.append(_character_onehot(df[c.name], c.characters))
            else:
                text = df[c.name].astype(str).where(df[c.name].notna(), NULL_BIN)
                onehot = text.to_numpy()[:, None] == learnt[None, :]
                # one-hot vectors are sqrt(2) apart; scale so a category change weighs like a full numeric range
                parts.append(onehot.astype(float) / np.sqrt(2))
        return np.hstack(parts) if parts else np.zeros((len(df), 0))


def _percentiles(reference: pd.Series) -> np.ndarray:
    """The reference's percentiles (0 to 100) of its finite numbers (-inf and +inf land at 0 and 1)."""
    ref = reference.to_numpy(dtype=float, na_value=np.nan)
    ref = ref[np.isfinite(ref)]
    return np.quantile(ref, np.linspace(0, 1, 101)) if len(ref) else np.zeros(101)


def _position(numbers: pd.Series, grid: np.ndarray) -> np.ndarray:
    """Each number's position in [0, 1] among the percentiles `grid`, as a column; 0 where missing."""
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


def dcr(columns: list[ColumnStats], train: pd.DataFrame, validation: pd.DataFrame, synthetic: pd.DataFrame,
        *, max_rows: int = 10_000, seed: int = 0):
    """DCR share with equally many training and validation rows, ties split evenly. Its own seeded samples, so
    the privacy gate before publication and the quality report after it give the same figure.

    Returns (share, median distance synthetic→training, median distance validation→training)."""
    rng = np.random.default_rng(seed)
    n = min(len(train), len(validation), max_rows)
    tr, va = _sample(train, n, rng), _sample(validation, n, rng)
    synthetic = synthetic.iloc[synthetic_sample(len(synthetic), max_rows, seed)].reset_index(drop=True)
    space = FeatureSpace(columns, train)
    f_tr, f_va, f_sy = (space.points(df) for df in (tr, va, synthetic))
    (to_train, _), (to_val, _) = nearest(f_sy, f_tr), nearest(f_sy, f_va)
    closer = (to_train < to_val - TIE).mean() + 0.5 * (np.abs(to_train - to_val) <= TIE).mean()
    holdout_to_train, _ = nearest(f_va, f_tr)
    return float(closer), float(np.median(to_train)), float(np.median(holdout_to_train))


# discriminator ------------------------------------------------------------------------------------

def discriminator_auc(columns: list[ColumnStats], real: pd.DataFrame, synthetic: pd.DataFrame, *,
                      seed: int = 0) -> float:
    """ROC AUC of a classifier telling `synthetic` rows from `real` ones, out of sample: the mean over stratified
    folds of a HistGradientBoostingClassifier scored on the rows it did not see. 0.5: indistinguishable;
    1.0: told apart every time. NaN when there are too few rows for two folds."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    folds = min(DISCRIMINATOR_FOLDS, len(real), len(synthetic))
    if folds < 2:
        return float("nan")
    features, categorical = discriminator_features(columns, real, synthetic)
    labels = np.r_[np.zeros(len(real), dtype=int), np.ones(len(synthetic), dtype=int)]
    if features.shape[1] == 0:  # nothing varies in either table: nothing tells them apart
        return 0.5
    aucs = []
    # one OpenMP thread: with the cores busy (a training beside it) two threads waiting on each other at every
    # tree node took 15 s where one takes 0.8 s (10,000 rows x 20 columns, 2 cores)
    with threadpool_limits(limits=1, user_api="openmp"):
        for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
            # early stopping (on a tenth of the fitting rows) ends the fit after a few trees when nothing tells
            # the rows apart: 300 indistinguishable columns x 3,000 rows take 2.7 s instead of 6.8 s
            # a feature with no value in the fitting rows (a column null in nearly every row) cannot be binned
            present = ~np.isnan(features[fit]).all(axis=0)
            if not present.any():
                aucs.append(0.5)
                continue
            model = HistGradientBoostingClassifier(
                max_iter=DISCRIMINATOR_MAX_ITER, max_bins=DISCRIMINATOR_MAX_BINS,
                max_leaf_nodes=DISCRIMINATOR_MAX_LEAF_NODES, categorical_features=categorical[present],
                early_stopping=True, random_state=seed)
            model.fit(features[fit][:, present], labels[fit])
            aucs.append(roc_auc_score(labels[held], model.predict_proba(features[held][:, present])[:, 1]))
    return float(np.mean(aucs))


def discriminator_features(columns: list[ColumnStats], real: pd.DataFrame, synthetic: pd.DataFrame
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `real`, then of `synthetic`, as the classifier sees them, and which features are categorical.

    Numbers and dates keep their raw values (NaN where null; ±inf become NaN, with a sign feature beside them
    when there are any), with the number of decimals (dates: their precision) as a second feature. Categories
    are codes over the union of each side's most frequent values, one code for the rest, NaN for nulls;
    character-encoded codes add their shape ("AB-12" -> "AA-99") and length; lat/long pairs are two numbers
    and the digits they are written with. Features that take one value in both tables are left out."""
    blocks: list[tuple[np.ndarray, bool]] = []
    for c in columns:
        a, b = real[c.name], synthetic[c.name]
        if c.kind in ("numeric", "datetime"):
            na, nb = _as_number(a, c), _as_number(b, c)
            blocks += _number_features(na, nb)
            if c.kind == "datetime":
                blocks.append((np.r_[_date_precision(a, c), _date_precision(b, c)], False))
            else:
                blocks.append((np.r_[value_decimals(na.to_numpy(dtype=float, na_value=np.nan)),
                                     value_decimals(nb.to_numpy(dtype=float, na_value=np.nan))], False))
        elif c.text_form == "lat_long":
            pa, pb = lat_long_parts(a.astype("string")), lat_long_parts(b.astype("string"))
            for axis in ("lat", "long"):
                blocks += _number_features(pa[axis], pb[axis])
            digits = [p.decimals.astype(float).where(p.lat.notna()) for p in (pa, pb)]  # as written
            blocks.append((np.r_[digits[0].to_numpy(), digits[1].to_numpy()], False))
        else:
            blocks.append((_category_codes(a, b), True))
            if c.text_form == "text":
                blocks += [(feature, False) for feature in text_features(a, b)]
            if c.text_form == "code":
                blocks.append((_category_codes(_shape(a), _shape(b)), True))
                blocks.append((np.r_[_length(a), _length(b)], False))
    kept = [(f, cat) for f, cat in blocks if not _constant(f)]
    if not kept:
        return np.zeros((len(real) + len(synthetic), 0)), np.zeros(0, dtype=bool)
    return np.column_stack([f for f, _ in kept]).astype(float), np.array([cat for _, cat in kept])


def _length(values: pd.Series) -> np.ndarray:
    return values.astype("string").str.len().astype(float).to_numpy(na_value=np.nan)


def _constant(feature: np.ndarray) -> bool:
    present = feature[~np.isnan(feature)]
    return len(present) == 0 or (len(present) == len(feature) and bool((present == present[0]).all()))


def _number_features(a: pd.Series, b: pd.Series) -> list[tuple[np.ndarray, bool]]:
    values = np.r_[a.to_numpy(dtype=float, na_value=np.nan), b.to_numpy(dtype=float, na_value=np.nan)]
    infinite = np.isinf(values)
    features = [(np.where(infinite, np.nan, values), False)]
    if infinite.any():
        features.append((np.where(infinite, np.sign(values), 0.0), False))
    return features


_DATE_UNITS = np.array([86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1], dtype=np.int64)  # in ns


def _date_precision(values: pd.Series, column: ColumnStats) -> np.ndarray:
    """0 for whole days, 1 whole hours, 2 minutes, 3 seconds, 4 milliseconds, 5 microseconds, 6 finer; NaN: none."""
    counts, missing, unit_ns = _date_counts(values, column)
    units = np.maximum(_DATE_UNITS // unit_ns, 1)  # the last one always divides
    out = ((counts[:, None] % units[None, :]) == 0).argmax(axis=1).astype(float)
    out[missing] = np.nan
    return out


def _category_codes(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Codes of both sides' values over the union of each side's DISCRIMINATOR_TOP most frequent ones, one
    more code for the rest; NaN for nulls."""
    ta, tb = (v.astype(object).map(str).where(v.notna().to_numpy()) for v in (a, b))
    top = dict.fromkeys([*ta.value_counts().index[:DISCRIMINATOR_TOP], *tb.value_counts().index[:DISCRIMINATOR_TOP]])
    lookup = {value: float(i) for i, value in enumerate(top)}
    text = pd.concat([ta, tb], ignore_index=True)
    codes = text.map(lookup).fillna(float(len(lookup))).to_numpy(dtype=float)
    codes[text.isna().to_numpy()] = np.nan
    return codes
