"""TLS, mutual TLS and bearer tokens on both receivers, with certificates made in the test.

Clients are the real OpenTelemetry SDK exporters (gRPC and HTTP) configured as an app would
configure them, and our own OTLP/HTTP exporter chained into a second instance.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult

from lipservice_otel.receiver.security import bearer_matches
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError
from tests.support.certificates import Pki, make_pki
from tests.support.numbered import SdkSender, numbered_request, seq_of
from tests.support.running_service import make_settings

TOKEN = "s3cret-token-of-32-characters-xx"


@pytest.fixture(autouse=True)
def sdk_trusts_only_its_certificate_file(monkeypatch):
    # requests lets these variables override the CA file a session was given.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_name="client")


def tls_settings(sink_endpoint: str, pki: Pki, mutual: bool = False, **overrides):
    return make_settings(
        sink_endpoint,
        **{
            "receiver.tls.cert_file": str(pki.server.cert),
            "receiver.tls.key_file": str(pki.server.key),
            **({"receiver.tls.client_ca_file": str(pki.ca)} if mutual else {}),
            "analysis.embedded": False,
            **overrides,
        },
    )


def https_url(running) -> str:
    return running.http_url.replace("http://", "https://")


def export_once(exporter, count: int = 5) -> LogRecordExportResult:
    sender = SdkSender(exporter, batch_size=count)
    return exporter.export([sender._record(seq) for seq in range(count)])


def test_tls_on_both_receivers_with_the_sdk_exporters(sink, start_service, pki):
    running = start_service(tls_settings(sink.endpoint, pki))
    http = HttpExporter(endpoint=https_url(running), certificate_file=str(pki.ca), timeout=5)
    assert export_once(http) == LogRecordExportResult.SUCCESS
    root = pki.ca.read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    grpc_exporter = GrpcExporter(endpoint=running.endpoint, credentials=credentials, timeout=5)
    assert export_once(grpc_exporter) == LogRecordExportResult.SUCCESS
    assert len(sink.wait_for_records(10)) == 10
    http.shutdown()
    grpc_exporter.shutdown()


def test_plaintext_and_untrusted_clients_are_turned_away(sink, start_service, pki):
    running = start_service(tls_settings(sink.endpoint, pki))
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(running.http_url, data=b"", timeout=5)  # plain HTTP to TLS
    untrusted = ssl.create_default_context(cafile=str(pki.other_ca))
    with pytest.raises(urllib.error.URLError) as raised:
        urllib.request.urlopen(https_url(running), data=b"", timeout=5, context=untrusted)
    assert isinstance(raised.value.reason, ssl.SSLCertVerificationError)
    channel = grpc.insecure_channel(running.endpoint)
    with pytest.raises(grpc.RpcError) as failed:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    assert sink.records() == []


def test_mutual_tls_requires_a_client_certificate(sink, start_service, pki):
    running = start_service(tls_settings(sink.endpoint, pki, mutual=True))
    anonymous = HttpExporter(endpoint=https_url(running), certificate_file=str(pki.ca), timeout=3)
    assert export_once(anonymous) == LogRecordExportResult.FAILURE
    anonymous.shutdown()
    with_cert = HttpExporter(
        endpoint=https_url(running),
        certificate_file=str(pki.ca),
        client_certificate_file=str(pki.client.cert),
        client_key_file=str(pki.client.key),
        timeout=5,
    )
    assert export_once(with_cert) == LogRecordExportResult.SUCCESS
    with_cert.shutdown()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client.key.read_bytes(),
        certificate_chain=pki.client.cert.read_bytes(),
    )
    grpc_exporter = GrpcExporter(endpoint=running.endpoint, credentials=credentials, timeout=5)
    assert export_once(grpc_exporter) == LogRecordExportResult.SUCCESS
    grpc_exporter.shutdown()
    assert len(sink.wait_for_records(10)) == 10


def test_bearer_token_on_both_receivers(sink, start_service):
    running = start_service(
        make_settings(
            sink.endpoint, **{"receiver.auth.bearer_token": TOKEN, "analysis.embedded": False}
        )
    )
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-xx"}):
        refused = HttpExporter(endpoint=running.http_url, headers=headers, timeout=3)
        assert export_once(refused) == LogRecordExportResult.FAILURE
        refused.shutdown()
    accepted = HttpExporter(
        endpoint=running.http_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert export_once(accepted) == LogRecordExportResult.SUCCESS
    accepted.shutdown()

    channel = grpc.insecure_channel(running.endpoint)
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=lambda payload: payload,
        response_deserializer=lambda payload: payload,
    )
    payload = numbered_request(100, 3).SerializeToString()
    with pytest.raises(grpc.RpcError) as raised:
        export(payload, timeout=5, metadata=(("authorization", "Bearer nope"),))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    export(payload, timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),))
    # Probes need no token.
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    assert len(sink.wait_for_records(8)) == 8
    unauthenticated = running.service.telemetry.value(
        "lipservice_receiver_refused_records", transport="http", reason="unauthenticated"
    )
    assert unauthenticated == 0  # no records counted: the body of a refused call is not read


def test_our_http_exporter_speaks_mutual_tls_and_bearer_to_another_instance(
    sink, start_service, pki
):
    gateway = start_service(
        tls_settings(sink.endpoint, pki, mutual=True, **{"receiver.auth.bearer_token": TOKEN})
    )
    edge = start_service(
        make_settings(
            None,
            **{
                "exporter.type": "otlp_http",
                "exporter.otlp_http.endpoint": https_url(gateway),
                "exporter.otlp_http.ca_file": str(pki.ca),
                "exporter.otlp_http.cert_file": str(pki.client.cert),
                "exporter.otlp_http.key_file": str(pki.client.key),
                "exporter.otlp_http.headers": {"Authorization": f"Bearer {TOKEN}"},
                "analysis.embedded": False,
            },
        )
    )
    channel = grpc.insecure_channel(edge.endpoint)
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=lambda payload: payload,
        response_deserializer=lambda payload: payload,
    )
    export(numbered_request(0, 40).SerializeToString(), timeout=5)
    channel.close()
    assert sorted(seq_of(r) for _, r in sink.wait_for_records(40)) == list(range(40))


def test_bearer_comparison_and_settings_checks(pki, tmp_path):
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not bearer_matches(TOKEN, TOKEN)
    assert not bearer_matches(None, TOKEN)
    with pytest.raises(ConfigError, match=r"receiver\.tls\.cert_file: cert_file and key_file"):
        load_settings(environ={}, overrides={"receiver.tls.cert_file": str(pki.server.cert)})
    with pytest.raises(ConfigError, match=r"receiver\.tls\.client_ca_file: mutual TLS needs"):
        load_settings(environ={}, overrides={"receiver.tls.client_ca_file": str(pki.ca)})
    with pytest.raises(ConfigError, match=r"receiver\.tls\.key_file: no such file"):
        load_settings(
            environ={},
            overrides={
                "receiver.tls.cert_file": str(pki.server.cert),
                "receiver.tls.key_file": str(tmp_path / "missing.key"),
            },
        )
    with pytest.raises(ConfigError, match=r"receiver\.auth\.bearer_token: must be at least 16"):
        load_settings(environ={}, overrides={"receiver.auth.bearer_token": "short"})
    settings = load_settings(environ={}, overrides={"receiver.auth.bearer_token": TOKEN})
    assert TOKEN not in repr(settings)
