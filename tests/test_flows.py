"""Flows (synth_assets.flows): blocks chained over a table, declared in synth.yaml, checkpointed after each batch,
resumed after a kill, and materialized through `dg launch` with their blocking checks."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from synth_assets.errors import ConfigError, SynthError
from synth_assets.files import read_json, read_parquet
from synth_assets.flow_runner import FlowRunner
from synth_assets.flows import audit_flow, flow_input, flow_paths, publish_flow, run_flow
from synth_assets.project import load_project
from synth_assets.testing import DG_PROJECT, IN_ONE_PROCESS, dg_launch, write_project


def orders(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Orders as a shop's export holds them: a nullable integer, a boolean with nulls, amounts in cents,
    categories, dates, repeated rows, and numbers written as text."""
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer": r.integers(0, 400, n),
        "items": pd.array(np.where(r.random(n) < 0.1, None, r.integers(1, 9, n)), dtype="Int64"),
        "amount": np.round(r.gamma(2.0, 30.0, n), 2),
        "paid": pd.array(np.where(r.random(n) < 0.05, None, r.random(n) < 0.8), dtype="boolean"),
        "channel": r.choice(["web", "shop", "phone"], n, p=[0.6, 0.3, 0.1]),
        "day": pd.to_datetime("2026-01-01") + pd.to_timedelta(r.integers(0, 300, n), unit="D"),
        "rating": np.where(r.random(n) < 0.1, "n/a", r.integers(1, 6, n).astype(str)),
    })
    return pd.concat([df, df.iloc[:500]], ignore_index=True)  # exports repeat rows


def project_with(tmp_path, flows: str, n: int = 6000):
    tmp_path.mkdir(parents=True, exist_ok=True)
    orders(n).to_parquet(tmp_path / "orders.parquet")
    root = write_project(tmp_path, "flows:\n" + flows)
    return load_project(root, config_path=root / "synth.yaml")


def run(project, name, version="20261206T000000Z-aaaaaaaa"):
    result = run_flow(project, name, version, log=lambda line: None)
    return result, read_parquet(result.output)


