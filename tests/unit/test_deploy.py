"""The deployment files agree with the code and the contract: the compose stack as Debian's
docker-compose resolves it, and the Kubernetes manifests against the Kubernetes API schemas
(kubernetes-validate, offline) and KEDA's ScaledObject fields."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.core.config import Settings
from services.core.topology import Topology

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30"
SETTINGS = {f"THUMBWIRE_{f.name.upper()}" for f in dataclasses.fields(Settings)}
# CONTRACT.md's processes and their default ports.
CONTRACT_PORTS = {"upload": {50051}, "notifier": {50052, 8080}, "thumbnailer": {9102}}
THUMBWIRE_SERVICES = ("setup", "upload", "thumbnailer", "notifier")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors, merges, variables)."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: `make test` installs Debian's docker-compose"
    env = {**os.environ, "THUMBWIRE_AUTH_SECRET": "x" * 48}
    result = subprocess.run(
        [tool, "-f", str(DEPLOY / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_runs_the_stack_the_contract_describes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "rabbitmq", "minio", *THUMBWIRE_SERVICES}
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["thumbnailer"]["deploy"]["replicas"] == 2
    assert services["setup"]["command"] == ["python", "-m", "services.setup"]
    for name in ("upload", "thumbnailer", "notifier"):
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert services[name]["depends_on"]["setup"]["condition"] == (
            "service_completed_successfully"
        )


def test_the_thumbnailers_yield_contended_cpu_to_the_other_containers(
    compose: dict[str, Any],
) -> None:
    """Between containers only cgroup weights count (not THUMBWIRE_RENDER_PRIORITY): the
    thumbnailer's is below Docker's default (1024 shares), and no other container's is."""
    services = compose["services"]
    assert 2 <= int(services["thumbnailer"]["cpu_shares"]) < 1024
    assert all("cpu_shares" not in s for name, s in services.items() if name != "thumbnailer")


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        if name == "setup":
            assert service["restart"] == "no"  # a one-shot job
            continue
        assert service.get("healthcheck", {}).get("test"), name
        assert service["restart"] == "unless-stopped", name


def test_compose_ports_and_variables_agree_with_the_contract(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in THUMBWIRE_SERVICES:
        variables = set(services[name]["environment"])
        assert variables <= SETTINGS, variables - SETTINGS  # no name the code does not read
        assert "THUMBWIRE_AUTH_SECRET" in variables
    for name in ("upload", "notifier"):
        published = {int(p["target"]) for p in services[name].get("ports", [])}
        assert published == CONTRACT_PORTS[name], name


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def test_kubernetes_manifests_are_valid_against_the_api_schemas(
    manifests: list[dict[str, Any]],
) -> None:
    core = [m for m in manifests if not m["apiVersion"].startswith(("keda.sh", "kustomize"))]
    assert {m["kind"] for m in core} == {"ConfigMap", "Job", "Deployment", "Service"}
    for manifest in core:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_pods_read_only_settings_the_code_knows(manifests: list[dict[str, Any]]) -> None:
    [config] = by_kind(manifests, "ConfigMap").values()
    assert set(config["data"]) <= SETTINGS
    for deployment in by_kind(manifests, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert {e["name"] for e in container.get("env", [])} <= SETTINGS
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"thumbwire-config", "thumbwire-secrets"}


SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "rabbitmq"},
                            "metadata": {
                                "type": "object",
                                "required": ["queueName", "mode", "value"],
                                "properties": {
                                    "mode": {"enum": ["QueueLength", "MessageRate"]},
                                    "value": {"type": "string", "pattern": "^[0-9.]+$"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_keda_scales_the_thumbnailers_on_the_jobs_queue(manifests: list[dict[str, Any]]) -> None:
    [scaled] = by_kind(manifests, "ScaledObject").values()
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    deployments = by_kind(manifests, "Deployment")
    target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
    assert target["spec"]["template"]["spec"]["containers"][0]["command"][-1] == (
        "services.thumbnailer"
    )
    [config] = by_kind(manifests, "ConfigMap").values()
    [trigger] = scaled["spec"]["triggers"]
    namespace = config["data"]["THUMBWIRE_NAMESPACE"]
    assert trigger["metadata"]["queueName"] == Topology(namespace).jobs_queue
    auth = by_kind(manifests, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "thumbwire-secrets", "key": "THUMBWIRE_AMQP_URL"}
    ]
