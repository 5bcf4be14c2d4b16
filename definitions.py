"""The Dagster code location: every dataset of synth.yaml (or $SYNTH_CONFIG) as an asset group."""

from pathlib import Path

from synth_assets.definitions import build_definitions

defs = build_definitions(Path(__file__).parent)
