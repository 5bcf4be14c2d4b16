"""Running a flow: batches of the input through its blocks, a checkpoint after each, the output versioned.

The input is read as Arrow record batches (never whole), each batch goes through every block in turn, and what
comes out is written as one part file. After each batch the runner writes a checkpoint, `work/checkpoint.json`
(the batches done, the parts, every block's state and figures), in one rename: that is the commit. A run that
is killed loses at most the batch it was working on; the next run with the same flow and the same input skips
the batches done, puts the blocks' states back and carries on, so its output is the one an uninterrupted run
writes. A changed flow or input starts over. Memory holds one batch and the blocks' states.

At the end the parts are joined into `<flow>.parquet` in a new version of the output (synth_assets.storage.
FlowPaths), which the caller audits and publishes, and the checkpoint goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synth_assets import files
from synth_assets.blocks import Block, BlockContext
from synth_assets.builtin_blocks import DropColumns, DropColumnsConfig, DropDuplicates, DropDuplicatesConfig
from synth_assets.errors import SynthError
from synth_assets.flow_spec import DEFAULT_BATCH_ROWS, FlowSpec, block_names
from synth_assets.options import describe_error
from synth_assets.plugins import block_types

try:
    import fcntl
except ImportError:  # Windows: no lock
    fcntl = None

CHECKPOINT = "checkpoint.json"
READ_BUFFER = 1 << 20  # bytes the input's reader buffers at a time
PROGRESS_SECONDS = 10.0  # a progress line at most this often (and after the last batch)


@dataclass
class FlowResult:
    version: str
    output: Path
    rows_in: int
    rows_out: int
    batches: int
    resumed_batches: int  # batches a killed run had done, not done again
    seconds: float
    blocks: dict[str, dict] = field(default_factory=dict)  # block -> rows in and out, and its own figures
    invalid: dict[str, int] = field(default_factory=dict)  # block -> rows whose output stayed invalid
    columns: list[str] = field(default_factory=list)


def make_blocks(name: str, spec: FlowSpec, *, work: Path, dataset_paths=None, device: str = "auto",
                log: Callable[[str], None] = print) -> list[Block]:
    """The flow's blocks, each with its context; a block's `drop_duplicates` and `drop_columns` keys become blocks
    of their own after it."""
    types = block_types()
    blocks: list[Block] = []

    def add(cls, config, block_name: str) -> None:
        context = BlockContext(flow=name, name=block_name, seed=spec.seed, dataset_paths=dataset_paths, device=device,
                               log=log, state_dir=work / "state" / block_name)
        blocks.append(cls(config, context))

    for block, block_name in zip(spec.blocks, block_names(spec.blocks)):
        if block.block_type not in types:
            raise SynthError(f"flow '{name}', block '{block_name}': unknown block type '{block.block_type}'",
                             hint=f"installed: {', '.join(sorted(types))}")
        cls = types[block.block_type]
        try:
            config = cls.Config.model_validate(block.block_config)
        except Exception as exc:
            problems = "; ".join(describe_error(e, prefix=("block_config",)) for e in getattr(exc, "errors", list)())
            raise SynthError(f"flow '{name}', block '{block_name}': {problems or exc}") from None
        add(cls, config, block_name)
        if block.drop_duplicates is not None:
            add(DropDuplicates, DropDuplicatesConfig(columns=block.drop_duplicates or None),
                f"{block_name}.drop_duplicates")
        if block.drop_columns:
            add(DropColumns, DropColumnsConfig(columns=block.drop_columns), f"{block_name}.drop_columns")
    return blocks


class FlowRunner:
    """One run of flow `name` over the Parquet file `input_path`; `input_identity` names that input's content (a
    published version, a file's size and time), so that a checkpoint is only resumed over the same input."""

    def __init__(self, name: str, spec: FlowSpec, *, input_path: Path, input_identity: str, paths,
                 dataset_paths=None, device: str = "auto", log: Callable[[str], None] = print):
        self.name, self.spec, self.paths, self.log = name, spec, paths, log
        self.input_path, self.input_identity = Path(input_path), input_identity
        self.work = paths.work
        self.blocks = make_blocks(name, spec, work=self.work, dataset_paths=dataset_paths, device=device, log=log)
        preferred = [b.preferred_batch_rows for b in self.blocks if b.preferred_batch_rows]
        self.batch_rows = spec.batch_rows or min([DEFAULT_BATCH_ROWS, *preferred])

    # before any row: the schema through the chain ---------------------------------------------------------
    def columns(self) -> list[str]:
        if not self.input_path.is_file():
            raise SynthError(f"flow '{self.name}': its input {self.input_path} does not exist",
                             hint="materialize what the flow reads first")
        columns = pq.read_schema(self.input_path).names
        for block in self.blocks:
            columns = block.output_columns(list(columns))
        return columns

    def fingerprint(self) -> str:
        text = json.dumps({"flow": self.spec.model_dump(mode="json"), "input": self.input_identity,
                           "batch_rows": self.batch_rows}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # the run -------------------------------------------------------------------------------------------------
    def run(self, version: str, stop_after_batches: int | None = None, restart: bool = False) -> FlowResult | None:
        """Process the input (resuming a checkpoint of the same flow and input, unless `restart`) and write output
        `version`. `stop_after_batches`: stop there without writing the output, as a killed run would (for tests)."""
        columns = self.columns()
        with _only_run(self.paths.root, self.name):
            if restart and self.work.exists():
                self.log(f"flow {self.name}: restart asked for: the checkpoint of an earlier run is discarded")
                shutil.rmtree(self.work)
            return self._run(version, columns, stop_after_batches)

    def _run(self, version: str, columns: list[str], stop_after_batches: int | None) -> FlowResult | None:
        started = time.perf_counter()
        checkpoint = self._resume()
        done = checkpoint["batches"] if checkpoint else 0
        parts: list[str] = list(checkpoint["parts"]) if checkpoint else []
        rows_read = checkpoint["rows_read"] if checkpoint else 0
        for block in self.blocks:
            block.context.state_dir.mkdir(parents=True, exist_ok=True)
            block.open()
        try:
            index = -1
            last_log = time.perf_counter()
            # buffered page by page, not a row group at a time: a writer's row groups of a million rows (pyarrow's
            # default) made the reader hold 100 MB at 10M rows against 16 MB so
            reader = pq.ParquetFile(self.input_path, pre_buffer=False, buffer_size=READ_BUFFER)
            for index, record_batch in enumerate(reader.iter_batches(batch_size=self.batch_rows, use_threads=False)):
                if index < done:  # done before the kill: its output is among the parts
                    continue
                # through a Table, so the file's pandas metadata (nullable dtypes) applies as in read_parquet
                batch = pa.Table.from_batches([record_batch]).to_pandas(use_threads=False)
                out = self._through(self.blocks, batch, index)
                rows_read += len(batch)
                parts.append(self._write_part(out, f"part-{index:07d}.parquet"))
                self._commit(index + 1, parts, rows_read)
                if stop_after_batches is not None and index + 1 >= stop_after_batches:
                    return None
                if time.perf_counter() - last_log >= PROGRESS_SECONDS:
                    self._progress(index + 1, rows_read, started)
                    last_log = time.perf_counter()
            batches = index + 1
            if not parts:  # an input without rows: an empty output with the columns and types the blocks make
                empty = pq.read_schema(self.input_path).empty_table().to_pandas()
                parts.append(self._write_part(self._through(self.blocks, empty, 0), "part-empty.parquet"))
            self._progress(batches, rows_read, started)
            for i, block in enumerate(self.blocks):  # rows held back (a sample) go through the blocks after
                held = block.finish()
                if held is not None:
                    block.figures.rows_out += len(held)
                    out = self._through(self.blocks[i + 1:], held.reset_index(drop=True), batches + i)
                    parts.append(self._write_part(out, f"part-held-{i:03d}.parquet"))
        finally:
            for block in self.blocks:
                block.close()
        with self.paths.new_version(version) as folder:
            rows_out = join_parts([self.work / "parts" / p for p in parts], folder / f"{self.name}.parquet")
        shutil.rmtree(self.work, ignore_errors=True)  # the output is written: nothing left to resume
        self.log(f"flow {self.name}: {rows_out:,} rows written as version {version}")
        figures = {b.context.name: {"rows_in": b.figures.rows_in, "rows_out": b.figures.rows_out, **b.figures.extra}
                   for b in self.blocks}
        return FlowResult(version=version, output=self.paths.releases().path(version) / f"{self.name}.parquet",
                          rows_in=rows_read, rows_out=rows_out, batches=batches, resumed_batches=done,
                          seconds=time.perf_counter() - started, blocks=figures, columns=columns,
                          invalid={b.context.name: b.figures.invalid for b in self.blocks if b.figures.invalid})

    def _through(self, blocks: list[Block], batch: pd.DataFrame, index: int) -> pd.DataFrame:
        for block in blocks:
            block.figures.rows_in += len(batch)
            batch = block.process(batch, index).reset_index(drop=True)
            block.figures.rows_out += len(batch)
        return batch

    def _write_part(self, frame: pd.DataFrame, name: str) -> str:
        files.write_parquet(frame, self.work / "parts" / name)
        return name

    def _progress(self, batches: int, rows_read: int, started: float) -> None:
        seconds = time.perf_counter() - started
        last = self.blocks[-1].figures.rows_out
        self.log(f"flow {self.name}: {batches} batches, {rows_read:,} rows read, {last:,} out of the last block so "
                 f"far, {seconds:.0f} s")

    # checkpoints -----------------------------------------------------------------------------------------------
    def _commit(self, batches: int, parts: list[str], rows_read: int) -> None:
        states = {b.context.name: b.state() for b in self.blocks}
        figures = {b.context.name: {"rows_in": b.figures.rows_in, "rows_out": b.figures.rows_out,
                                    "invalid": b.figures.invalid, "extra": b.figures.extra} for b in self.blocks}
        files.write_json({"fingerprint": self.fingerprint(), "batches": batches, "rows_read": rows_read,
                          "parts": parts, "states": states, "figures": figures}, self.work / CHECKPOINT)
        self._sweep(parts, states)

    def _sweep(self, parts: list[str], states: dict) -> None:
        """Remove the files no committed checkpoint names: parts and state files a killed run wrote after its
        last commit, and states the blocks have replaced since."""
        keep = set(parts)
        for entry in os.scandir(self.work / "parts") if (self.work / "parts").is_dir() else ():
            if entry.name not in keep:
                os.unlink(entry.path)
        for block in self.blocks:
            named = set(states.get(block.context.name, {}).get("files", []))
            folder = block.context.state_dir
            for entry in os.scandir(folder) if folder.is_dir() else ():
                if entry.name not in named:
                    os.unlink(entry.path)

    def _resume(self) -> dict | None:
        path = self.work / CHECKPOINT
        if not path.is_file():
            shutil.rmtree(self.work, ignore_errors=True)
            return None
        checkpoint = files.read_json(path)
        if checkpoint.get("fingerprint") != self.fingerprint():
            self.log(f"flow {self.name}: the flow or its input changed since the last checkpoint; starting over")
            shutil.rmtree(self.work, ignore_errors=True)
            return None
        for block in self.blocks:
            name = block.context.name
            block.restore(checkpoint["states"].get(name, {}))
            saved = checkpoint["figures"].get(name, {})
            block.figures.rows_in, block.figures.rows_out = saved.get("rows_in", 0), saved.get("rows_out", 0)
            block.figures.invalid, block.figures.extra = saved.get("invalid", 0), dict(saved.get("extra", {}))
        self._sweep(checkpoint["parts"], checkpoint["states"])
        self.log(f"flow {self.name}: resuming after batch {checkpoint['batches']} ({checkpoint['rows_read']:,} rows "
                 "read) from its checkpoint")
        return checkpoint


@contextlib.contextmanager
def _only_run(folder: Path, name: str):
    """Hold the flow's lock for a run: a second run of the same flow at once would write over the first's
    checkpoint. The lock goes with the process, however it ends."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SynthError(f"flow '{name}' is running already (another run holds {folder / '.lock'})",
                                 hint="wait for it to finish, or stop it; a stopped run's checkpoint is resumed"
                                 ) from None
        yield
    finally:
        os.close(fd)


def join_parts(parts: list[Path], target: Path) -> int:
    """The parts as one Parquet file, one part in memory at a time; their schemas unified (a column all null in
    one batch, a number whole in one and not in another) to the widest. Returns the rows written."""
    footers = [pq.read_metadata(p) for p in parts]
    schemas = [f.schema.to_arrow_schema() for f in footers]
    # pandas' dtypes (nullable integers, categories) as the first part with rows wrote them
    filled = [s for s, f in zip(schemas, footers) if f.num_rows] or schemas
    metadata = filled[0].metadata if filled else None
    try:
        schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SynthError(f"the flow's batches disagree on a column's type: {exc}",
                         hint="convert the column with a derive block's dtype") from None
    if metadata:
        schema = schema.with_metadata(metadata)
    rows = 0
    with files.atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for part in parts:
            table = pq.read_table(part).select(schema.names).cast(schema)
            rows += table.num_rows
            writer.write_table(table)
    return rows
