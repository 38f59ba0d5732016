"""Receiver side of the control plane: stream reports up, apply policies that come down.

The client reconnects forever with jittered exponential backoff. While the analysis service is
unreachable the receiver keeps sampling with its last policy, which is also written to a local
cache file so a restarted receiver resumes it before it can reach the analyzer again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable

import grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.control.codec import report_to_proto
from lipservice_otel.control.config import ControlClientTlsConfig
from lipservice_otel.control.security import authorization_metadata, client_channel
from lipservice_otel.policy.codec import policy_from_bytes, policy_from_proto
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport
from lipservice_otel.telemetry import Telemetry

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.2
# Reports waiting while disconnected; older ones are dropped (the analyzer learns from the next).
PENDING_REPORTS = 16


def read_policy_cache(path: str | None) -> Policy | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as handle:
            return policy_from_bytes(handle.read())
    except Exception as exc:  # a corrupt cache must not stop the receiver from starting
        log.warning("ignoring unreadable policy cache %s: %s", path, exc)
        return None


def write_policy_cache(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".policy-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except OSError:
        # A full disk must not also fill the directory with half-written copies.
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class ControlClient:
    def __init__(
        self,
        endpoint: str,
        receiver_id: str,
        on_policy: Callable[[Policy], None],
        current_version: Callable[[], int],
        reconnect_max_s: float,
        policy_cache_file: str | None,
        token: str | None = None,
        tls: ControlClientTlsConfig | None = None,
        telemetry: Telemetry | None = None,
        knows: Callable[[str], bool] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._receiver_id = receiver_id
        self._on_policy = on_policy
        self._current_version = current_version
        # Whether the policy in force says the analysis has a pattern's template (Policy.knows).
        self._knows = knows or (lambda _pattern_id: False)
        self._reconnect_max_s = reconnect_max_s
        self._cache_file = policy_cache_file
        self._metadata = authorization_metadata(token)
        self._tls = tls or ControlClientTlsConfig()
        self._telemetry = telemetry or Telemetry()
        # A bounded deque drops the oldest report when full.
        self._reports: deque[tuple[IntervalReport, int]] = deque(maxlen=PENDING_REPORTS)
        self._reports_waiting = asyncio.Event()
        self.connected = asyncio.Event()

    @property
    def pending_reports(self) -> int:
        return len(self._reports)

    def report(self, report: IntervalReport) -> None:
        # Stamped when the interval closes, not when the report is sent after a reconnection.
        self._reports.append((report, time.time_ns()))
        self._reports_waiting.set()

    async def run(self) -> None:
        """Sync until cancelled. Every failure, expected (the analyzer away) or not, is logged,
        counted and followed by a reconnection with backoff: policy sync must never end."""
        backoff = INITIAL_BACKOFF_S
        while True:
            try:
                await self._session()
                backoff = INITIAL_BACKOFF_S
            except grpc.aio.AioRpcError as exc:
                self._count_error(exc.code().name.lower())
                log.warning(
                    "control plane %s: %s: %s; keeping policy version %d",
                    self._endpoint,
                    exc.code().name,
                    exc.details(),
                    self._current_version(),
                )
            except Exception as exc:  # anything else would end policy sync for good, silently
                self._count_error("internal")
                log.error(
                    "control plane %s: sync failed: %r; keeping policy version %d, reconnecting",
                    self._endpoint,
                    exc,
                    self._current_version(),
                )
            self.connected.clear()
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._reconnect_max_s)

    def _count_error(self, error: str) -> None:
        self._telemetry.counter("lipservice_control_sync_errors", error=error).inc()

    async def _session(self) -> None:
        ended = asyncio.Event()
        try:
            async with client_channel(self._endpoint, self._tls) as channel:
                await self._follow(channel, self._requests(ended))
        finally:
            ended.set()
            self._reports_waiting.set()  # wakes the ended stream's requests, which return

    async def _follow(self, channel: grpc.aio.Channel, requests) -> None:
        """One Sync stream: `requests` up, every policy version down applied."""
        stub = control_pb2_grpc.ControlPlaneStub(channel)
        async for response in stub.Sync(requests, metadata=self._metadata):
            self.connected.set()
            self._apply(response.policy)

    async def _next_report(self, ended: asyncio.Event) -> tuple[IntervalReport, int] | None:
        """The oldest waiting report, or None once the stream has ended: grpc may leave an
        ended call's request iterator waiting, and it must not take the next stream's report."""
        while not self._reports:
            self._reports_waiting.clear()
            await self._reports_waiting.wait()
            if ended.is_set():
                return None
        return None if ended.is_set() else self._reports.popleft()

    async def _requests(self, ended: asyncio.Event):
        yield control_pb2.SyncRequest(
            hello=control_pb2.ReceiverHello(
                receiver_id=self._receiver_id, policy_version=self._current_version()
            )
        )
        # Patterns whose template and examples went up this stream. Once the policy knows one
        # too, its reports carry only its counts: the templates and examples are nine tenths
        # of a report's bytes. A new stream (an analyzer restarted without its state, another
        # replica) gets them all again first.
        sent: set[str] = set()
        while (waiting := await self._next_report(ended)) is not None:
            report, closed_at = waiting
            known = {pid for pid in report.patterns if pid in sent and self._knows(pid)}
            sent.update(report.patterns)
            self._telemetry.counter("lipservice_control_samples_omitted").inc(len(known))
            yield control_pb2.SyncRequest(
                report=report_to_proto(
                    report, self._receiver_id, self._current_version(), closed_at, known
                )
            )

    def _apply(self, message: control_pb2.Policy) -> None:
        try:
            policy = policy_from_proto(message)
            self._on_policy(policy)
        except Exception as exc:  # a bad version must not cost the stream: the next may do
            self._count_error("bad_policy")
            log.error(
                "control plane %s: cannot apply policy version %d: %r; keeping version %d",
                self._endpoint,
                message.version,
                exc,
                self._current_version(),
            )
            return
        if self._cache_file:
            try:
                write_policy_cache(self._cache_file, message.SerializeToString())
            except OSError as exc:  # applied all the same; only a restart would miss it
                self._count_error("policy_cache")
                log.error("cannot write the policy cache %s: %s", self._cache_file, exc)
        log.info("policy version %d from %s", policy.version, self._endpoint)
