"""Split one OTLP logs request into requests no larger than a byte limit.

Records keep their order, their resource and their scope; a part is filled until the next
record would push it over the limit. The size of a part is counted from above (each
ResourceLogs/ScopeLogs wrapper is charged its tag and the longest length prefix), so a part
is never over the limit, only sometimes a few bytes short of it. A record that alone cannot
fit under the limit goes in no part; the caller decides what to do with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

# Tag byte plus the longest varint length prefix of a message under 4 GiB.
_WRAPPER_BYTES = 1 + 5


def _entry_bytes(size: int) -> int:
    """A repeated message field's cost: tag, varint length, body."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


@dataclass(slots=True)
class _Part:
    request: ExportLogsServiceRequest = field(default_factory=ExportLogsServiceRequest)
    bytes: int = 0
    records: int = 0
    resource: ResourceLogs | None = None  # the open ResourceLogs in `request`
    scope: ScopeLogs | None = None  # the open ScopeLogs in `resource`


@dataclass(slots=True)
class Split:
    parts: list[tuple[bytes, int]]
    too_large: int = 0


def split_request(request: ExportLogsServiceRequest, max_bytes: int) -> Split:
    parts: list[tuple[bytes, int]] = []
    too_large = 0
    part = _Part()
    for resource_logs in request.resource_logs:
        resource_header = _header_bytes(
            ResourceLogs(resource=resource_logs.resource, schema_url=resource_logs.schema_url)
        )
        part.resource = part.scope = None
        for scope_logs in resource_logs.scope_logs:
            scope_header = _header_bytes(
                ScopeLogs(scope=scope_logs.scope, schema_url=scope_logs.schema_url)
            )
            part.scope = None
            for record in scope_logs.log_records:
                cost = _entry_bytes(record.ByteSize())
                if resource_header + scope_header + cost > max_bytes:
                    too_large += 1  # fits in no part, not even an empty one
                    continue
                opening = _opening_bytes(part, resource_header, scope_header)
                if part.bytes + opening + cost > max_bytes:
                    parts.append(_finish(part))
                    part = _Part()
                    opening = resource_header + scope_header
                _append(part, resource_logs, scope_logs, record)
                part.bytes += opening + cost
    if part.records:
        parts.append(_finish(part))
    return Split(parts, too_large)


def _header_bytes(wrapper: ResourceLogs | ScopeLogs) -> int:
    """A wrapper without its children, charged as the longest possible entry."""
    return wrapper.ByteSize() + _WRAPPER_BYTES


def _opening_bytes(part: _Part, resource_header: int, scope_header: int) -> int:
    """What the next record costs in wrappers the part does not have open yet."""
    if part.resource is None:
        return resource_header + scope_header
    if part.scope is None:
        return scope_header
    return 0


def _append(
    part: _Part, resource_logs: ResourceLogs, scope_logs: ScopeLogs, record: LogRecord
) -> None:
    if part.resource is None:
        part.resource = part.request.resource_logs.add()
        part.resource.resource.CopyFrom(resource_logs.resource)
        part.resource.schema_url = resource_logs.schema_url
        part.scope = None
    if part.scope is None:
        part.scope = part.resource.scope_logs.add()
        part.scope.scope.CopyFrom(scope_logs.scope)
        part.scope.schema_url = scope_logs.schema_url
    part.scope.log_records.append(record)
    part.records += 1


def _finish(part: _Part) -> tuple[bytes, int]:
    return part.request.SerializeToString(), part.records
