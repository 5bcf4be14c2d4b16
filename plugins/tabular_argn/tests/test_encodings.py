"""Encodings: each column's automatic choice, overrides, round trips, nulls and privacy."""

import numpy as np
import pandas as pd
import pytest

from synth_assets.project import load_project, parse_project
from synth_assets.errors import SynthError
from synth_assets.stages.stats import RARE_TOKEN, column_stats, compute_stats
from synth_tabular_argn.encoding import (COLUMN_ENCODINGS, build_code, build_codes, choose_encoding, decode_column,
                                         encode_column)

N = 2000


def table_stats(df: pd.DataFrame, columns: dict | None = None):
    """The core's stats of `df`, after the backend has chosen every column's encoding (its errors included)."""
    spec = parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv", "columns": columns or {}}}}}})
    table = compute_stats(spec.datasets["d"], {"t": df}, dataset="d", hints=COLUMN_ENCODINGS).tables["t"]
    build_codes(table, "d")
    return table


def round_trip(series: pd.Series, stats) -> tuple[np.ndarray, pd.Series]:
    code = build_code(stats)
    tokens = encode_column(series, code, stats)
    return tokens, decode_column(tokens, code, stats, np.random.default_rng(0))


def with_nulls(values, every: int = 7) -> pd.Series:
    series = pd.Series(values, dtype=object if isinstance(values[0], str) else None)
    series[::every] = None
    return series


def postcodes(rng, n: int = N) -> np.ndarray:
    """Codes like 'AB1 2CD': almost all distinct, so a categorical encoding would keep none."""
    letters = np.array(list("ABCDEFGHJK"))
    return np.char.add(np.char.add(np.char.add(rng.choice(letters, n), rng.choice(letters, n)),
                                   rng.integers(1, 10, n).astype(str)),
                       np.char.add(" ", np.char.add(rng.integers(0, 10, n).astype(str),
                                                    np.char.add(rng.choice(letters, n), rng.choice(letters, n)))))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# automatic choice -----------------------------------------------------------------------------------

def test_automatic_choice_on_typical_columns(rng):
    df = pd.DataFrame({
        "rooms": rng.integers(1, 8, N),  # few values
        "price": rng.integers(300, 19_000, N),  # integers, five digits: exact digits
        "weight": rng.uniform(0.2, 5, N).round(2),  # three digits at two decimals
        "income": rng.lognormal(10, 2, N).round(2),  # very wide: bins
        "city": rng.choice(["Oslo", "Bergen", "Wien", "Graz"], N),
        "postcode": postcodes(rng),
        "comment": [f"a long free-text remark number {i} about this row" for i in range(N)],
        "where": [f"{lat:.4f}, {long:.4f}" for lat, long in zip(rng.uniform(48, 48.4, N), rng.uniform(16.2, 16.6, N))],
        "day": pd.date_range("2020-01-01", periods=N, freq="D").strftime("%Y-%m-%d"),
        "seen": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**7, N), unit="s"),
    })
    stats = table_stats(df)
    chosen = {name: choose_encoding(c) for name, c in stats.columns.items()}
    assert chosen == {
        "rooms": "numeric_discrete", "price": "numeric_digit", "weight": "numeric_digit", "income": "numeric_binned",
        "city": "categorical", "postcode": "character", "comment": "categorical", "where": "lat_long",
        "day": "datetime", "seen": "datetime",
    }
    assert stats.columns["day"].datetime_parts == ["year", "month", "day"]
    assert stats.columns["seen"].datetime_parts == ["year", "month", "day", "hour", "minute", "second"]


