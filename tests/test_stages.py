import numpy as np
import pandas as pd
import pytest

from synth_assets.project import parse_project
from synth_assets.errors import SynthError
from synth_assets.stages.quality import evaluate_table
from synth_assets.stages.schema import restore_schema
from synth_assets.stages.split import split_tables
from synth_assets.stages.stats import RARE_THRESHOLD, compute_stats
from synth_assets.tables import check_keys


def dataset(tables: dict) -> object:
    return parse_project({"datasets": {"d": {"tables": tables}}}).datasets["d"]


def test_split_is_80_20_by_primary_key_and_children_follow_parents():
    people = pd.DataFrame({"pid": range(1000), "age": np.arange(1000) % 90})
    visits = pd.DataFrame({"vid": range(3000), "pid": np.arange(3000) % 1000, "cost": np.arange(3000) * 1.5})
    spec = dataset({
        "people": {"source": "p.csv", "primary_key": "pid"},
        "visits": {"source": "v.csv", "primary_key": "vid", "foreign_keys": [{"column": "pid", "references": "people"}]},
    })
    split = split_tables(spec, {"people": people, "visits": visits})
    assert len(split.train["people"]) == 800 and len(split.validation["people"]) == 200
    assert set(split.train["visits"].pid) <= set(split.train["people"].pid)
    assert set(split.validation["visits"].pid) <= set(split.validation["people"].pid)
    assert len(split.train["visits"]) + len(split.validation["visits"]) == 3000
    again = split_tables(spec, {"people": people, "visits": visits})
    assert again.train["people"].pid.tolist() == split.train["people"].pid.tolist()  # seeded


def test_rare_categories_are_never_listed_and_extremes_are_clipped():
    values = ["common"] * 50 + ["also"] * RARE_THRESHOLD + ["secret"] * (RARE_THRESHOLD - 1)
    amounts = list(range(len(values) - 1)) + [10_000_000]  # one extreme value
    df = pd.DataFrame({"kind": values, "amount": amounts, "note": [None] * 10 + ["x"] * (len(values) - 10)})
    stats = compute_stats(dataset({"t": {"source": "t.csv"}}), {"t": df}, dataset="d").tables["t"]
    kind = stats.columns["kind"]
    assert kind.categories == ["common", "also"] and "secret" not in kind.categories
    assert kind.rare_share == pytest.approx((RARE_THRESHOLD - 1) / len(values))
    amount = stats.columns["amount"]
    assert amount.max < 10_000_000 and amount.min > 0
    assert max(amount.quantiles) <= amount.max
    assert stats.columns["note"].null_share == pytest.approx(10 / len(values))


def test_rarity_counts_distinct_keys_not_rows():
    # one person with many rows does not make their value common
    df = pd.DataFrame({"pid": range(60), "city": ["Oslo"] * 50 + ["Bergen"] * 10})
    child = pd.DataFrame({"pid": [0] * 40 + list(range(1, 21)), "city": ["Tromsø"] * 40 + ["Oslo"] * 20})
    spec = dataset({"p": {"source": "p.csv", "primary_key": "pid"},
                    "c": {"source": "c.csv", "foreign_keys": [{"column": "pid", "references": "p"}]}})
    stats = compute_stats(spec, {"p": df, "c": child}, dataset="d")
    assert "pid" not in stats.tables["c"].columns  # keys are not modelled
    assert stats.tables["p"].columns["city"].categories == ["Oslo", "Bergen"]


def test_dates_written_as_text_are_datetimes_that_stay_text():
    df = pd.DataFrame({"day": pd.date_range("2020-01-01", periods=100).strftime("%Y-%m-%d")})
    column = compute_stats(dataset({"t": {"source": "t.csv"}}), {"t": df}, dataset="d").tables["t"].columns["day"]
    assert column.kind == "datetime" and column.datetime_format == "%Y-%m-%d" and column.dtype == "object"


def test_key_problems_name_table_and_column():
    spec = dataset({"t": {"source": "t.csv", "primary_key": "id"}})
    with pytest.raises(SynthError) as err:
        check_keys(spec, {"t": pd.DataFrame({"id": [1, 1, 2]})}, dataset="d")
    assert "table 't'" in str(err.value) and "column 'id'" in str(err.value) and "not unique" in str(err.value)
    with pytest.raises(SynthError, match="column 'id'.*not in the source"):
        check_keys(spec, {"t": pd.DataFrame({"other": [1]})}, dataset="d")


def test_restore_schema_gives_back_order_dtypes_and_fresh_keys():
    df = pd.DataFrame({"id": range(10, 130, 10), "a": [1, 2, 3] * 4, "b": ["x", "y", "z"] * 4})
    stats = compute_stats(dataset({"t": {"source": "t.csv", "primary_key": "id"}}), {"t": df}, dataset="d").tables["t"]
    generated = pd.DataFrame({"b": ["x", "x"], "a": [1.0, 3.0]})
    out = restore_schema(generated, stats)
    assert list(out.columns) == ["id", "a", "b"]
    assert out.dtypes.astype(str).tolist() == ["int64", "int64", "object"]
    assert out.id.tolist() == [1, 2]


