"""OTLP/HTTP front door: `POST /v1/logs` with a protobuf or JSON ExportLogsServiceRequest.

Answers as the OTLP/HTTP specification asks: 200 with an ExportLogsServiceResponse (partial
success included) in the request's encoding; errors carry a google.rpc.Status body in that
encoding. 400 for a body that does not decode (or a tenant header that is not UTF-8), 401
without the configured bearer token, 413 past the size limit (as sent or after gzip), 415 for
an unknown content type or encoding, 429 with Retry-After when the sending queue is full, 503
with Retry-After when the persistent queue cannot be written (the sender retries; nothing of
the request was kept).

The body is decompressed here, not by the server library, so the size limit also bounds what
a gzip bomb inflates to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from google.protobuf.message import DecodeError
from google.rpc import code_pb2

from lipservice_otel.receiver.config import HttpReceiverConfig, ReceiverTlsConfig
from lipservice_otel.receiver.http_codec import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PROTOBUF,
    BadRequest,
    Encoding,
    body_encoding,
    decode_request,
    decompress,
    encode_message,
    encode_status,
    not_a_request,
)
from lipservice_otel.receiver.pipeline import QUEUE_FULL_RETRY_DELAY_S, Pipeline
from lipservice_otel.receiver.security import SenderAuth, http_ssl_context

LOGS_PATH = "/v1/logs"
_CONTENT_TYPES: dict[Encoding, str] = {"protobuf": CONTENT_TYPE_PROTOBUF, "json": CONTENT_TYPE_JSON}
# google.rpc codes matching the HTTP statuses we answer, for the Status body.
_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.RESOURCE_EXHAUSTED,
    401: code_pb2.UNAUTHENTICATED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}

log = logging.getLogger(__name__)


def error_response(
    status: int, message: str, encoding: Encoding, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=encode_status(_RPC_CODES.get(status, code_pb2.UNKNOWN), message, encoding),
        content_type=_CONTENT_TYPES[encoding],
        headers=headers,
    )


class HttpLogsReceiver:
    def __init__(
        self,
        config: HttpReceiverConfig,
        pipeline: Pipeline,
        shutdown_grace_s: float,
        tls: ReceiverTlsConfig | None = None,
        bearer_token: str | None = None,
        tenant_tokens: Mapping[str, str] | None = None,
    ) -> None:
        self._config = config
        self._pipeline = pipeline
        self._tls = tls
        self._auth = SenderAuth(bearer_token, tenant_tokens or {})
        self._max_bytes = config.max_request_body_mib * 1024 * 1024
        self._grace_s = shutdown_grace_s
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        app = web.Application(client_max_size=self._max_bytes)
        app.router.add_post(LOGS_PATH, self._export)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=False,
            shutdown_timeout=self._grace_s,
        )
        await self._runner.setup()
        host, _, port = self._config.endpoint.rpartition(":")
        context = (
            http_ssl_context(self._tls) if self._tls is not None and self._tls.enabled else None
        )
        site = web.TCPSite(
            self._runner,
            host.strip("[]"),
            int(port),
            ssl_context=context,
            reuse_port=self._config.reuse_port,
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(
                f"receiver.http.endpoint: cannot bind {self._config.endpoint}: {exc.strerror}"
            ) from None
        self.port = site.port
        log.info("OTLP/HTTP receiver listening on %s", self._config.endpoint)
        return self.port

    async def stop(self) -> None:
        """Stop listening; requests in progress finish within the shutdown grace period."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _export(self, request: web.Request) -> web.Response:
        encoding = body_encoding(request.headers.get("Content-Type", ""))
        sender = self._auth.admit(request.headers.get("Authorization"))
        if sender is None:
            self._pipeline.refused(0, "http", "unauthenticated")
            return error_response(
                401,
                "missing or wrong bearer token",
                encoding or "json",
                {"WWW-Authenticate": 'Bearer realm="lipservice-otel"'},
            )
        if encoding is None:
            self._pipeline.refused(0, "http", "invalid")
            return web.Response(
                status=415,
                text=f"Content-Type must be {CONTENT_TYPE_PROTOBUF} or {CONTENT_TYPE_JSON}",
            )
        if (request.content_length or 0) > self._max_bytes:
            return self._invalid(413, f"body exceeds {self._max_bytes} bytes", encoding)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._invalid(413, f"body exceeds {self._max_bytes} bytes", encoding)
        try:
            raw = decompress(body, request.headers.get("Content-Encoding", ""), self._max_bytes)
            # Protobuf goes to the pipeline as received (the compiled sampler walks the bytes).
            otlp = None if encoding == "protobuf" else decode_request(raw, encoding)
            tenant = self._tenant_header_value(request)
            try:
                result = await (
                    self._pipeline.consume_payload(raw, "http", tenant, sender.tenant)
                    if otlp is None
                    else self._pipeline.consume(otlp, "http", len(raw), tenant, sender.tenant)
                )
            except DecodeError as exc:
                raise not_a_request(exc) from None
        except BadRequest as exc:
            return self._invalid(exc.status, exc.message, encoding)
        if result.refusal:
            message = (
                f"{result.refusal} ({result.records} records refused); retry after "
                f"{QUEUE_FULL_RETRY_DELAY_S}s"
            )
            return error_response(
                503 if result.unavailable else 429,
                message,
                encoding,
                {"Retry-After": str(QUEUE_FULL_RETRY_DELAY_S)},
            )
        return web.Response(
            body=encode_message(result.response, encoding), content_type=_CONTENT_TYPES[encoding]
        )

    def _tenant_header_value(self, request: web.Request) -> str | None:
        """The tenant header's value, when the tenant key is a header; BadRequest when it is
        not UTF-8 (aiohttp hands such bytes on as surrogates, which no label or tenant
        name can hold)."""
        header = self._pipeline.tenant_header
        value = request.headers.get(header) if header is not None else None
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(400, f"{header} header: the tenant is not UTF-8 text") from None
        return value

    def _invalid(self, status: int, message: str, encoding: Encoding) -> web.Response:
        self._pipeline.refused(0, "http", "invalid")
        return error_response(status, message, encoding)
