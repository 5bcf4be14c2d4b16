"""Datasets as Dagster Components: scaffolded with `dg scaffold defs`, validated by `dg check defs`, materialized
with `dg launch`, beside a component that reads a whole project file."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

from synth_assets.testing import IN_ONE_PROCESS
from synth_assets.files import read_parquet

REPO = Path(__file__).resolve().parents[1]
DG = str(Path(sys.executable).parent / "dg")


def dg_command(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SYNTH_CONFIG", "SYNTH_HOME")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    environment.update(env or {})
    return subprocess.run([DG, *args], cwd=project, env=environment, capture_output=True, text=True, timeout=600)


@pytest.fixture
def dg_project(tmp_path, diamonds_small, monkeypatch) -> Path:
    """A user's own dg project ('shop'), with a source file to scaffold a dataset from."""
    project = tmp_path / "shop"
    (project / "shop" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "shop"
        version = "0.1.0"

        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "shop"
        """))
    (project / "shop" / "__init__.py").write_text("")
    (project / "shop" / "definitions.py").write_text(textwrap.dedent("""
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs():
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        """))
    exports = tmp_path / "exports"
    exports.mkdir()
    gems = diamonds_small.head(1500).copy()
    gems["certified"] = gems["price"] > 2000  # a boolean column, as real exports have
    gems.loc[gems.index[::17], "depth"] = None
    gems.to_csv(exports / "gem_sales.csv", index=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return project


def load_user_defs(dg_project: Path, monkeypatch) -> dg.Definitions:
    """The user project's definitions, loaded in this process (afresh: another test's `shop` is forgotten)."""
    monkeypatch.syspath_prepend(str(dg_project))
    for module in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
        monkeypatch.delitem(sys.modules, module)
    return dg.load_from_defs_folder(path_within_project=dg_project)


def edit_attributes(defs_yaml: Path, **sections) -> None:
    component = yaml.safe_load(defs_yaml.read_text())
    component["attributes"].update(sections)
    defs_yaml.write_text(yaml.safe_dump(component, sort_keys=False))


QUICK = {"train": {"max_training_time": 0.1, "max_epochs": 3}, "generate": {"sample_size": 200, "seed": 3},
         "quality": {"max_dcr_share": 0.9}}


@pytest.mark.e2e
def test_scaffold_check_and_launch_a_dataset_component(dg_project):
    out = dg_command(dg_project, "scaffold", "defs", "synth_assets.SynthDataset", "gems",
                     "--source", str(dg_project.parent / "exports" / "gem_sales.csv"))
    assert out.returncode == 0, out.stderr
    folder = dg_project / "shop" / "defs" / "gems"
    assert (folder / "gem_sales.csv").is_file()  # the source, copied beside its defs.yaml
    component = yaml.safe_load((folder / "defs.yaml").read_text())
    assert component["type"] == "synth_assets.SynthDataset"
    assert component["attributes"]["tables"] == {"gem_sales": {"source": "gem_sales.csv"}}

    # bad keys fail `dg check defs`, each named by its path (the backend's and the core's at once), and the good
    # file passes
    edit_attributes(folder / "defs.yaml", quality={"max_dcr_share": 2}, train={"max_epoks": 3})
    out = dg_command(dg_project, "check", "defs")
    assert out.returncode != 0
    for named in ("attributes.quality.max_dcr_share: Input should be less than or equal to 1",
                  "attributes.train.max_epoks: unknown key"):
        assert named in out.stdout + out.stderr
    edit_attributes(folder / "defs.yaml", **QUICK)
    out = dg_command(dg_project, "check", "defs")
    assert out.returncode == 0, out.stdout + out.stderr

    out = dg_command(dg_project, "launch", "--job", "synthesize_gems", *IN_ONE_PROCESS)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    synthetic = read_parquet(dg_project / ".synth" / "gems" / "synthetic" / "CURRENT" / "gem_sales.parquet")
    assert len(synthetic) == 200
    assert synthetic["certified"].dtype == bool
    assert (dg_project / ".synth" / "gems" / "quality" / "report.md").is_file()


@pytest.mark.slow
def test_the_loaded_spec_is_what_runs_beside_a_project_file(dg_project, monkeypatch):
    """A SynthDataset and a SynthProjectFile in one code location share their resources; a run uses the spec
    loaded with the definitions, not the file as it is when the run starts."""
    exports = dg_project.parent / "exports"
    gems = dg_project / "shop" / "defs" / "gems"
    gems.mkdir()
    (gems / "gem_sales.csv").write_bytes((exports / "gem_sales.csv").read_bytes())
    (gems / "defs.yaml").write_text(yaml.safe_dump({"type": "synth_assets.SynthDataset", "attributes": {
        "name": "gem_shop", "tables": {"sales": {"source": "gem_sales.csv"}}, **QUICK},
        # Dagster's post-processing: owners without Python
        "post_processing": {"assets": [{"target": "*", "attributes": {"owners": ["team:data-platform"]}}]}}))
    legacy = dg_project / "shop" / "defs" / "legacy"
    legacy.mkdir()
    (legacy / "synth.yaml").write_text(yaml.safe_dump({"datasets": {"stones": {
        "tables": {"stones": {"source": str(exports / "gem_sales.csv")}}, **QUICK}}}))
    (legacy / "defs.yaml").write_text("type: synth_assets.SynthProjectFile\nattributes: {path: synth.yaml}\n")

    defs = load_user_defs(dg_project, monkeypatch)
    groups = {key.path[0] for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert groups == {"gem_shop", "stones"}
    assert {s.name for s in defs.sensors} == {"synth_automation_gem_shop", "synth_automation"}
    assert defs.resolve_asset_graph().get(dg.AssetKey(["gem_shop", "model"])).owners == ["team:data-platform"]

    edit_attributes(gems / "defs.yaml", generate={"sample_size": 999})  # after loading: not what runs
    result = defs.resolve_job_def("synthesize_gem_shop").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    synthetic = read_parquet(dg_project / ".synth" / "gem_shop" / "synthetic" / "CURRENT" / "sales.parquet")
    assert len(synthetic) == 200


@pytest.mark.e2e
def test_the_repository_code_location_loads_the_demo_through_its_component():
    out = subprocess.run([sys.executable, "-c", "import definitions; d = definitions.defs(); "
                          "print(sorted({k.path[0] for k in d.resolve_asset_graph().get_all_asset_keys()}))"],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k not in ("SYNTH_CONFIG", "SYNTH_HOME")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['diamonds', 'flows', 'panel', 'panel_llm']"  # flows/dear_diamonds too


def test_two_llm_datasets_as_separate_components_share_one_engine_resource(dg_project, monkeypatch):
    """Each component's definitions carry the `llm_engine` resource; Dagster merges them only where the key holds
    the same object, which needs the one LLM backend object (made once per loading of the plugins)."""
    exports = dg_project.parent / "exports"
    for name in ("gems_a", "gems_b"):
        folder = dg_project / "shop" / "defs" / name
        folder.mkdir()
        (folder / "gem_sales.csv").write_bytes((exports / "gem_sales.csv").read_bytes())
        (folder / "defs.yaml").write_text(yaml.safe_dump({"type": "synth_assets.SynthDataset", "attributes": {
            "backend": "llm", "tables": {"sales": {"source": "gem_sales.csv"}}}}))
    defs = load_user_defs(dg_project, monkeypatch)
    assert {key.path[0] for key in defs.resolve_asset_graph().get_all_asset_keys()} == {"gems_a", "gems_b"}
    assert "llm_engine" in defs.resources
    for name in ("gems_a", "gems_b"):
        assert defs.resolve_job_def(f"synthesize_{name}") is not None


def test_the_component_schema_lists_every_key_of_a_dataset_with_its_type_and_default():
    """`dg utils inspect-component` and editors read this schema: every section of a synth.yaml dataset, each key
    with its type and default, nested keys too; the values themselves are judged by the project file's models."""
    from synth_assets import SynthDataset
    from synth_assets.config import DatasetSpec

    schema = SynthDataset.get_model_cls().model_json_schema()
    attributes = schema["properties"]
    assert set(attributes) == {"name", "flows", *DatasetSpec.model_fields}  # flows: each as in synth.yaml
    definitions = schema["$defs"]
    quality = definitions["QualitySpecSchema"]["properties"]["max_dcr_excess"]
    assert quality["default"] == 0.02 and quality["description"].startswith("(number or null) Blocking check")
    table = definitions["TableSpecSchema"]
    assert table["required"] == ["source"]
    assert definitions["ForeignKeySchema"]["properties"]["references"]["description"].startswith("(string)")
    assert definitions["TrainOptionsSchema"]["properties"]["model_state"]["description"].startswith(
        "(one of reset, reuse, resume)")


