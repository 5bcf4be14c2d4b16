"""Training in a separate process through Dagster Pipes (`python -m synth_assets train`), and the same command
on its own from the shell."""

import os
import subprocess
import sys

import dagster as dg
import pyarrow.fs as pafs
import pytest

from synth_assets.project import load_project
from synth_assets.definitions import build_definitions
from synth_assets.pipeline import DatasetPipeline
from synth_assets.releases import CURRENT


@pytest.mark.e2e
def test_the_model_trains_in_a_pipes_subprocess_and_reports_back(small_project, bucket, tmp_path, monkeypatch):
    """With an object store as the storage root: the training process uploads the version it wrote, which the
    step audits and publishes."""
    monkeypatch.setenv("SYNTH_HOME", bucket)
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "scratch"))
    defs = build_definitions(small_project)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("synthesize_gems").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"resources": {"compute": {"config": {"training": "pipes_subprocess"}}}})
    assert result.success
    # each epoch, logged by the training process, reached the run's log
    logged = [entry.user_message for entry in instance.all_logs(result.run_id) if "train loss" in entry.user_message]
    meta = {m.asset_key.to_user_string(): m.metadata
            for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    model = meta["gems/model"]
    assert model["trained_in"].value == "pipes_subprocess"
    assert len([line for line in logged if line.startswith("epoch ")]) == model["epochs"].value >= 1
    assert model["published"].value is True
    assert "validation loss" in model["loss_curve"].value  # the progress came back with the result
    fs, base = pafs.FileSystem.from_uri(bucket)
    published = {stage: fs.open_input_stream(f"{base}/gems/{stage}/{CURRENT}").read().decode()
                 for stage in ("model", "synthetic")}
    assert published["model"] == model["version"].value
    assert fs.get_file_info(f"{base}/gems/model/{published['model']}/weights.safetensors").size > 0
    # and the stages after it used that model
    assert fs.get_file_info(f"{base}/gems/synthetic/{published['synthetic']}/gems.parquet").size > 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["checkpoint_is_sound"] is True


@pytest.mark.e2e
def test_train_from_the_shell_publishes_an_audited_model(small_project):
    pipeline = DatasetPipeline(load_project(small_project), "gems")
    pipeline.split(), pipeline.stats(), pipeline.encode()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTH_", "DAGSTER_PIPES"))}
    out = subprocess.run([sys.executable, "-m", "synth_assets", "train", "gems"], cwd=small_project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "epoch   1" in out.stdout
    version = pipeline.paths.releases("model").current_version()
    assert f"gems/model: published {version}" in out.stdout
    missing = subprocess.run([sys.executable, "-m", "synth_assets", "train", "nothing"], cwd=small_project, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no dataset 'nothing'" in missing.stderr
