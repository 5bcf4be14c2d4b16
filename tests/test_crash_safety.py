"""Crash safety, shown by processes really killed with SIGKILL: mid-training, mid-generation and between
`atomic_dir`'s two renames; two datasets materialized at the same time; and the same seeds giving the same
synthetic table. Every wait is bounded, so no test can hang."""

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets import files, storage
from synth_assets.project import load_project
from synth_assets.pipeline import DatasetPipeline
from synth_assets.files import read_parquet

# Runs stages of one dataset in its own process: `python -c RUNNER <dataset> <stage> ...`. Prints
# "stage <name>" before each stage, "epoch <n>" after each training epoch, and "done" at the end.
# PAUSE_AFTER_WRITING=<file name>: after writing that file (into its temporary folder) the process says so
# and sleeps, so that a test kills it at a known point in the write. KILL_AFTER_RENAME=<name>: the process
# kills itself right after renaming something to that name.
RUNNER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from synth_assets import files
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pause_after = os.environ.get("PAUSE_AFTER_WRITING")
    if pause_after:
        write_parquet = files.write_parquet
        def write_and_pause(df, target):
            write_parquet(df, target)
            if Path(target).name == pause_after:
                print("paused after writing", target, flush=True)
                time.sleep(120)
        files.write_parquet = write_and_pause

    kill_after = os.environ.get("KILL_AFTER_RENAME")
    if kill_after:
        import signal
        replace = os.replace
        def replace_then_die(src, dst):
            replace(src, dst)
            if Path(dst).name == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace_then_die

    pipeline = DatasetPipeline(load_project(), sys.argv[1])
    for stage in sys.argv[2:]:
        print("stage", stage, flush=True)
        if stage == "train":
            pipeline.train(device="cpu", progress=lambda record: print("epoch", record.epoch, flush=True))
        elif stage == "generate":
            pipeline.generate(device="cpu")
        else:
            getattr(pipeline, stage)()
    print("done", flush=True)
""")

TRAIN = "max_training_time: 5, model_size: small, batch_size: 256, early_stopping_patience: 100, seed: 3"


def project_file(folder: Path, datasets: dict[str, str]) -> Path:
    """synth.yaml in `folder` with one flat table per dataset; `datasets` maps a name to its extra YAML."""
    body = "datasets:\n"
    for name, extra in datasets.items():
        body += (f"  {name}:\n    backend: tabular_argn\n    tables:\n      {name}: {{source: {name}.csv}}\n"
                 f"    split: {{validation_share: 0.2, seed: 1}}\n"
                 + textwrap.indent(textwrap.dedent(extra).strip() + "\n", "    "))
    path = folder / "synth.yaml"
    path.write_text(body)
    return path


def gems_yaml(max_epochs: int = 2, model_state: str = "reset", sample_size: int = 1000, seed: int = 7) -> str:
    return (f"train: {{{TRAIN}, max_epochs: {max_epochs}, model_state: {model_state}}}\n"
            f"generate: {{sample_size: {sample_size}, seed: {seed}}}\n")


class Run:
    """A subprocess running RUNNER; a thread collects its output lines with their arrival times."""

    def __init__(self, project: Path, dataset: str, *stages: str, env: dict | None = None):
        environment = {**os.environ, "SYNTH_CONFIG": str(project / "synth.yaml"), "SYNTH_HOME": str(project / "home"),
                       "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER, dataset, *stages], env=environment,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        RUNNING.append(self)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def said(self, prefix: str) -> float | None:
        """When the process first printed a line starting with `prefix`; None if it has not."""
        return next((t for t, line in list(self.lines) if line.startswith(prefix)), None)

    def wait_for(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                self.reader.join(5)
                if condition():
                    return
                raise AssertionError(f"the process ended (rc {self.proc.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {what} after {timeout}s:\n{self.output()}")
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: no finally blocks, no atexit, nothing of the process's own runs any more."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)  # reaped, so its pid is no longer alive
        self.reader.join(5)

    def finish(self, timeout: float = 90) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout}s:\n{self.output()}") from None
        self.reader.join(5)
        assert self.proc.returncode == 0 and self.said("done") is not None, self.output()
        return self.output()


RUNNING: list[Run] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    while RUNNING:
        RUNNING.pop().kill()


def leftovers(folder: Path) -> list[str]:
    """Temporaries and replaced versions anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith((".tmp", ".old")))


