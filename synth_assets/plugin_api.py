"""Everything a backend plugin may import from synth-assets, in one place.

A backend built on these names keeps working while the core changes underneath; anything else in
`synth_assets` is internal. The parts:

- registering: `hookimpl` (mark `synth_register_backends` with it);
- the interface: `Backend`, `Capabilities`, the dataset shapes (`FLAT`, `SEQUENTIAL`, `RELATIONAL`), and what
  each stage receives and returns (`TrainRequest`, `TrainResult`, `ProgressRecord`, `GenerateRequest`);
- options: `Options` (a strict pydantic model), `TrainOptions` and `GenerateOptions`, the bases of a backend's own option models, and the
  conditioning groups (`Rebalancing`, `Imputation`, `Fairness`); `DifferentialPrivacy`, the section a backend
  that trains with DP-SGD adds to its TrainOptions as `differential_privacy` (and reports what it spent in
  `TrainResult.privacy`);
- the data a backend receives: `Split` (train and validation frames per table; `context_key` gives a table's
  link to its parent in the tree, `parent_first` orders tables parents first) and the backend-neutral stats
  (`DatasetStats`, `TableStats`, `ColumnStats`), whose categories and ranges already obey the privacy rules
  (`RARE_THRESHOLD`, `RARE_TOKEN`), and the value helpers the stats use for text codes, coordinates and dates;
  a backend chooses its own encodings from them, and maps the per-column `encoding:` words it takes to `HINTS`
  (`Backend.column_encodings`);
- training with torch: `resolve_device` (the one device rule) and `adamw` (the one optimiser: AdamW, fused where
  torch has the kernel);
- differential privacy's bookkeeping: `start_ledger` (the ledger a DP training adds its steps to), `continue_ledger`
  (what a reused or resumed checkpoint spent, added), `PrivacyLedger.steps_within` (how many DP-SGD steps the budget leaves),
  `save_ledger` (beside the checkpoint, as `LEDGER_FILE`), `budget_spent`, `budget_share` (a tree's models);
  and DP-SGD's machinery, `PrivateOptimizer` (opacus's ghost clipping around a model and its optimiser, Poisson
  sampling, a private step) and `BudgetedSteps` (a backend's private steps as its training loop sees the budget);
- files: `write_parquet`, `read_parquet`, `write_json`, `read_json`, `atomic_dir` (write, then rename), and
  `recover_dir` (a folder a killed writer left aside, put back);
- text models (text_model.py): `TextModel`, registered with the `synth_register_text_models` hook, writes the
  free-text columns of datasets whose backend writes none (`Backend.writes_text`), from `TextTrainRequest` (its
  `TextExample`s) and `TextGenerateRequest`; `words` and `WORD`, what a word of a text is (the stats' rule),
  `cut_at_word`, `TextFilter`, what a written text may hold (a backend that writes text itself keeps its
  training samples to it), and `text_columns`, a dataset's free-text columns per table;
- flow blocks (blocks.py): `Block`, registered with the `synth_register_blocks` hook, its `BlockConfig` (the
  block_config keys), the `BlockContext` the flow runner gives it and the `BlockFigures` a user sees;
  `DatasetPaths`, where a dataset's stages are stored (a block that reads a dataset's published model);
- given samples as tables (root rows with their key, child records naming them): `link_records` turns them into
  a request's seed rows and `seed_records` (SEED_PARENT), as synth.yaml's generate.seed_records does;
- errors: `SynthError` (a problem the user can fix: name the table and column, say what to do), and
  `IncompatibleModel` (the published model cannot be reused or resumed: the data's encoding changed);
- for a backend's own Python API (fit / sample on DataFrames): `run_on_frames` runs the core's stages on
  in-memory tables in a workspace folder, `open_workspace` opens one again, and `parse_options` turns keyword
  arguments into the backend's option models with clear errors.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from synth_assets.backend import (
    FLAT,
    RELATIONAL,
    SEQUENTIAL,
    Backend,
    Capabilities,
    DRAW_SECONDS,
    SEED_PARENT,
    GenerateRequest,
    ProgressCallback,
    ProgressRecord,
    TrainRequest,
    TrainResult,
    dataset_shape,
    resolve_device,
    tree_problem,
)
from synth_assets.blocks import Block, BlockConfig, BlockContext, BlockFigures
from synth_assets.dp_sgd import PrivateOptimizer, BudgetedSteps
from synth_assets.config import ColumnSpec, DatasetSpec, ForeignKey, Project, ProjectSpec, SplitSpec, TableSpec
from synth_assets.errors import IncompatibleModel, SynthError
from synth_assets.hookspecs import hookimpl
from synth_assets.optimizer import adamw
from synth_assets.options import (DifferentialPrivacy, Fairness, GenerateOptions, Imputation, Options, Rebalancing,
                                  TrainOptions)
from synth_assets.pipeline import DatasetPipeline
from synth_assets.project import parse_dataset
from synth_assets.privacy_budget import (LEDGER_FILE, PrivacyLedger, budget_share, budget_spent, continue_ledger,
                                         save_ledger, start_ledger)
from synth_assets.seed_records import link_records, root_table
from synth_assets.stages.schema import restore_schema
from synth_assets.stages.split import PARTITIONS, Split, context_key, parent_first
from synth_assets.stages.stats import (
    DATETIME_PARTS,
    HINTS,
    ORDER_STEP,
    RARE_THRESHOLD,
    RARE_TOKEN,
    ColumnStats,
    DatasetStats,
    TableStats,
    character_matrix,
    lat_long_cell,
    lat_long_grid,
    lat_long_parts,
    records_per_parent,
    time_numbers,
)
from synth_assets.files import atomic_dir, read_json, read_parquet, recover_dir, write_json, write_parquet
from synth_assets.free_text import WORD, TextFilter, cut_at_word, words
from synth_assets.text_columns import text_columns
from synth_assets.text_model import TextExample, TextGenerateRequest, TextModel, TextTrainRequest, TextTrainResult

WORKSPACE_DATASET = "frames"  # the dataset name of a Python API's workspace


def parse_options(model: type[BaseModel], values: dict, what: str):
    """`values` as a backend's option model (for its Python API's keywords), or an error naming each bad key."""
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SynthError(f"{what}: {problems}", hint=f"see the fields of {model.__name__}") from None


def workspace_pipeline(workspace: Path, spec: DatasetSpec) -> DatasetPipeline:
    """The stages of one dataset whose outputs live in `workspace/frames/`, with no project file."""
    project = Project(ProjectSpec(datasets={WORKSPACE_DATASET: spec}), Path(workspace) / "synth.yaml", Path(workspace))
    return DatasetPipeline(project, WORKSPACE_DATASET)


def run_on_frames(frames: dict[str, pd.DataFrame], spec: DatasetSpec, workspace: Path, *, device: str = "auto",
                  progress: ProgressCallback | None = None) -> tuple[DatasetPipeline, TrainResult]:
    """Split, stats, encode and train on in-memory tables: the same stages, and so the same privacy rules,
    as a dataset of synth.yaml. The spec names the backend and its options; its tables' sources are unused."""
    pipeline = workspace_pipeline(workspace, spec)
    write_json(spec.model_dump(mode="json"), pipeline.paths.root / "spec.json")
    pipeline.split(frames)
    pipeline.stats()
    pipeline.encode()
    return pipeline, pipeline.train(device=device, progress=progress)


