"""OTLP log export requests built for tests, some of them malformed on purpose."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def request_with_bodies(*bodies: str | None, attributes: int = 0) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    kv = resource_logs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "bad-input"
    scope_logs = resource_logs.scope_logs.add()
    for body in bodies:
        record = scope_logs.log_records.add()
        record.severity_number = 9
        if body is not None:
            record.body.string_value = body
        for n in range(attributes):
            attribute = record.attributes.add()
            attribute.key, attribute.value.int_value = f"a{n}", n
    return request


def deep_any_value(depth: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(depth):
        outer = AnyValue()
        outer.array_value.values.add().CopyFrom(value)
        value = outer
    return value


def deep_protobuf() -> bytes:
    request = request_with_bodies("deep")
    request.resource_logs[0].scope_logs[0].log_records[0].body.CopyFrom(deep_any_value(200))
    return request.SerializeToString()
