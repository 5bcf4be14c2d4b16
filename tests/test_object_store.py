"""An object store as the storage root: every stage, in whichever process or pod it runs, finds the outputs of
the stages before it in the store, through a real S3 API (moto's server, on loopback)."""

import json
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from synth_assets.audit import key_problems
from synth_assets.cli import main
from synth_assets.project import load_project
from synth_assets.errors import ConfigError, SynthError
from synth_assets.object_store import MANIFEST, Mirror, ObjectStore
from synth_assets.pipeline import DatasetPipeline
from synth_assets.testing import contract_table, contract_tree, dg_launch
from synth_assets.files import read_parquet

REPO = Path(__file__).resolve().parents[1]


def s3(url: str) -> tuple[pafs.FileSystem, str]:
    """The bucket as a consumer outside synth-assets reads it."""
    return pafs.FileSystem.from_uri(url)


def in_a_fresh_pod(monkeypatch, tmp_path: Path, project_dir: Path, step: str) -> DatasetPipeline:
    """The pipeline as a new pod sees it: nothing on its disk but the project file."""
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "pods" / step))
    return DatasetPipeline(load_project(project_dir), "clinic")


@pytest.mark.slow
def test_each_stage_finds_its_inputs_in_the_store_from_an_empty_disk(tmp_path, monkeypatch, bucket, capsys):
    persons, visits = contract_tree(300)
    persons.to_parquet(tmp_path / "persons.parquet")
    visits.drop(columns="visit_id").to_parquet(tmp_path / "visits.parquet")
    (tmp_path / "synth.yaml").write_text("""
datasets:
  clinic:
    tables:
      persons: {source: persons.parquet, primary_key: person_id}
      visits: {source: visits.parquet, foreign_keys: [{column: person_id, references: persons}], order_by: day}
    train: {max_training_time: 0.1, max_epochs: 3}
    generate: {sample_size: 250, seed: 4}
    parts: {rows: 320}
    quality: {max_dcr_share: 1.0}
""")
    monkeypatch.setenv("SYNTH_HOME", bucket)
    monkeypatch.chdir(tmp_path)
    pod = lambda step: in_a_fresh_pod(monkeypatch, tmp_path, tmp_path, step)  # noqa: E731
    pod("split").split()
    pod("stats").stats()
    pod("encoded").encode()
    pod("model").train()
    assert any(pod("look").paths.model.rglob("weights.safetensors"))  # the published model, fetched to read it
    # generation in parts (320 rows: about 100 persons with their visits), each step in a pod of its own
    job, version = "run0001", "20261125T120000Z-0000abcd"
    plan = pod("plan").plan_generation(job=job, version=version)
    assert len(plan.parts) == 3
    for part in plan.parts:
        pod(f"part{part.index}").generate_part(job, part.index, device="cpu")
    generated = pod("join").join_parts(job)
    assert generated.parts == 3 and generated.rows["persons"] == 250
    results, _ = pod("quality").quality()
    assert set(results) == {"persons", "visits"}

    fs, base = s3(bucket)
    # consumers read the published tables straight from the store
    published = fs.open_input_stream(f"{base}/clinic/synthetic/CURRENT").read().decode()
    assert published == version
    tables = {t: pq.read_table(f"{base}/clinic/synthetic/{version}/{t}.parquet", filesystem=fs).to_pandas()
              for t in ("persons", "visits")}
    assert len(tables["persons"]) == 250
    reader = pod("reader")
    assert key_problems(tables, reader.load_stats()) == {"persons": [], "visits": []}
    assert tables["persons"].dtypes.astype(str).to_dict() == persons.dtypes.astype(str).to_dict()
    assert fs.get_file_info(f"{base}/clinic/quality/CURRENT").type == pafs.FileType.File
    # the parts are gone from the store once joined
    leftovers = fs.get_file_info(pafs.FileSelector(f"{base}/clinic/synthetic/.parts/{job}", allow_not_found=True,
                                                   recursive=True))
    assert leftovers == []
    # a second generation, then a rollback from yet another pod: the store's pointer moves back
    again = pod("again").generate(device="cpu")
    assert fs.open_input_stream(f"{base}/clinic/synthetic/CURRENT").read().decode() == again.version
    assert pod("rollback").rollback("synthetic") == version
    assert fs.open_input_stream(f"{base}/clinic/synthetic/CURRENT").read().decode() == version
    history = json.loads(fs.open_input_stream(f"{base}/clinic/synthetic/published.json").read())
    assert [h["version"] for h in history] == [version, again.version, version]
    assert pod("after").paths.uri("synthetic") == "s3://" + bucket.split("://")[1].split("?")[0] + "/clinic/synthetic"
    # the command line, from a fresh pod too, names what consumers read in the store
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "pods" / "cli"))
    assert main(["show", "clinic"]) == 0
    assert main(["versions", "clinic"]) == 0
    shown = capsys.readouterr().out
    where = bucket.split("?")[0]
    assert f"synthetic table 'persons': {where}/clinic/synthetic/{version}/persons.parquet" in shown
    assert f"synthetic ({where}/clinic/synthetic):" in shown and f"* {version}" in shown
    # nothing landed in a local folder named after the scheme
    assert not (tmp_path / "s3:").exists() and not (REPO / "s3:").exists()


