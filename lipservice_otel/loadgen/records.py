"""A generated log record and its wire form: one ExportLogsServiceRequest per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from lipservice_otel.loadgen.config import AttributeValue

SCOPE = InstrumentationScope(name="otel-gen")


class LogSpec(NamedTuple):
    body: str
    severity_number: int = 0
    severity_text: str = ""
    trace_id: bytes = b""
    span_id: bytes = b""
    attributes: tuple[KeyValue, ...] = ()


def any_value(value: AttributeValue) -> AnyValue:
    # bool before int: True is an int in Python, but a bool on the wire.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, AttributeValue]) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(key=key, value=any_value(value)) for key, value in attributes.items())


def resource_of(service: str, attributes: Mapping[str, AttributeValue]) -> Resource:
    """`service.name` first, unless the attributes set it themselves (as in telemetrygen)."""
    return Resource(attributes=key_values({"service.name": service, **attributes}))


def encode_request(
    resource: Resource,
    records: Sequence[LogSpec],
    common_attributes: Sequence[KeyValue],
    time_ns: int,
) -> bytes:
    """One request with every record of the batch, stamped with one timestamp."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(resource=resource)
    add = resource_logs.scope_logs.add(scope=SCOPE).log_records.add
    for spec in records:
        record = add(
            time_unix_nano=time_ns,
            observed_time_unix_nano=time_ns,
            severity_number=spec.severity_number,
            severity_text=spec.severity_text,
            body=AnyValue(string_value=spec.body),
            trace_id=spec.trace_id,
            span_id=spec.span_id,
        )
        if common_attributes:
            record.attributes.extend(common_attributes)
        if spec.attributes:
            record.attributes.extend(spec.attributes)
    return request.SerializeToString()
