"""Tenants from a request header through a real `serve`: the OpenTelemetry SDK's gRPC and
HTTP exporters send the same service and template for several tenants (gRPC metadata, an
HTTP header); what the sink receives carries one pattern id per tenant and /metrics counts
each tenant's kept and dropped records; a tenant past `analysis.max_tenants` counts as
`other`."""

from __future__ import annotations

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from lipservice_otel.sampling.annotation import ATTR_PATTERN_ID
from lipservice_otel.sampling.tenant import DEFAULT_TENANT, OTHER_TENANT
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.cli_process import metric, serve_config, start_serve, stop_gracefully
from tests.support.otlp_sink import OtlpSink
from tests.support.received import attributes_of

SERVICE = "checkout"
BODY = "payment {n} declined by the card issuer"
# Per tenant: INFO records (all dropped by the policy below) and one ERROR (kept).
INFO_RECORDS = 3
TENANT_METRIC = "lipservice_receiver_tenant_records_total"


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    sink = OtlpSink()
    sink.server.start()
    config = serve_config(
        sink.endpoint,
        # Written as people write header names; matched whatever their case.
        analysis={"embedded": False, "tenant_key": "header:X-Scope-OrgID", "max_tenants": 3},
        policy={"document": {"default_rate": 0.0, "severity_floor": "error"}},
    )
    process = start_serve(tmp_path_factory.mktemp("tenants"), config)
    yield process, config, sink
    stop_gracefully(process)
    sink.server.stop(0)


def send(exporter) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests")
    for n in range(INFO_RECORDS):
        logger.emit(body=BODY.format(n=n), severity_number=SeverityNumber.INFO)
    logger.emit(body=BODY.format(n=99), severity_number=SeverityNumber.ERROR)
    provider.shutdown()


def test_header_tenants_get_their_own_pattern_ids_and_counts(serve):
    process, config, sink = serve
    grpc_endpoint = config["receiver"]["grpc"]["endpoint"]
    http_url = f"http://{config['receiver']['http']['endpoint']}/v1/logs"
    send(GrpcExporter(endpoint=grpc_endpoint, insecure=True, headers={"x-scope-orgid": "team-a"}))
    send(GrpcExporter(endpoint=grpc_endpoint, insecure=True, headers={"x-scope-orgid": "team-b"}))
    send(HttpExporter(endpoint=http_url, headers={"X-Scope-OrgID": "team-c"}))
    send(HttpExporter(endpoint=http_url))  # no tenant header: the default tenant
    send(HttpExporter(endpoint=http_url, headers={"X-Scope-OrgID": "team-d"}))  # past the cap
    received = sink.wait_for_records(5)
    assert len(received) == 5
    template = template_of_text(BODY.format(n=1))
    tenants = ["team-a", "team-b", "team-c", DEFAULT_TENANT, OTHER_TENANT]
    assert sorted(attributes_of(record)[ATTR_PATTERN_ID] for _, record in received) == sorted(
        pattern_id(SERVICE, template, tenant) for tenant in tenants
    )
    metrics = config["telemetry"]["metrics_endpoint"]
    for tenant in tenants:
        assert metric(metrics, TENANT_METRIC, tenant=tenant, decision="kept") == 1, tenant
        assert metric(metrics, TENANT_METRIC, tenant=tenant, decision="dropped") == INFO_RECORDS
    assert metric(metrics, "lipservice_sampler_tenant_overflow_records_total") == INFO_RECORDS + 1
    assert metric(metrics, TENANT_METRIC, tenant="team-d") == 0
    assert process.count("Traceback") == 0
