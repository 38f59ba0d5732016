"""The control-plane gRPC service in front of an analysis loop.

`Sync` is a bidirectional stream per receiver: reports come up and are folded into the next
analysis cycle; every new policy version goes down to every connected receiver. The admin
calls back the `lipservice-otel policy` commands, `Savings` the `lipservice-otel report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.analysis.loop import AnalysisLoop, PatternView
from lipservice_otel.analysis.state import Override
from lipservice_otel.control.codec import InvalidReport, check_report, report_from_proto
from lipservice_otel.control.config import ReportLimitsConfig
from lipservice_otel.control.security import (
    CONTROL_SERVICE_NAME,
    MESSAGE_SIZE_OPTIONS,
    ControlAuthInterceptor,
    ControlTokens,
    peer_identity,
)
from lipservice_otel.policy.codec import exemption_from_proto, policy_to_proto
from lipservice_otel.policy.model import Policy
from lipservice_otel.policy.slice import PolicySlicer
from lipservice_otel.receiver.config import ReceiverTlsConfig
from lipservice_otel.receiver.security import grpc_server_credentials
from lipservice_otel.report.codec import savings_to_proto
from lipservice_otel.report.config import ReportConfig
from lipservice_otel.report.current import CurrentSavings
from lipservice_otel.report.savings import Price
from lipservice_otel.store import Store, StoreUnavailable
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.validation import ConfigError

log = logging.getLogger(__name__)

# Policies waiting for a slow receiver; only the newest matters, so older ones are dropped.
SUBSCRIBER_QUEUE = 4


@dataclass(slots=True, eq=False)  # one per stream: compared and hashed as itself
class _Stream:
    """One open Sync stream, as its handler and its report reader share it."""

    queue: asyncio.Queue[Policy] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    names: set[str] = field(default_factory=set)  # the receiver ids it spoke for
    # With policy slices: the pattern ids its slice is cut by (_slice_by), and whether the
    # current version is owed to it (held back at the hello until it has reported).
    reported: set[str] = field(default_factory=set)
    owed: bool = False

    def offer(self, policy: Policy) -> None:
        """Only the newest versions matter to a slow receiver: the oldest waiting goes."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(policy)


def pattern_to_proto(view: PatternView) -> control_pb2.PatternStatus:
    return control_pb2.PatternStatus(
        pattern_id=view.pattern_id,
        service=view.service,
        template=view.template,
        examples=view.examples,
        volume_per_second=view.volume_per_second,
        error_share=view.error_share,
        rate=view.rate,
        reason=view.reason,
        explanation=view.explanation,
        first_seen_unix_nano=int(view.first_seen * 1e9),
        last_seen_unix_nano=int(view.last_seen * 1e9),
        merged_signatures=view.merged_signatures,
        tenant=view.tenant,
    )


