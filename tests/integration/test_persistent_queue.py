"""The persistent queue in a running service: a journal that stops taking writes refuses
with a retryable answer (the journal on its own: tests/unit/exporter/test_persistent_queue.py)."""

from __future__ import annotations

import os

from tests.support.numbered import numbered_request, seq_of
from tests.support.otlp_http import post
from tests.support.running_service import make_settings


def test_unwritable_journal_refuses_with_a_retryable_answer(sink, start_service, tmp_path):
    directory = tmp_path / "journal"
    settings = make_settings(
        sink.endpoint,
        **{"exporter.queue.persistent.directory": str(directory), "analysis.embedded": False},
    )
    running = start_service(settings)
    assert post(running.http_url, numbered_request(0, 2).SerializeToString())[0] == 200
    # The journal's file stops taking writes (EBADF), like a device gone read-only.
    journal = running.service.queue._journal
    writable, journal._fd = journal._fd, os.open(os.devnull, os.O_RDONLY)
    try:
        status, headers, _ = post(running.http_url, numbered_request(2, 2).SerializeToString())
    finally:
        os.close(journal._fd)
        journal._fd = writable
    assert status == 429 and headers["Retry-After"] == "1"
    refused = running.service.telemetry.value(
        "lipservice_receiver_refused_records", transport="http", reason="journal"
    )
    assert refused == 2
    assert post(running.http_url, numbered_request(4, 1).SerializeToString())[0] == 200
    assert sorted(seq_of(r) for _, r in sink.wait_for_records(3)) == [0, 1, 4]
