"""The persistent queue in a running service: a journal that stops taking writes refuses
with a retryable answer (the journal on its own: tests/unit/exporter/test_persistent_queue.py)."""

from __future__ import annotations

import contextlib
import os

import grpc

from tests.support.log_requests import EXPORT
from tests.support.numbered import numbered_request, seq_of
from tests.support.otlp_http import post
from tests.support.running_service import make_settings

ERROR = 17
TRACE = bytes(range(1, 17))


@contextlib.contextmanager
def unwritable_journal(running):
    """The journal's file stops taking writes (EBADF), like a device gone read-only."""
    journal = running.service.queue._journal
    writable, journal._fd = journal._fd, os.open(os.devnull, os.O_RDONLY)
    try:
        yield
    finally:
        os.close(journal._fd)
        journal._fd = writable


def journaled(sink, tmp_path, **overrides):
    return make_settings(
        sink.endpoint,
        **{
            "exporter.queue.persistent.directory": str(tmp_path / "journal"),
            "analysis.embedded": False,
            **overrides,
        },
    )


def test_unwritable_journal_refuses_as_unavailable_and_counts_nothing(
    sink, start_service, tmp_path
):
    """Tried before the fix: 429 / RESOURCE_EXHAUSTED ("you send too much"), and the refused
    records were counted as accepted (5 instead of 3) and as kept."""
    running = start_service(journaled(sink, tmp_path))
    telemetry = running.service.telemetry
    assert post(running.http_url, numbered_request(0, 2).SerializeToString())[0] == 200
    channel = grpc.insecure_channel(running.endpoint)
    export = channel.unary_unary(EXPORT, request_serializer=lambda payload: payload)
    with unwritable_journal(running):
        status, headers, _ = post(running.http_url, numbered_request(2, 2).SerializeToString())
        try:
            export(numbered_request(5, 1).SerializeToString(), timeout=5)
        except grpc.RpcError as error:
            code = error.code()
    channel.close()
    assert status == 503 and headers["Retry-After"] == "1"
    assert code == grpc.StatusCode.UNAVAILABLE
    assert (
        telemetry.value("lipservice_receiver_refused_records", transport="http", reason="journal")
        == 2
    )
    assert post(running.http_url, numbered_request(4, 1).SerializeToString())[0] == 200
    assert sorted(seq_of(r) for _, r in sink.wait_for_records(3)) == [0, 1, 4]
    assert telemetry.value("lipservice_receiver_accepted_records", transport="http") == 3
    assert telemetry.value("lipservice_sampler_kept_records", reason="default") == 3


def test_records_recalled_for_a_refused_request_are_recalled_by_its_retry(
    sink, start_service, tmp_path
):
    """Tried before the fix: the error's retry arrived alone; the three records recalled for
    the refused first attempt had left the error context with it."""
    running = start_service(journaled(sink, tmp_path, **{"policy.document": {"default_rate": 0.0}}))
    before = numbered_request(0, 3)
    error = numbered_request(3, 1)
    for request, severity in ((before, 9), (error, ERROR)):
        for record in request.resource_logs[0].scope_logs[0].log_records:
            record.trace_id, record.severity_number = TRACE, severity
    assert post(running.http_url, before.SerializeToString())[0] == 200  # all dropped
    with unwritable_journal(running):
        assert post(running.http_url, error.SerializeToString())[0] != 200
    assert post(running.http_url, error.SerializeToString())[0] == 200
    assert sorted(seq_of(r) for _, r in sink.wait_for_records(4)) == [0, 1, 2, 3]
