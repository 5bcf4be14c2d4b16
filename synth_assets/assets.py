"""The asset factory: every dataset of the project file becomes one asset group,

    <dataset>/split → stats → encoded → model → synthetic → quality

Each asset calls one stage of `DatasetPipeline`, which reads its inputs from and writes its output to
`$SYNTH_HOME/<dataset>/` as Parquet or JSON (no pickling IO manager), and reports what a user wants
to see in the UI as metadata.
"""

import contextlib
import copy
import math
import typing

import dagster as dg
import pydantic

from synth_assets.automation import launched_by_automation, source_key, stage_condition
from synth_assets.backend import ProgressRecord, backend_code_version
from synth_assets.audit import Check
from synth_assets.checks import asset_check_results, model_check_specs, synthetic_check_specs
from synth_assets.config import DP_OPTION, Project
from synth_assets.errors import SynthError
from synth_assets.kubernetes import stage_k8s_tags
from synth_assets.pipes import train_through_pipes
from synth_assets.metadata import (location_metadata, markdown_table, preview_markdown, progress_markdown,
                                   stats_markdown, tables_metadata)
from synth_assets.options import CONDITIONING
from synth_assets.plugins import get_backend
from synth_assets.releases import new_version
from synth_assets.stages.charts import inline_images, loss_curve, markdown_image
from synth_assets.stages.report import CHARTS, chart_file, protection_words
from synth_assets.resources import ComputeDevice, SynthStorage, engine_options, engine_resource_key


@contextlib.contextmanager
def user_errors():
    """Show a user's mistake as a clear failure in the UI, not as a traceback into our code."""
    try:
        yield
    except SynthError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise dg.Failure(description=f"invalid run config: {problems}", allow_retries=False) from None


def run_config_class(name: str, model: type[pydantic.BaseModel], values: pydantic.BaseModel | None,
                     leave_out: typing.Iterable[str] = ()) -> type[dg.Config]:
    """A launchpad config with every field of `model` (but `leave_out`), its defaults taken from synth.yaml
    (`values`).

    Nested option groups (rebalancing, fairness, ...) become nested configs, optional where the
    project file leaves them out."""
    fields = {}
    for field_name, info in model.model_fields.items():
        if field_name in leave_out:
            continue
        field = copy.copy(info)
        field.default = getattr(values, field_name) if values is not None else info.get_default()
        field.default_factory = None
        annotation = info.annotation
        nested = _nested_model(annotation)
        if nested is not None:
            current = field.default
            sub = run_config_class(f"{name}_{field_name}", nested, current)
            annotation = sub | None
            field.default = current.model_dump() if current is not None else None  # dagster takes plain dicts
            field.validate_default = True  # ...which pydantic then turns into the nested config
        elif typing.get_origin(annotation) is dict and _holds_model(annotation):
            # table -> column -> options: the options become a nested config, the default plain dicts
            annotation = _dict_of_configs(f"{name}_{field_name}", annotation)
            field.default = pydantic.TypeAdapter(info.annotation).dump_python(field.default, mode="json")
            field.validate_default = True
        fields[field_name] = (annotation, field)
    return pydantic.create_model(name, __base__=dg.Config, **fields)


def _nested_model(annotation) -> type[pydantic.BaseModel] | None:
    """The pydantic model inside `X` or `X | None`, if any."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def _holds_model(annotation) -> bool:
    return any(_holds_model(arg) or (isinstance(arg, type) and issubclass(arg, pydantic.BaseModel))
               for arg in typing.get_args(annotation))


def _dict_of_configs(name: str, annotation):
    """`dict[str, ... Model]` with the model as a launchpad config."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return run_config_class(name, annotation, None)
    key, value = typing.get_args(annotation)
    return dict[key, _dict_of_configs(name, value)]


def stage_key(dataset: str, stage: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, stage])


