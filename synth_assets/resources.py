"""Dagster resources: where the stages are stored, and which device trains and generates."""

import copy
import functools
import os
from typing import Literal

import dagster as dg
import pydantic
from pydantic import Field

from synth_assets.config import Project
from synth_assets.pipeline import DatasetPipeline


class SynthStorage(dg.ConfigurableResource):
    """The storage root: each dataset's stages are written under `<home>/<dataset>/`."""

    home: str = Field(description="Storage root ($SYNTH_HOME, else .synth/ in the project root).")

    def pipeline(self, project: Project, dataset: str) -> DatasetPipeline:
        """The stages of a dataset loaded with the definitions (its spec is not read again), stored here."""
        return DatasetPipeline(project.stored_at(self.home), dataset)


class ComputeDevice(dg.ConfigurableResource):
    """Where models train and generate: `auto` takes a CUDA GPU when torch sees one, else the CPU."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        default_factory=lambda: os.environ.get("SYNTH_DEVICE", "auto"),
        description="auto | cpu | cuda (default: $SYNTH_DEVICE or auto)",
    )
    training: Literal["in_step", "pipes_subprocess", "pipes_k8s"] = Field(
        default_factory=lambda: os.environ.get("SYNTH_TRAINING", "in_step"),
        description="in_step: the model asset trains in its own step; pipes_subprocess: in a separate process, "
                    "pipes_k8s: in a Kubernetes pod of its own (with the dataset's kubernetes.gpu_step settings), "
                    "each running `python -m synth_assets train` through Dagster Pipes, which reports each epoch "
                    "and the result back (default: $SYNTH_TRAINING or in_step)",
    )
    training_image: str | None = Field(
        default_factory=lambda: os.environ.get("SYNTH_TRAINING_IMAGE"),
        description="pipes_k8s: the image of the training pod, with this project installed "
                    "(default: $SYNTH_TRAINING_IMAGE)")
    training_namespace: str | None = Field(
        default_factory=lambda: os.environ.get("SYNTH_TRAINING_NAMESPACE"),
        description="pipes_k8s: the namespace of the training pod (default: $SYNTH_TRAINING_NAMESPACE, else the "
                    "current one)")


def engine_resource_key(backend) -> str:
    return f"{backend.name}_engine"


def engine_resource(backend) -> dg.ConfigurableResource:
    """The backend's engine settings (`Backend.EngineOptions`) as a Dagster resource with their defaults."""
    return _engine_resource_class(backend)()


@functools.cache  # one class per backend, so that equal settings make equal resources (see `shared`)
def _engine_resource_class(backend) -> type[dg.ConfigurableResource]:
    fields = {}
    for name, info in backend.EngineOptions.model_fields.items():
        field = copy.copy(info)
        field.default, field.default_factory = info.get_default(call_default_factory=True), None
        fields[name] = (info.annotation, field)
    return pydantic.create_model(f"{backend.name.title().replace('_', '')}Engine", __base__=dg.ConfigurableResource,
                                 __doc__=backend.EngineOptions.__doc__, **fields)


_SHARED: dict[tuple, dg.ConfigurableResource] = {}


def shared(resource: dg.ConfigurableResource) -> dg.ConfigurableResource:
    """One object for equal resources. Each dataset's definitions (a component) carries the resources its assets
    need, and Dagster merges components' definitions only where a key holds the very same object."""
    key = (type(resource), resource.model_dump_json())
    return _SHARED.setdefault(key, resource)


def engine_options(backend, resources) -> pydantic.BaseModel | None:
    """The engine settings an asset's resources hold for this backend, as its EngineOptions."""
    if backend.EngineOptions is None:
        return None
    resource = getattr(resources, engine_resource_key(backend))
    return backend.EngineOptions(**{name: getattr(resource, name) for name in backend.EngineOptions.model_fields})
