import pytest

from synth_assets.project import load_project, parse_project
from synth_assets.errors import ConfigError

from synth_assets.testing import write_project


def test_example_shape_from_the_docs_parses():
    spec = parse_project({
        "datasets": {"diamonds": {
            "backend": "tabular_argn",
            "tables": {"diamonds": {"source": "data/demo/diamonds.csv.gz", "primary_key": None}},
            "train": {"max_training_time": 2.0, "max_epochs": 100},
            "generate": {"sample_size": 5000},
            "schedule": "0 3 * * *",
        }}
    })
    ds = spec.datasets["diamonds"]
    assert ds.train.max_training_time == 2.0 and ds.generate.sample_size == 5000
    assert ds.split.validation_share == 0.2  # default 80/20


@pytest.mark.parametrize("body, named", [
    ({"datasets": {"d": {"tables": {"t": {"source": "x.csv"}}, "train": {"max_epoch": 3}}}}, "datasets.d.train.max_epoch: unknown key"),
    ({"datasets": {"d": {"tables": {"t": {"source": "x.csv"}}, "train": {"max_epochs": "many"}}}}, "datasets.d.train.max_epochs"),
    ({"datasets": {"d": {"tables": {"t": {"source": "x.xlsx"}}}}}, "datasets.d.tables.t.source"),
    ({"datasets": {"d": {}}}, "datasets.d.tables: required key is missing"),
    ({"datasets": {"d": {"tables": {"t": {"source": "x.csv"}}, "schedule": "daily"}}}, "datasets.d.schedule"),
    ({"datasets": {"bad-name": {"tables": {"t": {"source": "x.csv"}}}}}, "bad-name"),
])
def test_bad_config_names_the_key(body, named):
    with pytest.raises(ConfigError) as err:
        parse_project(body)
    assert named in str(err.value)


def test_every_bad_key_is_named_at_once_the_backends_options_and_the_rest():
    body = {"datasets": {"d": {"tables": {"t": {"source": "x.csv", "order_bye": ["year"]}}, "train": {"max_epoch": 3},
                               "generate": {"sample_size": 0}, "quality": {"max_dcr_share": 2}}}}
    with pytest.raises(ConfigError) as err:
        parse_project(body)
    for named in ("datasets.d.train.max_epoch: unknown key", "datasets.d.generate.sample_size: Input should be greater",
                  "datasets.d.tables.t.order_bye: unknown key", "datasets.d.quality.max_dcr_share: Input should be less"):
        assert named in str(err.value)


def test_foreign_key_must_reference_a_table_with_a_primary_key():
    body = {"datasets": {"d": {"tables": {
        "people": {"source": "p.csv"},
        "visits": {"source": "v.csv", "foreign_keys": [{"column": "pid", "references": "people"}]},
    }}}}
    with pytest.raises(ConfigError, match="references table 'people', which has no primary_key"):
        parse_project(body)
    body["datasets"]["d"]["tables"]["visits"]["foreign_keys"][0]["references"] = "nobody"
    with pytest.raises(ConfigError, match="unknown table 'nobody'"):
        parse_project(body)


def test_a_table_whose_foreign_key_references_itself_is_refused_when_the_project_loads():
    """employee -> manager: it once trained and then failed with "this is a bug in the backend" (issue 25)."""
    body = {"datasets": {"staff": {"tables": {"employees": {
        "source": "e.csv", "primary_key": "id", "foreign_keys": [{"column": "manager_id", "references": "employees"}]}}}}}
    with pytest.raises(ConfigError, match="datasets.staff: .*table 'employees': foreign key 'manager_id' references "
                                          "the table itself.*remove the foreign key"):
        parse_project(body)


def test_environment_points_at_another_file_and_home(tmp_path, monkeypatch):
    other = write_project(tmp_path / "elsewhere", "datasets:\n  a:\n    tables:\n      t: {source: t.csv}\n")
    monkeypatch.setenv("SYNTH_CONFIG", str(other / "synth.yaml"))
    monkeypatch.setenv("SYNTH_HOME", str(tmp_path / "store"))
    project = load_project(tmp_path)
    assert list(project.datasets) == ["a"]
    assert project.home == (tmp_path / "store").resolve()
    assert project.source_path("a", "t") == other / "t.csv"  # relative to the project file


def test_missing_file_and_bad_yaml_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="not found"):
        load_project(tmp_path)
    (tmp_path / "synth.yaml").write_text("datasets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(tmp_path)


def test_an_object_store_as_home_is_mirrored_not_written_to_a_folder_named_s3(tmp_path, monkeypatch):
    write_project(tmp_path, "datasets:\n  a:\n    tables:\n      t: {source: t.csv}\n")
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.setenv("SYNTH_HOME", "s3://bucket/home?region=eu-west-1")
    monkeypatch.setenv("SYNTH_SCRATCH", str(tmp_path / "scratch"))
    project = load_project(tmp_path)  # nothing is fetched until a stage runs
    assert project.home_uri == "s3://bucket/home?region=eu-west-1"
    assert project.home == tmp_path / "scratch"
    assert project.mirror("a").uri("stats.json") == "s3://bucket/home/a/stats.json"
    assert not (tmp_path / "s3:").exists()
