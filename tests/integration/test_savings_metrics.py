"""The savings gauges on /metrics against `lipservice-otel report --json`, both from one real
`serve` (embedded analysis, shadow mode, a price, a tenant key) fed two tenants over OTLP/gRPC,
one ten times louder than the other.

Both are the same computation (one per analysis cycle and policy version), so they agree to
the last bit, not to a tolerance: /metrics is read before and after the report command, and
the figures are compared once no cycle ran in between (the two reads are equal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli_process import serve_config, start_serve, stop_gracefully
from tests.support.otlp_sink import OtlpSink
from tests.support.ports import free_port

MODULE = [sys.executable, "-m", "lipservice_otel"]
TENANT_HEADER = "x-scope-orgid"
PER_TICK = {"loud": 20, "quiet": 2}  # records every TICK_S: ten times louder
TICK_S = 0.1
CYCLE_S = 2.0  # long enough that a report command often runs between two cycles
PRICE_PER_GIB = 0.25
# The report's figure behind each gauge of a tenant.
GAUGES = {
    "lipservice_analysis_received_records_per_second": "records_per_second",
    "lipservice_analysis_kept_records_per_second": "kept_records_per_second",
    "lipservice_analysis_saved_records_per_second": "saved_records_per_second",
    "lipservice_analysis_received_bytes_per_second": "bytes_per_second",
    "lipservice_analysis_kept_bytes_per_second": "kept_bytes_per_second",
    "lipservice_analysis_saved_bytes_per_second": "saved_bytes_per_second",
    "lipservice_analysis_saved_money_per_month": "saved_money_per_month",
}


def tick_request(tenant: str, count: int) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="checkout"))
    )
    resource_logs.scope_logs.add().log_records.extend(
        LogRecord(severity_number=9, body=AnyValue(string_value=f"cart {n} priced for {tenant}"))
        for n in range(count)
    )
    return request


def savings_samples(metrics_endpoint: str) -> dict[tuple[str, str, str], tuple[float, dict]]:
    """(name, tenant, basis) -> (value, labels) of every savings gauge on /metrics."""
    with urllib.request.urlopen(f"http://{metrics_endpoint}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, sample.labels["tenant"], sample.labels["basis"]): (
            sample.value,
            sample.labels,
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in GAUGES
    }


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    directory = tmp_path_factory.mktemp("savings-metrics")
    sink = OtlpSink()
    sink.server.start()
    control = f"127.0.0.1:{free_port()}"
    config = serve_config(
        sink.endpoint,
        analysis={
            "embedded": True,
            "interval_s": CYCLE_S,
            "tenant_key": f"header:{TENANT_HEADER}",
        },
        sampler={"report_interval_s": 0.1},
        control={"listen": control},
        policy={"document": {"mode": "shadow"}},
        report={"price_per_gib": PRICE_PER_GIB, "currency": "EUR"},
        ui={"endpoint": ""},
    )
    process = start_serve(directory, config)
    stop = threading.Event()
    failures: list[str] = []

    def stream() -> None:
        with grpc.insecure_channel(config["receiver"]["grpc"]["endpoint"]) as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            while not stop.wait(TICK_S):
                for tenant, count in PER_TICK.items():
                    try:
                        stub.Export(
                            tick_request(tenant, count),
                            metadata=((TENANT_HEADER, tenant),),
                            timeout=5,
                        )
                    except grpc.RpcError as error:
                        failures.append(f"{error.code().name}: {error.details()}")

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    try:
        yield control, config["telemetry"]["metrics_endpoint"]
    finally:
        stop.set()
        sender.join(10)
        stop_gracefully(process)
        sink.server.stop(0)
    assert not failures, failures[:3]


def settled_report(control: str, metrics_endpoint: str) -> tuple[dict, dict]:
    """The report and the gauges of one computation: /metrics read before and after the
    report command, until both reads are equal (no cycle ran in between)."""
    deadline = time.monotonic() + 60
    while True:
        before = savings_samples(metrics_endpoint)
        done = subprocess.run(
            [*MODULE, "report", "--control-plane", control, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        after = savings_samples(metrics_endpoint)
        tenants = {t["tenant"] for t in json.loads(done.stdout)["tenants"]}
        if before == after and {key[1] for key in after} == tenants == set(PER_TICK):
            return json.loads(done.stdout), after
        assert time.monotonic() < deadline, "a cycle ran during every report"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def settled(serving) -> tuple[dict, dict]:
    return settled_report(*serving)


def test_the_gauges_are_the_reports_figures(settled):
    report, samples = settled
    assert report["basis"] == "projection" and report["currency"] == "EUR"
    expected = {}
    for tenant in report["tenants"]:
        for name, field in GAUGES.items():
            expected[(name, tenant["tenant"], report["basis"])] = tenant[field]
    assert {key: value for key, (value, _) in samples.items()} == expected
    for (name, _, _), (_, labels) in samples.items():
        if name == "lipservice_analysis_saved_money_per_month":
            assert labels["currency"] == "EUR"
    # Summed over tenants, the gauges are the report's totals.
    for name, field in GAUGES.items():
        summed = sum(value for (n, _, _), (value, _) in samples.items() if n == name)
        assert summed == pytest.approx(report["totals"][field], rel=1e-12), name


def test_the_louder_tenant_sends_ten_times_the_records(settled):
    report, _ = settled
    by_tenant = {t["tenant"]: t for t in report["tenants"]}
    ratio = by_tenant["loud"]["records_per_second"] / by_tenant["quiet"]["records_per_second"]
    # Baselines of the same cycles: their ratio is the stream's, but for a tick at the edges.
    assert ratio == pytest.approx(10, rel=0.15)
