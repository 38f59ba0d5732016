"""OTLP/HTTP bodies in and out: content types, gzip within a size limit, protobuf and JSON.

Pure functions, no I/O, so the HTTP server stays thin and the decoder can be fuzzed alone.
Every way a body can be wrong ends in `BadRequest` carrying the HTTP status to answer; no
other exception escapes `decode_request`.

OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters here:
`traceId` and `spanId` are hex strings, not base64. Unknown fields are ignored, as the
specification requires of receivers.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

Encoding = Literal["protobuf", "json"]

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"
_MEDIA_TYPES: dict[str, Encoding] = {
    CONTENT_TYPE_PROTOBUF: "protobuf",
    "application/protobuf": "protobuf",
    CONTENT_TYPE_JSON: "json",
}
# The decoders' own nesting limit (message levels); deeper bodies are a 400, not a crash.
MAX_JSON_DEPTH = 100
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def body_encoding(content_type: str) -> Encoding | None:
    """`protobuf`, `json`, or None for a media type OTLP/HTTP does not define."""
    media = content_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(media)


def decompress(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    """The body as sent, gunzipped if need be, refused past `max_bytes` decompressed.

    The limit is applied while inflating, so a gzip bomb costs at most `max_bytes` of memory.
    """
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise BadRequest(415, f"unsupported Content-Encoding {content_encoding!r} (use gzip)")
    parts: list[bytes] = []
    budget = max_bytes
    remaining = body
    try:
        # A gzip stream may hold several members; each is inflated within what is left.
        while remaining:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = inflater.decompress(remaining, budget + 1)
            budget -= len(part)
            if budget < 0:
                raise BadRequest(413, f"body exceeds {max_bytes} bytes after decompression")
            if not inflater.eof:
                raise BadRequest(400, "gzip body is truncated")
            parts.append(part)
            remaining = inflater.unused_data
    except zlib.error as exc:
        raise BadRequest(400, f"body is not valid gzip: {exc}") from None
    return b"".join(parts)


def decode_request(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    if encoding == "protobuf":
        try:
            return ExportLogsServiceRequest.FromString(body)
        except DecodeError as exc:
            raise not_a_request(exc) from None
    return _decode_json(body)


def not_a_request(error: DecodeError) -> BadRequest:
    """What a protobuf body upb cannot parse gets, whichever sampler found out."""
    return BadRequest(400, f"body is not a valid ExportLogsServiceRequest: {error}")


def _decode_json(body: bytes) -> ExportLogsServiceRequest:
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadRequest(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(400, "body must be a JSON object (an ExportLogsServiceRequest)")
    _hex_ids_to_base64(document)
    request = ExportLogsServiceRequest()
    try:
        json_format.ParseDict(
            document, request, ignore_unknown_fields=True, max_recursion_depth=MAX_JSON_DEPTH
        )
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadRequest(400, f"body is not a valid ExportLogsServiceRequest: {exc}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex trace and span ids into the base64 protobuf's parser expects."""
    for r, resource_logs in enumerate(_items(document, "resourceLogs", "resource_logs")):
        for s, scope_logs in enumerate(_items(resource_logs, "scopeLogs", "scope_logs")):
            for n, record in enumerate(_items(scope_logs, "logRecords", "log_records")):
                for name in _ID_FIELDS:
                    value = record.get(name)
                    if not isinstance(value, str):
                        continue
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{n}].{name}"
                        raise BadRequest(400, f"{where}: expected a hex string") from None
                    record[name] = base64.b64encode(raw).decode("ascii")


def _items(container: Any, *names: str) -> list[dict[str, Any]]:
    """The dict elements of the first list found under one of `names`; malformed shapes are
    left for protobuf's parser to report."""
    if not isinstance(container, dict):
        return []
    for name in names:
        value = container.get(name)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def encode_message(message: Message, encoding: Encoding) -> bytes:
    if encoding == "json":
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def encode_status(code: int, message: str, encoding: Encoding) -> bytes:
    """An error body: google.rpc.Status in the request's own encoding, as OTLP/HTTP asks."""
    return encode_message(status_pb2.Status(code=code, message=message), encoding)
