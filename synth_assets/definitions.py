"""Build the Dagster definitions for a project file."""

from pathlib import Path

import dagster as dg

from synth_assets.assets import build_dataset_assets
from synth_assets.automation import automation_sensor, source_assets
from synth_assets.config import load_project
from synth_assets.plugins import get_backend
from synth_assets.resources import ComputeDevice, SynthProject, engine_resource, engine_resource_key
from synth_assets.schedules import dataset_job, dataset_schedule, resample_job


def build_definitions(root: Path | str | None = None) -> dg.Definitions:
    root = Path(root or Path.cwd()).resolve()
    project = load_project(root)
    assets, jobs, schedules = [], [], []
    for name, spec in project.datasets.items():
        assets += source_assets(name, spec) + build_dataset_assets(name, spec)
        resample = resample_job(name)
        jobs += [dataset_job(name), resample]
        schedule = dataset_schedule(name, spec, resample)
        if schedule is not None:
            schedules.append(schedule)
    resources = {"project": SynthProject(root=str(root)), "compute": ComputeDevice()}
    for spec in project.datasets.values():  # one engine resource per backend in use that has settings
        backend = get_backend(spec.backend)
        if backend.EngineOptions is not None:
            resources.setdefault(engine_resource_key(backend), engine_resource(backend))
    sensor = automation_sensor(project.datasets)
    return dg.Definitions(assets=assets, jobs=jobs, sensors=[sensor] if sensor else [], schedules=schedules, resources=resources)