def build_dataset_assets(project: Project, name: str) -> list[dg.AssetsDefinition]:
    """The stages of dataset `name` of `project`. They run the spec loaded here, not the file as it is at run
    time, and write where the `storage` resource says."""
    spec = project.dataset(name)
    backend = get_backend(spec.backend, dataset=name)
    key = lambda stage: stage_key(name, stage)  # noqa: E731
    when = lambda stage: stage_condition(spec, stage)  # noqa: E731
    pod = lambda stage: stage_k8s_tags(spec, stage, backend)  # noqa: E731  # the step's pod under k8s
    # the launchpad shows the backend's own options, and no conditioning it cannot honour
    TrainConfig = run_config_class(f"{name}_train_config", backend.TrainOptions, spec.train)
    unsupported = [o for o in CONDITIONING if not getattr(backend.capabilities, o)]
    GenerateConfig = run_config_class(f"{name}_generate_config", backend.GenerateOptions, spec.generate, unsupported)
    tables = ", ".join(spec.tables)
    # training and generation queue for the GPU when the backend runs on one
    gpu_pool = "gpu" if "cuda" in backend.capabilities.devices else None

    @dg.asset(key=key("split"), group_name=name, kinds={"pandas", "parquet"},
              deps=[source_key(name, table) for table in spec.tables], automation_condition=when("split"),
              op_tags=pod("split"),
              description=f"Source tables ({tables}) split into training and validation partitions "
                          f"({1 - spec.split.validation_share:.0%}/{spec.split.validation_share:.0%}, by primary key).")
    def split(context: dg.AssetExecutionContext, storage: SynthStorage) -> dg.MaterializeResult:
        pipeline = storage.pipeline(project, name)
        with user_errors():
            result = pipeline.split()
        metadata = tables_metadata(result.train, lambda table: pipeline.paths.uri("split"), rows_label="train_rows")
        metadata.update(location_metadata(pipeline.paths.uri("split")))
        metadata.update({f"{table}/validation_rows": len(df) for table, df in result.validation.items()})
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(key=key("stats"), deps=[key("split")], group_name=name, kinds={"json"}, automation_condition=when("stats"),
              op_tags=pod("stats"),
              description="Per column: inferred type and encoding, kept categories (rare ones protected), "
                          "quantiles, clipped min/max and null share, from the training partition.")
    def stats(context: dg.AssetExecutionContext, storage: SynthStorage) -> dg.MaterializeResult:
        pipeline = storage.pipeline(project, name)
        with user_errors():
            result = pipeline.stats()
        metadata = location_metadata(pipeline.paths.uri("stats.json"))
        protection = result.privacy
        metadata["value_protection"] = dg.MetadataValue.md(protection_words(
            {"mode": protection.mode, "rare_threshold": protection.rare_threshold,
             "epsilon_value_protection": protection.epsilon}))
        metadata["value_protection/mode"] = protection.mode
        if protection.mode == "differential_privacy":
            metadata["value_protection/epsilon"] = dg.MetadataValue.float(protection.epsilon)
            metadata["value_protection/delta"] = dg.MetadataValue.float(protection.delta)
        for table, table_stats in result.tables.items():
            metadata[f"{table}/columns"] = dg.MetadataValue.md(stats_markdown(table_stats))
            metadata[f"{table}/training_rows"] = table_stats.rows
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(key=key("encoded"), deps=[key("stats")], group_name=name, kinds={"parquet", backend.name},
              automation_condition=when("encoded"), op_tags=pod("encoded"),
              description=f"Both partitions in the '{backend.name}' backend's own encoding.")
    def encoded(context: dg.AssetExecutionContext, storage: SynthStorage) -> dg.MaterializeResult:
        pipeline = storage.pipeline(project, name)
        with user_errors():
            info = pipeline.encode()
        return dg.MaterializeResult(metadata={**location_metadata(pipeline.paths.uri("encoded")),
                                              "encoding": dg.MetadataValue.json(info)})

    @dg.asset(key=key("model"), deps=[key("encoded")], group_name=name, pool=gpu_pool,
              kinds={"model", *backend.kinds}, check_specs=model_check_specs(key("model"), spec),
              code_version=backend_code_version(backend), automation_condition=when("model"),
              op_tags=pod("model"),
              description=f"A '{backend.name}' checkpoint (safetensors weights, config, training progress), "
                          "trained with early stopping on validation loss within a time budget. Each run "
                          "writes a new version, published (model/CURRENT) once its check passes.")
    def model(context: dg.AssetExecutionContext, config: TrainConfig, storage: SynthStorage,  # type: ignore[valid-type]
              compute: ComputeDevice) -> dg.MaterializeResult:
        pipeline = storage.pipeline(project, name)
        version = new_version(context.run_id)

        def log(record: ProgressRecord) -> None:
            context.log.info(record.log_line())

        with user_errors():
            options = backend.TrainOptions(**config.model_dump())
            if launched_by_automation(context):  # a refresh after new data: as synth.yaml's automation says
                options = options.model_copy(update={"model_state": spec.automation.model_state})
                context.log.info(f"started by automation: model_state {options.model_state}")
            # after new data, weights that no longer fit (a new category, say) make way for a new model
            reset_if_incompatible = launched_by_automation(context)
            if compute.training != "in_step":  # another process or pod, through Dagster Pipes
                result = train_through_pipes(context, pipeline, options, compute, version=version,
                                             reset_if_incompatible=reset_if_incompatible)
            else:
                result = pipeline.train(options, device=compute.device, progress=log, version=version, publish=False,
                                        reset_if_incompatible=reset_if_incompatible, warn=context.log.warning)
        curve = loss_curve_markdown(pipeline, version, result)  # written beside the checkpoint before its audit
        dp = getattr(options, DP_OPTION, None)  # only a backend that trains with DP has the section
        audit = pipeline.release("model", version, result, dp)
        return dg.MaterializeResult(check_results=asset_check_results(audit), metadata={
            **privacy_metadata(result.privacy, dp),
            **release_metadata(pipeline, "model", version, audit, context),
            "model_state": result.model_state, "trained_in": compute.training,
            "epochs": result.epochs, "best_epoch": result.best_epoch,
            "best_validation_loss": dg.MetadataValue.float(result.best_validation_loss),
            "training_seconds": dg.MetadataValue.float(round(result.seconds, 2)),
            "stopped_because": result.stopped_because, "device": result.device, "parameters": result.parameters,
            "settings": dg.MetadataValue.json(result.settings),
            "loss_curve": dg.MetadataValue.md(curve),
        })

    engine_keys = {engine_resource_key(backend)} if backend.EngineOptions is not None else set()

    synthetic = synthetic_graph_asset(project, name, backend, GenerateConfig, gpu_pool, engine_keys, pod,
                                      when("synthetic"))

    @dg.asset(key=key("quality"), deps=[key("synthetic")], group_name=name, kinds={"markdown"},
              automation_condition=when("quality"), op_tags=pod("quality"),
              description="Accuracy (synthetic vs training, with the holdout as ceiling), DCR share and "
                          "discriminator AUC (can synthetic rows be told from real ones), as a Markdown report.")
    def quality(context: dg.AssetExecutionContext, storage: SynthStorage) -> dg.MaterializeResult:
        pipeline = storage.pipeline(project, name)
        with user_errors():
            results, report = pipeline.quality()
        protection = pipeline.protection()
        metadata = {"report": dg.MetadataValue.md(inline_images(report, pipeline.paths.quality)),
                    "privacy/protection": protection["mode"],
                    **{f"privacy/{k}": v for k, v in protection.items() if k in ("epsilon", "delta", "rare_threshold")},
                    **location_metadata(pipeline.paths.uri("quality")),
                    "report_path": location_metadata(pipeline.paths.uri("quality/report.md"))["path"],
                    "synthetic_version": pipeline.paths.releases("synthetic").current_version() or ""}
        for table, q in results.items():
            prefix = "" if len(results) == 1 else f"{table}/"
            figures = {"accuracy": q.accuracy, "holdout_accuracy": q.holdout_accuracy,
                       "univariate_accuracy": q.univariate, "bivariate_accuracy": q.bivariate,
                       "dcr_share": q.dcr_share, "discriminator_auc": q.discriminator_auc}
            metadata.update({f"{prefix}{k}": dg.MetadataValue.float(round(v, 4))
                             for k, v in figures.items() if not math.isnan(v)})
            # a figure that could not be computed says why, instead of failing the run
            metadata.update({f"{prefix}unavailable/{k}": why for k, why in q.unavailable.items()})
            if q.privacy:  # against real unseen data: the privacy figures and their baselines
                metadata.update({f"{prefix}privacy/{k}": dg.MetadataValue.float(v) for k, v in q.privacy.items()})
            if q.sequence is not None:  # a child table: its records as sequences under their parents
                metadata.update({f"{prefix}{key}": dg.MetadataValue.float(round(getattr(q.sequence, key), 4))
                                 for key in ("length_accuracy", "coherence", "parent_child_accuracy",
                                             "holdout_coherence", "repeated_order_share")
                                 if getattr(q.sequence, key) is not None and not math.isnan(getattr(q.sequence, key))})
            for column, t in q.text.items():  # free text: its figures, and written texts beside real ones
                metadata.update({f"{prefix}text/{column}/{k}": dg.MetadataValue.float(round(getattr(t, k), 4))
                                 for k in ("length_similarity", "word_similarity", "exact_copy_share",
                                           "holdout_exact_copy_share", "mean_characters", "mean_words")
                                 if not math.isnan(getattr(t, k))})
                metadata[f"{prefix}text/{column}/samples"] = dg.MetadataValue.md(markdown_table(
                    ["written", "real"], [[a, b] for a, b in zip(t.samples, t.real_samples)]))
        for table in results:  # the charts beside the report, shown in the UI
            for chart in CHARTS:
                png = pipeline.paths.quality / chart_file(table, chart)
                if png.is_file():
                    metadata[f"{table}/{chart}"] = dg.MetadataValue.md(markdown_image(png.read_bytes(), chart))
        return dg.MaterializeResult(metadata=metadata)

    return [split, stats, encoded, model, synthetic, quality]


