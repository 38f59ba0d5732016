"""OTLP/gRPC front door: `opentelemetry.proto.collector.logs.v1.LogsService/Export`.

The method is registered with raw bytes in and out so that a body which is not an
ExportLogsServiceRequest gets INVALID_ARGUMENT with a message (grpc's own deserializer
failure would surface as INTERNAL). gzip-compressed requests are decompressed by grpc itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from lipservice_otel.receiver.config import GrpcReceiverConfig, ReceiverTlsConfig
from lipservice_otel.receiver.pipeline import QUEUE_FULL_RETRY_DELAY_S, Pipeline
from lipservice_otel.receiver.security import SenderAuth, grpc_server_credentials

SERVICE_NAME = "opentelemetry.proto.collector.logs.v1.LogsService"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

log = logging.getLogger(__name__)


def _identity(payload: bytes) -> bytes:
    return payload


def _retry_details(code: int, message: str, delay_s: int) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying RetryInfo, which OTLP clients honour before retrying."""
    retry_info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=delay_s))
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(retry_info)
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def _first_value(metadata, key: str | None) -> str | None:
    """The first value sent for a metadata key (keys arrive lowercase), or None."""
    if key is not None:
        for name, value in metadata:
            if name == key:
                return value
    return None


class GrpcLogsReceiver:
    def __init__(
        self,
        config: GrpcReceiverConfig,
        pipeline: Pipeline,
        tls: ReceiverTlsConfig | None = None,
        bearer_token: str | None = None,
        tenant_tokens: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        self._tls = tls
        self._auth = SenderAuth(bearer_token, tenant_tokens or {})
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.port: int | None = None

    async def start(self) -> int:
        max_bytes = self._config.max_recv_msg_size_mib * 1024 * 1024
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.so_reuseport", int(self._config.reuse_port)),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export, request_deserializer=_identity, response_serializer=_identity
                )
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if self._tls is not None and self._tls.enabled:
            credentials = grpc_server_credentials(self._tls)
            self.port = self._server.add_secure_port(self._config.endpoint, credentials)
        else:
            self.port = self._server.add_insecure_port(self._config.endpoint)
        if not self.port:
            raise OSError(f"receiver.grpc.endpoint: cannot bind {self._config.endpoint}")
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("OTLP/gRPC receiver listening on %s", self._config.endpoint)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Stop taking new calls; calls in progress finish within the grace period."""
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
        self._server = None

    async def _export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = context.invocation_metadata() or ()
        sender = self._auth.admit(_first_value(metadata, "authorization"))
        if sender is None:
            self._pipeline.refused(0, "grpc", "unauthenticated")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            # As received: the compiled sampler walks the bytes, the Python one parses them.
            result = await self._pipeline.consume_payload(
                payload,
                "grpc",
                _first_value(metadata, self._pipeline.tenant_header),
                sender.tenant,
            )
        except DecodeError as exc:
            self._pipeline.refused(0, "grpc", "invalid")
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid ExportLogsServiceRequest: {exc}",
            )
        if result.refusal:
            message = (
                f"{result.refusal} ({result.records} records refused); retry after "
                f"{QUEUE_FULL_RETRY_DELAY_S}s"
            )
            code, rpc_code = (
                (grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE)
                if result.unavailable
                else (grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.RESOURCE_EXHAUSTED)
            )
            await context.abort(
                code,
                message,
                trailing_metadata=_retry_details(rpc_code, message, QUEUE_FULL_RETRY_DELAY_S),
            )
        return result.response.SerializeToString()
