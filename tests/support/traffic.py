"""A scripted traffic generator for tests: patterns with volumes, sent over real gRPC."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
INFO, ERROR = 9, 17


@dataclass(frozen=True)
class Pattern:
    name: str
    body: str  # "{n}" is replaced by a varying number
    per_second: float
    severity: int = INFO


def build_request(
    records: list[tuple[Pattern, int]], service: str, rng: random.Random, tag: str, second: int
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    kv = resource_logs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = resource_logs.scope_logs.add()
    for pattern, count in records:
        for _ in range(count):
            record = scope.log_records.add()
            record.body.string_value = pattern.body.replace("{n}", str(rng.randrange(100_000)))
            record.severity_number = pattern.severity
            record.time_unix_nano = time.time_ns()
            for key, value in (("scenario.pattern", pattern.name), ("scenario.phase", tag)):
                attribute = record.attributes.add()
                attribute.key, attribute.value.string_value = key, value
            attribute = record.attributes.add()
            attribute.key, attribute.value.int_value = "scenario.second", second
    return request


class TrafficSender:
    """Sends `patterns` at their rates in ticks of `tick_s`; counts what it sent per pattern."""

    def __init__(self, endpoint: str, service: str = "scenario", seed: int = 5) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.export = self.channel.unary_unary(
            EXPORT,
            request_serializer=lambda payload: payload,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        self.service = service
        self.rng = random.Random(seed)
        self.sent: dict[tuple[str, str, int], int] = {}  # (phase, pattern, second) -> records
        self.started = time.monotonic()

    def second(self) -> int:
        return int(time.monotonic() - self.started)

    def run(self, patterns: list[Pattern], seconds: float, tag: str, tick_s: float = 0.1) -> None:
        carry = {p.name: 0.0 for p in patterns}
        end = time.monotonic() + seconds
        next_tick = time.monotonic()
        while time.monotonic() < end:
            second = self.second()
            batch = []
            for pattern in patterns:
                carry[pattern.name] += pattern.per_second * tick_s
                count = int(carry[pattern.name])
                carry[pattern.name] -= count
                if count:
                    batch.append((pattern, count))
                    key = (tag, pattern.name, second)
                    self.sent[key] = self.sent.get(key, 0) + count
            request = build_request(batch, self.service, self.rng, tag, second)
            self.export(request.SerializeToString(), timeout=10)
            next_tick += tick_s
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def close(self) -> None:
        self.channel.close()


def attributes(record) -> dict:
    values = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values


# Steady Zipf-skewed noise: ten INFO patterns, about 2,000 records a second in all.
NOISE_BODIES = (
    "GET /api/cart returned 200 in {n}ms",
    "cache hit for session key {n}",
    "heartbeat from worker pool, queue depth {n}",
    "user {n} opened the settings page",
    "scheduled job sync-inventory finished batch {n}",
    "TLS handshake completed with peer {n}",
    "metrics flushed: {n} series written",
    "search index refreshed, {n} documents",
    "email digest queued for account {n}",
    "websocket ping received on connection {n}",
)
NOISE = [Pattern(f"noise{i}", body, 2000 / (i + 1) / 2.93) for i, body in enumerate(NOISE_BODIES)]
