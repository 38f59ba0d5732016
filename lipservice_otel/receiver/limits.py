"""Per-record limits the receivers enforce before sampling, refused as OTLP partial success.

Pure functions over one request. The cheap check comes first: a request whose serialized
size is within the limit cannot hold a record over it, so ordinary traffic is never walked.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


def refuse_large_bodies(
    request: ExportLogsServiceRequest, max_body_bytes: int, request_bytes: int
) -> tuple[int, str]:
    """Delete records whose body serializes larger than `max_body_bytes`, in place; returns
    how many and the message for the sender."""
    if request_bytes <= max_body_bytes:
        return 0, ""
    refused = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            for position in range(len(records) - 1, -1, -1):
                if records[position].body.ByteSize() > max_body_bytes:
                    del records[position]
                    refused += 1
    if not refused:
        return 0, ""
    return refused, (
        f"{refused} record(s) with a body over {max_body_bytes} bytes (receiver.max_log_body_bytes)"
    )
