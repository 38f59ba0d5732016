"""Applies the current policy to one OTLP logs request, in place.

For every record: sign the body (template -> pattern id), look up the rule for (pattern,
severity), draw the record's deterministic randomness, keep or drop, annotate what is kept,
count everything. Dropped records are deleted from the request itself so what is kept is
forwarded without being copied or re-built.

Per-record work is kept to dictionary lookups: templates are cached by body text, pattern ids
by (service, template) and rules by (pattern, severity) for the current policy version.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import xxhash
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from lipservice_otel.aggregates import Aggregates
from lipservice_otel.config import SamplerConfig
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
    """Stamp a kept record; an upstream sampler's adjusted count is multiplied, not replaced."""
    adjusted = 1.0 / rate
    for kv in record.attributes:
        if kv.key == ATTR_ADJUSTED_COUNT:
            value = kv.value
            upstream = value.double_value if value.HasField("double_value") else value.int_value
            value.double_value = (upstream or 1.0) * adjusted
            break
    else:
        _add_attribute(record, ATTR_ADJUSTED_COUNT).value.double_value = adjusted
    _add_attribute(record, ATTR_PATTERN_ID).value.string_value = pattern
    _add_attribute(record, ATTR_REASON).value.string_value = reason


def _add_attribute(record: LogRecord, key: str) -> KeyValue:
    kv = record.attributes.add()
    kv.key = key
    return kv


class Sampler:
    def __init__(self, config: SamplerConfig, policy: Policy, aggregates: Aggregates) -> None:
        self._max_body_chars = config.max_body_chars
        self._cache_size = config.template_cache_size
        self._max_attributes = config.max_attributes_per_record
        self._aggregates = aggregates
        self._templates: dict[str, str] = {}
        self._pattern_ids: dict[tuple[str, str], str] = {}
        self._inferred: dict[tuple[str, str], int] = {}
        self._policy = policy
        self._rules: dict[tuple[str, int], Rule] = {}

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
        policy, rules = self._policy, self._rules
        outcome = SampleOutcome()
        record_exemptions = tuple(e for e in policy.exemptions if e.scope != "resource")
        resource_exemptions = tuple(e for e in policy.exemptions if e.scope == "resource")
        shadow = policy.shadow
        index = 0
        for resource_logs in request.resource_logs:
            resource_attributes = resource_logs.resource.attributes
            service = service_name(resource_attributes)
            resource_exemption = _matching_exemption(resource_exemptions, resource_attributes, "")
            for scope_logs in resource_logs.scope_logs:
                records = scope_logs.log_records
                dropped_indexes = []
                for position, record in enumerate(records):
                    index += 1
                    if len(record.attributes) > self._max_attributes:
                        dropped_indexes.append(position)
                        outcome.rejected += 1
                        outcome.rejection_message = (
                            f"{outcome.rejected} record(s) with more than "
                            f"{self._max_attributes} attributes (sampler.max_attributes_per_record)"
                        )
                        continue
                    body = record.body
                    if body.WhichOneof("value") == "string_value":
                        text = body.string_value
                        template = self.template(text)
                    else:
                        text = ""
                        template = template_of_value(body, self._max_body_chars)
                    pid = self.pattern_id(service, template)
                    severity = record.severity_number or self._infer(record, template)
                    rule_key = (pid, severity)
                    rule = rules.get(rule_key)
                    if rule is None:
                        rule = rules[rule_key] = policy.rule_for(pid, severity)
                    exemption = resource_exemption or (
                        record_exemptions
                        and _matching_exemption(record_exemptions, record.attributes, text)
                    )
                    if exemption:
                        keep, rate, reason = True, 1.0, exemption.reason
                    elif rule.rate >= 1.0:
                        keep, rate, reason = True, 1.0, rule.reason
                    else:
                        body_key = text.encode("utf-8", "surrogatepass") if text else b""
                        randomness = record_randomness(record, body_key, index)
                        keep, rate, reason = randomness < rule.threshold, rule.rate, rule.reason
                    counts = self._aggregates.counter(service, pid, severity_bucket(severity))
                    counts.received += 1
                    if counts.received == 1:
                        self._aggregates.note_pattern(pid, service, template, text or template)
                    if shadow:
                        annotate(record, 1.0, pid, reason)
                        _add_attribute(record, ATTR_WOULD_KEEP).value.bool_value = keep
                        keep = True
                    elif keep:
                        annotate(record, rate, pid, reason)
                    if keep:
                        counts.kept += 1
                        outcome.kept += 1
                        outcome.kept_by_reason[reason] += 1
                    else:
                        dropped_indexes.append(position)
                        outcome.dropped_by_reason[reason] += 1
                outcome.received += len(records)
                for position in reversed(dropped_indexes):
                    del records[position]
        _prune_empty(request)
        return outcome

    def _infer(self, record: LogRecord, template: str) -> int:
        """Severity of a record sent without one, cached per (severity_text, template)."""
        if record.body.WhichOneof("value") != "string_value":
            return infer_severity(0, record.severity_text, record.body)
        key = (record.severity_text, template)
        severity = self._inferred.get(key)
        if severity is None:
            severity = severity_from_text(record.severity_text) or severity_from_body(template)
            if len(self._inferred) >= self._cache_size:
                self._inferred.clear()
            self._inferred[key] = severity
        return severity


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
