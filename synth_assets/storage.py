"""Where each stage of a dataset keeps its output under `$SYNTH_HOME/<dataset>/` (`DatasetPaths`), written
through `files` (a temporary path, then a rename) and versioned by `releases` where consumers read it."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

from synth_assets import files
from synth_assets.files import recover_dir
from synth_assets.object_store import FILES  # the outputs that are one file; the others are folders
from synth_assets.errors import SynthError
from synth_assets.releases import CURRENT, Releases


class DatasetPaths:
    """Where each stage of one dataset keeps its output. Each folder is first recovered (`recover_dir`), so a
    reader finds the previous version even where a writer was killed in the middle of replacing it.

    The model and the synthetic tables are versioned (`releases`): `model` and `synthetic` are the published
    version's folder (`<stage>/CURRENT`, which does not exist before the first publication).

    With an object store as the storage root, `root` is the dataset's scratch folder and `mirror` its copy in the
    store (synth_assets.object_store): reading a stage's output here fetches it first; writers `push` theirs."""

    VERSIONED = ("model", "synthetic")

    def __init__(self, root: Path, dataset: str = "", mirror=None):
        self.root = Path(root)
        self.dataset = dataset
        self.mirror = mirror

    def releases(self, stage: str) -> Releases:
        if stage not in self.VERSIONED:
            raise ValueError(f"stage '{stage}' is not versioned")
        return Releases(self.root / stage, dataset=self.dataset, stage=stage)

    # writing: atomically here, then in the object store, by construction ----------------------------------
    @contextlib.contextmanager
    def output(self, entry: str) -> Iterator[Path]:
        """Write a stage's output (`split`, `encoded`, `quality`: a folder; `stats.json`: a file): yields a
        temporary path that becomes `entry` on success and is then pushed to the object store, if any. A stage
        that writes through this cannot forget its push."""
        target = self.root / entry
        with (files.atomic_path(target) if entry in FILES else files.atomic_dir(target)) as tmp:
            yield tmp
        self.push(entry)

    @contextlib.contextmanager
    def new_version(self, stage: str, version: str) -> Iterator[Path]:
        """Write candidate `version` of `stage` (model, synthetic): a temporary folder that becomes
        `<stage>/<version>/` on success and is then pushed (the audit may run in another pod)."""
        with self.releases(stage).write(version) as tmp:
            yield tmp
        self.push_version(stage, version)

    def add_to_version(self, stage: str, version: str, name: str, data: bytes) -> None:
        """A file added to a written version (a model's loss curve), here and in the object store."""
        files.write_bytes(data, self.version_folder(stage, version) / name)
        self.push_version(stage, version)

    @contextlib.contextmanager
    def shared_part(self, folder: Path, share: bool = True) -> Iterator[Path]:
        """Write a generation's part `folder` (under `synthetic/.parts/`): pushed for the joining step when `share`."""
        with files.atomic_dir(folder) as tmp:
            yield tmp
        if share:
            self.push_parts(folder)

    # the object store, where there is one ---------------------------------------------------------
    def pull(self, entry: str) -> None:
        """Bring a stage's output (`split`, `stats.json`, ..., `model`: its published version) up to date."""
        if self.mirror is not None:
            self.mirror.pull(entry)

    def push(self, entry: str) -> None:
        """Upload the output this process just wrote here (`split`, `stats.json`, `encoded`, `quality`)."""
        if self.mirror is not None:
            self.mirror.push(entry)

    def push_version(self, stage: str, version: str) -> None:
        """Upload a version written here (a candidate: the audit may run in another pod)."""
        if self.mirror is not None:
            self.mirror.push_version(stage, version)

    def pull_history(self, stage: str) -> None:
        """The store's release history of `stage`, which a publication here extends."""
        if self.mirror is not None:
            self.mirror.pull_history(stage)

    def pull_versions(self, stage: str) -> None:
        """Every version of `stage` in the store (to list them, to roll back)."""
        if self.mirror is not None:
            self.mirror.pull_versions(stage)

    def push_pointer(self, stage: str, keep: int) -> None:
        """After a publication or rollback here: the store's history and pointer, pruned to `keep` versions."""
        if self.mirror is not None:
            self.mirror.push_pointer(stage, keep)

    def push_parts(self, *paths: Path) -> None:
        """Upload a generation's plan or parts (under `synthetic/.parts/`), for the steps in other pods."""
        if self.mirror is not None:
            for path in paths:
                self.mirror.push_parts_file(Path(path).relative_to(self.root))

    def pull_parts(self, *paths: Path) -> None:
        if self.mirror is not None:
            for path in paths:
                self.mirror.pull_parts_file(Path(path).relative_to(self.root))

    def remove_parts(self, folder: Path) -> None:
        if self.mirror is not None:
            self.mirror.remove_parts(Path(folder).relative_to(self.root))

    def sweep_stale_parts(self, base: Path, plan: str, max_age: float) -> None:
        """In the store, the generations under `base` (`synthetic/.parts`) that failed runs left behind: those
        whose `plan` file is older than `max_age` seconds."""
        if self.mirror is not None:
            self.mirror.sweep_stale_parts(Path(base).relative_to(self.root), plan, max_age)

    def version_folder(self, stage: str, version: str) -> Path:
        """One version's folder (a candidate under audit), fetched if another process or pod wrote it."""
        if self.mirror is not None:
            return self.mirror.pull_version(stage, version)
        return self.releases(stage).path(version)

    def uri(self, entry: str = "") -> str:
        """Where an output lives, for people and for Dagster's `dagster/uri`: its object store URL, else a path."""
        if self.mirror is not None:
            return self.mirror.uri(entry)
        return str(self.root / entry) if entry else str(self.root)

    def published_uri(self, stage: str, name: str = "") -> str:
        """Where consumers read the published version of `stage`: here the stable `<stage>/CURRENT/` path; in an
        object store the published version's own folder (the store's `CURRENT` is an object naming it)."""

        version = self.releases(stage).current_version() if self.mirror is not None else None
        return self.uri("/".join(p for p in (stage, version or CURRENT, name) if p))

    def _published(self, stage: str) -> Path:

        self.pull(stage)
        recover_dir(self.root / stage)  # a store from before versions: replaced whole, maybe killed midway
        return self.releases(stage).current() or self.root / stage / CURRENT

    @property
    def split(self) -> Path:
        self.pull("split")
        return recover_dir(self.root / "split")

    def split_table(self, partition: str, table: str) -> Path:
        return self.split / partition / f"{table}.parquet"

    @property
    def stats(self) -> Path:
        self.pull("stats.json")
        return self.root / "stats.json"

    @property
    def encoded(self) -> Path:
        self.pull("encoded")
        return recover_dir(self.root / "encoded")

    @property
    def model(self) -> Path:
        return self._published("model")

    @property
    def synthetic(self) -> Path:
        return self._published("synthetic")

    def synthetic_folder(self, version: str | None = None) -> Path:
        """The published synthetic tables' folder, or that of `version` (a candidate under audit)."""
        return self.synthetic if version is None else self.version_folder("synthetic", version)

    def synthetic_table(self, table: str, version: str | None = None) -> Path:
        return self.synthetic_folder(version) / f"{table}.parquet"

    @property
    def quality(self) -> Path:
        self.pull("quality")
        return recover_dir(self.root / "quality")


