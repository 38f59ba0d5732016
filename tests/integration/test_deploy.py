"""deploy/: the image recipe linted by hadolint, Kubernetes manifests built by kustomize and
validated against the Kubernetes schemas offline, the Compose demo's hops, the health probe.

No container engine runs here: the image itself is not built.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from lipservice_otel.app.healthcheck import main as healthcheck
from lipservice_otel.control.config import DEFAULT_CONTROL_LISTEN
from lipservice_otel.control.security import check_exposure, control_tokens, is_loopback
from lipservice_otel.receiver.config import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT
from lipservice_otel.settings import load_settings
from lipservice_otel.telemetry import DEFAULT_METRICS_ENDPOINT
from tests.support.ports import free_port
from tests.support.running_service import make_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
OVERLAYS = ["base", "overlays/central-analysis", "overlays/redis"]
SCRIPTS = Path(sysconfig.get_path("scripts"))
KUBERNETES_VERSION = "1.33.0"  # native sidecars (restartPolicy: Always) are GA from 1.33


def port_of(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


DEFAULT_PORTS = {
    port_of(DEFAULT_GRPC_ENDPOINT),
    port_of(DEFAULT_HTTP_ENDPOINT),
    port_of(DEFAULT_CONTROL_LISTEN),
    port_of(DEFAULT_METRICS_ENDPOINT),
}


# --- image -----------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [str(SCRIPTS / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_is_pinned_slim_unprivileged_and_health_checked():
    text = DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), "base image pinned to a patch"
    assert re.search(r"^USER 10001$", text, re.M)
    assert "HEALTHCHECK" in text and "lipservice_otel.app.healthcheck" in text
    (exposed,) = re.findall(r"^EXPOSE (.+)$", text, re.M)
    assert {int(port) for port in exposed.split()} == DEFAULT_PORTS
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "lipservice_otel/_proto/" in ignore, "generated stubs are rebuilt, not copied"


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_pinned_for_the_image():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[requirement_name(name)] = version
    for requirement in project["dependencies"]:
        assert requirement_name(requirement) in pins, f"{requirement} is not in constraints.txt"
    for line in (DEPLOY / "build-requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"build-requirements.txt: {line!r} is not pinned"


def test_health_probe_follows_the_receiver(start_service, sink):
    running = start_service(make_settings(sink.endpoint))
    assert healthcheck([running.endpoint]) == 0
    running.stop()
    assert healthcheck([running.endpoint]) == 1
    assert healthcheck([f"127.0.0.1:{free_port()}"]) == 1


# --- Kubernetes ------------------------------------------------------------------------------


def kustomize(overlay: str) -> list[dict]:
    done = subprocess.run(
        [str(SCRIPTS / "kubectl"), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(resources: list[dict], kind: str, name: str) -> dict:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_output_is_valid_kubernetes(overlay):
    resources = kustomize(overlay)
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_every_plain_manifest_is_valid_kubernetes():
    files = [p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert files
    for path in files:
        for resource in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def container(pod_spec: dict, name: str) -> dict:
    every = pod_spec.get("initContainers", []) + pod_spec["containers"]
    (found,) = [c for c in every if c["name"] == name]
    return found


def configured(resources: list[dict], configmap: str, key: str, env: dict, tmp_path: Path):
    """The settings a container gets: its ConfigMap's file, then its LIPSERVICE_ variables."""
    path = tmp_path / key
    path.write_text(find(resources, "ConfigMap", configmap)["data"][key])
    return load_settings(str(path), environ=env)


def env_of(spec: dict) -> dict[str, str]:
    """LIPSERVICE_ variables: literals with $(VAR) references left as written, and those read
    from a Secret as a placeholder naming it (long enough to pass for a token)."""
    found = {}
    for e in spec.get("env", []):
        if not e["name"].startswith("LIPSERVICE_"):
            continue
        if "value" in e:
            found[e["name"]] = e["value"]
        else:
            secret = e["valueFrom"]["secretKeyRef"]
            found[e["name"]] = f"<secret {secret['name']}/{secret['key']}>"
    return found


