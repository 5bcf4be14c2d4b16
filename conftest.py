"""Fixtures shared by the core's tests (tests/) and the plugins' (plugins/*/tests/)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

# `make test` runs two pytest-xdist workers. Each gets its share of the cores for torch's and the BLAS libraries'
# threads (set before numpy or torch is imported, and inherited by the `dg` processes tests start): their threads
# spin while they wait, and two workers each spinning on every core run several times slower than one alone.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_threads, _share)

import pandas as pd
import pytest

from synth_assets.testing import write_project

REPO = Path(__file__).resolve().parent
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
DEMO = REPO / "data" / "demo" / "diamonds.csv.gz"


# how heavy a test is, by its marker: an end-to-end run (other processes, a launch) or one of ten seconds or more
WEIGHTS = {"e2e": 3, "slow": 1}


def pytest_collection_modifyitems(config, items):
    """The LLM backend's tests carry the `llm` marker, by their folder. The heaviest files come first: the workers
    take files in this order (`--no-loadscope-reorder`), so one that takes a minute never starts last while the
    other worker has nothing left (ordered by their number of tests, a one-test browser file ended the run alone)."""
    llm = REPO / "plugins" / "llm"
    for item in items:
        if llm in Path(item.fspath).parents:
            item.add_marker(pytest.mark.llm)
    weight: dict[str, int] = {}
    for item in items:
        heaviest = max((w for name, w in WEIGHTS.items() if item.get_closest_marker(name)), default=0)
        weight[item.fspath] = weight.get(item.fspath, 0) + heaviest
    items.sort(key=lambda item: -weight[item.fspath])  # stable: each file's tests stay together, in their order


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API: moto's server, in a process of its own on loopback, for the session. (Not moto's threaded
    server: it would load Flask into this process, and vLLM's CPU engine, started later in the session, trips
    over Flask's context proxies when it walks the loaded modules.)"""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start (exit code {server.poll()})") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, request):
    """A fresh bucket named after the test, and the S3 credentials in the environment; returns a storage root's
    URL in it, with the endpoint in the query string."""
    import pyarrow.fs as pafs

    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True)
    fs.create_dir(name)
    return f"s3://{name}/home?endpoint_override={s3_endpoint}"


@pytest.fixture(scope="session")
def diamonds() -> pd.DataFrame:
    return pd.read_csv(DEMO)


@pytest.fixture(scope="session")
def diamonds_small(diamonds) -> pd.DataFrame:
    return diamonds.sample(3000, random_state=0).reset_index(drop=True)


GEMS = """
    datasets:
      gems:
        backend: tabular_argn
        tables:
          gems: {source: gems.csv}
        train: {max_training_time: 5, max_epochs: 8}
        generate: {sample_size: 1000, seed: 7}
    """


@pytest.fixture
def small_project(tmp_path, diamonds_small, monkeypatch):
    """A project with one small flat dataset and a training budget of seconds."""
    diamonds_small.to_csv(tmp_path / "gems.csv", index=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    return write_project(tmp_path, GEMS)


@pytest.fixture(scope="session")
def gems_run(tmp_path_factory, diamonds_small):
    """small_project materialized once for the session through Dagster, the checks on: (its folder, the run's
    result). Read it, never change it: a test that changes the project takes `materialized_project`."""
    import dagster as dg

    from synth_assets.definitions import build_definitions

    folder = tmp_path_factory.mktemp("gems")
    diamonds_small.to_csv(folder / "gems.csv", index=False)
    write_project(folder, GEMS)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SYNTH_CONFIG", raising=False)
        patch.delenv("SYNTH_HOME", raising=False)
        result = build_definitions(folder).resolve_job_def("synthesize_gems").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    return folder, result


@pytest.fixture
def materialized_project(tmp_path, gems_run, monkeypatch):
    """A copy of gems_run's project, its outputs (published model, synthetic tables, report) included: a test
    that starts from a materialized dataset without training one."""
    shutil.copytree(gems_run[0], tmp_path, symlinks=True, dirs_exist_ok=True)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    return tmp_path


@pytest.fixture
def run_one_table(tmp_path, monkeypatch):
    """Put `df` in a one-table project ('mixed', table 't') and run every stage; returns the pipeline."""
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)

    def run(df: pd.DataFrame, *, max_epochs: int, sample_size: int):
        df.to_parquet(tmp_path / "t.parquet")
        (tmp_path / "synth.yaml").write_text(
            "datasets:\n  mixed:\n    tables:\n      t: {source: t.parquet}\n"
            f"    train: {{max_training_time: 5, max_epochs: {max_epochs}}}\n"
            f"    generate: {{sample_size: {sample_size}, seed: 1}}\n")
        pipeline = DatasetPipeline(load_project(tmp_path), "mixed")
        pipeline.run_all()
        return pipeline

    return run


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """Install tests/toy_plugin as a package announcing itself through the entry-point group, the way
    `pip install` would, without touching the environment. Yields the environment a process started by the test
    needs to see it (PYTHONPATH)."""
    from synth_assets.plugins import reload_plugins

    site = tmp_path / "site"
    info = site / "synth_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: synth-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[synth_assets]\nmarginals = synth_toy.plugin\n")
    monkeypatch.syspath_prepend(str(REPO / "tests" / "toy_plugin"))
    monkeypatch.syspath_prepend(str(site))
    reload_plugins()
    # what a process this test starts (dg launch) needs to find the plugin too
    yield {"PYTHONPATH": os.pathsep.join([str(site), str(REPO / "tests" / "toy_plugin"),
                                          os.environ.get("PYTHONPATH", "")])}
    monkeypatch.undo()
    reload_plugins()
