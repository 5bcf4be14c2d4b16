"""The built-in flow blocks, registered through `synth_register_blocks` as a third party's would be (the core's
own `synth_assets` entry point): filter, drop_duplicates, select, rename, drop_columns, derive, sample. The LLM
plugin adds `llm`."""

from __future__ import annotations

import operator
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from synth_assets.blocks import Block, BlockConfig
from synth_assets.files import atomic_path, read_parquet, write_parquet
from synth_assets.hookspecs import hookimpl

# InstructLab writes `operation: operator.eq`; both spellings name the same comparison
COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
               "ge": operator.ge}
MEMBERSHIP = ("contains", "in", "not_in")
NULL_TESTS = ("is_null", "not_null")
OPERATORS = (*COMPARISONS, *MEMBERSHIP, *NULL_TESTS)
DTYPES = ("float", "int", "str", "bool", "datetime")


class FilterConfig(BlockConfig):
    column: str
    operator: str = Field("eq", description=f"One of {', '.join(OPERATORS)} (also as operator.eq, ...).")
    value: Any = Field(None, description="What the column is compared with; a list: any of them (eq, contains) or "
                                         "the set (in, not_in).")
    convert_dtype: Literal["float", "int", "str", "bool", "datetime"] | None = Field(
        None, description="Compare the column's values as this type (the output keeps them as they are); rows "
                          "whose value does not convert are dropped and counted.")

    @field_validator("operator")
    @classmethod
    def _known(cls, value: str) -> str:
        name = value.removeprefix("operator.")
        if name not in OPERATORS:
            raise ValueError(f"'{value}' is not an operator: use one of {', '.join(OPERATORS)}")
        return name

    @model_validator(mode="after")
    def _value_given(self) -> "FilterConfig":
        if self.operator not in NULL_TESTS and self.value is None:
            raise ValueError(f"operator '{self.operator}' needs a value (is_null and not_null take none)")
        if self.operator in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"operator '{self.operator}' takes a list of values")
        return self


class Filter(Block):
    """Keep the rows whose `column` passes the comparison. A null never passes one (only is_null keeps it)."""

    block_type = "filter"
    Config = FilterConfig
    description = "Keep the rows whose column passes a comparison with a value."

    def output_columns(self, columns):
        self.need(columns, self.config.column)
        return columns

    def process(self, batch, index):
        c = self.config
        values = batch[c.column]
        if c.operator in NULL_TESTS:
            keep = values.isna() if c.operator == "is_null" else values.notna()
            return batch[keep.to_numpy()]
        converted, failed = _convert(values, c.convert_dtype)
        self.figures.extra["unconvertible"] = self.figures.extra.get("unconvertible", 0) + int(failed.sum())
        wanted = [self._value(v) for v in (c.value if isinstance(c.value, list) else [c.value])]
        present = converted.notna().to_numpy() & ~failed
        if c.operator == "in" or c.operator == "not_in":
            hit = converted.isin(wanted).to_numpy()
            keep = hit if c.operator == "in" else ~hit
        elif c.operator == "contains":
            text = converted.astype("string")
            keep = np.zeros(len(batch), dtype=bool)
            for v in wanted:
                keep |= text.str.contains(str(v), regex=False).fillna(False).to_numpy(dtype=bool)
        else:
            compare = COMPARISONS[c.operator]
            keep = np.zeros(len(batch), dtype=bool)
            for v in wanted:
                try:
                    keep |= np.asarray(compare(converted, v).fillna(False), dtype=bool)
                except TypeError:
                    raise self.error(f"column '{c.column}' ({values.dtype}) cannot be compared with {v!r}",
                                     hint="set convert_dtype to the type to compare as") from None
        return batch[keep & present]

    def _value(self, value):
        if self.config.convert_dtype is None:
            return value
        converted, failed = _convert(pd.Series([value]), self.config.convert_dtype)
        if failed.any():
            raise self.error(f"value {value!r} is not a {self.config.convert_dtype}")
        return converted.iloc[0]


def _convert(values: pd.Series, dtype: str | None) -> tuple[pd.Series, np.ndarray]:
    """`values` as `dtype`, and which non-null values did not convert."""
    if dtype is None:
        return values, np.zeros(len(values), dtype=bool)
    if dtype in ("float", "int"):
        out = pd.to_numeric(values, errors="coerce")
        if dtype == "int":
            whole = out.notna() & (out % 1 == 0)
            out = out.where(whole).astype("Int64")
    elif dtype == "str":
        out = values.astype("string")
    elif dtype == "bool":
        words = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
        out = values.map(lambda v: v if isinstance(v, (bool, np.bool_)) else words.get(str(v).strip().lower()),
                         na_action="ignore").astype("boolean")
    else:
        out = pd.to_datetime(values, errors="coerce")
    failed = values.notna().to_numpy() & out.isna().to_numpy()
    return out, failed


