"""A downstream whose error status carries details that do not decode is still retried.

Tried before the fix: server_retry_delay() raised DecodeError while reading the RetryInfo,
which is not an ExportError, so the queue logged "raised unexpectedly" and dropped the batch
(counted failed) instead of retrying it.
"""

from __future__ import annotations

import grpc

from tests.support.log_requests import EXPORT, request_with_bodies
from tests.support.running_service import make_settings


def test_undecodable_status_details_do_not_drop_the_batch(sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    sink.fail_next(1, grpc.StatusCode.UNAVAILABLE, status_details=b"\xff\x00 not a Status")
    channel = grpc.insecure_channel(running.endpoint)
    export = channel.unary_unary(EXPORT, request_serializer=lambda payload: payload)
    export(request_with_bodies("retry me").SerializeToString(), timeout=5)
    channel.close()
    assert [r.body.string_value for _, r in sink.wait_for_records(1)] == ["retry me"]
    assert sink.calls == 2
    telemetry = running.service.telemetry
    assert telemetry.value("lipservice_exporter_failed_records", exporter="otlp") == 0
