"""What a test's stand-in downstream accepted, and waiting for it to arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

T = TypeVar("T")


class ReceivedLogs:
    """Export requests accepted by a downstream; its handlers append under `_lock`."""

    wait_timeout_s = 15.0

    def __init__(self) -> None:
        self.requests: list[ExportLogsServiceRequest] = []
        self._lock = threading.Lock()

    def records(self) -> list:
        """(resource, log record) of every accepted request, in arrival order."""
        with self._lock:
            return [
                (resource_logs.resource, record)
                for request in self.requests
                for resource_logs in request.resource_logs
                for scope_logs in resource_logs.scope_logs
                for record in scope_logs.log_records
            ]

    def wait_for_records(self, count: int, timeout_s: float | None = None) -> list:
        timeout_s = self.wait_timeout_s if timeout_s is None else timeout_s
        return wait_for(self.records, lambda records: len(records) >= count, timeout_s)


def wait_for(read: Callable[[], list], done: Callable[[list], bool], timeout_s: float) -> list:
    """What `read()` returns once `done` holds for it, or at the timeout: for a caller that
    asserts on what arrived (a count, the sequence numbers) and says what was missing."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def until(
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout_s: float,
    what: str = "the awaited state",
) -> T:
    """What `read()` returns once `done` holds for it; a failure naming `what` at the timeout,
    for a step whose value nothing asserts on afterwards."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read()
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s:g} s; last: {found!r}")
        time.sleep(0.02)


def attributes_of(record) -> dict:
    values = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values
