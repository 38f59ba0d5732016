"""What the gRPC receiver answers to malformed, empty, huge and hostile requests.

Tried: garbage bytes, a truncated request, an empty request, a record without a body,
invalid UTF-8 in a string body, a 10 MB body (allowed under a raised limit, refused over the
default one), a record with 100k attributes, a request over the size limit, a gzip bomb,
nesting past the decoder limit, and a gzip-compressed request (a wrong bearer token is in
test_tls_auth.py). Each gets a clear status or a correct result, and afterwards the server
still answers health checks and exports.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from tests.support.log_requests import EXPORT, deep_protobuf, request_with_bodies
from tests.support.running_service import make_settings


@pytest.fixture
def receiver(sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    channel = grpc.insecure_channel(
        running.endpoint, options=[("grpc.max_send_message_length", 128 * 1024 * 1024)]
    )
    export = channel.unary_unary(
        EXPORT,
        request_serializer=lambda payload: payload,
        response_deserializer=ExportLogsServiceResponse.FromString,
    )
    yield running, channel, export
    channel.close()


def assert_still_serving(channel, export, sink):
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    before = len(sink.records())
    export(request_with_bodies("still alive").SerializeToString(), timeout=5)
    assert len(sink.wait_for_records(before + 1)) == before + 1


def expect_status(export, payload: bytes, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        export(payload, timeout=10)
    assert raised.value.code() == code
    return raised.value.details()


def test_garbage_and_truncated_bytes_are_invalid_argument(receiver, sink):
    _, channel, export = receiver
    details = expect_status(export, b"\xff\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT)
    assert "not a valid ExportLogsServiceRequest" in details
    truncated = request_with_bodies("hello world").SerializeToString()[:-3]
    expect_status(export, truncated, grpc.StatusCode.INVALID_ARGUMENT)
    assert_still_serving(channel, export, sink)


def test_invalid_utf8_in_string_body_is_invalid_argument(receiver, sink):
    _, channel, export = receiver
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    raw = b"ok \xff\xfe bad"
    record.body.bytes_value = raw
    # Re-tag AnyValue.bytes_value (field 7) as string_value (field 1): invalid UTF-8 in a string.
    payload = request.SerializeToString().replace(bytes([0x3A, len(raw)]), bytes([0x0A, len(raw)]))
    assert payload != request.SerializeToString()
    details = expect_status(export, payload, grpc.StatusCode.INVALID_ARGUMENT)
    assert "ExportLogsServiceRequest" in details
    assert_still_serving(channel, export, sink)


def test_empty_request_and_record_without_body(receiver, sink):
    _, channel, export = receiver
    response = export(b"", timeout=5)
    assert response.partial_success.rejected_log_records == 0
    response = export(request_with_bodies(None).SerializeToString(), timeout=5)
    assert response.partial_success.rejected_log_records == 0
    (forwarded,) = sink.wait_for_records(1)
    assert not forwarded[1].HasField("body")
    assert_still_serving(channel, export, sink)


def test_ten_megabyte_body_is_forwarded_whole_under_a_raised_limit(sink, start_service):
    limit = 16 * 1024 * 1024
    running = start_service(make_settings(sink.endpoint, **{"receiver.max_log_body_bytes": limit}))
    channel = grpc.insecure_channel(
        running.endpoint, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    export = channel.unary_unary(
        EXPORT,
        request_serializer=lambda payload: payload,
        response_deserializer=ExportLogsServiceResponse.FromString,
    )
    body = "x" * (10 * 1024 * 1024)
    export(request_with_bodies(body).SerializeToString(), timeout=30)
    (forwarded,) = sink.wait_for_records(1)
    assert forwarded[1].body.string_value == body
    assert_still_serving(channel, export, sink)
    channel.close()


def test_body_over_the_limit_is_refused_as_partial_success(receiver, sink):
    _, channel, export = receiver
    request = request_with_bodies("y" * (1024 * 1024 + 1), "fits", "z" * (2 * 1024 * 1024))
    response = export(request.SerializeToString(), timeout=30)
    assert response.partial_success.rejected_log_records == 2
    assert "receiver.max_log_body_bytes" in response.partial_success.error_message
    (forwarded,) = sink.wait_for_records(1)
    assert forwarded[1].body.string_value == "fits"
    assert_still_serving(channel, export, sink)


def test_record_with_100k_attributes_is_refused_as_partial_success(receiver, sink):
    _, channel, export = receiver
    request = request_with_bodies("huge", attributes=100_000)
    request.resource_logs[0].scope_logs[0].log_records.add().body.string_value = "small"
    response = export(request.SerializeToString(), timeout=30)
    assert response.partial_success.rejected_log_records == 1
    assert "max_attributes_per_record" in response.partial_success.error_message
    (forwarded,) = sink.wait_for_records(1)
    assert forwarded[1].body.string_value == "small"
    assert_still_serving(channel, export, sink)


def test_request_over_the_size_limit_is_resource_exhausted(receiver, sink):
    _, channel, export = receiver
    payload = request_with_bodies("y" * (17 * 1024 * 1024)).SerializeToString()
    expect_status(export, payload, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert_still_serving(channel, export, sink)


def test_gzip_compressed_request_is_accepted(receiver, sink):
    _, _, export = receiver
    payload = request_with_bodies("compressed hello", "compressed hello again")
    export(payload.SerializeToString(), timeout=5, compression=grpc.Compression.Gzip)
    assert len(sink.wait_for_records(2)) == 2


def test_gzip_bomb_stops_at_the_size_limit(receiver, sink):
    _, channel, export = receiver
    bomb = request_with_bodies("\0" * (64 * 1024 * 1024)).SerializeToString()  # ~64 KiB gzipped
    with pytest.raises(grpc.RpcError) as raised:
        export(bomb, timeout=60, compression=grpc.Compression.Gzip)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Decompressed message larger than max" in raised.value.details()
    assert_still_serving(channel, export, sink)


def test_nesting_past_the_decoder_limit_is_invalid_argument(receiver, sink):
    _, channel, export = receiver
    details = expect_status(export, deep_protobuf(), grpc.StatusCode.INVALID_ARGUMENT)
    assert "ExportLogsServiceRequest" in details
    assert_still_serving(channel, export, sink)
