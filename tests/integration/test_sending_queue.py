"""Backpressure, retries and draining between the receiver and a real downstream."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from lipservice_otel.app.service import Service
from tests.support.log_requests import EXPORT, request_with_bodies
from tests.support.running_service import make_settings


def exporter_stub(endpoint: str):
    channel = grpc.insecure_channel(endpoint)
    return channel, channel.unary_unary(
        EXPORT,
        request_serializer=lambda payload: payload,
        response_deserializer=ExportLogsServiceResponse.FromString,
    )


def retry_delay_of(error: grpc.RpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def test_unavailable_downstream_is_retried_until_it_accepts(sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    sink.fail_next(3, grpc.StatusCode.UNAVAILABLE)
    channel, export = exporter_stub(running.endpoint)
    export(request_with_bodies("first", "second").SerializeToString(), timeout=5)
    received = sink.wait_for_records(2)
    assert [r.body.string_value for _, r in received] == ["first", "second"]
    assert sink.calls == 4
    channel.close()


def test_server_retry_info_is_honoured(sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    sink.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay_s=0.6)
    channel, export = exporter_stub(running.endpoint)
    started = time.monotonic()
    export(request_with_bodies("wait for me").SerializeToString(), timeout=5)
    assert len(sink.wait_for_records(1)) == 1
    assert time.monotonic() - started >= 0.6
    channel.close()


def test_permanent_error_is_not_retried_and_counted(sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    sink.fail_next(1, grpc.StatusCode.INVALID_ARGUMENT)
    channel, export = exporter_stub(running.endpoint)
    export(request_with_bodies("rejected downstream").SerializeToString(), timeout=5)
    deadline = time.monotonic() + 5
    telemetry = running.service.telemetry
    while telemetry.value("lipservice_exporter_failed_records", exporter="otlp") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert telemetry.value("lipservice_exporter_failed_records", exporter="otlp") == 1
    assert sink.calls == 1
    channel.close()


def test_full_queue_refuses_with_retry_info_and_nothing_is_lost(sink, start_service):
    settings = make_settings(
        sink.endpoint,
        **{"exporter.queue.max_records": 12, "exporter.retry.initial_interval_s": 0.2},
    )
    running = start_service(settings)
    sink.fail_next(1000, grpc.StatusCode.UNAVAILABLE)  # downstream down
    channel, export = exporter_stub(running.endpoint)
    accepted = 0
    for n in range(3):
        export(request_with_bodies(*[f"r{n}-{i}" for i in range(4)]).SerializeToString())
        accepted += 4
    with pytest.raises(grpc.RpcError) as raised:
        export(request_with_bodies(*[f"r3-{i}" for i in range(4)]).SerializeToString())
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "sending queue full" in raised.value.details()
    assert retry_delay_of(raised.value) == 1.0
    refused = running.service.telemetry.value(
        "lipservice_receiver_refused_records", transport="grpc", reason="queue_full"
    )
    assert refused == 4

    sink.recover()
    received = sink.wait_for_records(accepted)
    bodies = sorted(r.body.string_value for _, r in received)
    assert bodies == sorted(f"r{n}-{i}" for n in range(3) for i in range(4))
    channel.close()


def test_shutdown_drains_the_queue(sink, start_service):
    settings = make_settings(sink.endpoint, **{"exporter.queue.batch_timeout_s": 30.0})
    running = start_service(settings)
    channel, export = exporter_stub(running.endpoint)
    export(request_with_bodies(*[f"queued {i}" for i in range(50)]).SerializeToString())
    assert sink.records() == []  # held for batching
    assert running.stop() == 0
    assert len(sink.records()) == 50
    channel.close()


def test_shutdown_before_start_is_harmless(sink):
    service = Service(make_settings(sink.endpoint))
    assert asyncio.run(service.stop()) == 0
