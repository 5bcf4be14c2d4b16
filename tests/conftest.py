import textwrap
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo" / "diamonds.csv.gz"


@pytest.fixture(scope="session")
def diamonds() -> pd.DataFrame:
    return pd.read_csv(DEMO)


@pytest.fixture(scope="session")
def diamonds_small(diamonds) -> pd.DataFrame:
    return diamonds.sample(3000, random_state=0).reset_index(drop=True)


def write_project(folder: Path, body: str) -> Path:
    """A project folder with synth.yaml holding `body`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synth.yaml").write_text(textwrap.dedent(body))
    return folder


@pytest.fixture
def small_project(tmp_path, diamonds_small, monkeypatch):
    """A project with one small flat dataset and a training budget of seconds."""
    diamonds_small.to_csv(tmp_path / "gems.csv", index=False)
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)
    return write_project(tmp_path, """
        datasets:
          gems:
            backend: tabular_argn
            tables:
              gems: {source: gems.csv}
            train: {max_training_time: 5, max_epochs: 8}
            generate: {sample_size: 1000, seed: 7}
        """)


@pytest.fixture
def run_one_table(tmp_path, monkeypatch):
    """Put `df` in a one-table project ('mixed', table 't') and run every stage; returns the pipeline."""
    from synth_assets.config import load_project
    from synth_assets.pipeline import DatasetPipeline

    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    monkeypatch.delenv("SYNTH_HOME", raising=False)

    def run(df: pd.DataFrame, *, max_epochs: int, sample_size: int):
        df.to_parquet(tmp_path / "t.parquet")
        (tmp_path / "synth.yaml").write_text(
            "datasets:\n  mixed:\n    tables:\n      t: {source: t.parquet}\n"
            f"    train: {{max_training_time: 5, max_epochs: {max_epochs}}}\n"
            f"    generate: {{sample_size: {sample_size}, seed: 1}}\n")
        pipeline = DatasetPipeline(load_project(tmp_path), "mixed")
        pipeline.run_all()
        return pipeline

    return run


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """Install tests/toy_plugin as a package announcing itself through the entry-point group, the way
    `pip install` would, without touching the environment."""
    from synth_assets.plugins import reload_plugins

    site = tmp_path / "site"
    info = site / "synth_toy-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: synth-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[synth_assets]\nmarginals = synth_toy.plugin\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "toy_plugin"))
    monkeypatch.syspath_prepend(str(site))
    reload_plugins()
    yield
    monkeypatch.undo()
    reload_plugins()


def survey_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A table as production holds it: booleans (one nullable), Int64 with nulls, a category, unsigned
    integers, integers stored as floats, rounded amounts, and a few-valued float."""
    import numpy as np

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
