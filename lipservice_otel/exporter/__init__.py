"""Exporters send kept records downstream; the sending queue batches and retries for them.

An exporter is two steps. `prepare(payload, records)` turns a batch (a serialized
ExportLogsServiceRequest; concatenated serialized requests are a valid merged request, so
batching never re-encodes records) into the requests the downstream accepts, e.g. split under
a size limit; it is pure and runs off the event loop. `export(payload, records)` sends one of
them and returns how many records the downstream rejected for good (OTLP partial success),
or raises `ExportError` saying whether a retry may help. The queue retries each prepared
request on its own, so a retry never repeats a part that was already delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lipservice_otel.exporter.config import ExporterConfig


class ExportError(Exception):
    def __init__(
        self, message: str, *, retryable: bool, code: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Prepared:
    # (serialized request, records in it), in order.
    requests: list[tuple[bytes, int]]
    # Records no request can carry (one alone is over the downstream's size limit).
    unsendable: int = 0
    unsendable_reason: str = ""


def as_is(payload: bytes, records: int) -> Prepared:
    """`prepare` for a downstream that takes any batch whole."""
    return Prepared([(payload, records)])


class Exporter(Protocol):
    name: str

    def prepare(self, payload: bytes, records: int) -> Prepared: ...

    async def export(self, payload: bytes, records: int) -> int: ...

    async def close(self) -> None: ...


def build_exporter(config: ExporterConfig) -> Exporter:
    if config.type == "otlp":
        from lipservice_otel.exporter.otlp_grpc import OtlpGrpcExporter

        return OtlpGrpcExporter(config.otlp)
    if config.type == "otlp_http":
        from lipservice_otel.exporter.otlp_http import OtlpHttpExporter

        return OtlpHttpExporter.from_config(config.otlp_http)
    if config.type == "posthog":
        from lipservice_otel.exporter.posthog import posthog_exporter

        return posthog_exporter(config.posthog)
    from lipservice_otel.exporter.debug import DebugExporter

    return DebugExporter(config.debug)
