"""Regeneration when the data changes and on a clock, tested with Dagster's own helpers: sources observed by
content hash, declarative automation that refreshes the stages after a change (and only then), automated
training that fine-tunes the published model, the cron schedule that only redraws, and the gpu pool limit."""

import datetime
import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.observe import observe  # Dagster's in-process observation (what its tests use)

from synth_assets.automation import AUTOMATION_TAG, content_hash, source_key
from synth_assets.definitions import build_definitions
from synth_assets.releases import Releases
from synth_assets.testing import write_project

REPO = Path(__file__).resolve().parents[1]
STAGES = ["split", "stats", "encoded", "model", "synthetic", "quality"]


def requested(defs, instance, cursor=None):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()
            if k.path[-2] != "source" and result.get_num_requested(k)}
    return keys, result.cursor


def observe_sources(defs, instance):
    source = defs.resolve_assets_def(source_key("gems", "gems"))
    return observe([source], instance=instance)  # the definitions bound its resources


def logs(instance, result) -> str:
    return " ".join(entry.user_message for entry in instance.all_logs(result.run_id))


def model_state(result) -> str:
    return result.asset_materializations_for_node("gems__model")[0].metadata["model_state"].value


def fewer_epochs(project: Path) -> None:
    """Two epochs instead of eight: what these tests watch is which runs train and how, not the model."""
    config = project / "synth.yaml"
    config.write_text(config.read_text().replace("max_epochs: 8", "max_epochs: 2"))


def run(defs, instance, tags=None):
    return defs.resolve_job_def("synthesize_gems").execute_in_process(instance=instance, tags=tags or {},
                                                                      raise_on_error=False)


@pytest.mark.slow
def test_a_changed_source_refreshes_every_stage_and_an_unchanged_one_nothing(small_project):
    fewer_epochs(small_project)
    defs = build_definitions(small_project)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["gems", "split"])).parent_keys == {source_key("gems", "gems")}
    instance = dg.DagsterInstance.ephemeral()

    keys, cursor = requested(defs, instance)  # the automation sensor's first tick: nothing known yet
    assert keys == set()
    observed = observe_sources(defs, instance)
    version = observed.get_asset_observation_events()[0].event_specific_data.asset_observation.data_version
    assert version == content_hash(small_project / "gems.csv")
    keys, cursor = requested(defs, instance, cursor)
    assert keys == set(STAGES)  # never materialized: everything, in one run
    assert run(defs, instance).success
    keys, cursor = requested(defs, instance, cursor)
    assert keys == set()

    # the file is written again with the same content: same data version, nothing to do
    source = small_project / "gems.csv"
    source.write_bytes(source.read_bytes())
    observe_sources(defs, instance)
    keys, cursor = requested(defs, instance, cursor)
    assert keys == set()

    # new data: the whole chain refreshes, split first
    df = pd.read_csv(source)
    df.iloc[:-100].to_csv(source, index=False)
    observe_sources(defs, instance)
    keys, cursor = requested(defs, instance, cursor)
    assert keys == set(STAGES)


