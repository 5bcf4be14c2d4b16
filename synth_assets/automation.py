"""Regeneration when the data changes: the source files as observable source assets whose data version is
their content hash, and the declarative automation conditions that refresh a dataset's stages when it
changes. The cron schedule (schedules.py) is the other way in: regenerate on a clock from the published model.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import dagster as dg

from synth_assets.config import DatasetSpec, Project

# the tag Dagster's automation puts on the runs it launches
AUTOMATION_TAG = "dagster/from_automation_condition"


def source_key(dataset: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "source", table])


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_assets(project: Project, name: str) -> list[dg.SourceAsset]:
    """One observable source asset per source table; an observation hashes the file."""
    spec = project.dataset(name)
    condition = dg.AutomationCondition.cron_tick_passed(spec.automation.observe_sources) \
        if spec.automation.on_source_change else None

    def observer(table: str) -> dg.SourceAsset:
        # observable source assets are beta and warn at every load of the code location; they are Dagster's
        # documented way to version external files, and tests/test_automation.py holds their behaviour
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            @dg.observable_source_asset(
                key=source_key(name, table), group_name=name, automation_condition=condition,
                description=f"The source file of table '{table}'. Its data version is the file's SHA-256, so a new "
                            "file with the same content changes nothing downstream.")
            def observe(context) -> dg.ObserveResult:
                path = project.source_path(name, table)
                if not path.is_file():
                    raise dg.Failure(description=f"dataset '{name}', table '{table}': source file {path} not found; "
                                                 "put it back or fix `source:` in the project file", allow_retries=False)
                stat = path.stat()
                return dg.ObserveResult(
                    data_version=dg.DataVersion(content_hash(path)),
                    metadata={"path": dg.MetadataValue.path(str(path)), "bytes": stat.st_size,
                              "modified": dg.MetadataValue.timestamp(stat.st_mtime)})

            return observe

    return [observer(table) for table in spec.tables]


def stage_condition(spec: DatasetSpec, stage: str) -> dg.AutomationCondition | None:
    """When automation refreshes `stage`: once anything upstream changed (a new source version first of all),
    and only after every blocking check upstream passed. A model also retrains when its backend's code version
    changed (another backend, or a new release of it)."""
    if not spec.automation.on_source_change:
        return None
    condition = dg.AutomationCondition.eager()
    if stage == "model":
        condition = condition | (dg.AutomationCondition.code_version_changed()
                                 & ~dg.AutomationCondition.any_deps_missing()
                                 & ~dg.AutomationCondition.in_progress())
    return condition & dg.AutomationCondition.all_deps_blocking_checks_passed()


def automation_sensor(datasets: dict[str, DatasetSpec], sensor_name: str = "synth_automation"
                      ) -> dg.AutomationConditionSensorDefinition | None:
    """The sensor that evaluates the conditions above, for the datasets that ask for automation. It starts
    stopped, like the schedules: a refresh retrains models, which a user should switch on knowingly."""
    automated = [name for name, spec in datasets.items() if spec.automation.on_source_change]
    if not automated:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # include_sources: a beta parameter
        target = dg.AssetSelection.groups(*automated, include_sources=True)
    return dg.AutomationConditionSensorDefinition(
        sensor_name, target=target,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Observes the source files and refreshes the stages of a dataset whose source changed "
                    f"({', '.join(automated)}). Turn it on in the UI (Automation).")


def launched_by_automation(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(AUTOMATION_TAG) == "true"