def open_workspace(workspace: Path) -> DatasetPipeline:
    """The pipeline of a workspace that `run_on_frames` trained."""
    path = Path(workspace) / WORKSPACE_DATASET / "spec.json"
    if not path.is_file():
        raise SynthError(f"{workspace} holds no fitted model", hint="fit one first, or give the workspace it used")
    return workspace_pipeline(workspace, parse_dataset(read_json(path), origin=str(path)))


__all__ = [
    "FLAT", "SEQUENTIAL", "RELATIONAL", "Backend", "Capabilities", "DRAW_SECONDS", "SEED_PARENT", "GenerateRequest", "ProgressCallback",
    "ProgressRecord", "TrainRequest", "TrainResult", "dataset_shape", "resolve_device", "adamw",
    "Options", "TrainOptions", "GenerateOptions", "DifferentialPrivacy", "Rebalancing", "Imputation", "Fairness",
    "PARTITIONS", "Split", "context_key", "parent_first", "DatasetStats", "TableStats", "ColumnStats", "RARE_THRESHOLD", "RARE_TOKEN", "DATETIME_PARTS", "HINTS",
    "character_matrix", "lat_long_cell", "lat_long_grid", "lat_long_parts", "records_per_parent",
    "ORDER_STEP", "time_numbers",
    "write_parquet", "read_parquet", "write_json", "read_json", "atomic_dir", "recover_dir",
    "SynthError", "IncompatibleModel", "hookimpl",
    "ColumnSpec", "DatasetSpec", "ForeignKey", "SplitSpec", "TableSpec", "DatasetPipeline", "restore_schema",
    "run_on_frames", "open_workspace", "workspace_pipeline", "parse_options", "parse_dataset",
    "TextModel", "TextExample", "TextTrainRequest", "TextTrainResult", "TextGenerateRequest", "words", "WORD", "TextFilter", "cut_at_word",
    "text_columns",
    "Block", "BlockConfig", "BlockContext", "BlockFigures", "link_records", "root_table",
    "PrivacyLedger", "PrivateOptimizer", "BudgetedSteps", "LEDGER_FILE", "start_ledger", "continue_ledger", "save_ledger", "budget_spent", "budget_share",
]
