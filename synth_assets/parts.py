"""Generation in parts: a large sample as several smaller ones, joined.

A sample of more subject (root table) rows than `parts.rows` in synth.yaml is planned as parts of at most
that many rows. Each part draws with a seed of its own, spawned from the generation's seed (so one seed
still gives one sample, and no two parts repeat each other), and writes its tables under
`<dataset>/synthetic/.parts/<job>/part_NNNNN/`. Joining streams the parts, one at a time, into the candidate
version's Parquet files, with keys that go on from one part to the next (`offset_keys`), so memory holds
one part however large the sample.

Under Dagster each part is a step of its own, run in parallel by the multiprocess (or Kubernetes) executor;
outside it the parts run one after another in the same process. Either way the joined version is the same.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from synth_assets import files
from synth_assets.stages.schema import offset_keys
from synth_assets.stages.split import parent_first
from synth_assets.stages.stats import DatasetStats

PLAN = "plan.json"
REPORT = "report.json"  # in each part's folder: its rows per table, seconds and the backend's report
STALE_SECONDS = 24 * 3600  # parts of a job this old were left by a run that failed: removed by the next plan


class Part(BaseModel):
    index: int
    rows: int | None  # subject rows; None: as the generate options say (a sample in one part)
    seed: int | None
    first_seed_row: int = 0  # this part conditions on seed rows first_seed_row ... first_seed_row + rows - 1

    @property
    def name(self) -> str:  # also the Dagster mapping key of its step
        return f"part_{self.index:05d}"


class Plan(BaseModel):
    version: str  # the synthetic version the parts are joined into
    options: dict  # the generate options as given, in JSON
    parts: list[Part]
    seeded_columns: dict[str, list[str]] = {}


def subjects_per_part(stats: DatasetStats, root: str, part_rows: int) -> int:
    """How many subjects (rows of the root table `root`) a part of at most `part_rows` rows holds: a subject comes
    with its records in every other table, as many as training had a subject on average, so that a part's memory
    is bounded by its rows of all tables (NAFLD's 26 records a subject made a part of a million subjects 27 million
    rows)."""
    per_subject = sum(table.rows for table in stats.tables.values()) / max(stats.tables[root].rows, 1)
    return max(1, int(part_rows // max(per_subject, 1.0)))


def plan_parts(total: int, per_part: int, seed: int | None) -> list[Part]:
    """`total` subject rows in parts of at most `per_part` subjects, of near-equal size, each with a seed of its
    own."""
    count = max(1, math.ceil(total / per_part))
    if count == 1:
        return [Part(index=0, rows=None, seed=seed)]
    sizes = [total // count + (i < total % count) for i in range(count)]
    # without a seed the parts still need different ones: fresh entropy, then spawned
    seeds = [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]
    starts = np.cumsum([0, *sizes[:-1]])
    return [Part(index=i, rows=sizes[i], seed=seeds[i], first_seed_row=int(starts[i])) for i in range(count)]


class PartsFolder:
    """`<dataset>/synthetic/.parts/<job>/`: one generation's plan and its parts until they are joined. The
    leading dot keeps it out of the versions. `job` is a Dagster run's id (its steps share the folder), or a
    temporary of the one process that draws every part (`files.temporary_name`)."""

    def __init__(self, synthetic_root: Path, job: str):
        self.base = Path(synthetic_root) / ".parts"
        self.root = self.base / job

    def write_plan(self, plan: Plan) -> None:
        files.sweep_temporaries(self.base)  # parts of a process that died drawing them in one process
        self.sweep_stale()
        files.write_json(plan.model_dump(mode="json"), self.plan_path)

    @property
    def plan_path(self) -> Path:
        return self.root / PLAN

    def plan(self) -> Plan:
        return Plan.model_validate(files.read_json(self.plan_path))

    def part(self, part: Part) -> Path:
        return self.root / part.name

    def reports(self, plan: Plan) -> list[dict]:
        return [files.read_json(self.part(p) / REPORT) for p in plan.parts]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def sweep_stale(self) -> None:
        if not self.base.is_dir():
            return
        now = time.time()
        for folder in self.base.iterdir():
            if folder.is_dir() and now - folder.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)


def join_parts(folders: list[Path], stats: DatasetStats, out_dir: Path) -> dict[str, int]:
    """Write each table of the parts in `folders` (in order) to `out_dir/<table>.parquet`, one part in memory at
    a time, keys offset so they stay unique and resolve; returns the rows per table."""
    tables = parent_first(stats.tables)
    totals = {t: sum(files.parquet_rows(f / f"{t}.parquet") for f in folders) for t in tables}
    schemas = {t: joined_schema([f / f"{t}.parquet" for f in folders]) for t in tables}
    writers = {t: pq.ParquetWriter(out_dir / f"{t}.parquet", schemas[t]) for t in tables}
    offsets = dict.fromkeys(tables, 0)
    try:
        for folder in folders:
            part = offset_keys({t: files.read_parquet(folder / f"{t}.parquet") for t in tables}, stats,
                               offsets, totals)
            for t in tables:
                writers[t].write_table(pa.Table.from_pandas(part[t], schema=schemas[t], preserve_index=False))
                offsets[t] += len(part[t])
    finally:
        for writer in writers.values():
            writer.close()
    return totals


def joined_schema(paths: list[Path]) -> pa.Schema:
    """One Arrow schema for a table's parts. A column can differ between parts: all null in one (Arrow's null
    type), or with nulls in one only (pandas' nullable Int64 where another part has int64); the joined file
    takes the type that holds every part, and the nullable pandas dtype where any part needed it."""
    schemas = [pq.read_schema(path) for path in paths]
    joined = pa.unify_schemas(schemas, promote_options="permissive")
    metas = [json.loads(s.metadata[b"pandas"]) for s in schemas if s.metadata and b"pandas" in s.metadata]
    if not metas:
        return joined
    merged = metas[0]
    for i, column in enumerate(merged["columns"]):
        for meta in metas[1:]:
            other = meta["columns"][i]
            if other.get("numpy_type") != column.get("numpy_type") and _nullable(other.get("numpy_type") or ""):
                merged["columns"][i] = column = other
    return joined.with_metadata({**(joined.metadata or {}), b"pandas": json.dumps(merged).encode()})


def _nullable(numpy_type: str) -> bool:
    """pandas' extension dtypes that hold nulls: Int64, UInt8, Float64, boolean, string."""
    return numpy_type in ("boolean", "string") or numpy_type[:1].isupper()
