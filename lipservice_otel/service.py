"""The running process: builds every component from Settings and owns their lifecycle.

start(): metrics endpoint, sending queue, receiver, policy watcher, interval ticker.
stop():  receiver stops taking calls (in-flight calls finish), the queue drains up to the
         shutdown deadline, the last interval is reported, metrics endpoint closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lipservice_otel.aggregates import Aggregates, IntervalReport
from lipservice_otel.config import Settings
from lipservice_otel.exporter import Exporter, build_exporter
from lipservice_otel.exporter.queue import SendingQueue
from lipservice_otel.pipeline import Pipeline
from lipservice_otel.policy import Policy, policy_from_document
from lipservice_otel.policy_source import PolicyFileWatcher, read_policy_file
from lipservice_otel.receiver.otlp_grpc import GrpcLogsReceiver
from lipservice_otel.sampler import Sampler
from lipservice_otel.telemetry import Telemetry

log = logging.getLogger(__name__)

ReportSink = Callable[[IntervalReport], None]


def initial_policy(settings: Settings) -> Policy:
    if settings.policy.file:
        return read_policy_file(settings.policy.file, version=1)
    return policy_from_document(settings.policy.document, version=1)


class Service:
    def __init__(
        self,
        settings: Settings,
        exporter: Exporter | None = None,
        report_sink: ReportSink | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        self.aggregates = Aggregates(settings.sampler.max_aggregate_keys)
        self.sampler = Sampler(settings.sampler, initial_policy(settings), self.aggregates)
        self._exporter = exporter or build_exporter(settings.exporter)
        self._report_sink = report_sink
        self.queue: SendingQueue | None = None
        self.receiver: GrpcLogsReceiver | None = None
        self.metrics_port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def set_policy(self, policy: Policy) -> None:
        self.sampler.set_policy(policy)
        self.telemetry.gauge("lipservice_policy_version").set(policy.version)

    async def start(self) -> None:
        settings = self.settings
        if settings.telemetry.metrics_endpoint:
            self.metrics_port = self.telemetry.serve(settings.telemetry.metrics_endpoint)
        self.queue = SendingQueue(
            self._exporter, settings.exporter.queue, settings.exporter.retry, self.telemetry
        )
        self.queue.start()
        pipeline = Pipeline(self.sampler, self.queue, self.telemetry)
        self.receiver = GrpcLogsReceiver(settings.receiver.grpc, pipeline)
        await self.receiver.start()
        self.set_policy(self.sampler.policy)
        if settings.policy.file:
            watcher = PolicyFileWatcher(
                settings.policy.file,
                settings.policy.reload_interval_s,
                self.set_policy,
                self.sampler.policy.version,
            )
            self._tasks.append(asyncio.create_task(watcher.run(), name="policy-watch"))
        self._tasks.append(asyncio.create_task(self._report_every_interval(), name="report"))

    async def stop(self) -> int:
        """Graceful stop; returns the number of records that could not be exported in time."""
        deadline = self.settings.shutdown_timeout_s
        if self.receiver is not None:
            await self.receiver.stop(grace_s=min(deadline, 5.0))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        left = await self.queue.shutdown(deadline) if self.queue is not None else 0
        self._report()
        self.telemetry.shutdown()
        return left

    async def _report_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sampler.report_interval_s)
            self._report()

    def _report(self) -> None:
        self.telemetry.gauge("lipservice_patterns_distinct").set(self.aggregates.distinct_keys())
        report = self.aggregates.drain()
        self.telemetry.counter("lipservice_aggregate_overflow_records").inc(report.overflow_records)
        if self._report_sink is not None:
            self._report_sink(report)
        received = sum(c.received for c in report.counts)
        kept = sum(c.kept for c in report.counts)
        log.debug(
            "interval: %d records, %d kept, %d patterns", received, kept, len(report.patterns)
        )
