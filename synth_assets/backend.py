"""The interface every model backend implements. Backends know neither Dagster nor the YAML file.

A backend is a class with a `name`, its `capabilities`, its option models (`TrainOptions`,
`GenerateOptions`: subclasses of the bases in `synth_assets.options`) and three stages: `encode`,
`train`, `generate`. Plugins import what they need from `synth_assets.plugin_api`.
"""

from __future__ import annotations

import functools
import importlib.metadata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import pandas as pd
from pydantic import BaseModel

from synth_assets.hookspecs import PROJECT
from synth_assets.errors import SynthError
from synth_assets.options import CONDITIONING, GenerateOptions, TrainOptions
from synth_assets.stages.split import Split
from synth_assets.stages.stats import HINTS, DatasetStats

# What a dataset may look like; a backend lists the shapes it can model.
FLAT = "flat"  # one table, no foreign keys
SEQUENTIAL = "sequential"  # a context table and one child table of ordered records
RELATIONAL = "relational"  # a tree of tables linked by foreign keys
DEVICES = ("cpu", "cuda")


def dataset_shape(foreign_keys: dict[str, Iterable]) -> str:
    """The shape of a dataset, from each table's foreign keys."""
    keys = {table: list(fks) for table, fks in foreign_keys.items()}
    if len(keys) == 1 and not next(iter(keys.values())):
        return FLAT
    children = [fks for fks in keys.values() if fks]
    if len(keys) == 2 and len(children) == 1 and len(children[0]) == 1:
        return SEQUENTIAL
    return RELATIONAL


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. The core checks requests against it before any work starts."""

    shapes: frozenset[str] = frozenset({FLAT})
    seed_data: bool = False  # condition on given column values, one generated row per seed row
    rebalancing: bool = False
    imputation: bool = False
    fairness: bool = False
    predict: bool = False  # predict / predict_proba in its Python API
    seed_records: bool = False  # in a tree: continue the given first records of seed_data's subjects
    devices: frozenset[str] = frozenset({"cpu"})  # where it trains and generates

    def listed(self) -> list[str]:
        """Everything supported, as words (for `python -m synth_assets plugins`)."""
        flags = [name for name in (*CONDITIONING, "predict", "seed_records") if getattr(self, name)]
        return [*sorted(self.shapes), *flags, *sorted(self.devices)]


class ProgressRecord(BaseModel):
    """One epoch of training, as reported to the progress callback and kept in `progress.json`."""

    epoch: int
    train_loss: float
    validation_loss: float
    seconds: float  # since training started
    learning_rate: float | None = None

    def log_line(self) -> str:
        """How an epoch reads in a run's log, whether training runs in the step or reports over Pipes."""
        return (f"epoch {self.epoch}: train loss {self.train_loss:.4f}, validation loss {self.validation_loss:.4f}, "
                f"{self.seconds:.0f}s")


ProgressCallback = Callable[[ProgressRecord], None]


