"""The running processes: `serve` (receiver, sampler, exporter, and by default an embedded
analysis loop) and `analyze` (the analysis loop alone, for many receivers).

Service.start(): metrics endpoint, sending queue, receivers, policy source, interval ticker.
Service.stop():  the receivers stop taking calls (in-flight calls finish), the last interval is
                 reported, the queue drains up to the shutdown deadline, the store is persisted,
                 the metrics endpoint closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable

from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.app.sharded import ShardedAnalysis
from lipservice_otel.control.client import ControlClient, read_policy_cache
from lipservice_otel.control.security import check_exposure, control_tokens
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.exporter import Exporter, build_exporter
from lipservice_otel.exporter.journal import Journal
from lipservice_otel.exporter.queue import SendingQueue
from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.policy.model import Policy
from lipservice_otel.policy.source import PolicyFileWatcher, read_policy_file
from lipservice_otel.receiver.otlp_grpc import GrpcLogsReceiver
from lipservice_otel.receiver.otlp_http import HttpLogsReceiver
from lipservice_otel.receiver.pipeline import Pipeline
from lipservice_otel.report.current import CurrentSavings
from lipservice_otel.sampling.aggregates import Aggregates, IntervalReport
from lipservice_otel.sampling.implementation import build_sampler, implementation_of
from lipservice_otel.sampling.tenant import parse_tenant_key
from lipservice_otel.settings import Settings
from lipservice_otel.store import Store, StoreUnavailable, build_store
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.ui.server import LiveUi

log = logging.getLogger(__name__)

ReportSink = Callable[[IntervalReport], None]

# Longest wait between attempts to reach a store that is away (Redis restarting).
STORE_RETRY_MAX_S = 30.0


def configured_policy(settings: Settings) -> Policy:
    """The policy people wrote (file or inline document), before any learning."""
    if settings.policy.file:
        return read_policy_file(settings.policy.file, version=1)
    return policy_from_document(settings.policy.document, version=1)


def default_receiver_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and wait. A task that had already failed is logged, not raised: the stop that
    calls this must still report, drain the queue and stop the analysis."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception):
            log.error("background task %s had failed", task.get_name(), exc_info=result)
    tasks.clear()


class StoreOutage:
    """Failed attempts to reach the store: one log line each (no traceback: an unreachable
    Redis is an operating condition, not a bug), and a wait that doubles from `first_wait_s`
    up to STORE_RETRY_MAX_S (or `first_wait_s`, if longer). A Redis away for minutes costs
    a handful of lines."""

    def __init__(self, what: str, first_wait_s: float) -> None:
        self._what = what
        self._first_wait_s = first_wait_s
        self.failures = 0

    def failed(self, exc: Exception) -> float:
        """Log this failure; returns how long to wait before the next attempt."""
        self.failures += 1
        longest = max(self._first_wait_s, STORE_RETRY_MAX_S)
        wait = min(self._first_wait_s * 2 ** (self.failures - 1), longest)
        log.log(
            logging.ERROR if self.failures == 1 else logging.WARNING,
            "%s: store unavailable (%s); receivers keep their policy; attempt %d, next in %.1f s",
            self._what,
            exc,
            self.failures,
            wait,
        )
        return wait

    def recovered(self) -> None:
        if self.failures:
            log.info("%s: store reachable after %d failed attempts", self._what, self.failures)
        self.failures = 0


class Analyzer:
    """An analysis loop with its store and control-plane server, embedded or standalone."""

    def __init__(
        self,
        settings: Settings,
        base: Policy,
        writer_id: str,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.store: Store = build_store(settings.store)
        # Sharded (store.redis.shards >= 1): every replica learns its share of the shards.
        self._sharded = settings.store.type == "redis" and settings.store.redis.shards > 0
        self.loop: AnalysisLoop | ShardedAnalysis
        if self._sharded:
            # A lease names one process start: a restart with the same host and pid (pid 1
            # in a container) must not pass for the owner whose leases it finds.
            replica = f"{writer_id}-{secrets.token_hex(3)}"
            self.loop = ShardedAnalysis(settings.analysis, self.store, base, replica, telemetry)
        else:
            self.loop = AnalysisLoop(settings.analysis, self.store, base, telemetry=telemetry)
        # Checked before anything binds: an exposed control plane nobody guards stops the start.
        self._tokens = control_tokens(settings.control)
        check_exposure(settings.control, self._tokens)
        self._telemetry = telemetry
        # One savings report per cycle: the gauges, the `Savings` call and the page share it.
        # Without /metrics nothing reads the gauges, so no cycle computes them.
        exported = telemetry if settings.telemetry.metrics_endpoint else None
        self.savings = CurrentSavings(self.loop, settings.report.price, exported)
        self.control = ControlPlaneService(
            self.loop,
            self.store,
            settings.control.report_limits,
            telemetry,
            price=settings.report.price,
            savings=self.savings,
            slices=settings.control.policy_slices,
        )
        # The live page, checked for exposure against the same tokens before anything binds.
        self.ui = (
            LiveUi(
                settings.ui,
                settings.control,
                self._tokens,
                self.loop,
                self.store,
                settings.report.price,
                self.savings,
            )
            if settings.ui.enabled
            else None
        )
        self._writer_id = writer_id
        self._base_version = base.version
        self._server = None
        self._local_server = None
        self.port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._restored = False

    async def start(self, listen: str | None) -> None:
        try:
            await self.loop.restore()
            self._restored = True
        except StoreUnavailable as exc:
            # Receivers keep sampling with their own last policy meanwhile; learning waits.
            log.error("store unavailable at start (%s): restoring once it answers", exc)
        if listen:
            self._server, self.port = await start_control_server(
                self.control, listen, self.settings.control.tls, self._tokens, self._telemetry
            )
        if self.ui is not None:
            await self.ui.start()
        self._tasks.append(asyncio.create_task(self._cycle_while_writer(), name="analysis"))
        if self._sharded:
            self._tasks.append(asyncio.create_task(self._keep_shards(), name="shards"))
        self._tasks.append(asyncio.create_task(self._follow_other_writers(), name="follow"))
        if self.settings.store.type == "memory" and self.settings.store.snapshot_file:
            self._tasks.append(asyncio.create_task(self._snapshot_periodically(), name="snap"))
        policy = self.settings.policy
        if policy.file:
            # Watched here, so `analyze` and `serve --workers` reload it as plain `serve` does.
            watcher = PolicyFileWatcher(policy.file, policy.reload_interval_s, self._base_version)
            self._tasks.append(
                asyncio.create_task(self._follow_policy_file(watcher), name="policy-watch")
            )

    async def _cycle_while_writer(self) -> None:
        """Only the lock holder learns and writes; a standby replica serves the stored policy.
        Sharded, every replica cycles the shards it owns. While the store is away, attempts
        back off and each costs one log line."""
        interval = self.settings.analysis.interval_s
        outage = StoreOutage("analysis", interval)
        wait = interval
        while True:
            await asyncio.sleep(wait)
            wait = interval
            try:
                if not self._restored:
                    # Learning before the history is read back would start the versions over.
                    await self.loop.restore()
                    self._restored = True
                if self._sharded or await self.store.acquire_writer(self._writer_id):
                    await self.loop.cycle()
                    await self.savings.refresh()
                else:
                    self.savings.withdraw()  # a standby's gauges would count the writer's twice
            except StoreUnavailable as exc:
                wait = outage.failed(exc)
                continue
            except Exception:
                log.exception("analysis cycle failed; receivers keep the last policy")
            outage.recovered()

    async def _keep_shards(self) -> None:
        """Leases renewed a few times per lock_ttl_s, so a live owner never loses one and a
        dead owner's shards are taken within lock_ttl_s and one tick."""
        tick = min(self.settings.store.redis.lock_ttl_s / 4, self.settings.analysis.interval_s)
        outage = StoreOutage("shards", tick)
        wait = 0.0  # take a share of the shards at once
        while True:
            await asyncio.sleep(wait)
            wait = tick
            try:
                await self.loop.tick()
            except StoreUnavailable as exc:
                wait = outage.failed(exc)
                continue
            except Exception:
                log.exception("shard leases: tick failed")
            outage.recovered()

    async def _follow_other_writers(self) -> None:
        outage = StoreOutage("policy watch", self.settings.analysis.interval_s)

        async def adopt(policy: Policy) -> None:
            outage.recovered()  # subscribed again: the watch hands over the latest version
            await self.loop.adopt(policy)  # which takes only a newer version

        while True:
            try:
                await self.store.watch(adopt)
            except StoreUnavailable as exc:
                await asyncio.sleep(outage.failed(exc))
            except Exception as exc:  # a standby that stops following serves stale policies
                log.exception("policy watch failed")
                await asyncio.sleep(outage.failed(exc))

    async def _follow_policy_file(self, watcher: PolicyFileWatcher) -> None:
        """The file is the base (mode, floor, default rates, exemptions) the learned rules are
        laid over; each edit is published before the file is looked at again."""
        async for base in watcher.changes():
            try:
                await self.loop.set_base(base)
            except Exception:
                log.exception("policy file: version %d not published", base.version)

    async def _snapshot_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.store.snapshot_interval_s)
            try:
                await self.store.snapshot()
            except OSError as exc:
                log.error("store snapshot failed, the previous one stays: %s", exc)

    async def listen_locally(self, endpoint: str) -> None:
        """A second, plaintext listener without tokens on a Unix socket in a private
        directory: its file permissions admit this user's processes (the `--workers`
        children) and nobody else, whatever TLS and tokens guard control.listen."""
        self._local_server, _ = await start_control_server(self.control, endpoint)

    async def stop(self) -> None:
        await _cancel(self._tasks)
        if self.ui is not None:
            await self.ui.stop()
        for server in (self._server, self._local_server):
            if server is not None:
                await server.stop(1.0)
        if self._sharded:
            try:
                await self.loop.leave()
            except StoreUnavailable as exc:  # the leases expire on their own
                log.warning("shards not given up at stop: %s", exc)
        await self.store.close()


