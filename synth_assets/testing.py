"""The backend contract suite: what every backend must do, as pytest tests any backend runs in a few lines.

    # tests/test_contract.py of your plugin
    from synth_assets.testing import BackendContract

    class TestMyBackend(BackendContract):
        backend = "my_backend"                       # its registered name
        train = {"max_training_time": 0.1}           # a budget of seconds

It runs the core's stages (split → stats → encode → train → generate) on small tables of each shape the
backend claims (training once per shape and training options; each test works on a copy), with booleans,
nulls, nullable integers, categories, cents and dates, and checks what the core promises users whatever the
backend: the source's columns, order and dtypes, the blocking schema check's rules, fresh keys that resolve,
seeds, the conditioning it claims, and clear errors before any work for what it does not support. The last test
materializes the dataset through Dagster with the asset checks on. Needs pytest (the `test` extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synth_assets.backend import FLAT, SEQUENTIAL, Backend
from synth_assets.audit import key_problems, schema_problems
from synth_assets.project import load_project
from synth_assets.errors import ConfigError, SynthError
from synth_assets.options import CONDITIONING, GenerateOptions, TrainOptions
from synth_assets.pipeline import DatasetPipeline
from synth_assets.plugins import get_backend

DATASET = "contract"
# `dg launch` arguments that run every step in one process: each step's own would import torch and load the code
# location again, which on two cores costs more than the parallel steps gain
IN_ONE_PROCESS = ["--config-json", '{"execution": {"config": {"in_process": {}}}}']
# the dg project whose code location reads SYNTH_CONFIG: this checkout's (a plugin's own tests pass theirs)
DG_PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class Launch:
    """What `dg launch` did: its exit code and everything it printed."""

    returncode: int
    log: str

    def check_passed(self, check: str, asset: str) -> bool:
        return f"asset check '{check}' on '{asset}' passed" in self.log.lower()

    def assert_passed(self, *checks: tuple[str, str]) -> "Launch":
        """The run succeeded and each (check, asset) passed; the log's end otherwise."""
        assert self.returncode == 0, self.log[-6000:]
        for check, asset in checks:
            assert self.check_passed(check, asset), f"asset check '{check}' on '{asset}' did not pass"
        return self


def dg_launch(folder: Path, *selection: str, store: Path | str | None = None, env: dict[str, str] | None = None,
              in_one_process: bool = True, project: Path = DG_PROJECT, timeout: float = 900) -> Launch:
    """`dg launch` (with `selection`, e.g. "--job", "synthesize_x") of the project file `folder`/synth.yaml, as a
    user runs it: its own Dagster home, outputs under `store` (default `folder`/store), the checks on."""
    home = folder / ".dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "SYNTH_CONFIG": str(folder / "synth.yaml"), "SYNTH_HOME": str(store or folder / "store"),
           "DAGSTER_HOME": str(home), **(env or {})}
    command = [str(Path(sys.executable).parent / "dg"), "launch", *selection, *(IN_ONE_PROCESS if in_one_process else [])]
    out = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    return Launch(out.returncode, out.stdout + out.stderr)


def materialize(root: Path, selection="*", run_config: dict | None = None):
    """Materialize `selection` (a Dagster asset selection; default: everything) of the project file in `root`, in
    this process with the checks on, as a user selecting assets in the UI; returns Dagster's result."""
    import dagster as dg

    from synth_assets.definitions import build_definitions

    defs = dg.Definitions.merge(build_definitions(root),
                                dg.Definitions(jobs=[dg.define_asset_job("selected", selection=selection)]))
    return defs.resolve_job_def("selected").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=run_config or {})


def contract_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """One flat table as production holds it, with a relation between columns worth learning."""
    r = np.random.default_rng(seed)
    member = r.random(n) < 0.4
    pro = np.where(member, 0.2, 0.03)  # members choose the pro plan far more often
    plans = np.where(r.random(n) < pro, "pro", np.where(r.random(n) < 0.65, "basic", "plus"))
    return pd.DataFrame({
        "member": member,
        "newsletter": pd.array(np.where(r.random(n) < 0.1, None, r.random(n) < 0.5), dtype="boolean"),
        "children": pd.array(np.where(r.random(n) < 0.1, None, r.poisson(1.0, n)), dtype="Int64"),
        "region": pd.Categorical(r.choice(["north", "south", "east", "west"], n)),
        "age": r.integers(18, 80, n).astype("uint8"),
        "visits": r.poisson(np.where(member, 6, 2)).astype(float),
        "spend": np.round(r.gamma(2.0, 40.0, n) + member * 50, 2),
        "score": np.where(r.random(n) < 0.15, np.nan, np.round(r.normal(50, 10, n), 1)),
        "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(r.integers(0, 1000, n), unit="D"),
        "plan": np.where(r.random(n) < 0.05, None, plans),
    })


