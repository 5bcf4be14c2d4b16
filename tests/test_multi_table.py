"""Multi-table datasets: a tree of tables linked by their first foreign keys (persons -> visits -> prescriptions).

Built on the real German health panel data/demo/rwm5yr.csv.gz: one person (`id`) has 1 to 5 yearly records.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets.config import DatasetSpec, ForeignKey, SplitSpec, TableSpec
from synth_assets.errors import SynthError
from synth_assets.stages.schema import restore_tables
from synth_assets.stages.split import split_tables
from synth_assets.stages.stats import RARE_THRESHOLD, compute_stats
from synth_assets.files import read_parquet

RWM5YR = Path(__file__).resolve().parent.parent / "data" / "demo" / "rwm5yr.csv.gz"
PERSON_COLUMNS = ["female"]  # the only column constant within every person (edlevel, educ change for some)


@pytest.fixture(scope="module")
def rwm5yr() -> pd.DataFrame:
    return pd.read_csv(RWM5YR)


@pytest.fixture(scope="module")
def panel(rwm5yr) -> dict[str, pd.DataFrame]:
    """persons (one row per id), visits (the yearly records) and prescriptions (made up: a few per visit,
    and some over-the-counter ones with no visit)."""
    persons = rwm5yr.groupby("id", sort=True)[PERSON_COLUMNS].first().reset_index()
    visits = rwm5yr.drop(columns=PERSON_COLUMNS).sort_values(["id", "year"]).reset_index(drop=True)
    visits.insert(0, "visit_id", np.arange(len(visits)) * 3 + 1000)
    rng = np.random.default_rng(0)
    per_visit = rng.poisson(0.3 + visits["docvis"].to_numpy() / 5)
    prescribed = np.repeat(visits["visit_id"].to_numpy(), per_visit).astype(float)
    over_the_counter = np.full(300, np.nan)
    visit_of = np.concatenate([prescribed, over_the_counter])
    prescriptions = pd.DataFrame({
        "rx_id": np.arange(len(visit_of)) + 1,
        "visit_id": visit_of,  # float64: it holds nulls
        "drug": rng.choice(["ibuprofen", "insulin", "statin", "antibiotic"], len(visit_of)),
        "doses": rng.integers(1, 60, len(visit_of)),
    })
    return {"persons": persons, "visits": visits, "prescriptions": prescriptions}


def panel_spec(levels: int = 3, split: SplitSpec | None = None) -> DatasetSpec:
    tables = {
        "persons": TableSpec(source="persons.csv", primary_key="id"),
        "visits": TableSpec(source="visits.csv", primary_key="visit_id",
                            foreign_keys=[ForeignKey(column="id", references="persons")]),
        "prescriptions": TableSpec(source="prescriptions.csv", primary_key="rx_id",
                                   foreign_keys=[ForeignKey(column="visit_id", references="visits")]),
    }
    # the stages need no backend that models these tables: that is checked on loading a project file
    return DatasetSpec(tables=dict(list(tables.items())[:levels]), split=split or SplitSpec())


def flat_spec(primary_key: str | None = None) -> DatasetSpec:
    return DatasetSpec(tables={"t": TableSpec(source="t.csv", primary_key=primary_key)})


def test_rwm5yr_person_columns_are_those_constant_within_each_person(rwm5yr):
    changing = rwm5yr.groupby("id").nunique().max()
    assert sorted(changing[changing == 1].index) == PERSON_COLUMNS
    assert rwm5yr["id"].nunique() == 6127 and len(rwm5yr) == 19609


# split ---------------------------------------------------------------------------------------------

def test_split_keeps_three_level_trees_together(panel):
    split = split_tables(panel_spec(split=SplitSpec(validation_share=0.3, seed=7)), panel)
    for name, df in panel.items():
        assert len(split.train[name]) + len(split.validation[name]) == len(df)
    for part in (split.train, split.validation):
        assert set(part["visits"]["id"]) <= set(part["persons"]["id"])
        assert set(part["prescriptions"]["visit_id"].dropna()) <= set(part["visits"]["visit_id"])
    assert len(split.validation["persons"]) == round(0.3 * len(panel["persons"]))
    for name in ("visits", "prescriptions"):
        assert len(split.validation[name]) / len(panel[name]) == pytest.approx(0.3, abs=0.03)


def test_split_sends_children_without_a_parent_to_both_partitions(panel):
    split = split_tables(panel_spec(split=SplitSpec(validation_share=0.3, seed=7)), panel)
    orphans = {part: split.partition(part)["prescriptions"]["visit_id"].isna().sum()
               for part in ("train", "validation")}
    assert orphans["validation"] == round(0.3 * 300) and orphans["train"] == 300 - round(0.3 * 300)


def test_split_is_seeded(panel):
    spec = panel_spec()
    first, again = split_tables(spec, panel), split_tables(spec, panel)
    for name in panel:
        pd.testing.assert_frame_equal(first.validation[name], again.validation[name])
    other = split_tables(panel_spec(split=SplitSpec(seed=1)), panel)
    assert not other.validation["persons"]["id"].equals(first.validation["persons"]["id"])
    # the persons' split does not depend on the tables below them
    alone = split_tables(panel_spec(levels=1), {"persons": panel["persons"]})
    assert alone.validation["persons"]["id"].equals(first.validation["persons"]["id"])


def test_flat_split_is_unchanged():
    # computed with the split of commit 30e7379, before trees: benchmark figures depend on these draws
    by_row = split_tables(flat_spec(), {"t": pd.DataFrame({"x": range(100)})}).validation["t"]["x"].tolist()
    assert by_row == [1, 3, 6, 15, 22, 26, 42, 46, 52, 53, 55, 57, 59, 61, 68, 70, 73, 83, 92, 93]
    keys = pd.DataFrame({"k": np.arange(100) * 3})
    by_key = split_tables(flat_spec("k"), {"t": keys}).validation["t"]["k"].tolist()
    assert by_key == [3, 9, 18, 45, 66, 78, 126, 138, 156, 159, 165, 171, 177, 183, 204, 210, 219, 249, 276, 279]


# stats: rarity counts persons, not records -----------------------------------------------------------

def persons_with(visits: pd.DataFrame, n_visits: int, count: int) -> np.ndarray:
    per_person = visits.groupby("id").size()
    return per_person[per_person == n_visits].index[:count].to_numpy()


@pytest.mark.parametrize("holders, kept", [(RARE_THRESHOLD - 1, False), (RARE_THRESHOLD, True)])
def test_child_category_is_kept_only_when_enough_persons_hold_it(panel, holders, kept):
    visits = panel["visits"].copy()
    visits["insurer"] = "public"
    # held by all five records of each holder: 20 records of 4 persons are still rare
    visits.loc[visits["id"].isin(persons_with(visits, 5, holders)), "insurer"] = "private"
    tables = dict(panel, visits=visits)
    insurer = compute_stats(panel_spec(levels=2), tables, dataset="panel").tables["visits"].columns["insurer"]
    assert ("private" in insurer.categories) == kept
    if not kept:
        assert insurer.rare_share == pytest.approx(5 * holders / len(visits))
        # counted by records, as for a flat table, the value would show
        flat = compute_stats(flat_spec("visit_id"), {"t": visits}, dataset="panel").tables["t"]
        assert "private" in flat.columns["insurer"].categories


def test_grandchild_category_held_by_one_person_is_not_kept(panel):
    prescriptions = panel["prescriptions"].copy()
    visits_of_one = panel["visits"].loc[panel["visits"]["id"] == persons_with(panel["visits"], 5, 1)[0], "visit_id"]
    mine = prescriptions["visit_id"].isin(visits_of_one)
    extra = pd.DataFrame({"rx_id": np.arange(40) + 10**6, "visit_id": np.resize(visits_of_one.to_numpy(), 40),
                          "drug": "experimental", "doses": 1})
    prescriptions = pd.concat([prescriptions[~mine], extra], ignore_index=True)
    stats = compute_stats(panel_spec(), dict(panel, prescriptions=prescriptions), dataset="panel")
    assert "experimental" not in stats.tables["prescriptions"].columns["drug"].categories
    # over-the-counter prescriptions (no visit) are each a unit of their own
    otc = prescriptions["visit_id"].isna()
    prescriptions.loc[otc, "drug"] = np.where(np.arange(otc.sum()) < RARE_THRESHOLD, "herbal", "statin")
    stats = compute_stats(panel_spec(), dict(panel, prescriptions=prescriptions), dataset="panel")
    assert "herbal" in stats.tables["prescriptions"].columns["drug"].categories


def test_child_range_is_not_set_by_one_persons_extremes(panel):
    visits = panel["visits"]
    stats = compute_stats(panel_spec(levels=2), panel, dataset="panel").tables["visits"]
    # real data: person 3018 spent 35 nights in hospital in two years; by records they set the max
    by_person = np.sort(visits.groupby("id")["hospvis"].max().to_numpy())
    assert stats.columns["hospvis"].max == by_person[-RARE_THRESHOLD] == 28
    by_record = compute_stats(flat_spec("visit_id"), {"t": visits}, dataset="panel").tables["t"]
    assert by_record.columns["hospvis"].max == 30

    one = persons_with(visits, 5, 1)[0]
    visits = visits.copy()
    visits["seen"] = pd.to_datetime(visits["year"].astype(str) + "-07-01")
    visits.loc[visits["id"] == one, "hhninc"] = 1000.0 + np.arange(5)
    visits.loc[visits["id"] == one, "seen"] = pd.date_range("1900-01-01", periods=5)
    stats = compute_stats(panel_spec(levels=2), dict(panel, visits=visits), dataset="panel").tables["visits"]
    assert stats.columns["hhninc"].max < 1000 and max(stats.columns["hhninc"].quantiles) < 1000
    assert stats.columns["seen"].min == pd.Timestamp("1984-07-01").value
    by_record = compute_stats(flat_spec("visit_id"), {"t": visits}, dataset="panel").tables["t"]
    assert by_record.columns["hhninc"].max >= 1000 and by_record.columns["seen"].min < pd.Timestamp("1984").value


def test_root_with_unique_key_gets_the_stats_of_rows(rwm5yr):
    rows = rwm5yr.sample(3000, random_state=0).reset_index(drop=True)
    keyed = rows.assign(key=np.arange(len(rows)) * 7)
    by_row = compute_stats(flat_spec(), {"t": rows}, dataset="panel").tables["t"].columns
    by_key = compute_stats(flat_spec("key"), {"t": keyed}, dataset="panel").tables["t"].columns
    assert by_key == by_row


# restore_tables: fresh keys that keep the backend's links ------------------------------------------

@pytest.fixture(scope="module")
def small_panel(panel) -> dict[str, pd.DataFrame]:
    persons = panel["persons"].iloc[:400]
    visits = panel["visits"][panel["visits"]["id"].isin(persons["id"])]
    prescriptions = panel["prescriptions"]
    prescriptions = prescriptions[prescriptions["visit_id"].isin(visits["visit_id"]) | prescriptions["visit_id"].isna()]
    return {"persons": persons, "visits": visits.reset_index(drop=True),
            "prescriptions": prescriptions.reset_index(drop=True)}


@pytest.fixture(scope="module")
def small_stats(small_panel):
    return compute_stats(panel_spec(), small_panel, dataset="panel")


def backend_output(tables: dict[str, pd.DataFrame], seed: int = 0) -> dict[str, pd.DataFrame]:
    """What a backend might return: rows shuffled, keys of its own (unrelated to the source's)."""
    rng = np.random.default_rng(seed)
    out, renamed = {}, {}
    for name, pk in (("persons", "id"), ("visits", "visit_id"), ("prescriptions", "rx_id")):
        df = tables[name].sample(frac=1, random_state=seed).reset_index(drop=True)
        new = rng.permutation(len(df)) * 11 + 5
        renamed[name] = dict(zip(df[pk], new))
        out[name] = df.assign(**{pk: new})
    out["visits"]["id"] = out["visits"]["id"].map(renamed["persons"])
    out["prescriptions"]["visit_id"] = out["prescriptions"]["visit_id"].map(renamed["visits"])
    return out


def test_restore_tables_writes_fresh_keys_that_keep_the_links(small_panel, small_stats):
    raw = backend_output(small_panel)
    raw["prescriptions"] = raw["prescriptions"].drop(columns="rx_id")  # nothing refers to it: may be left out
    out = restore_tables(raw, small_stats, dataset="panel")
    for name, pk in (("persons", "id"), ("visits", "visit_id"), ("prescriptions", "rx_id")):
        assert out[name][pk].tolist() == list(range(1, len(raw[name]) + 1))
        assert {c: str(t) for c, t in out[name].dtypes.items()} == small_stats.tables[name].dtypes
        assert list(out[name].columns) == small_stats.tables[name].column_order
    # every child row still belongs to the parent row the backend gave it (rows come out in record order)
    joined = out["visits"].merge(out["persons"], on="id", how="left", validate="many_to_one")
    raw_joined = raw["visits"].merge(raw["persons"], on="id", how="left")
    assert joined["female"].notna().all()
    assert same_rows(joined[["year", "docvis", "hhninc", "female"]], raw_joined[["year", "docvis", "hhninc", "female"]])
    rx = out["prescriptions"].merge(out["visits"], on="visit_id", how="left")
    raw_rx = raw["prescriptions"].merge(raw["visits"], on="visit_id", how="left")
    assert same_rows(rx[["drug", "doses", "hhninc", "year"]], raw_rx[["drug", "doses", "hhninc", "year"]])
    assert out["prescriptions"]["visit_id"].isna().sum() == 300  # nulls stay null
    # records are grouped under their parents, in the parents' order
    assert out["visits"]["id"].is_monotonic_increasing
    assert out["prescriptions"]["visit_id"].dropna().is_monotonic_increasing


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """The same rows, in any order."""
    key = list(a.columns)
    return a.sort_values(key).reset_index(drop=True).equals(b.sort_values(key).reset_index(drop=True))


def test_records_come_out_ordered_by_order_by_under_each_parent(small_panel):
    spec = panel_spec(levels=2)
    spec = spec.model_copy(update={"tables": {**spec.tables, "visits": spec.tables["visits"].model_copy(
        update={"order_by": ["year"]})}})
    stats = compute_stats(spec, small_panel, dataset="panel")
    assert stats.tables["visits"].order_by == ["year"]
    raw = backend_output(small_panel)  # shuffled: years in no order
    out = restore_tables({"persons": raw["persons"], "visits": raw["visits"]}, stats, dataset="panel")
    visits = out["visits"]
    assert visits["id"].is_monotonic_increasing
    assert visits.groupby("id")["year"].apply(lambda y: y.is_monotonic_increasing).all()
    assert visits["visit_id"].tolist() == list(range(1, len(visits) + 1))  # fresh keys in record order


def test_restore_tables_keeps_null_foreign_keys_in_nullable_ints(small_panel, small_stats):
    raw = backend_output(small_panel)
    raw["visits"]["id"] = raw["visits"]["id"].astype(float)
    raw["visits"].loc[[0, 5], "id"] = np.nan
    out = restore_tables(raw, small_stats, dataset="panel")
    assert small_stats.tables["visits"].dtypes["id"] == "int64"
    assert str(out["visits"]["id"].dtype) == "Int64"
    # records without a parent come last, after every parent's records
    assert out["visits"]["id"].isna().sum() == 2 and out["visits"]["id"].iloc[-2:].isna().all()
    assert out["visits"]["id"].dropna().isin(out["persons"]["id"]).all()


def test_restore_tables_writes_text_keys_for_text_sources(small_panel):
    tables = {name: df.copy() for name, df in small_panel.items()}
    tables["persons"]["id"] = "P" + tables["persons"]["id"].astype(str)
    tables["visits"]["id"] = "P" + tables["visits"]["id"].astype(str)
    stats = compute_stats(panel_spec(levels=2), tables, dataset="panel")
    raw = {"persons": tables["persons"].assign(id=np.arange(len(tables["persons"]))[::-1]),
           "visits": tables["visits"].drop(columns="visit_id")}
    raw["visits"]["id"] = raw["visits"]["id"].map(dict(zip(tables["persons"]["id"], raw["persons"]["id"])))
    out = restore_tables(raw, stats, dataset="panel")
    assert out["persons"]["id"].iloc[0] == "s001" and out["persons"]["id"].dtype == object
    assert out["visits"]["id"].str.fullmatch(r"s\d{3}").all()
    joined = out["visits"].merge(out["persons"], on="id", how="left")
    assert joined["female"].equals(raw["visits"].merge(raw["persons"], on="id", how="left")["female"])


def test_restore_tables_refuses_duplicate_backend_keys(small_panel, small_stats):
    raw = backend_output(small_panel)
    raw["persons"].loc[1, "id"] = raw["persons"].loc[0, "id"]
    with pytest.raises(SynthError, match="table 'persons', column 'id'.*not unique.*backend") as err:
        restore_tables(raw, small_stats, dataset="panel")
    assert err.value.dataset == "panel"


def test_restore_tables_refuses_a_referenced_table_without_its_keys(small_panel, small_stats):
    raw = backend_output(small_panel)
    raw["visits"] = raw["visits"].drop(columns="visit_id")
    with pytest.raises(SynthError, match="table 'visits', column 'visit_id'.*no primary key column.*backend"):
        restore_tables(raw, small_stats, dataset="panel")


def test_restore_tables_refuses_foreign_keys_without_a_parent(small_panel, small_stats):
    raw = backend_output(small_panel)
    raw["visits"].loc[[3, 4, 7], "id"] = -1
    with pytest.raises(SynthError, match=rf"table 'visits', column 'id': 3 of {len(raw['visits'])} rows .* "
                                         r"no generated row of table 'persons'.*backend"):
        restore_tables(raw, small_stats, dataset="panel")


def toy_panel_project(folder, monkeypatch, persons: pd.DataFrame, visits: pd.DataFrame, visits_yaml: str,
                      generate_yaml: str):
    """A project of persons and their visits for the toy backend; `visits_yaml` adds to the visits' declaration."""
    from synth_assets.testing import write_project

    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    persons.to_parquet(folder / "persons.parquet")
    visits.to_parquet(folder / "visits.parquet")
    return write_project(folder, f"""
        datasets:
          panel:
            backend: marginals
            tables:
              persons: {{source: persons.parquet, primary_key: id}}
              visits: {{source: visits.parquet, foreign_keys: [{{column: id, references: persons}}], {visits_yaml}}}
            generate: {generate_yaml}
        """)


@pytest.mark.slow
def test_a_two_table_panel_materializes_through_dagster_with_fresh_keys(toy_plugin, panel, tmp_path, monkeypatch):
    """The real panel, persons -> yearly records, through the asset graph: a backend's own keys become fresh
    ones, every record belongs to a generated person, and the blocking checks pass."""
    import dagster as dg

    from synth_assets.definitions import build_definitions

    root = toy_panel_project(tmp_path, monkeypatch, panel["persons"], panel["visits"], "primary_key: visit_id",
                             "{sample_size: 800, seed: 3}")
    result = build_definitions(root).resolve_job_def("synthesize_panel").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "checkpoint_is_sound": True, "schema_matches_source": True, "privacy_gate": True}
    persons = read_parquet(tmp_path / ".synth" / "panel" / "synthetic" / "CURRENT" / "persons.parquet")
    visits = read_parquet(tmp_path / ".synth" / "panel" / "synthetic" / "CURRENT" / "visits.parquet")
    assert persons.id.tolist() == list(range(1, 801))
    assert visits.id.isin(persons.id).all() and visits.visit_id.tolist() == list(range(1, len(visits) + 1))
    per_person = visits.groupby("id").size()
    assert per_person.max() <= 5 and 2.5 < len(visits) / 800 < 3.9  # 1 to 5 records, 3.2 on average in the source