def epochs(run: Run) -> list[int]:
    return [int(line.split()[1]) for _, line in list(run.lines) if line.startswith("epoch ")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, diamonds_small):
    """A project whose 'gems' dataset has been split, encoded, trained (2 epochs) and generated."""
    root = tmp_path_factory.mktemp("crash")
    diamonds_small.to_csv(root / "gems.csv", index=False)
    project_file(root, {"gems": gems_yaml()})
    Run(root, "gems", "split", "stats", "encode", "train", "generate").finish()
    RUNNING.clear()
    return root


def copy_project(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "project", symlinks=True))


@pytest.mark.e2e
def test_killed_training_keeps_the_last_model_and_resume_continues(trained, tmp_path):
    project = copy_project(trained, tmp_path)
    home = project / "home" / "gems"
    model, partial = home / "model" / "CURRENT", home / "model.partial"
    finished = {name: (model / name).read_bytes() for name in ("weights.safetensors", "config.json", "progress.json")}
    assert [p["epoch"] for p in json.loads(finished["progress.json"])] == [1, 2]
    assert not partial.exists()

    # a long training, killed once three epochs are saved in model.partial (more than the finished model has)
    project_file(project, {"gems": gems_yaml(max_epochs=200)})
    run = Run(project, "gems", "train")

    def partial_epoch() -> int:
        try:  # model.partial appears and is replaced by renames: what is there is complete
            return json.loads((partial / "progress_state.json").read_text())["epoch"]
        except (FileNotFoundError, NotADirectoryError):
            return 0

    run.wait_for(lambda: partial_epoch() >= 3, "third epoch in model.partial", timeout=60)
    assert run.proc.poll() is None, "training ended before it could be killed"
    run.kill()
    assert run.proc.returncode == -signal.SIGKILL

    # the last finished model is untouched, byte for byte, and nothing half-written sits in its folder
    assert {name: (model / name).read_bytes() for name in finished} == finished
    assert sorted(p.name for p in model.iterdir()) == sorted(
        ["weights.safetensors", "last.safetensors", "training_state.pt", "progress_state.json", "config.json",
         "codes.json", "progress.json", "table.json"])
    # (read as resume reads it: a kill between the two renames of a save leaves the state as .model.partial.old)
    state = json.loads((files.recover_dir(partial) / "progress_state.json").read_text())
    done = state["epoch"]
    assert done >= 3 and [r["epoch"] for r in state["history"]] == list(range(1, done + 1))

    # resume continues past the epochs done before the kill; this run is killed too, in the one spot where
    # no model.partial is in place: its epoch done+1 moved the state of epoch `done` aside, and it died
    project_file(project, {"gems": gems_yaml(max_epochs=done + 2, model_state="resume")})
    resumed = Run(project, "gems", "train", env={"KILL_AFTER_RENAME": ".model.partial.old"})
    resumed.wait_for(lambda: resumed.proc.poll() is not None, "the kill", timeout=60)
    assert resumed.proc.returncode == -signal.SIGKILL and epochs(resumed) == [done + 1], resumed.output()
    assert not partial.exists() and (home / ".model.partial.old").is_dir()

    # so the next resume goes on from epoch `done` again, not from the older finished model
    again = Run(project, "gems", "train")
    again.finish()
    assert epochs(again) == [done + 1, done + 2]
    history = json.loads((model / "progress.json").read_text())
    assert [r["epoch"] for r in history] == list(range(1, done + 3))
    assert history[:done] == state["history"]  # the epochs before the first kill, as they were
    assert (model / "weights.safetensors").read_bytes() != finished["weights.safetensors"]
    assert not partial.exists()  # finished: nothing left to resume
    assert leftovers(project / "home") == []  # the killed runs' temporaries are gone too