def test_sidecar_shares_localhost_and_is_probed_limited_and_configured(tmp_path):
    resources = kustomize("base")
    pod = find(resources, "Deployment", "checkout")["spec"]["template"]["spec"]
    sidecar = container(pod, "lipservice")
    app = container(pod, "app")
    assert sidecar["restartPolicy"] == "Always", "a native sidecar: up before the app, down after"
    app_env = {e["name"]: e["value"] for e in app["env"]}
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"
    assert app["args"][app["args"].index("--otlp-endpoint") + 1] == "localhost:4317"

    settings = configured(resources, "lipservice-config", "config.yaml", env_of(sidecar), tmp_path)
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["otlp-grpc"] == port_of(settings.receiver.grpc.endpoint) == 4317
    assert ports["otlp-http"] == port_of(settings.receiver.http.endpoint) == 4318
    assert ports["metrics"] == port_of(settings.telemetry.metrics_endpoint)
    assert sidecar["readinessProbe"]["grpc"]["port"] == ports["otlp-grpc"]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert {"cpu", "memory"} <= sidecar["resources"]["limits"].keys()
    assert {"cpu", "memory"} <= app["resources"]["limits"].keys()

    (config_volume,) = pod["volumes"]
    assert config_volume["configMap"]["name"] == "lipservice-config"
    assert sidecar["args"][:3] == ["serve", "--config", "/etc/lipservice/config.yaml"]
    (token,) = sidecar["env"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "lipservice-backend"
    find(resources, "Secret", "lipservice-backend")
    assert f"$({token['name']})" in sidecar["args"][-1], "the token reaches the export headers"


def test_sidecars_follow_the_central_analyze_service(tmp_path):
    resources = kustomize("overlays/central-analysis")
    sidecar = container(
        find(resources, "Deployment", "checkout")["spec"]["template"]["spec"], "lipservice"
    )
    target = sidecar["args"][sidecar["args"].index("--control-plane") + 1]
    host, _, port = target.rpartition(":")
    service = find(resources, "Service", host)
    (service_port,) = service["spec"]["ports"]
    analyze_pod = find(resources, "Deployment", "lipservice-analyze")["spec"]["template"]["spec"]
    analyze = container(analyze_pod, "analyze")
    assert analyze["args"][0] == "analyze"
    settings = configured(
        resources, "lipservice-analyze-config", "analyze.yaml", env_of(analyze), tmp_path
    )
    (container_port,) = analyze["ports"]
    assert int(port) == service_port["port"] == port_of(DEFAULT_CONTROL_LISTEN)
    assert service_port["targetPort"] == container_port["name"]
    assert container_port["containerPort"] == port_of(settings.control.listen)
    assert service["spec"]["selector"].items() <= analyze_pod_labels(resources).items()
    assert settings.store.type == "memory"


def test_the_control_plane_takes_its_tokens_from_a_secret_and_admits_only_receivers(tmp_path):
    for overlay in ("overlays/central-analysis", "overlays/redis"):
        resources = kustomize(overlay)
        analyze = container(
            find(resources, "Deployment", "lipservice-analyze")["spec"]["template"]["spec"],
            "analyze",
        )
        checkout = find(resources, "Deployment", "checkout")["spec"]["template"]
        sidecar = container(checkout["spec"], "lipservice")
        secret = find(resources, "Secret", "lipservice-control")
        served = env_of(analyze)
        assert served["LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN"] == (
            "<secret lipservice-control/bearer-token>"
        )
        assert served["LIPSERVICE_CONTROL__AUTH__ADMIN_TOKEN"] == (
            "<secret lipservice-control/admin-token>"
        )
        assert {"bearer-token", "admin-token"} <= secret["stringData"].keys()
        followed = env_of(sidecar)
        bearer = "LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN"
        assert followed[bearer] == served[bearer], "the sidecars send the bearer token"
        assert "LIPSERVICE_CONTROL__AUTH__ADMIN_TOKEN" not in followed, "no sidecar steers"
        settings = configured(
            resources, "lipservice-analyze-config", "analyze.yaml", served, tmp_path
        )
        assert not is_loopback(settings.control.listen)
        check_exposure(settings.control, control_tokens(settings.control))  # starts

        policy = find(resources, "NetworkPolicy", "lipservice-analyze-control")["spec"]
        assert policy["podSelector"]["matchLabels"].items() <= analyze_pod_labels(resources).items()
        assert policy["policyTypes"] == ["Ingress"]
        (rule,) = policy["ingress"]
        (source,) = rule["from"]
        assert (
            source["podSelector"]["matchLabels"].items() <= checkout["metadata"]["labels"].items()
        ), "the sidecars' pods are admitted"
        assert (
            source["podSelector"]["matchLabels"].items() - analyze_pod_labels(resources).items()
        ), "and not every pod of the part-of label"
        assert rule["ports"] == [{"protocol": "TCP", "port": port_of(settings.control.listen)}]


def analyze_pod_labels(resources: list[dict]) -> dict:
    deployment = find(resources, "Deployment", "lipservice-analyze")
    return deployment["spec"]["template"]["metadata"]["labels"]


def test_redis_overlay_wires_the_store_to_the_redis_service(tmp_path):
    resources = kustomize("overlays/redis")
    deployment = find(resources, "Deployment", "lipservice-analyze")
    assert deployment["spec"]["replicas"] == 2, "a standby takes over the writer lock"
    analyze = container(deployment["spec"]["template"]["spec"], "analyze")
    settings = configured(
        resources, "lipservice-analyze-config", "analyze.yaml", env_of(analyze), tmp_path
    )
    assert settings.store.type == "redis"
    match = re.fullmatch(r"redis://:\$\((\w+)\)@([\w-]+):(\d+)/0", settings.store.redis.url)
    assert match, settings.store.redis.url
    password_var, host, port = match.groups()
    (service_port,) = find(resources, "Service", host)["spec"]["ports"]
    assert int(port) == service_port["port"]
    password = [e for e in analyze["env"] if e["name"] == password_var]
    assert password and password[0]["valueFrom"]["secretKeyRef"]["name"] == "lipservice-redis"
    # Kubernetes expands $(VAR) only for variables defined earlier in the list.
    names = [e["name"] for e in analyze["env"]]
    assert names.index(password_var) < names.index("LIPSERVICE_STORE__REDIS__URL")
    guard = find(resources, "NetworkPolicy", "lipservice-redis")["spec"]
    (rule,) = guard["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= analyze_pod_labels(resources).items()
    assert rule["ports"] == [{"protocol": "TCP", "port": service_port["port"]}]


# --- Compose demo ----------------------------------------------------------------------------


def test_compose_demo_chains_app_lipservice_collector():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    lipservice, app, collector = services["lipservice"], services["app"], services["collector"]
    assert (REPO / lipservice["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert app["image"] == lipservice["image"] and app["entrypoint"] == ["otel-gen"]
    assert app["depends_on"]["lipservice"]["condition"] == "service_healthy"

    target = app["command"][app["command"].index("--otlp-endpoint") + 1]
    assert target == f"lipservice:{port_of(DEFAULT_GRPC_ENDPOINT)}"

    mounts = dict(volume.split(":")[:2] for volume in lipservice["volumes"])
    config_path = lipservice["command"][lipservice["command"].index("--config") + 1]
    local = {inside: outside for outside, inside in mounts.items()}[config_path]
    settings = load_settings(str(DEPLOY / local), environ={})
    host, _, port = settings.exporter.otlp.endpoint.rpartition(":")
    assert host == "collector"

    (collector_mount,) = collector["volumes"]
    collector_config = yaml.safe_load((DEPLOY / collector_mount.split(":")[0]).read_text())
    grpc_endpoint = collector_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert port_of(grpc_endpoint) == int(port)
