"""Applies the current policy to one OTLP logs request, in place.

For every record: sign the body (template -> pattern id), look up the rule for (pattern,
severity), draw the record's deterministic randomness, keep or drop, annotate what is kept,
count everything. Dropped records are deleted from the request itself so what is kept is
forwarded without being copied or re-built.

Per-record work is kept to dictionary lookups: templates are cached by body text, pattern ids
by (service, template) and rules by (pattern, severity) for the current policy version.

Two receiver-local reactions do not wait for the analysis loop: a pattern whose count in the
current second exceeds `burst_factor` x its policy baseline is kept whole for the rest of that
second and the next (reason `anomaly/burst`), and under a learned policy a pattern the policy
has never seen is kept whole (`anomaly/new_pattern`); both draw on one per-second budget so a
flood cannot pass unsampled.
Records dropped with a trace id are remembered briefly and forwarded if an error of the same
trace follows (see error_context.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import xxhash
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lipservice_otel.aggregates import Aggregates
from lipservice_otel.config import SamplerConfig
from lipservice_otel.error_context import ErrorContext, Remembered
from lipservice_otel.policy import (
    RANDOMNESS_BITS,
    Exemption,
    Policy,
    Rule,
    severity_bucket,
)
from lipservice_otel.severity import infer_severity, severity_from_body, severity_from_text
from lipservice_otel.signature import pattern_id, template_of_text, template_of_value

ATTR_ADJUSTED_COUNT = "sampling.adjusted_count"
ATTR_PATTERN_ID = "lipservice.pattern_id"
ATTR_REASON = "lipservice.reason"
ATTR_WOULD_KEEP = "lipservice.would_keep"
ATTR_SEVERITY_INFERRED = "lipservice.severity_inferred"
REASON_BURST = "anomaly/burst"
REASON_ERROR_CONTEXT = "error_context"
SERVICE_NAME_KEY = "service.name"
UNKNOWN_SERVICE = "unknown_service"

_MASK64 = (1 << 64) - 1
_SEED_STEP = 0x9E3779B97F4A7C15  # spreads identical records of one request over seeds
_DISCARD_BITS = 64 - RANDOMNESS_BITS


@dataclass(slots=True)
class SampleOutcome:
    received: int = 0
    kept: int = 0
    # Refused for breaking a limit; reported to the sender as OTLP partial success.
    rejected: int = 0
    rejection_message: str = ""
    # Records dropped earlier, forwarded now as error context (not part of `received`).
    recalled: int = 0
    kept_by_reason: Counter[str] = field(default_factory=Counter)
    dropped_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def dropped(self) -> int:
        return self.received - self.kept - self.rejected


def record_randomness(record: LogRecord, body_key: bytes, index: int) -> int:
    """56 random-looking bits that are a pure function of the record.

    With a trace id these are the id's last 7 bytes (the W3C random bits), so every log of
    one trace gets the same draw; without one, a hash of the body and timestamp, with the
    record's position in the request mixed in so identical records do not all share a fate.
    """
    trace_id = record.trace_id
    if len(trace_id) == 16:
        return int.from_bytes(trace_id[9:], "big")
    seed = (record.time_unix_nano + index * _SEED_STEP) & _MASK64
    return xxhash.xxh3_64_intdigest(body_key, seed) >> _DISCARD_BITS


def service_name(resource_attributes) -> str:
    for kv in resource_attributes:
        if kv.key == SERVICE_NAME_KEY:
            return kv.value.string_value or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def _string_attribute(attributes, key: str) -> str | None:
    for kv in attributes:
        if kv.key == key:
            value = kv.value
            kind = value.WhichOneof("value")
            if kind == "string_value":
                return value.string_value
            if kind in ("int_value", "bool_value", "double_value"):
                return str(getattr(value, kind)).lower()
            return None
    return None


def _matching_exemption(
    exemptions: tuple[Exemption, ...], attributes, body_text: str
) -> Exemption | None:
    for exemption in exemptions:
        value = (
            body_text if exemption.scope == "body" else _string_attribute(attributes, exemption.key)
        )
        if exemption.matches_value(value):
            return exemption
    return None


def annotate(record: LogRecord, rate: float, pattern: str, reason: str) -> None:
    """Stamp a kept record; an upstream sampler's adjusted count is multiplied, not replaced.

    Rate 0 marks a record kept for a reason other than probability (error context): its
    adjusted count is 0 because the sampled records of its pattern already stand for it.
    """
    adjusted = 1.0 / rate if rate else 0.0
    for kv in record.attributes:
        if kv.key == ATTR_ADJUSTED_COUNT:
            value = kv.value
            kind = value.WhichOneof("value")
            upstream = getattr(value, kind) if kind in ("double_value", "int_value") else 1.0
            value.double_value = upstream * adjusted
            break
    else:
        _add_attribute(record, ATTR_ADJUSTED_COUNT).value.double_value = adjusted
    _add_attribute(record, ATTR_PATTERN_ID).value.string_value = pattern
    _add_attribute(record, ATTR_REASON).value.string_value = reason


def write_inferred_severity(record: LogRecord, severity: int) -> None:
    """Opt-in (sampler.infer_severity.write): make the inferred level visible downstream."""
    record.severity_number = severity
    if not record.severity_text:
        record.severity_text = severity_bucket(severity).upper()
    _add_attribute(record, ATTR_SEVERITY_INFERRED).value.bool_value = True


def annotate_context(record: LogRecord) -> None:
    """Stamp a record forwarded as error context over its earlier drop (adjusted count 0)."""
    attributes = record.attributes
    for position in range(len(attributes) - 1, -1, -1):
        if attributes[position].key in (ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON):
            del attributes[position]
    _add_attribute(record, ATTR_ADJUSTED_COUNT).value.double_value = 0.0
    _add_attribute(record, ATTR_REASON).value.string_value = REASON_ERROR_CONTEXT


def _add_attribute(record: LogRecord, key: str) -> KeyValue:
    kv = record.attributes.add()
    kv.key = key
    return kv


class Sampler:
    def __init__(
        self,
        config: SamplerConfig,
        policy: Policy,
        aggregates: Aggregates,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_body_chars = config.max_body_chars
        self._cache_size = config.template_cache_size
        self._max_attributes = config.max_attributes_per_record
        self._burst_factor = config.burst_factor
        self._burst_min = config.burst_min_per_second
        self._anomaly_keep_per_second = config.anomaly_keep_per_second
        self._infer_severity = config.infer_severity.enabled
        self._write_severity = config.infer_severity.write
        self._aggregates = aggregates
        self._clock = clock
        self._templates: dict[str, str] = {}
        self._pattern_ids: dict[tuple[str, str], str] = {}
        self._inferred: dict[tuple[str, str], int] = {}
        self._policy = policy
        self._rules: dict[tuple[str, int], Rule] = {}
        # Receiver-local anomaly state, per wall-clock second.
        self._second = -1
        self._per_second: dict[str, int] = {}
        self._bursting: dict[str, int] = {}  # pattern id -> last second it is kept whole
        self._anomaly_budget = 0
        context = config.error_context
        self._error_context = (
            ErrorContext(
                context.window_s, context.max_bytes, context.trace_ttl_s, context.max_traces
            )
            if context.enabled
            else None
        )

    @property
    def policy(self) -> Policy:
        return self._policy

    def set_policy(self, policy: Policy) -> None:
        # One reference swap: a request in flight finishes under the policy it started with.
        self._policy, self._rules = policy, {}

    def template(self, text: str) -> str:
        template = self._templates.get(text)
        if template is None:
            template = template_of_text(text, self._max_body_chars)
            if len(self._templates) >= self._cache_size:
                self._templates.clear()
            self._templates[text] = template
        return template

    def pattern_id(self, service: str, template: str) -> str:
        key = (service, template)
        pid = self._pattern_ids.get(key)
        if pid is None:
            pid = pattern_id(service, template)
            if len(self._pattern_ids) >= self._cache_size:
                self._pattern_ids.clear()
            self._pattern_ids[key] = pid
        return pid

    def sample(self, request: ExportLogsServiceRequest) -> SampleOutcome:
        """Decide every record of `request`, delete the dropped ones, annotate the kept ones."""
        now = self._clock()
        if int(now) != self._second:
            self._second = int(now)
            self._per_second = {}
            self._bursting = {p: s for p, s in self._bursting.items() if s >= self._second}
            self._anomaly_budget = self._anomaly_keep_per_second
        batch = _Batch(self._policy, self._rules, now)
        for resource_logs in request.resource_logs:
            resource_attributes = resource_logs.resource.attributes
            batch.service = service_name(resource_attributes)
            batch.resource_exemption = _matching_exemption(
                batch.resource_exemptions, resource_attributes, ""
            )
            for scope_logs in resource_logs.scope_logs:
                batch.scope_key = None
                batch.resource_logs, batch.scope_logs = resource_logs, scope_logs
                records = scope_logs.log_records
                dropped = [p for p, record in enumerate(records) if not self._sample(record, batch)]
                for position in reversed(dropped):
                    del records[position]
                batch.outcome.received += len(records) + len(dropped)
        _prune_empty(request)
        if batch.recalled:
            _append_recalled(request, batch.recalled)
            batch.outcome.recalled = len(batch.recalled)
        return batch.outcome

    def _sample(self, record: LogRecord, batch: _Batch) -> bool:
        """Decide, count and annotate one record; False when it is to be deleted."""
        batch.index += 1
        outcome = batch.outcome
        if len(record.attributes) > self._max_attributes:
            outcome.rejected += 1
            outcome.rejection_message = (
                f"{outcome.rejected} record(s) with more than {self._max_attributes} "
                "attributes (sampler.max_attributes_per_record)"
            )
            return False
        body = record.body
        if body.WhichOneof("value") == "string_value":
            text = body.string_value
            template = self.template(text)
        else:
            text = ""
            template = template_of_value(body, self._max_body_chars)
        signature_id = self.pattern_id(batch.service, template)
        severity = record.severity_number
        if not severity and self._infer_severity:
            severity = self._infer(record, template)
        rule_key = (signature_id, severity)
        rule = batch.rules.get(rule_key)
        if rule is None:
            rule = batch.rules[rule_key] = batch.policy.rule_for(signature_id, severity)
        keep, rate, reason = self._decide(record, rule, text, batch)
        counts = self._aggregates.counter(batch.service, signature_id, severity_bucket(severity))
        counts.received += 1
        if counts.received == 1:
            self._aggregates.note_pattern(signature_id, batch.service, template, text or template)
        trace_id = record.trace_id
        context = self._error_context
        if context is not None and len(trace_id) == 16:
            if severity >= batch.policy.severity_floor:
                batch.recalled.extend(context.recall(trace_id, batch.now))
            elif not keep and not batch.policy.shadow:
                if context.is_hot(trace_id, batch.now):
                    keep, rate, reason = True, 0.0, REASON_ERROR_CONTEXT
                else:
                    context.remember(batch.remembered(record, trace_id))
        if batch.policy.shadow:
            annotate(record, 1.0, rule.pattern_id, reason)
            _add_attribute(record, ATTR_WOULD_KEEP).value.bool_value = keep
            keep = True
        elif keep:
            annotate(record, rate, rule.pattern_id, reason)
        if keep:
            if self._write_severity and severity and not record.severity_number:
                write_inferred_severity(record, severity)
            counts.kept += 1
            outcome.kept += 1
            outcome.kept_by_reason[reason] += 1
        else:
            outcome.dropped_by_reason[reason] += 1
        return keep

    def _decide(self, record: LogRecord, rule: Rule, text: str, batch: _Batch):
        """(keep, rate, reason): exemptions, receiver-local anomalies, then the policy's draw."""
        exemption = batch.resource_exemption or (
            batch.record_exemptions
            and _matching_exemption(batch.record_exemptions, record.attributes, text)
        )
        if exemption:
            return True, 1.0, exemption.reason
        if rule.rate >= 1.0:
            if rule.known or self._take_anomaly_budget():
                return True, 1.0, rule.reason
            rule = batch.policy.rule_for_unknown(rule.pattern_id, record.severity_number)
        elif rule.baseline_per_second:
            pid = rule.pattern_id
            seen = self._per_second.get(pid, 0) + 1
            self._per_second[pid] = seen
            limit = self._burst_factor * max(rule.baseline_per_second, self._burst_min)
            if seen > limit:
                # Held through the next second too, so a burst is not re-sampled each time the
                # second turns over while the analyzer has yet to react.
                self._bursting[pid] = self._second + 1
            if self._bursting.get(pid, -1) >= self._second and self._take_anomaly_budget():
                return True, 1.0, REASON_BURST
        body_key = text.encode("utf-8", "surrogatepass") if text else b""
        randomness = record_randomness(record, body_key, batch.index)
        return randomness < rule.threshold, rule.rate, rule.reason

    def _take_anomaly_budget(self) -> bool:
        """Anomaly keeps are capped per second, so a flood of new templates stays sampled."""
        if self._anomaly_budget <= 0:
            return False
        self._anomaly_budget -= 1
        return True

    def _infer(self, record: LogRecord, template: str) -> int:
        """Severity of a record sent without one, cached per (severity_text, template)."""
        if record.body.WhichOneof("value") != "string_value":
            return infer_severity(0, record.severity_text, record.body)
        if template.startswith(("{", "<<*>>")):
            # JSON levels and syslog PRI numbers are masked out of the template: read the text.
            return severity_from_text(record.severity_text) or severity_from_body(
                record.body.string_value
            )
        key = (record.severity_text, template)
        severity = self._inferred.get(key)
        if severity is None:
            severity = severity_from_text(record.severity_text) or severity_from_body(template)
            if len(self._inferred) >= self._cache_size:
                self._inferred.clear()
            self._inferred[key] = severity
        return severity


