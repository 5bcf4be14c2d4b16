"""Dagster resources: where the project lives, and which device trains and generates."""

import os
from typing import Literal

import dagster as dg
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