def test_the_built_in_blocks_do_what_they_say_across_batches(tmp_path):
    project = project_with(tmp_path, """
      clean:
        input: {source: orders.parquet}
        batch_rows: 700
        blocks:
          - block_type: filter
            block_config: {column: rating, operator: ge, value: 4, convert_dtype: int}
          - block_type: filter
            block_config: {column: paid, operator: eq, value: true}
          - block_type: derive
            block_config: {column: per_item, expression: "amount / items"}
            drop_duplicates: [customer, day]
          - block_type: rename
            block_config: {columns: {channel: source}}
          - block_type: select
            block_config: {columns: [customer, day, source, amount, per_item, items]}
    """)
    result, out = run(project, "clean")
    src = orders()
    expected = src[pd.to_numeric(src.rating, errors="coerce").ge(4) & src.paid.fillna(False).astype(bool)]
    expected = expected.drop_duplicates(["customer", "day"])
    assert len(out) == len(expected) == result.rows_out
    assert list(out.columns) == ["customer", "day", "source", "amount", "per_item", "items"]
    assert out.duplicated(["customer", "day"]).sum() == 0  # across batches, not only within one
    assert str(out["items"].dtype) == "Int64" and str(out["day"].dtype).startswith("datetime64")
    np.testing.assert_allclose(out.per_item.astype(float), (out.amount / out["items"]).astype(float))
    figures = result.blocks
    assert figures["1_filter"]["unconvertible"] == (src.rating == "n/a").sum()  # 'n/a' is no int: counted, dropped
    assert figures["3_derive.drop_duplicates"]["rows_in"] - figures["3_derive.drop_duplicates"]["rows_out"] > 0
    assert result.batches == -(-len(src) // 700)


def test_samples_keep_their_size_and_shares_and_repeat_with_the_seed(tmp_path):
    project = project_with(tmp_path, """
      by_channel:
        input: {source: orders.parquet}
        batch_rows: 500
        seed: 3
        blocks:
          - block_type: sample
            block_config: {rows: 400, by: channel, shares: {web: 0.5, shop: 0.25, phone: 0.25}}
      tenth:
        input: {source: orders.parquet}
        batch_rows: 500
        blocks:
          - block_type: sample
            block_config: {fraction: 0.1}
    """)
    _, by_channel = run(project, "by_channel")
    assert by_channel.channel.value_counts().to_dict() == {"web": 200, "shop": 100, "phone": 100}
    _, again = run(project, "by_channel", "20261206T000001Z-bbbbbbbb")
    pd.testing.assert_frame_equal(by_channel, again)
    # a reservoir sample is uniform over the whole input, not the first rows: late rows are as likely as early ones
    positions = orders().reset_index().merge(by_channel.drop_duplicates(), how="inner")["index"]
    assert positions.median() > len(orders()) / 4
    _, tenth = run(project, "tenth")
    assert 0.08 * len(orders()) < len(tenth) < 0.12 * len(orders())


def test_a_resumed_flow_writes_what_an_uninterrupted_one_does(tmp_path):
    flows = """
      mixed:
        input: {source: orders.parquet}
        batch_rows: 400
        seed: 11
        blocks:
          - block_type: sample
            block_config: {fraction: 0.8}
          - block_type: drop_duplicates
            block_config: {columns: [customer, channel]}
          - block_type: sample
            block_config: {rows: 300}
          - block_type: derive
            block_config: {column: big, expression: "amount > 60"}
    """
    whole = project_with(tmp_path / "whole", flows)
    _, expected = run(whole, "mixed")
    project = project_with(tmp_path / "killed", flows)
    spec = project.flow("mixed")
    found = flow_input(project, "mixed", spec)

    def runner():
        return FlowRunner("mixed", spec, input_path=found.path, input_identity=found.identity,
                          paths=flow_paths(project, "mixed"), log=lambda line: None)

    assert runner().run("20261206T000000Z-aaaaaaaa", stop_after_batches=6) is None
    checkpoint = read_json(flow_paths(project, "mixed").work / "checkpoint.json")
    assert checkpoint["batches"] == 6 and len(checkpoint["parts"]) == 6
    result = runner().run("20261206T000000Z-bbbbbbbb")
    assert result.resumed_batches == 6
    pd.testing.assert_frame_equal(read_parquet(result.output), expected)
    assert not flow_paths(project, "mixed").work.exists()  # the checkpoint goes once the output is written


def test_a_changed_flow_does_not_resume_an_old_checkpoint(tmp_path):
    body = """
      f:
        input: {source: orders.parquet}
        batch_rows: 1000
        blocks:
          - block_type: filter
            block_config: {column: amount, operator: gt, value: VALUE}
    """
    project = project_with(tmp_path, body.replace("VALUE", "10"))
    spec = project.flow("f")
    found = flow_input(project, "f", spec)
    FlowRunner("f", spec, input_path=found.path, input_identity=found.identity, paths=flow_paths(project, "f"),
               log=lambda line: None).run("20261206T000000Z-aaaaaaaa", stop_after_batches=3)
    changed = project_with(tmp_path, body.replace("VALUE", "100"))
    lines = []
    result = run_flow(changed, "f", "20261206T000000Z-bbbbbbbb", log=lines.append)
    assert result.resumed_batches == 0 and any("starting over" in line for line in lines)
    assert (read_parquet(result.output).amount > 100).all()


@pytest.mark.parametrize("flow, message", [
    ("{input: {source: orders.parquet}, blocks: [{block_type: nope}]}",
     "flows.f.blocks.0.block_type: unknown block type 'nope' \\(installed: .*filter"),
    ("{input: {source: orders.parquet}, blocks: [{block_type: filter, block_config: {column: a, value: 1, colour: x}}]}",
     "flows.f.blocks.0.block_config.colour: unknown key"),
    ("{input: {source: orders.parquet}, blocks: [{block_type: filter, block_config: {column: a, operator: about, value: 1}}]}",
     "flows.f.blocks.0.block_config.operator: 'about' is not an operator"),
    ("{input: {dataset: shop}, blocks: [{block_type: select, block_config: {columns: [a]}}]}",
     "flows.f.input.dataset: no dataset 'shop'"),
    ("{input: {flow: f}, blocks: [{block_type: select, block_config: {columns: [a]}}]}",
     "flows.f.input.flow: the flows read each other in a circle \\(f -> f\\)"),
    ("{input: {source: orders.parquet}, blocks: [{block_type: sample, block_config: {rows: 5, fraction: 0.5}}]}",
     "flows.f.blocks.0.block_config: give either rows or fraction"),
    ("{input: {source: orders.parquet}, bloks: []}", "flows.f.bloks: unknown key"),
])
def test_a_flow_with_a_mistake_fails_at_load_naming_the_key(tmp_path, flow, message):
    with pytest.raises(ConfigError, match=message):
        project_with(tmp_path, f"  f: {flow}\n")


def test_a_block_that_names_a_missing_column_fails_before_any_row_naming_block_and_column(tmp_path):
    project = project_with(tmp_path, """
      f:
        input: {source: orders.parquet}
        blocks:
          - block_type: rename
            block_config: {columns: {channel: source}}
          - block_type: filter
            block_config: {column: channel, value: web}
    """)
    with pytest.raises(SynthError, match="flow 'f', block '2_filter' \\(filter\\): column 'channel' is not among its "
                                         "input's columns"):
        run_flow(project, "f", "20261206T000000Z-aaaaaaaa")
    assert not flow_paths(project, "f").releases().versions()  # nothing written


def test_the_row_check_keeps_the_last_good_output_published(tmp_path):
    project = project_with(tmp_path, """
      f:
        input: {source: orders.parquet}
        min_rows: 10
        blocks:
          - block_type: filter
            block_config: {column: amount, operator: gt, value: 100}
    """)
    good, _ = run(project, "f")
    assert publish_flow(project, "f", good.version, audit_flow(project.flow("f"), good))
    (tmp_path / "synth.yaml").write_text((tmp_path / "synth.yaml").read_text().replace("value: 100", "value: 100000"))
    project = load_project(tmp_path, config_path=tmp_path / "synth.yaml")
    empty, _ = run(project, "f", "20261206T000001Z-bbbbbbbb")
    checks = audit_flow(project.flow("f"), empty)
    assert [c.passed for c in checks] == [False, True] and "0 rows, at least 10 wanted" in checks[0].description
    assert not publish_flow(project, "f", empty.version, checks)
    assert flow_paths(project, "f").releases().current_version() == good.version


@pytest.mark.e2e
def test_a_flow_killed_midway_resumes_and_a_datasets_flows_materialize_through_dg_launch(tmp_path, toy_plugin):
    """A flow over a file is killed midway (SIGKILL to dg launch's process group); the next `dg launch` of every
    asset resumes it from its checkpoint, its output the same as an uninterrupted run's, and materializes a dataset
    with two chained flows after it (one with the third-party block), every check on."""
    flows = """
      slow:
        input: {source: orders.parquet}
        batch_rows: 250
        seed: 5
        blocks:
          - block_type: sample
            block_config: {fraction: 0.9}
          - block_type: throttle
            block_config: {seconds: 0.15}
            drop_duplicates: [customer, day]
          - block_type: sample
            block_config: {rows: 500}
    """
    expected = run(project_with(tmp_path / "uninterrupted", flows), "slow")[1]
    folder = tmp_path / "killed"
    project = project_with(folder, flows)
    orders(2000, seed=1).to_parquet(folder / "shop.parquet")
    (folder / "synth.yaml").write_text("""
datasets:
  shop:
    backend: marginals
    tables:
      orders: {source: shop.parquet}
    generate: {sample_size: 3000, seed: 1}
flows:
  web_orders:
    input: {dataset: shop}
    blocks:
      - block_type: filter
        block_config: {column: channel, value: web}
      - block_type: throttle
        block_config: {seconds: 0}
        drop_columns: [rating]
  top_web_orders:
    input: {flow: web_orders}
    blocks:
      - block_type: sample
        block_config: {rows: 100}
""" + textwrap.indent(textwrap.dedent(flows), "  "))
    project = load_project(folder, config_path=folder / "synth.yaml")
    checkpoint = flow_paths(project, "slow").work / "checkpoint.json"
    home = folder / ".dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, **toy_plugin, "SYNTH_CONFIG": str(folder / "synth.yaml"), "SYNTH_HOME": str(project.home),
           "DAGSTER_HOME": str(home)}
    dg = [str(os.path.join(os.path.dirname(sys.executable), "dg")), "launch", "--assets", "flows/slow", *IN_ONE_PROCESS]
    process = subprocess.Popen(dg, cwd=DG_PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not (checkpoint.is_file() and read_json(checkpoint)["batches"] >= 4):
            assert process.poll() is None and time.monotonic() < deadline, "the flow never checkpointed"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # as an out-of-memory kill or a lost node would
        process.wait()
    done = read_json(checkpoint)["batches"]
    assert 4 <= done < 26 and not flow_paths(project, "slow").releases().versions()

    launch = dg_launch(folder, "--assets", "*", store=project.home, env=toy_plugin)
    launch.assert_passed(("flow_rows", "flows/slow"), ("schema_matches_source", "shop/synthetic"),
                         ("flow_rows", "flows/web_orders"), ("flow_valid_outputs", "flows/web_orders"),
                         ("flow_rows", "flows/top_web_orders"))
    assert f"resuming after batch {done}" in launch.log  # at most the batch in progress was lost
    pd.testing.assert_frame_equal(read_parquet(flow_paths(project, "slow").output_file()), expected)
    web = read_parquet(flow_paths(project, "web_orders").output_file())
    synthetic = read_parquet(project.home / "shop" / "synthetic" / "CURRENT" / "orders.parquet")
    assert (web.channel == "web").all() and len(web) == (synthetic.channel == "web").sum()
    assert "rating" not in web.columns and "batch" in web.columns
    assert len(read_parquet(flow_paths(project, "top_web_orders").output_file())) == 100

def test_an_input_without_rows_gives_an_empty_output_with_the_columns_and_types(tmp_path):
    project = project_with(tmp_path, """
      f:
        input: {source: empty.parquet}
        min_rows: 0
        blocks:
          - block_type: derive
            block_config: {column: per_item, expression: "amount / items", dtype: float64}
    """)
    orders(10).iloc[:0].to_parquet(tmp_path / "empty.parquet")
    result, out = run(project, "f")
    assert result.rows_out == 0 and out.empty
    assert list(out.columns) == [*orders(1).columns, "per_item"] and str(out["items"].dtype) == "Int64"
    assert all(check.passed for check in audit_flow(project.flow("f"), result))


def test_a_second_run_of_a_flow_at_once_is_refused(tmp_path):
    import fcntl

    project = project_with(tmp_path, """
      f:
        input: {source: orders.parquet}
        blocks: [{block_type: select, block_config: {columns: [amount]}}]
    """)
    folder = flow_paths(project, "f").root
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as held:  # another process's run, as the lock sees it
        fcntl.flock(held, fcntl.LOCK_EX)
        script = (f"from synth_assets.project import load_project; from synth_assets.flows import run_flow; "
                  f"run_flow(load_project({str(tmp_path)!r}, {str(tmp_path / 'synth.yaml')!r}), 'f', '20261206T000000Z-aaaa')")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode != 0 and "flow 'f' is running already" in out.stderr


def test_instructlabs_spelling_of_a_flow_reads_the_same(tmp_path):
    """block_name inside block_config and `operation: operator.ge`, as InstructLab's flow files write them."""
    project = project_with(tmp_path, """
      f:
        input: {source: orders.parquet}
        blocks:
          - block_type: filter
            block_config: {block_name: big_orders, column: amount, operator: operator.ge, value: 100}
            drop_duplicates: [customer]
            drop_columns: [rating]
    """)
    result, out = run(project, "f")
    assert list(result.blocks) == ["big_orders", "big_orders.drop_duplicates", "big_orders.drop_columns"]
    assert (out.amount >= 100).all() and not out.customer.duplicated().any() and "rating" not in out.columns


def test_restart_discards_a_killed_runs_checkpoint(tmp_path):
    project = project_with(tmp_path, """
      f:
        input: {source: orders.parquet}
        batch_rows: 1000
        blocks: [{block_type: sample, block_config: {fraction: 0.5}}]
    """)
    spec = project.flow("f")
    found = flow_input(project, "f", spec)
    FlowRunner("f", spec, input_path=found.path, input_identity=found.identity, paths=flow_paths(project, "f"),
               log=lambda line: None).run("20261206T000000Z-aaaaaaaa", stop_after_batches=3)
    lines = []
    result = run_flow(project, "f", "20261206T000001Z-bbbbbbbb", restart=True, log=lines.append)
    assert result.resumed_batches == 0 and any("checkpoint of an earlier run is discarded" in l for l in lines)
