"""synth-assets: synthetic data as Dagster software-defined assets, with pluggable model backends.

The Dagster Components `synth_assets.SynthDataset`, `synth_assets.SynthProjectFile` and `synth_assets.SynthFlow` are imported on first
use, so that the command line does not load Dagster."""

__version__ = "0.1.0"

_COMPONENTS = ("SynthDataset", "SynthProjectFile", "SynthFlow")


def __getattr__(name: str):
    if name in _COMPONENTS:
        from synth_assets import components

        return getattr(components, name)
    raise AttributeError(f"module 'synth_assets' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_COMPONENTS])
