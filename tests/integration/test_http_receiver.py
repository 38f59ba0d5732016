"""The OTLP/HTTP receiver: the real SDK's HTTP exporter as client, OTLP/JSON, bad input.

Each bad body gets the status the OTLP/HTTP specification names, with a google.rpc.Status
body in the request's encoding, and afterwards the server still accepts and forwards.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pytest
from google.rpc import code_pb2, status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.support.log_requests import deep_protobuf, request_with_bodies
from tests.support.otlp_http import PROTOBUF, post
from tests.support.running_service import make_settings

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def status_message(body: bytes, content_type: str = PROTOBUF) -> status_pb2.Status:
    if content_type == PROTOBUF:
        return status_pb2.Status.FromString(body)
    document = json.loads(body)
    return status_pb2.Status(code=document.get("code", 0), message=document.get("message", ""))


@pytest.fixture
def receiver(sink, start_service):
    return start_service(make_settings(sink.endpoint))


def assert_still_serving(url: str, sink) -> None:
    before = len(sink.records())
    status, _, _ = post(url, request_with_bodies("still alive").SerializeToString())
    assert status == 200
    assert len(sink.wait_for_records(before + 1)) == before + 1


def test_sdk_http_exporter_through_receiver_to_sink(receiver, sink):
    exporter = OTLPLogExporter(endpoint=receiver.http_url, compression=Compression.Gzip)
    provider = LoggerProvider(resource=Resource.create({"service.name": "http-app"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("tests")
    for n in range(30):
        logger.emit(body=f"request {n} served", severity_number=SeverityNumber.INFO)
    logger.emit(body="payment failed", severity_number=SeverityNumber.ERROR)
    provider.force_flush()
    provider.shutdown()
    received = sink.wait_for_records(31)
    assert len(received) == 31
    assert {r.body.string_value for _, r in received} >= {"request 0 served", "payment failed"}
    telemetry = receiver.service.telemetry
    assert telemetry.value("lipservice_receiver_accepted_records", transport="http") == 31


def test_otlp_json_with_hex_ids_and_enum_forms(receiver, sink):
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "tests"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "severityNumber": 17,
                                "severityText": "ERROR",
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "body": {"stringValue": "disk full on /var"},
                                "attributes": [{"key": "retries", "value": {"intValue": "3"}}],
                                "someFutureField": {"ignored": True},
                            },
                            {
                                "severityNumber": "SEVERITY_NUMBER_INFO",
                                "body": {"kvlistValue": {"values": []}},
                            },
                        ],
                    }
                ],
            }
        ]
    }
    status, headers, body = post(
        receiver.http_url, json.dumps(document).encode(), "application/json"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {}  # no partial success
    received = sink.wait_for_records(2)
    first = received[0][1]
    assert first.trace_id.hex() == TRACE_ID
    assert first.span_id.hex() == SPAN_ID
    assert first.severity_number == 17
    assert first.time_unix_nano == 1_700_000_000_000_000_000
    assert received[1][1].severity_number == SeverityNumber.INFO.value


def test_gzip_protobuf_is_accepted_and_answered_in_protobuf(receiver, sink):
    payload = gzip.compress(request_with_bodies("zipped one", "zipped two").SerializeToString())
    status, headers, body = post(receiver.http_url, payload, **{"Content-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"] == PROTOBUF
    assert ExportLogsServiceResponse.FromString(body).partial_success.rejected_log_records == 0
    assert len(sink.wait_for_records(2)) == 2


def deep_json(depth: int) -> bytes:
    """Built as text: deeper than json.dumps itself could recurse."""
    value = '{"arrayValue": {"values": [' * depth + '{"stringValue": "bottom"}' + "]}}" * depth
    record = '{"body": ' + value + "}"
    return ('{"resourceLogs": [{"scopeLogs": [{"logRecords": [' + record + "]}]}]}").encode()


def invalid_utf8_request() -> bytes:
    request = request_with_bodies("placeholder")
    raw = b"ok \xff\xfe bad"
    request.resource_logs[0].scope_logs[0].log_records[0].body.bytes_value = raw
    # Re-tag AnyValue.bytes_value (field 7) as string_value (field 1): invalid UTF-8 in a string.
    return request.SerializeToString().replace(bytes([0x3A, len(raw)]), bytes([0x0A, len(raw)]))


GZIP_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in about 64 KiB


@pytest.mark.parametrize(
    ("name", "body", "content_type", "headers", "status", "needle"),
    [
        ("truncated protobuf", None, PROTOBUF, {}, 400, "not a valid ExportLogsServiceRequest"),
        ("garbage bytes", b"\xff\xff\xff\xff", PROTOBUF, {}, 400, "not a valid"),
        ("invalid UTF-8", invalid_utf8_request(), PROTOBUF, {}, 400, "not a valid"),
        ("deep protobuf", deep_protobuf(), PROTOBUF, {}, 400, "not a valid"),
        ("invalid JSON", b'{"resourceLogs": [', "application/json", {}, 400, "not valid JSON"),
        ("JSON not an object", b"[1, 2]", "application/json", {}, 400, "JSON object"),
        ("JSON wrong shape", b'{"resourceLogs": 5}', "application/json", {}, 400, "not a valid"),
        ("JSON bad hex id", None, "application/json", {}, 400, "expected a hex string"),
        ("deep JSON", deep_json(60), "application/json", {}, 400, "not a valid"),
        ("very deep JSON", deep_json(5000), "application/json", {}, 400, "nested deeper"),
        ("gzip bomb", GZIP_BOMB, PROTOBUF, {"Content-Encoding": "gzip"}, 413, "decompression"),
        (
            "broken gzip",
            b"\x1f\x8b\x08garbage",
            PROTOBUF,
            {"Content-Encoding": "gzip"},
            400,
            "gzip",
        ),
        ("unknown encoding", b"x", PROTOBUF, {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        ("oversize body", b"\0" * (17 * 1024 * 1024), PROTOBUF, {}, 413, "exceeds"),
    ],
)
def test_bad_input_gets_the_right_status(
    receiver, sink, name, body, content_type, headers, status, needle
):
    if name == "truncated protobuf":
        body = request_with_bodies("hello world").SerializeToString()[:-3]
    if name == "JSON bad hex id":
        record = {"traceId": "not-hex", "body": {"stringValue": "x"}}
        body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()
    answered, answer_headers, answer = post(receiver.http_url, body, content_type, **headers)
    assert answered == status, name
    assert answer_headers["Content-Type"].startswith(content_type)
    message = status_message(answer, content_type)
    assert needle in message.message, message.message
    assert message.code in (code_pb2.INVALID_ARGUMENT, code_pb2.RESOURCE_EXHAUSTED)
    assert_still_serving(receiver.http_url, sink)


def test_unknown_content_type_is_415(receiver, sink):
    status, _, body = post(receiver.http_url, b"hello", "text/plain")
    assert status == 415
    assert b"application/x-protobuf" in body
    assert_still_serving(receiver.http_url, sink)


def test_wrong_method_and_path(receiver, sink):
    url = receiver.http_url
    assert post(url.replace("/v1/logs", "/v1/traces"), b"")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(url, timeout=5)
    assert raised.value.code == 405
    raised.value.close()
    assert_still_serving(url, sink)


def test_huge_attribute_count_is_partial_success(receiver, sink):
    request = request_with_bodies("huge", attributes=100_000)
    request.resource_logs[0].scope_logs[0].log_records.add().body.string_value = "small"
    status, _, body = post(receiver.http_url, request.SerializeToString())
    assert status == 200
    response = ExportLogsServiceResponse.FromString(body)
    assert response.partial_success.rejected_log_records == 1
    assert "max_attributes_per_record" in response.partial_success.error_message
    (forwarded,) = sink.wait_for_records(1)
    assert forwarded[1].body.string_value == "small"


def test_full_queue_answers_429_with_retry_after(sink, start_service):
    import grpc

    running = start_service(make_settings(sink.endpoint, **{"exporter.queue.max_records": 4}))
    sink.fail_next(1000, grpc.StatusCode.UNAVAILABLE)
    first = request_with_bodies(*[f"first {i}" for i in range(4)]).SerializeToString()
    assert post(running.http_url, first)[0] == 200
    status, headers, body = post(
        running.http_url, request_with_bodies("one more").SerializeToString()
    )
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert "sending queue full" in status_message(body).message
    refused = running.service.telemetry.value(
        "lipservice_receiver_refused_records", transport="http", reason="queue_full"
    )
    assert refused == 1
    sink.recover()
    assert len(sink.wait_for_records(4)) == 4
