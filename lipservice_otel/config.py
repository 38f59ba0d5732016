"""Typed settings: one frozen dataclass per component, loaded from YAML + environment + flags.

Precedence (lowest to highest): the defaults below, the YAML file (`--config`), environment
variables `LIPSERVICE_<SECTION>__<FIELD>` (double underscore between levels, e.g.
`LIPSERVICE_EXPORTER__OTLP__ENDPOINT`), then command-line flags. Every value is checked on
load; a bad one raises `ConfigError` naming its YAML key and what is allowed. Unknown keys are
rejected so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

DEFAULT_GRPC_ENDPOINT = "0.0.0.0:4317"
DEFAULT_MAX_RECV_MSG_SIZE_MIB = 16
DEFAULT_HTTP_ENDPOINT = "0.0.0.0:4318"
DEFAULT_MAX_REQUEST_BODY_MIB = 16
DEFAULT_MAX_LOG_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_BODY_CHARS = 2048
DEFAULT_MAX_AGGREGATE_KEYS = 100_000
DEFAULT_TEMPLATE_CACHE_SIZE = 20_000
DEFAULT_MAX_ATTRIBUTES_PER_RECORD = 1024
DEFAULT_REPORT_INTERVAL_S = 10.0
DEFAULT_BURST_FACTOR = 10.0
DEFAULT_BURST_MIN_PER_SECOND = 10.0
DEFAULT_ANOMALY_KEEP_PER_SECOND = 2000
DEFAULT_ERROR_CONTEXT_WINDOW_S = 5.0
DEFAULT_ERROR_CONTEXT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_ERROR_CONTEXT_TRACE_TTL_S = 30.0
DEFAULT_ERROR_CONTEXT_MAX_TRACES = 10_000
DEFAULT_ERROR_CONTEXT_MAX_RECORDS_PER_TRACE = 256
DEFAULT_POLICY_RELOAD_INTERVAL_S = 1.0
DEFAULT_OTLP_ENDPOINT = "localhost:4319"
DEFAULT_OTLP_TIMEOUT_S = 10.0
DEFAULT_OTLP_HTTP_ENDPOINT = "http://localhost:4318/v1/logs"
POSTHOG_ENDPOINTS = {
    "us": "https://us.i.posthog.com/i/v1/logs",
    "eu": "https://eu.i.posthog.com/i/v1/logs",
}
# PostHog refuses requests larger than this, compressed or not.
POSTHOG_MAX_REQUEST_BYTES = 2 * 1024 * 1024
POSTHOG_API_KEY_ENV = "POSTHOG_API_KEY"
DEFAULT_QUEUE_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_FSYNC_INTERVAL_S = 1.0
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_QUEUE_MAX_RECORDS = 200_000
DEFAULT_BATCH_MAX_RECORDS = 8192
DEFAULT_BATCH_TIMEOUT_S = 0.2
DEFAULT_QUEUE_CONSUMERS = 2
DEFAULT_RETRY_INITIAL_INTERVAL_S = 0.5
DEFAULT_RETRY_MAX_INTERVAL_S = 10.0
DEFAULT_RETRY_MAX_ELAPSED_S = 120.0
DEFAULT_METRICS_ENDPOINT = "0.0.0.0:8888"
DEFAULT_ANALYSIS_INTERVAL_S = 10.0
DEFAULT_TARGET_REDUCTION = 0.8
DEFAULT_MIN_EXAMPLES_PER_INTERVAL = 5
DEFAULT_EMA_ALPHA = 0.3
DEFAULT_SPIKE_RATIO = 3.0
DEFAULT_SPIKE_Z = 4.0
DEFAULT_SPIKE_MIN_RECORDS = 20
DEFAULT_ANOMALY_COOLDOWN_S = 300.0
DEFAULT_SURGE_MIN_SHARE_INCREASE = 0.05
DEFAULT_MAX_PATTERNS = 50_000
DEFAULT_MAX_NEW_PATTERNS_PER_CYCLE = 10_000
DEFAULT_ERROR_LIKE_MIN_RATE = 0.05
DEFAULT_ERROR_LIKE_MIN_EXAMPLES = 20
DEFAULT_PATTERN_TTL_S = 3600.0
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_LLM_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_LLM_TIMEOUT_S = 15.0
DEFAULT_LLM_MAX_TOKENS = 2000
DEFAULT_LLM_TEMPERATURE = 0.0
DEFAULT_LLM_MAX_PATTERNS_PER_CALL = 20
DEFAULT_LLM_CALLS_PER_HOUR = 60
DEFAULT_LLM_TOKEN_BUDGET_PER_HOUR = 200_000
DEFAULT_LLM_JUDGEMENT_TTL_S = 86_400.0
DEFAULT_LLM_CIRCUIT_FAILURES = 3
DEFAULT_LLM_CIRCUIT_COOLDOWN_S = 300.0
DEFAULT_HISTORY_LIMIT = 100
DEFAULT_HISTORY_RULES_VERSIONS = 1
DEFAULT_SNAPSHOT_INTERVAL_S = 60.0
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_REDIS_KEY_PREFIX = "lipservice"
DEFAULT_LOCK_TTL_S = 30.0
DEFAULT_CONTROL_LISTEN = "0.0.0.0:4320"
DEFAULT_RECONNECT_MAX_S = 30.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0

ENV_PREFIX = "LIPSERVICE_"
ENV_LEVEL_SEPARATOR = "__"


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names its YAML key."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _check_endpoint(endpoint: str, key: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    _require(
        bool(sep) and port.isdigit() and 0 <= int(port) <= 65535,
        key,
        f"expected HOST:PORT with a port 0-65535, got {endpoint!r}",
    )
    _require(bool(host), key, f"expected HOST:PORT with a host, got {endpoint!r}")


@dataclass(frozen=True, slots=True)
class GrpcReceiverConfig:
    # Address the OTLP/gRPC LogsService listens on. Port 0 picks a free port.
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    # Largest accepted request, in MiB, before decompression limits apply.
    max_recv_msg_size_mib: int = DEFAULT_MAX_RECV_MSG_SIZE_MIB
    # Bind with SO_REUSEPORT so several processes share the port (`serve --workers` sets it);
    # off by default, so a second process on a taken port fails instead of sharing it.
    reuse_port: bool = False

    def validate(self, key: str) -> None:
        _check_endpoint(self.endpoint, f"{key}.endpoint")
        _require(
            1 <= self.max_recv_msg_size_mib <= 1024,
            f"{key}.max_recv_msg_size_mib",
            f"must be 1-1024, got {self.max_recv_msg_size_mib}",
        )


@dataclass(frozen=True, slots=True)
class HttpReceiverConfig:
    # Address the OTLP/HTTP server listens on (POST /v1/logs); empty string disables it.
    endpoint: str = DEFAULT_HTTP_ENDPOINT
    # Largest accepted body in MiB, both as sent and after gzip decompression.
    max_request_body_mib: int = DEFAULT_MAX_REQUEST_BODY_MIB
    # Bind with SO_REUSEPORT, as receiver.grpc.reuse_port.
    reuse_port: bool = False

    def validate(self, key: str) -> None:
        if self.endpoint:
            _check_endpoint(self.endpoint, f"{key}.endpoint")
        _require(
            1 <= self.max_request_body_mib <= 1024,
            f"{key}.max_request_body_mib",
            f"must be 1-1024, got {self.max_request_body_mib}",
        )


@dataclass(frozen=True, slots=True)
class ReceiverTlsConfig:
    # PEM certificate chain and private key; set both and both receivers speak TLS only.
    cert_file: str | None = None
    key_file: str | None = None
    # PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    client_ca_file: str | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    def validate(self, key: str) -> None:
        _require(
            (self.cert_file is None) == (self.key_file is None),
            f"{key}.cert_file",
            "cert_file and key_file go together",
        )
        _require(
            self.client_ca_file is None or self.enabled,
            f"{key}.client_ca_file",
            "mutual TLS needs cert_file and key_file too",
        )
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            _require(path is None or os.path.isfile(path), f"{key}.{name}", f"no such file: {path}")


@dataclass(frozen=True, slots=True)
class ReceiverAuthConfig:
    # When set, every export must carry `Authorization: Bearer <token>` (gRPC metadata or HTTP
    # header); others get UNAUTHENTICATED / 401. Health checks need no token.
    bearer_token: str | None = field(default=None, repr=False)

    def validate(self, key: str) -> None:
        _require(
            self.bearer_token is None or len(self.bearer_token) >= 16,
            f"{key}.bearer_token",
            "must be at least 16 characters",
        )


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    grpc: GrpcReceiverConfig = field(default_factory=GrpcReceiverConfig)
    http: HttpReceiverConfig = field(default_factory=HttpReceiverConfig)
    # TLS and authentication apply to both receivers alike.
    tls: ReceiverTlsConfig = field(default_factory=ReceiverTlsConfig)
    auth: ReceiverAuthConfig = field(default_factory=ReceiverAuthConfig)
    # A record whose body serializes larger than this is refused (OTLP partial success), so
    # one oversized line cannot block a downstream with a request size limit.
    max_log_body_bytes: int = DEFAULT_MAX_LOG_BODY_BYTES

    def validate(self, key: str) -> None:
        _require(self.max_log_body_bytes >= 1024, f"{key}.max_log_body_bytes", "must be >= 1024")
        self.grpc.validate(f"{key}.grpc")
        self.http.validate(f"{key}.http")
        self.tls.validate(f"{key}.tls")
        self.auth.validate(f"{key}.auth")


@dataclass(frozen=True, slots=True)
class ErrorContextConfig:
    # Forward the sampled-out logs of a trace when an error of that trace arrives.
    enabled: bool = True
    # How far back dropped records of a trace are remembered, in seconds.
    window_s: float = DEFAULT_ERROR_CONTEXT_WINDOW_S
    # Memory for remembered records (serialized bytes plus ~200 bytes of bookkeeping each);
    # the oldest go first.
    max_bytes: int = DEFAULT_ERROR_CONTEXT_MAX_BYTES
    # The last records remembered per trace; a trace's older ones go first.
    max_records_per_trace: int = DEFAULT_ERROR_CONTEXT_MAX_RECORDS_PER_TRACE
    # After an error, the trace's later records are kept this long.
    trace_ttl_s: float = DEFAULT_ERROR_CONTEXT_TRACE_TTL_S
    # Traces remembered as having errored (oldest forgotten first).
    max_traces: int = DEFAULT_ERROR_CONTEXT_MAX_TRACES

    def validate(self, key: str) -> None:
        _require(self.window_s > 0, f"{key}.window_s", "must be > 0")
        _require(self.max_bytes >= 0, f"{key}.max_bytes", "must be >= 0")
        _require(self.trace_ttl_s >= 0, f"{key}.trace_ttl_s", "must be >= 0")
        _require(self.max_traces >= 1, f"{key}.max_traces", "must be >= 1")
        _require(self.max_records_per_trace >= 1, f"{key}.max_records_per_trace", "must be >= 1")


@dataclass(frozen=True, slots=True)
class SeverityInferenceConfig:
    # Infer a severity for records sent without one (severity_number 0), from severity_text
    # or the body; the severity floor then applies to it.
    enabled: bool = True
    # Also write it into kept records (severity_number/text, lipservice.severity_inferred).
    write: bool = False


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    # Bodies longer than this are signed on their prefix, so huge bodies cost no more CPU.
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS
    # Distinct (service, pattern, severity) counters kept per interval; the rest count as
    # `other`, so a flood of distinct templates cannot exhaust memory.
    max_aggregate_keys: int = DEFAULT_MAX_AGGREGATE_KEYS
    # Remembered body -> template results; cleared when full. It pays for bodies repeated
    # word for word (heartbeats); most bodies hold a value seen once, so a large cache would
    # mostly hold those (~200 bytes each) and the signature's token memos cover the rest.
    template_cache_size: int = DEFAULT_TEMPLATE_CACHE_SIZE
    # Records with more attributes are refused (OTLP partial success), not forwarded.
    max_attributes_per_record: int = DEFAULT_MAX_ATTRIBUTES_PER_RECORD
    # Length of one counting interval: per-pattern counts are handed on and reset this often.
    report_interval_s: float = DEFAULT_REPORT_INTERVAL_S
    # A pattern is kept whole for the rest of the second once its count in that second
    # exceeds burst_factor x max(its policy baseline/s, burst_min_per_second).
    burst_factor: float = DEFAULT_BURST_FACTOR
    burst_min_per_second: float = DEFAULT_BURST_MIN_PER_SECOND
    # Records per second that bursts and never-seen patterns may keep whole, together.
    anomaly_keep_per_second: int = DEFAULT_ANOMALY_KEEP_PER_SECOND
    error_context: ErrorContextConfig = field(default_factory=ErrorContextConfig)
    infer_severity: SeverityInferenceConfig = field(default_factory=SeverityInferenceConfig)

    def validate(self, key: str) -> None:
        _require(self.max_body_chars >= 16, f"{key}.max_body_chars", "must be >= 16")
        _require(self.max_aggregate_keys >= 1, f"{key}.max_aggregate_keys", "must be >= 1")
        _require(self.template_cache_size >= 0, f"{key}.template_cache_size", "must be >= 0")
        _require(
            self.max_attributes_per_record >= 1, f"{key}.max_attributes_per_record", "must be >= 1"
        )
        _require(self.report_interval_s > 0, f"{key}.report_interval_s", "must be > 0")
        _require(self.burst_factor > 1, f"{key}.burst_factor", "must be > 1")
        _require(self.burst_min_per_second >= 0, f"{key}.burst_min_per_second", "must be >= 0")
        _require(
            self.anomaly_keep_per_second >= 0, f"{key}.anomaly_keep_per_second", "must be >= 0"
        )
        self.error_context.validate(f"{key}.error_context")


@dataclass(frozen=True, slots=True)
class PolicySourceConfig:
    # YAML policy document re-read whenever it changes; when unset the `document` below is used.
    file: str | None = None
    # How often the file's modification time is checked, in seconds.
    reload_interval_s: float = DEFAULT_POLICY_RELOAD_INTERVAL_S
    # An inline policy document (same schema as the file; see policy.py / README).
    document: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        _require(self.reload_interval_s > 0, f"{key}.reload_interval_s", "must be > 0")
        from lipservice_otel.policy import PolicyError, policy_from_document

        try:
            policy_from_document(self.document)
        except PolicyError as exc:
            raise ConfigError(f"{key}.document.{exc}") from None


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
    timeout_s: float = DEFAULT_OTLP_TIMEOUT_S

    def validate(self, key: str) -> None:
        _check_endpoint(self.endpoint, f"{key}.endpoint")
        _require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        for name in self.headers:
            _require(
                name == name.lower(),
                f"{key}.headers",
                f"gRPC metadata keys are lowercase: {name!r}",
            )


@dataclass(frozen=True, slots=True)
class OtlpHttpExporterConfig:
    # URL every request is POSTed to (http:// or https://), path included.
    endpoint: str = DEFAULT_OTLP_HTTP_ENDPOINT
    # Extra HTTP headers sent with every export, e.g. an authorization header.
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["gzip", "none"] = "gzip"
    # Deadline of one export request, in seconds.
    timeout_s: float = DEFAULT_OTLP_TIMEOUT_S
    # PEM file of CA certificates to trust for https:// (system roots when unset).
    ca_file: str | None = None
    # Client certificate and key (PEM) for mutual TLS; both or neither.
    cert_file: str | None = None
    key_file: str | None = None
    # Largest request body in bytes (uncompressed, so also compressed); larger batches are
    # split. 0: no limit.
    max_request_bytes: int = 0

    def validate(self, key: str) -> None:
        _require(
            self.endpoint.startswith(("http://", "https://")),
            f"{key}.endpoint",
            f"expected an http:// or https:// URL, got {self.endpoint!r}",
        )
        _require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        _require(
            (self.cert_file is None) == (self.key_file is None),
            f"{key}.cert_file",
            "cert_file and key_file go together (mutual TLS)",
        )
        _require(self.max_request_bytes >= 0, f"{key}.max_request_bytes", "must be >= 0")


@dataclass(frozen=True, slots=True)
class PosthogExporterConfig:
    # The project token (phc_..., Project settings); POSTHOG_API_KEY when unset.
    api_key: str | None = field(default=None, repr=False)
    # PostHog Cloud region whose logs endpoint is used.
    region: Literal["us", "eu"] = "us"
    # Replaces the region's URL: self-hosted PostHog or a proxy.
    endpoint: str | None = None
    # Deadline of one export request, in seconds.
    timeout_s: float = DEFAULT_OTLP_TIMEOUT_S

    @property
    def url(self) -> str:
        return self.endpoint or POSTHOG_ENDPOINTS[self.region]

    def validate(self, key: str) -> None:
        """Checked only with exporter.type posthog: a missing or wrong key fails the start."""
        _require(
            bool(self.api_key),
            f"{key}.api_key",
            f"required with exporter.type posthog (or set {POSTHOG_API_KEY_ENV})",
        )
        token = self.api_key or ""
        _require(
            not token.startswith("phx_"),
            f"{key}.api_key",
            "is a personal API key (phx_...); logs ingestion takes the project token "
            "(phc_..., Project settings)",
        )
        _require(
            token.startswith("phc_"),
            f"{key}.api_key",
            "expected a project token starting with phc_",
        )
        _require(
            self.url.startswith(("http://", "https://")),
            f"{key}.endpoint",
            f"expected an http:// or https:// URL, got {self.url!r}",
        )
        _require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")


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
    fsync_interval_s: float = DEFAULT_FSYNC_INTERVAL_S
    # A journal file is closed at this size and deleted once all its requests are done.
    segment_bytes: int = DEFAULT_SEGMENT_BYTES

    def validate(self, key: str) -> None:
        _require(self.fsync_interval_s > 0, f"{key}.fsync_interval_s", "must be > 0")
        _require(self.segment_bytes >= 1024 * 1024, f"{key}.segment_bytes", "must be >= 1 MiB")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    # Records waiting to be exported; when full the receivers answer RESOURCE_EXHAUSTED.
    max_records: int = DEFAULT_QUEUE_MAX_RECORDS
    # Serialized bytes waiting to be exported; the same answer when this is reached first.
    max_bytes: int = DEFAULT_QUEUE_MAX_BYTES
    # A batch is sent when it holds this many records ...
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS
    # ... or when its oldest record has waited this long, in seconds.
    batch_timeout_s: float = DEFAULT_BATCH_TIMEOUT_S
    # Batches exported concurrently.
    consumers: int = DEFAULT_QUEUE_CONSUMERS

    persistent: PersistentQueueConfig = field(default_factory=PersistentQueueConfig)

    def validate(self, key: str) -> None:
        _require(self.max_records >= 1, f"{key}.max_records", "must be >= 1")
        _require(self.max_bytes >= 1024, f"{key}.max_bytes", "must be >= 1024")
        self.persistent.validate(f"{key}.persistent")
        _require(self.batch_max_records >= 1, f"{key}.batch_max_records", "must be >= 1")
        _require(self.batch_timeout_s >= 0, f"{key}.batch_timeout_s", "must be >= 0")
        _require(1 <= self.consumers <= 64, f"{key}.consumers", "must be 1-64")


@dataclass(frozen=True, slots=True)
class RetryConfig:
    # Wait before the first retry of a failed export, doubled (with jitter) after each failure.
    initial_interval_s: float = DEFAULT_RETRY_INITIAL_INTERVAL_S
    max_interval_s: float = DEFAULT_RETRY_MAX_INTERVAL_S
    # Give up on a batch (counted as failed) after retrying this long.
    max_elapsed_s: float = DEFAULT_RETRY_MAX_ELAPSED_S

    def validate(self, key: str) -> None:
        _require(self.initial_interval_s > 0, f"{key}.initial_interval_s", "must be > 0")
        _require(
            self.max_interval_s >= self.initial_interval_s,
            f"{key}.max_interval_s",
            "must be >= initial_interval_s",
        )
        _require(self.max_elapsed_s >= 0, f"{key}.max_elapsed_s", "must be >= 0")


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


@dataclass(frozen=True, slots=True)
class LlmConfig:
    # Ask a model (OpenAI or any OpenAI-compatible server) which patterns matter; its judgement
    # weighs into the budgeted rules but can never lower a safety floor or an override.
    enabled: bool = False
    model: str = DEFAULT_LLM_MODEL
    # An OpenAI-compatible endpoint (Azure OpenAI, vLLM, Ollama, llama.cpp server), e.g.
    # http://localhost:11434/v1; null uses the openai client's default (OPENAI_BASE_URL or
    # api.openai.com).
    base_url: str | None = None
    # Name of the environment variable that holds the API key. The key itself never goes in
    # the config file, which tends to end up in version control.
    api_key_env: str = DEFAULT_LLM_API_KEY_ENV
    # Sent as the OpenAI-Organization / OpenAI-Project headers when set.
    organization: str | None = None
    project: str | None = None
    # Time the model may take per analysis cycle, all calls together; past it the cycle
    # uses the rules alone.
    timeout_s: float = DEFAULT_LLM_TIMEOUT_S
    # Completion tokens per call, and sampling temperature (0 = most repeatable).
    max_tokens: int = DEFAULT_LLM_MAX_TOKENS
    temperature: float = DEFAULT_LLM_TEMPERATURE
    # Patterns judged per call.
    max_patterns_per_call: int = DEFAULT_LLM_MAX_PATTERNS_PER_CALL
    # Cost bounds over any sliding hour: calls, and tokens as the server reports them.
    calls_per_hour: int = DEFAULT_LLM_CALLS_PER_HOUR
    token_budget_per_hour: int = DEFAULT_LLM_TOKEN_BUDGET_PER_HOUR
    # A judgement is asked again after this long (sooner when the pattern's template changes).
    judgement_ttl_s: float = DEFAULT_LLM_JUDGEMENT_TTL_S
    # Extra regexes scrubbed from templates and examples before they are sent, on top of
    # the built-in ones (emails, tokens, keys, passwords, IPs, card numbers).
    redaction_patterns: list[str] = field(default_factory=list)
    # After this many failed calls in a row the model is not asked for circuit_cooldown_s;
    # then one trial call decides whether to resume.
    circuit_failures: int = DEFAULT_LLM_CIRCUIT_FAILURES
    circuit_cooldown_s: float = DEFAULT_LLM_CIRCUIT_COOLDOWN_S

    def validate(self, key: str) -> None:
        _require(bool(self.model.strip()), f"{key}.model", "must not be empty")
        if self.base_url is not None:
            _require(
                self.base_url.startswith(("http://", "https://")),
                f"{key}.base_url",
                f"must start with http:// or https://, got {self.base_url!r}",
            )
        _require(
            bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env)),
            f"{key}.api_key_env",
            f"must be the name of an environment variable (not the key), got "
            f"{self.api_key_env[:4]!r}...",
        )
        _require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        _require(self.max_tokens >= 1, f"{key}.max_tokens", "must be >= 1")
        _require(0 <= self.temperature <= 2, f"{key}.temperature", "must be 0-2")
        _require(
            1 <= self.max_patterns_per_call <= 500,
            f"{key}.max_patterns_per_call",
            "must be 1-500",
        )
        _require(self.calls_per_hour >= 1, f"{key}.calls_per_hour", "must be >= 1")
        _require(self.token_budget_per_hour >= 1, f"{key}.token_budget_per_hour", "must be >= 1")
        _require(self.judgement_ttl_s > 0, f"{key}.judgement_ttl_s", "must be > 0")
        for n, pattern in enumerate(self.redaction_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{key}.redaction_patterns[{n}]: invalid regex: {exc}") from None
        _require(self.circuit_failures >= 1, f"{key}.circuit_failures", "must be >= 1")
        _require(self.circuit_cooldown_s > 0, f"{key}.circuit_cooldown_s", "must be > 0")


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    # Run the analysis loop inside `serve` (no network hop). Ignored with control.connect.
    embedded: bool = True
    # Seconds between analysis cycles (baselines, anomalies, merging, a new policy).
    interval_s: float = DEFAULT_ANALYSIS_INTERVAL_S
    # Share of records to drop overall; the budget each service's patterns share.
    target_reduction: float = DEFAULT_TARGET_REDUCTION
    # service.name -> records/s to keep; replaces target_reduction for that service.
    target_records_per_second: dict[str, float] = field(default_factory=dict)
    # Every pattern keeps at least this many records per interval (when it has them).
    min_examples_per_interval: int = DEFAULT_MIN_EXAMPLES_PER_INTERVAL
    # Weight of the newest interval in the moving baselines (0-1].
    ema_alpha: float = DEFAULT_EMA_ALPHA
    # A spike: rate >= spike_ratio x baseline and spike_z standard deviations above it, with at
    # least spike_min_records records in the interval.
    spike_ratio: float = DEFAULT_SPIKE_RATIO
    spike_z: float = DEFAULT_SPIKE_Z
    spike_min_records: int = DEFAULT_SPIKE_MIN_RECORDS
    # How long an anomaly keeps its pattern at rate 1.0, in seconds.
    anomaly_cooldown_s: float = DEFAULT_ANOMALY_COOLDOWN_S
    # An error surge: a service's ERROR+ share rises this much (absolute) and doubles.
    surge_min_share_increase: float = DEFAULT_SURGE_MIN_SHARE_INCREASE
    # Patterns remembered; the least recently seen are forgotten first.
    max_patterns: int = DEFAULT_MAX_PATTERNS
    # Patterns not known yet that one cycle takes up, loudest first; the others wait for a
    # later cycle (counted in lipservice_analysis_deferred_patterns).
    max_new_patterns_per_cycle: int = DEFAULT_MAX_NEW_PATTERNS_PER_CYCLE
    # Patterns unseen this long are forgotten, in seconds.
    pattern_ttl_s: float = DEFAULT_PATTERN_TTL_S
    # Merge templates that differ only in word-valued variables (TF-IDF + DBSCAN).
    merge_patterns: bool = True
    # Patterns whose words say something failed keep at least error_like_min_rate and
    # error_like_min_examples_per_interval records, whatever their volume (reason error_like).
    error_like: bool = True
    error_like_min_rate: float = DEFAULT_ERROR_LIKE_MIN_RATE
    error_like_min_examples_per_interval: int = DEFAULT_ERROR_LIKE_MIN_EXAMPLES
    # Words that make a template error-like; empty uses the built-in list (see README).
    error_like_words: list[str] = field(default_factory=list)
    llm: LlmConfig = field(default_factory=LlmConfig)

    def validate(self, key: str) -> None:
        _require(self.interval_s > 0, f"{key}.interval_s", "must be > 0")
        _require(0 <= self.target_reduction < 1, f"{key}.target_reduction", "must be in [0, 1)")
        for service, rate in self.target_records_per_second.items():
            _require(rate > 0, f"{key}.target_records_per_second.{service}", "must be > 0")
        _require(
            self.min_examples_per_interval >= 0,
            f"{key}.min_examples_per_interval",
            "must be >= 0",
        )
        _require(0 < self.ema_alpha <= 1, f"{key}.ema_alpha", "must be in (0, 1]")
        _require(self.spike_ratio > 1, f"{key}.spike_ratio", "must be > 1")
        _require(self.spike_z > 0, f"{key}.spike_z", "must be > 0")
        _require(self.spike_min_records >= 1, f"{key}.spike_min_records", "must be >= 1")
        _require(self.anomaly_cooldown_s >= 0, f"{key}.anomaly_cooldown_s", "must be >= 0")
        _require(
            0 < self.surge_min_share_increase < 1,
            f"{key}.surge_min_share_increase",
            "must be in (0, 1)",
        )
        _require(self.max_patterns >= 1, f"{key}.max_patterns", "must be >= 1")
        _require(
            self.max_new_patterns_per_cycle >= 1,
            f"{key}.max_new_patterns_per_cycle",
            "must be >= 1",
        )
        _require(self.pattern_ttl_s > 0, f"{key}.pattern_ttl_s", "must be > 0")
        _require(0 <= self.error_like_min_rate <= 1, f"{key}.error_like_min_rate", "must be 0-1")
        _require(
            self.error_like_min_examples_per_interval >= 0,
            f"{key}.error_like_min_examples_per_interval",
            "must be >= 0",
        )
        _require(
            all(word.strip() for word in self.error_like_words),
            f"{key}.error_like_words",
            "words must not be empty",
        )
        self.llm.validate(f"{key}.llm")


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    # redis://[:password@]host:port/db (rediss:// for TLS).
    url: str = DEFAULT_REDIS_URL
    # Every key this store writes starts with this prefix.
    key_prefix: str = DEFAULT_REDIS_KEY_PREFIX
    # The writer lock expires this long after its holder stops renewing it, in seconds.
    lock_ttl_s: float = DEFAULT_LOCK_TTL_S

    def validate(self, key: str) -> None:
        _require(
            self.url.startswith(("redis://", "rediss://", "unix://")),
            f"{key}.url",
            f"must start with redis://, rediss:// or unix://, got {self.url!r}",
        )
        _require(bool(self.key_prefix), f"{key}.key_prefix", "must not be empty")
        _require(self.lock_ttl_s > 0, f"{key}.lock_ttl_s", "must be > 0")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # Where policy versions, history and baselines live: this process, or a Redis server
    # shared by analyzer replicas.
    type: Literal["memory", "redis"] = "memory"
    # memory: snapshot file written every snapshot_interval_s and on shutdown, read on start.
    snapshot_file: str | None = None
    snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S
    # Policy versions kept in the history.
    history_limit: int = DEFAULT_HISTORY_LIMIT
    # The newest history_rules_versions versions keep their pattern rules and aliases; older
    # ones keep everything else (version, settings, generator, time, summary).
    history_rules_versions: int = DEFAULT_HISTORY_RULES_VERSIONS
    redis: RedisStoreConfig = field(default_factory=RedisStoreConfig)

    def validate(self, key: str) -> None:
        _require(self.snapshot_interval_s > 0, f"{key}.snapshot_interval_s", "must be > 0")
        _require(self.history_limit >= 1, f"{key}.history_limit", "must be >= 1")
        _require(self.history_rules_versions >= 1, f"{key}.history_rules_versions", "must be >= 1")
        self.redis.validate(f"{key}.redis")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    # `analyze` serves the control plane (Sync stream, admin calls) here.
    listen: str = DEFAULT_CONTROL_LISTEN
    # `serve` connects to a remote analysis service at HOST:PORT instead of embedding one.
    connect: str | None = None
    # Longest wait between reconnection attempts, in seconds.
    reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S
    # The receiver keeps its last policy here, so a restart without the analyzer resumes it.
    policy_cache_file: str | None = None

    def validate(self, key: str) -> None:
        _check_endpoint(self.listen, f"{key}.listen")
        if self.connect is not None:
            _check_endpoint(self.connect, f"{key}.connect")
        _require(self.reconnect_max_s > 0, f"{key}.reconnect_max_s", "must be > 0")


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    # Prometheus text exposition (`/metrics`); empty string disables it.
    metrics_endpoint: str = DEFAULT_METRICS_ENDPOINT
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def validate(self, key: str) -> None:
        if self.metrics_endpoint:
            _check_endpoint(self.metrics_endpoint, f"{key}.metrics_endpoint")


@dataclass(frozen=True, slots=True)
class Settings:
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    policy: PolicySourceConfig = field(default_factory=PolicySourceConfig)
    exporter: ExporterConfig = field(default_factory=ExporterConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # Seconds SIGTERM waits for queued records to be exported before exiting.
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S

    def validate(self) -> None:
        self.receiver.validate("receiver")
        self.sampler.validate("sampler")
        self.policy.validate("policy")
        self.exporter.validate("exporter")
        self.analysis.validate("analysis")
        self.store.validate("store")
        self.control.validate("control")
        self.telemetry.validate("telemetry")
        _require(self.shutdown_timeout_s >= 0, "shutdown_timeout_s", "must be >= 0")
        if self.analysis.llm.enabled and self.store.type == "redis":
            # The writer lock is renewed once per cycle; a cycle that outlives it lets a
            # standby replica start writing too.
            _require(
                self.analysis.interval_s + self.analysis.llm.timeout_s
                < self.store.redis.lock_ttl_s,
                "analysis.llm.timeout_s",
                "analysis.interval_s + analysis.llm.timeout_s must be below store.redis.lock_ttl_s",
            )


def load_settings(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < YAML file < environment < overrides (dotted keys, e.g. from flags)."""
    document: dict[str, Any] = {}
    if path:
        document = _read_yaml(path)
    environ = os.environ if environ is None else environ
    for dotted, value in _env_overrides(environ).items():
        _set_dotted(document, dotted, value)
    if environ.get(POSTHOG_API_KEY_ENV):
        # PostHog's own variable, below every setting that names the key explicitly.
        exporter = document.setdefault("exporter", {})
        if isinstance(exporter, dict) and isinstance(exporter.setdefault("posthog", {}), dict):
            exporter["posthog"].setdefault("api_key", environ[POSTHOG_API_KEY_ENV])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(document, dotted, value)
    settings = _build(Settings, document, "")
    settings.validate()
    return settings


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config: {path} must hold a mapping at the top level")
    return loaded


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        dotted = ".".join(name[len(ENV_PREFIX) :].lower().split(ENV_LEVEL_SEPARATOR))
        # YAML scalar rules give "true", "1.5" and "{a: b}" their natural types.
        try:
            found[dotted] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            found[dotted] = raw
    return found


def _set_dotted(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = document
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, key: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, value in raw.items():
        child_key = f"{key}.{name}" if key else name
        values[name] = _coerce(hints[name], value, child_key)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(str(a) for a in args)
            raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], item, f"{key}[{n}]") for n, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        value_type = args[1]
        if value_type is Any:
            return dict(value)
        return {str(k): _coerce(value_type, v, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")
