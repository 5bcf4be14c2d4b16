"""Large samples in parts: each part its own step and seed, joined with keys that stay unique and resolve."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets.audit import audit_synthetic, key_problems, schema_problems
from synth_assets.project import load_project
from synth_assets.parts import joined_schema, plan_parts, subjects_per_part
from synth_assets.pipeline import DatasetPipeline
from synth_assets.testing import contract_table, contract_tree


def test_parts_cover_the_sample_each_with_a_seed_of_its_own():
    parts = plan_parts(1003, 250, seed=5)
    assert [p.rows for p in parts] == [201, 201, 201, 200, 200]
    assert [p.first_seed_row for p in parts] == [0, 201, 402, 603, 803]
    assert len({p.seed for p in parts}) == 5
    assert plan_parts(1003, 250, seed=5) == parts  # one seed, one plan
    assert plan_parts(1003, 250, seed=6)[0].seed != parts[0].seed
    # without a seed the parts still differ from each other
    assert len({p.seed for p in plan_parts(1003, 250, seed=None)}) == 5
    # a sample that fits one part is generated as asked, its seed untouched
    (single,) = plan_parts(250, 250, seed=5)
    assert single.rows is None and single.seed == 5


def test_joined_schema_holds_a_column_that_is_null_in_one_part_and_nullable_in_another(tmp_path):
    pd.DataFrame({"n": pd.array([1, 2], dtype="Int64"), "t": [None, None]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"n": pd.array([3, None], dtype="Int64"), "t": ["x", None]}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"n": np.array([4, 5]), "t": ["y", "z"]}).to_parquet(tmp_path / "c.parquet")
    schema = joined_schema([tmp_path / f"{p}.parquet" for p in "cab"])
    assert str(schema.field("t").type) == "string"
    back = schema.empty_table().to_pandas()
    assert str(back["n"].dtype) == "Int64"  # part c alone would have said int64


def tree_project(folder: Path, parts_rows: int, sample_size: int) -> DatasetPipeline:
    persons, visits = contract_tree(300)
    # text keys, so the joined keys must be as wide as the whole sample's count needs
    persons["person_id"] = "p" + persons["person_id"].astype(str)
    visits["person_id"] = "p" + visits["person_id"].astype(str)
    persons.to_parquet(folder / "persons.parquet")
    visits.drop(columns="visit_id").to_parquet(folder / "visits.parquet")
    (folder / "synth.yaml").write_text(f"""
datasets:
  clinic:
    tables:
      persons: {{source: persons.parquet, primary_key: person_id}}
      visits: {{source: visits.parquet, foreign_keys: [{{column: person_id, references: persons}}], order_by: day}}
    train: {{max_training_time: 0.1, max_epochs: 3}}
    generate: {{sample_size: {sample_size}, seed: 4}}
    parts: {{rows: {parts_rows}}}
    quality: {{max_dcr_share: 1.0}}
""")
    pipeline = DatasetPipeline(load_project(folder), "clinic")
    pipeline.split()
    pipeline.stats()
    pipeline.encode()
    pipeline.train()
    return pipeline


def test_a_tree_generated_in_parts_has_unique_keys_that_resolve_and_ordered_records(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    pipeline = tree_project(tmp_path, parts_rows=320, sample_size=1050)
    generated = pipeline.generate(device="cpu")
    tables, stats = generated.tables, pipeline.load_stats()
    # a part holds parts.rows rows of both tables: a person counts with their visits (about 2 a person), so that
    # a part's memory is bounded whatever the length of the histories
    per_part = subjects_per_part(stats, "persons", 320)
    assert per_part == 320 // ((stats.tables["persons"].rows + stats.tables["visits"].rows) / stats.tables["persons"].rows)
    assert 80 <= per_part <= 120 and generated.parts == math.ceil(1050 / per_part) and generated.rows["persons"] == 1050
    assert sum(generated.rows.values()) / generated.parts < 320 * 1.15
    persons, visits = tables["persons"], tables["visits"]
    assert persons["person_id"].tolist() == [f"s{i:04d}" for i in range(1, 1051)]  # one numbering, one width
    assert key_problems(tables, stats) == {"persons": [], "visits": []}
    assert all(schema_problems(tables[t], stats.tables[t]) == [] for t in tables)
    # every person's records together, in the persons' order, each ordered by day
    position = pd.Index(persons["person_id"]).get_indexer(visits["person_id"])
    assert (np.diff(position) >= 0).all()
    same = position[1:] == position[:-1]
    assert (visits["day"].diff().iloc[1:][same] >= pd.Timedelta(0)).all()
    # no part repeats another: each drew with its own seed
    size = 1050 // generated.parts  # the parts' sizes differ by one at most
    first, second = (persons.iloc[i * size:(i + 1) * size].drop(columns="person_id").reset_index(drop=True)
                     for i in (0, 1))
    assert not first.equals(second)
    # the parts' folder is gone once they are joined
    assert not any((pipeline.paths.root / "synthetic" / ".parts").iterdir())
    # one seed, one sample, parts and all
    again = pipeline.generate(device="cpu", publish=False)
    for table in tables:
        pd.testing.assert_frame_equal(again.tables[table], tables[table])


def shop_project(folder: Path, keys: str) -> None:
    """A one-table project (production-like dtypes: booleans, Int64 and categories with nulls), seconds of
    training, and the dataset `keys` given."""
    contract_table(600).to_parquet(folder / "shop.parquet")
    (folder / "synth.yaml").write_text("datasets:\n  shop:\n    tables: {shop: {source: shop.parquet}}\n"
                                       f"    train: {{max_training_time: 0.1, max_epochs: 3}}\n    {keys}\n")


def test_seed_rows_are_shared_out_among_the_parts_in_order(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    shop_project(tmp_path, "parts: {rows: 200}\n    quality: {max_dcr_share: 1.0, max_rows: 100}")
    pipeline = DatasetPipeline(load_project(tmp_path), "shop")
    pipeline.split(), pipeline.stats(), pipeline.encode(), pipeline.train()
    seed = pd.DataFrame({"region": pd.Categorical(np.random.default_rng(2).choice(["north", "west"], 450)),
                         "member": np.arange(450) % 3 == 0})
    generated = pipeline.generate(device="cpu", seed_data=seed)
    assert generated.parts == 3
    out = generated.tables["shop"]
    assert out["region"].astype(str).tolist() == seed["region"].astype(str).tolist()
    assert out["member"].tolist() == seed["member"].tolist()
    # the gate reads only the rows the DCR share judges (max_rows of them), and finds the report's figure
    gate = {c.name: c.metadata for c in audit_synthetic(pipeline, generated.version)}
    results, _ = pipeline.quality()
    assert gate["privacy_gate"]["shop/dcr_share"] == round(results["shop"].dcr_share, 4)

# `dg launch` with parts as parallel steps: tests/test_object_store.py (into S3, every stage)
