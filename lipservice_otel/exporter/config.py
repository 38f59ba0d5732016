"""Settings of the way out: exporters (debug, OTLP/gRPC, OTLP/HTTP, PostHog), queue, retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lipservice_otel.validation import check_endpoint, require

DEFAULT_OTLP_ENDPOINT = "localhost:4319"
POSTHOG_ENDPOINTS = {
    "us": "https://us.i.posthog.com/i/v1/logs",
    "eu": "https://eu.i.posthog.com/i/v1/logs",
}
# PostHog refuses requests larger than this, compressed or not.
POSTHOG_MAX_REQUEST_BYTES = 2 * 1024 * 1024
POSTHOG_API_KEY_ENV = "POSTHOG_API_KEY"


@dataclass(frozen=True, slots=True)
class OtlpExporterConfig:
    # host:port of the downstream OTLP/gRPC endpoint (a collector, a backend).
    endpoint: str = DEFAULT_OTLP_ENDPOINT
    # Plaintext when true; TLS (system roots or `ca_file`) when false.
    insecure: bool = True
    # PEM file of CA certificates to trust for TLS.
    ca_file: str | None = None
    # Extra gRPC metadata sent with every export, e.g. an authorization header.
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    # Deadline of one export call, in seconds.
    timeout_s: float = 10.0

    def validate(self, key: str) -> None:
        check_endpoint(self.endpoint, f"{key}.endpoint")
        require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        for name in self.headers:
            require(
                name == name.lower(),
                f"{key}.headers",
                f"gRPC metadata keys are lowercase: {name!r}",
            )


@dataclass(frozen=True, slots=True)
class OtlpHttpExporterConfig:
    # URL every request is POSTed to (http:// or https://), path included.
    endpoint: str = "http://localhost:4318/v1/logs"
    # Extra HTTP headers sent with every export, e.g. an authorization header.
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    # Deadline of one export request, in seconds.
    timeout_s: float = 10.0
    # PEM file of CA certificates to trust for https:// (system roots when unset).
    ca_file: str | None = None
    # Client certificate and key (PEM) for mutual TLS; both or neither.
    cert_file: str | None = None
    key_file: str | None = None
    # Largest request body in bytes (uncompressed, so also compressed); larger batches are
    # split. 0: no limit.
    max_request_bytes: int = 0

    def validate(self, key: str) -> None:
        require(
            self.endpoint.startswith(("http://", "https://")),
            f"{key}.endpoint",
            f"expected an http:// or https:// URL, got {self.endpoint!r}",
        )
        require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        require(
            (self.cert_file is None) == (self.key_file is None),
            f"{key}.cert_file",
            "cert_file and key_file go together (mutual TLS)",
        )
        require(self.max_request_bytes >= 0, f"{key}.max_request_bytes", "must be >= 0")


@dataclass(frozen=True, slots=True)
class PosthogExporterConfig:
    # The project token (phc_..., Project settings); POSTHOG_API_KEY when unset.
    api_key: str | None = field(default=None, repr=False)
    # PostHog Cloud region whose logs endpoint is used.
    region: Literal["us", "eu"] = "us"
    # Replaces the region's URL: self-hosted PostHog or a proxy.
    endpoint: str | None = None
    # Deadline of one export request, in seconds.
    timeout_s: float = 10.0

    @property
    def url(self) -> str:
        return self.endpoint or POSTHOG_ENDPOINTS[self.region]

    def validate(self, key: str) -> None:
        """Checked only with exporter.type posthog: a missing or wrong key fails the start."""
        require(
            bool(self.api_key),
            f"{key}.api_key",
            f"required with exporter.type posthog (or set {POSTHOG_API_KEY_ENV})",
        )
        token = self.api_key or ""
        require(
            not token.startswith("phx_"),
            f"{key}.api_key",
            "is a personal API key (phx_...); logs ingestion takes the project token "
            "(phc_..., Project settings)",
        )
        require(
            token.startswith("phc_"),
            f"{key}.api_key",
            "expected a project token starting with phc_",
        )
        require(
            self.url.startswith(("http://", "https://")),
            f"{key}.endpoint",
            f"expected an http:// or https:// URL, got {self.url!r}",
        )
        require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")


@dataclass(frozen=True, slots=True)
class DebugExporterConfig:
    # basic: one summary line per batch; detailed: also one line per record.
    verbosity: Literal["basic", "detailed"] = "basic"


@dataclass(frozen=True, slots=True)
class PersistentQueueConfig:
    # Directory of the write-ahead journal; unset keeps the queue in memory only. When set, a
    # request is answered only once its kept records are written, and replayed on start.
    directory: str | None = None
    # always: fsync before answering (survives power loss); interval: fsync every
    # fsync_interval_s (survives a crash of this process); never: leave it to the OS.
    fsync: Literal["always", "interval", "never"] = "always"
    fsync_interval_s: float = 1.0
    # A journal file is closed at this size and deleted once all its requests are done.
    segment_bytes: int = 64 * 1024 * 1024

    def validate(self, key: str) -> None:
        require(self.fsync_interval_s > 0, f"{key}.fsync_interval_s", "must be > 0")
        require(self.segment_bytes >= 1024 * 1024, f"{key}.segment_bytes", "must be >= 1 MiB")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    # Records waiting to be exported; when full the receivers answer RESOURCE_EXHAUSTED.
    max_records: int = 200_000
    # Serialized bytes waiting to be exported; the same answer when this is reached first.
    max_bytes: int = 256 * 1024 * 1024
    # A batch is sent when it holds this many records ...
    batch_max_records: int = 8192
    # ... or when its oldest record has waited this long, in seconds.
    batch_timeout_s: float = 0.2
    # Batches exported concurrently.
    consumers: int = 2

    persistent: PersistentQueueConfig = field(default_factory=PersistentQueueConfig)

    def validate(self, key: str) -> None:
        require(self.max_records >= 1, f"{key}.max_records", "must be >= 1")
        require(self.max_bytes >= 1024, f"{key}.max_bytes", "must be >= 1024")
        self.persistent.validate(f"{key}.persistent")
        require(self.batch_max_records >= 1, f"{key}.batch_max_records", "must be >= 1")
        require(self.batch_timeout_s >= 0, f"{key}.batch_timeout_s", "must be >= 0")
        require(1 <= self.consumers <= 64, f"{key}.consumers", "must be 1-64")


@dataclass(frozen=True, slots=True)
class RetryConfig:
    # Wait before the first retry of a failed export, doubled (with jitter) after each failure.
    initial_interval_s: float = 0.5
    max_interval_s: float = 10.0
    # Give up on a batch (counted as failed) after retrying this long.
    max_elapsed_s: float = 120.0

    def validate(self, key: str) -> None:
        require(self.initial_interval_s > 0, f"{key}.initial_interval_s", "must be > 0")
        require(
            self.max_interval_s >= self.initial_interval_s,
            f"{key}.max_interval_s",
            "must be >= initial_interval_s",
        )
        require(self.max_elapsed_s >= 0, f"{key}.max_elapsed_s", "must be >= 0")


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    # Where kept records go: `debug` prints them, `otlp` sends them over OTLP/gRPC,
    # `otlp_http` over OTLP/HTTP, `posthog` to PostHog's logs ingestion.
    type: Literal["debug", "otlp", "otlp_http", "posthog"] = "debug"
    otlp: OtlpExporterConfig = field(default_factory=OtlpExporterConfig)
    otlp_http: OtlpHttpExporterConfig = field(default_factory=OtlpHttpExporterConfig)
    posthog: PosthogExporterConfig = field(default_factory=PosthogExporterConfig)
    debug: DebugExporterConfig = field(default_factory=DebugExporterConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)

    def validate(self, key: str) -> None:
        self.otlp.validate(f"{key}.otlp")
        self.otlp_http.validate(f"{key}.otlp_http")
        if self.type == "posthog":
            self.posthog.validate(f"{key}.posthog")
        self.queue.validate(f"{key}.queue")
        self.retry.validate(f"{key}.retry")