@pytest.mark.e2e
def test_killed_generation_keeps_the_previous_table(trained, tmp_path, monkeypatch):
    project = copy_project(trained, tmp_path)
    home = project / "home" / "gems"
    table = home / "synthetic" / "CURRENT" / "gems.parquet"
    before_bytes = table.read_bytes()
    before = read_parquet(table)
    assert len(before) == 1000

    # killed while drawing a large sample
    project_file(project, {"gems": gems_yaml(sample_size=3_000_000, seed=8)})
    drawing = Run(project, "gems", "generate")
    drawing.wait_for(lambda: drawing.said("stage generate") is not None, "start of generation")
    time.sleep(1.5)
    assert drawing.proc.poll() is None, f"3M rows were drawn in 1.5 s?\n{drawing.output()}"
    drawing.kill()
    assert table.read_bytes() == before_bytes
    assert [p.name for p in (home / "synthetic" / "CURRENT").glob("*.parquet")] == ["gems.parquet"]

    # killed while writing: the new table is complete on disk, but not yet in place
    project_file(project, {"gems": gems_yaml(sample_size=20_000, seed=8)})
    writing = Run(project, "gems", "generate", env={"PAUSE_AFTER_WRITING": "gems.parquet"})
    writing.wait_for(lambda: writing.said("paused after writing") is not None, "the new table written", timeout=90)
    # (written as the generation's one part, in a temporary folder of the process)
    temporaries = [p for p in (home / "synthetic").rglob("gems.parquet") if p.parent.name.endswith(".tmp")]
    assert len(temporaries) == 1 and len(read_parquet(temporaries[0])) == 20_000
    writing.kill()

    # readers see the previous table, whole, and nothing partial in the published folder
    assert [p.name for p in (home / "synthetic" / "CURRENT").glob("*.parquet")] == ["gems.parquet"]
    assert table.read_bytes() == before_bytes
    monkeypatch.setenv("SYNTH_CONFIG", str(project / "synth.yaml"))
    monkeypatch.setenv("SYNTH_HOME", str(project / "home"))
    reader = DatasetPipeline(load_project(), "gems")
    pd.testing.assert_frame_equal(reader.load_synthetic()["gems"], before)

    # the next successful run puts its table in place and leaves no temporaries behind (its own or the
    # killed runs')
    project_file(project, {"gems": gems_yaml(sample_size=1500, seed=9)})
    Run(project, "gems", "generate").finish()
    assert len(read_parquet(table)) == 1500
    assert leftovers(project / "home") == []


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory, diamonds_small):
    """Two datasets of one project, materialized at the same time into one home by two processes: 'gems'
    exactly as in `trained` (same source, same seeds), and 'people', a table of its own."""
    project = tmp_path_factory.mktemp("side_by_side")
    diamonds_small.to_csv(project / "gems.csv", index=False)
    rng = np.random.default_rng(0)
    people = pd.DataFrame({"age": rng.integers(18, 90, 1200), "city": rng.choice(["Oslo", "Bergen", "Tromso"], 1200),
                           "income": rng.normal(50_000, 9_000, 1200).round(0)})
    people.to_csv(project / "people.csv", index=False)
    project_file(project, {
        "gems": gems_yaml(),
        "people": f"train: {{{TRAIN}, max_epochs: 3}}\ngenerate: {{sample_size: 900, seed: 2}}",
    })
    stages = ("split", "stats", "encode", "train", "generate")
    runs = {name: Run(project, name, *stages) for name in ("gems", "people")}
    for run in runs.values():
        run.finish()
    RUNNING.clear()
    return project, runs, {"gems": diamonds_small, "people": people}


@pytest.mark.e2e
def test_two_datasets_materialize_at_the_same_time(side_by_side):
    project, runs, sources = side_by_side
    # they really ran at the same time: each started before the other finished
    assert max(r.said("stage split") for r in runs.values()) < min(r.said("done") for r in runs.values())
    home = project / "home"
    assert sorted(p.name for p in home.iterdir()) == ["gems", "people"]
    # each got what its own configuration asked for
    for name, rows, max_epochs in (("gems", 1000, 2), ("people", 900, 3)):
        assert [p.name for p in (home / name / "synthetic" / "CURRENT").glob("*.parquet")] == [f"{name}.parquet"]
        synthetic = read_parquet(home / name / "synthetic" / "CURRENT" / f"{name}.parquet")
        assert list(synthetic.columns) == list(sources[name].columns) and len(synthetic) == rows
        split = {part: read_parquet(home / name / "split" / part / f"{name}.parquet")
                 for part in ("train", "validation")}
        assert sum(map(len, split.values())) == len(sources[name])
        assert list(split["train"].columns) == list(sources[name].columns)
        assert json.loads((home / name / "model" / "CURRENT" / "config.json").read_text())["table"] == name
        assert [p["epoch"] for p in json.loads((home / name / "model" / "CURRENT" / "progress.json").read_text())] == \
            list(range(1, max_epochs + 1))
        assert epochs(runs[name]) == list(range(1, max_epochs + 1))
    assert leftovers(home) == []