class ControlPlaneService(control_pb2_grpc.ControlPlaneServicer):
    def __init__(
        self,
        loop: AnalysisLoop,
        store: Store,
        limits: ReportLimitsConfig | None = None,
        telemetry: Telemetry | None = None,
        price: Price | None = None,
        savings: CurrentSavings | None = None,
        slices: bool = False,
    ) -> None:
        self._loop = loop
        # The cycle's savings report, shared with the savings gauges and the live page; its
        # price (report.price_per_gib) is the report's unless a request brings its own.
        self._savings = savings or CurrentSavings(loop, price or Price())
        self._store = store
        self._limits = limits or ReportLimitsConfig()
        self._telemetry = telemetry or Telemetry()
        self._subscribers: set[_Stream] = set()
        # Receivers with a Sync stream open -> the policy version each last reported; an id
        # leaves when its last stream ends, so pods coming and going do not pile up here.
        self.receivers: dict[str, int] = {}
        self._streams_of: Counter[str] = Counter()
        # The newest version as the bytes every stream sends, encoded once for all: at 50,000
        # rules converting takes ~0.1 s and serializing ~5 ms, per receiver when each stream
        # did its own (start_control_server sends Sync's responses as they are).
        self._encoded: tuple[Policy, bytes] | None = None
        # control.policy_slices: each stream gets the rules of the patterns it reported.
        self._slices = slices
        self._slicer: PolicySlicer | None = None
        # A sharded analysis splits each report as the message came; one loop learns from
        # our values.
        if isinstance(loop, AnalysisLoop):
            self._ingest = lambda message: loop.ingest(report_from_proto(message))
        else:
            self._ingest = loop.ingest_message
        loop.subscribe(self.publish)

    def sync_response(self, policy: Policy) -> bytes:
        """The SyncResponse carrying `policy`, serialized."""
        encoded = self._encoded
        if encoded is None or encoded[0] is not policy:
            message = control_pb2.SyncResponse(policy=policy_to_proto(policy))
            encoded = self._encoded = (policy, message.SerializeToString())
        return encoded[1]

    def sliced_response(self, policy: Policy, pattern_ids: set[str]) -> bytes:
        """The SyncResponse carrying the slice of `policy` for these reported patterns."""
        slicer = self._slicer_of(policy)
        message = control_pb2.SyncResponse(policy=policy_to_proto(slicer.slice(pattern_ids)))
        return message.SerializeToString()

    def _slicer_of(self, policy: Policy) -> PolicySlicer:
        if self._slicer is None or self._slicer.policy is not policy:
            self._slicer = PolicySlicer(policy)
        return self._slicer

    def _response(self, policy: Policy, stream: _Stream) -> bytes:
        if self._slices:
            return self.sliced_response(policy, stream.reported)
        return self.sync_response(policy)

    def publish(self, policy: Policy) -> None:
        for stream in self._subscribers:
            stream.offer(policy)

    async def Sync(self, request_iterator, context):
        stream = _Stream()
        self._subscribers.add(stream)
        # Under mutual TLS the certificate says who the receiver is; a declared id could
        # pass for another receiver.
        identity = peer_identity(context)
        reader = asyncio.create_task(self._read_reports(request_iterator, stream, identity))
        getter: asyncio.Future[Policy] | None = None
        try:
            while not reader.done():
                getter = asyncio.ensure_future(stream.queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield self._response(getter.result(), stream)
                else:
                    getter.cancel()
            refused = None if reader.cancelled() else reader.exception()
            if isinstance(refused, InvalidReport):
                self._telemetry.counter(
                    "lipservice_control_refused_reports", reason=refused.reason
                ).inc()
                log.warning("report refused: %s", refused)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"report refused: {refused}")
        finally:
            self._subscribers.discard(stream)
            for name in stream.names:
                self._streams_of[name] -= 1
                if self._streams_of[name] <= 0:
                    del self._streams_of[name]
                    self.receivers.pop(name, None)
            self._telemetry.gauge("lipservice_control_receivers").set(len(self.receivers))
            # Left pending when the call is cancelled (the receiver went, the server stops),
            # it would be garbage-collected later: "Task was destroyed but it is pending!".
            if getter is not None:
                getter.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, InvalidReport):
                await reader

    async def _read_reports(self, request_iterator, stream: _Stream, identity: str | None) -> None:
        name_chars = self._limits.max_name_chars

        def seen(receiver: str, version: int) -> None:
            if receiver not in stream.names:
                stream.names.add(receiver)
                self._streams_of[receiver] += 1
            self.receivers[receiver] = version
            self._telemetry.gauge("lipservice_control_receivers").set(len(self.receivers))

        async for request in request_iterator:
            kind = request.WhichOneof("message")
            if kind == "hello":
                hello = request.hello
                if len(hello.receiver_id) > name_chars:
                    raise InvalidReport("limits", f"receiver_id is longer than {name_chars} chars")
                receiver = identity or hello.receiver_id
                seen(receiver, hello.policy_version)
                current = self._loop.policy
                if current is not None and current.version != hello.policy_version:
                    # Sliced, it waits for the first report: a slice of nothing would take
                    # every rule from a receiver reconnecting with its policy.
                    if self._slices:
                        stream.owed = True
                    else:
                        stream.offer(current)
                log.info("receiver %s connected (policy %d)", receiver, hello.policy_version)
            elif kind == "report":
                report = request.report
                check_report(report, self._limits, time.time_ns())
                seen(identity or report.receiver_id, report.policy_version)
                self._ingest(report)
                if self._slices:
                    self._slice_by(stream, report)

    def _slice_by(self, stream: _Stream, report: control_pb2.AggregateReport) -> None:
        """The stream's slice: the patterns of its latest report, and those it reported before
        that the current version has rules for (so it stays bounded by what the analysis
        tracks). The current version goes again at once when it has rules for one of the
        report's new patterns (or is owed since the hello): a pattern the analysis knows is
        then not new to this receiver for a whole interval."""
        ids = {c.pattern_id for c in report.counts}
        new = ids - stream.reported
        current = self._loop.policy
        if current is None:
            stream.reported |= ids
            return
        slicer = self._slicer_of(current)
        stream.reported = ids | {pid for pid in stream.reported if slicer.covers(pid)}
        if stream.owed or any(slicer.covers(pid) for pid in new):
            stream.owed = False
            stream.offer(current)

    async def GetPolicy(self, request, context):
        policy = self._loop.policy
        if policy is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no policy has been generated yet")
        return policy_to_proto(policy)

    async def ListPatterns(self, request, context):
        try:
            views = await self._loop.all_patterns(request.service)
        except StoreUnavailable as exc:  # sharded: the other replicas' shards are in Redis
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"policy store: {exc}")
        if request.tenant:
            views = [view for view in views if view.tenant == request.tenant]
        if request.limit:
            views = views[: request.limit]
        return control_pb2.ListPatternsResponse(patterns=[pattern_to_proto(v) for v in views])

    async def Regenerate(self, request, context):
        try:
            policy = await self._loop.regenerate()
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"policy store: {exc}")
        return policy_to_proto(policy or self._loop.policy or Policy())

    async def SetOverride(self, request, context):
        has_exemption = request.HasField("exemption")
        if not request.pattern_id and not has_exemption:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "an override needs pattern_id or exemption"
            )
        if request.pattern_id and not 0 <= request.rate <= 1:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"rate must be 0-1, got {request.rate}"
            )
        if request.expires_unix_nano and request.expires_unix_nano < time.time_ns():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expires_unix_nano is past")
        exemption = None
        if has_exemption:
            try:
                exemption = exemption_from_proto(request.exemption)
            except Exception as exc:  # re.error and friends: a bad regex from a person
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"exemption: {exc}")
        key = request.pattern_id or f"exemption/{request.exemption.name}"
        override = Override(
            key=key,
            rate=request.rate if request.pattern_id else None,
            exemption=exemption,
            # People give the expiry on their wall clock; the analysis ages it on its own.
            expires_at=(
                self._loop.from_wall(request.expires_unix_nano / 1e9)
                if request.expires_unix_nano
                else 0.0
            ),
            note=request.note,
        )
        try:
            policy = await self._loop.set_override(override)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"policy store: {exc}")
        return policy_to_proto(policy or self._loop.policy or Policy())

    async def History(self, request, context):
        try:
            versions = await self._store.history(request.limit or 20)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"policy store: {exc}")
        return control_pb2.HistoryResponse(versions=[policy_to_proto(p) for p in versions])

    async def Savings(self, request, context):
        price = self._savings.price
        if request.HasField("price_per_gib") or request.HasField("currency"):
            asked = ReportConfig(
                request.price_per_gib if request.HasField("price_per_gib") else price.per_gib,
                request.currency if request.HasField("currency") else price.currency,
            )
            try:
                asked.validate("report")
            except ConfigError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            price = asked.price
        # The cycle's report, as the gauges have it; a price asked for changes the money only.
        report = replace(await self._savings.current(), price=price)
        # The message is built in a worker thread: 50,000 patterns take a second.
        return await asyncio.to_thread(savings_to_proto, report)


