"""A backend's options are declared once, as a pydantic model, and reach every door: synth.yaml's validation,
the launchpad's run config, and what the backend's train stage receives."""

import types

import dagster as dg
import pytest
from pydantic import Field

from synth_assets.project import parse_project
from synth_assets.definitions import build_definitions
from synth_assets.errors import ConfigError
from synth_assets.plugin_api import FLAT, Capabilities, TrainOptions, hookimpl
from synth_assets.plugins import plugin_manager
from synth_assets.testing import write_project

SEEN = []


class RankTrainOptions(TrainOptions):
    lora_rank: int = Field(8, ge=1, description="The one edit: a new option.")


@pytest.fixture
def ranked(toy_plugin):
    """A backend like the toy one, plus one train option, registered at run time."""
    from synth_toy.plugin import MarginalsBackend

    class RankBackend(MarginalsBackend):
        name = "ranked"
        capabilities = Capabilities(shapes=frozenset({FLAT}), devices=frozenset({"cpu", "cuda"}))
        TrainOptions = RankTrainOptions

        def train(self, encoded_dir, stats, request, out_dir):
            SEEN.append(request.options)
            return super().train(encoded_dir, stats, request, out_dir)

    plugin = types.SimpleNamespace(synth_register_backends=hookimpl(lambda: [RankBackend]))
    plugin_manager().register(plugin, name="ranked_plugin")
    SEEN.clear()
    yield
    plugin_manager().unregister(plugin)


def project(tmp_path, train: str):
    (tmp_path / "t.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 3 == 0}\n" for i in range(200)))
    return write_project(tmp_path, f"""
        datasets:
          d:
            backend: ranked
            tables: {{t: {{source: t.csv}}}}
            train: {train}
        """)


def test_a_new_option_is_validated_in_the_project_file(ranked):
    body = {"datasets": {"d": {"backend": "ranked", "tables": {"t": {"source": "t.csv"}}}}}
    body["datasets"]["d"]["train"] = {"lora_rank": 16, "max_epochs": 2}
    assert parse_project(body).datasets["d"].train.lora_rank == 16
    body["datasets"]["d"]["train"] = {"lora_rank": 0}
    with pytest.raises(ConfigError, match="datasets.d.train.lora_rank: Input should be greater than or equal to 1"):
        parse_project(body)
    body["datasets"]["d"]["train"] = {"model_size": "small"}  # TabularARGN's option, not this backend's
    with pytest.raises(ConfigError, match="datasets.d.train.model_size: unknown key"):
        parse_project(body)


def test_a_new_option_reaches_the_launchpad_and_the_backend(ranked, tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    defs = build_definitions(project(tmp_path, "{lora_rank: 16}"))
    model = defs.resolve_assets_def(dg.AssetKey(["d", "model"]))
    fields = model.op.config_schema.config_type.fields
    assert fields["lora_rank"].default_value == 16  # synth.yaml's value is the launchpad's default
    assert "model_size" not in fields  # another backend's options do not leak in
    run_config = {"ops": {"d__model": {"config": {"lora_rank": 4}}}}
    result = defs.resolve_job_def("synthesize_d").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config)
    assert result.success
    assert [o.lora_rank for o in SEEN] == [4] and isinstance(SEEN[0], RankTrainOptions)
    # a CUDA-capable backend trains and generates in the gpu pool; a CPU-only one does not
    assert model.op.pool == "gpu" and part_step(defs).pool == "gpu"


def test_the_launchpad_leaves_out_conditioning_the_backend_cannot_do(toy_plugin, tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    (tmp_path / "t.csv").write_text("a\n" + "".join(f"{i % 7}\n" for i in range(100)))
    defs = build_definitions(write_project(tmp_path, """
        datasets:
          d: {backend: marginals, tables: {t: {source: t.csv}}}
        """))
    synthetic = defs.resolve_assets_def(dg.AssetKey(["d", "synthetic"]))
    # the asset's launchpad config (a graph's, handed to its planning step)
    fields = synthetic.node_def.config_mapping.config_schema.config_type.fields
    assert {"sample_size", "seed"} <= set(fields) and not {"rebalancing", "fairness", "seed_data"} & set(fields)
    assert part_step(defs).pool is None  # the toy runs on the CPU only


def part_step(defs: dg.Definitions, dataset: str = "d") -> dg.OpDefinition:
    """The op that draws one part of the synthetic sample: the step that takes the GPU."""
    synthetic = defs.resolve_assets_def(dg.AssetKey([dataset, "synthetic"]))
    return synthetic.node_def.node_named(f"{dataset}__generate_part").definition


def test_per_column_encodings_are_the_backends_words(toy_plugin):
    body = {"datasets": {"d": {"backend": "marginals", "tables": {"t": {"source": "t.csv", "columns": {
        "price": {"encoding": "numeric_digit"}}}}}}}
    with pytest.raises(ConfigError, match="datasets.d.tables.t.columns.price.encoding: backend 'marginals' takes "
                                          "auto, categorical, code, .*not 'numeric_digit'"):
        parse_project(body)  # TabularARGN's word, not the toy's
    body["datasets"]["d"]["tables"]["t"]["columns"]["price"]["encoding"] = "discrete"
    assert parse_project(body).datasets["d"].tables["t"].columns["price"].encoding == "discrete"

