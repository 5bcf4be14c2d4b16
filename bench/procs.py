"""Run one engine in a subprocess and measure its peak resident memory.

`os.wait4` returns the rusage of exactly that child (and the grandchildren it reaped, e.g. joblib
workers), so the second engine's number never includes the first's, unlike RUSAGE_CHILDREN of this
process, which keeps the maximum over every child so far. On Linux ru_maxrss is in KiB, and it is the
peak of the largest single process in that tree, not their sum.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


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
