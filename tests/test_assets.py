"""The asset graph end to end, in process, as the UI would run it."""

import shutil

import dagster as dg
import pandas as pd
import pytest

from synth_assets.testing import materialize, survey_table, write_project
from synth_assets.definitions import build_definitions
from synth_assets.files import read_parquet


STAGES = ["split", "stats", "encoded", "model", "synthetic", "quality"]


def run_job(defs, name, **kwargs):
    return defs.resolve_job_def(f"synthesize_{name}").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, **kwargs)


def run_stages(root, *stages, run_config=None):
    """Materialize only `stages` of gems (the others are on disk already), as a user selecting them in the UI."""
    return materialize(root, dg.AssetSelection.assets(*(["gems", s] for s in stages)), run_config)


def test_every_stage_is_an_asset_with_lineage(small_project):
    defs = build_definitions(small_project)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {f"gems/{s}" for s in STAGES} | {"gems/source/gems"}  # the source file, observed
    for upstream, downstream in zip(STAGES, STAGES[1:]):
        parents = graph.get(dg.AssetKey(["gems", downstream])).parent_keys
        assert parents == {dg.AssetKey(["gems", upstream])}
    model = defs.resolve_assets_def(dg.AssetKey(["gems", "model"]))
    assert model.group_names_by_key[dg.AssetKey(["gems", "model"])] == "gems"
    assert "pytorch" in model.specs_by_key[dg.AssetKey(["gems", "model"])].kinds
    assert model.node_def.pool == "gpu"  # training waits for the gpu pool


