"""What a kept record carries: the annotation attribute names and the functions that write them.

These names are public API (see docs/sampling.md): the backend rebuilds true volumes from
`sampling.adjusted_count` and groups by `lipservice.pattern_id`. Exporters read the resource
key names from here too, so nothing downstream of the sampler imports the sampler itself.
"""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lipservice_otel.policy.model import severity_bucket
from lipservice_otel.policy.reasons import REASON_ERROR_CONTEXT

ATTR_ADJUSTED_COUNT = "sampling.adjusted_count"
ATTR_PATTERN_ID = "lipservice.pattern_id"
ATTR_REASON = "lipservice.reason"
ATTR_WOULD_KEEP = "lipservice.would_keep"
ATTR_SEVERITY_INFERRED = "lipservice.severity_inferred"
SERVICE_NAME_KEY = "service.name"
UNKNOWN_SERVICE = "unknown_service"


def service_name(resource_attributes) -> str:
    for kv in resource_attributes:
        if kv.key == SERVICE_NAME_KEY:
            return kv.value.string_value or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def annotate(record: LogRecord, rate: float, pattern: str, reason: str) -> None:
    """Stamp a kept record; an upstream sampler's adjusted count is multiplied, not replaced.

    Rate 0 marks a record kept for a reason other than probability (error context): its
    adjusted count is 0 because the sampled records of its pattern already stand for it.
    A record an upstream LipService already stamped gets our pattern id and reason in place
    of its own, so no key appears twice (OTLP asks attribute keys to be unique).
    """
    adjusted = 1.0 / rate if rate else 0.0
    counted = named = explained = False
    for kv in record.attributes:
        key = kv.key
        if key == ATTR_ADJUSTED_COUNT and not counted:
            value = kv.value
            kind = value.WhichOneof("value")
            upstream = getattr(value, kind) if kind in ("double_value", "int_value") else 1.0
            value.double_value = upstream * adjusted
            counted = True
        elif key == ATTR_PATTERN_ID:
            kv.value.string_value = pattern
            named = True
        elif key == ATTR_REASON:
            kv.value.string_value = reason
            explained = True
    if not counted:
        add_attribute(record, ATTR_ADJUSTED_COUNT).value.double_value = adjusted
    if not named:
        add_attribute(record, ATTR_PATTERN_ID).value.string_value = pattern
    if not explained:
        add_attribute(record, ATTR_REASON).value.string_value = reason


def set_would_keep(record: LogRecord, keep: bool) -> None:
    """Shadow mode's verdict, in place of an upstream instance's."""
    for kv in record.attributes:
        if kv.key == ATTR_WOULD_KEEP:
            kv.value.bool_value = keep
            return
    add_attribute(record, ATTR_WOULD_KEEP).value.bool_value = keep


def write_inferred_severity(record: LogRecord, severity: int) -> None:
    """Opt-in (sampler.infer_severity.write): make the inferred level visible downstream."""
    record.severity_number = severity
    if not record.severity_text:
        record.severity_text = severity_bucket(severity).upper()
    add_attribute(record, ATTR_SEVERITY_INFERRED).value.bool_value = True


def annotate_context(record: LogRecord) -> None:
    """Stamp a record forwarded as error context over its earlier drop (adjusted count 0)."""
    attributes = record.attributes
    for position in range(len(attributes) - 1, -1, -1):
        if attributes[position].key in (ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON):
            del attributes[position]
    add_attribute(record, ATTR_ADJUSTED_COUNT).value.double_value = 0.0
    add_attribute(record, ATTR_REASON).value.string_value = REASON_ERROR_CONTEXT


def add_attribute(record: LogRecord, key: str) -> KeyValue:
    kv = record.attributes.add()
    kv.key = key
    return kv


def has_attribute(attributes, key: str) -> bool:
    # A plain loop: any() over a generator costs a third more, once per kept record.
    for kv in attributes:  # noqa: SIM110
        if kv.key == key:
            return True
    return False