class _Registrations:
    """Takes what the generated registration would add to a server."""

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # the same handlers come to add_registered_method_handlers

    def add_registered_method_handlers(self, service_name: str, handlers: dict) -> None:
        self.service_name, self.handlers = service_name, handlers


def add_control_plane(service: ControlPlaneService, server: grpc.aio.Server) -> None:
    """The generated registration, but Sync's responses go out as the bytes the service
    encoded once for every stream (ControlPlaneService.sync_response)."""
    taken = _Registrations()
    control_pb2_grpc.add_ControlPlaneServicer_to_server(service, taken)
    handlers = dict(taken.handlers)
    handlers["Sync"] = grpc.stream_stream_rpc_method_handler(
        service.Sync,
        request_deserializer=control_pb2.SyncRequest.FromString,
        response_serializer=None,  # already bytes
    )
    generic = grpc.method_handlers_generic_handler(taken.service_name, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(taken.service_name, handlers)


async def start_control_server(
    service: ControlPlaneService,
    endpoint: str,
    tls: ReceiverTlsConfig | None = None,
    tokens: ControlTokens | None = None,
    telemetry: Telemetry | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Serve `service` on `endpoint`, with TLS when `tls` is enabled and a credential check on
    every ControlPlane call when `tokens` holds any."""
    interceptors = []
    if tokens is not None and tokens.any:
        interceptors.append(ControlAuthInterceptor(tokens, telemetry or Telemetry()))
    server = grpc.aio.server(interceptors=interceptors, options=MESSAGE_SIZE_OPTIONS)
    add_control_plane(service, server)
    # The standard health service, so Kubernetes can probe `analyze` with a grpc probe.
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is not None and tls.enabled:
        port = server.add_secure_port(endpoint, grpc_server_credentials(tls))
    else:
        port = server.add_insecure_port(endpoint)
    if not port:
        raise OSError(f"control.listen: cannot bind {endpoint}")
    await server.start()
    for name in ("", CONTROL_SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("control plane listening on %s%s", endpoint, " (TLS)" if tls and tls.enabled else "")
    return server, port
