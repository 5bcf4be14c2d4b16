"""Columns a production table holds, each through every stage: it synthesizes with the source's dtype and
passes the blocking schema check, or it fails before training with a SynthError that names the dataset,
table and column and says what to do. Never a traceback from inside pandas, torch or Dagster."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from synth_assets.audit import schema_problems
from synth_assets.project import load_project
from synth_assets.errors import SynthError
from synth_assets.pipeline import DatasetPipeline
from synth_assets.testing import dg_launch

N = 400
PLANTED = "PLANTED-only-in-row-7"


def base(n: int = N, seed: int = 0) -> pd.DataFrame:
    """An ordinary table: a category, a rounded amount, a flag, with a planted unique value in row 7."""
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "kind": r.choice(["alpha", "beta", "gamma"], n),
        "amount": np.round(r.gamma(2.0, 20.0, n), 2),
        "flag": r.random(n) < 0.3,
    })
    df.loc[7, "kind"] = PLANTED
    df.loc[7, "amount"] = 987_654.32  # an extreme value held by one row
    return df


def with_columns(**columns) -> pd.DataFrame:
    df = base()
    for name, make in columns.items():
        df[name] = make(np.random.default_rng(1), len(df))
    return df


def all_null(r, n):
    return pd.Series([np.nan] * n, dtype="float64")


def all_null_text(r, n):
    return pd.Series([None] * n, dtype=object)


def infinities(r, n):
    values = np.round(r.normal(10, 3, n), 1)
    values[r.random(n) < 0.1] = np.inf
    values[r.random(n) < 0.05] = -np.inf
    values[r.random(n) < 0.1] = np.nan
    return values


def tz_dates(zone):
    def make(r, n):
        stamps = pd.Timestamp("2024-03-01", tz=zone) + pd.to_timedelta(r.integers(0, 90 * 24, n), unit="h")
        return pd.Series(stamps)
    return make


CASES = {
    "all-null float column": dict(columns={"empty": all_null}),
    "all-null text column": dict(columns={"empty_text": all_null_text}),
    "constant number": dict(columns={"const": lambda r, n: np.full(n, 42.0)}),
    "constant text": dict(columns={"const_text": lambda r, n: ["same"] * n}),
    "unique ID-like text": dict(columns={"order_id": lambda r, n: [f"{v:012x}" for v in r.integers(0, 2**48, n)]}),
    "inf, -inf and NaN in a float column": dict(columns={"ratio": infinities}),
    "unicode names and values": dict(columns={"größe_城市": lambda r, n: r.choice(["Zürich", "東京", "São Paulo"], n)}),
    "very long strings": dict(columns={
        "notes": lambda r, n: r.choice(["ä" * 5000, "b" * 3000 + "\nline two", "short"], n),
        "unique_essay": lambda r, n: [f"essay {i} " + "x" * 2000 for i in range(n)]}),
    "tz-aware datetimes (UTC)": dict(columns={"at": tz_dates("UTC")}),
    "tz-aware datetimes (Europe/Berlin, over a DST change)": dict(columns={"at_berlin": tz_dates("Europe/Berlin")}),
    "dates with a planted extreme": dict(columns={
        "day": lambda r, n: pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(r.integers(0, 700, n), unit="D"))
        .where(np.arange(n) != 7, pd.Timestamp("1850-06-15"))}),
    "text that is almost a date": dict(columns={
        "when": lambda r, n: r.choice(["2024-01-31", "2024-02-30", "2024-13-01", "2024-01-31 or so"], n)}),
    "nullable Int64 and boolean": dict(columns={
        "count": lambda r, n: pd.array(np.where(r.random(n) < 0.2, None, r.integers(0, 12, n)), dtype="Int64"),
        "answer": lambda r, n: pd.array(np.where(r.random(n) < 0.2, None, r.random(n) < 0.5), dtype="boolean")}),
    "category and unsigned dtypes": dict(columns={
        "grade": lambda r, n: pd.Categorical(r.choice(["A", "B", "C"], n)),
        "small": lambda r, n: r.integers(0, 200, n).astype("uint8"),
        "big": lambda r, n: r.integers(0, 2**40, n).astype("uint64")}),
    "integers stored as float, with nulls": dict(columns={
        "years": lambda r, n: np.where(r.random(n) < 0.1, np.nan, r.choice([9.0, 10.0, 12.0, 13.0, 16.0, 18.0], n)),
        "visits": lambda r, n: r.poisson(6, n).astype(float) * 1.0}),
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)

    def make(df: pd.DataFrame | None, *, source: str = "t.parquet", table_yaml: str = "{source: t.parquet}",
             extra_tables: str = "", backend: str = "tabular_argn") -> DatasetPipeline:
        if df is not None:
            df.to_parquet(tmp_path / source)
        train = "{max_training_time: 1, max_epochs: 3, model_size: small}" if backend == "tabular_argn" else "{}"
        (tmp_path / "synth.yaml").write_text(
            f"datasets:\n  odd:\n    backend: {backend}\n    tables:\n"
            f"      t: {table_yaml}\n{extra_tables}"
            f"    train: {train}\n"
            "    generate: {sample_size: 600, seed: 1}\n")
        return DatasetPipeline(load_project(tmp_path), "odd")

    return make


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    """Every awkward column of CASES in one table, through every stage once (one training serves each case's
    assertions): the source, the synthetic table, the stats and the pipeline."""
    folder = tmp_path_factory.mktemp("awkward")
    source = with_columns(**{name: make for case in CASES.values() for name, make in case["columns"].items()})
    source.to_parquet(folder / "t.parquet")
    (folder / "synth.yaml").write_text(
        "datasets:\n  odd:\n    tables:\n      t: {source: t.parquet}\n"
        "    train: {max_training_time: 1, max_epochs: 3, model_size: small, text: {max_epochs: 2}}\n"
        "    generate: {sample_size: 600, seed: 1}\n")
    pipeline = DatasetPipeline(load_project(folder), "odd")
    pipeline.run_all()
    return source, pipeline.load_synthetic()["t"], pipeline.load_stats().tables["t"], pipeline


@pytest.mark.slow
def test_the_awkward_table_synthesizes_with_the_source_dtypes_and_every_quality_figure(awkward):
    source, out, stats, pipeline = awkward
    assert list(out.columns) == list(source.columns)
    assert out.dtypes.astype(str).to_dict() == source.dtypes.astype(str).to_dict()
    assert schema_problems(out, stats) == []  # what the blocking asset check runs
    # the planted unique values never come out
    assert PLANTED not in set(out["kind"]) and out["amount"].max() < 987_654
    quality = pipeline.quality()[0]["t"]
    assert quality.unavailable == {} and quality.accuracy > 0.5, quality  # every figure, for any column


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_awkward_column_synthesizes_with_the_source_dtype(awkward, case):
    source, out, stats, _ = awkward
    problems = schema_problems(out, stats)  # what the blocking asset check runs
    for column in CASES[case]["columns"]:
        assert out[column].dtype == source[column].dtype, column
        assert [p for p in problems if p.startswith(f"{column}:")] == []
        if source[column].isna().all():
            assert out[column].isna().all()
        elif source[column].nunique() == 1:
            assert (out[column] == source[column].iloc[0]).all()
        if source[column].notna().all():
            assert out[column].notna().all()

    if case == "unique ID-like text":
        assert not set(out.order_id) & set(source.order_id)  # never copied row by row
        assert out.order_id.str.fullmatch(r"[0-9a-f]{1,12}").mean() > 0.9  # but in the source's format
    if case.startswith("inf"):
        assert {np.inf, -np.inf} <= set(out.ratio[np.isinf(out.ratio)])  # a few epochs: shares are rough
        assert out.ratio.isna().any()
    if case == "text that is almost a date":
        assert stats.columns["when"].kind == "categorical"
        assert set(out.when) <= {"2024-01-31", "2024-02-30", "2024-13-01", "2024-01-31 or so"}
    if case == "dates with a planted extreme":
        assert out.day.min() > pd.Timestamp("2019-12-31")
        assert (out.day == out.day.dt.normalize()).all()  # dates stay dates: no time of day invented
    if case.startswith("tz-aware"):
        [column] = CASES[case]["columns"]
        assert out[column].min() >= source[column].min() and out[column].max() <= source[column].max()
        assert (out[column].dt.minute == 0).all()  # whole hours in, whole hours out
    if case == "very long strings":
        assert set(out.notes) <= set(source.notes) and out.notes.str.len().max() == 5000
        # free text (several words, each essay its own): the words many rows hold, never the one row's number
        assert not out.unique_essay.str.contains(r"\d").any() and out.unique_essay.notna().all()
        assert set().union(*out.unique_essay.map(lambda t: set(t.split()))) <= {"essay", "x" * 2000}
    if case == "integers stored as float, with nulls":
        present = out.years.dropna()
        assert set(present) <= {9.0, 10.0, 12.0, 13.0, 16.0, 18.0}
        assert (out.visits == out.visits.round()).all()


def test_infinities_have_tokens_of_their_own():
    from synth_assets.project import parse_project
    from synth_assets.stages.stats import compute_stats
    from synth_tabular_argn.encoding import build_codes, decode_table, encode_table

    df = with_columns(ratio=infinities)
    spec = parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv"}}}}}).datasets["d"]
    stats = compute_stats(spec, {"t": df}, dataset="d").tables["t"]
    assert set(stats.columns["ratio"].infinite_shares) == {"inf", "-inf"}
    assert stats.columns["ratio"].max < 20  # the range is that of the finite values
    codes = build_codes(stats)
    back = decode_table(encode_table(df, codes, stats).to_numpy(), codes, stats, np.random.default_rng(0))
    for value in (np.inf, -np.inf):
        assert ((back.ratio == value) == (df.ratio == value)).all()
    assert (back.ratio.isna() == df.ratio.isna()).all()
    finite = np.isfinite(df.ratio)
    assert (back.ratio[finite] == df.ratio[finite].clip(stats.columns["ratio"].min, stats.columns["ratio"].max)).all()


@pytest.mark.slow
def test_three_hundred_columns(project):
    r = np.random.default_rng(3)
    wide = pd.DataFrame({f"c{i:03d}": np.round(r.normal(i, 1 + i % 7, 300), i % 3) for i in range(310)})
    pipeline = project(wide)
    for stage in (pipeline.split, pipeline.stats, pipeline.encode, pipeline.train, pipeline.generate):
        stage()  # the scores of 300 columns: tests/test_quality.py::test_300_columns_are_scored_pair_by_pair
    out = pipeline.load_synthetic()["t"]
    assert out.shape == (600, 310)
    assert schema_problems(out, pipeline.load_stats().tables["t"]) == []


def test_mixed_object_column_through_the_python_api(tmp_path):
    from synth_tabular_argn import TabularARGN

    r = np.random.default_rng(2)
    df = base(300)
    df["mixed"] = pd.Series([[1, "a", 2.5, None, True][i] for i in r.integers(0, 5, len(df))], dtype=object)
    out = TabularARGN(max_training_time=1, max_epochs=2, model_size="small", workspace=tmp_path).fit(df).sample(500, seed=1)
    assert out.mixed.dtype == object
    assert set(out.mixed.dropna()) <= {"1", "a", "2.5", "True"}  # each kept value, written as text
    assert out.mixed.isna().any()


ERRORS = {
    "empty table": (lambda: base().iloc[:0], "has no rows"),
    "single row": (lambda: base().iloc[:1], "1 training rows"),
    "all infinite": (lambda: with_columns(inf=lambda r, n: np.full(n, np.inf)), "column 'inf'.*only infinite"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_unusable_table_fails_before_training_naming_where(project, case):
    make, message = ERRORS[case]
    pipeline = project(make())
    with pytest.raises(SynthError, match=f"dataset 'odd', table 't'.*{message}"):
        pipeline.split()
        pipeline.stats()
    assert not pipeline.paths.model.exists()


def test_duplicate_primary_keys_and_orphans_fail_at_the_split(project, tmp_path):
    df = base().assign(id=range(N))
    df.loc[3, "id"] = 2
    pipeline = project(df, table_yaml="{source: t.parquet, primary_key: id}")
    with pytest.raises(SynthError, match=r"table 't', column 'id': primary key is not unique \(e.g. 2 repeats\)"):
        pipeline.split()


def test_children_without_a_parent_fail_at_the_split(toy_plugin, project, tmp_path):
    base().assign(id=range(N)).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame({"pid": [1, 2, N + 5, N + 6], "x": [1, 2, 3, 4]}).to_parquet(tmp_path / "c.parquet")
    pipeline = project(None, table_yaml="{source: t.parquet, primary_key: id}", backend="marginals", extra_tables=(
        "      c: {source: c.parquet, foreign_keys: [{column: pid, references: t}]}\n"))
    with pytest.raises(SynthError, match="table 'c', column 'pid': 2 rows refer to keys missing from table 't'"):
        pipeline.split()


def test_a_file_that_is_not_what_its_suffix_says_or_is_missing(project, tmp_path):
    (tmp_path / "t.parquet").write_text("kind,amount\nalpha,1.5\n")
    pipeline = project(None)
    with pytest.raises(SynthError, match=r"table 't': cannot read .*t.parquet as Parquet.*holds what its suffix says"):
        pipeline.split()
    (tmp_path / "t.parquet").unlink()
    with pytest.raises(SynthError, match=r"table 't': source file .*t.parquet not found — fix 'source'"):
        pipeline.split()


@pytest.mark.e2e
def test_a_parent_of_keys_only_and_a_column_null_in_nearly_every_row_through_dg_launch_with_both_backends(tmp_path):
    """Two real two-table shapes that published their tables and then failed at `quality`: a parent holding
    nothing but the subject id (no column to chart), and a child column with a value in 1% of its rows (a
    discriminator fold with no value in it; with its values unrounded, rounding stepped out of the protected
    range and the schema check failed). Each backend's run passes its checks, and the report says what it
    could not measure instead of failing."""
    r = np.random.default_rng(0)
    persons = pd.DataFrame({"pid": np.arange(300)})
    records = r.integers(1, 5, len(persons))
    m = int(records.sum())
    visits = pd.DataFrame({"pid": np.repeat(persons.pid, records), "cost": np.round(r.gamma(2, 30, m), 2),
                           "kind": r.choice(["a", "b"], m), "rare": np.where(r.random(m) < 0.01, r.normal(size=m), np.nan)})
    persons.to_parquet(tmp_path / "persons.parquet")
    visits.to_parquet(tmp_path / "visits.parquet")
    tables = {"persons": {"source": "persons.parquet", "primary_key": "pid"},
              "visits": {"source": "visits.parquet", "foreign_keys": [{"column": "pid", "references": "persons"}]}}
    train = {"tabular_argn": {"max_training_time": 0.1, "max_epochs": 3},
             "llm": {"max_training_time": 1.0, "max_epochs": 14, "model_size": "tiny", "context_window": 256}}
    datasets = {f"keys_{backend}": {"backend": backend, "tables": tables, "train": options,
                                     "generate": {"sample_size": 100, "seed": 1}} for backend, options in train.items()}
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump({"datasets": datasets}, sort_keys=False))
    launch = dg_launch(tmp_path, "--assets", "*")
    launch.assert_passed(*((check, f"{name}/synthetic") for name in datasets
                           for check in ("schema_matches_source", "privacy_gate")))
    for name in datasets:
        quality = tmp_path / "store" / name / "quality"
        report = (quality / "report.md").read_text()
        assert re.search(r"\| persons \| \d+ \| – \| – \| – \| – \| – \| – \|", report), name
        assert "- accuracy: the table holds only keys: no column to compare" in report, name
        assert "nan" not in report.lower(), name
        scores = json.loads((quality / "scores.json").read_text())
        assert 0.5 < scores["visits"]["accuracy"] <= 1 and scores["visits"]["unavailable"] == {}, name
        assert not (quality / "persons_distributions.png").exists() and (quality / "visits_distributions.png").is_file()