def test_overrides_in_synth_yaml(tmp_path, rng, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    df = pd.DataFrame({"price": rng.integers(300, 19_000, N), "weight": rng.uniform(0.2, 1, N).round(2),
                       "code": rng.choice(["A1", "B2", "C3"], N), "amount": rng.integers(0, 5, N).astype(str)})
    (tmp_path / "synth.yaml").write_text(
        "datasets:\n  d:\n    tables:\n      t:\n        source: t.csv\n        columns:\n"
        "          price: {encoding: numeric_binned}\n          weight: {encoding: numeric_discrete}\n"
        "          code: {encoding: character}\n          amount: {encoding: numeric}\n")
    spec = load_project(tmp_path).dataset("d")
    stats = compute_stats(spec, {"t": df}, dataset="d", hints=COLUMN_ENCODINGS).tables["t"]
    assert [choose_encoding(c) for c in stats.columns.values()] == ["numeric_binned", "numeric_discrete",
                                                                   "character", "numeric_discrete"]


@pytest.mark.parametrize("values, encoding, message", [
    (["Oslo", "Bergen"] * 50, "lat_long", "not a 'latitude, longitude' pair"),
    (["91.5, 10.0", "45.5, 10.0"] * 50, "lat_long", "within ±90, ±180"),
    (list(range(100)), "character", "numbers cannot be encoded as character"),
    (list(range(100)), "datetime", "numbers cannot be encoded as datetime"),
    (["x"] * 100, "numeric_digit", "is not a number"),
    ([i * 10.0**13 + 0.5 for i in range(100)], "numeric_digit", "digits"),
    (["y" * 60] * 100, "character", "at most 50"),
])
def test_a_forced_encoding_that_does_not_fit_names_table_and_column(values, encoding, message):
    with pytest.raises(SynthError) as err:
        table_stats(pd.DataFrame({"c": values}), {"c": {"encoding": encoding}})
    text = str(err.value)
    assert "dataset 'd'" in text and "table 't'" in text and "column 'c'" in text and message in text
    assert err.value.hint


def test_an_unknown_encoding_name_is_a_config_error():
    with pytest.raises(SynthError, match="columns.c.encoding"):
        table_stats(pd.DataFrame({"c": [1, 2]}), {"c": {"encoding": "digits"}})


# round trips ----------------------------------------------------------------------------------------

def test_digits_are_exact_clipped_to_the_protected_range_and_keep_nulls(rng):
    values = rng.normal(0, 300, N).round(2)  # negative and positive, two decimals
    values[:3] = [-5000.0, 9000.0, 8999.99]  # single extremes
    series = with_nulls(values)
    stats = table_stats(pd.DataFrame({"v": series}), {"v": {"encoding": "numeric_digit"}}).columns["v"]
    tokens, out = round_trip(series, stats)
    assert tokens.ndim == 2 and tokens.shape[1] >= 3
    expected = series.clip(stats.min, stats.max)
    assert out.isna().equals(series.isna())
    np.testing.assert_array_equal(out.dropna().to_numpy(), expected.dropna().to_numpy())
    assert stats.min > -5000 and stats.max < 8999.99
    # any tokens at all decode into the protected range, on the column's precision
    code = build_code(stats)
    random = np.column_stack([rng.integers(0, k, 5000) for _, k in code.sub_columns])
    decoded = decode_column(random, code, stats, rng).dropna().astype(float)
    assert decoded.between(stats.min, stats.max).all()
    assert np.allclose(decoded, decoded.round(2))


def test_integer_digits_keep_round_numbers(rng):
    series = pd.Series(rng.choice([1000, 1500, 2000, 2500], N) + rng.choice([0, 0, 0, 10, 99], N))
    stats = table_stats(pd.DataFrame({"v": series}), {"v": {"encoding": "numeric_digit"}}).columns["v"]
    tokens, out = round_trip(series, stats)
    assert (out.to_numpy() == series.to_numpy()).all()
    assert tokens[:, -1].max() == 9 and set(tokens[:, -1]) == {0, 9}  # last digit: 0 or 9, as in the data


def test_binned_values_stay_inside_their_bin(rng):
    series = pd.Series(rng.lognormal(3, 1, N).round(3))
    stats = table_stats(pd.DataFrame({"v": series}), {"v": {"encoding": "numeric_binned"}}).columns["v"]
    code = build_code(stats)
    tokens, out = round_trip(series, stats)
    edges = np.asarray(code.edges)
    assert (out.to_numpy() >= edges[tokens] - 1e-3).all() and (out.to_numpy() <= edges[tokens + 1] + 1e-3).all()
    assert out.between(stats.min, stats.max).all()


@pytest.mark.parametrize("encoding", ["numeric_binned", "numeric_digit"])
def test_a_range_of_one_unrounded_value_is_never_left_by_rounding(rng, encoding):
    # the protected range of three subjects' values is the middle one alone; rounded to the 8 decimals kept,
    # -0.16691277060617613 became -0.16691277, outside it, and the blocking schema check failed the run
    series = pd.Series(rng.normal(size=N))
    stats = table_stats(pd.DataFrame({"v": series}), {"v": {"encoding": encoding}}).columns["v"]
    narrowed = stats.model_copy(update={"min": -0.16691277060617613, "max": -0.16691277060617613, "decimals": 8})
    tokens, out = round_trip(series, narrowed)
    assert (out == -0.16691277060617613).all()
    # on a grid, a clipped value stays on it: a range of [0.123, 0.457] at 2 decimals gives 0.13 to 0.45
    gridded = stats.model_copy(update={"min": 0.123, "max": 0.457, "decimals": 2})
    out = round_trip(series, gridded)[1]
    assert out.between(0.13, 0.45).all() and np.allclose(out, out.round(2)), out.unique()


def test_datetime_parts_are_exact_and_stay_in_the_protected_range(rng):
    stamps = pd.Timestamp("2019-06-01") + pd.to_timedelta(rng.integers(0, 3 * 10**7, N), unit="s")
    series = pd.Series(stamps)
    series[::9] = pd.NaT
    series[1] = pd.Timestamp("1900-01-01")  # a single extreme
    stats = table_stats(pd.DataFrame({"when": series})).columns["when"]
    assert choose_encoding(stats) == "datetime" and len(build_code(stats).sub_columns) == 6
    _, out = round_trip(series, stats)
    low, high = (pd.Timestamp(int(round(v))).round("s") for v in (stats.min, stats.max))
    expected = series.clip(low, high)
    assert out.isna().equals(series.isna())
    assert (out.dropna() == expected.dropna()).all()
    assert out.min() > pd.Timestamp("1900-01-01")


def test_dates_as_text_keep_their_format_and_decode_to_valid_dates(rng):
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 800, N), unit="D")
    series = with_nulls(list(days.strftime("%Y-%m-%d")))
    stats = table_stats(pd.DataFrame({"day": series})).columns["day"]
    code = build_code(stats)
    assert [name for name, _ in code.sub_columns] == ["day__year", "day__month", "day__day"]
    _, out = round_trip(series, stats)
    low, high = (pd.Timestamp(int(round(v))).round("D") for v in (stats.min, stats.max))
    expected = pd.to_datetime(series).clip(low, high).dt.strftime("%Y-%m-%d")
    assert out.isna().equals(series.isna()) and out.dropna().equals(expected.dropna())
    # 31 February (any token combination) becomes a real date inside the protected range
    february_31 = np.array([[int(code.has_null) + 1, 1, 30]] * 4)
    decoded = decode_column(february_31, code, stats, rng)
    assert decoded.tolist() == ["2024-02-29"] * 4
    random = np.column_stack([rng.integers(0, k, 3000) for _, k in code.sub_columns])
    parsed = pd.to_datetime(decode_column(random, code, stats, rng).dropna(), format="%Y-%m-%d")
    low, high = pd.Timestamp(int(round(stats.min))), pd.Timestamp(int(round(stats.max)))
    assert parsed.between(low, high).all()