class DropDuplicatesConfig(BlockConfig):
    columns: list[str] | None = Field(None, description="The columns that make a row a duplicate; default: all.")


class DropDuplicates(Block):
    """Keep the first row of each value of `columns` across the whole flow, not only within a batch. What it has
    seen is a set of 64-bit row hashes (8 bytes a distinct row) in sorted runs, merged as a binary counter merges
    (a run joins the one before it once that is no more than twice its size), so a hash is rewritten about log n
    times and a lookup searches about log n runs; each run is a file of the checkpoint, written once. Two different
    rows share a hash with a chance of about n²/2⁶⁵."""

    block_type = "drop_duplicates"
    Config = DropDuplicatesConfig
    description = "Drop the rows whose columns repeat an earlier row's, across the whole flow."

    def __init__(self, config, context):
        super().__init__(config, context)
        self.runs: list[np.ndarray] = []
        self.run_files: list[str] = []  # "" for a run not yet written

    def output_columns(self, columns):
        self.need(columns, *(self.config.columns or []))
        return columns

    def process(self, batch, index):
        if batch.empty:
            return batch
        keys = batch[self.config.columns] if self.config.columns else batch
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        fresh = ~pd.Series(hashes).duplicated().to_numpy()
        for run in self.runs:
            at = np.searchsorted(run, hashes).clip(max=len(run) - 1)
            fresh &= run[at] != hashes
        kept = np.sort(hashes[fresh])
        if len(kept):
            self.runs.append(kept)
            self.run_files.append("")
            while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
                merged = np.concatenate(self.runs[-2:])
                merged.sort(kind="stable")
                del self.runs[-2:], self.run_files[-2:]
                self.runs.append(merged)
                self.run_files.append("")
        return batch[fresh]

    def state(self):
        for i, name in enumerate(self.run_files):
            if not name:
                name = f"seen-{self.figures.rows_in}-{i}.npy"
                with atomic_path(self.context.state_dir / name) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, self.runs[i])
                self.run_files[i] = name
        return {"files": list(self.run_files)}

    def restore(self, state):
        self.run_files = list(state.get("files", []))
        self.runs = [np.load(self.context.state_dir / name) for name in self.run_files]


class SelectConfig(BlockConfig):
    columns: list[str] = Field(min_length=1, description="The columns kept, in this order.")


class Select(Block):
    block_type = "select"
    Config = SelectConfig
    description = "Keep these columns, in this order."

    def output_columns(self, columns):
        self.need(columns, *self.config.columns)
        return list(self.config.columns)

    def process(self, batch, index):
        return batch[list(self.config.columns)]


class RenameConfig(BlockConfig):
    columns: dict[str, str] = Field(min_length=1, description="Old name -> new name.")


class Rename(Block):
    block_type = "rename"
    Config = RenameConfig
    description = "Rename columns."

    def output_columns(self, columns):
        self.need(columns, *self.config.columns)
        out = [self.config.columns.get(c, c) for c in columns]
        clash = sorted({c for c in out if out.count(c) > 1})
        if clash:
            raise self.error(f"renaming gives two columns called '{clash[0]}'", hint="rename or drop the other first")
        return out

    def process(self, batch, index):
        return batch.rename(columns=self.config.columns)


class DropColumnsConfig(BlockConfig):
    columns: list[str] = Field(min_length=1)


class DropColumns(Block):
    block_type = "drop_columns"
    Config = DropColumnsConfig
    description = "Drop columns."

    def output_columns(self, columns):
        self.need(columns, *self.config.columns)
        out = [c for c in columns if c not in self.config.columns]
        if not out:
            raise self.error("it would drop every column", hint="keep at least one")
        return out

    def process(self, batch, index):
        return batch.drop(columns=list(self.config.columns))


class DeriveConfig(BlockConfig):
    column: str = Field(description="The column written (a new one, or one replaced).")
    expression: str = Field(description="An expression over the row's columns, as pandas' DataFrame.eval reads it: "
                                        "`price / carat`, `(depth > 60) & (cut == 'Ideal')`; names with spaces in "
                                        "backticks.")
    dtype: str | None = Field(None, description="Cast the result (e.g. float64, Int64, string, boolean).")


class Derive(Block):
    block_type = "derive"
    Config = DeriveConfig
    description = "A column computed from the others."

    def output_columns(self, columns):
        try:  # names and syntax are checked on an empty frame, before any row is read
            pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).eval(self.config.expression, engine="python")
        except pd.errors.UndefinedVariableError as exc:
            raise self.error(f"expression {self.config.expression!r}: {exc}",
                             hint=f"the input's columns are {', '.join(columns)}") from None
        except SyntaxError as exc:
            raise self.error(f"expression {self.config.expression!r} is not valid: {exc.msg}") from None
        except Exception:  # a type the empty float frame cannot show (a string method): checked on the rows
            pass
        return columns if self.config.column in columns else [*columns, self.config.column]

    def process(self, batch, index):
        try:
            value = batch.eval(self.config.expression, engine="python")
            if self.config.dtype:
                value = pd.Series(value, index=batch.index).astype(self.config.dtype)
        except Exception as exc:  # noqa: BLE001: the user's expression; say which and why
            raise self.error(f"expression {self.config.expression!r} failed on batch {index}: {exc}") from None
        return batch.assign(**{self.config.column: value})


