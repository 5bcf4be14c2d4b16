"""Dagster Components: a dataset declared in its own `defs.yaml`, or every dataset of a project file.

    dg scaffold defs synth_assets.SynthDataset customers --source ~/exports/customers.csv

writes `defs/customers/defs.yaml` with the source file copied beside it; `dg check defs` validates it, naming
the key at fault. The spec loaded here is what the assets run: it is not read again at run time.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field

from synth_assets.component_schema import described
from synth_assets.config import (AutomationSpec, KubernetesSpec, PartsSpec, PrivacySpec, Project, ProjectSpec,
                                 PublishSpec, QualitySpec, SplitSpec, TableSpec, default_home)
from synth_assets.project import load_project, parse_dataset, parse_flow
from synth_assets.definitions import datasets_definitions
from synth_assets.flow_assets import flow_assets
from synth_assets.flow_spec import BlockSpec, FlowInput, FlowSpec
from synth_assets.resources import ComputeDevice, SynthStorage, shared
from synth_assets.errors import ConfigError
from synth_assets.options import SOURCE_SUFFIXES, GenerateOptions, TrainOptions
from synth_assets.plugins import get_backend


class SynthDatasetScaffoldParams(dg.Model):
    source: list[str] = Field(default_factory=list, description="Source files (.csv, .csv.gz, .parquet) to copy "
                                                                "beside defs.yaml, one table each.")


class SynthDatasetScaffolder(dg.Scaffolder[SynthDatasetScaffoldParams]):
    """Writes defs.yaml for a dataset whose tables are the given source files, copied beside it."""

    @classmethod
    def get_scaffold_params(cls) -> type[SynthDatasetScaffoldParams]:
        return SynthDatasetScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[SynthDatasetScaffoldParams]) -> None:
        folder = request.target_path
        folder.mkdir(parents=True, exist_ok=True)
        tables = {}
        for source in request.params.source if request.params else []:
            path = Path(source).expanduser()
            if not path.is_file() or not path.name.lower().endswith(SOURCE_SUFFIXES):
                raise ConfigError(f"source '{source}' is not a {', '.join(SOURCE_SUFFIXES)} file",
                                  hint="pass --source once per table file")
            table = table_name(path)
            if table in tables:
                raise ConfigError(f"two sources make table '{table}'", hint="rename one of the files")
            shutil.copy2(path, folder / path.name)
            tables[table] = {"source": path.name}
        if not tables:  # a template to fill in
            tables[table_name(folder)] = {"source": f"{table_name(folder)}.csv"}
        attributes = {"backend": get_backend(None).name, "tables": tables,  # the installed default, said aloud
                      "train": {"max_training_time": 10.0}, "generate": {"sample_size": 10_000}}
        header = ("# A dataset synthesized by synth-assets: split -> stats -> encoded -> model -> synthetic -> quality.\n"
                  "# Sources are relative to this file. Add primary_key / foreign_keys / order_by to link tables;\n"
                  "# docs/project-file.md lists every key. Check it with `dg check defs`.\n")
        body = yaml.safe_dump({"type": request.type_name, "attributes": attributes}, sort_keys=False)
        (folder / "defs.yaml").write_text(header + body)


def table_name(path: Path) -> str:
    """`customers.csv.gz` -> `customers`: a table name made of letters, digits and underscores."""
    stem = path.name
    for suffix in sorted(SOURCE_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = "".join(c if c.isalnum() else "_" for c in stem)
    return name if name and not name[0].isdigit() else f"t_{name}"


@dg.scaffold_with(SynthDatasetScaffolder)
class SynthDataset(dg.Component, dg.Resolvable, dg.Model):
    """One dataset to synthesize, as an asset group: split -> stats -> encoded -> model -> synthetic -> quality,
    with blocking checks, write-audit-publish and automation on source change. Its keys are a synth.yaml
    dataset's (docs/project-file.md); `train` and `generate` take the chosen backend's options.

    The schema lists every key with its type, default and meaning (synth_assets.component_schema); the values are
    checked when the component loads, so that `dg check defs` names the very key at fault
    (`attributes.quality.max_dcr_share: ...`)."""

    name: str | None = Field(None, description="The asset group (and key prefix); default: this folder's name.")
    backend: str | None = Field(None, description="A registered backend (python -m synth_assets plugins); left out: "
                                                  "the one installed, or the one that is the default.")
    tables: dict[str, described(TableSpec)] = Field(description="Table name -> its source (a file relative to "
                                                                "defs.yaml), keys and column overrides.")
    split: described(SplitSpec) = Field(default_factory=dict, description="The train/holdout split.")
    train: described(TrainOptions) = Field(default_factory=dict, description="The backend's training options: "
                                           "these every backend takes, and its own (python -m synth_assets plugins).")
    generate: described(GenerateOptions) = Field(default_factory=dict, description="The backend's generation "
                                                 "options: these every backend takes, and its own.")
    quality: described(QualitySpec) = Field(default_factory=dict, description="The privacy gates and the scores.")
    privacy: described(PrivacySpec) = Field(default_factory=dict, description=PrivacySpec.__doc__)
    parts: described(PartsSpec) = Field(default_factory=dict, description="Large samples generated in parts.")
    publish: described(PublishSpec) = Field(default_factory=dict, description="Versions kept for rollback.")
    automation: described(AutomationSpec) = Field(default_factory=dict, description="Refreshing on source change.")
    kubernetes: described(KubernetesSpec) = Field(default_factory=dict, description=KubernetesSpec.__doc__)
    schedule: str | None = Field(None, description="Cron string for a regeneration schedule.")
    flows: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Flows after generation (docs/flows.md), "
                                             "each an asset flows/<name>; `input` defaults to this dataset.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        name = self.name or table_name(context.path)
        origin = context.path / "defs.yaml"
        raw = self.model_dump(mode="json", exclude={"name", "flows"}, exclude_unset=True)
        spec = parse_dataset(raw, origin=str(origin), prefix=("attributes",))
        flows = {flow: parse_flow({"input": {"dataset": name}, **keys}, origin=str(origin),
                                  prefix=("attributes", "flows", flow)) for flow, keys in self.flows.items()}
        try:
            project_spec = ProjectSpec(datasets={name: spec}, flows=flows)
        except ValueError as exc:
            raise ConfigError(f"{origin}: attributes: {exc}") from None
        project = Project(project_spec, origin, *default_home(context.project_root))
        return datasets_definitions(project, sensor_name=f"synth_automation_{name}")


class SynthProjectFile(dg.Component, dg.Resolvable, dg.Model):
    """Every dataset of a synth.yaml project file, each as an asset group (see SynthDataset)."""

    path: str | None = Field(None, description="The project file, relative to this defs.yaml; default: "
                                               "$SYNTH_CONFIG, else synth.yaml in the project root.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        config = (context.path / self.path) if self.path else None
        return datasets_definitions(load_project(context.project_root, config_path=config))


class SynthFlow(dg.Component, dg.Resolvable, dg.Model):
    """A flow: blocks chained over a dataset's synthetic table, a file or another flow's output (docs/flows.md),
    as the asset `flows/<name>`, checkpointed after each batch and published after its blocking checks.

        type: synth_assets.SynthFlow
        attributes:
          input: {dataset: customers}
          blocks:
            - {block_type: filter, block_config: {column: age, operator: ge, value: 18}}
    """

    name: str | None = Field(None, description="The flow's name (its asset is flows/<name>); default: this folder's.")
    input: described(FlowInput) = Field(description=FlowInput.__doc__)
    blocks: list[described(BlockSpec)] = Field(description="The blocks, in order: block_type, block_config, and "
                                                           "InstructLab's drop_duplicates and drop_columns.")
    batch_rows: int | None = Field(None, description=FlowSpec.model_fields["batch_rows"].description)
    seed: int = Field(0, description=FlowSpec.model_fields["seed"].description)
    min_rows: int = Field(1, description=FlowSpec.model_fields["min_rows"].description)
    keep_versions: int = Field(5, description=FlowSpec.model_fields["keep_versions"].description)
    description: str | None = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        name = self.name or table_name(context.path)
        origin = context.path / "defs.yaml"
        spec = parse_flow(self.model_dump(mode="json", exclude={"name"}, exclude_unset=True), origin=str(origin),
                          prefix=("attributes",))
        # the datasets it may read live in other components: checked when the flow runs, not here
        project = Project(ProjectSpec.model_construct(datasets={}, flows={name: spec}), origin,
                          *default_home(context.project_root))
        resources = {"storage": shared(SynthStorage(home=project.home_uri)), "compute": shared(ComputeDevice())}
        return dg.Definitions(assets=flow_assets(project), resources=resources)