def contract_tree(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons and their visits (0 to 4 each, ordered by date): a context table and one child table."""
    r = np.random.default_rng(seed)
    persons = pd.DataFrame({
        "person_id": np.arange(1000, 1000 + n),
        "female": r.random(n) < 0.5,
        "region": r.choice(["north", "south", "east"], n),
        "born": r.integers(1940, 2005, n),
    })
    family = r.integers(0, 5, n)
    m = int(family.sum())
    visits = pd.DataFrame({
        "visit_id": np.arange(m),
        "person_id": np.repeat(persons.person_id.to_numpy(), family),
        "day": pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(r.integers(0, 365, m)), unit="D"),
        "cost": np.round(r.gamma(2.0, 30.0, m), 2),
        "emergency": r.random(m) < 0.1,
    })
    return persons, visits


def write_project(folder: Path, body: str) -> Path:
    """A project folder with synth.yaml holding `body`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synth.yaml").write_text(textwrap.dedent(body))
    return folder


def survey_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A table as production holds it: booleans (one nullable), Int64 with nulls, a category, unsigned
    integers, integers stored as floats, rounded amounts, and a few-valued float."""
    r = np.random.default_rng(seed)
    educ = r.choice([9.0, 10.5, 12.0, 13.0, 15.0, 18.0], n)
    return pd.DataFrame({
        "female": r.random(n) < 0.5,
        "married": pd.array(np.where(r.random(n) < 0.1, None, r.random(n) < 0.6), dtype="boolean"),
        "kids": pd.array(np.where(r.random(n) < 0.05, None, r.poisson(1.2, n)), dtype="Int64"),
        "region": pd.Categorical(r.choice(["north", "south", "east", "west"], n)),
        "age": r.integers(18, 80, n).astype("uint8"),
        "educ": educ,
        "visits": r.poisson(educ / 3).astype(float),
        "income": np.round(r.gamma(2.0, 1500.0, n) + educ * 100, 2),
    })


class BackendContract:
    """What every backend must do. Subclass it in a test module and set `backend` (and a small `train`)."""

    backend: str = ""
    train: dict = {"max_training_time": 0.1, "max_epochs": 3}  # minutes: a budget of seconds
    sample_size: int = 300
    # extra train options a conditioning option needs, e.g. {"seed_data": {"cols_ctx": ["region", "score"]}} for a
    # backend that learns to complete given columns only when told which (the test seeds region and score)
    conditioning_train: dict[str, dict] = {}

    # building blocks ------------------------------------------------------------------------------------
    @property
    def implementation(self) -> Backend:
        return get_backend(self.backend)

    def project(self, folder: Path, tables: dict[str, dict], generate: dict | None = None,
                monkeypatch: pytest.MonkeyPatch | None = None, train: dict | None = None) -> Path:
        """A project folder: each table {"frame": df, "primary_key": ..., "foreign_keys": [...]} as Parquet,
        and a synth.yaml declaring them with this backend, `train` (or the suite's) and `generate`."""
        folder.mkdir(parents=True, exist_ok=True)
        declared = {}
        for name, table in tables.items():
            table["frame"].to_parquet(folder / f"{name}.parquet")
            declared[name] = {"source": f"{name}.parquet", "primary_key": table.get("primary_key"),
                              "foreign_keys": table.get("foreign_keys", [])}
        body = {"datasets": {DATASET: {"backend": self.backend, "tables": declared, "train": dict(self.train if train is None else train),
                                       "generate": {"sample_size": self.sample_size, "seed": 1, **(generate or {})}}}}
        (folder / "synth.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
        if monkeypatch is not None:
            monkeypatch.delenv("SYNTH_CONFIG", raising=False)
            monkeypatch.delenv("SYNTH_HOME", raising=False)
        return folder

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._trained: dict[tuple, Path] = {}  # (tables, train options) -> a trained project, per backend

    @pytest.fixture(autouse=True)
    def _folders(self, tmp_path_factory):
        self._factory = tmp_path_factory

    def trained(self, folder: Path, tables: dict[str, dict], monkeypatch, generate: dict | None = None,
                train: dict | None = None) -> DatasetPipeline:
        """A pipeline in `folder` whose model is trained: the suite trains once per backend, tables and training
        options, and each test gets a copy of that project (and its own `generate`)."""
        train = dict(self.train if train is None else train)
        key = (tuple(tables), json.dumps(train, sort_keys=True, default=str))
        if key not in self._trained:
            once = self._factory.mktemp(f"{self.backend}-trained")
            pipeline = DatasetPipeline(load_project(self.project(once, tables, None, monkeypatch, train)), DATASET)
            pipeline.split()
            pipeline.stats()
            pipeline.encode()
            pipeline.train(device="cpu")
            self._trained[key] = once
        shutil.copytree(self._trained[key], folder, symlinks=True, dirs_exist_ok=True)
        return DatasetPipeline(load_project(self.project(folder, tables, generate, monkeypatch, train)), DATASET)

    def flat(self) -> dict[str, dict]:
        return {"customers": {"frame": contract_table()}}

    def tree(self) -> dict[str, dict]:
        persons, visits = contract_tree()
        return {"persons": {"frame": persons, "primary_key": "person_id"},
                "visits": {"frame": visits, "primary_key": "visit_id",
                           "foreign_keys": [{"column": "person_id", "references": "persons"}]}}

    def shapes(self) -> list[str]:
        return [shape for shape in (FLAT, SEQUENTIAL) if shape in self.implementation.capabilities.shapes]

    def tables_of(self, shape: str) -> dict[str, dict]:
        return self.flat() if shape == FLAT else self.tree()

    def assert_like_source(self, pipeline: DatasetPipeline, tables: dict[str, pd.DataFrame]) -> None:
        stats, given = pipeline.load_stats(), pipeline.seeded_columns()
        for name, df in tables.items():
            source = pipeline.load_split().train[name]
            assert list(df.columns) == list(source.columns), name
            assert df.dtypes.astype(str).to_dict() == source.dtypes.astype(str).to_dict(), name
            problems = schema_problems(df, stats.tables[name], given.get(name, frozenset()))
            assert problems == [], (name, problems)
        assert key_problems(tables, stats) == {name: [] for name in tables}

    # the contract ---------------------------------------------------------------------------------------
    def test_options_extend_the_shared_bases(self):
        backend = self.implementation
        assert issubclass(backend.TrainOptions, TrainOptions) and issubclass(backend.GenerateOptions, GenerateOptions)
        backend.TrainOptions(**self.train)  # the suite's own budget is valid
        backend.GenerateOptions()  # every option has a default

    def test_an_unknown_or_bad_option_is_refused_naming_the_key(self, tmp_path, monkeypatch):
        tables = self.tables_of(self.shapes()[0])
        root = self.project(tmp_path, tables, monkeypatch=monkeypatch, train={**self.train, "no_such_option": 1})
        with pytest.raises(ConfigError, match=f"datasets.{DATASET}.train.no_such_option: unknown key"):
            load_project(root)
        root = self.project(tmp_path, tables, train={**self.train, "max_epochs": 0})
        with pytest.raises(ConfigError, match=f"datasets.{DATASET}.train.max_epochs"):
            load_project(root)

    @pytest.mark.parametrize("shape", [FLAT, SEQUENTIAL])
    def test_generates_the_source_schema_with_fresh_keys(self, shape, tmp_path, monkeypatch):
        if shape not in self.implementation.capabilities.shapes:
            pytest.skip(f"backend '{self.backend}' does not model {shape} data")
        tables = self.tables_of(shape)
        pipeline = self.trained(tmp_path, tables, monkeypatch)
        out = pipeline.generate(device="cpu").tables
        self.assert_like_source(pipeline, out)
        root = next(iter(tables))
        assert len(out[root]) == self.sample_size
        if shape != FLAT:
            persons, visits = out["persons"], out["visits"]
            assert persons.person_id.tolist() == list(range(1, len(persons) + 1))  # fresh keys, not the source's
            assert visits.person_id.isin(persons.person_id).all() and len(visits) > 0
            assert visits.visit_id.is_unique

    def test_the_same_seed_gives_the_same_rows(self, tmp_path, monkeypatch):
        pipeline = self.trained(tmp_path, self.tables_of(self.shapes()[0]), monkeypatch)
        options = pipeline.spec.generate
        first = pipeline.generate_frames(options.model_copy(update={"seed": 5}), device="cpu")
        again = pipeline.generate_frames(options.model_copy(update={"seed": 5}), device="cpu")
        other = pipeline.generate_frames(options.model_copy(update={"seed": 6}), device="cpu")
        for name in first:
            pd.testing.assert_frame_equal(first[name], again[name])
        assert any(not first[name].equals(other[name]) for name in first)

    @pytest.mark.parametrize("option", CONDITIONING)
    def test_conditioning_is_honoured_or_refused_before_any_work(self, option, tmp_path, monkeypatch):
        backend = self.implementation
        source = contract_table()
        asked = {"seed_data": "seed.parquet", "rebalancing": {"column": "plan", "probabilities": {"pro": 0.5}},
                 "imputation": {"columns": ["score"]},
                 "fairness": {"target_column": "plan", "sensitive_columns": ["member"]}}[option]
        if not getattr(backend.capabilities, option):
            root = self.project(tmp_path, self.flat(), {option: asked}, monkeypatch)
            with pytest.raises(ConfigError, match=f"generate.{option}: backend '{self.backend}' does not support"):
                load_project(root)
            return
        if FLAT not in backend.capabilities.shapes:
            pytest.skip("the conditioning checks use a flat table")
        seed = source[["region", "score"]].head(200).copy()
        seed.to_parquet(tmp_path / "seed.parquet")
        train = {**self.train, **self.conditioning_train.get(option, {})}
        pipeline = self.trained(tmp_path, self.flat(), monkeypatch, {option: asked}, train)
        out = pipeline.generate(device="cpu").tables["customers"]
        self.assert_like_source(pipeline, {"customers": out})
        if option == "seed_data":
            assert len(out) == len(seed) and out.region.astype(str).tolist() == seed.region.astype(str).tolist()
        if option == "imputation":
            assert out.score.notna().all()
        if option == "rebalancing":
            assert 0.35 < (out.plan == "pro").mean() < 0.65  # asked 0.5; the source holds 0.1
        if option == "fairness":  # the source's pro share differs by 0.17 between members and the rest
            shares = pd.crosstab(out.member, out.plan, normalize="index")
            assert (shares.max() - shares.min()).max() < 0.1

    def test_an_unsupported_device_is_refused(self):
        backend = self.implementation
        for device in ("cpu", "cuda"):
            if device not in backend.capabilities.devices:
                with pytest.raises(SynthError, match=f"backend '{self.backend}' runs on"):
                    backend.check_device(device)

    def test_cuda_asked_for_where_torch_sees_no_gpu_is_a_clear_error(self, tmp_path, monkeypatch):
        """The one device rule (plugin_api.resolve_device): never a silent fall back to the CPU."""
        if "cuda" not in self.implementation.capabilities.devices:
            pytest.skip(f"backend '{self.backend}' does not run on CUDA (test_an_unsupported_device_is_refused)")
        import torch

        if torch.cuda.is_available():
            pytest.skip("torch sees a GPU here")
        root = self.project(tmp_path, self.tables_of(self.shapes()[0]), monkeypatch=monkeypatch)
        pipeline = DatasetPipeline(load_project(root), DATASET)
        pipeline.split()
        pipeline.stats()
        pipeline.encode()
        with pytest.raises(SynthError, match="the compute device is cuda, but torch sees no GPU"):
            pipeline.train(device="cuda")
        assert pipeline.paths.releases("model").current_version() is None

    def test_materializes_through_dagster_with_the_checks_on(self, tmp_path, monkeypatch):
        import dagster as dg

        from synth_assets.definitions import build_definitions

        root = self.project(tmp_path, self.tables_of(self.shapes()[0]), monkeypatch=monkeypatch)
        defs = build_definitions(root)
        result = defs.resolve_job_def(f"synthesize_{DATASET}").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"checkpoint_is_sound": True, "schema_matches_source": True, "privacy_gate": True}
