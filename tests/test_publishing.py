"""Write-audit-publish: every run writes a new version, the blocking checks audit it before it is published,
a failed audit leaves consumers on the last good release, and a user can list versions and roll back."""

import math
import os

import dagster as dg
import pandas as pd
import pytest

from synth_assets.backend import TrainResult
from synth_assets.audit import audit_model
from synth_assets.cli import main
from synth_assets.releases import CURRENT, Releases, new_version
from synth_assets.files import read_parquet
from synth_assets.storage import DatasetPaths
from synth_assets.testing import materialize


def regenerate(root, seed):
    return materialize(root, dg.AssetSelection.assets(["gems", "synthetic"], ["gems", "quality"]),
                       {"ops": {"gems__synthetic": {"config": {"seed": seed, "sample_size": 300}}}})


def metadata(result, node):
    return {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_a_failed_audit_leaves_consumers_on_the_last_good_release(materialized_project, capsys, monkeypatch):
    # published once: its model and synthetic tables are the good release
    synthetic = materialized_project / ".synth" / "gems" / "synthetic"
    good = os.readlink(synthetic / CURRENT)
    good_bytes = (synthetic / CURRENT / "gems.parquet").read_bytes()
    assert (materialized_project / ".synth" / "gems" / "model" / CURRENT / "weights.safetensors").is_file()

    # the privacy gate is tightened past what any generation meets
    config = materialized_project / "synth.yaml"
    config.write_text(config.read_text() + "    quality: {max_dcr_share: 0.01}\n")
    result = regenerate(materialized_project, seed=11)
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"schema_matches_source": True, "privacy_gate": False}
    # the candidate was written and audited, but not published: consumers still read the good release
    candidate = metadata(result, "gems__synthetic")
    assert candidate["published"] is False and candidate["published_version"] == good
    assert candidate["dagster/uri"] == (synthetic / CURRENT).as_uri()  # where consumers read
    assert os.readlink(synthetic / CURRENT) == good
    assert (synthetic / CURRENT / "gems.parquet").read_bytes() == good_bytes
    assert len(read_parquet(synthetic / candidate["version"] / "gems.parquet")) == 300
    # the report was not redone for a release that did not happen
    assert not result.asset_materializations_for_node("gems__quality")

    monkeypatch.chdir(materialized_project)  # the CLI reads ./synth.yaml and stores in ./.synth
    assert main(["versions", "gems"]) == 0
    listing = capsys.readouterr().out
    assert f"* {good}  published" in listing and f"  {candidate['version']}  never published" in listing


def test_versions_are_pruned_and_a_user_can_roll_back(materialized_project, capsys, monkeypatch):
    config = materialized_project / "synth.yaml"
    config.write_text(config.read_text() + "    publish: {keep_versions: 2}\n")
    releases = Releases(materialized_project / ".synth" / "gems" / "synthetic")
    first = releases.current_version()
    for seed in (21, 22):
        result = regenerate(materialized_project, seed)
        assert result.success and metadata(result, "gems__synthetic")["published"] is True
    second, third = releases.versions()  # the oldest went: two kept
    assert first not in releases.versions() and releases.current_version() == third
    assert metadata(result, "gems__quality")["synthetic_version"] == third

    monkeypatch.chdir(materialized_project)  # the CLI reads ./synth.yaml and stores in ./.synth
    assert main(["show", "gems"]) == 0  # where consumers read, and which version that is
    assert f"gems/synthetic/CURRENT/gems.parquet (version {third})" in capsys.readouterr().out
    assert main(["rollback", "gems", "synthetic"]) == 0
    assert f"published {second} (was {third})" in capsys.readouterr().out
    assert releases.current_version() == second
    assert len(read_parquet(releases.root / CURRENT / "gems.parquet")) == 300
    # a rollback is a publication like any other: rolling back again returns to the newer one
    assert main(["rollback", "gems", "synthetic", "--to", third]) == 0
    assert releases.current_version() == third
    assert [h["version"] for h in releases.history()] == [first, second, third, second, third]
    assert [h["reason"].split()[0] for h in releases.history()][-2:] == ["rollback", "rollback"]
    # a version that does not exist is refused, naming the ones that do
    assert main(["rollback", "gems", "synthetic", "--to", "20200101T000000Z-nothere"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_model_audit_refuses_a_diverged_or_empty_checkpoint(tmp_path):
    folder = tmp_path / new_version()
    folder.mkdir()
    diverged = TrainResult(epochs=3, best_epoch=1, best_validation_loss=math.nan, seconds=1.0,
                           stopped_because="converged", device="cpu", parameters=10)
    [result] = audit_model(folder, diverged)
    assert not result.passed and "diverged" in result.description and "empty" in result.description
    (folder / "weights.safetensors").write_bytes(b"x")
    fine = TrainResult(epochs=3, best_epoch=2, best_validation_loss=1.5, seconds=1.0, stopped_because="converged",
                       device="cpu", parameters=10)
    assert audit_model(folder, fine)[0].passed


def test_a_store_written_before_versions_reads_as_its_one_release(tmp_path):
    legacy = tmp_path / "gems" / "synthetic"
    legacy.mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(legacy / "gems.parquet")
    paths = DatasetPaths(tmp_path / "gems", "gems")
    assert paths.synthetic == legacy and len(read_parquet(paths.synthetic_table("gems"))) == 2
    # the first versioned run publishes beside it, and from then on CURRENT decides
    releases = paths.releases("synthetic")
    version = new_version()
    with releases.write(version) as tmp:
        pd.DataFrame({"a": [1, 2, 3]}).to_parquet(tmp / "gems.parquet")
    releases.publish(version, keep=3)
    assert paths.synthetic == legacy / version and len(read_parquet(paths.synthetic_table("gems"))) == 3


def test_where_symlinks_are_missing_the_pointer_is_a_file_naming_the_version(tmp_path, monkeypatch):
    releases = Releases(tmp_path / "synthetic")
    version = new_version()
    with releases.write(version) as tmp:
        (tmp / "t.txt").write_text("v")

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    releases.publish(version, keep=3)
    pointer = releases.root / CURRENT
    assert pointer.is_file() and not pointer.is_symlink() and pointer.read_text() == version
    assert releases.current() == releases.root / version


@pytest.mark.slow
def test_the_command_line_run_audits_before_publishing_too(small_project, capsys, monkeypatch):
    config = small_project / "synth.yaml"
    config.write_text(config.read_text() + "    quality: {max_dcr_share: 0.01}\n")
    monkeypatch.chdir(small_project)
    assert main(["run", "gems"]) == 2
    err = capsys.readouterr().err
    assert "synthetic version" in err and "failed its audit (privacy_gate" in err
    assert "consumers stay on nothing (no release yet)" in err
    home = small_project / ".synth" / "gems"
    assert Releases(home / "model").current_version() is not None  # the model passed its own audit
    synthetic = Releases(home / "synthetic")
    assert synthetic.current_version() is None and len(synthetic.versions()) == 1
