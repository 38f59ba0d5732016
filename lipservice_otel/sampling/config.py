"""Settings of the per-record work: signing, counting, bursts, error context, severity inference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lipservice_otel.validation import require

DEFAULT_MAX_BODY_CHARS = 2048
# A 5x jump of a pattern with a steady baseline passes 4x its baseline within its first second,
# while a sender's batching (one export a second landing in the next second: 2x) does not.
DEFAULT_BURST_FACTOR = 4.0
# Under this baseline the detector assumes it: a quiet pattern's few records a second vary by
# more than 4x without anything happening (with the factor: 8 records in one second).
DEFAULT_BURST_MIN_PER_SECOND = 2.0


@dataclass(frozen=True, slots=True)
class ErrorContextConfig:
    # Forward the sampled-out logs of a trace when an error of that trace arrives.
    enabled: bool = True
    # How far back dropped records of a trace are remembered, in seconds.
    window_s: float = 5.0
    # Memory for remembered records (serialized bytes plus ~200 bytes of bookkeeping each);
    # the oldest go first.
    max_bytes: int = 16 * 1024 * 1024
    # The last records remembered per trace; a trace's older ones go first.
    max_records_per_trace: int = 256
    # After an error, the trace's later records are kept this long.
    trace_ttl_s: float = 30.0
    # Traces remembered as having errored (oldest forgotten first).
    max_traces: int = 10_000

    def validate(self, key: str) -> None:
        require(self.window_s > 0, f"{key}.window_s", "must be > 0")
        require(self.max_bytes >= 0, f"{key}.max_bytes", "must be >= 0")
        require(self.trace_ttl_s >= 0, f"{key}.trace_ttl_s", "must be >= 0")
        require(self.max_traces >= 1, f"{key}.max_traces", "must be >= 1")
        require(self.max_records_per_trace >= 1, f"{key}.max_records_per_trace", "must be >= 1")


@dataclass(frozen=True, slots=True)
class SeverityInferenceConfig:
    # Infer a severity for records sent without one (severity_number 0), from severity_text
    # or the body; the severity floor then applies to it.
    enabled: bool = True
    # Also write it into kept records (severity_number/text, lipservice.severity_inferred).
    write: bool = False


# auto: the compiled sampler when its extension imports, else the Python one with a warning;
# compiled: refuse to start without the extension; python: the pure-Python reference.
Implementation = Literal["auto", "compiled", "python"]
DEFAULT_IMPLEMENTATION: Implementation = "auto"


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    # Which sampler runs the per-record work (see implementation.py); the same decisions,
    # counts and annotations either way.
    implementation: Implementation = DEFAULT_IMPLEMENTATION
    # Bodies longer than this are signed on their prefix, so huge bodies cost no more CPU.
    max_body_chars: int = DEFAULT_MAX_BODY_CHARS
    # Distinct (service, pattern, severity) counters kept per interval; the rest count as
    # `other`, so a flood of distinct templates cannot exhaust memory.
    max_aggregate_keys: int = 100_000
    # Remembered body -> template results; cleared when full. It pays for bodies repeated
    # word for word (heartbeats); most bodies hold a value seen once, so a large cache would
    # mostly hold those (~200 bytes each) and the signature's token memos cover the rest.
    template_cache_size: int = 20_000
    # Records with more attributes are refused (OTLP partial success), not forwarded.
    max_attributes_per_record: int = 1024
    # Length of one counting interval: per-pattern counts are handed on and reset this often.
    report_interval_s: float = 10.0
    # A pattern is kept whole for the rest of the second and the next once its count in that
    # second exceeds burst_factor x max(its policy baseline/s, burst_min_per_second). Merged
    # patterns are watched as a whole and per template (each against its own baseline).
    burst_factor: float = DEFAULT_BURST_FACTOR
    burst_min_per_second: float = DEFAULT_BURST_MIN_PER_SECOND
    # Records per second that bursts and never-seen patterns may keep whole, together.
    anomaly_keep_per_second: int = 2000
    error_context: ErrorContextConfig = field(default_factory=ErrorContextConfig)
    infer_severity: SeverityInferenceConfig = field(default_factory=SeverityInferenceConfig)

    def validate(self, key: str) -> None:
        require(self.max_body_chars >= 16, f"{key}.max_body_chars", "must be >= 16")
        require(self.max_aggregate_keys >= 1, f"{key}.max_aggregate_keys", "must be >= 1")
        require(self.template_cache_size >= 0, f"{key}.template_cache_size", "must be >= 0")
        require(
            self.max_attributes_per_record >= 1, f"{key}.max_attributes_per_record", "must be >= 1"
        )
        require(self.report_interval_s > 0, f"{key}.report_interval_s", "must be > 0")
        require(self.burst_factor > 1, f"{key}.burst_factor", "must be > 1")
        require(self.burst_min_per_second >= 0, f"{key}.burst_min_per_second", "must be >= 0")
        require(self.anomaly_keep_per_second >= 0, f"{key}.anomaly_keep_per_second", "must be >= 0")
        self.error_context.validate(f"{key}.error_context")
