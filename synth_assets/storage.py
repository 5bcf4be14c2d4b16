"""Files under `$SYNTH_HOME/<dataset>/`, always written to a temporary path and then renamed into place,
so a failed or interrupted stage never leaves a half-written output behind.

A process killed outright (SIGKILL, out of memory, power) runs no cleanup, so what it leaves is put right by
the next process instead:

- temporaries are named `.<target>.<pid>-<host>.<random>.tmp`; every atomic write first removes those
  in its folder whose writer, on this machine, is no longer alive (never those of a live process: two
  runs may write at once, and never those of another machine sharing the folder);
- `atomic_dir` replaces a folder in two renames (target -> `.<target>.old`, temporary -> target); a
  writer killed between them leaves no target, only `.<target>.old`. `recover_dir` puts that back: the
  next writer calls it, and so does every folder of `DatasetPaths`, so readers find the previous version.
  The swap, and the recovery, hold a lock on the parent folder, so neither ever sees another's half-done
  swap as a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import fcntl
except ImportError:  # Windows: no lock, and no sweeping (there, os.kill(pid, 0) would end the process)
    fcntl = None

# which machine wrote a temporary: a pid means something only on the machine that gave it out
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[A-Za-z0-9_]+\.tmp$")


def _prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-{HOST_TAG}."


def temporary_name(name: str) -> str:
    """A name for a temporary of this process, as `sweep_temporaries` knows them: once this process is gone,
    the next writer in the same folder removes it."""
    import uuid

    return f"{_prefix(Path(name))}{uuid.uuid4().hex[:8]}.tmp"


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process on this machine; when in doubt, True."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: someone else's live process; or not a pid at all
        return True
    try:  # a zombie (killed, not yet reaped by its parent) never writes again
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in `folder` left by writers on this machine that are no longer alive."""
    removed = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["host"] != HOST_TAG or _alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def _swap_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder`, released when this process ends, however it ends."""
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: go on unlocked, as before
            pass
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def recover_dir(target: Path) -> Path:
    """If a writer of `target` was killed between its two renames, put the previous version back.

    Costs one `stat` when `target` is there. Returns `target`."""
    target = Path(target)
    old = _old(target)
    if target.exists() or not old.exists():
        return target
    with _swap_lock(target.parent):
        if not target.exists() and old.is_dir():  # checked again: a live writer may just have finished
            os.replace(old, target)
    return target


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary file path beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on success it takes `target`'s place."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(target.parent)
    recover_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    trash: list[Path] = []
    try:
        yield tmp
        old = _old(target)
        with _swap_lock(target.parent):
            if target.exists():
                if old.exists():  # left by a writer killed after its two renames: stale
                    trash.append(_discard(old, target))
                os.replace(target, old)
            # without a target, an `.old` is the last version: it stays until the new one is in place
            os.replace(tmp, target)
            if old.exists():
                trash.append(_discard(old, target))
    finally:
        for folder in [tmp, *trash]:
            shutil.rmtree(folder, ignore_errors=True)


def _discard(folder: Path, target: Path) -> Path:
    """Rename `folder` to a temporary of this process, to be deleted (or swept, if we are killed first)."""
    trash = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    os.replace(folder, trash)
    return trash


def write_parquet(df: pd.DataFrame, target: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.read_table(path, columns=columns).to_pandas()


def parquet_rows(path: Path) -> int:
    """A Parquet file's row count, from its footer."""
    return pq.ParquetFile(path).metadata.num_rows


def parquet_columns(path: Path) -> list[str]:
    return pq.read_schema(path).names


def iter_parquet(path: Path, batch_rows: int = 250_000, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """A Parquet file as frames of at most `batch_rows` rows, in order: a large table never whole in memory."""
    file = pq.ParquetFile(path)
    for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
        # through a Table, so the file's pandas metadata (nullable dtypes, index) applies as in read_parquet
        yield pa.Table.from_batches([batch]).to_pandas()


def read_parquet_rows(path: Path, rows, batch_rows: int = 250_000) -> pd.DataFrame:
    """The rows at positions `rows` (sorted ascending) of a Parquet file, read batch by batch."""
    import numpy as np

    rows = np.asarray(rows, dtype="int64")
    picked, start = [], 0
    for frame in iter_parquet(path, batch_rows):
        end = start + len(frame)
        inside = rows[(rows >= start) & (rows < end)] - start
        if len(inside):
            picked.append(frame.iloc[inside])
        start = end
    if not picked:
        return pq.read_schema(path).empty_table().to_pandas()
    return pd.concat(picked, ignore_index=True)


def write_json(obj: Any, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_bytes(data: bytes, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


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

    def releases(self, stage: str):
        from synth_assets.releases import Releases

        if stage not in self.VERSIONED:
            raise ValueError(f"stage '{stage}' is not versioned")
        return Releases(self.root / stage, dataset=self.dataset, stage=stage)

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
        from synth_assets.releases import CURRENT

        version = self.releases(stage).current_version() if self.mirror is not None else None
        return self.uri("/".join(p for p in (stage, version or CURRENT, name) if p))

    def _published(self, stage: str) -> Path:
        from synth_assets.releases import CURRENT

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