def test_an_unfinished_folder_in_the_store_is_never_read(tmp_path, monkeypatch, bucket):
    contract_table(300).to_parquet(tmp_path / "shop.parquet")
    (tmp_path / "synth.yaml").write_text("datasets:\n  shop:\n    tables: {shop: {source: shop.parquet}}\n")
    monkeypatch.setenv("SYNTH_HOME", bucket)
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "writer"))
    DatasetPipeline(load_project(tmp_path), "shop").split()
    fs, base = s3(bucket)
    token = fs.open_input_stream(f"{base}/shop/split/CURRENT").read().decode()
    # a writer that died between its files and its manifest: the pointer names a folder without a manifest
    fs.delete_file(f"{base}/shop/split/{token}/{MANIFEST}")
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "reader"))
    with pytest.raises(SynthError, match=r"split/.* is incomplete.*materialize shop/split again"):
        DatasetPipeline(load_project(tmp_path), "shop").load_split()


def test_a_store_that_cannot_be_reached_says_which_and_what_to_check(tmp_path, monkeypatch, bucket, capsys):
    contract_table(100).to_parquet(tmp_path / "shop.parquet")
    (tmp_path / "synth.yaml").write_text("datasets:\n  shop:\n    tables: {shop: {source: shop.parquet}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTH_HOME", bucket)
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "scratch"))
    assert main(["check"]) == 0  # `python -m synth_assets check` tries the store before any run
    assert f"storage {bucket.split('?')[0]}: written, read back and deleted" in capsys.readouterr().out
    missing = bucket.replace("s3://", "s3://no-such-bucket-", 1)
    monkeypatch.setenv("SYNTH_HOME", missing)
    with pytest.raises(SynthError, match=r"s3://no-such-bucket-.*/home/shop/split.*bucket that exists"):
        DatasetPipeline(load_project(tmp_path), "shop").split()
    assert main(["check"]) == 2
    assert "error: could not write s3://no-such-bucket-" in capsys.readouterr().err
    monkeypatch.setenv("SYNTH_HOME", "nosuchscheme://bucket/home")
    with pytest.raises(ConfigError, match="SYNTH_HOME is nosuchscheme://bucket/home: cannot open a store of scheme"):
        load_project(tmp_path)
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "nosuchscheme:").exists()


