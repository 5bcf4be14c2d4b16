"""Every flow of a project as an asset, `flows/<flow>`, downstream of what it reads (a dataset's synthetic
tables, another flow, a source file), with blocking checks: the output is written as a new version and published
only when they pass. A materialization killed midway resumes from its checkpoint the next time."""

import dagster as dg
from pydantic import Field

from synth_assets.assets import stage_key, user_errors
from synth_assets.checks import asset_check_results
from synth_assets.config import Project
from synth_assets.files import read_parquet_rows
from synth_assets.flow_spec import FlowSpec, block_names
from synth_assets.flows import audit_flow, flow_paths, publish_flow, run_flow
from synth_assets.metadata import location_metadata, markdown_table, preview_markdown
from synth_assets.releases import new_version
from synth_assets.resources import ComputeDevice, SynthStorage

FLOWS_GROUP = "flows"


class FlowRunConfig(dg.Config):
    """The launchpad of a flow."""

    restart: bool = Field(False, description="Discard the checkpoint a killed or stopped run left, and start over "
                                             "(by default a run resumes it).")
PREVIEW_ROWS = 10


def flow_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["flows", name])


def flow_source_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["flows", name, "source"])


def flow_group(flows: dict[str, FlowSpec], name: str) -> str:
    """A flow sits in the group of the dataset it reads (through other flows, if so), else in `flows`."""
    source = flows[name].input
    if source.flow is not None and source.flow in flows:
        return flow_group(flows, source.flow)
    return source.dataset or FLOWS_GROUP


def flow_assets(project: Project, flows: dict[str, FlowSpec] | None = None) -> list:
    flows = project.flows if flows is None else flows
    out: list = []
    for name in flows:
        out += _flow_asset(project, name, flows)
    return out


def _flow_asset(project: Project, name: str, flows: dict[str, FlowSpec]) -> list:
    spec = flows[name]
    source = spec.input
    extra = []
    if source.dataset is not None:
        upstream = stage_key(source.dataset, "synthetic")
    elif source.flow is not None:
        upstream = flow_key(source.flow)
    else:
        upstream = flow_source_key(name)
        extra.append(dg.AssetSpec(upstream, group_name=flow_group(flows, name), kinds={"file"},
                                  description=f"The file flow '{name}' reads: {source.source}"))
    key = flow_key(name)
    chain = " → ".join(f"{n} ({b.block_type})" for n, b in zip(block_names(spec.blocks), spec.blocks))
    checks = [
        dg.AssetCheckSpec("flow_rows", asset=key, blocking=True,
                          description=f"The output has at least {spec.min_rows:,} rows (min_rows)."),
        dg.AssetCheckSpec("flow_valid_outputs", asset=key, blocking=True,
                          description="Every row a block wrote is valid (a language model's under its schema "
                                      "or choices, after its retries)."),
    ]
    kinds = {"parquet", *("llm" for b in spec.blocks if b.block_type == "llm")}

    # automation (the dataset's sensor) runs the flow again once what it reads is republished and passed its checks
    refresh = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

    @dg.asset(key=key, deps=[upstream], group_name=flow_group(flows, name), kinds=kinds, check_specs=checks,
              automation_condition=refresh,
              description=(spec.description or f"Flow over {source.describe()}") + f": {chain}. Checkpointed after "
                          "each batch: a run killed midway resumes where it stopped.")
    def flow(context: dg.AssetExecutionContext, config: FlowRunConfig, storage: SynthStorage,
             compute: ComputeDevice) -> dg.MaterializeResult:
        here = project.stored_at(storage.home)
        version = new_version(context.run_id)
        with user_errors():
            result = run_flow(here, name, version, device=compute.device, restart=config.restart,
                              log=context.log.info)
        audit = audit_flow(spec, result)
        published = publish_flow(here, name, version, audit)
        paths = flow_paths(here, name)
        preview = read_parquet_rows(result.output, range(min(PREVIEW_ROWS, result.rows_out)))
        blocks = [[block, f"{f['rows_in']:,}", f"{f['rows_out']:,}", f"{f['rows_in'] - f['rows_out']:,}",
                   ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("rows_in", "rows_out"))]
                  for block, f in result.blocks.items()]
        metadata = {
            **location_metadata(paths.uri(version)),
            "dagster/row_count": dg.MetadataValue.int(result.rows_out),
            "rows_in": result.rows_in, "batches": result.batches,
            "resumed_after_batches": result.resumed_batches,
            "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
            "version": version, "published": published,
            "blocks": dg.MetadataValue.md(markdown_table(["block", "rows in", "rows out", "dropped", "figures"],
                                                         blocks)),
            "preview": dg.MetadataValue.md(preview_markdown(preview, PREVIEW_ROWS)),
        }
        for block, figures in result.blocks.items():  # each block's own figures, as numbers the UI can plot
            for k, v in figures.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metadata[f"{block}/{k}"] = v
        if not published:
            context.log.warning(f"flow {name}: version {version} failed its checks; the last good output stays "
                                "published")
        return dg.MaterializeResult(metadata=metadata, check_results=asset_check_results(audit))

    return [*extra, flow]
