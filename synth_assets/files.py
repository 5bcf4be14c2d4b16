"""Files always written to a temporary path and then renamed into place (Parquet, JSON, text, whole folders),
so a failed or interrupted stage never leaves a half-written output behind; Parquet read by path.

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