def test_a_folder_is_uploaded_before_its_manifest_and_not_sent_twice(tmp_path, monkeypatch, bucket):
    store = ObjectStore(bucket)
    (tmp_path / "v" / "sub").mkdir(parents=True)
    (tmp_path / "v" / "weights.bin").write_bytes(b"w" * 1000)
    (tmp_path / "v" / "sub" / "a.json").write_text("{}")
    store.upload_dir(tmp_path / "v", "ds/model/v1")
    assert store.download_dir("ds/model/v1", tmp_path / "back")
    assert (tmp_path / "back" / "weights.bin").read_bytes() == b"w" * 1000
    assert (tmp_path / "back" / "sub" / "a.json").read_text() == "{}"
    # a chart added beside the checkpoint: only it is sent, then the manifest lists both
    (tmp_path / "v" / "loss_curve.png").write_bytes(b"png")
    sent = []
    monkeypatch.setattr(store, "upload_file", lambda local, key: sent.append(key) or
                        ObjectStore.upload_file(store, local, key))
    store.upload_dir(tmp_path / "v", "ds/model/v1")
    assert sent == ["ds/model/v1/loss_curve.png"]
    assert set(json.loads(store.read_text("ds/model/v1/" + MANIFEST))["files"]) == {
        "weights.bin", "sub/a.json", "loss_curve.png"}
    assert not store.download_dir("ds/model/v2", tmp_path / "none")


def test_generations_that_failed_runs_left_in_the_store_are_swept_by_age(tmp_path, bucket):
    mirror = Mirror(ObjectStore(bucket), tmp_path / "scratch" / "ds", "ds")
    for job in ("run_a", "run_b"):
        mirror.store.write_text("{}", f"ds/synthetic/.parts/{job}/plan.json")
    parts = Path("synthetic/.parts")
    assert 0 <= mirror.store.age("ds/synthetic/.parts/run_a/plan.json") < 600
    assert mirror.store.age("ds/synthetic/.parts/run_c/plan.json") is None
    assert mirror.sweep_stale_parts(parts, "plan.json", max_age=3600) == []  # young: a run may still use them
    assert mirror.sweep_stale_parts(parts, "plan.json", max_age=-1) == ["run_a", "run_b"]
    assert mirror.store.list_dirs("ds/synthetic/.parts") == []


@pytest.mark.e2e
def test_dg_launch_writes_every_stage_to_s3_and_draws_parts_in_parallel_steps(tmp_path, s3_endpoint, bucket):
    """The product's path: `dg launch` of the whole dataset with the default multiprocess executor and the checks
    on, into S3; a sample above `parts.rows` as one step (one process) per part; every asset's `dagster/uri`."""
    contract_table(600).to_parquet(tmp_path / "shop.parquet")  # booleans, nullable Int64, categories with nulls
    (tmp_path / "synth.yaml").write_text(
        "datasets:\n  shop:\n    tables: {shop: {source: shop.parquet}}\n"
        "    train: {max_training_time: 0.1, max_epochs: 3}\n"
        "    generate: {sample_size: 1000, seed: 1}\n    parts: {rows: 500}\n")
    # the environment holds the bucket's credentials (the `bucket` fixture)
    launch = dg_launch(tmp_path, "--job", "synthesize_shop", store=bucket, in_one_process=False,
                       env={"SYNTH_SCRATCH": str(tmp_path / "scratch")})
    launch.assert_passed(("schema_matches_source", "shop/synthetic"))
    for part in ("part_00000", "part_00001"):  # two part steps, each its own process
        assert f"shop__synthetic.shop__generate_part[{part}]" in launch.log, part
    assert "Launching subprocess for" in launch.log  # the multiprocess executor ran the steps

    fs, base = s3(bucket)
    version = fs.open_input_stream(f"{base}/shop/synthetic/CURRENT").read().decode()
    shop = pq.read_table(f"{base}/shop/synthetic/{version}/shop.parquet", filesystem=fs).to_pandas()
    source = read_parquet(tmp_path / "shop.parquet")
    assert len(shop) == 1000 and shop.dtypes.astype(str).to_dict() == source.dtypes.astype(str).to_dict()
    report = json.loads(fs.open_input_stream(f"{base}/shop/synthetic/{version}/generation.json").read())
    assert [p["rows"]["shop"] for p in report["parts"]] == [500, 500]
    assert len({p["seed"] for p in report["parts"]}) == 2
    assert fs.get_file_info(pafs.FileSelector(f"{base}/shop/synthetic/.parts", allow_not_found=True,
                                              recursive=True)) == []
    assert not any((tmp_path / "scratch" / "shop" / "synthetic" / ".parts").iterdir())

    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(tmp_path / ".dagster_home"))  # dg_launch's Dagster home
    where = bucket.split("?")[0]
    for stage, expected in [("split", f"{where}/shop/split"), ("stats", f"{where}/shop/stats.json"),
                            ("encoded", f"{where}/shop/encoded"), ("model", f"{where}/shop/model/"),
                            ("synthetic", f"{where}/shop/synthetic/{version}"), ("quality", f"{where}/shop/quality")]:
        event = instance.get_latest_materialization_event(dg.AssetKey(["shop", stage]))
        uri = event.asset_materialization.metadata["dagster/uri"].value
        assert uri.startswith(expected), (stage, uri)
    instance.dispose()


