"""The commands a user types: plugin listing, `dg check defs`, `dg launch` on a second dataset."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth_assets.testing import dg_launch, survey_table
from synth_assets.files import read_parquet

REPO = Path(__file__).resolve().parents[1]

BIN = Path(sys.executable).parent


def run(args, env=None, cwd=REPO, timeout=600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def test_plugins_command_lists_the_builtin_backend():
    out = run([sys.executable, "-m", "synth_assets", "plugins"])
    assert out.returncode == 0, out.stderr
    assert "tabular_argn" in out.stdout and "flat" in out.stdout


def test_bad_project_file_is_one_clear_line(tmp_path):
    (tmp_path / "synth.yaml").write_text("datasets:\n  d:\n    tables: {t: {source: t.csv}}\n    trian: {}\n")
    out = run([sys.executable, "-m", "synth_assets", "check"], env={"SYNTH_CONFIG": str(tmp_path / "synth.yaml")})
    assert out.returncode == 2
    assert "datasets.d.trian: unknown key" in out.stderr and "Traceback" not in out.stderr


# `python -m synth_assets run <dataset>`, then the names of the Dagster modules the process loaded
RUN_AND_LIST_DAGSTER = """
import runpy, sys
sys.argv = ["synth_assets", "run", "survey"]
try:
    runpy.run_module("synth_assets", run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), done.code
print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "dagster_pandas", "dagster_pipes")))
"""


@pytest.mark.e2e
def test_the_command_line_runs_every_stage_and_its_audit_without_loading_dagster(tmp_path):
    survey_table(600).to_parquet(tmp_path / "survey.parquet")
    (tmp_path / "synth.yaml").write_text(
        "datasets:\n  survey:\n    tables:\n      survey: {source: survey.parquet}\n"
        "    train: {max_training_time: 0.05, max_epochs: 2}\n    generate: {sample_size: 200, seed: 1}\n")
    out = run([sys.executable, "-c", RUN_AND_LIST_DAGSTER], cwd=tmp_path, env={"SYNTH_CONFIG": "", "SYNTH_HOME": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "quality 'survey': accuracy" in out.stdout  # every stage ran, its versions audited and published
    assert out.stdout.strip().splitlines()[-1] == "loaded: []"
    assert (tmp_path / ".synth" / "survey" / "synthetic" / "CURRENT" / "survey.parquet").is_file()


@pytest.mark.e2e
def test_dg_check_defs_passes():
    out = run([str(BIN / "dg"), "check", "defs"], env={"DAGSTER_HOME": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr


@pytest.mark.e2e
def test_dg_launch_materializes_a_dataset_added_through_synth_config(tmp_path):
    # booleans, nullable booleans and integers, a category, unsigned and rounded numbers: the blocking
    # schema check used to crash on the booleans, failing the run
    source = survey_table(1500)
    source.to_parquet(tmp_path / "stones.parquet")
    (tmp_path / "synth.yaml").write_text(
        "datasets:\n  stones:\n    tables:\n      stones: {source: stones.parquet}\n"
        "    train: {max_training_time: 5, max_epochs: 3, model_size: small}\n"
        "    generate: {sample_size: 300, seed: 1}\n")
    # (the default multiprocess executor, a process per step: tests/test_object_store.py)
    dg_launch(tmp_path, "--job", "synthesize_stones").assert_passed(("schema_matches_source", "stones/synthetic"))
    synthetic = read_parquet(tmp_path / "store" / "stones" / "synthetic" / "CURRENT" / "stones.parquet")
    assert len(synthetic) == 300
    assert synthetic.dtypes.astype(str).tolist() == source.dtypes.astype(str).tolist()
    assert (tmp_path / "store" / "stones" / "quality" / "report.md").is_file()


def test_the_gpu_check_says_there_is_no_cuda_and_exits_cleanly_where_there_is_none():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: `make gpu-check` runs the real check")
    out = run([sys.executable, "-m", "bench.gpu_check"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA on this machine" in out.stdout
