"""Records numbered by a `seq` attribute, so deliveries can be counted exactly."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from tests.support.received import wait_for

SEQ = "seq"


def numbered_request(
    first: int, count: int, body_bytes: int = 40, service: str | None = "numbered"
) -> ExportLogsServiceRequest:
    """`count` INFO records with seq first..first+count-1; bodies padded to `body_bytes`."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    if service is not None:
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", service
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "numbered"
    for seq in range(first, first + count):
        record = scope_logs.log_records.add()
        record.severity_number = 9
        text = f"order {seq} shipped "
        record.body.string_value = text + "x" * max(0, body_bytes - len(text))
        kv = record.attributes.add()
        kv.key, kv.value.int_value = SEQ, seq
    return request


def seq_of(record) -> int:
    for kv in record.attributes:
        if kv.key == SEQ:
            return kv.value.int_value
    raise AssertionError("record without a seq attribute")


@dataclass(frozen=True, slots=True)
class Tally:
    """What a test sent, what was acknowledged, what arrived, and how often."""

    sent: int
    acknowledged: int
    delivered: int
    duplicated: int
    missing: int

    def __str__(self) -> str:
        return (
            f"sent={self.sent} acknowledged={self.acknowledged} delivered={self.delivered} "
            f"duplicated={self.duplicated} missing={self.missing}"
        )


def wait_for_seqs(read: Callable[[], list], seqs: set[int], timeout_s: float) -> list:
    """What `read()` returns once every seq in `seqs` is among its records, or at the timeout.
    Waiting for a record count instead would stop early when some records arrive twice
    (at-least-once delivery after a crash) while others are still on their way."""
    return wait_for(read, lambda records: seqs <= {seq_of(r) for _, r in records}, timeout_s)


def tally(sent: set[int], acknowledged: set[int], records) -> Tally:
    arrived = Counter(seq_of(record) for _, record in records)
    return Tally(
        sent=len(sent),
        acknowledged=len(acknowledged),
        delivered=len(arrived),
        duplicated=sum(n - 1 for n in arrived.values()),
        missing=len(acknowledged - set(arrived)),
    )


class SdkSender:
    """The real OpenTelemetry SDK exporter (gRPC or HTTP) sending numbered records from a
    thread: one batch every `interval_s`, each retried until the receiver acknowledges it,
    as an upstream collector with unbounded retry would. Stops on `stop()` or after
    `max_s` seconds, whichever comes first."""

    def __init__(
        self, exporter, batch_size: int = 20, interval_s: float = 0.05, max_s: float = 120.0
    ) -> None:
        self.exporter = exporter
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.sent: set[int] = set()
        self.acknowledged: set[int] = set()
        self.refusals = 0
        self._resource = Resource.create({"service.name": "numbered"})
        self._scope = InstrumentationScope("numbered")
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._deadline = time.monotonic() + max_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SdkSender:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0, abandon: bool = False) -> None:
        """Send no new batch; wait for the one in progress to be acknowledged (or, with
        `abandon`, give it up: its records stay sent and unacknowledged)."""
        if abandon:
            self._abandon.set()
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "sender still retrying its last batch"
        self.exporter.shutdown()

    def _run(self) -> None:
        first = 0
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            seqs = range(first, first + self.batch_size)
            first += self.batch_size
            self.sent.update(seqs)
            batch = [self._record(seq) for seq in seqs]
            while time.monotonic() < self._deadline and not self._abandon.is_set():
                if self.exporter.export(batch) == LogRecordExportResult.SUCCESS:
                    self.acknowledged.update(seqs)
                    break
                self.refusals += 1
                time.sleep(0.1)
            time.sleep(self.interval_s)

    def _record(self, seq: int) -> ReadableLogRecord:
        record = LogRecord(
            timestamp=time.time_ns(),
            body=f"order {seq} shipped to warehouse {seq % 7}",
            severity_number=SeverityNumber.INFO,
            attributes={SEQ: seq},
        )
        return ReadableLogRecord(record, self._resource, self._scope)
