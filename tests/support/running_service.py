"""A Service on free ports, run on its own event loop thread as `serve` runs it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

from lipservice_otel.app.service import Service
from lipservice_otel.settings import Settings, load_settings
from tests.support.samplers import implementation


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
        # A transport closed by the stop finishes closing on a later turn of the loop (its
        # connection_lost is scheduled, not called): stopping the loop at once would leave
        # those sockets open until the garbage collector warns about them.
        self.call(lambda: asyncio.sleep(0.1))
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
        "ui.endpoint": "",
        "exporter.queue.batch_timeout_s": 0.05,
        "exporter.retry.initial_interval_s": 0.05,
    }
    if sink_endpoint:
        base["exporter.type"] = "otlp"
        base["exporter.otlp.endpoint"] = sink_endpoint
    base["sampler.implementation"] = implementation()
    base.update(overrides)
    return load_settings(environ={}, overrides=base)


def with_policy(settings: Settings, **document) -> Settings:
    return replace(settings, policy=replace(settings.policy, document=document))
