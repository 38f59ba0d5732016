"""What one otel-gen run does, checked before anything is sent.

Flag names and value syntax follow telemetrygen, so a command line written for it works here:
`--otlp-attributes key="value"` (strings in double quotes), `key=true`, `key=42`,
`key=[1,2,3]`; durations like `30s`, `1m30s`, `500ms` or `inf`. Counts and rates are per
worker, as in telemetrygen.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from lipservice_otel.validation import ConfigError

AttributeValue = str | bool | int | float | tuple

DEFAULT_GRPC_ENDPOINT = "localhost:4317"
DEFAULT_HTTP_ENDPOINT = "localhost:4318"
DEFAULT_HTTP_PATH = "/v1/logs"
DEFAULT_SERVICE = "otel-gen"
DEFAULT_BODY = "the message"
DEFAULT_SEVERITY_TEXT = "Info"
DEFAULT_SEVERITY_NUMBER = 9
DEFAULT_LOGS = 1
DEFAULT_WORKERS = 1
DEFAULT_BATCH_SIZE = 100
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_SEED = 1

Profile = Literal["fixed", "realistic", "incident"]
PROFILES: tuple[str, ...] = ("fixed", "realistic", "incident")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("1m30s", "250ms"); `inf` runs until interrupted."""
    text = text.strip()
    if text == "inf":
        return math.inf
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ConfigError(f"--duration: expected e.g. 30s, 1m30s, 500ms or inf, got {text!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _scalar(text: str, flag: str) -> AttributeValue:
    if text == "true":
        return True
    if text == "false":
        return False
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    raise ConfigError(
        f'{flag}: a string value must be in double quotes (key="value"), got {text!r}; '
        "bare true, false and integers are also accepted"
    )


def parse_key_value(text: str, flag: str) -> tuple[str, AttributeValue]:
    """telemetrygen's KEY=VALUE syntax; a list value is a tuple of one type."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f'{flag}: expected KEY=VALUE (e.g. key="value"), got {text!r}')
    if not (raw.startswith("[") and raw.endswith("]")):
        return key, _scalar(raw, flag)
    items = [item.strip() for item in re.findall(r'"[^"]*"|[^,]+', raw[1:-1]) if item.strip()]
    if not items:
        raise ConfigError(f"{flag}: {key}: a list must not be empty")
    values = tuple(_scalar(item, flag) for item in items)
    if len({type(value) for value in values}) > 1:
        raise ConfigError(f"{flag}: {key}: all items of a list must have the same type")
    return key, values


@dataclass(frozen=True, slots=True)
class GenConfig:
    # host:port of the OTLP receiver; empty means localhost:4317 (gRPC) or :4318 (HTTP).
    endpoint: str = ""
    # Plaintext instead of TLS (gRPC) or http:// instead of https:// (HTTP).
    insecure: bool = False
    # OTLP/HTTP protobuf POSTs instead of OTLP/gRPC.
    http: bool = False
    # URL path of the OTLP/HTTP logs endpoint.
    http_path: str = DEFAULT_HTTP_PATH
    # gRPC metadata or HTTP headers sent with every request.
    headers: dict[str, str] = field(default_factory=dict)
    # Resource attributes; `service.name` defaults to `service`.
    resource_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    service: str = DEFAULT_SERVICE
    # Attributes on every log record.
    record_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    # What records say: `fixed` repeats body/severity; `realistic` and `incident` vary them.
    profile: Profile = "fixed"
    body: str = DEFAULT_BODY
    severity_text: str = DEFAULT_SEVERITY_TEXT
    severity_number: int = DEFAULT_SEVERITY_NUMBER
    # Hex trace and span id put on every `fixed` record (empty: none).
    trace_id: str = ""
    span_id: str = ""
    # A file to send instead of generated records: lines, or a Loghub structured CSV.
    replay: str | None = None
    # Records per worker (ignored when `duration` is set).
    logs: int = DEFAULT_LOGS
    # Seconds to run; 0 means "send `logs` records", inf means "until interrupted".
    duration_s: float = 0.0
    # Records per second per worker; 0 means as fast as the receiver answers.
    rate: float = 0.0
    workers: int = DEFAULT_WORKERS
    # Records per export request.
    batch_size: int = DEFAULT_BATCH_SIZE
    # Deadline of one export request.
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Seed of the realistic and incident profiles; worker i uses seed + i.
    seed: int = DEFAULT_SEED

    def target(self) -> str:
        if self.endpoint:
            return self.endpoint
        return DEFAULT_HTTP_ENDPOINT if self.http else DEFAULT_GRPC_ENDPOINT

    def bounded_by_count(self) -> bool:
        """Whether the run ends after a number of records rather than after a time."""
        return self.duration_s == 0 and self.replay is None

    def validate(self) -> None:
        def require(condition: bool, flag: str, message: str) -> None:
            if not condition:
                raise ConfigError(f"{flag}: {message}")

        host, sep, port = self.target().rpartition(":")
        require(
            bool(host and sep) and port.isdigit(),
            "--otlp-endpoint",
            f"expected HOST:PORT, got {self.target()!r}",
        )
        require(self.http_path.startswith("/"), "--otlp-http-url-path", "must start with /")
        require(self.profile in PROFILES, "--profile", f"one of {', '.join(PROFILES)}")
        require(0 <= self.severity_number <= 24, "--severity-number", "must be 0-24")
        require(self.workers >= 1, "--workers", f"must be at least 1, got {self.workers}")
        require(self.batch_size >= 1, "--batch-size", f"must be at least 1, got {self.batch_size}")
        require(self.rate >= 0, "--rate", f"must be 0 (unthrottled) or more, got {self.rate}")
        require(self.duration_s >= 0, "--duration", "must not be negative")
        require(self.timeout_s > 0, "--timeout", "must be positive")
        require(
            self.duration_s > 0 or self.logs > 0 or self.replay is not None,
            "--logs",
            "either --logs or --duration must be greater than 0",
        )
        require(
            self.profile != "incident" or math.isfinite(self.duration_s),
            "--profile",
            "incident needs a finite run (--logs or a --duration other than inf)",
        )
        require(
            self.replay is None or self.profile == "fixed",
            "--replay",
            "sends the file's records; it cannot be combined with --profile",
        )
        for flag, value, length in (
            ("--trace-id", self.trace_id, 32),
            ("--span-id", self.span_id, 16),
        ):
            require(
                not value or bool(re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value)),
                flag,
                f"expected {length} hex digits, got {value!r}",
            )
