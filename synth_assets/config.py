"""The project file: datasets declared in `synth.yaml`, validated with pydantic.

`SYNTH_CONFIG` points at another file and `SYNTH_HOME` at another storage root. Unknown keys and
wrong types fail with a message that names the key path.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from synth_assets import object_store
from synth_assets.errors import ConfigError
from synth_assets.flow_spec import BlockErrors, FlowSpec
from synth_assets.options import SOURCE_SUFFIXES, GenerateOptions, TrainOptions, describe_error

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DP_OPTION = "differential_privacy"  # the train section a backend declares when it trains with DP


# the validation context's key for the installed backends, which synth_assets.project hands in: the models here
# never look the backends up themselves
BACKENDS = "backends"


class BackendCatalogue(Protocol):
    """The installed backends as validation needs them (plugins.InstalledBackends)."""

    def choose(self, name: str | None) -> Any:
        """The backend called `name` (None: the installed default); a ConfigError naming the choices otherwise."""

    def names(self, *, with_train_option: str | None = None) -> list[str]: ...


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForeignKey(StrictModel):
    """A column of this table that refers to the primary key of another table."""

    column: str
    references: str = Field(description="Name of the referenced table (its primary key).")


class ColumnSpec(StrictModel):
    """Per-column overrides; anything not given is inferred from the data."""

    encoding: str = Field("auto", description="auto, text (free text, written by a text model or by the "
                                              "backend itself), or one of the backend's `column_encodings` "
                                              "(TabularARGN: categorical, numeric, numeric_discrete, ...).")
    sensitive: bool = Field(False, description="The privacy evaluation measures how well the other columns (the "
                                               "quasi-identifiers) reveal this one's value for training rows.")


class TableSpec(StrictModel):
    source: str = Field(description="Path to a .csv, .csv.gz or .parquet file, relative to the project file.")
    primary_key: str | None = None
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list, description="Columns that order a child table's records "
                                                                  "under their parent (e.g. year).")
    time_steps: bool = Field(
        True, description="Where the first order_by column is a date or a number of many values, the stats keep each "
                          "record's step from the previous one, and a backend may draw times as steps; false: as "
                          "values.")
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    @field_validator("order_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _steps_need_an_order(self) -> "TableSpec":
        if not self.time_steps and not self.order_by:
            raise ValueError("time_steps: false is about the times in order_by, and this table has no order_by: "
                             "give order_by, or leave time_steps out")
        return self

    @field_validator("source")
    @classmethod
    def _known_suffix(cls, value: str) -> str:
        if not value.lower().endswith(SOURCE_SUFFIXES):
            raise ValueError(f"'{value}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return value


class SplitSpec(StrictModel):
    validation_share: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0


class QualitySpec(StrictModel):
    max_dcr_share: float = Field(
        0.6, gt=0, le=1, description="Blocking check: above this share of rows closer to training than holdout."
    )
    max_dcr_excess: float | None = Field(
        0.02, ge=0, le=1, description="Blocking check: the DCR share above its floor (real unseen rows judged the "
                                      "same way, in the same run), by more than three standard errors. "
                                      "null: not gated.")
    max_membership_auc: float | None = Field(
        0.6, ge=0.5, le=1, description="Blocking check: the AUC of a membership attack telling training subjects "
                                       "from unseen ones through the synthetic data, by more than three standard "
                                       "errors. null: not gated.")
    max_copy_excess: float | None = Field(
        0.01, ge=0, le=1, description="Blocking check: the share of synthetic subjects identical to a training one, "
                                      "above the share of unseen ones identical to one, by more than three standard "
                                      "errors. null: not gated.")
    max_text_copy_excess: float | None = Field(
        0.02, ge=0, le=1, description="Blocking check: per free-text column, the share of written texts identical to "
                                      "a training text too few subjects hold, above unseen texts' share, by more than "
                                      "three standard errors. null: not gated.")
    privacy_draws: int = Field(5, ge=1, le=50, description="Seeded draws the DCR share and its floor are averaged over.")
    max_rows: int = Field(10_000, ge=100, description="Rows sampled from each table to compute the scores.")


class PrivacySpec(StrictModel):
    """What the stats stage protects, for every backend (see docs/privacy.md)."""

    value_protection: bool = Field(
        True, description="Rare categories, extreme values and rare characters are withheld from the stats (and so "
                          "from the output). false: every value seen in training may come out; for data that is "
                          "not sensitive. With train.differential_privacy the protection is differentially private.")
    rare_threshold: int = Field(
        5, ge=2, le=1000, description="A value held by fewer subjects (rows, in a flat table) than this is rare: "
                                      "never shown, and ranges are clipped to the values this many reach.")


class PartsSpec(StrictModel):
    rows: int = Field(
        1_000_000, ge=1, description="A sample of more rows than this (of all its tables: a subject counts with as "
                                     "many records as training had a subject on average) is generated in parts of at "
                                     "most this many, each its own step with its own seed, run in parallel and then "
                                     "joined.")


class PublishSpec(StrictModel):
    keep_versions: int = Field(
        5, ge=1, description="Versions of the model and of the synthetic tables kept for rollback (the published "
                             "one is always kept).")


def _five_field_cron(value: str | None) -> str | None:
    if value is not None and len(value.split()) != 5:
        raise ValueError(f"'{value}' is not a cron string of five fields, e.g. '0 3 * * *'")
    return value


class AutomationSpec(StrictModel):
    on_source_change: bool = Field(
        True, description="Declarative automation refreshes the stages when a source file's content changes "
                          "(once the sensor synth_automation is turned on in the UI).")
    observe_sources: str = Field(
        "*/5 * * * *", description="Cron on which the source files are hashed to notice a change.")
    model_state: Literal["reuse", "reset"] = Field(
        "reuse", description="How runs started by automation train: reuse fine-tunes the published model (a fresh "
                             "one where the data's encoding changed); reset trains anew.")

    _cron = field_validator("observe_sources")(_five_field_cron)


# a GPU step's pod under Dagster's k8s_job_executor: one NVIDIA GPU, and leave to sit on the GPU node pool's taint
DEFAULT_GPU_STEP = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
    "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
}


class KubernetesSpec(StrictModel):
    """What the steps ask of Kubernetes when Dagster runs them as pods (k8s_job_executor); ignored elsewhere."""

    gpu_stages: list[Literal["model", "synthetic"]] = Field(
        default_factory=lambda: ["model", "synthetic"],
        description="Stages that run on a GPU pod (where the backend can use CUDA); the others run on CPU pods.")
    gpu_step: dict[str, Any] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_GPU_STEP),
        description="The dagster-k8s/config of a GPU stage's pod: container_config (resources), pod_spec_config "
                    "(tolerations, node_selector), ... (default: one nvidia.com/gpu and its toleration).")
    cpu_step: dict[str, Any] = Field(
        default_factory=dict, description="The dagster-k8s/config of the other stages' pods (e.g. CPU and memory "
                                          "requests under container_config.resources).")


class DatasetSpec(StrictModel):
    backend: str | None = Field(None, description="A registered backend (python -m synth_assets plugins); left out: "
                                                  "the one installed, or the one that is the default")
    tables: dict[str, TableSpec] = Field(min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    # the backend's own option models (its TrainOptions and GenerateOptions), validated against them
    train: SerializeAsAny[TrainOptions] = Field(default_factory=TrainOptions)
    generate: SerializeAsAny[GenerateOptions] = Field(default_factory=GenerateOptions)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    privacy: PrivacySpec = Field(default_factory=PrivacySpec)
    parts: PartsSpec = Field(default_factory=PartsSpec)
    publish: PublishSpec = Field(default_factory=PublishSpec)
    automation: AutomationSpec = Field(default_factory=AutomationSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    schedule: str | None = Field(None, description="Cron string for a regeneration schedule.")

    @model_validator(mode="before")
    @classmethod
    def _backend_options(cls, data: Any, info: ValidationInfo) -> Any:
        """Validate `train` and `generate` against the chosen backend's option models, and its capabilities, when
        the installed backends are handed in (synth_assets.project); a spec built in code keeps what it is given."""
        if not isinstance(data, dict):
            return data
        if "backend_options" in data:
            raise OptionErrors(["backend_options: no longer exists: backends declare their options; "
                                "put them under train: or generate:"])
        catalogue: BackendCatalogue | None = (info.context or {}).get(BACKENDS)
        if catalogue is None:
            return data
        try:
            backend = catalogue.choose(data.get("backend"))
        except ConfigError as exc:
            raise OptionErrors([f"backend: {exc.message} ({exc.hint})"] + _other_problems(data)) from None
        data = {**data, "backend": backend.name}
        problems = []
        for section, model in (("train", backend.TrainOptions), ("generate", backend.GenerateOptions)):
            value = data.get(section)
            if isinstance(value, model):
                continue
            if section == "train" and isinstance(value, dict) and DP_OPTION in value \
                    and DP_OPTION not in model.model_fields:
                problems.append(f"train.{DP_OPTION}: backend '{backend.name}' does not train with differential "
                                f"privacy; remove the section, or choose a backend that does "
                                f"({', '.join(catalogue.names(with_train_option=DP_OPTION)) or 'none is installed'})")
                continue
            if value is None:  # left out: the backend's defaults
                value = {}
            if isinstance(value, BaseModel):
                value = value.model_dump(exclude_unset=True)
            try:
                data[section] = model.model_validate(value)
            except ValidationError as exc:
                problems += [describe_error(e, prefix=(section,)) for e in exc.errors()]
        problems += _unknown_encodings(data.get("tables"), backend)
        problems += _private_text_problems(data.get("tables"), backend, data.get("train"))
        generate = data.get("generate")
        if isinstance(generate, GenerateOptions):
            problems += [f"generate.{name}: {why}" for name, why in backend.unsupported_options(generate).items()]
            if isinstance(data.get("train"), TrainOptions):
                problems += backend.option_problems(data["train"], generate)
        if problems:
            raise OptionErrors(problems + _other_problems(data))
        return data

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: dict[str, TableSpec]) -> dict[str, TableSpec]:
        for name in tables:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"table name '{name}' must be letters, digits and underscores")
        return tables

    _cron = field_validator("schedule")(_five_field_cron)

    @property
    def differential_privacy(self):
        """The `train.differential_privacy` section (a `DifferentialPrivacy`), or None without DP."""
        return getattr(self.train, DP_OPTION, None)

    @model_validator(mode="after")
    def _dp_needs_value_protection(self) -> "DatasetSpec":
        if self.differential_privacy is not None and not self.privacy.value_protection:
            raise ValueError("privacy.value_protection: false leaves every value of the stats unprotected, so no ε "
                             "would hold: turn value protection on, or remove train.differential_privacy")
        return self

    @model_validator(mode="after")
    def _keys_refer_to_tables(self) -> "DatasetSpec":
        for name, table in self.tables.items():
            if table.order_by and not table.foreign_keys:
                raise ValueError(f"table '{name}': order_by orders records under a parent, but the table has no "
                                 "foreign_keys")
            for fk in table.foreign_keys:
                if fk.references == name:  # employee -> manager: a graph, not a tree of tables
                    raise ValueError(
                        f"table '{name}': foreign key '{fk.column}' references the table itself; no backend models "
                        "a table that refers to its own rows yet: remove the foreign key (the column is then "
                        "modelled as a plain one)")
                if fk.references not in self.tables:
                    raise ValueError(
                        f"table '{name}': foreign key '{fk.column}' references unknown table '{fk.references}'"
                    )
                if self.tables[fk.references].primary_key is None:
                    raise ValueError(
                        f"table '{name}': foreign key '{fk.column}' references table '{fk.references}',"
                        " which has no primary_key"
                    )
        return self

    def unsupported_shape(self, backend) -> str | None:
        """Why `backend` (this dataset's) cannot model these tables, or None. Checked on loading a project file and
        before a pipeline runs (not on parsing alone, so that the core's stages can be used on any tree)."""
        why = backend.unsupported_shape({n: t.foreign_keys for n, t in self.tables.items()})
        return f"{why}; choose another backend, or change the tables' keys" if why else None


class ProjectSpec(StrictModel):
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    flows: dict[str, FlowSpec] = Field(default_factory=dict, description="Chains of blocks over a dataset's "
                                       "synthetic table, a file or another flow's output (synth_assets.flow_spec).")

    @field_validator("datasets", "flows")
    @classmethod
    def _names(cls, entries: dict, info: ValidationInfo) -> dict:
        for name in entries:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"{info.field_name[:-1]} name '{name}' must be letters, digits and underscores")
        return entries

    @model_validator(mode="after")
    def _flow_inputs_exist(self) -> "ProjectSpec":
        for name, flow in self.flows.items():
            where = f"flows.{name}.input"
            source = flow.input
            if source.dataset is not None:
                if source.dataset not in self.datasets:
                    raise ValueError(f"{where}.dataset: no dataset '{source.dataset}' (known: "
                                     f"{', '.join(self.datasets) or 'none'})")
                tables = self.datasets[source.dataset].tables
                if source.table is not None and source.table not in tables:
                    raise ValueError(f"{where}.table: dataset '{source.dataset}' has no table '{source.table}' "
                                     f"(its tables: {', '.join(tables)})")
                if source.table is None and len(tables) > 1:
                    raise ValueError(f"{where}.table: dataset '{source.dataset}' has {len(tables)} tables; name one "
                                     f"({', '.join(tables)})")
            if source.flow is not None and source.flow not in self.flows:
                raise ValueError(f"{where}.flow: no flow '{source.flow}' (known: {', '.join(self.flows)})")
        for name in self.flows:  # a flow reading itself, through others or not, would never start
            seen, current = [name], self.flows[name].input.flow
            while current is not None:
                if current in seen:
                    raise ValueError(f"flows.{name}.input.flow: the flows read each other in a circle "
                                     f"({' -> '.join([*seen, current])})")
                seen.append(current)
                current = self.flows[current].input.flow
        return self


class Project:
    """A loaded project file together with where its sources and outputs live."""

    def __init__(self, spec: ProjectSpec, config_path: Path, home: Path, store=None):
        self.spec = spec
        self.config_path = config_path
        self.home = home  # with an object store (`store`), the local scratch folder it is mirrored through
        self.store = store

    @property
    def home_uri(self) -> str:
        """The storage root as the user gave it: the object store's URL, or the local folder."""
        return self.store.url if self.store is not None else str(self.home)

    def mirror(self, dataset: str):
        """The dataset's outputs in the object store, or None for a local storage root."""
        if self.store is None:
            return None
        return object_store.Mirror(self.store, self.dataset_home(dataset), dataset)

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        return self.spec.datasets

    def dataset(self, name: str) -> DatasetSpec:
        try:
            return self.spec.datasets[name]
        except KeyError:
            raise ConfigError(
                f"no dataset '{name}' in {self.config_path}", hint=f"known: {', '.join(self.datasets) or 'none'}"
            ) from None

    def source_path(self, dataset: str, table: str) -> Path:
        return self.relative_path(self.dataset(dataset).tables[table].source)

    def dataset_home(self, dataset: str) -> Path:
        return self.home / dataset

    @property
    def flows(self) -> dict[str, FlowSpec]:
        return self.spec.flows

    def flow(self, name: str) -> FlowSpec:
        try:
            return self.spec.flows[name]
        except KeyError:
            raise ConfigError(f"no flow '{name}' in {self.config_path}",
                              hint=f"known: {', '.join(self.flows) or 'none'}") from None

    def relative_path(self, source: str) -> Path:
        """A file the project file names, relative to it unless absolute."""
        path = Path(source).expanduser()
        return path if path.is_absolute() else self.config_path.parent / path

    def stored_at(self, home: Path | str) -> "Project":
        """The same datasets, writing to another storage root (the `storage` resource's)."""
        return Project(self.spec, self.config_path, *storage_root(home, "the storage resource's home"))


def default_home(root: Path) -> tuple[Path, Any]:
    """Where stages are written: `$SYNTH_HOME`, else `.synth/` in the project root (see `storage_root`)."""
    return storage_root(os.environ.get("SYNTH_HOME") or Path(root) / ".synth", "SYNTH_HOME")


def storage_root(home: str | Path, where: str) -> tuple[Path, Any]:
    """The local folder stages are written to, and the object store it mirrors (None for a local root). An
    object store's URL (s3://, gs://) is opened as one, never taken for a local folder named 's3:'."""
    text = str(home)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif object_store.is_url(text):
        store = object_store.ObjectStore(text, where)
        return object_store.scratch_for(text), store
    return Path(text).expanduser().resolve(), None


def _other_problems(data: dict) -> list[str]:
    """The problems of a dataset's keys besides `train` and `generate`, checked as if those were right: raising the
    backend's problems stops pydantic before the other sections, so a user would otherwise meet a bad `quality` key
    only after fixing `train`. One report names every key at fault."""
    rest = {key: value for key, value in data.items() if key not in ("train", "generate")}
    try:
        DatasetSpec.model_validate(rest)  # no backends handed in: the sections the core declares
    except ValidationError as exc:
        return [describe_error(error) for error in exc.errors()]
    return []


def _column_encodings(tables: Any) -> list[tuple[str, str, str]]:
    """(table, column, `encoding:` word) of each column override, from a spec still being validated."""
    out = []
    for table, spec in (tables or {}).items() if isinstance(tables, dict) else ():
        columns = spec.get("columns") if isinstance(spec, dict) else getattr(spec, "columns", None)
        for column, override in (columns or {}).items() if isinstance(columns, dict) else ():
            word = override.get("encoding", "auto") if isinstance(override, dict) else getattr(override, "encoding", "auto")
            out.append((table, column, word))
    return out


def _unknown_encodings(tables: Any, backend) -> list[str]:
    """Per-column `encoding:` words the backend does not know."""
    known = ["auto", *backend.encoding_hints()]
    return [f"tables.{table}.columns.{column}.encoding: backend '{backend.name}' takes {', '.join(known)}; not "
            f"{word!r}" for table, column, word in _column_encodings(tables) if word not in known]


def _private_text_problems(tables: Any, backend, train: Any) -> list[str]:
    """With differential privacy, free text needs a backend that writes it under its own DP-SGD: a text model
    beside the backend trains without it."""
    if getattr(train, DP_OPTION, None) is None or backend.writes_text:
        return []
    return [f"tables.{table}.columns.{column}.encoding: free text is not covered by backend '{backend.name}''s "
            f"differential privacy (its texts come from a text model trained without it): use backend llm, whose "
            f"DP-SGD covers the texts it writes, or encode the column as categorical"
            for table, column, word in _column_encodings(tables) if word == "text"]


class OptionErrors(ValueError):
    """Problems with a dataset's backend and options, each as 'key.path: what is wrong'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def describe_errors(exc: ValidationError, prefix: tuple = ()) -> str:
    """A validation error's problems in one line, each naming its key path (under `prefix`)."""
    return "; ".join(line for error in exc.errors() for line in _describe(error, prefix))


def _describe(error: dict, prefix: tuple = ()) -> list[str]:
    found = (error.get("ctx") or {}).get("error")
    if isinstance(found, (OptionErrors, BlockErrors)):  # a dataset's options, a block's: each key under its path
        where = ".".join(str(part) for part in (*prefix, *error["loc"]))
        return [f"{where}.{problem}" if where else problem for problem in found.problems]
    return [describe_error(error, prefix=prefix)]
