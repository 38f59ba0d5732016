"""`serve --workers 2` as a real process group: one port, two receivers, one analysis."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.cli_process import metric
from tests.support.ports import free_port, free_ports

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
WORKERS = 2
SERVICE = "workers-test"


def body(n: int, i: int) -> str:
    return f"payment {n}-{i} failed: card declined"


def wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def request(n: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    kv = resource_logs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", SERVICE
    scope = resource_logs.scope_logs.add()
    for i in range(20):
        record = scope.log_records.add()
        record.body.string_value = body(n, i)
        record.severity_number = 17  # ERROR: kept whatever the policy
    return request.SerializeToString()


def send_on_new_connection(port: int, payload: bytes) -> None:
    # A channel of its own (no shared subchannel), so each call is a new TCP connection
    # that the kernel may hand to either worker.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        export = channel.unary_unary(EXPORT)
        export(payload, timeout=10)


def worker_metric(port: int, name: str, **labels: str) -> float:
    return metric(f"127.0.0.1:{port}", name, **labels)


def accepted(port: int) -> float:
    return worker_metric(port, "lipservice_receiver_accepted_records_total", transport="grpc")


def test_two_workers_share_the_port_and_follow_one_analysis(sink, tmp_path):
    grpc_port, control_port, metrics_port = free_port(), free_port(), free_ports(WORKERS)
    policy = tmp_path / "policy.yaml"
    policy.write_text("default_rate: 0.5\n")
    command = [
        *(sys.executable, "-m", "lipservice_otel", "serve", "--workers", str(WORKERS)),
        *("--grpc-endpoint", f"127.0.0.1:{grpc_port}", "--http-endpoint", ""),
        *("--exporter", "otlp", "--otlp-endpoint", sink.endpoint, "--policy", str(policy)),
        *("--metrics-endpoint", f"127.0.0.1:{metrics_port}"),
        *("--set", f"control.listen=127.0.0.1:{control_port}", "--set", "analysis.interval_s=1"),
        *("--set", "sampler.report_interval_s=0.25", "--set", "exporter.otlp.compression=none"),
        *("--set", "exporter.queue.batch_timeout_s=0.05"),
    ]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_metrics = [metrics_port + index for index in range(WORKERS)]
    try:
        for port in worker_metrics:
            # Any answer will do: the worker serves /metrics once it is up.
            wait_until(
                lambda port=port: worker_metric(port, "lipservice_policy_version") is not None,
                30,
                f"worker metrics on {port}",
            )

        # Connections land on either worker: send until both have taken some.
        sent = 0
        while sent < 200 and not all(accepted(port) for port in worker_metrics):
            send_on_new_connection(grpc_port, request(sent))
            sent += 1
        assert all(accepted(port) for port in worker_metrics), "one worker took every connection"
        assert len(sink.wait_for_records(20 * sent)) == 20 * sent

        # One analysis for both: a pin on the parent's control plane reaches each worker.
        pinned = subprocess.run(
            [
                *(sys.executable, "-m", "lipservice_otel", "policy"),
                *("--control-plane", f"127.0.0.1:{control_port}"),
                *("pin", pattern_id(SERVICE, template_of_text(body(0, 0))), "0.25"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert pinned.returncode == 0, pinned.stderr
        version = int(pinned.stdout.split()[2].rstrip(":"))
        # At least the pin's version: a cycle that learns the pattern may follow it at once,
        # and every later version carries the pin too.
        wait_until(
            lambda: all(
                worker_metric(port, "lipservice_policy_version") >= version
                for port in worker_metrics
            ),
            30,
            f"policy version {version} on every worker",
        )
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(30)
    assert code == 0
    for port in worker_metrics:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "a worker outlived the parent"
