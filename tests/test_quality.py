"""The quality stage: pair scores by joint histograms (same numbers as per-pair value_counts)."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from synth_assets.config import parse_project
from synth_assets.stages import quality
from synth_assets.stages.quality import evaluate_table
from synth_assets.stages.stats import compute_stats, lat_long_parts

SPEC = parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv"}}}}}).datasets["d"]


def table_stats(train: pd.DataFrame):
    return compute_stats(SPEC, {"t": train}, dataset="d").tables["t"]


# the per-pair computation quality.py had before the joint histograms: labels per column, value_counts per pair

def _old_as_number(values, column):
    if column.kind == "datetime":
        stamps = pd.to_datetime(values, errors="coerce", format="ISO8601" if column.datetime_format else None)
        return pd.Series(stamps.astype("int64").astype(float), index=values.index).where(stamps.notna())
    return pd.to_numeric(values, errors="coerce").astype(float)


def _old_quantile_bins(numbers, reference, bins):
    ref = reference.dropna().to_numpy(dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))) if len(ref) else np.array([0.0])
    labels = np.searchsorted(edges[1:-1], numbers.to_numpy(dtype=float), side="right").astype(str)
    return pd.Series(labels, index=numbers.index, dtype=object).where(numbers.notna(), "(null)")


def _old_bin_column(values, column, reference):
    if quality._is_continuous(column):
        return _old_quantile_bins(_old_as_number(values, column), _old_as_number(reference, column), 10)
    if column.encoding == "lat_long":
        points, ref = lat_long_parts(values.astype("string")), lat_long_parts(reference.dropna().astype("string"))
        cells = _old_quantile_bins(points.lat, ref.lat, 4) + "/" + _old_quantile_bins(points.long, ref.long, 4)
        return cells.where(points.lat.notna(), "(null)")
    if column.encoding == "character":
        values, reference = quality._shape(values), quality._shape(reference)
    top = reference.dropna().astype(str).value_counts().index[:10]
    text = values.astype(str)
    return text.where(text.isin(top), "(other)").where(values.notna(), "(null)")


def _old_similarity(a, b):
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    joined = pd.concat([pa, pb], axis=1).fillna(0.0)
    return float(1.0 - 0.5 * np.abs(joined.iloc[:, 0] - joined.iloc[:, 1]).sum())


def old_scores(stats, train, other, pairs=None):
    """Per column and per pair: 1 − TVD of `other` vs `train`, computed one pandas call at a time."""
    columns = [c for c in stats.columns.values() if pairs is None or any(c.name in p for p in pairs)]
    lab_t = pd.DataFrame({c.name: _old_bin_column(train[c.name], c, train[c.name]) for c in columns})
    lab_o = pd.DataFrame({c.name: _old_bin_column(other[c.name], c, train[c.name]) for c in columns})
    uni = {c.name: _old_similarity(lab_t[[c.name]], lab_o[[c.name]]) for c in columns}
    pairs = pairs if pairs is not None else list(combinations([c.name for c in columns], 2))
    return uni, {p: _old_similarity(lab_t[list(p)], lab_o[list(p)]) for p in pairs}


def mixed_table(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    letters = r.choice(list("ABCDEFGH"), size=(n, 2))
    north = r.random(n) < 0.5 + shift
    lat, long = np.where(north, 59.9, 48.1) + r.normal(0, 0.3, n), np.where(north, 10.7, 11.6) + r.normal(0, 0.3, n)
    size = r.normal(10 + 3 * shift, 2, n).round(2)
    return pd.DataFrame({
        "size": size,
        "rooms": np.clip((size / 3).round(), 1, 6).astype(int) + (r.random(n) < shift),  # few values: discrete
        "city": pd.Series(r.choice(["Oslo", "Bergen", "Tromsø", "Bodø"], n, p=[0.4, 0.3, 0.2, 0.1]))
        .where(r.random(n) > 0.1 + shift),
        "built": pd.Timestamp("1990-01-01") + pd.to_timedelta(r.integers(0, 10_000, n), unit="D"),
        "code": [f"{a}{b}-{k:04d}" for (a, b), k in zip(letters, r.integers(0, 10_000, n))],
        "place": [f"{a:.4f}, {b:.4f}" for a, b in zip(lat, long)],
        "garden": r.random(n) < 0.3 + shift,
    })


def test_pair_scores_are_the_per_pair_value_counts_scores(monkeypatch):
    train, valid, synthetic = mixed_table(800, 1), mixed_table(800, 2), mixed_table(800, 3, shift=0.2)
    stats = table_stats(train)
    assert {c.encoding for c in stats.columns.values()} >= {"numeric_discrete", "categorical", "datetime",
                                                            "character", "lat_long"}
    uni_syn, bi_syn = old_scores(stats, train, synthetic)
    uni_val, bi_val = old_scores(stats, train, valid)
    q = evaluate_table(stats, train, valid, synthetic)  # 800 rows each: no sampling, the same rows
    assert q.columns == pytest.approx(uni_syn, abs=1e-12) and q.holdout_columns == pytest.approx(uni_val, abs=1e-12)
    assert q.bivariate == pytest.approx(np.mean(list(bi_syn.values())), abs=1e-12)
    assert q.holdout_bivariate == pytest.approx(np.mean(list(bi_val.values())), abs=1e-12)
    assert q.accuracy == pytest.approx((np.mean(list(uni_syn.values())) + q.bivariate) / 2, abs=1e-12)
    worst = sorted(((a, b, s) for (a, b), s in bi_syn.items()), key=lambda t: t[2])[:5]
    assert [p[:2] for p in q.worst_pairs] == [p[:2] for p in worst]
    assert q.bivariate < q.holdout_bivariate  # the shifted table is further off than the holdout
    # pair by pair, also when the pairs are counted a few columns at a time
    columns = list(stats.columns.values())
    for block in (quality.PAIR_BLOCK_CELLS, 2 * 800):
        monkeypatch.setattr(quality, "PAIR_BLOCK_CELLS", block)
        codes, n_codes = quality._bin_codes([train, valid, synthetic], columns, train)
        got_syn, got_val = quality._bivariate(codes[0], [codes[2], codes[1]], n_codes)
        assert got_syn == pytest.approx(list(bi_syn.values()), abs=1e-12)
        assert got_val == pytest.approx(list(bi_val.values()), abs=1e-12)


def wide_table(n: int, columns: int, seed: int, shuffled: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    values = r.normal(size=(n, 1)) + r.normal(size=(n, columns))  # one shared factor: every pair correlates
    df = pd.DataFrame(values.round(3), columns=[f"c{i}" for i in range(columns)])
    for i in range(shuffled):  # these lose their correlation with the rest
        df[f"c{i}"] = r.permutation(df[f"c{i}"].to_numpy())
    return df


def test_300_columns_are_scored_pair_by_pair():
    # 44,850 pairs: were 44,850 x 2 pandas value_counts (minutes), are one bincount per column and frame
    train, valid = wide_table(3000, 300, 1), wide_table(3000, 300, 2)
    synthetic = wide_table(3000, 300, 3, shuffled=3)
    stats = table_stats(train)
    q = evaluate_table(stats, train, valid, synthetic)
    assert q.rows_compared == 3000 and len(q.columns) == 300
    assert all(a in {"c0", "c1", "c2"} or b in {"c0", "c1", "c2"} for a, b, _ in q.worst_pairs)
    _, reference = old_scores(stats, train, synthetic, pairs=[(a, b) for a, b, _ in q.worst_pairs])
    assert [s for _, _, s in q.worst_pairs] == pytest.approx(list(reference.values()), abs=1e-12)
    assert q.univariate == pytest.approx(q.holdout_univariate, abs=0.01)
    assert q.holdout_bivariate - 0.01 < q.bivariate < q.holdout_bivariate  # 3 of 300 columns off
    assert 0.4 < q.dcr_share < 0.6

