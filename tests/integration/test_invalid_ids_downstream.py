"""One record with an id of the wrong length no longer makes a strict downstream refuse the
whole batch of valid records it is exported with.

Tried before the fix: the 8-byte trace id and the 4-byte span id were forwarded as received,
the strict downstream refused the request (INTERNAL, not retried), and none of the seven
records, five of them valid, arrived.
"""

from __future__ import annotations

from tests.support.log_requests import request_with_bodies
from tests.support.otlp_http import post
from tests.support.running_service import make_settings


def test_a_bad_id_does_not_poison_the_batch_for_a_strict_downstream(sink, start_service):
    sink.strict_ids = True
    settings = make_settings(
        sink.endpoint, **{"analysis.embedded": False, "policy.document": {"default_rate": 1.0}}
    )
    running = start_service(settings)
    request = request_with_bodies(*(f"line {n}" for n in range(7)))
    records = request.resource_logs[0].scope_logs[0].log_records
    for n, record in enumerate(records):
        record.trace_id, record.span_id = bytes([n + 1]) * 16, bytes([n + 1]) * 8
    records[2].trace_id = b"\x03" * 8
    records[5].span_id = b"\x06" * 4
    assert post(running.http_url, request.SerializeToString())[0] == 200
    received = {r.body.string_value: r for _, r in sink.wait_for_records(7)}
    assert len(received) == 7
    assert (received["line 2"].trace_id, received["line 2"].span_id) == (b"", b"\x03" * 8)
    assert (received["line 5"].trace_id, received["line 5"].span_id) == (b"\x06" * 16, b"")
    assert received["line 0"].trace_id == b"\x01" * 16
    telemetry = running.service.telemetry
    assert telemetry.value("lipservice_sampler_cleared_ids", field="trace_id") == 1
    assert telemetry.value("lipservice_sampler_cleared_ids", field="span_id") == 1
