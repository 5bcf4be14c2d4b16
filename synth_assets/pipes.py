"""Training in another process, or another pod, through Dagster Pipes.

The `model` asset hands the loaded dataset spec, the training options, the device and the version to write over
Pipes to `python -m synth_assets train <dataset>`, which trains into that version, logs each epoch back to the
run, and reports its result as a Pipes message. The asset then audits and publishes as it does for in-process
training. `PipesSubprocessClient` starts the process here; `PipesK8sClient` runs the same command in a pod of
its own, with the GPU settings of the dataset's `kubernetes.gpu_step` (see docs/deploying.md).

The external side imports only `dagster_pipes` (and what training needs), not Dagster.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from synth_assets.backend import ProgressRecord, TrainResult
from synth_assets.errors import SynthError

RESULT_MESSAGE = "train_result"


def result_to_message(result: TrainResult) -> dict[str, Any]:
    fields = {**result.__dict__, "progress": [record.model_dump() for record in result.progress]}
    return {RESULT_MESSAGE: fields}


def result_from_messages(messages: list[Any]) -> TrainResult:
    for message in reversed(messages):
        if isinstance(message, dict) and RESULT_MESSAGE in message:
            fields = dict(message[RESULT_MESSAGE])
            fields["progress"] = [ProgressRecord(**record) for record in fields.get("progress", [])]
            return TrainResult(**fields)
    raise SynthError("the training process ended without reporting its result",
                     hint="see the run's logs for the process's own output")


def train_through_pipes(context, pipeline, options, compute, *, version: str,
                        reset_if_incompatible: bool) -> TrainResult:
    """Run `python -m synth_assets train` under Pipes, in a subprocess or a Kubernetes pod as `compute.training`
    says, with everything it needs to train this version."""
    project = pipeline.project
    extras = {
        "dataset": pipeline.name,
        "spec": pipeline.spec.model_dump(mode="json"),  # what the definitions loaded, not the file as it is now
        "config_path": str(project.config_path),  # relative source paths resolve against it
        "home": project.home_uri,  # an object store's URL: the process fetches and uploads through it
        "options": options.model_dump(mode="json"),
        "device": compute.device,
        "version": version,
        "reset_if_incompatible": reset_if_incompatible,
    }
    env = {"PYTHONUNBUFFERED": "1"}
    if compute.training == "pipes_k8s":
        client, image = k8s_client(compute)
        invocation = client.run(context=context, extras=extras, image=image, namespace=compute.training_namespace,
                                command=train_command(pipeline.name, python="python"), env=env,
                                base_pod_spec=training_pod_spec(pipeline.spec))
    else:
        import dagster as dg

        invocation = dg.PipesSubprocessClient().run(context=context, extras=extras, env=env,
                                                    command=train_command(pipeline.name))
    return result_from_messages(list(invocation.get_custom_messages()))


def train_command(dataset: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "synth_assets", "train", dataset]


def k8s_client(compute):
    """Dagster's Pipes client for Kubernetes pods, and the image to run, or a clear error saying what is missing."""
    if not compute.training_image:
        raise SynthError("training in a Kubernetes pod (compute.training: pipes_k8s) needs an image",
                         hint="set the compute resource's training_image, or SYNTH_TRAINING_IMAGE, to an image "
                              "with this project installed")
    try:
        from dagster_k8s import PipesK8sClient
    except ImportError:
        raise SynthError("compute.training: pipes_k8s needs the dagster-k8s package",
                         hint="pip install dagster-k8s") from None
    return PipesK8sClient(), compute.training_image


def training_pod_spec(spec) -> dict[str, Any]:
    """The training pod's spec from the dataset's `kubernetes.gpu_step` (dagster-k8s/config's container_config
    and pod_spec_config): the GPU, its toleration, node selector, volumes, ..."""
    step = spec.kubernetes.gpu_step
    container = {"name": "training", **step.get("container_config", {})}
    return {**step.get("pod_spec_config", {}), "containers": [container]}


def under_pipes() -> bool:
    """Whether this process was started by a Pipes client (it passes its context in the environment)."""
    return "DAGSTER_PIPES_CONTEXT" in os.environ


def train_in_pipes_process() -> int:
    """The external side: train as the orchestrating asset asked, reporting epochs and the result over Pipes."""
    from dagster_pipes import open_dagster_pipes

    from synth_assets.config import Project, ProjectSpec, storage_root
    from synth_assets.project import parse_dataset
    from synth_assets.pipeline import DatasetPipeline

    with open_dagster_pipes() as pipes:
        job = pipes.extras
        name = job["dataset"]
        spec = parse_dataset(job["spec"], origin=f"dataset '{name}' (from the orchestrating run)")
        project = Project(ProjectSpec(datasets={name: spec}), Path(job["config_path"]),
                          *storage_root(job["home"], "the orchestrating run's storage root"))
        pipeline = DatasetPipeline(project, name)
        options = pipeline.backend.TrainOptions.model_validate(job["options"])

        result = pipeline.train(options, device=job["device"], version=job["version"], publish=False,
                                progress=lambda record: pipes.log.info(record.log_line()),
                                reset_if_incompatible=job["reset_if_incompatible"], warn=pipes.log.warning)
        pipes.log.info(f"trained {result.epochs} epochs on {result.device} in {result.seconds:.1f}s "
                       f"({result.stopped_because}) into model version {job['version']}")
        pipes.report_custom_message(result_to_message(result))
    return 0