@pytest.mark.e2e
def test_same_seeds_same_synthetic_table(trained, side_by_side):
    """Split, train and generate seeds fixed: two full runs in separate homes (one of them beside another
    dataset's) give the same split, the same weights and the same synthetic table."""
    first, second = trained / "home" / "gems", side_by_side[0] / "home" / "gems"
    for part in ("train", "validation"):
        pd.testing.assert_frame_equal(read_parquet(first / "split" / part / "gems.parquet"),
                                      read_parquet(second / "split" / part / "gems.parquet"))
    assert (first / "model" / "CURRENT" / "weights.safetensors").read_bytes() == \
        (second / "model" / "CURRENT" / "weights.safetensors").read_bytes()
    one = read_parquet(first / "synthetic" / "CURRENT" / "gems.parquet")
    two = read_parquet(second / "synthetic" / "CURRENT" / "gems.parquet")
    assert len(one) == 1000 and len(one.drop_duplicates()) > 900  # a real table, not a degenerate one
    pd.testing.assert_frame_equal(one, two)


# atomic_dir's own states ---------------------------------------------------------------------------------

KILL_AFTER_RENAME = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from synth_assets import files, storage

    replace = os.replace
    def replace_then_die(src, dst):
        replace(src, dst)
        if Path(dst).name == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace_then_die
    with files.atomic_dir(Path(sys.argv[1])) as tmp:
        (tmp / "t.txt").write_text("new")
""")


def test_a_kill_between_the_two_renames_loses_nothing(tmp_path):
    root = tmp_path / "gems"
    target = root / "synthetic"
    with files.atomic_dir(target) as tmp:
        (tmp / "t.txt").write_text("old")
    # killed right after the target was moved aside, before the new folder took its place
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_RENAME, str(target), ".synthetic.old"], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    # a reader finds the previous version
    assert (storage.DatasetPaths(root).synthetic / "t.txt").read_text() == "old"
    # and the next writer puts its own in place, leaving nothing else
    with files.atomic_dir(target) as tmp:
        (tmp / "t.txt").write_text("newer")
    assert (target / "t.txt").read_text() == "newer"
    assert sorted(p.name for p in root.iterdir()) == ["synthetic"]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_states_a_kill_can_leave_are_recovered(tmp_path):
    """Each state simulated on disk as a killed writer leaves it, then read and written over."""
    root = tmp_path / "gems"
    paths = storage.DatasetPaths(root)
    stale = f"{dead_pid()}-{files.HOST_TAG}"
    # 1. killed between the renames: no target, the previous version as .old, the new one in a temporary
    (root / ".synthetic.old").mkdir(parents=True)
    (root / ".synthetic.old" / "t.txt").write_text("old")
    (root / f".synthetic.{stale}.abc123.tmp").mkdir()
    (root / f".synthetic.{stale}.abc123.tmp" / "t.txt").write_text("new")
    assert (paths.synthetic / "t.txt").read_text() == "old"
    assert not (root / ".synthetic.old").exists()
    # 2. killed after the renames, before the old version was removed; and a file write killed midway
    (root / ".synthetic.old").mkdir()
    (root / f".stats.json.{stale}.xyz789.tmp").write_text("{")
    with files.atomic_dir(paths.synthetic) as tmp:
        (tmp / "t.txt").write_text("newer")
    assert (paths.synthetic / "t.txt").read_text() == "newer"
    assert sorted(p.name for p in root.iterdir()) == ["synthetic"]
    # 3. the same for a single file
    (root / f".stats.json.{stale}.xyz789.tmp").write_text("{")
    files.write_json({"a": 1}, paths.stats)
    assert sorted(p.name for p in root.iterdir()) == ["stats.json", "synthetic"]


def test_temporaries_of_live_processes_and_other_machines_are_kept(tmp_path):
    target = tmp_path / "synthetic"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    keep = [f".synthetic.{live.pid}-{files.HOST_TAG}.aaa.tmp",  # a live writer on this machine
            f".synthetic.{os.getpid()}-{files.HOST_TAG}.bbb.tmp",  # this process
            f".synthetic.{dead_pid()}-00000000.ccc.tmp",  # another machine sharing the folder
            ".synthetic.ddd.tmp",  # not ours to judge
            "notes.tmp"]
    gone = [f".synthetic.{dead_pid()}-{files.HOST_TAG}.eee.tmp", f".encoded.{dead_pid()}-{files.HOST_TAG}.fff.tmp"]
    for name in keep + gone:
        (tmp_path / name).mkdir()
    try:
        with files.atomic_dir(target) as tmp:
            (tmp / "t.txt").write_text("x")
    finally:
        live.kill()
        live.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + ["synthetic"])


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from synth_assets import files
    target, me, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:  # both start writing together
        time.sleep(0.001)
    i, stop = 0, time.monotonic() + 1.5
    while time.monotonic() < stop:
        i += 1
        with files.atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text(f"{me} {i}")
            (tmp / "b.txt").write_text(f"{me} {i}")
    print(f"{me} {i}")
""")


