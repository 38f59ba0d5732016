"""Our OTLP/HTTP exporter into a real collector: rotel's OTLP/HTTP receiver, then a gRPC sink.

Numbered records are counted end to end, through a rotel that is stopped and started again
while we keep receiving: what we acknowledged arrives, at least once.
"""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

from tests.support.numbered import SdkSender, tally, wait_for_seqs
from tests.support.peers import start_rotel
from tests.support.ports import free_port
from tests.support.running_service import make_settings


def rotel_env(http_port: int, grpc_port: int, sink_endpoint: str) -> dict[str, str]:
    return {
        "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "ROTEL_EXPORTER": "otlp",
        "ROTEL_OTLP_EXPORTER_ENDPOINT": f"http://{sink_endpoint}",
        "ROTEL_OTLP_EXPORTER_PROTOCOL": "grpc",
        "ROTEL_BATCH_TIMEOUT": "100ms",
    }


def test_otlp_http_exporter_through_rotel_survives_its_restart(sink, start_service, tmp_path):
    http_port, grpc_port = free_port(), free_port()
    env = rotel_env(http_port, grpc_port, sink.endpoint)
    rotel = start_rotel(env, grpc_port, tmp_path, "rotel-1")
    settings = make_settings(
        None,
        **{
            "exporter.type": "otlp_http",
            "exporter.otlp_http.endpoint": f"http://127.0.0.1:{http_port}/v1/logs",
            "exporter.retry.max_interval_s": 0.5,
            "analysis.embedded": False,  # keep every record: the count is exact
        },
    )
    running = start_service(settings)
    sender = SdkSender(GrpcExporter(endpoint=running.endpoint, insecure=True, timeout=5))
    sender.start()
    try:
        time.sleep(2)
        rotel.stop()  # the collector restarts (SIGTERM: it flushes what it accepted)
        time.sleep(3)
        rotel = start_rotel(env, grpc_port, tmp_path, "rotel-2")
        time.sleep(2)
        sender.stop()
        records = wait_for_seqs(sink.records, sender.acknowledged, 30)
    finally:
        rotel.stop()
    result = tally(sender.sent, sender.acknowledged, records)
    print(f"OTLP/HTTP through rotel, restarted: {result}")
    assert result.missing == 0, result
    assert result.acknowledged == result.sent
    errors = running.service.telemetry.value(
        "lipservice_exporter_send_errors", exporter="otlp_http", code="connection"
    )
    assert errors > 0  # the restart was felt, and retried through
