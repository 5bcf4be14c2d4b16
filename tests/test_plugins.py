import dagster as dg
import numpy as np
import pandas as pd
import pytest

from synth_assets.definitions import build_definitions
from synth_assets.errors import ConfigError, SynthError
from synth_assets.plugins import get_backend, registered_backends

from synth_assets.testing import write_project
from synth_assets.files import read_json, read_parquet


def test_builtin_backend_is_registered_through_its_entry_point():
    backend, plugin = registered_backends()["tabular_argn"]
    assert plugin == "tabular_argn"  # the entry-point name, as for any third-party plugin
    assert "flat" in backend.capabilities.shapes


def test_unknown_backend_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown backend 'nope'.*tabular_argn"):
        get_backend("nope", dataset="d")


def test_third_party_backend_materializes_a_dataset(tmp_path, toy_plugin, diamonds_small):
    assert "marginals" in registered_backends()
    diamonds_small.to_csv(tmp_path / "gems.csv", index=False)
    root = write_project(tmp_path, """
        datasets:
          toy:
            backend: marginals
            tables:
              gems: {source: gems.csv}
            generate: {sample_size: 500, seed: 1}
        """)
    defs = build_definitions(root)
    result = defs.resolve_job_def("synthesize_toy").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    synthetic = read_parquet(tmp_path / ".synth" / "toy" / "synthetic" / "CURRENT" / "gems.parquet")
    assert len(synthetic) == 500 and list(synthetic.columns) == list(diamonds_small.columns)
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_a_backend_refuses_data_it_cannot_model_before_any_work(tmp_path):
    (tmp_path / "p.csv").write_text("pid,age\n" + "".join(f"{i},{i % 50}\n" for i in range(50)))
    (tmp_path / "d.csv").write_text("did,years\n" + "".join(f"{i},{i % 30}\n" for i in range(20)))
    (tmp_path / "v.csv").write_text("pid,did,cost\n" + "".join(f"{i % 50},{i % 20},{i}\n" for i in range(200)))
    root = write_project(tmp_path, """
        datasets:
          linked:
            backend: tabular_argn
            tables:
              people: {source: p.csv, primary_key: pid}
              doctors: {source: d.csv, primary_key: did}
              visits: {source: v.csv, foreign_keys: [{column: pid, references: people}, {column: did, references: doctors}]}
        """)
    from synth_assets.project import load_project

    with pytest.raises(ConfigError, match="datasets.linked.backend: backend 'tabular_argn' models trees of tables "
                                          "\\(one foreign key per table\\), but table 'visits' has 2"):
        load_project(root)
    assert not (tmp_path / ".synth").exists()


def test_a_dataset_without_a_backend_gets_the_installed_default_or_an_error_listing_them(tmp_path, toy_plugin):
    from synth_assets.plugins import InstalledBackends
    from synth_assets.project import load_project

    installed = {name: backend for name, (backend, _) in registered_backends().items()}
    assert {"tabular_argn", "llm", "marginals"} <= set(installed)
    write_project(tmp_path, "datasets:\n  gems:\n    tables:\n      gems: {source: gems.csv}\n")
    assert load_project(tmp_path).dataset("gems").backend == "tabular_argn"  # the one that claims the default
    # no core name: the only installed backend, whatever its name; none claiming it among several: an error
    toy = installed["marginals"]
    assert InstalledBackends({"marginals": toy}).choose(None) is toy
    undecided = InstalledBackends({"marginals": toy, "llm": installed["llm"]})
    with pytest.raises(ConfigError, match="none of the installed ones claim to be the default") as error:
        undecided.choose(None)
    assert error.value.hint == "set backend: to one of llm, marginals"


def test_each_backend_is_made_once_and_shared(toy_plugin):
    first, again = registered_backends(), registered_backends()
    assert all(first[name][0] is again[name][0] for name in first)
    assert get_backend("tabular_argn") is first["tabular_argn"][0]


def test_a_third_party_text_model_writes_the_texts_of_a_third_party_backend(tmp_path, toy_plugin):
    """Neither plugin knows the other: the core composes the toy backend's columns with the toy text model's."""
    rng = np.random.default_rng(0)
    notes = [f"{rng.choice(['quiet', 'golden', 'broken'])} {rng.choice(['river', 'garden'])} {i}" for i in range(300)]
    notes[5] = "Vondequist river"  # one row's name
    pd.DataFrame({"note": notes, "score": rng.integers(0, 10, 300)}).to_csv(tmp_path / "t.csv", index=False)
    root = write_project(tmp_path, """
        datasets:
          toy:
            backend: marginals
            tables:
              t: {source: t.csv, columns: {note: {encoding: text}}}
            train: {text: {model: phrasebook}}
            generate: {sample_size: 200, seed: 1}
        """)
    result = build_definitions(root).resolve_job_def("synthesize_toy").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    store = tmp_path / ".synth" / "toy"
    out = read_parquet(store / "synthetic" / "CURRENT" / "t.parquet")
    assert read_json(store / "model" / "CURRENT" / "text_model" / "text_columns.json")["model"] == "phrasebook"
    written = " ".join(out.note.dropna())
    assert out.note.notna().all() and {"quiet", "river", "garden"} & set(written.split())
    assert "vondequist" not in written.lower() and not any(w.isdigit() for w in written.split())  # one row's each


def test_an_unknown_text_model_fails_before_any_training_naming_the_column(tmp_path, toy_plugin):
    pd.DataFrame({"note": [f"quiet river {i}" for i in range(100)]}).to_csv(tmp_path / "t.csv", index=False)
    root = write_project(tmp_path, """
        datasets:
          toy:
            backend: marginals
            tables:
              t: {source: t.csv, columns: {note: {encoding: text}}}
            train: {text: {model: nope}}
        """)
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.project import load_project

    pipeline = DatasetPipeline(load_project(root), "toy")
    pipeline.split()
    pipeline.stats()
    pipeline.encode()
    with pytest.raises(ConfigError, match="unknown text model 'nope'.*phrasebook") as caught:
        pipeline.train()
    assert (caught.value.table, caught.value.column) == ("t", "note")
    assert pipeline.paths.releases("model").current() is None  # nothing published