@pytest.mark.slow
def test_materializing_the_group_writes_tables_report_and_metadata(gems_run, diamonds_small):
    folder, result = gems_run  # small_project, materialized with the checks on
    assert result.success, result.all_events
    home = folder / ".synth" / "gems"
    synthetic = read_parquet(home / "synthetic" / "CURRENT" / "gems.parquet")
    assert len(synthetic) == 1000  # sample_size from synth.yaml
    assert list(synthetic.columns) == list(diamonds_small.columns)
    assert synthetic.dtypes.astype(str).tolist() == diamonds_small.dtypes.astype(str).tolist()
    assert (home / "quality" / "report.md").read_text().startswith("# Quality report: gems")
    assert (home / "model" / "CURRENT" / "weights.safetensors").is_file()

    materializations = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    meta = {m.asset_key.to_user_string(): m.metadata for m in materializations}
    assert meta["gems/split"]["dagster/row_count"].value == 2400
    assert meta["gems/synthetic"]["dagster/row_count"].value == 1000
    schema = meta["gems/synthetic"]["dagster/column_schema"].schema
    assert [c.name for c in schema.columns] == list(diamonds_small.columns)
    assert "| carat |" in meta["gems/stats"]["gems/columns"].value
    assert "validation loss" in meta["gems/model"]["loss_curve"].value
    # what the backend chose (TabularARGN's choices are tested under its plugin), shown so a user can override it
    assert meta["gems/model"]["settings"].value["batch_size"] >= 1
    assert 0.5 < meta["gems/quality"]["accuracy"].value <= 1.0
    assert 0.35 < meta["gems/quality"]["dcr_share"].value < 0.6  # neither copies nor an outlier: what the gate let by
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"checkpoint_is_sound": True, "schema_matches_source": True, "privacy_gate": True}
    # charts: files beside the report, linked from it, and inlined in the UI's metadata
    report = (home / "quality" / "report.md").read_text()
    for chart in ("distributions", "correlations", "accuracy"):
        assert (home / "quality" / f"gems_{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![gems: {chart}](gems_{chart}.png)" in report
        assert meta["gems/quality"][f"gems/{chart}"].value.startswith(f"![{chart}](data:image/png;base64,")
        # the report in the UI carries the images themselves: a browser cannot follow the file's relative links
        assert f"![gems: {chart}](data:image/png;base64," in meta["gems/quality"]["report"].value
    assert (home / "model" / "CURRENT" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert meta["gems/model"]["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
    # the draw rate apart from the fixed costs (imports, loading the model, restoring dtypes, writing)
    drawn = meta["gems/synthetic"]
    assert drawn["draw_seconds"].value + drawn["overhead_seconds"].value == pytest.approx(
        drawn["generation_seconds"].value, abs=0.002)
    assert drawn["rows_per_second"].value >= drawn["end_to_end_rows_per_second"].value > 0


def test_launchpad_config_overrides_generation(materialized_project):
    config = {"ops": {"gems__synthetic": {"config": {"sample_size": 123, "seed": 3, "sampling_temperature": 0.8}}}}
    assert run_stages(materialized_project, "synthetic", run_config=config).success
    assert len(read_parquet(materialized_project / ".synth" / "gems" / "synthetic" / "CURRENT" / "gems.parquet")) == 123


def test_launchpad_config_overrides_training(materialized_project):
    import json

    config = {"ops": {"gems__model": {"config": {"max_epochs": 2, "model_size": "small", "dropout": 0.3}}}}
    result = run_stages(materialized_project, "model", run_config=config)
    assert result.success
    epochs = result.asset_materializations_for_node("gems__model")[0].metadata["epochs"].value
    assert epochs == 2  # synth.yaml says 8
    saved = json.loads((materialized_project / ".synth" / "gems" / "model" / "CURRENT" / "config.json").read_text())
    assert saved["model_size"] == "small"


def test_blocking_dcr_check_fails_the_run(materialized_project):
    yaml = (materialized_project / "synth.yaml").read_text() + "    quality: {max_dcr_share: 0.01}\n"
    (materialized_project / "synth.yaml").write_text(yaml)
    result = run_stages(materialized_project, "synthetic", "quality")
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["privacy_gate"] is False


def test_bad_input_fails_with_a_clear_message_and_keeps_earlier_outputs(materialized_project, diamonds_small):
    synthetic = materialized_project / ".synth" / "gems" / "synthetic" / "CURRENT" / "gems.parquet"
    before = synthetic.read_bytes()
    # the source changes: the declared primary key now has duplicates
    bad = diamonds_small.assign(gem_id=[1, 1] + list(range(2, len(diamonds_small))))
    bad.to_csv(materialized_project / "gems.csv", index=False)
    text = (materialized_project / "synth.yaml").read_text().replace("{source: gems.csv}", "{source: gems.csv, primary_key: gem_id}")
    (materialized_project / "synth.yaml").write_text(text)
    result = run_job(build_definitions(materialized_project), "gems")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "table 'gems'" in message and "column 'gem_id'" in message and "not unique" in message
    assert synthetic.read_bytes() == before  # nothing already written is lost
    assert not [p for p in (materialized_project / ".synth" / "gems").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_second_dataset_via_synth_config_is_its_own_group(small_project, tmp_path, monkeypatch, diamonds_small):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(small_project / "gems.csv", other / "gems.csv")
    text = (small_project / "synth.yaml").read_text() + """
  gems_copy:
    backend: tabular_argn
    tables:
      stones: {source: gems.csv}
    train: {max_training_time: 5, max_epochs: 2, model_size: small}
    generate: {sample_size: 200, seed: 1}
"""
    (other / "synth.yaml").write_text(text)
    monkeypatch.setenv("SYNTH_CONFIG", str(other / "synth.yaml"))
    defs = build_definitions(small_project)
    groups = {defs.resolve_assets_def(k).group_names_by_key[k] for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert groups == {"gems", "gems_copy"}
    assert run_job(defs, "gems_copy").success
    assert len(read_parquet(small_project / ".synth" / "gems_copy" / "synthetic" / "CURRENT" / "stones.parquet")) == 200


def test_schedule_is_declared_from_the_project_file(small_project):
    text = (small_project / "synth.yaml").read_text() + '    schedule: "0 3 * * *"\n'
    (small_project / "synth.yaml").write_text(text)
    schedule = build_definitions(small_project).resolve_schedule_def("regenerate_gems")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == "resample_gems"


def test_generation_options_from_synth_yaml(materialized_project):
    seed = pd.DataFrame({"cut": ["Fair"] * 40 + ["Ideal"] * 40, "depth": [None] * 10 + [61.0] * 70})
    seed.to_csv(materialized_project / "seed.csv", index=False)
    text = (materialized_project / "synth.yaml").read_text().replace(
        "generate: {sample_size: 1000, seed: 7}",
        "generate: {seed: 7, seed_data: seed.csv, imputation: {columns: [depth]}, sampling_temperature: 0.9}")
    (materialized_project / "synth.yaml").write_text(text)
    assert run_stages(materialized_project, "synthetic").success
    out = read_parquet(materialized_project / ".synth" / "gems" / "synthetic" / "CURRENT" / "gems.parquet")
    assert len(out) == 80 and out.cut.tolist() == seed.cut.tolist()
    assert out.depth.notna().all() and (out.depth[10:] == 61.0).all()


def test_launchpad_rebalancing(materialized_project):
    config = {"ops": {"gems__synthetic": {"config": {
        "sample_size": 3000, "rebalancing": {"column": "cut", "probabilities": {"Good": 0.5}}}}}}
    assert run_stages(materialized_project, "synthetic", run_config=config).success
    out = read_parquet(materialized_project / ".synth" / "gems" / "synthetic" / "CURRENT" / "gems.parquet")
    assert (out.cut == "Good").mean() == pytest.approx(0.5, abs=0.03)


def test_bad_generation_option_is_a_clear_failure(materialized_project):
    config = {"ops": {"gems__synthetic": {"config": {"fairness": {"target_column": "nope", "sensitive_columns": ["cut"]}}}}}
    result = run_stages(materialized_project, "synthetic", run_config=config)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "column 'nope'" in failure.event_specific_data.error.message


@pytest.mark.slow
def test_a_table_with_booleans_and_odd_dtypes_passes_the_blocking_checks(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    source = survey_table()
    source.to_parquet(tmp_path / "survey.parquet")
    write_project(tmp_path, """
        datasets:
          survey:
            tables:
              people: {source: survey.parquet}
            train: {max_training_time: 1, max_epochs: 4, model_size: small}
            generate: {sample_size: 800, seed: 2}
        """)
    result = run_job(build_definitions(tmp_path), "survey")
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"checkpoint_is_sound": True, "schema_matches_source": True, "privacy_gate": True}
    out = read_parquet(tmp_path / ".synth" / "survey" / "synthetic" / "CURRENT" / "people.parquet")
    assert out.dtypes.astype(str).tolist() == source.dtypes.astype(str).tolist()
    assert set(out.educ) <= set(source.educ)  # few-valued floats take only values of the source
    assert (out.visits == out.visits.round()).all() and (out.income == out.income.round(2)).all()
    assert out.married.isna().any() and out.kids.isna().any()
    quality = result.asset_materializations_for_node("survey__quality")[0].metadata
    assert 0.5 < quality["accuracy"].value <= 1


def test_schema_check_fails_on_values_a_user_would_spot(gems_run):
    from synth_assets.audit import schema_problems
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(gems_run[0]), "gems")
    stats, synthetic = pipeline.load_stats().tables["gems"], pipeline.load_synthetic()["gems"]
    assert schema_problems(synthetic, stats) == []
    smeared = synthetic.assign(carat=synthetic.carat.clip(upper=2) + 0.004)  # carats have two decimals in the source
    assert any("carat" in p and "at most 2 decimals" in p for p in schema_problems(smeared, stats))
    unknown = synthetic.assign(cut=["Perfect"] + synthetic.cut.tolist()[1:])
    assert any("cut" in p and "kept categories" in p for p in schema_problems(unknown, stats))