class Service:
    def __init__(
        self,
        settings: Settings,
        exporter: Exporter | None = None,
        report_sink: ReportSink | None = None,
        receiver_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.receiver_id = receiver_id or default_receiver_id()
        self.telemetry = Telemetry()
        self.aggregates = Aggregates(settings.sampler.max_aggregate_keys)
        base = configured_policy(settings)
        cached = read_policy_cache(settings.control.policy_cache_file)
        self.sampler = build_sampler(
            settings.sampler,
            cached or base,
            self.aggregates,
            tenant_key=parse_tenant_key(settings.analysis.tenant_key, "analysis.tenant_key"),
            max_tenants=settings.analysis.max_tenants,
        )
        self.telemetry.gauge(
            "lipservice_sampler_implementation", implementation=implementation_of(self.sampler)
        ).set(1)
        self._exporter = exporter or build_exporter(settings.exporter)
        self._report_sinks: list[ReportSink] = [report_sink] if report_sink else []
        self.queue: SendingQueue | None = None
        self.receiver: GrpcLogsReceiver | None = None
        self.http_receiver: HttpLogsReceiver | None = None
        self.analyzer: Analyzer | None = None
        self.control_client: ControlClient | None = None
        self.metrics_port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        if settings.control.connect:
            tokens = control_tokens(settings.control)
            self.control_client = ControlClient(
                settings.control.connect,
                self.receiver_id,
                self.set_policy,
                lambda: self.sampler.policy.version,
                settings.control.reconnect_max_s,
                settings.control.policy_cache_file,
                token=tokens.bearer or tokens.admin,
                tls=settings.control.client_tls,
                telemetry=self.telemetry,
                knows=lambda pattern_id: self.sampler.policy.knows(pattern_id),
            )
            self._report_sinks.append(self.control_client.report)
        elif settings.analysis.embedded:
            self.analyzer = Analyzer(settings, base, self.receiver_id, self.telemetry)
            self._report_sinks.append(self.analyzer.loop.ingest)

    def set_policy(self, policy: Policy) -> None:
        self.sampler.set_policy(policy)
        self.telemetry.gauge("lipservice_policy_version").set(policy.version)

    async def start(self) -> None:
        settings = self.settings
        if settings.telemetry.metrics_endpoint:
            self.metrics_port = self.telemetry.serve(settings.telemetry.metrics_endpoint)
        persistent = settings.exporter.queue.persistent
        self.queue = SendingQueue(
            self._exporter,
            settings.exporter.queue,
            settings.exporter.retry,
            self.telemetry,
            journal=Journal(persistent) if persistent.directory else None,
        )
        self.queue.start()
        pipeline = Pipeline(
            self.sampler, self.queue, self.telemetry, settings.receiver.max_log_body_bytes
        )
        receivers = settings.receiver
        token, tenant_tokens = receivers.auth.bearer_token, receivers.auth.tenant_tokens
        self.receiver = GrpcLogsReceiver(
            receivers.grpc, pipeline, receivers.tls, token, tenant_tokens
        )
        await self.receiver.start()
        if settings.receiver.http.endpoint:
            self.http_receiver = HttpLogsReceiver(
                receivers.http,
                pipeline,
                self._receiver_grace_s(),
                receivers.tls,
                token,
                tenant_tokens,
            )
            await self.http_receiver.start()
        self.set_policy(self.sampler.policy)
        if self.analyzer is not None:
            await self.analyzer.start(settings.control.listen)
            self.analyzer.loop.subscribe(self.set_policy)
        if self.control_client is not None:
            self._tasks.append(asyncio.create_task(self.control_client.run(), name="control"))
        if settings.policy.file and self.analyzer is None and self.control_client is None:
            # Without analysis the file is the policy (the analyzer watches it as its base).
            watcher = PolicyFileWatcher(
                settings.policy.file, settings.policy.reload_interval_s, self.sampler.policy.version
            )
            self._tasks.append(
                asyncio.create_task(self._follow_policy_file(watcher), name="policy-watch")
            )
        self._tasks.append(asyncio.create_task(self._report_every_interval(), name="report"))

    async def stop(self) -> int:
        """Graceful stop; returns the number of records that could not be exported in time."""
        deadline = self.settings.shutdown_timeout_s
        stopping = []
        if self.receiver is not None:
            stopping.append(self.receiver.stop(grace_s=self._receiver_grace_s()))
        if self.http_receiver is not None:
            stopping.append(self.http_receiver.stop())
        await asyncio.gather(*stopping)
        await _cancel(self._tasks)
        self._report()
        left = await self.queue.shutdown(deadline) if self.queue is not None else 0
        if self.analyzer is not None:
            await self.analyzer.stop()
        self.telemetry.shutdown()
        return left

    async def _follow_policy_file(self, watcher: PolicyFileWatcher) -> None:
        async for policy in watcher.changes():
            self.set_policy(policy)

    def _receiver_grace_s(self) -> float:
        """How long calls in progress may take to finish once a receiver stops."""
        return min(self.settings.shutdown_timeout_s, 5.0)

    async def _report_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sampler.report_interval_s)
            self._report()

    def _report(self) -> None:
        self.telemetry.gauge("lipservice_patterns_distinct").set(self.aggregates.distinct_keys())
        report = self.aggregates.drain()
        self.telemetry.counter("lipservice_aggregate_overflow_records").inc(report.overflow_records)
        for sink in self._report_sinks:
            sink(report)
