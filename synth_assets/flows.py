"""A project's flows as runs: where a flow's input is, and one run of it, outside Dagster or inside (the flow
asset and `python -m synth_assets flow` both call `run_flow`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from synth_assets import files
from synth_assets.audit import Check
from synth_assets.config import Project
from synth_assets.errors import SynthError
from synth_assets.flow_runner import FlowResult, FlowRunner
from synth_assets.flow_spec import FlowSpec
from synth_assets.storage import DatasetPaths, FlowPaths, dataset_paths
from synth_assets.tables import read_source


@dataclass
class FlowInputFile:
    path: Path  # a Parquet file
    identity: str  # what the input's content is (a published version; a file's size and time)


def flow_paths(project: Project, name: str) -> FlowPaths:
    return FlowPaths(project.home, name, project.store)


def flow_input(project: Project, name: str, spec: FlowSpec) -> FlowInputFile:
    """The Parquet file flow `name` reads. A dataset's published synthetic table (fetched from the object store where
    the storage root is one); another flow's published output; a source file (a CSV converted to Parquet once per
    version of the file, beside the flow's output)."""
    source = spec.input
    if source.dataset is not None:
        paths = dataset_paths(project, source.dataset)
        version = paths.releases("synthetic").current_version()
        table = source.table or _only_table(project, source.dataset, paths)
        path = paths.synthetic_table(table) if table else None
        if path is None or not path.is_file():
            raise SynthError(f"flow '{name}' reads the synthetic table '{table}' of dataset '{source.dataset}', which "
                             "is not published yet", dataset=source.dataset,
                             hint=f"materialize {source.dataset}/synthetic first")
        return FlowInputFile(path, f"dataset {source.dataset} {table} {version or path.stat().st_mtime_ns}")
    if source.flow is not None:
        upstream = flow_paths(project, source.flow)
        path = upstream.output_file()
        return FlowInputFile(path, f"flow {source.flow} {upstream.releases().current_version()}")
    path = project.relative_path(source.source)
    if not path.is_file():
        raise SynthError(f"flow '{name}': its source file {path} does not exist", hint="fix input.source")
    stat = path.stat()
    identity = f"file {path} {stat.st_size} {stat.st_mtime_ns}"
    if path.name.lower().endswith(".parquet"):
        return FlowInputFile(path, identity)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    converted = flow_paths(project, name).root / "input" / f"{digest}.parquet"
    if not converted.is_file():  # a CSV is read whole once; a large input is better given as Parquet
        files.write_parquet(read_source(path, dataset=f"flow {name}", table="input"), converted)
        for old in converted.parent.iterdir():
            if old != converted and old.suffix == ".parquet":
                old.unlink(missing_ok=True)
    return FlowInputFile(converted, identity)


def _only_table(project: Project, dataset: str, paths: DatasetPaths) -> str | None:
    """A one-table dataset's table: from its spec, or (a dataset of another component) its published tables."""
    if dataset in project.datasets:
        return next(iter(project.dataset(dataset).tables))
    if paths.releases("synthetic").current_version() is None:
        return None
    tables = sorted(p.stem for p in paths.synthetic.glob("*.parquet"))
    if len(tables) > 1:
        raise SynthError(f"dataset '{dataset}' has {len(tables)} synthetic tables ({', '.join(tables)})",
                         hint="name one with input.table")
    return tables[0] if tables else None


def run_flow(project: Project, name: str, version: str, *, device: str = "auto", restart: bool = False,
             log: Callable[[str], None] = print) -> FlowResult:
    """Run flow `name` into output `version` (not yet published: see `audit_flow` and `publish_flow`), resuming
    a killed run's checkpoint unless `restart`."""
    spec = project.flow(name)
    found = flow_input(project, name, spec)
    runner = FlowRunner(name, spec, input_path=found.path, input_identity=found.identity,
                        paths=flow_paths(project, name), dataset_paths=lambda d: dataset_paths(project, d),
                        device=device, log=log)
    return runner.run(version, restart=restart)


def audit_flow(spec: FlowSpec, result: FlowResult) -> list[Check]:
    """The flow's blocking checks on its written output: enough rows, and no output a block could not make valid."""
    rows = Check(name="flow_rows", passed=result.rows_out >= spec.min_rows,
                 description=f"{result.rows_out:,} rows, at least {spec.min_rows:,} wanted (min_rows)"
                 if result.rows_out < spec.min_rows else f"{result.rows_out:,} rows",
                 metadata={"rows": result.rows_out, "min_rows": spec.min_rows})
    bad = {block: n for block, n in result.invalid.items() if n}
    valid = Check(name="flow_valid_outputs", passed=not bad,
                  description="; ".join(f"block '{b}': {n:,} rows whose output stayed invalid after its retries"
                                        for b, n in bad.items()) if bad else "every block's output was valid",
                  metadata={"invalid_rows": sum(bad.values())})
    return [rows, valid]


def publish_flow(project: Project, name: str, version: str, checks: list[Check]) -> bool:
    """Publish `version` when every check passed; otherwise leave the last good output published."""
    if not all(check.passed for check in checks):
        return False
    flow_paths(project, name).publish(version, keep=project.flow(name).keep_versions)
    return True
