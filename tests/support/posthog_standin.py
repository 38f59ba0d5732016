"""A stand-in for PostHog's logs ingestion (`POST /i/v1/logs`), enforcing its contract.

PostHog cloud cannot run offline, so this speaks its wire contract over real HTTP: the
project token as `Authorization: Bearer phc_...` (401 otherwise), OTLP protobuf or JSON
bodies, gzip, 413 for a body over 2 MiB as sent or after decompression, and, when told to,
429 with `Retry-After`, 503, or an answer that comes too late. It records every attempt and
every accepted request so tests can count deliveries, duplicates and retry timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.support.received import ReceivedLogs

LOGS_PATH = "/i/v1/logs"
MAX_BODY_BYTES = 2 * 1024 * 1024
TOKEN = "phc_standin_project_token"


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float
    status: int
    body_bytes: int
    decompressed_bytes: int


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int
    retry_after: str | None = None
    delay_s: float = 0.0  # answer this late (the request is still accepted if status is 200)


class PosthogStandIn(ReceivedLogs):
    wait_timeout_s = 30.0

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.attempts: list[Attempt] = []
        self._script: deque[Scripted] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner, self.port = asyncio.run_coroutine_threadsafe(
            self._start(), self._loop
        ).result(10)
        self.url = f"http://127.0.0.1:{self.port}{LOGS_PATH}"

    def answer_next(self, n: int, status: int, retry_after: str | None = None, delay_s=0.0):
        with self._lock:
            self._script.extend([Scripted(status, retry_after, delay_s)] * n)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self):
        # The limit is enforced by hand below, so oversize bodies are seen and recorded.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(LOGS_PATH, self._ingest)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site.port

    def _attempt(self, status: int, body_bytes: int, decompressed_bytes: int = 0) -> None:
        with self._lock:
            self.attempts.append(Attempt(time.monotonic(), status, body_bytes, decompressed_bytes))

    async def _ingest(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._attempt(401, len(body))
            return web.json_response({"error": "invalid project token"}, status=401)
        if len(body) > MAX_BODY_BYTES:
            self._attempt(413, len(body))
            return web.json_response({"error": "body too large"}, status=413)
        data = body
        if request.headers.get("Content-Encoding") == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                data = inflater.decompress(body, MAX_BODY_BYTES + 1)
            except zlib.error:
                self._attempt(400, len(body))
                return web.json_response({"error": "bad gzip"}, status=400)
            if len(data) > MAX_BODY_BYTES:
                self._attempt(413, len(body), len(data))
                return web.json_response({"error": "body too large"}, status=413)
        content_type = request.headers.get("Content-Type", "")
        try:
            if content_type == "application/x-protobuf":
                otlp = ExportLogsServiceRequest.FromString(data)
            elif content_type == "application/json":
                otlp = json_format.Parse(data, ExportLogsServiceRequest())
            else:
                self._attempt(415, len(body), len(data))
                return web.json_response({"error": "unsupported content type"}, status=415)
        except (DecodeError, json_format.ParseError):
            self._attempt(400, len(body), len(data))
            return web.json_response({"error": "invalid OTLP"}, status=400)
        with self._lock:
            scripted = self._script.popleft() if self._script else Scripted(200)
        if scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        self._attempt(scripted.status, len(body), len(data))
        if scripted.status != 200:
            headers = {"Retry-After": scripted.retry_after} if scripted.retry_after else None
            return web.json_response({"error": "scripted"}, status=scripted.status, headers=headers)
        with self._lock:
            self.requests.append(otlp)
        return web.json_response({})