def synthetic_graph_asset(project: Project, name: str, backend, GenerateConfig, gpu_pool, engine_keys, pod,
                          automation_condition) -> dg.AssetsDefinition:
    """The synthetic asset as a graph: plan the generation, draw each part in a step of its own (in parallel
    under the multiprocess or Kubernetes executor; one part unless the sample exceeds `parts.rows`), then join
    the parts into a candidate version, audit it with the blocking checks and publish it if they pass."""
    spec = project.dataset(name)
    asset_key = stage_key(name, "synthetic")
    check_specs = synthetic_check_specs(asset_key, spec)
    check_outputs = {check.get_python_identifier(): check for check in check_specs}

    def job(context: dg.OpExecutionContext) -> str:
        """Where the run's plan and parts are: the first run's id, so that a re-execution from a failed part
        finds the plan and the parts that succeeded."""
        return context.dagster_run.root_run_id or context.run_id

    @dg.op(name=f"{name}__plan_generation", ins={"model": dg.In(dg.Nothing)}, out=dg.DynamicOut(dg.Nothing),
           required_resource_keys={"storage"}, tags=pod("plan"))
    def plan_generation(context: dg.OpExecutionContext, config: GenerateConfig):  # type: ignore[valid-type]
        pipeline = context.resources.storage.pipeline(project, name)
        with user_errors():
            options = backend.GenerateOptions(**config.model_dump())
            plan = pipeline.plan_generation(options, job=job(context), version=new_version(context.run_id))
        if len(plan.parts) > 1:
            context.log.info(f"{sum(p.rows for p in plan.parts):,} rows in {len(plan.parts)} parts of at most "
                             f"{spec.parts.rows:,} (parts.rows)")
        for part in plan.parts:
            yield dg.DynamicOutput(None, mapping_key=part.name)

    @dg.op(name=f"{name}__generate_part", ins={"planned": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing),
           required_resource_keys={"storage", "compute", *engine_keys}, pool=gpu_pool, tags=pod("synthetic"))
    def generate_part(context: dg.OpExecutionContext) -> None:
        pipeline = context.resources.storage.pipeline(project, name)
        index = int(context.get_mapping_key().rsplit("_", 1)[1])
        with user_errors():
            report = pipeline.generate_part(job(context), index, device=context.resources.compute.device,
                                            engine=engine_options(backend, context.resources))
        context.log.info(f"part {index}: {', '.join(f'{n:,} {t} rows' for t, n in report['rows'].items())} in "
                         f"{report['seconds']:.1f}s")

    @dg.op(name=f"{name}__join_parts", ins={"parts": dg.In(dg.Nothing)},
           out={"result": dg.Out(dg.Nothing), **{output: dg.Out(dg.Nothing) for output in check_outputs}},
           required_resource_keys={"storage"}, tags=pod("join"))
    def join(context: dg.OpExecutionContext):
        pipeline = context.resources.storage.pipeline(project, name)
        with user_errors():
            result = pipeline.join_parts(job(context), publish=False)
            audit = pipeline.release("synthetic", result.version, result)
        yield dg.Output(None, "result", metadata=synthetic_metadata(pipeline, result, audit, context))
        yield from asset_check_results(audit)

    def config_for_plan(config: dict) -> dict:  # the launchpad's config of the asset goes to its planning step
        return {plan_generation.name: {"config": config}}

    @dg.graph_asset(key=asset_key, group_name=name, kinds={"pandas", "parquet"}, check_specs=check_specs,
                    ins={"model": dg.AssetIn(key=stage_key(name, "model"), dagster_type=dg.Nothing)},
                    config=dg.ConfigMapping(config_fn=config_for_plan, config_schema=GenerateConfig.to_config_schema()),
                    automation_condition=automation_condition,
                    description="Synthetic tables, one Parquet file each, with the source's columns, order and dtypes, "
                                f"generated in parts of at most {spec.parts.rows:,} rows (parts.rows), each a step "
                                "of its own. Each run writes a new version; it is published (synthetic/CURRENT) only "
                                "when the schema check and the privacy gate pass.")
    def synthetic(model):
        joined = join(plan_generation(model).map(lambda part: generate_part(part)).collect())
        return {"result": joined.result, **{output: getattr(joined, output) for output in check_outputs}}

    return synthetic