def test_text_timestamps_keep_their_time(rng):
    stamps = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 10**6, N) * 60, unit="s")
    series = pd.Series(stamps.strftime("%Y-%m-%d %H:%M:%S"))
    stats = table_stats(pd.DataFrame({"t": series})).columns["t"]
    assert stats.datetime_parts == ["year", "month", "day", "hour", "minute"]  # seconds always 0: dropped
    _, out = round_trip(series, stats)
    low, high = (pd.Timestamp(int(round(v))).round("min") for v in (stats.min, stats.max))
    assert out.equals(pd.to_datetime(series).clip(low, high).dt.strftime("%Y-%m-%d %H:%M:%S").astype(object))


def test_characters_round_trip_and_rare_characters_never_appear(rng):
    codes = list(postcodes(rng))
    codes[2] = "QZ9 9ZQ"  # Q and Z appear nowhere else
    codes[3] = "AB1 2CD-EXTRA-LONG-TAIL"  # one value longer than all others
    series = with_nulls(codes)
    stats = table_stats(pd.DataFrame({"pc": series})).columns["pc"]
    assert choose_encoding(stats) == "character" and len(stats.characters) == 7
    assert not any("Q" in kept or "Z" in kept for kept in stats.characters)
    tokens, out = round_trip(series, stats)
    assert out.isna().equals(series.isna())
    common = series.notna() & (series.index > 3)
    assert out[common].equals(series[common])  # exact where every character is common
    assert out[3] == "AB1 2CD"  # cut to the length enough rows reach
    assert "Q" not in out[2] and "Z" not in out[2] and len(out[2]) == 7
    code = build_code(stats)
    random = np.column_stack([rng.integers(0, k, 5000) for _, k in code.sub_columns])
    decoded = decode_column(random, code, stats, rng).dropna()
    assert not decoded.str.contains("[QZ]").any() and decoded.str.len().max() <= 7


