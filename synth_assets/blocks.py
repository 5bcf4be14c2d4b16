"""The block seam of flows: what a block is, and what the flow runner gives it.

A block is one step of a flow (synth_assets.flows): it takes a batch of rows (a pandas frame made from an Arrow
record batch) and returns the rows it keeps or makes. Blocks are plugins: a package registers its block types
with the `synth_register_blocks` hook, and the built-in ones (synth_assets.builtin_blocks, and the LLM plugin's
`llm`) register through that same hook.

    class Shout(Block):
        block_type = "shout"
        class Config(BlockConfig):
            column: str
        def output_columns(self, columns):
            return self.need(columns, self.config.column) and columns
        def process(self, batch, index):
            return batch.assign(**{self.config.column: batch[self.config.column].str.upper()})

A flow is resumable: after each batch the runner checkpoints every block's `state()` with the rows written so far.
A block whose output depends on more than the batch (what it has seen, what it holds back) keeps that in its
state and gets it back through `restore()`, so a resumed run writes exactly what an uninterrupted one would.
Randomness comes from `self.rng(index)`, a generator seeded by the flow's seed, the block and the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from synth_assets.errors import SynthError


class BlockConfig(BaseModel):
    """A block type's `block_config` keys: strict, so a misspelt key fails when the flow loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class BlockContext:
    """What the runner tells a block about where it runs."""

    flow: str  # the flow's name, for errors and logs
    name: str  # the block's name in the flow (block_name, or <position>_<block_type>)
    seed: int  # the flow's seed
    # where a dataset of the project keeps its stages (a block that reads a dataset's published model), fetched from
    # the object store where the storage root is one
    dataset_paths: Callable[[str], Any] | None = None
    device: str = "auto"
    log: Callable[[str], None] = print  # progress lines (a Dagster run's log)
    state_dir: Path | None = None  # a folder of the block's own for state too big for JSON (see Block.state)


@dataclass
class BlockFigures:
    """What a user sees of one block after a run (the flow asset's metadata)."""

    rows_in: int = 0
    rows_out: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # the block's own figures (an LLM's valid share, ...)
    invalid: int = 0  # rows whose output stayed invalid (the flow's blocking check counts them)


class Block(ABC):
    """One block type. Subclasses set `block_type`, `Config` and `description`, and implement `process`."""

    block_type: ClassVar[str]
    Config: ClassVar[type[BlockConfig]] = BlockConfig
    description: ClassVar[str] = ""
    # a block that works best on small batches (a language model's): the flow's default batch becomes this
    preferred_batch_rows: ClassVar[int | None] = None

    def __init__(self, config: BlockConfig, context: BlockContext):
        self.config = config
        self.context = context
        self.figures = BlockFigures()

    # the flow's schema, checked before any row is read ------------------------------------------------------
    def output_columns(self, columns: list[str]) -> list[str]:
        """The columns this block writes, given those it receives; a SynthError naming the column where the
        block cannot work on them. Default: the same columns."""
        return columns

    def need(self, columns: list[str], *wanted: str) -> bool:
        """Fail, naming the block and the column, unless every `wanted` column is among `columns`."""
        for column in wanted:
            if column not in columns:
                raise self.error(f"column '{column}' is not among its input's columns ({', '.join(columns)})",
                                 hint="check the name, and that an earlier block does not drop or rename it")
        return True

    def error(self, message: str, hint: str | None = None) -> SynthError:
        return SynthError(f"flow '{self.context.flow}', block '{self.context.name}' ({self.block_type}): {message}",
                          hint=hint)

    # the rows ------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Called once a run before the first batch (load a model, connect to a server)."""

    @abstractmethod
    def process(self, batch: pd.DataFrame, index: int) -> pd.DataFrame:
        """The rows out for batch number `index` (0, 1, ...). Deterministic given the batch, the index and the
        block's state: a resumed run must write what an uninterrupted one would."""

    def finish(self) -> pd.DataFrame | None:
        """Rows held back until the input ended (a sample of a number of rows), passed on to the blocks after
        this one."""
        return None

    def close(self) -> None:
        """Free what `open` took."""

    # resuming --------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """What the block needs to carry on after the batches so far, as JSON; files too big for it go in
        `context.state_dir`, named in the state's `files` list (the runner removes the ones no state names)."""
        return {}

    def restore(self, state: dict) -> None:
        """Carry on from `state` (what `state()` returned at the checkpoint a resumed run starts from)."""

    def rng(self, index: int) -> np.random.Generator:
        """Randomness for batch `index`, the same on every run with the flow's seed."""
        return np.random.default_rng([self.context.seed, _stable(self.context.name), index])


def _stable(text: str) -> int:
    """A number for a name that is the same in every process (Python's hash() is salted)."""
    import zlib

    return zlib.crc32(text.encode())