def privacy_metadata(spent: dict | None, dp) -> dict:
    """A DP model's ε and δ (training plus value protection) beside its budget; nothing without DP."""
    if dp is None:
        return {}
    spent = spent or {}
    return {"privacy/epsilon": dg.MetadataValue.float(spent.get("epsilon", float("nan"))),
            "privacy/delta": dg.MetadataValue.float(spent.get("delta", float("nan"))),
            "privacy/epsilon_training": dg.MetadataValue.float(spent.get("epsilon_training", float("nan"))),
            "privacy/epsilon_value_protection": dg.MetadataValue.float(spent.get("epsilon_value_protection", float("nan"))),
            "privacy/max_epsilon": dg.MetadataValue.float(dp.max_epsilon) if dp.max_epsilon is not None else "none",
            "privacy/steps": spent.get("steps", 0)}


def synthetic_metadata(pipeline, result, audit: list[Check], context) -> dict:
    """What the synthetic asset shows: rows and rates, the backend's figures, schemas, previews, the release."""
    rows = sum(result.rows.values())
    # the draw rate apart from the fixed costs (imports, loading the model, restoring dtypes), which
    # dominate small samples
    metadata = {"generation_seconds": dg.MetadataValue.float(round(result.seconds, 3)),
                "end_to_end_rows_per_second": dg.MetadataValue.int(int(rows / max(result.seconds, 1e-9))),
                "parts": result.parts}
    if result.draw_seconds is not None:
        metadata.update({
            "draw_seconds": dg.MetadataValue.float(round(result.draw_seconds, 3)),
            "rows_per_second": dg.MetadataValue.int(int(rows / max(result.draw_seconds, 1e-9))),
            "overhead_seconds": dg.MetadataValue.float(round(max(result.seconds - result.draw_seconds, 0), 3))})
    metadata.update({f"backend/{k}": dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                     for k, v in result.report.items()})
    preview = result.preview()
    metadata.update(tables_metadata(preview, lambda table: pipeline.paths.uri(f"synthetic/{result.version}/{table}.parquet"),
                                    rows=result.rows))
    metadata.update({f"{table}/preview": dg.MetadataValue.md(preview_markdown(df)) for table, df in preview.items()})
    metadata.update(release_metadata(pipeline, "synthetic", result.version, audit, context))
    return metadata


