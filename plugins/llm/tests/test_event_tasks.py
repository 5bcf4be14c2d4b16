"""The event tasks: rel_event writes subjects with one history across several event tables, in time order, within
the limits a generation asks for; rel_event_predict continues given histories. From Python, and through
`dg launch` with the blocking checks on."""

import numpy as np
import pandas as pd
import pytest
import yaml

from synth_assets.files import read_parquet
from synth_assets.plugin_api import SynthError
from synth_assets.testing import dg_launch
from synth_llm.api import RelEvent, RelEventPredict, RelSynth
from synth_llm.options import LLMGenerateOptions

FAST = {"max_training_time": 0.25, "max_epochs": 200, "model_size": "tiny"}
LINKS = {"customers": {"primary_key": "customer_id"},
         "visits": {"order_by": "at", "foreign_keys": [{"column": "customer_id", "references": "customers"}]},
         "orders": {"primary_key": "order_id", "order_by": "at",
                    "foreign_keys": [{"column": "customer_id", "references": "customers"}]}}


def event_tree(n: int = 400, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Customers (a category, a boolean, ages with nulls) and two event tables: visits (1-4 each, a few days
    apart) and the orders some visits lead to (rounded amounts, a boolean)."""
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame({
        "customer_id": np.arange(5000, 5000 + n),
        "segment": rng.choice(["retail", "business", "public"], n, p=[0.6, 0.3, 0.1]),
        "vip": rng.random(n) < 0.2,
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, n).astype(float)),
    })
    visits, orders = [], []
    for customer in customers.customer_id:
        day = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        for _ in range(int(rng.integers(1, 5))):
            day += pd.Timedelta(days=int(rng.integers(0, 10)))
            visits.append({"customer_id": customer, "at": day, "channel": rng.choice(["web", "shop"]),
                           "minutes": round(float(rng.gamma(2, 5)), 1)})
            if rng.random() < 0.5:
                orders.append({"customer_id": customer, "at": day + pd.Timedelta(days=int(rng.integers(0, 3))),
                               "amount": round(float(rng.gamma(2, 30)), 2), "returned": bool(rng.random() < 0.1)})
    orders = pd.DataFrame(orders)
    orders.insert(0, "order_id", np.arange(len(orders)))
    return {"customers": customers, "visits": pd.DataFrame(visits), "orders": orders}


def events_per_subject(out: dict[str, pd.DataFrame]) -> pd.Series:
    customers = out["customers"].customer_id
    counts = sum(out[t].groupby("customer_id").size().reindex(customers, fill_value=0) for t in ("visits", "orders"))
    return counts


@pytest.fixture(scope="module")
def event_model(tmp_path_factory):
    return RelEvent(tables=LINKS, workspace=tmp_path_factory.mktemp("events"), **FAST).fit(event_tree())


@pytest.fixture(scope="module")
def predict_model(tmp_path_factory):
    return RelEventPredict(tables=LINKS, workspace=tmp_path_factory.mktemp("future"), **FAST).fit(event_tree())


def test_rel_event_writes_subjects_with_events_of_both_tables_in_time_order_all_valid_first_try(event_model):
    pipeline = event_model.pipeline
    generated = pipeline.generate(pipeline.spec.generate.model_copy(update={"sample_size": 80, "seed": 2}),
                                  publish=False)
    assert generated.report["valid_share_first_try"] == 1.0  # order and range are the grammar's, not luck's
    out = event_model.generate(sample_size=80, seed=2)
    visits, orders, customers = out["visits"], out["orders"], out["customers"]
    assert len(customers) == 80 and len(visits) > 80 and len(orders) > 10
    assert visits.customer_id.isin(customers.customer_id).all() and orders.customer_id.isin(customers.customer_id).all()
    assert orders.order_id.is_unique
    for table in (visits, orders):
        assert table.groupby("customer_id", sort=False)["at"].apply(lambda s: s.is_monotonic_increasing).all()
        assert table["at"].between(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-30")).all()
    assert {c: str(t) for c, t in orders.dtypes.items()} == {
        "order_id": "int64", "customer_id": "int64", "at": "datetime64[ns]", "amount": "float64", "returned": "bool"}
    assert set(visits.channel) <= {"web", "shop"}


def test_min_max_and_forbidden_events_are_honoured(event_model):
    out = event_model.generate(sample_size=60, seed=3, min_n_events=2, max_n_events=3)
    assert events_per_subject(out).between(2, 3).all()
    only_visits = event_model.generate(sample_size=60, seed=3, min_n_events=1, forbidden_events=["orders"])
    assert len(only_visits["orders"]) == 0 and events_per_subject(only_visits).min() >= 1


def test_a_written_history_that_runs_past_the_data_moves_earlier_and_a_prediction_is_cut(event_model):
    from synth_llm.events import EventLayout
    from synth_llm.samples import Tree

    tree = Tree.of(event_model.pipeline.load_stats())
    layout = EventLayout.of(tree, None)
    last = pd.Timestamp(layout.last("visits"), unit="ns").normalize()
    start = (last - pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    visit = {"channel": "web", "minutes": 5.0}
    sample = {"_start": start, "_events": [{"visits": {"_gap": 0, **visit}}, {"visits": {"_gap": 4, **visit}},
                                           {"visits": {"_gap": 2, **visit}}]}
    moved, outside = layout.from_events(sample, movable=True)
    days = pd.to_datetime([r["at"] for r in moved["visits"]])
    assert outside == 0 and len(days) == 3 and days.max() == last  # moved back 3 days, its gaps kept
    assert list(np.diff(days).astype("timedelta64[D]").astype(int)) == [4, 2]
    cut, outside = layout.from_events(sample)  # a prediction's history is real: what runs past is left out
    assert outside == 2 and len(cut["visits"]) == 1


def test_event_options_that_cannot_be_honoured_are_clear_errors(event_model, tmp_path):
    with pytest.raises(SynthError, match="payments.*forbidden_events names no event table"):
        event_model.generate(sample_size=5, forbidden_events=["payments"])
    with pytest.raises(SynthError, match="min_n_events .4. is more than max_n_events .2."):
        event_model.generate(sample_size=5, min_n_events=4, max_n_events=2)
    with pytest.raises(SynthError, match="forbids every event table"):
        event_model.generate(sample_size=5, min_n_events=1, forbidden_events=["orders", "visits"])
    pipeline = event_model.pipeline
    with pytest.raises(SynthError, match="rel_event writes whole samples"):  # seed data: rel_event_predict's
        pipeline.generate_frames(LLMGenerateOptions(), seed_data=event_tree(5)["customers"].drop(columns="customer_id"))
    tables = event_tree(60)
    synth = RelSynth(tables=LINKS, workspace=tmp_path / "synth", **{**FAST, "max_training_time": 0.02}).fit(tables)
    with pytest.raises(SynthError, match="generate.min_n_events: is for the tasks rel_event and rel_event_predict"):
        synth.generate(sample_size=5, min_n_events=1)
    with pytest.raises(SynthError, match="generate.n_future: is for the task rel_event_predict"):
        event_model.generate(sample_size=5, n_future=2)
    unordered = {**LINKS, "visits": {k: v for k, v in LINKS["visits"].items() if k != "order_by"},
                 "orders": {k: v for k, v in LINKS["orders"].items() if k != "order_by"}}
    with pytest.raises(SynthError, match="need event tables.*order_by"):
        RelEvent(tables=unordered, workspace=tmp_path / "unordered", **FAST).fit(tables)
    with pytest.raises(SynthError, match="payments.*event_tables names no child table of the root"):
        RelEvent(tables=LINKS, workspace=tmp_path / "named", event_tables=["payments"], **FAST).fit(tables)
    clashing = {**tables, "visits": tables["visits"].rename(columns={"minutes": "_gap"})}
    with pytest.raises(SynthError, match="visits.*_gap.*a column is named '_gap'"):
        RelEvent(tables=LINKS, workspace=tmp_path / "clash", **FAST).fit(clashing)


def test_predictions_continue_the_holdouts_first_events(predict_model):
    out = predict_model.predict(n_events=1, n_future=2, n_pred=2, seed=1)
    holdout = 80  # 20% of the 400 customers
    assert len(out["customers"]) == 2 * holdout  # two continuations per subject, each its own row
    assert events_per_subject(out).le(3).all()  # one given and two written, less any past the data's end
    # each continuation starts from the same first event: both draws of a subject hold it
    firsts = []
    for table in ("visits", "orders"):
        firsts.append(out[table].groupby("customer_id")["at"].min().rename(table))
    first = pd.concat(firsts, axis=1).min(axis=1).reindex(out["customers"].customer_id).to_numpy()
    assert (first[0::2] == first[1::2]).mean() > 0.95


def test_predictions_from_given_histories_keep_them_and_write_only_later_events(predict_model):
    tables = event_tree(30, seed=7)
    ids = tables["customers"].customer_id.head(8)
    given = {name: (df[df.customer_id.isin(ids)]) for name, df in tables.items()}
    out = predict_model.predict(given, n_future=2, seed=4)
    history = predict_model.predict(given, n_future=0, seed=4)  # the given histories alone, as protected
    future = predict_model.predict(given, n_future=2, only_future=True, seed=4)
    assert len(out["customers"]) == len(history["customers"]) == 8
    assert out["customers"].segment.tolist() == given["customers"].segment.tolist()
    for table in ("visits", "orders"):
        kept = history[table].drop(columns=["order_id"], errors="ignore")
        written = out[table].drop(columns=["order_id"], errors="ignore")
        merged = written.merge(kept, how="inner")
        assert len(merged) == len(kept)  # every given event comes out as given
    last_given = pd.concat([history[t].groupby("customer_id")["at"].max() for t in ("visits", "orders")], axis=1).max(axis=1)
    for table in ("visits", "orders"):
        later = future[table]
        assert (later["at"].to_numpy() >= last_given.reindex(later.customer_id).to_numpy()).all()
    assert (events_per_subject(future) <= 2).all()


def test_rel_event_trains_with_differential_privacy_within_its_budget(tmp_path):
    # enough customers, and enough of ε for the stats, for DP's noise to let each column's range through: with the
    # default 1.0 of value protection shared by 13 columns, no range of the orders' amounts (one per customer with
    # orders, about 600 in training) stood out of the noise in 23 of 300 draws of the stats, and in none of 300 with 2.0
    model = RelEvent(tables=LINKS, workspace=tmp_path, **{**FAST, "max_training_time": 0.05},
                     differential_privacy={"max_epsilon": 8.0, "value_protection_epsilon": 2.0}).fit(event_tree(1000))
    privacy = model.training.privacy
    assert 0 < privacy["epsilon"] <= 8.0 and privacy["steps"] >= 1
    out = model.generate(sample_size=30, seed=1)
    for table in ("visits", "orders"):
        assert out[table].groupby("customer_id")["at"].apply(lambda s: s.is_monotonic_increasing).all()


def test_generate_options_for_another_task_are_named_when_the_project_loads(tmp_path):
    from synth_assets.project import load_project

    tables = {name: {"source": f"{name}.parquet", **links} for name, links in LINKS.items()}
    datasets = {"shop": {"backend": "llm", "tables": tables, "train": {"task": "rel_synth"},
                         "generate": {"min_n_events": 2, "forbidden_events": ["orders"]}},
                "shop_events": {"backend": "llm", "tables": tables, "train": {"task": "rel_event"},
                                "generate": {"n_future": 3}}}
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump({"datasets": datasets}, sort_keys=False))
    with pytest.raises(Exception) as raised:
        load_project(tmp_path)
    message = str(raised.value)
    assert "datasets.shop.generate.min_n_events: is for the tasks rel_event and rel_event_predict" in message
    assert "datasets.shop.generate.forbidden_events: is for the tasks" in message
    assert "datasets.shop_events.generate.n_future: is for the task rel_event_predict" in message


# through dg launch ---------------------------------------------------------------------------------
@pytest.mark.e2e
def test_event_synthesis_and_event_prediction_materialize_through_dg_launch_with_the_checks_on(tmp_path):
    for name, frame in event_tree().items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    tables = {name: {"source": f"{name}.parquet", **links} for name, links in LINKS.items()}
    brief = {**FAST, "max_training_time": 0.15}  # what is checked here holds by the schema, not by training
    datasets = {
        "shop_events": {"backend": "llm", "tables": tables, "train": {**brief, "task": "rel_event"},
                        "generate": {"sample_size": 100, "seed": 1, "max_n_events": 6},
                        "quality": {"max_dcr_share": 0.7, "max_dcr_excess": None}},
        # the futures of the holdout's customers: their histories are real, so the privacy gate is the user's
        "shop_futures": {"backend": "llm", "tables": tables, "train": {**brief, "task": "rel_event_predict"},
                         "generate": {"seed": 1, "n_events": 1, "n_future": 2, "only_future": True},
                         "quality": {"max_dcr_share": 0.95, "max_dcr_excess": None, "max_membership_auc": None,
                                     "max_copy_excess": None}},
    }
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump({"datasets": datasets}, sort_keys=False))
    dg_launch(tmp_path, "--assets", "*").assert_passed(*((check, f"{dataset}/synthetic") for dataset in datasets
                                                         for check in ("schema_matches_source", "privacy_gate")))
    store = tmp_path / "store"
    events = {t: read_parquet(store / "shop_events" / "synthetic" / "CURRENT" / f"{t}.parquet") for t in LINKS}
    assert len(events["customers"]) == 100 and events_per_subject(events).le(6).all()
    futures = {t: read_parquet(store / "shop_futures" / "synthetic" / "CURRENT" / f"{t}.parquet") for t in LINKS}
    assert len(futures["customers"]) == 80 and events_per_subject(futures).le(2).all()
    source = event_tree()
    for table in LINKS:  # the futures' tables keep the source's dtypes
        assert futures[table].dtypes.to_dict() == source[table].dtypes.to_dict()