def test_quality_scores_separate_good_copies_and_broken_samples(diamonds):
    spec = parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv"}}, "split": {"validation_share": 0.5}}}}).datasets["d"]
    split = split_tables(spec, {"t": diamonds.sample(6000, random_state=1).reset_index(drop=True)})
    train, valid = split.train["t"], split.validation["t"]
    stats = compute_stats(spec, split.train, dataset="d").tables["t"]
    fresh = diamonds.drop(train.index.intersection(diamonds.index)).sample(2000, random_state=2)
    independent = pd.DataFrame({c: train[c].sample(frac=1, random_state=i).to_numpy() for i, c in enumerate(train)})
    copies = evaluate_table(stats, train, valid, train.sample(2000, random_state=3), max_rows=3000)
    shuffled = evaluate_table(stats, train, valid, independent, max_rows=2000)
    assert copies.dcr_share > 0.9  # copies of training rows are caught
    assert copies.accuracy > 0.9
    assert shuffled.univariate > 0.9 and shuffled.bivariate < copies.bivariate - 0.1  # broken correlations show
    assert 0.35 < evaluate_table(stats, train, valid, fresh, max_rows=2000).dcr_share < 0.65


def test_quality_compares_code_formats_and_locations_and_catches_copied_codes():
    def table(n, seed, code_format="{}{}-{:04d}"):
        r = np.random.default_rng(seed)
        letters = r.choice(list("ABCDEFGH"), size=(n, 2))
        code = [code_format.format(a, b, k) for (a, b), k in zip(letters, r.integers(0, 10_000, n))]
        north = r.random(n) < 0.5  # two clusters of places
        lat = np.where(north, 59.9, 48.1) + r.normal(0, 0.3, n)
        long = np.where(north, 10.7, 11.6) + r.normal(0, 0.3, n)
        return pd.DataFrame({"code": code, "place": [f"{a:.4f}, {b:.4f}" for a, b in zip(lat, long)]})

    spec = dataset({"t": {"source": "t.csv"}})
    train, valid = table(3000, 1), table(3000, 2)
    stats = compute_stats(spec, {"t": train}, dataset="d").tables["t"]
    assert [c.text_form for c in stats.columns.values()] == ["code", "lat_long"]

    fresh = evaluate_table(stats, train, valid, table(3000, 3))
    wrong_format = table(3000, 3, code_format="{}{}{:06d}")
    wrong_format["place"] = wrong_format["place"].sample(frac=1, random_state=0).to_numpy()
    wrong_format.loc[: 1500, "place"] = "0.0000, 0.0000"  # half the places in the sea
    wrong = evaluate_table(stats, train, valid, wrong_format)
    assert fresh.columns["code"] > 0.95 and wrong.columns["code"] < 0.1  # every code is unique, formats compare
    assert fresh.columns["place"] > 0.9 and wrong.columns["place"] < 0.6
    assert 0.35 < fresh.dcr_share < 0.65
    # copied codes with fresh places: the codes alone give the copies away
    copies = table(3000, 3).assign(code=train["code"].sample(3000, random_state=1).to_numpy())
    assert evaluate_table(stats, train, valid, copies).dcr_share > 0.7  # codes compared as whole values: 0.5


def test_stats_are_facts_any_backend_can_use_without_encodings():
    r = np.random.default_rng(3)
    income = np.where(r.random(3000) < 0.6, r.choice([3.0, 3.5, 4.0], 3000), np.round(r.gamma(3.0, 1.2, 3000), 4))
    df = pd.DataFrame({"income": income, "rooms": r.integers(1, 6, 3000), "city": r.choice(["Oslo", "Bergen"], 3000)})
    spec = dataset({"t": {"source": "t.csv", "columns": {"rooms": {"encoding": "numeric_binned"}}}})
    stats = compute_stats(spec, {"t": df}, dataset="d", hints={"numeric_binned": "continuous"}).tables["t"]
    income, rooms, city = stats.columns["income"], stats.columns["rooms"], stats.columns["city"]
    assert not hasattr(income, "encoding")  # how to encode is each backend's choice
    # a continuous number with heaped values: those values, and the quantiles of the rest beside all of them
    assert not income.discrete and set(income.categories[:3]) == {3.0, 3.5, 4.0}
    assert income.rest_quantiles != income.quantiles and 0.55 < sum(income.category_shares) < 0.65
    # the override's word reaches the backend; its hint made a five-valued number continuous
    assert rooms.requested_encoding == "numeric_binned" and not rooms.discrete
    assert city.kind == "categorical" and city.text_form == "category" and city.categories


def test_the_schema_check_passes_the_source_itself_when_numbers_carry_float32_artefacts():
    from synth_assets.audit import schema_problems

    r = np.random.default_rng(0)
    # incomes stored as float32 once: 3.96 reads back as 3.9600000381, on the grid of cents all the same
    income = np.round(r.gamma(2.0, 1.5, 500), 2).astype(np.float32).astype(float)
    df = pd.DataFrame({"income": income, "cents": np.round(r.random(500) * 100, 2)})
    stats = compute_stats(dataset({"t": {"source": "t.csv"}}), {"t": df}, dataset="d").tables["t"]
    inside = np.ones(len(df), dtype=bool)  # the source's rows, but its extremes (outside the protected range)
    for name, column in stats.columns.items():
        inside &= df[name].between(column.min, column.max).to_numpy()
    assert schema_problems(df[inside], stats) == []
    middle = df[inside & (df.cents < stats.columns["cents"].max).to_numpy()]
    assert any("at most 2 decimals" in p for p in schema_problems(middle.assign(cents=middle.cents + 0.001), stats))