def test_two_writers_of_one_target(tmp_path):
    """Two processes replacing the same folder at once: both succeed, one whole version stays, nothing else."""
    folder = tmp_path / "gems"
    folder.mkdir()
    target, go = folder / "synthetic", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), name, str(go)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("one", "two")]
    watchdogs = [threading.Timer(60, writer.kill) for writer in writers]  # nothing here waits for ever
    for watchdog in watchdogs:
        watchdog.start()
    try:
        for writer in writers:
            writer.stdout.readline()  # "ready" (or "" if it died: then its return code tells)
        go.touch()
        outputs = [writer.communicate() for writer in writers]
    finally:
        for writer, watchdog in zip(writers, watchdogs):
            watchdog.cancel()
            writer.kill()
            writer.wait()
    assert [writer.returncode for writer in writers] == [0, 0], [err for _, err in outputs]
    lasts = [out.strip() for out, _ in outputs]  # each writer's last version, e.g. "one 212"
    assert all(int(last.split()[1]) > 20 for last in lasts), lasts  # many writes each, in the same 1.5 s
    a, b = (target / "a.txt").read_text(), (target / "b.txt").read_text()
    assert a == b and a in lasts
    assert sorted(p.name for p in folder.iterdir()) == ["synthetic"]


# Forks `n` children (4 at a time) after the imports; each reads the two files every way the project reads
# Parquet, then falls off the end of the script: a real interpreter exit, with pyarrow's thread pools torn
# down. Prints the children's exit codes as {code: count}.
EXIT_STRESS = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from synth_assets import files
    from synth_assets.tables import read_source

    sources, n = [Path(f) for f in sys.argv[2:]], int(sys.argv[1])
    running, codes, child = [], {}, False
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            child = True
            for f in sources:
                read_source(f, dataset="d", table="t")
                files.read_parquet(f, columns=["a"])
                files.read_parquet_rows(f, [0, 5, 9], batch_rows=4_000)
                files.parquet_rows(f)
            break
        running.append(pid)
        if len(running) == 4:
            code = os.waitstatus_to_exitcode(os.waitpid(running.pop(0), 0)[1])
            codes[code] = codes.get(code, 0) + 1
    if not child:
        for pid in running:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            codes[code] = codes.get(code, 0) + 1
        print(json.dumps(codes))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the reading processes")
@pytest.mark.e2e
def test_processes_that_read_parquet_never_abort_at_exit(tmp_path):
    # pandas' read_parquet hands pyarrow a Python file object; a process that did so aborts at exit now and then
    # ("terminate called without an active exception", SIGABRT: apache/arrow#34314): 22 of 400 such children on
    # 2 cores, and 0 of 400 reading by path. Every Dagster step, the CLI and the test process read Parquet and
    # exit: the project reads by path, and its tests read through files.read_parquet.
    r = np.random.default_rng(0)
    sources = [tmp_path / f"f{i}.parquet" for i in range(2)]
    for source in sources:
        files.write_parquet(pd.DataFrame({"a": r.normal(size=20_000), "b": r.choice(["x", "y"], 20_000)}), source)
    # 200 children: where 22 of 400 aborted, 200 would show about 11 (none at all by chance: e^-11)
    out = subprocess.run([sys.executable, "-c", EXIT_STRESS, "200", *map(str, sources)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"0": 200}, out.stderr[-3000:]


def test_no_code_of_the_project_reads_parquet_through_pandas():
    """The rule the test above relies on, for code not written yet: pandas' read_parquet (which hands pyarrow a
    Python file object) is used nowhere; files.read_parquet (bench: bench.tables.read_parquet) reads by path."""
    repo = Path(__file__).resolve().parent.parent
    found = [f"{path.relative_to(repo)}:{n}" for folder in ("synth_assets", "plugins", "tests", "bench")
             for path in (repo / folder).rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if re.search(r"\b(pd|pandas)\.read_parquet\b", line) and "re.search" not in line]
    assert found == []
