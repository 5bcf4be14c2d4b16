"""One job per dataset that materializes its whole group, and a schedule where synth.yaml asks for one."""

import dagster as dg

from synth_assets.config import DatasetSpec


def dataset_job(name: str):
    return dg.define_asset_job(
        f"synthesize_{name}", selection=dg.AssetSelection.groups(name),
        description=f"Split, analyze, encode, train, generate and score dataset '{name}'.",
    )


def dataset_schedule(name: str, spec: DatasetSpec, job) -> dg.ScheduleDefinition | None:
    if spec.schedule is None:
        return None
    return dg.ScheduleDefinition(
        name=f"regenerate_{name}", job=job, cron_schedule=spec.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Regenerates '{name}' on '{spec.schedule}' (turn it on in the UI).",
    )
