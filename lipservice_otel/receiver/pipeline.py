"""One request's way through the process: room check, sampling, queueing, metrics.

Shared by every receiver so all front doors behave the same. The room check comes before
sampling: a request refused for lack of space is retried by its sender, and must not have been
counted (or annotated) the first time. With the persistent queue the answer waits until the
kept records are written, so an acknowledged request survives a crash; a journal that cannot
be written refuses the request as unavailable (the sender retries it whole), after sampling,
so its records are counted only once it is accepted and the records recalled for it from the
error context go back there for the retry to recall.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from lipservice_otel.exporter.queue import SendingQueue
from lipservice_otel.receiver.config import DEFAULT_MAX_LOG_BODY_BYTES
from lipservice_otel.receiver.limits import refuse_large_bodies
from lipservice_otel.sampling.compiled import TO_PYTHON_RECORD, TO_PYTHON_REQUEST, CompiledSampler
from lipservice_otel.sampling.sampler import SampleOutcome, Sampler, count_records
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
    # Refused because this process cannot take it now (gRPC UNAVAILABLE, HTTP 503), not
    # because the sender sends too much (RESOURCE_EXHAUSTED, 429).
    unavailable: bool = False


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

    @property
    def tenant_header(self) -> str | None:
        """The header / gRPC metadata key (lowercase) naming a request's tenant, when the
        tenant key is one: the receivers read it and pass its value in."""
        return self._sampler.tenant_header

    def refused(self, records: int, transport: str, reason: str) -> None:
        self._telemetry.counter(
            "lipservice_receiver_refused_records", transport=transport, reason=reason
        ).inc(records)

    async def consume(
        self,
        request: ExportLogsServiceRequest,
        transport: str,
        size: int,
        header_tenant: str | None = None,
        sender_tenant: str | None = None,
    ) -> ConsumeResult:
        """`size`: the request's serialized bytes as received, for the queue's byte bound;
        `header_tenant`: the value of the tenant_header the request came with, if any;
        `sender_tenant`: the tenant whose token the sender presented, if any (it wins)."""
        records = count_records(request)
        if not self._has_room(records, size, transport):
            return ConsumeResult(ExportLogsServiceResponse(), records, QUEUE_FULL)
        return await self._sample(request, records, transport, size, header_tenant, sender_tenant)

    async def consume_payload(
        self,
        payload: bytes,
        transport: str,
        header_tenant: str | None = None,
        sender_tenant: str | None = None,
    ) -> ConsumeResult:
        """The request as the protobuf bytes received; DecodeError when it is not one.

        The compiled sampler takes the bytes themselves (no protobuf objects on its way); the
        Python sampler, and the compiled one for the requests it gives up, get them parsed.
        """
        sampler = self._sampler
        walked = (
            sampler.walk(payload, self._max_log_body_bytes)
            if isinstance(sampler, CompiledSampler)
            else None
        )
        if walked is None:
            request = ExportLogsServiceRequest.FromString(payload)
            if isinstance(sampler, CompiledSampler):
                self._to_python(count_records(request))
            return await self.consume(
                request, transport, len(payload), header_tenant, sender_tenant
            )
        records, size = walked.records, len(payload)
        if not self._has_room(records, size, transport):
            return ConsumeResult(ExportLogsServiceResponse(), records, QUEUE_FULL)
        sampled = sampler.sample_walked(walked, header_tenant, sender_tenant)
        if sampled is None:
            self._to_python(records)
            request = ExportLogsServiceRequest.FromString(payload)
            # Straight to the Python sampler: the engine has had its one run at this request.
            return await self._sample(
                request,
                records,
                transport,
                size,
                header_tenant,
                sender_tenant,
                sampler.sample_given_up,
            )
        calls = sampler.to_python_since()
        if calls:
            self._telemetry.counter(
                "lipservice_sampler_python_records", reason=TO_PYTHON_RECORD
            ).inc(calls)
        outcome, forwarded = sampled
        return await self._forward(outcome, lambda: forwarded, records, transport, 0, "")

    def _has_room(self, records: int, size: int, transport: str) -> bool:
        if self._queue.has_room(records, size):
            return True
        self.refused(records, transport, "queue_full")
        return False

    def _to_python(self, records: int) -> None:
        self._telemetry.counter("lipservice_sampler_python_records", reason=TO_PYTHON_REQUEST).inc(
            records
        )

    async def _sample(
        self,
        request: ExportLogsServiceRequest,
        records: int,
        transport: str,
        size: int,
        header_tenant: str | None,
        sender_tenant: str | None,
        sample: Callable[..., SampleOutcome] | None = None,
    ) -> ConsumeResult:
        """`sample`: the sampler's sample() unless the caller knows a shorter way."""
        too_large, too_large_message = refuse_large_bodies(request, self._max_log_body_bytes, size)
        outcome = (sample or self._sampler.sample)(request, header_tenant, sender_tenant)
        return await self._forward(
            outcome, request.SerializeToString, records, transport, too_large, too_large_message
        )

    async def _forward(
        self,
        outcome: SampleOutcome,
        serialized: Callable[[], bytes],
        records: int,
        transport: str,
        too_large: int,
        too_large_message: str,
    ) -> ConsumeResult:
        forwarded = outcome.kept + outcome.recalled
        if forwarded:
            # No await since has_room(): the room is still there; only a journal that cannot
            # be written refuses now.
            if not self._queue.offer(serialized(), forwarded, admitted=True):
                self._sampler.give_back(outcome)
                return self._journal_failed(records, transport)
            try:
                await self._queue.durable()
            except OSError as exc:
                # Queued all the same (exported unless the process dies first), recalled
                # records included: the sender's retry makes duplicates, never a loss.
                log.error("persistent queue: cannot make %d records durable: %s", records, exc)
                return self._journal_failed(records, transport)
        if too_large:
            self.refused(too_large, transport, "limits")
        self._count(outcome, transport)
        response = ExportLogsServiceResponse()
        if outcome.rejected or too_large:
            response.partial_success.rejected_log_records = outcome.rejected + too_large
            response.partial_success.error_message = "; ".join(
                message for message in (too_large_message, outcome.rejection_message) if message
            )
        return ConsumeResult(response, records)

    def _journal_failed(self, records: int, transport: str) -> ConsumeResult:
        self.refused(records, transport, "journal")
        return ConsumeResult(ExportLogsServiceResponse(), records, JOURNAL_FAILED, unavailable=True)

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
        if outcome.cleared_trace_ids:
            telemetry.counter("lipservice_sampler_cleared_ids", field="trace_id").inc(
                outcome.cleared_trace_ids
            )
        if outcome.cleared_span_ids:
            telemetry.counter("lipservice_sampler_cleared_ids", field="span_id").inc(
                outcome.cleared_span_ids
            )
        # Only with a tenant key (else these are empty); label values bounded by the cap.
        for tenant, received in outcome.received_by_tenant.items():
            kept = outcome.kept_by_tenant[tenant]
            if kept:
                telemetry.counter(
                    "lipservice_receiver_tenant_records", tenant=tenant, decision="kept"
                ).inc(kept)
            if received > kept:
                telemetry.counter(
                    "lipservice_receiver_tenant_records", tenant=tenant, decision="dropped"
                ).inc(received - kept)
        if outcome.tenant_overflow_records:
            telemetry.counter("lipservice_sampler_tenant_overflow_records").inc(
                outcome.tenant_overflow_records
            )
