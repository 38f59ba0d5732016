"""Exporters send kept records downstream; the sending queue batches and retries for them.

An exporter is one method, `export(payload, records)`, taking a serialized
ExportLogsServiceRequest (concatenated serialized requests are a valid merged request, so
batching never re-encodes records) and returning how many records the downstream rejected
for good (OTLP partial success). It raises `ExportError` saying whether a retry may help.
"""

from __future__ import annotations

from typing import Protocol

from lipservice_otel.config import ExporterConfig


class ExportError(Exception):
    def __init__(
        self, message: str, *, retryable: bool, code: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after_s = retry_after_s


class Exporter(Protocol):
    name: str

    async def export(self, payload: bytes, records: int) -> int: ...

    async def close(self) -> None: ...


def build_exporter(config: ExporterConfig) -> Exporter:
    if config.type == "otlp":
        from lipservice_otel.exporter.otlp_grpc import OtlpGrpcExporter

        return OtlpGrpcExporter(config.otlp)
    from lipservice_otel.exporter.debug import DebugExporter

    return DebugExporter(config.debug)
