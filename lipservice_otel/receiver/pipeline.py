"""One request's way through the process: room check, sampling, queueing, metrics.

Shared by every receiver so all front doors behave the same. The room check comes before
sampling: a request refused for lack of space is retried by its sender, and must not have been
counted (or annotated) the first time. With the persistent queue the answer waits until the
kept records are written, so an acknowledged request survives a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from lipservice_otel.exporter.queue import SendingQueue
from lipservice_otel.receiver.config import DEFAULT_MAX_LOG_BODY_BYTES
from lipservice_otel.receiver.limits import refuse_large_bodies
from lipservice_otel.sampling.sampler import Sampler, count_records
from lipservice_otel.telemetry import Telemetry

# How long a sender is asked to wait when our queue is full: about one export round trip.
QUEUE_FULL_RETRY_DELAY_S = 1
QUEUE_FULL = "sending queue full"
JOURNAL_FAILED = "persistent queue cannot write"

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ConsumeResult:
    response: ExportLogsServiceResponse
    records: int
    # Why the request was refused with a retryable error (nothing of it is acknowledged).
    refusal: str | None = None


class Pipeline:
    def __init__(
        self,
        sampler: Sampler,
        queue: SendingQueue,
        telemetry: Telemetry,
        max_log_body_bytes: int = DEFAULT_MAX_LOG_BODY_BYTES,
    ) -> None:
        self._sampler = sampler
        self._queue = queue
        self._telemetry = telemetry
        self._max_log_body_bytes = max_log_body_bytes

    def refused(self, records: int, transport: str, reason: str) -> None:
        self._telemetry.counter(
            "lipservice_receiver_refused_records", transport=transport, reason=reason
        ).inc(records)

    async def consume(
        self, request: ExportLogsServiceRequest, transport: str, size: int
    ) -> ConsumeResult:
        """`size`: the request's serialized bytes as received, for the queue's byte bound."""
        records = count_records(request)
        if not self._queue.has_room(records, size):
            self.refused(records, transport, "queue_full")
            return ConsumeResult(ExportLogsServiceResponse(), records, QUEUE_FULL)
        too_large, too_large_message = refuse_large_bodies(request, self._max_log_body_bytes, size)
        if too_large:
            self.refused(too_large, transport, "limits")
        outcome = self._sampler.sample(request)
        forwarded = outcome.kept + outcome.recalled
        self._count(outcome, transport)
        if forwarded:
            # No await since has_room(): the room is still there; only a journal that cannot
            # be written refuses now.
            queued = self._queue.offer(request.SerializeToString(), forwarded, admitted=True)
            try:
                if queued:
                    await self._queue.durable()
            except OSError as exc:
                log.error("persistent queue: cannot make %d records durable: %s", records, exc)
                queued = False
            if not queued:
                self.refused(records, transport, "journal")
                return ConsumeResult(ExportLogsServiceResponse(), records, JOURNAL_FAILED)
        response = ExportLogsServiceResponse()
        if outcome.rejected or too_large:
            response.partial_success.rejected_log_records = outcome.rejected + too_large
            response.partial_success.error_message = "; ".join(
                message for message in (too_large_message, outcome.rejection_message) if message
            )
        return ConsumeResult(response, records)

    def _count(self, outcome, transport: str) -> None:
        telemetry = self._telemetry
        telemetry.counter("lipservice_receiver_accepted_records", transport=transport).inc(
            outcome.received - outcome.rejected
        )
        if outcome.rejected:
            self.refused(outcome.rejected, transport, "limits")
        for reason, n in outcome.kept_by_reason.items():
            telemetry.counter("lipservice_sampler_kept_records", reason=reason).inc(n)
        for reason, n in outcome.dropped_by_reason.items():
            telemetry.counter("lipservice_sampler_dropped_records", reason=reason).inc(n)
        if outcome.recalled:
            telemetry.counter("lipservice_error_context_recalled_records").inc(outcome.recalled)