def test_characters_count_keys_not_rows():
    # one person holding many rows does not make their characters common
    codes = [f"A{i % 10}" for i in range(199)] + ["X9"] * 21
    rows = pd.DataFrame({"pid": list(range(200)) + [199] * 20, "code": codes})
    by_row = column_stats(rows["code"], None, requested="character", hint="code", where=("d", "t", "code"))
    by_person = column_stats(rows["code"], rows["pid"], requested="character", hint="code", where=("d", "t", "code"))
    assert "X" in by_row.characters[0]  # 21 rows
    assert "X" not in by_person.characters[0]  # but one person


def test_lat_long_round_trips_at_its_precision(rng):
    lat, long = rng.uniform(48.0, 48.4, N), rng.uniform(16.2, 16.6, N)
    pairs = [f"{a:.4f},{b:.4f}" for a, b in zip(lat, long)]
    pairs[1] = "-33.8688,151.2093"  # one point far away: its 1° cell is held by one row
    series = with_nulls(pairs)
    stats = table_stats(pd.DataFrame({"at": series})).columns["at"]
    assert choose_encoding(stats) == "lat_long" and stats.decimals == 4 and stats.lat_long_separator == ","
    tokens, out = round_trip(series, stats)
    assert tokens.shape[1] == 5  # cell, then four decimal digits
    assert out.isna().equals(series.isna())
    assert out[2:].equals(series[2:])
    lat0, long0 = map(float, out[1].split(","))
    assert 47 <= lat0 < 49 and 15 <= long0 < 17  # moved to the nearest kept cell
    code = build_code(stats)
    random = np.column_stack([rng.integers(0, k, 3000) for _, k in code.sub_columns])
    parts = decode_column(random, code, stats, rng).dropna().str.split(",", expand=True).astype(float)
    assert parts[0].between(48, 49).all() and parts[1].between(16, 17).all()


@pytest.mark.parametrize("column, forced", [
    ("v", "numeric_discrete"), ("v", "numeric_binned"), ("v", "numeric_digit"), ("c", "categorical"),
    ("c", "character"), ("d", "datetime"), ("g", "lat_long")])