def test_a_value_the_schema_lets_through_is_judged_naming_its_key(dg_project, monkeypatch):
    folder = dg_project / "shop" / "defs" / "gems"
    folder.mkdir()
    (folder / "defs.yaml").write_text(yaml.safe_dump({"type": "synth_assets.SynthDataset", "attributes": {
        "tables": {"sales": {"source": "sales.csv", "order_bye": ["year"]}},
        "quality": {"max_dcr_share": "high"}, "parts": {"rows": 0}}}))
    with pytest.raises(Exception) as failure:
        load_user_defs(dg_project, monkeypatch)
    message, error = "", failure.value
    while error is not None:  # Dagster wraps the component's error
        message, error = message + str(error), error.__cause__ or error.__context__
    for named in ("attributes.tables.sales.order_bye: unknown key", "attributes.quality.max_dcr_share: Input should "
                  "be a valid number", "attributes.parts.rows: Input should be greater than or equal to 1"):
        assert named in message


def test_a_flow_component_loads_beside_a_dataset_runs_and_names_its_bad_keys(dg_project, monkeypatch):
    """A SynthFlow over a file beside its defs.yaml, and one over a SynthDataset of another folder: both load in
    the user's code location with lineage to what they read; the first materializes; a bad key is named."""
    exports = dg_project.parent / "exports"
    gems = dg_project / "shop" / "defs" / "gems"
    gems.mkdir()
    (gems / "gem_sales.csv").write_bytes((exports / "gem_sales.csv").read_bytes())
    (gems / "defs.yaml").write_text(yaml.safe_dump({"type": "synth_assets.SynthDataset", "attributes": {
        "tables": {"sales": {"source": "gem_sales.csv"}}, **QUICK,
        "flows": {"ideal_gems": {"blocks": [{"block_type": "filter", "block_config": {"column": "cut",
                                                                                         "value": "Ideal"}}]}}}}))
    labelled = dg_project / "shop" / "defs" / "certified_sales"
    labelled.mkdir()
    (labelled / "gem_sales.csv").write_bytes((exports / "gem_sales.csv").read_bytes())
    flow = {"type": "synth_assets.SynthFlow", "attributes": {
        "input": {"source": "gem_sales.csv"},
        "blocks": [{"block_type": "filter", "block_config": {"column": "certified", "value": True}},
                   {"block_type": "derive", "block_config": {"column": "per_carat", "expression": "price / carat"},
                    "drop_columns": ["depth"]}]}}
    (labelled / "defs.yaml").write_text(yaml.safe_dump(flow))
    synthetic_gems = dg_project / "shop" / "defs" / "big_gems"
    synthetic_gems.mkdir()
    (synthetic_gems / "defs.yaml").write_text(yaml.safe_dump({"type": "synth_assets.SynthFlow", "attributes": {
        "input": {"dataset": "gems"}, "blocks": [{"block_type": "filter", "block_config": {
            "column": "carat", "operator": "gt", "value": 1}}]}}))

    defs = load_user_defs(dg_project, monkeypatch)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["flows", "big_gems"])).parent_keys == {dg.AssetKey(["gems", "synthetic"])}
    assert graph.get(dg.AssetKey(["flows", "big_gems"])).group_name == "gems"
    # a flow declared inside the dataset's own component reads it unless told otherwise
    assert graph.get(dg.AssetKey(["flows", "ideal_gems"])).parent_keys == {dg.AssetKey(["gems", "synthetic"])}
    assert graph.get(dg.AssetKey(["flows", "certified_sales"])).parent_keys == {
        dg.AssetKey(["flows", "certified_sales", "source"])}
    result = dg.materialize([*defs.assets], selection=[dg.AssetKey(["flows", "certified_sales"])],
                            resources=defs.resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    out = read_parquet(dg_project / ".synth" / "flows" / "certified_sales" / "output" / "CURRENT" /
                       "certified_sales.parquet")
    assert out.certified.all() and "per_carat" in out.columns and "depth" not in out.columns

    flow["attributes"]["blocks"][0]["block_config"]["operator"] = "about"
    (labelled / "defs.yaml").write_text(yaml.safe_dump(flow))
    with pytest.raises(Exception) as failure:
        load_user_defs(dg_project, monkeypatch)
    message, error = "", failure.value
    while error is not None:  # Dagster wraps the component's error
        message, error = message + str(error), error.__cause__ or error.__context__
    assert "attributes.blocks.0.block_config.operator: 'about' is not an operator" in message