class _Batch:
    """Per-request state shared by the records of one `sample()` call."""

    __slots__ = (
        "index",
        "now",
        "outcome",
        "policy",
        "recalled",
        "record_exemptions",
        "resource_exemption",
        "resource_exemptions",
        "resource_logs",
        "rules",
        "scope_key",
        "scope_logs",
        "service",
    )

    def __init__(self, policy: Policy, rules: dict[tuple[str, int], Rule], now: float) -> None:
        self.policy = policy
        self.rules = rules
        self.now = now
        self.outcome = SampleOutcome()
        self.index = 0
        self.record_exemptions = tuple(e for e in policy.exemptions if e.scope != "resource")
        self.resource_exemptions = tuple(e for e in policy.exemptions if e.scope == "resource")
        self.resource_exemption: Exemption | None = None
        self.service = UNKNOWN_SERVICE
        self.resource_logs = None
        self.scope_logs = None
        self.scope_key: tuple[bytes, bytes] | None = None
        self.recalled: list[Remembered] = []

    def remembered(self, record: LogRecord, trace_id: bytes) -> Remembered:
        if self.scope_key is None:
            # Serialized once per scope, and only when a traced record is dropped.
            self.scope_key = (
                self.resource_logs.resource.SerializeToString(),
                self.scope_logs.scope.SerializeToString(),
            )
        resource, scope = self.scope_key
        return Remembered(trace_id, self.now, resource, scope, record.SerializeToString())


def _append_recalled(request: ExportLogsServiceRequest, recalled: list[Remembered]) -> None:
    """Forward remembered records with the request, under their original resource and scope.

    Their adjusted count is 0: the records kept from their pattern already stand for them, so
    the backend's volume sums stay exact.
    """
    groups: dict[tuple[bytes, bytes], list[Remembered]] = {}
    for entry in recalled:
        groups.setdefault((entry.resource, entry.scope), []).append(entry)
    for (resource, scope), entries in groups.items():
        resource_logs = request.resource_logs.add()
        resource_logs.resource.MergeFromString(resource)
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.MergeFromString(scope)
        for entry in entries:
            record = scope_logs.log_records.add()
            record.MergeFromString(entry.record)
            annotate_context(record)


def _prune_empty(request: ExportLogsServiceRequest) -> None:
    """Drop scopes and resources left without records, so nothing empty is forwarded."""
    resources = request.resource_logs
    for r in range(len(resources) - 1, -1, -1):
        scopes = resources[r].scope_logs
        for s in range(len(scopes) - 1, -1, -1):
            if not scopes[s].log_records:
                del scopes[s]
        if not scopes:
            del resources[r]


def count_records(request: ExportLogsServiceRequest) -> int:
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
