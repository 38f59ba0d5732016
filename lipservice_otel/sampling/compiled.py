"""The compiled sampler: sampler.py's decisions, with the per-record work in C (_native.c).

It is the Python Sampler (whose state it shares: policy, slots, burst and budget counters,
error context, aggregates) with a second way in: `walk()` + `sample_walked()` take the request
as the bytes received and give back the bytes to forward, spliced from the kept records' spans
with their annotation appended, never parsed into protobuf objects.

What the compiled path asks of Python, and how often:
- per never-seen (tenant, service, template, severity): its rule and counter
  (`_native_slot`, `_native_fallback`, `_native_counts`), then cached in C with the
  annotation bytes;
- per ResourceLogs, when the tenant is a resource attribute: its name under the tenant cap
  (`_tenant_of`; a header tenant is named once per request, here);
- per record needing it: a structured body's template (cached by its bytes), a severity to
  infer, each value an exemption's regex searches (the compiled pattern's own search; an
  exemption's `equals` is compared in C, handed over with the policy by set_exemptions);
- per request it cannot take whole (a record with more attributes than allowed, an upstream
  stamp to multiply, an id of the wrong length, a body over the size limit, a counting key past
  the cap): the whole request, to Sampler.sample. Shadow mode, exemptions and written
  severities run here too: shadow mode forwards every record, annotated with what enforce
  mode would do; infer_severity.write appends the inferred severity to a kept record's bytes
  (a scalar field appended later wins).
Each is counted (the receiver pipeline exports them as lipservice_sampler_python_records).

The error-context store is _native.ErrorContext, error_context.py's ErrorContext in C with the
same API (the Python code of this sampler, for the requests it gives up, uses it too): in Python
remembering a dropped traced record cost more than all the rest of its work.

The Python sampler stays the specification: tests/unit/sampling/test_differential.py feeds
both the same requests and compares decisions, counts, annotations and the forwarded messages.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lipservice_otel.policy.model import Policy
from lipservice_otel.policy.reasons import REASON_BURST, REASON_ERROR_CONTEXT
from lipservice_otel.sampling.aggregates import Aggregates, PatternCounts
from lipservice_otel.sampling.annotation import UNKNOWN_SERVICE
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.sampler import (
    SampleOutcome,
    Sampler,
    _append_recalled,
    _Slot,
)
from lipservice_otel.sampling.tenant import DEFAULT_MAX_TENANTS, TenantKey
from lipservice_otel.text.signature import template_of_value

# lipservice_sampler_python_records{reason}: a whole request sampled by the Python sampler;
# a record that needed a call (structured body, severity to infer).
TO_PYTHON_REQUEST = "request"
TO_PYTHON_RECORD = "record"
_NO_LIMIT = 1 << 62


# The engine's scope numbers; any other scope reads a record attribute, as in sampler.py.
_EXEMPTION_SCOPES = {"resource": 1, "body": 2}


def _engine_exemptions(policy: Policy) -> tuple:
    """The policy's exemptions as the engine takes them, in order: (scope, key, equals, the
    regex's search, reason). Exemption.matches_value() reads equals first, then the pattern;
    strings as UTF-8 (surrogatepass: such a key or value matches nothing on the wire)."""
    return tuple(
        (
            _EXEMPTION_SCOPES.get(exemption.scope, 0),
            exemption.key.encode("utf-8", "surrogatepass"),
            None if exemption.equals is None else exemption.equals.encode("utf-8", "surrogatepass"),
            exemption.pattern.search
            if exemption.equals is None and exemption.pattern is not None
            else None,
            exemption.reason,
        )
        for exemption in policy.exemptions
    )


class CompiledSampler(Sampler):
    def __init__(
        self,
        native: ModuleType,
        config: SamplerConfig,
        policy: Policy,
        aggregates: Aggregates,
        clock: Callable[[], float] = time.monotonic,
        tenant_key: TenantKey | None = None,
        max_tenants: int = DEFAULT_MAX_TENANTS,
    ) -> None:
        super().__init__(config, policy, aggregates, clock, tenant_key, max_tenants)
        self._native = native
        max_chars = config.max_body_chars
        by_resource = tenant_key is not None and tenant_key.kind == "resource"
        self._engine = native.Engine(
            max_body_chars=max_chars,
            max_attributes=config.max_attributes_per_record,
            cache_size=config.template_cache_size,
            slot_cap=config.max_aggregate_keys,
            infer=config.infer_severity.enabled,
            make_slot=self._native_slot,
            make_fallback=self._native_fallback,
            make_counts=self._native_counts,
            infer_severity=lambda record, template: self._infer(
                LogRecord.FromString(record), template
            ),
            template_of_value=lambda value: template_of_value(
                AnyValue.FromString(value), max_chars
            ),
            note_pattern=aggregates.note_pattern,
            unknown_service=UNKNOWN_SERVICE,
            tenant_attribute=tenant_key.name.encode() if by_resource else b"",
            tenant_of=self._tenant_of,
        )
        self._engine.set_exemptions(_engine_exemptions(policy))
        self._interval_seen = aggregates.interval
        self._to_python_seen = 0
        # The request being sampled is one the C engine gave up past the aggregate key cap.
        self._past_key_cap = False
        context = config.error_context
        if context.enabled:
            self._error_context = native.ErrorContext(
                context.window_s,
                context.max_bytes,
                context.trace_ttl_s,
                context.max_traces,
                context.max_records_per_trace,
            )

    def set_policy(self, policy: Policy) -> None:
        super().set_policy(policy)
        self._engine.forget()
        self._engine.set_exemptions(_engine_exemptions(policy))

    def sample(
        self,
        request: ExportLogsServiceRequest,
        header_tenant: str | None = None,
        sender_tenant: str | None = None,
    ) -> SampleOutcome:
        """Sampler.sample() for a request already parsed (OTLP/JSON, decoded by the HTTP
        receiver): its bytes take the same walk, and the request becomes what is forwarded.
        The receiver's body-size limit has been applied to it already."""
        self._past_key_cap = False
        walked = self._engine.walk(request.SerializeToString(), _NO_LIMIT)
        sampled = (
            self.sample_walked(walked, header_tenant, sender_tenant) if walked is not None else None
        )
        if sampled is None:
            return self.sample_given_up(request, header_tenant, sender_tenant)
        outcome, forwarded = sampled
        request.ParseFromString(forwarded)
        return outcome

    def sample_given_up(
        self,
        request: ExportLogsServiceRequest,
        header_tenant: str | None = None,
        sender_tenant: str | None = None,
    ) -> SampleOutcome:
        """Sampler.sample() for a request sample_walked() has just given up, now parsed: the
        Python sampler at once, where sample() would serialize, walk and run the engine again
        to come to the same answer."""
        try:
            return super().sample(request, header_tenant, sender_tenant)
        finally:
            self._past_key_cap = False

    def walk(self, payload: bytes, max_body_bytes: int):
        """The request walked natively, or None when upb must parse it (it may be malformed:
        then ExportLogsServiceRequest.FromString raises DecodeError as on the Python path)."""
        return self._engine.walk(payload, max_body_bytes)

    def sample_walked(
        self, walked, header_tenant: str | None = None, sender_tenant: str | None = None
    ) -> tuple[SampleOutcome, bytes] | None:
        """sample() for a walked request: the outcome and the request to forward, or None
        when this request is one for the Python sampler (see the module docstring)."""
        policy = self._policy
        self._past_key_cap = False
        now = self._begin()
        if self._interval_seen != self._interval:
            self._interval_seen = self._interval
            self._engine.forget()
        # "": no tenants; None: each resource's attribute, named from C through _tenant_of.
        tenant: str | None = ""
        if self._tenant_by_resource(sender_tenant):
            tenant = None
        elif self._tenant_key is not None:
            tenant = self._tenant_of(
                header_tenant if sender_tenant is None else sender_tenant, walked.records
            )
        state = (
            self._per_second,
            self._bursting,
            self._template_seconds,
            self._template_bursting,
            self._second,
            self._anomaly_budget,
            self._error_context,
            policy.severity_floor,
            now,
            REASON_BURST,
            REASON_ERROR_CONTEXT,
            tenant,
            policy.shadow,
            self._write_severity,
        )
        result = self._engine.sample(walked, state)
        if result is None:
            # Sampler.sample() names the tenants again, counting their overflow once.
            self._past_key_cap = walked.to_python is None
            return None
        (
            payload,
            received,
            kept,
            kept_by,
            dropped_by,
            recalled,
            budget,
            received_by_tenant,
            kept_by_tenant,
        ) = result
        self._anomaly_budget = budget
        outcome = SampleOutcome(received=received, kept=kept)
        outcome.kept_by_reason = Counter(kept_by)
        outcome.dropped_by_reason = Counter(dropped_by)
        outcome.received_by_tenant = Counter(received_by_tenant)
        outcome.kept_by_tenant = Counter(kept_by_tenant)
        outcome.tenant_overflow_records, self._tenant_overflow = self._tenant_overflow, 0
        if recalled:
            # Appended as Sampler.sample appends them: serialized messages concatenate.
            extra = ExportLogsServiceRequest()
            _append_recalled(extra, recalled)
            payload += extra.SerializeToString()
            outcome.recalled = len(recalled)
            outcome.recalled_entries = recalled
        return outcome, payload

    def to_python_since(self) -> int:
        """Records that needed a Python call since the last time asked."""
        now = self._engine.to_python()
        seen, self._to_python_seen = self._to_python_seen, now
        return now - seen

    def _request_slots(self) -> dict[tuple[str, str, str, int], _Slot]:
        """Past the aggregate key cap, the slots of a request given to Sampler.sample live as
        long as that request. The C table holds up to max_aggregate_keys slots already; a
        flood of new templates past the cap sends every request here, and keeping these too
        would hold a second table of as many slots (measured: ~45 MiB more than the Python
        sampler under bench/memory.py's flood). Such a request's new keys overflow, and a
        slot without a counter is asked again by every record; the other requests given up
        (upstream stamps, bodies over the limit: maybe all of them) keep the table."""
        return {} if self._past_key_cap else self._slots

    def _python_slot(self, service: str, template: str, severity: int, tenant: str) -> _Slot:
        """The Python sampler's slot for a key, made for the C table and not kept: that table
        is the compiled path's cache (keeping both would hold every key twice)."""
        return self._slot({}, self._policy, tenant, service, template, severity)

    def _native_slot(self, service: str, template: str, severity: int, tenant: str) -> tuple:
        slot = self._python_slot(service, template, severity, tenant)
        rule = slot.rule
        return (
            slot.signature_id,
            rule.pattern_id,
            rule.threshold,
            rule.rate,
            rule.reason,
            rule.known,
            bool(rule.baseline_per_second),
            slot.burst_limit,
            slot.template_limit,
        )

    def _native_fallback(
        self, service: str, template: str, severity: int, severity_number: int, tenant: str
    ) -> tuple:
        rule = self._python_slot(service, template, severity, tenant).fallback(
            self._policy, severity_number
        )
        return rule.threshold, rule.rate, rule.reason

    def _native_counts(
        self, service: str, template: str, severity: int, tenant: str
    ) -> PatternCounts | None:
        """The slot's counter, or None past the key cap (each record then counts as overflow,
        which the Python sampler does record by record)."""
        slot = self._python_slot(service, template, severity, tenant)
        if slot.counts is None:
            if not self._aggregates.has_counter(service, slot.signature_id, slot.bucket, tenant):
                return None
            self._counts(slot, tenant, service)
        return slot.counts
