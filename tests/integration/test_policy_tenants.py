"""`lipservice-otel policy show` with tenants: a TENANT column and `--tenant`, through the real
command against a real `serve` (embedded analysis, tenant from a gRPC metadata key) fed two
tenants' records over OTLP/gRPC under one service name."""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lipservice_otel._proto.lipservice.v1 import control_pb2
from tests.support.cli_process import control_stub
from tests.support.ports import free_port
from tests.support.running_service import make_settings

TENANT_HEADER = "x-scope-orgid"
BODIES = {"payments": "card {} authorised", "search": "query {} answered from the index"}


def tenant_request(tenant: str) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="api"))
    )
    resource_logs.scope_logs.add().log_records.extend(
        LogRecord(severity_number=9, body=AnyValue(string_value=BODIES[tenant].format(n)))
        for n in range(40)
    )
    return request


@pytest.fixture
def control(start_service) -> str:
    """The control plane of a `serve` that has learned both tenants' patterns."""
    settings = make_settings(
        **{
            "analysis.tenant_key": f"header:{TENANT_HEADER}",
            "analysis.interval_s": 0.3,
            "sampler.report_interval_s": 0.1,
            "control.listen": f"127.0.0.1:{free_port()}",
        }
    )
    running = start_service(settings)
    endpoint = settings.control.listen
    channel, stub = control_stub(endpoint)
    deadline = time.monotonic() + 20
    with channel, grpc.insecure_channel(f"127.0.0.1:{running.service.receiver.port}") as otlp:
        logs = logs_service_pb2_grpc.LogsServiceStub(otlp)
        while True:
            for tenant in BODIES:
                logs.Export(tenant_request(tenant), metadata=((TENANT_HEADER, tenant),), timeout=5)
            patterns = stub.ListPatterns(control_pb2.ListPatternsRequest(), timeout=5).patterns
            if {p.tenant for p in patterns} == set(BODIES):
                return endpoint
            assert time.monotonic() < deadline, [(p.tenant, p.template) for p in patterns]
            time.sleep(0.2)


def policy(control: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lipservice_otel", "policy", "--control-plane", control]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)


def table(result: subprocess.CompletedProcess) -> tuple[list[str], list[list[str]]]:
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.strip().splitlines()
    return header.split(), [row.split() for row in rows]


def test_policy_show_has_a_tenant_column_and_filters_by_tenant(control):
    header, rows = table(policy(control, "show"))
    assert header[:6] == ["PATTERN", "TENANT", "SERVICE", "VOLUME/S", "RATE", "REASON"]
    assert {row[1] for row in rows} == set(BODIES)
    assert all(row[2] == "api" for row in rows)

    shown = policy(control, "show", "--tenant", "payments")
    header, only = table(shown)
    assert header[1] == "TENANT" and only
    assert {row[1] for row in only} == {"payments"}
    assert len(only) == sum(row[1] == "payments" for row in rows)
    assert "authorised" in shown.stdout and "answered" not in shown.stdout

    # A tenant nobody sent: no rows, and no tenant column (no pattern has a tenant).
    header, none = table(policy(control, "show", "--tenant", "nobody"))
    assert none == [] and "TENANT" not in header

    explained = policy(control, "explain", only[0][0])
    assert explained.returncode == 0, explained.stderr
    assert "(service api, tenant payments)" in explained.stdout
