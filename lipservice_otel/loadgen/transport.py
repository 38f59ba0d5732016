"""Sending one encoded request: OTLP/gRPC, or OTLP/HTTP protobuf POSTs to `/v1/logs`.

Neither transport retries: a refused request is reported as refused, so the report says
exactly what the receiver accepted (a sender's retries would hide the refusals a load test is
looking for). Both answer the same `SendResult`, and each worker owns its own connection.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class SendResult:
    # Records the receiver refused: partial-success rejections, or all of them on an error.
    rejected: int
    # None when the request succeeded (even partially), else e.g. "RESOURCE_EXHAUSTED", "HTTP 429".
    error: str | None = None


class Transport(Protocol):
    def send(self, payload: bytes, records: int) -> SendResult: ...

    def close(self) -> None: ...


def _partial_rejections(response: ExportLogsServiceResponse, records: int) -> SendResult:
    return SendResult(min(records, response.partial_success.rejected_log_records))


class GrpcTransport:
    def __init__(
        self, endpoint: str, insecure: bool, headers: dict[str, str], timeout_s: float
    ) -> None:
        # A local subchannel pool gives each worker its own connection, as separate
        # processes would have, instead of grpc sharing one between channels.
        options = [("grpc.use_local_subchannel_pool", 1)]
        if insecure:
            self._channel = grpc.insecure_channel(endpoint, options=options)
        else:
            credentials = grpc.ssl_channel_credentials()
            self._channel = grpc.secure_channel(endpoint, credentials, options=options)
        # The payload is already serialized: bytes go out as they are.
        self._export = self._channel.unary_unary(
            EXPORT_METHOD, response_deserializer=ExportLogsServiceResponse.FromString
        )
        self._metadata = tuple((key.lower(), value) for key, value in headers.items())
        self._timeout_s = timeout_s

    def send(self, payload: bytes, records: int) -> SendResult:
        try:
            response = self._export(payload, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            return SendResult(records, exc.code().name)
        return _partial_rejections(response, records)

    def close(self) -> None:
        self._channel.close()


class HttpTransport:
    """A kept-alive connection per worker, reopened after any failure."""

    def __init__(
        self, endpoint: str, insecure: bool, path: str, headers: dict[str, str], timeout_s: float
    ) -> None:
        host, _, port = endpoint.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._insecure = insecure
        self._path = path
        self._headers = {"Content-Type": PROTOBUF, **headers}
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._insecure:
            return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        return http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout_s, context=ssl.create_default_context()
        )

    def send(self, payload: bytes, records: int) -> SendResult:
        if self._connection is None:
            self._connection = self._connect()
        try:
            self._connection.request("POST", self._path, body=payload, headers=self._headers)
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return SendResult(records, type(exc).__name__)
        if response.status != 200:
            return SendResult(records, f"HTTP {response.status}")
        try:
            return _partial_rejections(ExportLogsServiceResponse.FromString(body), records)
        except DecodeError:
            # A 200 accepted the records, whatever the body says.
            return SendResult(0)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
