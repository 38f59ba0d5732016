"""A real OTLP/gRPC LogsService that records what it receives, and fails when told to."""

from __future__ import annotations

from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from tests.support.received import ReceivedLogs


class OtlpSink(ReceivedLogs, logs_service_pb2_grpc.LogsServiceServicer):
    """A real OTLP/gRPC LogsService that records what it receives.

    `fail_next(n, code, retry_delay_s)` makes the next n calls fail, like a downstream that is
    restarting (UNAVAILABLE) or shedding load (RESOURCE_EXHAUSTED with RetryInfo);
    `status_details` sends those bytes as grpc-status-details-bin instead, as a broken server
    might.

    `strict_ids = True` refuses a request holding a trace id that is not 16 bytes or a span id
    that is not 8, whole, as the OpenTelemetry Collector's OTLP receiver does (pdata's id
    decoding fails, grpc-go answers INTERNAL). The otelcol-contrib build of the test peers has
    no OTLP receiver to stand here itself.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.calls = 0
        self.strict_ids = False
        self._failures: list[tuple[grpc.StatusCode, float | None, bytes | None]] = []
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self.server)
        # A fixed port lets a test stop this sink and start another in its place.
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"127.0.0.1:{self.port}"

    def fail_next(
        self,
        n: int,
        code: grpc.StatusCode,
        retry_delay_s: float | None = None,
        status_details: bytes | None = None,
    ):
        with self._lock:
            self._failures.extend([(code, retry_delay_s, status_details)] * n)

    def recover(self) -> None:
        with self._lock:
            self._failures.clear()

    def Export(self, request, context):
        with self._lock:
            self.calls += 1
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            code, delay, details = failure
            metadata = ()
            if details is not None:
                metadata = (("grpc-status-details-bin", details),)
            elif delay is not None:
                status = status_pb2.Status(code=code.value[0], message="try later")
                seconds = int(delay)
                status.details.add().Pack(
                    error_details_pb2.RetryInfo(
                        retry_delay=Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9))
                    )
                )
                metadata = (("grpc-status-details-bin", status.SerializeToString()),)
            context.abort_with_status(_Status(code, "injected failure", metadata))
        if self.strict_ids and _bad_id(request):
            context.abort(
                grpc.StatusCode.INTERNAL, "grpc: error unmarshalling request: invalid length"
            )
        with self._lock:
            self.requests.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


def _bad_id(request) -> bool:
    return any(
        len(record.trace_id) not in (0, 16) or len(record.span_id) not in (0, 8)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    )


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
