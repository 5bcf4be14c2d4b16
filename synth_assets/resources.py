"""Dagster resources: where the project lives, and which device trains and generates."""

import copy
import os
from typing import Literal

import dagster as dg
import pydantic
from pydantic import Field

from synth_assets.config import Project, load_project
from synth_assets.pipeline import DatasetPipeline


class SynthProject(dg.ConfigurableResource):
    """The project file and the storage root its datasets write to."""

    root: str = Field(description="Folder holding synth.yaml (unless SYNTH_CONFIG points elsewhere).")

    def load(self) -> Project:
        return load_project(self.root)

    def pipeline(self, dataset: str) -> DatasetPipeline:
        return DatasetPipeline(self.load(), dataset)


class ComputeDevice(dg.ConfigurableResource):
    """Where models train and generate: `auto` takes a CUDA GPU when torch sees one, else the CPU."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        default_factory=lambda: os.environ.get("SYNTH_DEVICE", "auto"),
        description="auto | cpu | cuda (default: $SYNTH_DEVICE or auto)",
    )


def engine_resource_key(backend) -> str:
    return f"{backend.name}_engine"


def engine_resource(backend) -> dg.ConfigurableResource:
    """The backend's engine settings (`Backend.EngineOptions`) as a Dagster resource with their defaults."""
    fields = {}
    for name, info in backend.EngineOptions.model_fields.items():
        field = copy.copy(info)
        field.default, field.default_factory = info.get_default(call_default_factory=True), None
        fields[name] = (info.annotation, field)
    cls = pydantic.create_model(f"{backend.name.title().replace('_', '')}Engine", __base__=dg.ConfigurableResource,
                                __doc__=backend.EngineOptions.__doc__, **fields)
    return cls()


def engine_options(backend, resources) -> pydantic.BaseModel | None:
    """The engine settings an asset's resources hold for this backend, as its EngineOptions."""
    if backend.EngineOptions is None:
        return None
    resource = getattr(resources, engine_resource_key(backend))
    return backend.EngineOptions(**{name: getattr(resource, name) for name in backend.EngineOptions.model_fields})