def test_the_automation_sensor_starts_stopped_and_covers_the_automated_datasets(small_project):
    defs = build_definitions(small_project)
    sensor = defs.resolve_sensor_def("synth_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    graph = defs.resolve_asset_graph()
    covered = sensor.asset_selection.resolve(graph, allow_missing=True)
    assert covered == {source_key("gems", "gems"), *(dg.AssetKey(["gems", stage]) for stage in STAGES)}
    (small_project / "synth.yaml").write_text((small_project / "synth.yaml").read_text()
                                              + "    automation: {on_source_change: false}\n")
    assert not build_definitions(small_project).sensors


def test_a_missing_source_fails_the_observation_naming_the_table(small_project):
    defs = build_definitions(small_project)
    (small_project / "gems.csv").unlink()
    result = observe([defs.resolve_assets_def(source_key("gems", "gems"))], instance=dg.DagsterInstance.ephemeral(),
                     raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "table 'gems'" in message and "not found" in message


def test_automation_off_leaves_the_stages_alone(small_project):
    config = small_project / "synth.yaml"
    config.write_text(config.read_text() + "    automation: {on_source_change: false}\n")
    defs = build_definitions(small_project)
    instance = dg.DagsterInstance.ephemeral()
    cursor = requested(defs, instance)[1]
    observe_sources(defs, instance)
    assert requested(defs, instance, cursor)[0] == set()


@pytest.mark.slow
def test_automated_training_fine_tunes_the_published_model_or_starts_anew_when_the_encoding_changed(
        materialized_project):
    small_project = materialized_project  # its model is published
    fewer_epochs(small_project)
    defs = build_definitions(small_project)
    instance = dg.DagsterInstance.ephemeral()
    models = Releases(small_project / ".synth" / "gems" / "model")
    first = models.current_version()

    automated = run(defs, instance, tags={AUTOMATION_TAG: "true"})
    assert automated.success and model_state(automated) == "reuse"
    assert "started by automation: model_state reuse" in logs(instance, automated)
    assert models.current_version() != first and len(models.versions()) == 2

    # a new colour the model has never seen: its weights no longer fit, so automation trains afresh
    source = small_project / "gems.csv"
    df = pd.read_csv(source)
    df.loc[df.index[:600], "color"] = "Z"
    df.to_csv(source, index=False)
    automated = run(defs, instance, tags={AUTOMATION_TAG: "true"})
    assert automated.success and model_state(automated) == "reset"
    assert "training a new model instead" in logs(instance, automated)
    # a run a person starts trains as its config says (reset by default)
    manual = run(defs, instance)
    assert manual.success and model_state(manual) == "reset"
    assert "started by automation" not in logs(instance, manual)


def test_the_schedule_redraws_from_the_published_model_without_retraining(materialized_project):
    small_project = materialized_project  # its model and synthetic tables are published
    config = small_project / "synth.yaml"
    config.write_text(config.read_text() + '    schedule: "0 3 * * *"\n')
    defs = build_definitions(small_project)
    instance = dg.DagsterInstance.ephemeral()
    schedule = defs.resolve_schedule_def("regenerate_gems")
    assert schedule.job_name == "resample_gems"
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.datetime(2026, 11, 25, 3))
    [request] = schedule.evaluate_tick(context).run_requests
    job = defs.resolve_job_def(request.job_name or schedule.job_name)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {"gems/synthetic", "gems/quality"}
    models = Releases(small_project / ".synth" / "gems" / "model")
    synthetic = Releases(small_project / ".synth" / "gems" / "synthetic")
    model, table = models.current_version(), synthetic.current_version()
    assert job.execute_in_process(instance=instance, run_config=request.run_config, tags=request.tags).success
    assert models.current_version() == model and synthetic.current_version() != table


def test_the_model_code_version_names_the_backend_and_its_release(tmp_path, monkeypatch, diamonds_small):
    diamonds_small.to_csv(tmp_path / "gems.csv", index=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    write_project(tmp_path, """
        datasets:
          argn: {backend: tabular_argn, tables: {gems: {source: gems.csv}}}
          llm: {backend: llm, tables: {gems: {source: gems.csv}}}
        """)
    defs = build_definitions(tmp_path)
    versions = {name: defs.resolve_assets_def(dg.AssetKey([name, "model"])).code_versions_by_key[
        dg.AssetKey([name, "model"])] for name in ("argn", "llm")}
    assert versions["argn"].startswith("tabular_argn-") and versions["llm"].startswith("llm-")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_writes_an_instance_that_runs_one_gpu_step_at_a_time(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    os.makedirs(home)
    import subprocess

    subprocess.run(["make", "-s", f"{home}/dagster.yaml"], cwd=REPO, env=env, check=True)
    instance = dg.DagsterInstance.from_config(str(home))
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
