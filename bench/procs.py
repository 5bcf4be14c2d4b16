"""Run one engine in a subprocess and measure its peak resident memory.

`os.wait4` returns the rusage of exactly that child (and the grandchildren it reaped, e.g. joblib
workers), so the second engine's number never includes the first's, unlike RUSAGE_CHILDREN of this
process, which keeps the maximum over every child so far. On Linux ru_maxrss is in KiB, and it is the
peak of the largest single process in that tree, not their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProcResult:
    returncode: int
    seconds: float
    peak_mb: float


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> ProcResult:
    started = time.perf_counter()
    # stdout/stderr are inherited: the engine scripts print their own short progress lines
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        proc.kill()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it; tell Popen so it does not wait again
    return ProcResult(proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 1024)


def keep_traceback(main) -> None:
    """Run an engine script's `main()`, leaving the traceback of a failure in its --out folder (error.txt), where
    a driver (run_dp.py) records it."""
    try:
        main()
    except BaseException:
        argv = sys.argv[1:]
        if "--out" in argv:
            folder = Path(argv[argv.index("--out") + 1])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.txt").write_text(traceback.format_exc())
        raise
