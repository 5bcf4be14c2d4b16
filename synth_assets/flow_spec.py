"""A flow as the project file declares it: blocks chained over a table, in the style of InstructLab's flows.

    flows:
      cheap_ideal:
        input: {dataset: diamonds}            # its published synthetic table; or {source: file} or {flow: other}
        blocks:
          - block_type: filter
            block_config: {column: cut, operator: eq, value: Ideal}
          - block_type: derive
            block_config: {column: price_per_carat, expression: "price / carat"}
            drop_duplicates: [price_per_carat]   # after the block, as InstructLab's keys do
            drop_columns: [depth]

Each block's `block_config` is checked against its type's own keys when the file loads, with the installed block
types handed in through pydantic's validation context (as the backends are: this module never looks them up).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from synth_assets.options import SOURCE_SUFFIXES, describe_error

# the validation context's key for the installed block types (name -> Block class), handed in by
# synth_assets.project
BLOCK_TYPES = "block_types"
DEFAULT_BATCH_ROWS = 50_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowInput(_Strict):
    """What a flow reads: exactly one of a dataset's published synthetic table, a file, or another flow's output."""

    dataset: str | None = Field(None, description="A dataset of this project: its published synthetic table.")
    table: str | None = Field(None, description="With dataset: which of its tables (default: its only one).")
    source: str | None = Field(None, description="A .csv, .csv.gz or .parquet file, relative to the project file "
                                                 "(a real seed table, say).")
    flow: str | None = Field(None, description="Another flow: its published output.")

    @model_validator(mode="after")
    def _one(self) -> "FlowInput":
        given = [k for k in ("dataset", "source", "flow") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of dataset, source or flow" + (f" (not {' and '.join(given)})"
                                                                             if given else ""))
        if self.table is not None and self.dataset is None:
            raise ValueError("table goes with dataset")
        if self.source is not None and not self.source.lower().endswith(SOURCE_SUFFIXES):
            raise ValueError(f"source '{self.source}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return self

    def describe(self) -> str:
        if self.dataset is not None:
            return f"dataset '{self.dataset}'" + (f", table '{self.table}'" if self.table else "")
        return f"file {self.source}" if self.source is not None else f"flow '{self.flow}'"


class BlockSpec(_Strict):
    block_type: str = Field(description="A registered block type (python -m synth_assets plugins lists them).")
    block_name: str | None = Field(None, description="Its name in logs and metadata (default: <position>_<type>).")
    block_config: dict[str, Any] = Field(default_factory=dict, description="The block type's own keys.")
    drop_duplicates: list[str] | None = Field(None, description="After the block: drop rows repeating these columns "
                                                                "(an empty list: all columns).")
    drop_columns: list[str] = Field(default_factory=list, description="After the block: drop these columns.")

    @model_validator(mode="before")
    @classmethod
    def _name_inside_config(cls, data: Any) -> Any:
        """InstructLab puts block_name inside block_config; take it from there too."""
        config = data.get("block_config") if isinstance(data, dict) else None
        if isinstance(config, dict) and "block_name" in config:
            config = dict(config)
            inner = config.pop("block_name")
            data = {**data, "block_config": config, "block_name": data.get("block_name") or inner}
        return data

    @model_validator(mode="after")
    def _known_type(self, info: ValidationInfo) -> "BlockSpec":
        types = (info.context or {}).get(BLOCK_TYPES)
        if types is None:  # built in code, or checked later by the runner
            return self
        if self.block_type not in types:
            raise BlockErrors([f"block_type: unknown block type '{self.block_type}' (installed: "
                               f"{', '.join(sorted(types)) or 'none'})"])
        try:
            types[self.block_type].Config.model_validate(self.block_config)
        except ValidationError as exc:
            raise BlockErrors([describe_error(e, prefix=("block_config",)) for e in exc.errors()]) from None
        return self


class FlowSpec(_Strict):
    input: FlowInput
    blocks: list[BlockSpec] = Field(min_length=1)
    batch_rows: int | None = Field(None, ge=1, description="Rows a block processes at once, and the work a killed "
                                   f"run can lose (a checkpoint follows each batch); default {DEFAULT_BATCH_ROWS:,}, "
                                   "or fewer where a block asks (a language model's).")
    seed: int = Field(0, description="Seeds every random block: the same seed writes the same output.")
    min_rows: int = Field(1, ge=0, description="Blocking check: the output has at least this many rows.")
    keep_versions: int = Field(5, ge=1, description="Versions of the output kept for rollback.")
    description: str | None = None

    @field_validator("blocks")
    @classmethod
    def _unique_names(cls, blocks: list[BlockSpec]) -> list[BlockSpec]:
        names = block_names(blocks)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"two blocks are called '{repeated[0]}'; give them different block_name")
        return blocks


def block_names(blocks: list[BlockSpec]) -> list[str]:
    return [b.block_name or f"{i + 1}_{b.block_type}" for i, b in enumerate(blocks)]


class BlockErrors(ValueError):
    """Problems with one block, each as 'key.path: what is wrong' (config.describe_errors names them under the
    block's path, as it does for a dataset's options)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))
