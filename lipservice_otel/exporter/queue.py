"""Bounded sending queue between the sampler and an exporter.

Receivers offer already-sampled, serialized requests with `offer()`, which never blocks: when
the queue (counted in records and bytes, in-flight batches included) has no room it returns
False and the receiver refuses the request with a retryable status, so accepted data is never
dropped for lack of space. Consumers merge queued requests into batches (by concatenating
their bytes, which protobuf defines as merging), let the exporter prepare them (e.g. split
under a size limit, off the event loop) and export each prepared request with retries:
jittered exponential backoff, the server's retry delay honoured, bounded by `max_elapsed_s`.

With a journal (the persistent queue) every offer is also written ahead to disk; `durable()`
tells the receiver when it may answer, a batch is marked done once exported or given up on,
and what a previous run left is queued again on `start()`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lipservice_otel.exporter import Exporter, ExportError
from lipservice_otel.exporter.config import QueueConfig, RetryConfig
from lipservice_otel.exporter.journal import Journal
from lipservice_otel.telemetry import Telemetry

log = logging.getLogger(__name__)


def backoff_delays(
    retry: RetryConfig, jitter: Callable[[], float] = random.random
) -> Iterator[float]:
    """Exponential delays with +-50 % jitter, capped at max_interval_s."""
    interval = retry.initial_interval_s
    while True:
        yield interval * (0.5 + jitter())
        interval = min(interval * 2, retry.max_interval_s)


@dataclass(slots=True)
class _Queued:
    payload: bytes
    records: int
    arrived: float
    seq: int = 0  # journal sequence number (0 without a journal)


@dataclass(slots=True)
class _Batch:
    payload: bytes
    records: int
    seqs: list[int]


class SendingQueue:
    def __init__(
        self,
        exporter: Exporter,
        queue: QueueConfig,
        retry: RetryConfig,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
    ) -> None:
        self._exporter = exporter
        self._config = queue
        self._retry = retry
        self._clock = clock
        self._journal = journal
        self._pending: deque[_Queued] = deque()
        self._records = 0  # queued + in flight
        self._bytes = 0
        self._last_seq = 0
        self._arrived = asyncio.Event()
        self._closing = False
        self._stop = asyncio.Event()
        self._consumers: list[asyncio.Task[None]] = []
        self._sent = telemetry.counter("lipservice_exporter_sent_records", exporter=exporter.name)
        self._failed = telemetry.counter(
            "lipservice_exporter_failed_records", exporter=exporter.name
        )
        self._telemetry = telemetry
        self._depth = telemetry.gauge("lipservice_queue_records")
        self._depth_bytes = telemetry.gauge("lipservice_queue_bytes")
        telemetry.gauge("lipservice_queue_capacity_records").set(queue.max_records)

    @property
    def records(self) -> int:
        return self._records

    def start(self) -> None:
        if self._journal is not None:
            replayed = self._journal.open()
            for entry in replayed:
                # Accepted before the restart: queued even past the bounds, never refused.
                self._enqueue(_Queued(entry.payload, entry.records, self._clock(), entry.seq))
            if replayed:
                records = sum(entry.records for entry in replayed)
                self._telemetry.counter("lipservice_queue_replayed_records").inc(records)
                log.info("persistent queue: replaying %d records", records)
        for n in range(self._config.consumers):
            self._consumers.append(asyncio.create_task(self._consume(), name=f"export-{n}"))

    def has_room(self, records: int, size: int = 0) -> bool:
        return (
            not self._closing
            and self._records + records <= self._config.max_records
            and self._bytes + size <= self._config.max_bytes
        )

    def offer(self, payload: bytes, records: int, admitted: bool = False) -> bool:
        """Queue a serialized request; False (nothing queued) when full, shutting down, or the
        journal cannot be written.

        `admitted`: the caller already checked has_room() for the request it received and the
        payload may hold a few more records or bytes than that (error context recalled from
        memory, bounded by its byte cap; annotations); those must not turn an accepted request
        into a refusal.
        """
        if not admitted and not self.has_room(records, len(payload)):
            return False
        seq = 0
        if self._journal is not None:
            try:
                seq = self._journal.append(payload, records)
            except OSError as exc:
                log.error("persistent queue: cannot write %d records: %s", records, exc)
                return False
            self._last_seq = seq
        self._enqueue(_Queued(payload, records, self._clock(), seq))
        return True

    async def durable(self) -> None:
        """Return once everything offered so far is as durable as the journal promises
        (at once without a journal); raises OSError when it cannot be made so."""
        if self._journal is not None:
            await self._journal.durable(self._last_seq)

    def _enqueue(self, queued: _Queued) -> None:
        self._pending.append(queued)
        self._account(queued.records, len(queued.payload))
        self._arrived.set()

    def _account(self, records: int, size: int) -> None:
        self._records += records
        self._bytes += size
        self._depth.set(self._records)
        self._depth_bytes.set(self._bytes)

    async def shutdown(self, timeout_s: float) -> int:
        """Stop accepting, export what is queued within `timeout_s`; returns records left."""
        self._closing = True
        self._arrived.set()
        try:
            await asyncio.wait_for(
                asyncio.gather(*self._consumers, return_exceptions=True), timeout_s
            )
        except TimeoutError:
            self._stop.set()  # interrupts backoff sleeps
            for task in self._consumers:
                task.cancel()
            await asyncio.gather(*self._consumers, return_exceptions=True)
        left = self._records
        if left and self._journal is not None:
            log.warning("shutdown deadline reached; %d records stay in the persistent queue", left)
            left = 0
        elif left:
            log.error("shutdown deadline reached with %d records not exported", left)
            self._failed.inc(left)
        if self._journal is not None:
            await self._journal.close()
        await self._exporter.close()
        return left

    async def _consume(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            try:
                await self._deliver(batch.payload, batch.records)
            finally:
                self._account(-batch.records, -len(batch.payload))
            # Not reached when cancelled at the shutdown deadline: the journal keeps the batch.
            if self._journal is not None:
                self._journal.done(batch.seqs)

    async def _deliver(self, payload: bytes, records: int) -> None:
        try:
            prepared = await asyncio.to_thread(self._exporter.prepare, payload, records)
        except Exception:
            log.exception("exporter %s could not prepare a batch", self._exporter.name)
            self._failed.inc(records)
            return
        if prepared.unsendable:
            log.error("dropping %d records: %s", prepared.unsendable, prepared.unsendable_reason)
            self._failed.inc(prepared.unsendable)
        for part, count in prepared.requests:
            await self._export_with_retry(part, count)

    async def _next_batch(self) -> _Batch | None:
        # Several consumers wait on the same queue: another may take what woke this one.
        while True:
            while not self._pending:
                if self._closing:
                    return None
                self._arrived.clear()
                await self._arrived.wait()
            await self._wait_to_fill()
            if self._pending:
                return self._take_batch()

    async def _wait_to_fill(self) -> None:
        """Wait for more only while the batch is small and its oldest record is young."""
        oldest = self._pending[0].arrived
        while (
            not self._closing
            and sum(queued.records for queued in self._pending) < self._config.batch_max_records
            and (remaining := oldest + self._config.batch_timeout_s - self._clock()) > 0
        ):
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break

    def _take_batch(self) -> _Batch:
        parts: list[bytes] = []
        seqs: list[int] = []
        records = 0
        while self._pending and (
            not parts or records + self._pending[0].records <= self._config.batch_max_records
        ):
            queued = self._pending.popleft()
            parts.append(queued.payload)
            seqs.append(queued.seq)
            records += queued.records
        return _Batch(b"".join(parts), records, seqs)

    async def _export_with_retry(self, payload: bytes, records: int) -> None:
        started = self._clock()
        delays = backoff_delays(self._retry)
        while True:
            try:
                rejected = await self._exporter.export(payload, records)
            except ExportError as error:
                self._telemetry.counter(
                    "lipservice_exporter_send_errors", exporter=self._exporter.name, code=error.code
                ).inc()
                delay = max(next(delays), error.retry_after_s or 0.0)
                elapsed = self._clock() - started
                if not error.retryable or elapsed + delay > self._retry.max_elapsed_s:
                    log.error("dropping %d records after export failure: %s", records, error)
                    self._failed.inc(records)
                    return
                log.warning("export failed (%s); retrying in %.2fs", error, delay)
                if await self._sleep_or_stop(delay):
                    self._failed.inc(records)
                    return
            except Exception:
                # A bug in an exporter must not kill the consumer and strand the queue.
                log.exception("exporter %s raised unexpectedly", self._exporter.name)
                self._failed.inc(records)
                return
            else:
                self._sent.inc(records - rejected)
                self._failed.inc(rejected)
                return

    async def _sleep_or_stop(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
        except TimeoutError:
            return False
        return True