def test_a_scheme_pyarrow_lacks_goes_through_fsspec(tmp_path, monkeypatch):
    """fsspec's in-memory file system stands for any fsspec package's store (az:// with adlfs, ...)."""
    import fsspec

    contract_table(200).to_parquet(tmp_path / "shop.parquet")
    (tmp_path / "synth.yaml").write_text("datasets:\n  shop:\n    tables: {shop: {source: shop.parquet}}\n")
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.setenv("SYNTH_HOME", "memory://synth-test/home")
    for step in ("split", "stats"):
        monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / step))
        getattr(DatasetPipeline(load_project(tmp_path), "shop"), step)()
    memory = fsspec.filesystem("memory")
    stats = json.loads(memory.cat("/synth-test/home/shop/stats.json"))
    assert stats["tables"]["shop"]["rows"] == len(read_parquet(tmp_path / "split" / "shop" / "split" / "train" /
                                                                  "shop.parquet"))
    memory.rm("/synth-test", recursive=True)


def test_a_flow_reads_its_input_from_the_store_and_publishes_its_output_there(tmp_path, monkeypatch, bucket,
                                                                               toy_plugin):
    """A dataset's synthetic table in S3, a flow over it and a flow over that flow, each in a pod of its own with
    an empty disk: each finds its input in the store, and consumers find the outputs there."""
    from synth_assets.flows import audit_flow, flow_paths, publish_flow, run_flow

    contract_table(400).to_parquet(tmp_path / "shop.parquet")
    (tmp_path / "synth.yaml").write_text("""
datasets:
  shop:
    backend: marginals
    tables: {shop: {source: shop.parquet}}
    generate: {sample_size: 300, seed: 2}
    quality: {max_dcr_share: 1.0, max_dcr_excess: null, max_membership_auc: null, max_copy_excess: null}
flows:
  first:
    input: {dataset: shop}
    blocks: [{block_type: sample, block_config: {rows: 100}}]
  second:
    input: {flow: first}
    blocks: [{block_type: drop_duplicates}]
""")
    monkeypatch.setenv("SYNTH_HOME", bucket)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "pods" / "dataset"))
    DatasetPipeline(load_project(tmp_path), "shop").run_all()
    for flow in ("first", "second"):
        monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "pods" / flow))
        project = load_project(tmp_path)
        result = run_flow(project, flow, f"20261206T00000{len(flow)}Z-0000abcd", log=lambda line: None)
        assert publish_flow(project, flow, result.version, audit_flow(project.flow(flow), result))
        assert result.rows_out == 100
    fs, root = s3(bucket)
    written = pq.read_table(f"{root}/flows/second/output/20261206T000006Z-0000abcd/second.parquet", filesystem=fs)
    assert written.num_rows == 100
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "pods" / "reader"))
    assert read_parquet(flow_paths(load_project(tmp_path), "second").output_file()).equals(written.to_pandas())
