"""Build the Dagster definitions for loaded datasets: a project file's, or one SynthDataset component's."""

from pathlib import Path

import dagster as dg

from synth_assets.assets import build_dataset_assets
from synth_assets.automation import automation_sensor, source_assets
from synth_assets.config import Project
from synth_assets.flow_assets import flow_assets
from synth_assets.project import load_project
from synth_assets.kubernetes import executor
from synth_assets.plugins import get_backend
from synth_assets.resources import ComputeDevice, SynthStorage, engine_resource, engine_resource_key, shared
from synth_assets.schedules import dataset_job, dataset_schedule, resample_job


def datasets_definitions(project: Project, sensor_name: str = "synth_automation") -> dg.Definitions:
    """Every dataset of `project` as an asset group with its jobs and schedule, one automation sensor over them,
    and the resources their assets need."""
    assets, jobs, schedules = [], [], []
    for name, spec in project.datasets.items():
        assets += source_assets(project, name) + build_dataset_assets(project, name)
        resample = resample_job(name)
        jobs += [dataset_job(name), resample]
        schedule = dataset_schedule(name, spec, resample)
        if schedule is not None:
            schedules.append(schedule)
    assets += flow_assets(project)
    resources = {"storage": shared(SynthStorage(home=project.home_uri)), "compute": shared(ComputeDevice())}
    for spec in project.datasets.values():  # one engine resource per backend in use that has settings
        backend = get_backend(spec.backend)
        if backend.EngineOptions is not None:
            resources.setdefault(engine_resource_key(backend), shared(engine_resource(backend)))
    sensor = automation_sensor(project.datasets, sensor_name)
    return dg.Definitions(assets=assets, jobs=jobs, sensors=[sensor] if sensor else [], schedules=schedules,
                          resources=resources, executor=executor())


def build_definitions(root: Path | str | None = None) -> dg.Definitions:
    """The definitions of the project file in `root` (or `$SYNTH_CONFIG`)."""
    return datasets_definitions(load_project(Path(root or Path.cwd()).resolve()))
