"""Which pod each stage asks for under Dagster's k8s_job_executor: training and generation on a GPU node (where
the backend can use CUDA), the rest on CPU pods. The `dagster-k8s/config` tag carries it; other executors
ignore the tag, so the same definitions run anywhere."""

from __future__ import annotations

import json
import os

from synth_assets.config import DatasetSpec
from synth_assets.errors import ConfigError

K8S_CONFIG_TAG = "dagster-k8s/config"


def stage_k8s_tags(spec: DatasetSpec, stage: str, backend) -> dict[str, str]:
    """The op tags of `stage`'s step: the GPU pod's config for a GPU stage, else the CPU pod's (if any)."""
    on_gpu = stage in spec.kubernetes.gpu_stages and "cuda" in backend.capabilities.devices
    config = spec.kubernetes.gpu_step if on_gpu else spec.kubernetes.cpu_step
    return {K8S_CONFIG_TAG: json.dumps(config)} if config else {}


def executor():
    """Dagster's k8s_job_executor (each step its own pod) when `SYNTH_EXECUTOR=k8s`, else None (the default
    multiprocess executor). One object for every component, as Dagster merges only identical executors."""
    choice = os.environ.get("SYNTH_EXECUTOR", "").strip().lower()
    if choice in ("", "default", "multiprocess"):
        return None
    if choice != "k8s":
        raise ConfigError(f"SYNTH_EXECUTOR={choice!r} is not an executor synth-assets knows",
                          hint="use k8s (Dagster's k8s_job_executor), or leave it unset")
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError:
        raise ConfigError("SYNTH_EXECUTOR=k8s needs the dagster-k8s package", hint="pip install dagster-k8s") from None
    return k8s_job_executor