def test_nulls_are_a_token_of_the_first_sub_column(rng, column, forced):
    df = pd.DataFrame({
        "v": rng.integers(0, 20, N).astype(float), "c": rng.choice(["ab", "cd", "ef"], N),
        "d": pd.date_range("2020-01-01", periods=N, freq="h"),
        "g": [f"{a:.3f}, {b:.3f}" for a, b in zip(rng.uniform(10, 10.5, N), rng.uniform(20, 20.5, N))],
    })
    df.loc[::5, column] = None
    stats = table_stats(df, {column: {"encoding": forced}}).columns[column]
    assert choose_encoding(stats) == forced
    tokens, out = round_trip(df[column], stats)
    first = tokens if tokens.ndim == 1 else tokens[:, 0]
    is_null = df[column].isna().to_numpy()
    assert (first[is_null] == 0).all() and (first[~is_null] > 0).all()
    assert out.isna().equals(df[column].isna())


# the synthetic schema check --------------------------------------------------------------------------

def test_schema_check_takes_new_character_values_and_still_checks_ranges(rng):
    from synth_assets.audit import schema_problems

    df = pd.DataFrame({"pc": postcodes(rng), "price": rng.integers(300, 19_000, N)})
    stats = table_stats(df)
    synthetic = pd.DataFrame({"pc": ["ZZ9 9ZZ", "AB1 2CD"], "price": [1000, 2000]})
    assert schema_problems(synthetic, stats) == []
    assert schema_problems(synthetic.assign(price=[1000, 10**6]), stats)


# end to end ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_short_training_generates_every_encoding(run_one_table, rng):
    from synth_assets.audit import schema_problems

    n = 1500
    codes = list(postcodes(rng, n))
    codes[0] = "QQ9 9QQ"
    df = pd.DataFrame({
        "pc": with_nulls(codes, 11),
        "at": [f"{a:.4f}, {b:.4f}" for a, b in zip(rng.uniform(48, 48.4, n), rng.uniform(16.2, 16.6, n))],
        "price": rng.integers(300, 19_000, n),
        "day": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).strftime("%Y-%m-%d"),
        "seen": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
    })
    pipeline = run_one_table(df, max_epochs=3, sample_size=600)
    stats = pipeline.load_stats().tables["t"]
    assert [choose_encoding(c) for c in stats.columns.values()] == ["character", "lat_long", "numeric_digit",
                                                                   "datetime", "datetime"]
    out = pipeline.load_synthetic()["t"]
    assert out.dtypes.astype(str).tolist() == df.dtypes.astype(str).tolist()
    assert schema_problems(out, stats) == []
    assert not out.pc.dropna().str.contains("Q").any() and RARE_TOKEN not in set(out.pc)
    assert 0.02 < out.pc.isna().mean() < 0.25
    parts = out["at"].str.split(", ", expand=True).astype(float)
    assert parts[0].between(48, 49).all() and parts[1].between(16, 17).all()
    assert pd.to_datetime(out.day, format="%Y-%m-%d").between("2022-01-01", "2023-12-31").all()
    assert out.seen.between(df.seen.min(), df.seen.max()).all()
    assert out.price.between(stats.columns["price"].min, stats.columns["price"].max).all()


def test_a_small_tables_numbers_start_with_a_coarse_digit_that_round_trips(rng):
    """A number's leading digit holds a token per DIGIT_LEADING_ROWS_PER_TOKEN training rows at most: in a small
    table neighbouring values share tokens (weights 40.0-139.9 kg by tens of kilograms, then kilograms, then
    tenths), where a large table gives each kilogram its own; both give the values back exactly (within the
    protected range)."""
    weights = pd.Series(rng.uniform(40, 140, N).round(1))
    stats = table_stats(pd.DataFrame({"weight": weights})).columns["weight"]
    small, large = build_code(stats, rows=1_600), build_code(stats, rows=40_000)
    assert [k for _, k in small.sub_columns] == [10, 10, 10]
    assert [k for _, k in large.sub_columns] == [100, 10]
    for code in (small, large):
        out = decode_column(encode_column(weights, code, stats), code, stats, np.random.default_rng(0))
        np.testing.assert_allclose(out.to_numpy(dtype=float), weights.clip(stats.min, stats.max).to_numpy())