def test_sequence_lengths_count_parents_and_hide_the_longest_histories(panel):
    stats = compute_stats(panel_spec(levels=2), panel, dataset="panel").tables
    lengths = stats["visits"].sequence_lengths
    per_person = panel["visits"]["id"].value_counts()
    assert set(lengths) == {1, 2, 3, 4, 5} and abs(sum(lengths.values()) - 1) < 1e-9
    assert lengths[5] == pytest.approx((per_person == 5).mean())  # each of 6,127 persons counts once
    assert stats["persons"].sequence_lengths is None  # a root has no parent
    # one person with a history far longer than anyone's: it counts as the longest that 5 persons reach
    persons = pd.DataFrame({"id": range(100)})
    visits = pd.DataFrame({"id": [0] * 40 + [p for p in range(1, 100) for _ in range(1 + p % 3)]})
    from synth_assets.stages.stats import sequence_lengths

    assert max(sequence_lengths(visits["id"], persons["id"])) == 3


def test_bad_links_fail_before_training_naming_table_and_column(tmp_path):
    from synth_assets.project import parse_project
    from synth_assets.errors import ConfigError
    from synth_assets.tables import check_keys

    body = {"datasets": {"d": {"tables": {
        "persons": {"source": "p.csv", "primary_key": "id", "order_by": "year"},
        "visits": {"source": "v.csv", "foreign_keys": [{"column": "id", "references": "persons"}]}}}}}
    with pytest.raises(ConfigError, match="table 'persons': order_by orders records under a parent"):
        parse_project(body)
    del body["datasets"]["d"]["tables"]["persons"]["order_by"]
    body["datasets"]["d"]["tables"]["visits"]["order_by"] = "year"  # one column, or a list of them
    spec = parse_project(body).datasets["d"]
    assert spec.tables["visits"].order_by == ["year"]
    persons = pd.DataFrame({"id": [1, 2, 3]})
    with pytest.raises(SynthError, match="table 'visits', column 'year': order_by column not in the source"):
        check_keys(spec, {"persons": persons, "visits": pd.DataFrame({"id": [1, 2]})}, dataset="d")
    orphans = pd.DataFrame({"id": [1, 7, 7, 9, 11, 12], "year": 2000})
    with pytest.raises(SynthError, match=r"column 'id': 5 rows refer to keys missing from table 'persons' "
                                         r"\(e.g. 7, 9, 11\)"):
        check_keys(spec, {"persons": persons, "visits": orphans}, dataset="d")