class SampleConfig(BlockConfig):
    rows: int | None = Field(None, ge=1, description="Rows kept in all (a uniform sample of the whole input).")
    fraction: float | None = Field(None, gt=0, le=1, description="The share of rows kept, each drawn on its own.")
    by: str | None = Field(None, description="With rows and shares: sample within each value of this column.")
    shares: dict[str, float] | None = Field(None, description="Value of `by` -> its share of `rows`; values not "
                                                             "listed are left out.")

    @model_validator(mode="after")
    def _one_size(self) -> "SampleConfig":
        if (self.rows is None) == (self.fraction is None):
            raise ValueError("give either rows or fraction")
        if (self.by is None) != (self.shares is None):
            raise ValueError("by and shares go together")
        if self.shares is not None:
            if self.rows is None:
                raise ValueError("shares take rows (how many in all)")
            if any(s < 0 for s in self.shares.values()) or not 0.999 <= sum(self.shares.values()) <= 1.001:
                raise ValueError("shares must be non-negative and add up to 1")
        return self


class Sample(Block):
    """`fraction`: each row kept with that chance. `rows`: a reservoir sample of the whole input (every row equally
    likely, whatever the input's size), held until the input ends; with `by` and `shares`, one reservoir per value."""

    block_type = "sample"
    Config = SampleConfig
    description = "A random sample: a fraction of the rows, or a number of rows (by shares of a column's values)."

    def __init__(self, config, context):
        super().__init__(config, context)
        c = config
        self.caps = ({k: int(round(c.rows * s)) for k, s in c.shares.items()} if c.shares else
                     {"": c.rows} if c.rows else {})
        self.held: dict[str, pd.DataFrame] = {}
        self.seen: dict[str, int] = {k: 0 for k in self.caps}
        self.saves = 0

    def output_columns(self, columns):
        if self.config.by:
            self.need(columns, self.config.by)
        return columns

    def process(self, batch, index):
        rng = self.rng(index)
        if self.config.fraction is not None:
            return batch[rng.random(len(batch)) < self.config.fraction]
        groups = batch[self.config.by].astype("string") if self.config.by else None
        for key in sorted(self.caps):
            rows = batch if groups is None else batch[(groups == key).fillna(False).to_numpy(dtype=bool)]
            self._offer(key, rows, rng)
        return batch.iloc[:0]

    def _offer(self, key: str, rows: pd.DataFrame, rng: np.random.Generator) -> None:
        """Algorithm R over the rows of one batch at once: row t (counting from 0) takes a slot drawn from 0..t,
        kept when under the cap; a later row in the same slot replaces an earlier one, as one by one."""
        cap, seen = self.caps[key], self.seen[key]
        if rows.empty or cap == 0:
            return
        t = seen + np.arange(len(rows))
        slot = np.where(t < cap, t, rng.integers(0, t + 1))
        self.seen[key] = seen + len(rows)
        chosen = pd.DataFrame({"slot": slot, "at": np.arange(len(rows))})[slot < cap]
        chosen = chosen.drop_duplicates("slot", keep="last")
        if chosen.empty:
            return
        incoming = rows.iloc[chosen["at"].to_numpy()].set_axis(chosen["slot"].to_numpy())
        held = self.held.get(key)
        if held is not None:
            incoming = pd.concat([held.drop(index=incoming.index, errors="ignore"), incoming])
        self.held[key] = incoming.sort_index()

    def finish(self):
        frames = [self.held[k].reset_index(drop=True) for k in sorted(self.held)]
        return pd.concat(frames, ignore_index=True) if frames else None

    def state(self):
        if self.config.rows is None:  # a fraction holds nothing back
            return {}
        self.saves += 1
        names = {}
        for key, held in self.held.items():
            name = f"held-{self.saves}-{len(names)}.parquet"
            write_parquet(held.reset_index(names="_slot"), self.context.state_dir / name)
            names[key] = name
        return {"seen": dict(self.seen), "held": names, "saves": self.saves, "files": list(names.values())}

    def restore(self, state):
        if not state:
            return
        self.seen = {k: int(v) for k, v in state["seen"].items()}
        self.saves = int(state["saves"])
        self.held = {k: read_parquet(self.context.state_dir / name).set_index("_slot").rename_axis(None)
                     for k, name in state["held"].items()}


BUILT_IN = [Filter, DropDuplicates, Select, Rename, DropColumns, Derive, Sample]


@hookimpl
def synth_register_blocks():
    return BUILT_IN
