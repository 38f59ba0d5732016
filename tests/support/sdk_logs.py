"""The real OpenTelemetry SDK as a log client: a gRPC-exporting logger, a trace context."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

SERVICE = "checkout"


def sdk_logger(endpoint: str, service: str = SERVICE):
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=512))
    return provider, provider.get_logger("tests")


def trace_context(trace_id: int):
    span = NonRecordingSpan(SpanContext(trace_id, 0x1234, False, TraceFlags(TraceFlags.SAMPLED)))
    return set_span_in_context(span)
