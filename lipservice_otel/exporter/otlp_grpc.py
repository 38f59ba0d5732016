"""OTLP/gRPC exporter: one LogsService/Export call per batch, already serialized."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from lipservice_otel.exporter import ExportError, Prepared, as_is
from lipservice_otel.exporter.config import OtlpExporterConfig

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# The OTLP specification's retryable codes. RESOURCE_EXHAUSTED only retries when the server
# sent RetryInfo: without it the server is saying the data will never fit.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# gRPC's own reconnect backoff grows to 120 s, so after a long outage the channel could stay
# down for minutes once the downstream is back; our retry loop already paces the attempts.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

log = logging.getLogger(__name__)


def _identity(payload: bytes) -> bytes:
    return payload


def server_retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay a server attached to its error status, if any.

    Status details that do not decode count as none: the error itself still decides whether
    the batch is retried, with our own backoff.
    """
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        except DecodeError as exc:
            log.warning("%s: ignoring undecodable %s: %s", error.code().name, key, exc)
    return None


class OtlpGrpcExporter:
    name = "otlp"

    def __init__(self, config: OtlpExporterConfig) -> None:
        self._config = config
        self._metadata = tuple(config.headers.items())
        self._compression = (
            grpc.Compression.Gzip
            if config.compression == "gzip"
            else grpc.Compression.NoCompression
        )
        self._channel: grpc.aio.Channel | None = None
        self._call = None

    def _connect(self):
        # Created lazily so the channel binds to the event loop that exports.
        if self._call is None:
            if self._config.insecure:
                self._channel = grpc.aio.insecure_channel(
                    self._config.endpoint, options=CHANNEL_OPTIONS
                )
            else:
                root = None
                if self._config.ca_file:
                    with open(self._config.ca_file, "rb") as handle:
                        root = handle.read()
                credentials = grpc.ssl_channel_credentials(root_certificates=root)
                self._channel = grpc.aio.secure_channel(
                    self._config.endpoint, credentials, options=CHANNEL_OPTIONS
                )
            self._call = self._channel.unary_unary(
                EXPORT_METHOD,
                request_serializer=_identity,
                response_deserializer=ExportLogsServiceResponse.FromString,
            )
        return self._call

    def prepare(self, payload: bytes, records: int) -> Prepared:
        return as_is(payload, records)

    async def export(self, payload: bytes, records: int) -> int:
        call = self._connect()
        try:
            response = await call(
                payload,
                timeout=self._config.timeout_s,
                metadata=self._metadata,
                compression=self._compression,
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            delay = server_retry_delay(error)
            retryable = code in RETRYABLE_CODES or (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
            )
            raise ExportError(
                f"{self._config.endpoint}: {code.name}: {error.details()}",
                retryable=retryable,
                code=code.name,
                retry_after_s=delay,
            ) from None
        rejected = response.partial_success.rejected_log_records
        if rejected:
            # Partial success is final per OTLP: the rejected records must not be retried.
            log.warning(
                "downstream %s rejected %d of %d records: %s",
                self._config.endpoint,
                rejected,
                records,
                response.partial_success.error_message,
            )
        return rejected

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._call = None
