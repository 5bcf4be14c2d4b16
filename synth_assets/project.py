"""Reading a project file (or one dataset's keys) with the installed backends: where the plugin registry meets
the project's models. config.py declares the models and never looks a backend up; this module hands them the
installed backends through pydantic's validation context."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from synth_assets.config import BACKENDS, DatasetSpec, Project, ProjectSpec, default_home, describe_errors
from synth_assets.errors import ConfigError
from synth_assets.flow_spec import BLOCK_TYPES, FlowSpec
from synth_assets.plugins import block_types, get_backend, installed_backends


def parse_project(raw: Any, origin: str = "synth.yaml") -> ProjectSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping with a 'datasets' key")
    try:
        return ProjectSpec.model_validate(raw, context=_installed())
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_errors(exc)}", hint="see docs/project-file.md for the keys synth.yaml accepts") \
            from None


def _installed() -> dict:
    """The validation context: the installed backends and block types."""
    return {BACKENDS: installed_backends(), BLOCK_TYPES: block_types()}


def parse_flow(raw: Any, origin: str, prefix: tuple = ()) -> FlowSpec:
    """One flow's keys (a SynthFlow component's attributes), checked as in a project file."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a flow must be a mapping with 'input' and 'blocks'")
    try:
        return FlowSpec.model_validate(raw, context=_installed())
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_errors(exc, prefix)}", hint="see docs/flows.md for the keys a flow "
                                                                            "accepts") from None


def parse_dataset(raw: Any, origin: str, prefix: tuple = ()) -> DatasetSpec:
    """One dataset's keys (a SynthDataset component's attributes, a spec handed to another process), checked as
    in a project file; problems are named under `prefix` (e.g. ('attributes',))."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a dataset must be a mapping with at least 'tables'")
    try:
        spec = DatasetSpec.model_validate(raw, context=_installed())
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_errors(exc, prefix)}", hint="see docs/project-file.md for the keys a dataset "
                                                                            "accepts") from None
    why = spec.unsupported_shape(get_backend(spec.backend))
    if why:
        raise ConfigError(f"{origin}: {'.'.join((*prefix, 'backend'))}: {why}")
    return spec


def load_project(root: Path | None = None, config_path: Path | None = None) -> Project:
    """Read the project file: `config_path`, else `$SYNTH_CONFIG`, else `<root>/synth.yaml`; storage at
    `$SYNTH_HOME`, else `<root>/.synth`."""
    root = Path(root or Path.cwd()).resolve()
    config_path = Path(config_path or os.environ.get("SYNTH_CONFIG") or root / "synth.yaml").expanduser().resolve()
    home, store = default_home(root)
    if not config_path.is_file():
        raise ConfigError(
            f"project file {config_path} not found", hint="create synth.yaml or point SYNTH_CONFIG at one"
        )
    try:
        raw = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path}: not valid YAML ({exc})") from None
    spec = parse_project(raw, origin=str(config_path))
    for name, dataset in spec.datasets.items():
        why = dataset.unsupported_shape(get_backend(dataset.backend))
        if why:
            raise ConfigError(f"{config_path}: datasets.{name}.backend: {why}")
    return Project(spec, config_path, home, store)
