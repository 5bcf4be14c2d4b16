"""synth-assets: synthetic data as Dagster software-defined assets, with pluggable model backends."""

__version__ = "0.1.0"
