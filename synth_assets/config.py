"""The project file: datasets declared in `synth.yaml`, validated with pydantic.

`SYNTH_CONFIG` points at another file and `SYNTH_HOME` at another storage root. Unknown keys and
wrong types fail with a message that names the key path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synth_assets.errors import ConfigError

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForeignKey(StrictModel):
    """A column of this table that refers to the primary key of another table."""

    column: str
    references: str = Field(description="Name of the referenced table (its primary key).")


class ColumnSpec(StrictModel):
    """Per-column overrides; anything not given is inferred from the data."""

    encoding: Literal["auto", "categorical", "numeric", "numeric_discrete", "numeric_binned", "numeric_digit",
                      "datetime", "character", "lat_long"] = Field(
        "auto", description="auto, or force one; 'numeric' lets the stats stage pick among the numeric ones.")


class TableSpec(StrictModel):
    source: str = Field(description="Path to a .csv, .csv.gz or .parquet file, relative to the project file.")
    primary_key: str | None = None
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _known_suffix(cls, value: str) -> str:
        if not value.lower().endswith(SOURCE_SUFFIXES):
            raise ValueError(f"'{value}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return value


class SplitSpec(StrictModel):
    validation_share: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0


class TrainSpec(StrictModel):
    max_training_time: float = Field(10.0, gt=0, description="Minutes.")
    max_epochs: int = Field(100, ge=1)
    model_size: Literal["small", "medium", "large"] = "medium"
    batch_size: int | None = Field(None, ge=1, description="Rows per batch; chosen from the data size if unset.")
    learning_rate: float | None = Field(None, gt=0, description="AdamW's; chosen from the batch size if unset.")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Share of hidden units dropped while training; chosen from the data size if unset.")
    early_stopping_patience: int = Field(4, ge=1, description="Epochs without validation improvement.")
    seed: int | None = Field(0, description="Same seed and data: same model.")
    flexible_generation: bool = Field(
        True, description="Train on a random column order per batch, so any columns can condition the rest.")
    model_state: Literal["reset", "reuse", "resume"] = Field(
        "reset", description="reset: train anew; reuse: fine-tune the last model; resume: continue an interrupted training.")


class Rebalancing(StrictModel):
    """Target shares for the categories of one categorical column; the rest keep their relative shares."""

    column: str
    probabilities: dict[str, float] = Field(description="category -> share of generated rows (sum at most 1)")

    @field_validator("probabilities")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one category")
        if any(not 0 <= share <= 1 for share in value.values()) or sum(value.values()) > 1 + 1e-9:
            raise ValueError("shares must lie in [0, 1] and sum to at most 1")
        return value


class Imputation(StrictModel):
    """Columns that get no nulls: nulls in the seed data are filled, generated rows have none."""

    columns: list[str] = Field(min_length=1)


class Fairness(StrictModel):
    """Statistical parity: the target's distribution is the same for every value of the sensitive columns."""

    target_column: str
    sensitive_columns: list[str] = Field(min_length=1)


class GenerateSpec(StrictModel):
    sample_size: int | None = Field(None, ge=1, description="Rows of the subject table; default: training rows.")
    seed: int | None = Field(None, description="Same seed, same model: same rows.")
    sampling_temperature: float = Field(1.0, gt=0, description="Below 1: more typical rows; above 1: more diverse.")
    sampling_top_p: float = Field(1.0, gt=0, le=1, description="Sample only from the most likely values holding this share.")
    rare_category_replacement: Literal["constant", "sample"] = Field(
        "constant", description="Protected rare categories: the constant _RARE_, or a sample of common categories.")
    seed_data: str | None = Field(
        None, description="A .csv/.parquet of column values to condition on: one generated row per seed row, "
                          "seed values kept. Relative to the project file.")
    rebalancing: Rebalancing | None = None
    imputation: Imputation | None = None
    fairness: Fairness | None = None

    @field_validator("seed_data")
    @classmethod
    def _seed_suffix(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith(SOURCE_SUFFIXES):
            raise ValueError(f"'{value}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return value


class QualitySpec(StrictModel):
    max_dcr_share: float = Field(
        0.6, gt=0, le=1, description="Blocking check: above this share of rows closer to training than holdout."
    )
    max_rows: int = Field(10_000, ge=100, description="Rows sampled from each table to compute the scores.")


class DatasetSpec(StrictModel):
    backend: str = "tabular_argn"
    tables: dict[str, TableSpec] = Field(min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    generate: GenerateSpec = Field(default_factory=GenerateSpec)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    schedule: str | None = Field(None, description="Cron string for a regeneration schedule.")
    backend_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: dict[str, TableSpec]) -> dict[str, TableSpec]:
        for name in tables:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"table name '{name}' must be letters, digits and underscores")
        return tables

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a cron string of five fields, e.g. '0 3 * * *'")
        return value

    @model_validator(mode="after")
    def _keys_refer_to_tables(self) -> "DatasetSpec":
        for name, table in self.tables.items():
            for fk in table.foreign_keys:
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


class ProjectSpec(StrictModel):
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, datasets: dict[str, DatasetSpec]) -> dict[str, DatasetSpec]:
        for name in datasets:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"dataset name '{name}' must be letters, digits and underscores")
        return datasets


class Project:
    """A loaded project file together with where its sources and outputs live."""

    def __init__(self, spec: ProjectSpec, config_path: Path, home: Path):
        self.spec = spec
        self.config_path = config_path
        self.home = home

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
        source = Path(self.dataset(dataset).tables[table].source).expanduser()
        return source if source.is_absolute() else self.config_path.parent / source

    def dataset_home(self, dataset: str) -> Path:
        return self.home / dataset


def _describe(error: dict) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    return f"{path}: {error['msg']}" if path else error["msg"]


def parse_project(raw: Any, origin: str = "synth.yaml") -> ProjectSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping with a 'datasets' key")
    try:
        return ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"{origin}: {problems}", hint="see README.md for the keys synth.yaml accepts") from None


def load_project(root: Path | None = None) -> Project:
    """Read the project file: `$SYNTH_CONFIG`, else `<root>/synth.yaml`; storage at `$SYNTH_HOME`, else `<root>/.synth`."""
    root = Path(root or Path.cwd()).resolve()
    config_path = Path(os.environ.get("SYNTH_CONFIG") or root / "synth.yaml").expanduser().resolve()
    home = Path(os.environ.get("SYNTH_HOME") or root / ".synth").expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(
            f"project file {config_path} not found", hint="create synth.yaml or point SYNTH_CONFIG at one"
        )
    try:
        raw = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML ({exc})") from None
    return Project(parse_project(raw, origin=str(config_path)), config_path, home)
