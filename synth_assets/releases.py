"""Write-audit-publish for the stages whose outputs people consume (the model, the synthetic tables).

Every run writes a new version, `<stage>/<version>/`, which nobody reads until it is published. The
blocking checks audit that candidate; only when they pass does the pointer `<stage>/CURRENT` move to it.
The pointer is a relative symlink replaced in one rename (a small text file naming the version where the
file system has no symlinks), so a reader sees the old release or the new one, never a mix, and a failed
audit leaves consumers on the last good release. Consumers read `<stage>/CURRENT/<file>`.

`published.json` lists the releases in order, so a rollback goes back to the release before, not merely
to the newest folder (which may be a candidate that failed its audit). Old versions are pruned down to a
configured count; the published one is never pruned.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import uuid
from pathlib import Path

from synth_assets import files
from synth_assets.errors import SynthError

CURRENT = "CURRENT"
HISTORY = "published.json"
# 20261125T051200Z-1a2b3c4d: sorts by time of writing; the suffix is the run's id (or a random one)
_VERSION = re.compile(r"^\d{8}T\d{6}(\d{6})?Z-[0-9a-z]+$")


def is_version(name: str) -> bool:
    return _VERSION.match(name) is not None


def new_version(run_id: str | None = None) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{(run_id or uuid.uuid4().hex).replace('-', '')[:8].lower()}"


class Releases:
    """The versions of one stage's output under `root` (`$SYNTH_HOME/<dataset>/<stage>`)."""

    def __init__(self, root: Path, *, dataset: str = "", stage: str = ""):
        self.root = Path(root)
        self.dataset, self.stage = dataset, stage or self.root.name

    # reading -------------------------------------------------------------------------------------
    def current_version(self) -> str | None:
        pointer = self.root / CURRENT
        if pointer.is_symlink():
            return Path(os.readlink(pointer)).name
        if pointer.is_file():
            return pointer.read_text().strip() or None
        return None

    def current(self) -> Path | None:
        """The published version's folder, resolved (so one reader never mixes two versions); None before
        the first publication. A store written before versions existed is its own single release."""
        version = self.current_version()
        if version is not None:
            return self.root / version
        return self.root if self._unversioned() else None

    def _unversioned(self) -> bool:
        if not self.root.is_dir():
            return False
        return any(not e.name.startswith(".") and not _VERSION.match(e.name) and e.name != HISTORY
                   for e in os.scandir(self.root))

    def path(self, version: str) -> Path:
        if not _VERSION.match(version):
            raise SynthError(f"'{version}' is not a version of {self.stage}", dataset=self.dataset,
                             hint=f"pick one of: {', '.join(self.versions()) or 'none written yet'}")
        return self.root / version

    def versions(self) -> list[str]:
        """Every complete version written, oldest first (temporaries of writers in progress start with '.')."""
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False) and _VERSION.match(e.name))

    def history(self) -> list[dict]:
        path = self.root / HISTORY
        return files.read_json(path) if path.is_file() else []

    # writing -------------------------------------------------------------------------------------
    def write(self, version: str):
        """A context manager yielding an empty temporary folder that becomes `<stage>/<version>/` on success."""
        return files.atomic_dir(self.path(version))

    def publish(self, version: str, *, keep: int, reason: str = "audit passed") -> None:
        """Point CURRENT at `version`, record it, and prune old versions down to `keep`."""
        if not self.path(version).is_dir():
            raise SynthError(f"{self.stage} version {version} does not exist", dataset=self.dataset,
                             hint=f"pick one of: {', '.join(self.versions()) or 'none written yet'}")
        self.point_at(version)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        history = [*self.history(), {"version": version, "published_at": now, "reason": reason}]
        files.write_json(history, self.root / HISTORY)
        self.prune(keep)

    def point_at(self, version: str) -> None:
        pointer = self.root / CURRENT
        if pointer.is_dir() and not pointer.is_symlink():
            raise SynthError(f"{pointer} is a folder, not a pointer to a version (was the store copied without "
                             "its symlinks?)", dataset=self.dataset,
                             hint="copy stores with `cp -a` or `rsync -a`; here, delete that folder and publish again")
        with files.atomic_path(pointer) as tmp:
            tmp.unlink()
            try:
                os.symlink(version, tmp, target_is_directory=True)
            except OSError:  # no symlinks here (some Windows setups, some mounts): a file naming the version
                tmp.write_text(version)

    def rollback(self, to: str | None = None, *, keep: int) -> str:
        """Publish `to`, or else the release before the current one; returns the version now published."""
        if to is None:
            current = self.current_version()
            earlier = [h["version"] for h in self.history() if h["version"] != current]
            earlier = [v for v in earlier if (self.root / v).is_dir()]
            if not earlier:
                raise SynthError(f"no earlier {self.stage} release to roll back to", dataset=self.dataset,
                                 hint="name a version with --to; list them with `python -m synth_assets versions`")
            to = earlier[-1]
        self.publish(to, keep=keep, reason=f"rollback from {self.current_version()}")
        return to

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest versions beyond the newest `keep`; never the published one."""
        current = self.current_version()
        doomed = [v for v in self.versions()[: max(len(self.versions()) - keep, 0)] if v != current]
        for version in doomed:
            shutil.rmtree(self.root / version, ignore_errors=True)
        return doomed
