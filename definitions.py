"""The Dagster code location: the components under synth_assets/defs/ (the demo's synth.yaml, and any dataset
scaffolded with `dg scaffold defs synth_assets.SynthDataset <name>`)."""

from functools import cache
from pathlib import Path

import dagster as dg


@dg.definitions
@cache  # Dagster asks six times per `dg launch` and per step process: built once, 1 s sooner
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
