"""The interface every model backend implements. Backends know neither Dagster nor the YAML file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import pandas as pd

from synth_assets.config import Fairness, Imputation, Rebalancing
from synth_assets.errors import SynthError
from synth_assets.stages.split import Split
from synth_assets.stages.stats import DatasetStats

# What a dataset may look like; a backend lists the shapes it can model.
FLAT = "flat"  # one table, no foreign keys
SEQUENTIAL = "sequential"  # a context table and one child table of ordered records
RELATIONAL = "relational"  # a tree of tables linked by foreign keys


def dataset_shape(stats: DatasetStats) -> str:
    tables = list(stats.tables.values())
    if len(tables) == 1 and not tables[0].foreign_keys:
        return FLAT
    children = [t for t in tables if t.foreign_keys]
    if len(tables) == 2 and len(children) == 1 and len(children[0].foreign_keys) == 1:
        return SEQUENTIAL
    return RELATIONAL


@dataclass(frozen=True)
class TrainOptions:
    max_training_time: float  # minutes
    max_epochs: int
    model_size: str = "medium"
    batch_size: int | None = None
    learning_rate: float | None = None
    dropout: float | None = None  # None: the backend chooses from the data size
    early_stopping_patience: int = 4
    seed: int | None = 0
    flexible_generation: bool = True
    model_state: str = "reset"  # reset | reuse | resume
    device: str = "auto"  # auto | cpu | cuda
    backend_options: dict[str, Any] = field(default_factory=dict)
    previous_model: Path | None = None  # the last finished checkpoint, for reuse and resume
    resume_dir: Path | None = None  # where an unfinished training keeps its state between epochs


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    best_validation_loss: float
    seconds: float
    stopped_because: str  # "converged", "time budget", "max epochs"
    device: str
    parameters: int
    progress: list[dict] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # what the backend chose: batch size, learning rate, ...


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate. Field meanings are those of `synth_assets.config.GenerateSpec`."""

    sample_size: int | None = None  # rows of the subject table; None = as many as in training
    seed: int | None = None
    sampling_temperature: float = 1.0
    sampling_top_p: float = 1.0
    rare_category_replacement: str = "constant"  # constant | sample
    seed_data: pd.DataFrame | None = None  # one row per generated row; its values are kept
    rebalancing: Rebalancing | None = None
    imputation: Imputation | None = None
    fairness: Fairness | None = None
    device: str = "auto"


ProgressCallback = Callable[[dict], None]


class Backend(ABC):
    """A model backend: turns a split into an encoding, trains a checkpoint, and generates tables.

    A plugin provides it by returning the class (or an instance) from the `synth_register_backends` hook.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    supports: ClassVar[frozenset[str]] = frozenset({FLAT})
    kinds: ClassVar[frozenset[str]] = frozenset()  # shown as badges on the model asset in the UI

    def check_dataset(self, stats: DatasetStats) -> None:
        """Raise a SynthError if this backend cannot model the dataset as declared."""
        shape = dataset_shape(stats)
        if shape not in self.supports:
            raise SynthError(
                f"backend '{self.name}' models {', '.join(sorted(self.supports))} data, but this dataset is {shape}",
                dataset=stats.dataset,
                hint="choose another backend in synth.yaml or change the tables' keys",
            )

    @abstractmethod
    def encode(self, split: Split, stats: DatasetStats, out_dir: Path) -> dict[str, Any]:
        """Write the backend's encoding of both partitions under `out_dir`; return metadata to show."""

    @abstractmethod
    def train(
        self, encoded_dir: Path, stats: DatasetStats, options: TrainOptions, out_dir: Path,
        progress: ProgressCallback | None = None,
    ) -> TrainResult:
        """Train on the encoded data and write a checkpoint folder to `out_dir` (no pickles)."""

    @abstractmethod
    def generate(self, model_dir: Path, stats: DatasetStats, request: GenerateRequest) -> dict[str, pd.DataFrame]:
        """Generate one frame per table from a checkpoint. Key columns may be left out: the core adds them."""
