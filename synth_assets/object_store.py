"""A storage root in an object store (`s3://bucket/home`, `gs://...`), mirrored through a local scratch folder.

The stages and the backends work on local folders as they do with a local root. A dataset's `Mirror` fetches
what a stage reads from the store into the scratch folder (`$SYNTH_SCRATCH`, else one under the system's
temporary folder per store) and uploads what it writes, so every step, in whichever pod it runs, sees the
outputs of the steps before it. Transfers go through pyarrow's file systems (S3, GCS, HDFS); any other scheme
through fsspec, where its package is installed.

An object store has no rename, so nothing is ever replaced in place:
- a folder is uploaded file by file, and then its manifest (`.manifest.json`, the files and their sizes);
  a folder without a manifest is unfinished and never read;
- the split, the encoded data and the quality report are written as a new folder `<stage>/<token>/` each
  time, and `<stage>/CURRENT`, one object written in one request, then names it (as the model's and the
  synthetic tables' versions always were); the folder before is kept for readers still fetching it.

The store's location takes options in its query string, as pyarrow reads them, for example
`s3://bucket/home?endpoint_override=http://minio:9000&region=eu-west-1`; credentials come from the usual
places (environment, profile, instance role).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from synth_assets import files
from synth_assets.errors import ConfigError, SynthError
from synth_assets.releases import Releases, is_version, new_version

MANIFEST = ".manifest.json"
POINTER = "CURRENT"
HISTORY = "published.json"
FOLDERS = ("split", "encoded", "quality")  # replaced whole on each run: new token, then the pointer
FILES = ("stats.json",)
RELEASED = ("model", "synthetic", "output")  # versioned with write-audit-publish (releases); output: a flow's
ARROW_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs")  # pyarrow's own file systems
URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://")


def is_url(home: str | Path) -> bool:
    return URL.match(str(home)) is not None and not str(home).startswith("file://")


class ObjectStore:
    """The files under one URL, read and written through a pyarrow file system."""

    def __init__(self, url: str, where: str = "SYNTH_HOME"):
        self.url = url
        self.where = where
        self.scheme = URL.match(url)["scheme"].lower()
        if self.scheme not in ARROW_SCHEMES and self.scheme not in _fsspec_schemes():
            raise ConfigError(f"{where} is {self.display}: cannot open a store of scheme '{self.scheme}'",
                              hint="use s3://bucket/folder or gs://bucket/folder (options such as "
                                   "?endpoint_override=... go in the query string), a scheme of an installed "
                                   "fsspec package, or a local path")
        self._opened = None

    @property
    def fs(self):
        return self._open()[0]

    def _open(self):
        """The file system and the base path in it, opened on first use (opening may ask the store for the
        bucket's region: never while the code location loads)."""
        if self._opened is None:
            import pyarrow.fs as pafs

            try:
                if self.scheme in ARROW_SCHEMES:
                    fs, base = pafs.FileSystem.from_uri(self.url)
                else:
                    import fsspec

                    fs, base = fsspec.core.url_to_fs(self.url)
                    fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
            except Exception as exc:
                raise SynthError(f"could not open {self.display} ({exc})",
                                 hint=f"check {self.where}: its bucket, its options, the credentials") from None
            self._opened = fs, base.rstrip("/")
        return self._opened

    @property
    def display(self) -> str:
        """The location without its query string (endpoints and options are not shown in the UI)."""
        return self.url.split("?", 1)[0].rstrip("/")

    def uri(self, key: str = "") -> str:
        return f"{self.display}/{key}" if key else self.display

    def _path(self, key: str) -> str:
        base = self._open()[1]
        return f"{base}/{key}" if key else base

    def _failed(self, doing: str, key: str, exc: Exception) -> SynthError:
        return SynthError(f"could not {doing} {self.uri(key)} ({exc})",
                          hint=f"check that {self.where} names a bucket that exists and that the credentials "
                               "(AWS_ACCESS_KEY_ID and the like, or the pod's role) may read and write it")

    # single objects ------------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes | None:
        import pyarrow as pa

        try:
            with self.fs.open_input_stream(self._path(key)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise self._failed("read", key, exc) from exc

    def read_text(self, key: str) -> str | None:
        data = self.read_bytes(key)
        return None if data is None else data.decode()

    def write_bytes(self, data: bytes, key: str) -> None:
        """One object, written in one request: readers see the old content or the new, never a part."""
        try:
            with self.fs.open_output_stream(self._path(key)) as stream:
                stream.write(data)
        except OSError as exc:
            raise self._failed("write", key, exc) from exc

    def write_text(self, text: str, key: str) -> None:
        self.write_bytes(text.encode(), key)

    def upload_file(self, local: Path, key: str) -> None:
        import pyarrow.fs as pafs

        try:
            pafs.copy_files(str(local), self._path(key), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
        except OSError as exc:
            raise self._failed("upload", key, exc) from exc

    def download_file(self, key: str, local: Path) -> None:
        import pyarrow.fs as pafs

        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            pafs.copy_files(self._path(key), str(local), source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        except OSError as exc:
            raise self._failed("download", key, exc) from exc

    def check(self) -> None:
        """Write, read back and delete one small object: the bucket is there and the credentials may use it."""
        import uuid

        key = f".synth-assets-check-{uuid.uuid4().hex[:8]}"
        self.write_text("ok", key)
        if self.read_text(key) != "ok":
            raise SynthError(f"{self.uri(key)} read back differs from what was written",
                             hint=f"check what else writes under {self.display}")
        try:
            self.fs.delete_file(self._path(key))
        except OSError as exc:
            raise self._failed("delete", key, exc) from exc

    # folders -------------------------------------------------------------------------------------
    def upload_dir(self, local: Path, key: str) -> None:
        """Upload the files under `local`, then the manifest that marks the folder complete. Files the folder's
        manifest already lists with the same size are not sent again (a chart added beside a checkpoint)."""
        files = {p.relative_to(local).as_posix(): p.stat().st_size for p in sorted(local.rglob("*")) if p.is_file()}
        there = json.loads(self.read_text(f"{key}/{MANIFEST}") or '{"files": {}}')["files"]
        for name, size in files.items():
            if there.get(name) != size:
                self.upload_file(local / name, f"{key}/{name}")
        self.write_text(json.dumps({"files": files}), f"{key}/{MANIFEST}")

    def download_dir(self, key: str, local: Path) -> bool:
        """Fetch the complete folder `key` into `local` (an empty folder); False when it has no manifest."""
        manifest = self.read_text(f"{key}/{MANIFEST}")
        if manifest is None:
            return False
        for name, size in json.loads(manifest)["files"].items():
            self.download_file(f"{key}/{name}", local / name)
            if (local / name).stat().st_size != size:
                raise SynthError(f"{self.uri(f'{key}/{name}')} has {(local / name).stat().st_size} bytes, its "
                                 f"manifest says {size}", hint="something else wrote into that folder; write "
                                                              "the stage again")
        return True

    def is_complete(self, key: str) -> bool:
        return self.read_bytes(f"{key}/{MANIFEST}") is not None

    def age(self, key: str) -> float | None:
        """Seconds since the object `key` was written; None when it is not there."""
        import time

        import pyarrow.fs as pafs

        try:
            info = self.fs.get_file_info(self._path(key))
        except OSError as exc:
            raise self._failed("look up", key, exc) from exc
        if info.type == pafs.FileType.NotFound or info.mtime is None:
            return None
        return time.time() - info.mtime.timestamp()

    def list_dirs(self, key: str) -> list[str]:
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self._path(key), allow_not_found=True))
        except OSError as exc:
            raise self._failed("list", key, exc) from exc
        return sorted(Path(i.path).name for i in infos if i.type == pafs.FileType.Directory)

    def delete_dir(self, key: str) -> None:
        import pyarrow.fs as pafs

        path = self._path(key)
        try:
            if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
                self.fs.delete_dir(path)
        except OSError as exc:
            raise self._failed("delete", key, exc) from exc


def _fsspec_schemes() -> set[str]:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return set()
    return set(known_implementations)


def scratch_for(url: str) -> Path:
    """The local folder a store is mirrored through: `$SYNTH_SCRATCH`, else one per store under the system's
    temporary folder (a pod's own disk; on one machine, the steps of a run share it)."""
    home = os.environ.get("SYNTH_SCRATCH")
    if home:
        return Path(home).expanduser().resolve()
    digest = hashlib.sha1(url.split("?", 1)[0].rstrip("/").encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "synth-assets-scratch" / digest


class Mirror:
    """One dataset's outputs in the store (`<home>/<dataset>/...`) and in the scratch folder (`local`)."""

    def __init__(self, store: ObjectStore, local: Path, dataset: str):
        self.store, self.local, self.dataset = store, Path(local), dataset
        self._fresh: set[str] = set()  # what this process has already fetched or written: fetched once

    def key(self, name: str = "") -> str:
        return f"{self.dataset}/{name}" if name else self.dataset

    def uri(self, name: str = "") -> str:
        return self.store.uri(self.key(name))

    def _token_file(self, entry: str) -> Path:
        return self.local / ".mirror" / entry

    # fetching --------------------------------------------------------------------------------------
    def pull(self, entry: str) -> None:
        """Bring `entry` (a stage's output: stats.json, split, encoded, quality; model or synthetic: the
        published version) up to date with the store, once per process."""
        if entry in self._fresh:
            return
        if entry in FILES:
            self._pull_file(entry)
        elif entry in FOLDERS:
            self._pull_folder(entry)
        elif entry in RELEASED:
            self._pull_release(entry)
        else:
            raise ValueError(f"no stage output called {entry!r}")
        self._fresh.add(entry)

    def _pull_file(self, name: str) -> None:
        data = self.store.read_bytes(self.key(name))
        target = self.local / name
        if data is None:
            target.unlink(missing_ok=True)  # the store is the truth: no stale copy stands in for it
        elif not target.is_file() or target.read_bytes() != data:
            files.write_bytes(data, target)

    def _pull_folder(self, entry: str) -> None:
        token = self.store.read_text(self.key(f"{entry}/{POINTER}"))
        target, record = self.local / entry, self._token_file(entry)
        if token is None:
            shutil.rmtree(target, ignore_errors=True)
            record.unlink(missing_ok=True)
            return
        token = token.strip()
        if target.is_dir() and record.is_file() and record.read_text() == token:
            return
        with files.atomic_dir(target) as tmp:
            if not self.store.download_dir(self.key(f"{entry}/{token}"), tmp):
                raise SynthError(f"{self.uri(f'{entry}/{token}')} is incomplete", dataset=self.dataset,
                                 hint=f"materialize {self.dataset}/{entry} again")
        files.write_text(token, record)

    def _pull_release(self, stage: str) -> None:
        version = self.pull_history(stage)
        releases = self._releases(stage)
        if version is None:
            (releases.root / POINTER).unlink(missing_ok=True)
            return
        self.pull_version(stage, version)
        releases.point_at(version)

    def pull_history(self, stage: str) -> str | None:
        """The store's release history of `stage` (which a publication here extends); returns the version the
        store's pointer names, without fetching it."""
        history = self.store.read_text(self.key(f"{stage}/{HISTORY}"))
        if history is not None:
            files.write_text(history, self._releases(stage).root / HISTORY)
        version = self.store.read_text(self.key(f"{stage}/{POINTER}"))
        return None if version is None else version.strip()

    def pull_version(self, stage: str, version: str) -> Path:
        """The folder of one version of `stage` (a candidate under audit, a release to roll back to)."""
        folder = self._releases(stage).path(version)
        if not folder.is_dir():
            with files.atomic_dir(folder) as tmp:
                if not self.store.download_dir(self.key(f"{stage}/{version}"), tmp):
                    raise SynthError(f"{stage} version {version} is not in {self.uri(stage)}", dataset=self.dataset,
                                     hint="list the versions with `python -m synth_assets versions`")
        return folder

    def pull_versions(self, stage: str) -> None:
        """Every complete version of `stage` in the store, and its pointer (listing, rolling back)."""
        for version in self.remote_versions(stage):
            self.pull_version(stage, version)
        self._fresh.discard(stage)
        self.pull(stage)

    def remote_versions(self, stage: str) -> list[str]:
        return [v for v in self.store.list_dirs(self.key(stage))
                if is_version(v) and self.store.is_complete(self.key(f"{stage}/{v}"))]

    # writing ---------------------------------------------------------------------------------------
    def push(self, entry: str) -> None:
        """Upload what this process just wrote to `entry` (stats.json, split, encoded or quality)."""
        if entry in FILES:
            self.store.write_bytes((self.local / entry).read_bytes(), self.key(entry))
        elif entry in FOLDERS:
            token = new_version()
            before = (self.store.read_text(self.key(f"{entry}/{POINTER}")) or "").strip()
            self.store.upload_dir(self.local / entry, self.key(f"{entry}/{token}"))
            self.store.write_text(token, self.key(f"{entry}/{POINTER}"))
            files.write_text(token, self._token_file(entry))
            for old in self.store.list_dirs(self.key(entry)):  # the folder before stays for readers fetching it
                if old not in (token, before):
                    self.store.delete_dir(self.key(f"{entry}/{old}"))
        else:
            raise ValueError(f"no stage output called {entry!r}")
        self._fresh.add(entry)

    def push_version(self, stage: str, version: str) -> None:
        self.store.upload_dir(self._releases(stage).path(version), self.key(f"{stage}/{version}"))

    def push_pointer(self, stage: str, keep: int) -> None:
        """After a local publish or rollback: the history, then the pointer; then prune as the local side did."""
        releases = self._releases(stage)
        version = releases.current_version()
        if version is None:
            return
        if not self.store.is_complete(self.key(f"{stage}/{version}")):
            self.push_version(stage, version)
        self.store.write_bytes((releases.root / HISTORY).read_bytes(), self.key(f"{stage}/{HISTORY}"))
        self.store.write_text(version, self.key(f"{stage}/{POINTER}"))
        self._fresh.add(stage)
        versions = self.remote_versions(stage)
        for old in versions[: max(len(versions) - keep, 0)]:
            if old != version:
                self.store.delete_dir(self.key(f"{stage}/{old}"))

    # generation in parts ------------------------------------------------------------------------
    def push_parts_file(self, relative: Path) -> None:
        """A plan, or a part's folder, under `synthetic/.parts/` (relative to the dataset's folder)."""
        local = self.local / relative
        if local.is_dir():
            self.store.upload_dir(local, self.key(relative.as_posix()))
        else:
            self.store.write_bytes(local.read_bytes(), self.key(relative.as_posix()))

    def pull_parts_file(self, relative: Path) -> bool:
        """Fetch a plan or a complete part's folder unless it is here already; False when the store lacks it."""
        local = self.local / relative
        if local.exists():
            return True
        if relative.suffix == ".json":
            data = self.store.read_bytes(self.key(relative.as_posix()))
            if data is not None:
                files.write_bytes(data, local)
            return data is not None
        with files.atomic_dir(local) as tmp:
            found = self.store.download_dir(self.key(relative.as_posix()), tmp)
        if not found:
            shutil.rmtree(local, ignore_errors=True)
        return found

    def remove_parts(self, relative: Path) -> None:
        self.store.delete_dir(self.key(relative.as_posix()))

    def sweep_stale_parts(self, relative: Path, plan: str, max_age: float) -> list[str]:
        """Remove the jobs under `relative` (`synthetic/.parts`) whose `plan` file is older than `max_age` seconds:
        left by runs that failed, as the local sweep does for its folder."""
        removed = []
        for job in self.store.list_dirs(self.key(relative.as_posix())):
            age = self.store.age(self.key(f"{relative.as_posix()}/{job}/{plan}"))
            if age is not None and age > max_age:
                self.store.delete_dir(self.key(f"{relative.as_posix()}/{job}"))
                removed.append(job)
        return removed

    def _releases(self, stage: str) -> Releases:
        return Releases(self.local / stage, dataset=self.dataset, stage=stage)