def loss_curve_markdown(pipeline, version: str, result) -> str:
    """The loss curve as a chart (also saved beside the checkpoint as loss_curve.png), above the figures."""
    progress = [p.model_dump() for p in result.progress]
    png = loss_curve(progress)
    if png is None:
        return progress_markdown(progress)
    pipeline.paths.add_to_version("model", version, "loss_curve.png", png)  # beside the checkpoint, wherever
    return markdown_image(png, "loss curve") + "\n\n" + progress_markdown(progress)


def release_metadata(pipeline, stage: str, version: str, audit: list[Check], context) -> dict:
    """After `pipeline.release` (which published candidate `version` of `stage` if its audit passed): the
    metadata that says which version consumers now read."""
    releases = pipeline.paths.releases(stage)
    passed = all(check.passed for check in audit)
    if not passed:
        still = releases.current_version()
        context.log.warning(f"{stage} version {version} failed its audit and is not published; consumers stay on "
                            f"{still or 'nothing (no release yet)'}")
    where = location_metadata(pipeline.paths.published_uri(stage))
    return {"version": version, "published": passed,
            "published_version": releases.current_version() or "",
            # where consumers read, also as a URI other tools (and Dagster's catalog) understand
            "published_path": where["path"], "dagster/uri": where["dagster/uri"]}