def dataset_paths(project, dataset: str) -> DatasetPaths:
    """Where `dataset` of `project` (a config.Project) keeps its stages, mirrored in its object store if any."""
    return DatasetPaths(project.dataset_home(dataset), dataset, mirror=project.mirror(dataset))


FLOWS = "flows"  # under the storage root: one folder per flow


class FlowPaths:
    """Where a flow keeps its output, `<home>/flows/<flow>/output/<version>/<flow>.parquet` (versioned and
    published as the synthetic tables are), and the checkpoint of a run in progress (`work/`, local only: a run
    resumes on the machine that was killed). With an object store the output is pushed there on publication."""

    def __init__(self, home: Path, flow: str, store=None):
        self.flow = flow
        self.root = Path(home) / FLOWS / flow
        self.mirror = None
        if store is not None:
            from synth_assets.object_store import Mirror

            self.mirror = Mirror(store, self.root, f"{FLOWS}/{flow}")

    @property
    def work(self) -> Path:
        return self.root / "work"

    def releases(self) -> Releases:
        return Releases(self.root / "output", dataset=f"flow {self.flow}", stage="output")

    @contextlib.contextmanager
    def new_version(self, version: str) -> Iterator[Path]:
        with self.releases().write(version) as tmp:
            yield tmp
        if self.mirror is not None:
            self.mirror.push_version("output", version)

    def publish(self, version: str, keep: int) -> None:
        self.releases().publish(version, keep=keep)
        if self.mirror is not None:
            self.mirror.push_pointer("output", keep)

    def output_file(self, version: str | None = None) -> Path:
        """The published output (or `version`'s), fetched from the object store where there is one."""
        if version is None:
            if self.mirror is not None:
                self.mirror.pull("output")
            folder = self.releases().current()
            if folder is None:
                raise SynthError(f"flow '{self.flow}' has no published output yet",
                                 hint=f"materialize flows/{self.flow} first")
        else:
            folder = self.releases().path(version)
        return folder / f"{self.flow}.parquet"

    def uri(self, version: str) -> str:
        name = f"output/{version}/{self.flow}.parquet"
        return self.mirror.uri(name) if self.mirror is not None else str(self.root / name)