@pytest.mark.slow
def test_sequence_quality_sees_what_per_table_scores_cannot(toy_plugin, panel, tmp_path, monkeypatch):
    """The toy backend draws family sizes from the stats but every record on its own: lengths match, while
    coherence (a person's record against their next one) falls well below the holdout's."""
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    root = toy_panel_project(tmp_path, monkeypatch, panel["persons"], panel["visits"].drop(columns="visit_id"), "order_by: year",
                             "{seed: 3}")
    pipeline = DatasetPipeline(load_project(root), "panel")
    results = pipeline.run_all()
    assert results["persons"].sequence is None
    seq = results["visits"].sequence
    assert seq.parent == "persons" and seq.parents_compared > 1000
    assert seq.length_accuracy > 0.95 and abs(seq.mean_length - seq.training_mean_length) < 0.2
    assert seq.holdout_coherence > 0.95 and seq.coherence < seq.holdout_coherence - 0.1
    assert 0.5 < seq.parent_child_accuracy <= seq.holdout_parent_child_accuracy + 0.02
    # records drawn on their own repeat a person's year, which no real person does
    assert seq.training_repeated_order_share == 0 and seq.repeated_order_share > 0.05
    report = pipeline.report_path().read_text()
    assert "| visits | persons |" in report and f"{seq.repeated_order_share:.3f} (0.000) |" in report
