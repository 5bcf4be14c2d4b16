"""Under Dagster's k8s_job_executor each step runs as its own pod: training and generation ask for a GPU node,
the other stages for CPU pods. Rendered here with dagster-k8s's own job builder, as the executor would."""

import json

import dagster as dg
import pytest
import yaml

from synth_assets.definitions import build_definitions
from synth_assets.errors import ConfigError, SynthError
from synth_assets.kubernetes import K8S_CONFIG_TAG
from synth_assets.testing import write_project

k8s = pytest.importorskip("dagster_k8s.job", reason="dagster-k8s is a test dependency (pip install -e '.[test]')")


def step_pod(defs: dg.Definitions, dataset: str, stage: str, op: str | None = None):
    """The pod spec k8s_job_executor builds for one step: the step's tags merged into the job config. `op`
    names the step of a stage that runs as several (synthetic: plan_generation, generate_part, join_parts)."""
    node = defs.resolve_assets_def(dg.AssetKey([dataset, stage])).node_def
    if op is not None:
        node = node.node_named(f"{dataset}__{op}").definition
    tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in node.tags.items()}
    job = k8s.construct_dagster_k8s_job(
        job_config=k8s.DagsterK8sJobConfig(job_image="registry.example.com/synth-assets:0.1.0",
                                           dagster_home="/opt/dagster/dagster_home",
                                           instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"], job_name=f"dagster-step-{dataset}-{stage}",
        user_defined_k8s_config=k8s.get_user_defined_k8s_config(tags))
    return job.spec.template.spec


def test_training_and_generation_pods_ask_for_a_gpu_the_rest_for_cpu(small_project):
    defs = build_definitions(small_project)
    for stage, op in (("model", None), ("synthetic", "generate_part")):
        pod = step_pod(defs, "gems", stage, op)
        assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}  # quantities are strings
        assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    # planning the parts and joining them need no GPU
    for stage, op in (("split", None), ("stats", None), ("encoded", None), ("synthetic", "plan_generation"),
                      ("synthetic", "join_parts"), ("quality", None)):
        pod = step_pod(defs, "gems", stage, op)
        assert pod.containers[0].resources is None or not (pod.containers[0].resources.limits or {})
        assert not pod.tolerations


def test_pod_settings_come_from_the_project_file(small_project):
    text = (small_project / "synth.yaml").read_text() + """
    kubernetes:
      gpu_stages: [model]
      gpu_step:
        container_config: {resources: {limits: {nvidia.com/gpu: 2, memory: 40Gi}}}
        pod_spec_config: {node_selector: {cloud.google.com/gke-accelerator: nvidia-l4}}
      cpu_step:
        container_config: {resources: {requests: {cpu: "2", memory: 8Gi}}}
"""
    (small_project / "synth.yaml").write_text(text)
    defs = build_definitions(small_project)
    model = step_pod(defs, "gems", "model")
    assert model.containers[0].resources.limits == {"nvidia.com/gpu": "2", "memory": "40Gi"}
    assert model.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    synthetic = step_pod(defs, "gems", "synthetic", "generate_part")  # not a GPU stage here: a CPU pod
    assert synthetic.containers[0].resources.requests == {"cpu": "2", "memory": "8Gi"}
    assert synthetic.node_selector is None


def test_a_backend_without_cuda_gets_no_gpu_pod(tmp_path, toy_plugin, monkeypatch):
    monkeypatch.delenv("SYNTH_CONFIG", raising=False)
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n3,x\n")
    write_project(tmp_path, """
        datasets:
          toy:
            backend: marginals
            tables:
              t: {source: t.csv}
        """)
    defs = build_definitions(tmp_path)
    assert K8S_CONFIG_TAG not in defs.resolve_assets_def(dg.AssetKey(["toy", "model"])).op.tags


def test_the_executor_follows_synth_executor(small_project, monkeypatch):
    monkeypatch.setenv("SYNTH_EXECUTOR", "k8s")
    from dagster_k8s import k8s_job_executor

    assert build_definitions(small_project).executor is k8s_job_executor
    monkeypatch.setenv("SYNTH_EXECUTOR", "celery")
    with pytest.raises(ConfigError, match="SYNTH_EXECUTOR='celery'"):
        build_definitions(small_project)


@pytest.mark.parametrize("shipped", ["deploy/dagster.yaml", "deploy/k8s/dagster.yaml"])
def test_the_shipped_instance_configs_are_valid(shipped, tmp_path, monkeypatch):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    from conftest import REPO

    for variable in ("DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(variable, "x")
    (tmp_path / "dagster.yaml").write_bytes((REPO / shipped).read_bytes())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema: raises on a bad key
    assert config["concurrency"]["pools"]["default_limit"] == 1  # the gpu pool: one step at a time
    launcher = yaml.safe_load((REPO / shipped).read_text()).get("run_launcher")
    if launcher is not None:
        checked = validate_config(K8sRunLauncher.config_type(), launcher["config"])
        assert checked.success, checked.errors
        assert "SYNTH_EXECUTOR=k8s" in launcher["config"]["env_vars"]


def test_a_training_pod_through_pipes_asks_for_the_gpu(small_project):
    """compute.training: pipes_k8s runs `python -m synth_assets train` in a pod: the pod PipesK8sClient builds."""
    from dagster_k8s.pipes import build_pod_body

    from synth_assets.project import load_project
    from synth_assets.pipes import k8s_client, train_command, training_pod_spec
    from synth_assets.resources import ComputeDevice

    spec = load_project(small_project).dataset("gems")
    pod = build_pod_body("synth-train-gems", "registry.example.com/synth-assets:0.1.0",
                         train_command("gems", python="python"), {"PYTHONUNBUFFERED": "1"},
                         base_pod_meta=None, base_pod_spec=training_pod_spec(spec))
    container = pod.spec.containers[0]
    assert container.command == ["python", "-m", "synth_assets", "train", "gems"]
    assert container.image == "registry.example.com/synth-assets:0.1.0"
    assert {k: str(v) for k, v in container.resources.limits.items()} == {"nvidia.com/gpu": "1"}
    assert [t.key for t in pod.spec.tolerations] == ["nvidia.com/gpu"]
    assert pod.spec.restart_policy == "Never"
    with pytest.raises(SynthError, match="needs an image"):
        k8s_client(ComputeDevice(training="pipes_k8s", training_image=None))
