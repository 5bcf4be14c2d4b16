"""Jobs per dataset: one that materializes its whole group, one that draws new synthetic tables from the published
model; and a schedule for the latter where synth.yaml asks for one."""

import dagster as dg

from synth_assets.config import DatasetSpec


def dataset_job(name: str):
    return dg.define_asset_job(
        f"synthesize_{name}", selection=dg.AssetSelection.groups(name),  # not the sources: they are observed
        description=f"Split, analyze, encode, train, generate and score dataset '{name}'.",
    )


def resample_job(name: str):
    return dg.define_asset_job(
        f"resample_{name}", selection=dg.AssetSelection.assets([name, "synthetic"], [name, "quality"]),
        description=f"Draw new synthetic tables for '{name}' from the published model, audit, publish and score them.",
    )


def dataset_schedule(name: str, spec: DatasetSpec, job) -> dg.ScheduleDefinition | None:
    if spec.schedule is None:
        return None
    return dg.ScheduleDefinition(
        name=f"regenerate_{name}", job=job, cron_schedule=spec.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Draws new synthetic tables for '{name}' from the published model on '{spec.schedule}' "
                    "(turn it on in the UI). New source data retrains through automation instead.",
    )