@dataclass(frozen=True)
class TrainRequest:
    """One training run: the user's options and what the core decided for it."""

    options: TrainOptions  # an instance of the backend's own TrainOptions
    device: str = "auto"  # auto | cpu | cuda
    previous_model: Path | None = None  # the last finished checkpoint, for reuse and resume
    resume_dir: Path | None = None  # where an unfinished training keeps its state between epochs
    progress: ProgressCallback | None = None


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    best_validation_loss: float
    seconds: float
    stopped_because: str  # "converged", "time budget", "max epochs"
    device: str
    parameters: int
    progress: list[ProgressRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # what the backend chose: batch size, learning rate, ...
    model_state: str | None = None  # how training started (reset, reuse, resume): the core fills it in
    # with differential privacy, the model's ledger summary (privacy_budget.PrivacyLedger.summary: epsilon, delta,
    # epsilon_training, epsilon_value_protection, steps); its privacy.json lies beside the weights
    privacy: dict[str, Any] | None = None


@dataclass(frozen=True)
class GenerateRequest:
    """One generation run: the user's options, the seed rows (read by the core), and the device."""

    options: GenerateOptions  # an instance of the backend's own GenerateOptions
    seed_data: pd.DataFrame | None = None  # one row per generated row; its values are kept
    device: str = "auto"
    engine: BaseModel | None = None  # the backend's EngineOptions, from its Dagster resource (None: defaults)
    # child table of the root -> the first records of seed_data's subjects, to be continued: the table's own columns
    # and SEED_PARENT, the position of the record's subject among the seed rows; a subject's records in order
    seed_records: dict[str, pd.DataFrame] | None = None
    # the dataset's encoded stage (the backend's own encoding of both partitions), fetched on first call: for tasks
    # that start from real samples, which therefore never need a copy inside the model a user may share
    encoded: Callable[[], Path] | None = field(default=None, compare=False)
    # for a backend that writes free text itself (`Backend.writes_text`): table -> column -> the TextFilter every
    # written text must pass (kept words and characters, the length, no rare training text). A backend may write
    # a text that fails again; the core cuts from it what still fails
    text_filters: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    # figures the backend wants shown on the synthetic asset (decode rate, retries, ...): it fills this in.
    # DRAW_SECONDS there is the time spent drawing rows, without imports and model loading
    report: dict[str, Any] = field(default_factory=dict, compare=False)


DRAW_SECONDS = "draw_seconds"
SEED_PARENT = "@seed_parent"  # a seed record's subject: its position among the seed rows (GenerateRequest.seed_records)


def tree_problem(backend: str, foreign_keys: dict[str, Iterable]) -> str | None:
    """Why tables with these foreign keys are not one tree (one root, one foreign key per other table), or None."""
    keys = {table: list(fks) for table, fks in foreign_keys.items()}
    several = [table for table, fks in keys.items() if len(fks) > 1]
    if several:
        return (f"backend '{backend}' models trees of tables (one foreign key per table), but table "
                f"'{several[0]}' has {len(keys[several[0]])}")
    if sum(1 for fks in keys.values() if not fks) > 1:
        return f"backend '{backend}' models one tree of tables: one table without foreign keys, the others linked to it"
    return None


class Backend(ABC):
    """A model backend: turns a split into an encoding, trains a checkpoint, and generates tables.

    A plugin provides it by returning the class (or an instance) from the `synth_register_backends` hook.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    TrainOptions: ClassVar[type[TrainOptions]] = TrainOptions
    GenerateOptions: ClassVar[type[GenerateOptions]] = GenerateOptions
    # settings of the machine that generates, shared by every dataset of this backend (which engine, how much
    # memory it takes): a pydantic model whose fields all have defaults; Dagster shows it as the resource
    # `<name>_engine`, configurable per deployment or in the launchpad, and `generate` gets it as request.engine
    EngineOptions: ClassVar[type[BaseModel] | None] = None
    kinds: ClassVar[frozenset[str]] = frozenset()  # shown as badges on the model asset in the UI
    # the backend a dataset that names none gets when several are installed (with one installed, that one);
    # at most one installed backend may claim it
    default: ClassVar[bool] = False
    # whether the backend writes free-text columns (stats text_form "text") itself; if not, it never sees them,
    # and a text model writes them (text_columns.py)
    writes_text: ClassVar[bool] = False
    # the per-column `encoding:` words synth.yaml may use with this backend, each with what it asks the stats
    # stage to treat the column as (one of stats.HINTS); the word itself reaches `encode` in the stats
    column_encodings: ClassVar[dict[str, str]] = {hint: hint for hint in HINTS}

    def encoding_hints(self) -> dict[str, str]:
        """Every per-column `encoding:` word a dataset of this backend may use: its own, and `text`, which the
        core takes for every backend (a text model writes the column where the backend writes no text)."""
        return {**self.column_encodings, "text": "text"}

    # checks the core runs before any work ----------------------------------------------------------
    def unsupported_shape(self, foreign_keys: dict[str, Iterable]) -> str | None:
        """Why this backend cannot model tables with these foreign keys, or None."""
        shape = dataset_shape(foreign_keys)
        if shape in self.capabilities.shapes:
            return None
        return f"backend '{self.name}' models {', '.join(sorted(self.capabilities.shapes))} data, but this dataset is {shape}"

    def unsupported_options(self, options: GenerateOptions, seed_data_given: bool = False) -> dict[str, str]:
        """Generate option name -> why this backend cannot honour it, for each one asked for."""
        asked = {name for name in CONDITIONING if getattr(options, name, None) is not None}
        if seed_data_given:
            asked.add("seed_data")
        return {
            name: f"backend '{self.name}' does not support {name.replace('_', ' ')}"
            for name in CONDITIONING if name in asked and not getattr(self.capabilities, name)
        }

    def option_problems(self, train: TrainOptions, generate: GenerateOptions) -> list[str]:
        """What the train and generate sections ask together that this backend cannot honour, each as
        "generate.<key>: why" (a generate option for another kind of model, say): named when the project loads."""
        return []

    def check_device(self, device: str) -> None:
        if device != "auto" and device not in self.capabilities.devices:
            raise SynthError(f"backend '{self.name}' runs on {', '.join(sorted(self.capabilities.devices))}, not {device}",
                             hint="set the compute device (SYNTH_DEVICE or the launchpad's compute resource) to auto")

    def check_request(self, options: GenerateOptions, *, seed_data_given: bool = False,
                      dataset: str | None = None) -> None:
        problems = self.unsupported_options(options, seed_data_given)
        if problems:
            name, why = next(iter(problems.items()))
            raise SynthError(f"generate.{name}: {why}", dataset=dataset,
                             hint=f"remove generate.{name}, or choose a backend that supports it")

    # the stages ------------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, split: Split, stats: DatasetStats, out_dir: Path) -> dict[str, Any]:
        """Write the backend's encoding of both partitions under `out_dir`; return metadata to show."""

    @abstractmethod
    def train(self, encoded_dir: Path, stats: DatasetStats, request: TrainRequest, out_dir: Path) -> TrainResult:
        """Train on the encoded data and write a checkpoint folder to `out_dir` (no pickles)."""

    @abstractmethod
    def generate(self, model_dir: Path, stats: DatasetStats, request: GenerateRequest) -> dict[str, pd.DataFrame]:
        """Generate one frame per table from a checkpoint.

        Key contract: a table that another table refers to carries its primary key column, filled with keys of
        the backend's own choosing (any unique values); children carry their foreign key columns holding those
        keys. The core then writes fresh keys everywhere and checks that every foreign key resolves. A table
        nobody refers to may leave its primary key out."""


def resolve_device(device: str) -> str:
    """The one device rule of every backend that runs torch: `auto` takes CUDA where torch sees a GPU, else the
    CPU; `cuda` where torch sees none is an error that says what to do (never a silent fall back to the CPU)."""
    import torch  # only a backend that runs torch asks, so the core loads without it

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SynthError("the compute device is cuda, but torch sees no GPU on this machine",
                         hint="set the compute device (SYNTH_DEVICE or the launchpad's compute resource) to auto "
                              "or cpu, or run on a machine with CUDA")
    return device


def backend_code_version(backend: Backend) -> str:
    """The backend's name and its package's version: a Dagster code version, so switching backends or upgrading
    one marks the models trained before as stale."""
    return f"{backend.name}-{_package_version(type(backend).__module__.split('.')[0])}"


@functools.lru_cache(maxsize=None)
def _package_version(module: str) -> str:
    """The version of the distribution whose `synth_assets` entry point lives in the package `module` (read from
    the entry points, not from every installed package's file list, which costs a code location 0.5 s)."""
    for entry_point in importlib.metadata.entry_points(group=PROJECT):
        if entry_point.module.split(".")[0] == module and entry_point.dist is not None:
            return entry_point.dist.version
    return "unversioned"
