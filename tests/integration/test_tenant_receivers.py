"""Tenants from a request header through a real `serve`: the OpenTelemetry SDK's gRPC and
HTTP exporters send the same service and template for several tenants (gRPC metadata, an
HTTP header); what the sink receives carries one pattern id per tenant and /metrics counts
each tenant's kept and dropped records; a tenant past `analysis.max_tenants` counts as
`other`. With `receiver.auth.tenant_tokens`, a sender holding a tenant's token is that tenant
whatever header it sends."""

from __future__ import annotations

from contextlib import contextmanager

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
from tests.support.log_requests import request_with_bodies
from tests.support.otlp_http import post
from tests.support.otlp_sink import OtlpSink
from tests.support.received import attributes_of

SERVICE = "checkout"
BODY = "payment {n} declined by the card issuer"
# Per tenant: INFO records (all dropped by the policy below) and one ERROR (kept).
INFO_RECORDS = 3
TENANT_METRIC = "lipservice_receiver_tenant_records_total"
SHARED_TOKEN = "shared-token-for-every-team"
TEAM_TOKEN = "token-of-the-payments-team"


@contextmanager
def tenant_serve(directory, **sections):
    sink = OtlpSink()
    sink.server.start()
    config = serve_config(
        sink.endpoint,
        # Written as people write header names; matched whatever their case.
        analysis={"embedded": False, "tenant_key": "header:X-Scope-OrgID", "max_tenants": 3},
        policy={"document": {"default_rate": 0.0, "severity_floor": "error"}},
        **sections,
    )
    process = start_serve(directory, config)
    try:
        yield process, config, sink
    finally:
        stop_gracefully(process)
        sink.server.stop(0)


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    with tenant_serve(tmp_path_factory.mktemp("tenants")) as running:
        yield running


@pytest.fixture(scope="module")
def serve_with_tokens(tmp_path_factory):
    auth = {"bearer_token": SHARED_TOKEN, "tenant_tokens": {"payments": TEAM_TOKEN}}
    with tenant_serve(tmp_path_factory.mktemp("tokens"), receiver={"auth": auth}) as running:
        yield running


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


def test_a_tenant_header_that_is_not_utf8_is_refused(serve):
    _, config, _ = serve
    http_url = f"http://{config['receiver']['http']['endpoint']}/v1/logs"
    metrics = config["telemetry"]["metrics_endpoint"]
    accepted = metric(metrics, "lipservice_receiver_accepted_records_total")
    payload = request_with_bodies("from a broken client").SerializeToString()
    # urllib sends the header value as Latin-1: the byte 0xff, which no UTF-8 text holds.
    status, _, body = post(http_url, payload, **{"X-Scope-OrgID": "team-\xff"})
    assert status == 400
    assert b"x-scope-orgid header: the tenant is not UTF-8 text" in body
    # Nothing of it was sampled, and /metrics (whose labels are UTF-8) still answers.
    assert metric(metrics, "lipservice_receiver_accepted_records_total") == accepted


def test_a_tenant_token_wins_over_the_header(serve_with_tokens):
    _, config, sink = serve_with_tokens
    grpc_endpoint = config["receiver"]["grpc"]["endpoint"]
    http_url = f"http://{config['receiver']['http']['endpoint']}/v1/logs"
    # The payments team's token, claiming to be another team: counted as payments.
    claim = {"authorization": f"Bearer {TEAM_TOKEN}", "x-scope-orgid": "team-a"}
    send(GrpcExporter(endpoint=grpc_endpoint, insecure=True, headers=claim))
    # The shared token: the header names the tenant.
    shared = {"Authorization": f"Bearer {SHARED_TOKEN}", "X-Scope-OrgID": "team-a"}
    send(HttpExporter(endpoint=http_url, headers=shared))
    received = sink.wait_for_records(2)
    template = template_of_text(BODY.format(n=1))
    assert sorted(attributes_of(record)[ATTR_PATTERN_ID] for _, record in received) == sorted(
        pattern_id(SERVICE, template, tenant) for tenant in ("payments", "team-a")
    )
    metrics = config["telemetry"]["metrics_endpoint"]
    assert metric(metrics, TENANT_METRIC, tenant="payments") == INFO_RECORDS + 1
    assert metric(metrics, TENANT_METRIC, tenant="team-a") == INFO_RECORDS + 1
    # Neither token: refused before anything is counted.
    payload = request_with_bodies("no token").SerializeToString()
    status, _, _ = post(http_url, payload, **{"X-Scope-OrgID": "payments"})
    assert status == 401
    assert metric(metrics, TENANT_METRIC, tenant="payments") == INFO_RECORDS + 1
