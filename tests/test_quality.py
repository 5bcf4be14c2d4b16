"""The quality stage: pair scores by joint histograms (same numbers as per-pair value_counts), the discriminator
AUC, and columns of every dtype real tables hold."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from synth_assets.project import parse_project
from synth_assets.stages import quality
from synth_assets.stages.quality import discriminator_auc, discriminator_features, evaluate_table
from synth_assets.stages.report import render_report
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
    if column.text_form == "lat_long":
        points, ref = lat_long_parts(values.astype("string")), lat_long_parts(reference.dropna().astype("string"))
        cells = _old_quantile_bins(points.lat, ref.lat, 4) + "/" + _old_quantile_bins(points.long, ref.long, 4)
        return cells.where(points.lat.notna(), "(null)")
    if column.text_form == "code":
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
    forms = {(c.kind, c.text_form, c.discrete) for c in stats.columns.values()}
    assert forms >= {("numeric", None, True), ("categorical", "category", False), ("datetime", None, False),
                     ("categorical", "code", False), ("categorical", "lat_long", False)}
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


@pytest.mark.slow
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
    assert 0.6 < q.discriminator_auc < 0.95  # three columns' pairs broken among 300: partly told apart (0.79)


# the discriminator -----------------------------------------------------------------------------------

def people(n: int, seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    age = r.integers(18, 90, n)
    return pd.DataFrame({
        "age": age,
        "income": (20_000 + 800 * age + r.normal(0, 8_000, n)).round(2),
        "visits": r.poisson(3, n).astype(float),  # integers stored as floats: 0.0, 1.0, ...
        "plan": r.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]),
        "joined": pd.Timestamp("2015-01-01") + pd.to_timedelta(r.integers(0, 3000, n), unit="D"),
        "active": r.random(n) < 0.7,
    })


@pytest.fixture(scope="module")
def people_stats():
    train = people(4000, 1)
    return table_stats(train), train, people(4000, 2)


def test_a_fresh_sample_cannot_be_told_apart(people_stats):
    stats, train, valid = people_stats
    q = evaluate_table(stats, train, valid, people(4000, 3))
    assert q.discriminator_auc < 0.6, q.discriminator_auc
    again = evaluate_table(stats, train, valid, people(4000, 3))
    assert again.discriminator_auc == q.discriminator_auc  # seeded: the same score every time


def test_copies_of_training_rows_score_below_one_half(people_stats):
    stats, train, valid = people_stats
    q = evaluate_table(stats, train, valid, train.sample(4000, random_state=3))
    assert q.discriminator_auc < 0.45 and q.dcr_share > 0.9  # a held-out copy's twin was learned as real
    assert "rows copied from the training data" in render_report("d", "toy", {"t": q}, max_dcr_share=0.6)


def test_integers_drawn_with_decimals_give_the_rows_away(people_stats):
    stats, train, valid = people_stats
    synthetic = people(4000, 3)
    r = np.random.default_rng(4)
    synthetic["visits"] = synthetic["visits"] + r.uniform(-0.5, 0.5, len(synthetic))  # 2.7 visits
    assert evaluate_table(stats, train, valid, synthetic).discriminator_auc > 0.9
    # a wide range (ages 18-89): the raw values cannot single out every integer; their decimals can
    smeared = people(4000, 3).assign(age=lambda d: d.age + r.uniform(0, 1, len(d)))
    columns = list(stats.columns.values())
    features, categorical = discriminator_features(columns, train, smeared)
    decimals = features[:, 1]  # age's value, then its decimals
    assert (decimals[:4000] == 0).all() and (decimals[4000:] > 0).mean() > 0.99
    assert discriminator_auc(columns, train, smeared) > 0.9


def test_the_source_has_12_and_13_the_synthetic_12_84885():
    r = np.random.default_rng(0)
    real = pd.DataFrame({"n": r.choice([12.0, 13.0], 6000), "x": r.normal(size=6000)})
    stats = table_stats(real.iloc[:3000])
    drawn = real.iloc[:3000].assign(n=lambda d: r.uniform(12, 13, 3000).round(5))
    assert evaluate_table(stats, real.iloc[:3000], real.iloc[3000:], drawn).discriminator_auc > 0.9


def test_other_category_shares_give_the_rows_away(people_stats):
    stats, train, valid = people_stats
    synthetic = people(4000, 3)
    r = np.random.default_rng(5)
    synthetic["plan"] = r.choice(["basic", "plus", "pro"], 4000, p=[0.05, 0.05, 0.9])  # real: 0.6, 0.3, 0.1
    synthetic["active"] = r.random(4000) < 0.05  # real: 0.7
    q = evaluate_table(stats, train, valid, synthetic)
    assert q.discriminator_auc > 0.9, q.discriminator_auc  # 0.96
    report = render_report("d", "toy", {"t": q}, max_dcr_share=0.6)
    assert "| discriminator AUC |" in report and f"| {q.discriminator_auc:.3f} |" in report
    assert f"discriminator AUC {q.discriminator_auc:.3f} (**easily told apart**)" in report
    assert "0.5 means it cannot tell them apart" in report


def test_show_prints_the_discriminator_auc(tmp_path, monkeypatch, capsys):
    from synth_assets import cli, files

    (tmp_path / "synth.yaml").write_text("datasets:\n  d:\n    tables:\n      t: {source: t.csv}\n")
    monkeypatch.setenv("SYNTH_CONFIG", str(tmp_path / "synth.yaml"))
    monkeypatch.setenv("SYNTH_HOME", str(tmp_path / "home"))
    scores = {"accuracy": 0.9, "holdout_accuracy": 0.95, "univariate": 0.97, "bivariate": 0.93, "dcr_share": 0.5}
    path = tmp_path / "home" / "d" / "quality" / "scores.json"
    path.parent.mkdir(parents=True)
    files.write_json({"t": {**scores, "discriminator_auc": 0.5432}}, path)
    assert cli.main(["show", "d"]) == 0
    assert "DCR share 0.500, discriminator AUC 0.543" in capsys.readouterr().out
    files.write_json({"t": scores}, path)  # written before the discriminator existed
    assert cli.main(["show", "d"]) == 0
    assert "discriminator AUC –" in capsys.readouterr().out


# columns real tables hold ----------------------------------------------------------------------------

def _awkward(kind: str, r: np.random.Generator, n: int) -> pd.Series:
    some_null = r.random(n) < 0.1
    if kind == "bool":
        return pd.Series(r.random(n) < 0.3)
    if kind == "boolean with NA":
        return pd.Series(np.where(some_null, None, r.random(n) < 0.5), dtype="boolean")
    if kind == "Int64 with NA":
        return pd.Series(np.where(some_null, None, r.integers(0, 50, n)), dtype="Int64")
    if kind == "category":
        return pd.Series(r.choice(["a", "b", "c"], n), dtype="category")
    if kind == "uint64":
        return pd.Series(r.integers(0, 2**40, n).astype(np.uint64))
    if kind == "uint8":
        return pd.Series(r.integers(0, 200, n).astype(np.uint8))
    if kind == "datetime64[ns, UTC]":
        seconds = np.where(some_null, np.nan, r.integers(0, 10**7, n))
        return pd.Series(pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s"))
    if kind == "datetime64[us]":  # as Parquet files often give them
        minutes = r.integers(0, 10**8, n)
        return pd.Series((np.datetime64("1950-01-01", "m") + minutes).astype("datetime64[us]"))
    if kind == "float with inf and NaN":
        x = r.normal(size=n)
        x[r.random(n) < 0.1] = np.inf
        x[r.random(n) < 0.1] = -np.inf
        x[some_null] = np.nan
        return pd.Series(x)
    if kind == "all null":
        return pd.Series([None] * n, dtype=object)
    if kind == "all null in synthetic only":
        return pd.Series(r.normal(size=n))  # nulled in the synthetic frame below
    if kind == "constant":
        return pd.Series([7] * n)
    if kind == "unicode":
        return pd.Series(r.choice(["Zürich", "東京", "Kraków", "😀 emoji", "ß"], n))
    if kind == "1,000 categories":  # more than the classifier's 255 bins
        return pd.Series([f"city {i}" for i in r.integers(0, 1000, n)])
    if kind == "numbers and text in one column":
        return pd.Series(np.where(r.random(n) < 0.5, r.integers(0, 5, n).astype(object), r.choice(["a", "b"], n)))
    if kind == "string with NA":
        return pd.Series(np.where(some_null, None, r.choice(["x", "y"], n)), dtype="string")
    raise ValueError(kind)


AWKWARD = ["bool", "boolean with NA", "Int64 with NA", "category", "uint64", "uint8", "datetime64[ns, UTC]",
           "datetime64[us]", "float with inf and NaN", "all null", "all null in synthetic only", "constant",
           "unicode", "string with NA", "1,000 categories", "numbers and text in one column"]


@pytest.mark.parametrize("kind", AWKWARD)
def test_quality_takes_columns_of_every_kind(kind):
    name = "größe ✓ 列" if kind == "unicode" else "col"
    n = 400

    def frame(seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        return pd.DataFrame({"x": r.normal(size=n).round(2), name: _awkward(kind, r, n)})

    train, valid, synthetic = frame(1), frame(2), frame(3)
    if kind == "all null in synthetic only":
        synthetic[name] = np.nan
    stats = table_stats(train)
    q = evaluate_table(stats, train, valid, synthetic)
    # every figure computed, none left for a reason
    assert q.unavailable == {} and not np.isnan([q.accuracy, q.dcr_share, q.discriminator_auc]).any(), q
    if name in stats.columns:
        assert name in q.columns
        if kind == "all null in synthetic only":
            assert q.columns[name] < 0.2 and q.discriminator_auc > 0.9
        else:  # three samples of one distribution
            assert q.columns[name] > 0.8 and q.discriminator_auc < 0.65
    report = render_report("d", "toy", {"t": q}, max_dcr_share=0.6)
    assert f"| {q.discriminator_auc:.3f} |" in report


# a figure that cannot be computed is reported with its reason, never raised ------------------------------

def test_a_column_null_in_all_but_one_row_is_scored_by_the_discriminator():
    # the one value falls in a single fold: the other folds' classifiers saw the column only as nulls, which
    # scikit-learn's binning refuses ("window shape cannot be larger than input array shape")
    def frame(n: int, seed: int) -> pd.DataFrame:
        g = np.random.default_rng(seed)
        return pd.DataFrame({"x": g.normal(size=n).round(2), "rare": np.where(np.arange(n) == 0, 0.5, np.nan)})

    train, valid = frame(300, 1), frame(300, 2)
    synthetic = frame(300, 3).assign(rare=np.nan)
    q = evaluate_table(table_stats(train), train, valid, synthetic)
    assert q.unavailable == {} and 0.3 < q.discriminator_auc < 0.7, q


def test_a_table_of_keys_only_reports_why_it_has_no_scores():
    stats = compute_stats(parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv", "primary_key": "id"}}}}})
                          .datasets["d"], {"t": pd.DataFrame({"id": range(200)})}, dataset="d").tables["t"]
    q = evaluate_table(stats, pd.DataFrame({"id": range(200)}), pd.DataFrame({"id": range(200, 300)}),
                       pd.DataFrame({"id": range(1, 101)}))
    assert np.isnan(q.accuracy) and np.isnan(q.dcr_share) and q.columns == {}
    assert q.unavailable["accuracy"] == "the table holds only keys: no column to compare"
    report = render_report("d", "toy", {"t": q}, max_dcr_share=0.6)
    assert "| t | 100 | – | – |" in report and "- accuracy: the table holds only keys" in report
    assert "nan" not in report


def test_a_figure_that_fails_is_reported_unavailable_and_the_others_stand(people_stats, monkeypatch):
    stats, train, valid = people_stats

    def broken(*args, **kwargs):
        raise ValueError("window shape cannot be larger than input array shape")

    monkeypatch.setattr(quality, "discriminator_auc", broken)
    q = evaluate_table(stats, train, valid, people(4000, 3))
    assert np.isnan(q.discriminator_auc)
    assert q.unavailable == {"discriminator_auc": "ValueError: window shape cannot be larger than input array shape"}
    assert q.accuracy > 0.8 and 0.4 < q.dcr_share < 0.6  # the other figures are still there
    report = render_report("d", "toy", {"t": q}, max_dcr_share=0.6)
    assert "- discriminator_auc: ValueError: window shape" in report and "nan" not in report.lower()


def test_the_charts_draw_the_bins_the_accuracy_scores():
    from synth_assets.stages.charts import binned, shares, table_charts

    train, valid, synthetic = mixed_table(800, 1), mixed_table(800, 2), mixed_table(800, 3, shift=0.2)
    stats = table_stats(train)
    q = evaluate_table(stats, train, valid, synthetic)
    for column in stats.columns.values():  # numbers, a discrete number, a category, dates, codes, lat/long, flags
        labels, (a, b) = binned(column, [train[column.name], synthetic[column.name]])
        n = len(labels)
        drawn = 1 - 0.5 * np.abs(shares(a, n) - shares(b, n)).sum()
        assert drawn == pytest.approx(q.columns[column.name], abs=1e-9), column.name
        assert all(labels[k] for k in np.unique(np.r_[a, b])), (column.name, labels)  # every bin drawn is named
    charts = table_charts(stats, train, synthetic, valid, q)
    assert set(charts) == {"distributions", "correlations", "accuracy"}
    assert all(png[:4] == b"\x89PNG" for png in charts.values())
