"""Applies the current policy to one OTLP logs request, in place.

For every record: sign the body (template -> pattern id), look up the rule for (pattern,
severity), draw the record's deterministic randomness, keep or drop, annotate what is kept,
count everything. Dropped records are deleted from the request itself so what is kept is
forwarded without being copied or re-built.

Per-record work is kept to dictionary lookups: templates are cached by body text, and each
(tenant, service, template, severity) has a slot holding its pattern id, its rule under the
current policy, its counter for the current interval and its annotation already serialized.

With `analysis.tenant_key` set, each record belongs to a tenant (a request header, or a
resource attribute per ResourceLogs; see tenant.py): the tenant is part of the pattern id, so
counts, rules and bursts are per tenant. Without it the tenant is "" and nothing changes.

Two receiver-local reactions do not wait for the analysis loop: a pattern whose count in the
current second exceeds `burst_factor` x its policy baseline is kept whole for the rest of that
second and the next (reason `anomaly/burst`; a template inside a merged pattern is watched
against its own baseline too, so the other members do not dilute its burst), and under a
learned policy a pattern the policy has never seen is kept whole (`anomaly/new_pattern`); both
draw on one per-second budget so a flood cannot pass unsampled.
Records dropped with a trace id are remembered briefly and forwarded if an error of the same
trace follows (see error_context.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from xxhash import xxh3_64_intdigest

from lipservice_otel.policy.model import RANDOMNESS_BITS, Exemption, Policy, Rule, severity_bucket
from lipservice_otel.policy.reasons import REASON_BURST, REASON_ERROR_CONTEXT
from lipservice_otel.sampling.aggregates import Aggregates, PatternCounts
from lipservice_otel.sampling.annotation import (
    ATTR_ADJUSTED_COUNT,
    annotate,
    annotate_context,
    has_attribute,
    service_name,
    set_would_keep,
    write_inferred_severity,
)
from lipservice_otel.sampling.config import SamplerConfig
from lipservice_otel.sampling.error_context import ErrorContext, Origin, Remembered
from lipservice_otel.sampling.tenant import (
    DEFAULT_MAX_TENANTS,
    TenantKey,
    TenantNames,
    resource_tenant,
)
from lipservice_otel.text.severity import infer_severity, severity_from_body, severity_from_text
from lipservice_otel.text.signature import pattern_id, template_of_text, template_of_value

if TYPE_CHECKING:
    from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs

_MASK64 = (1 << 64) - 1
_SEED_STEP = 0x9E3779B97F4A7C15  # spreads identical records of one request over seeds
_DISCARD_BITS = 64 - RANDOMNESS_BITS
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
# Invalid per OTLP ("all zeroes"): the same as no trace id.
_NO_TRACE_ID = bytes(TRACE_ID_BYTES)


@dataclass(slots=True)
class SampleOutcome:
    received: int = 0
    kept: int = 0
    # Refused for breaking a limit; reported to the sender as OTLP partial success.
    rejected: int = 0
    rejection_message: str = ""
    # Records dropped earlier, forwarded now as error context (not part of `received`).
    recalled: int = 0
    # What the error context handed out for them, for give_back().
    recalled_entries: list[Remembered] = field(default_factory=list)
    # Ids of the wrong length, cleared so a strict downstream (the Go Collector refuses such
    # a request whole) does not refuse the batch they would be exported in.
    cleared_trace_ids: int = 0
    cleared_span_ids: int = 0
    kept_by_reason: Counter[str] = field(default_factory=Counter)
    dropped_by_reason: Counter[str] = field(default_factory=Counter)
    # With a tenant key: records sampled (not rejected) and kept, by tenant name.
    received_by_tenant: Counter[str] = field(default_factory=Counter)
    kept_by_tenant: Counter[str] = field(default_factory=Counter)
    # Records counted under OTHER_TENANT because the tenant cap was reached.
    tenant_overflow_records: int = 0

    @property
    def dropped(self) -> int:
        return self.received - self.kept - self.rejected


def record_randomness(record: LogRecord, body_key: bytes, index: int) -> int:
    """56 random-looking bits that are a pure function of the record.

    With a trace id these are the id's last 7 bytes (the W3C random bits), so every log of
    one trace gets the same draw; without one (an all-zero id is none), a hash of the body
    and timestamp, with the record's position in the request mixed in so identical records
    do not all share a fate.
    """
    trace_id = record.trace_id
    if len(trace_id) == TRACE_ID_BYTES and trace_id != _NO_TRACE_ID:
        return int.from_bytes(trace_id[9:], "big")
    seed = (record.time_unix_nano + index * _SEED_STEP) & _MASK64
    return xxh3_64_intdigest(body_key, seed) >> _DISCARD_BITS


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


class Sampler:
    def __init__(
        self,
        config: SamplerConfig,
        policy: Policy,
        aggregates: Aggregates,
        clock: Callable[[], float] = time.monotonic,
        tenant_key: TenantKey | None = None,
        max_tenants: int = DEFAULT_MAX_TENANTS,
    ) -> None:
        self._tenant_key = tenant_key
        self._tenant_names = TenantNames(max_tenants)
        # Records sent to OTHER_TENANT by the cap in the request being sampled.
        self._tenant_overflow = 0
        self._max_body_chars = config.max_body_chars
        self._cache_size = config.template_cache_size
        # A slot per counting key is all a counting interval can use: beyond the aggregate key
        # cap records count as overflow, and a flood of templates must not hold more slots.
        self._slot_cap = config.max_aggregate_keys
        self._max_attributes = config.max_attributes_per_record
        self._burst_factor = config.burst_factor
        self._burst_min = config.burst_min_per_second
        self._anomaly_keep_per_second = config.anomaly_keep_per_second
        self._infer_severity = config.infer_severity.enabled
        self._write_severity = config.infer_severity.write
        self._aggregates = aggregates
        self._clock = clock
        self._templates: dict[str, str] = {}
        self._inferred: dict[tuple[str, str], int] = {}
        self._policy = policy
        # What one (tenant, service, template, severity) needs per record, for the current
        # policy and counting interval: rebuilt lazily after either changes.
        self._slots: dict[tuple[str, str, str, int], _Slot] = {}
        self._interval = aggregates.interval
        # Receiver-local anomaly state, per wall-clock second.
        self._second = -1
        self._per_second: dict[str, int] = {}
        self._bursting: dict[str, int] = {}  # pattern id -> last second it is kept whole
        # The same per template inside a merged pattern (signature id), apart from the merged
        # ids: a merged pattern's id may be one of its members' signature ids.
        self._template_seconds: dict[str, int] = {}
        self._template_bursting: dict[str, int] = {}
        self._anomaly_budget = 0
        context = config.error_context
        self._error_context = (
            ErrorContext(
                context.window_s,
                context.max_bytes,
                context.trace_ttl_s,
                context.max_traces,
                context.max_records_per_trace,
            )
            if context.enabled
            else None
        )

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def tenant_header(self) -> str | None:
        """The request header / gRPC metadata key (lowercase) the receivers read the tenant
        from, or None when the tenant is not a header's."""
        key = self._tenant_key
        return key.name if key is not None and key.kind == "header" else None

    def set_policy(self, policy: Policy) -> None:
        # One reference swap: a request in flight finishes under the policy it started with.
        self._policy, self._slots = policy, {}

    def sample(
        self,
        request: ExportLogsServiceRequest,
        header_tenant: str | None = None,
        sender_tenant: str | None = None,
    ) -> SampleOutcome:
        """Decide every record of `request`, delete the dropped ones, annotate the kept ones.

        With a tenant key, `header_tenant` is the value of the tenant header the request came
        with (read when the key is a header), `sender_tenant` the tenant whose token the
        sender presented: when set, every record of the request is that tenant's."""
        now = self._begin()
        batch = _Batch(self._policy, self._request_slots(), now)
        tenant_key = self._tenant_key
        tenant = ""
        by_resource = self._tenant_by_resource(sender_tenant)
        if tenant_key is not None and not by_resource:
            tenant = self._tenant_of(
                header_tenant if sender_tenant is None else sender_tenant, count_records(request)
            )
        for resource_logs in request.resource_logs:
            resource_attributes = resource_logs.resource.attributes
            service = service_name(resource_attributes)
            if by_resource:
                tenant = self._tenant_of(
                    resource_tenant(resource_attributes, tenant_key.name),
                    sum(len(scope_logs.log_records) for scope_logs in resource_logs.scope_logs),
                )
            resource_exemption = _matching_exemption(
                batch.resource_exemptions, resource_attributes, ""
            )
            for scope_logs in resource_logs.scope_logs:
                self._sample_scope(
                    batch, tenant, service, resource_exemption, resource_logs, scope_logs
                )
        outcome = batch.outcome
        outcome.tenant_overflow_records, self._tenant_overflow = self._tenant_overflow, 0
        if outcome.rejected:
            outcome.rejection_message = (
                f"{outcome.rejected} record(s) with more than {self._max_attributes} "
                "attributes (sampler.max_attributes_per_record)"
            )
        _prune_empty(request)
        if batch.recalled:
            _append_recalled(request, batch.recalled)
            outcome.recalled = len(batch.recalled)
            outcome.recalled_entries = batch.recalled
        return outcome

    def _request_slots(self) -> dict[tuple[str, str, str, int], _Slot]:
        """The slot table this request fills: the one kept for the interval (the compiled
        sampler may give a request one of its own, see CompiledSampler._request_slots)."""
        return self._slots

    def _tenant_by_resource(self, sender_tenant: str | None) -> bool:
        """Whether each ResourceLogs names its own tenant (else the request has one)."""
        key = self._tenant_key
        return key is not None and key.kind == "resource" and sender_tenant is None

    def _tenant_of(self, value: str | None, records: int) -> str:
        """The tenant `records` records sent as `value` count under (DEFAULT_TENANT without
        one, OTHER_TENANT past the cap)."""
        tenant, overflowed = self._tenant_names.name_of(value)
        if overflowed:
            self._tenant_overflow += records
        return tenant

    def _begin(self) -> float:
        """A request starts: the clock, the per-second anomaly state and the interval's slots."""
        self._tenant_overflow = 0
        now = self._clock()
        if int(now) != self._second:
            self._second = int(now)
            self._per_second = {}
            self._bursting = {p: s for p, s in self._bursting.items() if s >= self._second}
            self._template_seconds = {}
            self._template_bursting = {
                p: s for p, s in self._template_bursting.items() if s >= self._second
            }
            self._anomaly_budget = self._anomaly_keep_per_second
        if self._aggregates.interval != self._interval:
            # The cached counters belong to the interval just handed over.
            self._interval, self._slots = self._aggregates.interval, {}
        return now

    def give_back(self, outcome: SampleOutcome) -> None:
        """The request of `outcome` was refused after all: what it recalled from the error
        context is remembered again, so the error in the sender's retry recalls it."""
        if self._error_context is not None:
            self._error_context.give_back(outcome.recalled_entries)

    def _sample_scope(
        self,
        batch: _Batch,
        tenant: str,
        service: str,
        resource_exemption: Exemption | None,
        resource_logs: ResourceLogs,
        scope_logs: ScopeLogs,
    ) -> None:
        """Decide, count and annotate the records of one scope; delete the dropped ones.

        One loop with everything it reads bound to locals: at a few microseconds a record, a
        method call or an attribute lookup per record is a measurable share. The common record
        (string body, known severity, a rate with or without a burst watch) takes no call of
        ours but the template on a cache miss; rarer ones (exemptions, new patterns, the
        anomaly budget, shadow mode, an upstream adjusted count) go through calls.
        """
        policy = batch.policy
        slots = batch.slots
        templates = self._templates
        outcome = batch.outcome
        kept_by_reason = outcome.kept_by_reason
        dropped_by_reason = outcome.dropped_by_reason
        record_exemptions = batch.record_exemptions
        shadow = policy.shadow
        floor = policy.severity_floor
        context = self._error_context
        recalled = batch.recalled
        max_attributes = self._max_attributes
        infer = self._infer_severity
        write_severity = self._write_severity
        per_second, bursting, second = self._per_second, self._bursting, self._second
        template_seconds, template_bursting = self._template_seconds, self._template_bursting
        now = batch.now
        index = batch.index
        origin = None  # this scope's serialized resource and scope, once a record is remembered
        records = scope_logs.log_records
        dropped = []
        kept = rejected = 0
        for position, record in enumerate(records):
            index += 1
            attributes = record.attributes
            attribute_count = len(attributes)
            if attribute_count > max_attributes:
                rejected += 1
                dropped.append(position)
                continue
            # Before any id is cleared or annotation appended: the size as received.
            size = record.ByteSize()
            text = record.body.string_value
            if text:
                template = templates.get(text)
                if template is None:
                    template = self._template(text)
            else:
                # An empty string, or a structured body (then signed on its shape).
                template = template_of_value(record.body, self._max_body_chars)
            severity = record.severity_number
            if not severity and infer:
                severity = self._infer(record, template)
            slot = slots.get((tenant, service, template, severity))
            if slot is None:
                slot = self._slot(slots, policy, tenant, service, template, severity)
            rule = slot.rule
            trace_id = record.trace_id
            traced = len(trace_id) == 16
            if not traced and trace_id:
                record.ClearField("trace_id")
                outcome.cleared_trace_ids += 1
            # An all-zero id (invalid per OTLP) is no id: looked for only where it would
            # matter (the draw, the error context), so a valid id costs no comparison.
            keep = None
            exemption = resource_exemption or (
                record_exemptions and _matching_exemption(record_exemptions, attributes, text)
            )
            if exemption:
                keep, rate, reason, by_rule = True, 1.0, exemption.reason, False
            elif rule.rate >= 1.0:
                if rule.known or self._take_anomaly_budget():
                    keep, rate, reason, by_rule = True, 1.0, rule.reason, True
                else:
                    # A pattern the learned policy has not seen, past the anomaly budget.
                    draw, by_rule = slot.fallback(policy, record.severity_number), False
            else:
                # by_rule: kept by the slot's own rule, so its annotation bytes apply.
                draw, by_rule = rule, True
                if rule.baseline_per_second:
                    # The burst detector: this pattern's count in the current second.
                    pid = rule.pattern_id
                    seen = per_second.get(pid, 0) + 1
                    per_second[pid] = seen
                    if seen > slot.burst_limit:
                        # Held through the next second too, so a burst is not re-sampled each
                        # time the second turns over while the analyzer has yet to react.
                        bursting[pid] = second + 1
                    template_limit = slot.template_limit
                    if template_limit:
                        # One template of a merged pattern, against its own baseline: the
                        # other members' steady volume must not dilute its burst.
                        sid = slot.signature_id
                        seen = template_seconds.get(sid, 0) + 1
                        template_seconds[sid] = seen
                        if seen > template_limit:
                            template_bursting[sid] = second + 1
                    if (
                        (bursting and bursting.get(pid, -1) >= second)
                        or (
                            template_bursting
                            and template_bursting.get(slot.signature_id, -1) >= second
                        )
                    ) and self._take_anomaly_budget():
                        keep, rate, reason, by_rule = True, 1.0, REASON_BURST, False
            if keep is None:
                # record_randomness(), inlined.
                if traced:
                    randomness = int.from_bytes(trace_id[9:], "big")
                    if not randomness and trace_id == _NO_TRACE_ID:
                        traced = False
                if not traced:
                    seed = (record.time_unix_nano + index * _SEED_STEP) & _MASK64
                    body_key = text.encode("utf-8", "surrogatepass") if text else b""
                    randomness = xxh3_64_intdigest(body_key, seed) >> _DISCARD_BITS
                keep, rate, reason = randomness < draw.threshold, draw.rate, draw.reason
            counts = slot.counts or self._counts(slot, tenant, service)
            counts.received += 1
            counts.received_bytes += size
            if counts.received == 1:
                self._aggregates.note_pattern(
                    slot.signature_id, service, template, text or template, tenant
                )
            if context is not None and traced:
                if severity >= floor:
                    if trace_id != _NO_TRACE_ID:
                        recalled.extend(context.recall(trace_id, now))
                elif not keep and not shadow and trace_id != _NO_TRACE_ID:
                    if context.is_hot(trace_id, now):
                        keep, rate, reason, by_rule = True, 0.0, REASON_ERROR_CONTEXT, False
                    else:
                        if origin is None:
                            origin = (
                                resource_logs.resource.SerializeToString(),
                                scope_logs.scope.SerializeToString(),
                            )
                        if len(record.span_id) & ~SPAN_ID_BYTES:
                            # Checked where a record may be forwarded, not on every record.
                            record.ClearField("span_id")
                            outcome.cleared_span_ids += 1
                        context.remember(trace_id, now, origin, record.SerializeToString())
            if keep:
                # What enforce mode keeps, in shadow mode too (where everything is forwarded):
                # the counts are what the savings projection is made of.
                counts.kept += 1
                counts.kept_bytes += size
            if shadow:
                annotate(record, 1.0, rule.pattern_id, reason)
                set_would_keep(record, keep)
                keep = True
            elif keep:
                if not by_rule or (
                    attribute_count and has_attribute(attributes, ATTR_ADJUSTED_COUNT)
                ):
                    # An upstream sampler's stamp: annotate() multiplies its count and, when
                    # it was another LipService (whose stamp always has the count), replaces
                    # its pattern id and reason. Looking for one key only keeps the common
                    # record's walk over its attributes as short as it was.
                    annotate(record, rate, rule.pattern_id, reason)
                else:
                    # The three attributes serialized once per slot and appended in one call,
                    # the same bytes annotate() writes at a fifth of its cost.
                    record.MergeFromString(slot.annotation)
            if keep:
                if len(record.span_id) & ~SPAN_ID_BYTES:  # neither 0 nor 8 bytes
                    record.ClearField("span_id")
                    outcome.cleared_span_ids += 1
                if write_severity and severity and not record.severity_number:
                    write_inferred_severity(record, severity)
                kept += 1
                kept_by_reason[reason] += 1
            else:
                dropped_by_reason[reason] += 1
                dropped.append(position)
        if len(dropped) == len(records):
            del records[:]
        else:
            for position in reversed(dropped):
                del records[position]
        received = len(records) + len(dropped)
        outcome.received += received
        outcome.rejected += rejected
        outcome.kept += kept
        if tenant:
            outcome.received_by_tenant[tenant] += received - rejected
            outcome.kept_by_tenant[tenant] += kept
        batch.index = index

    def _template(self, text: str) -> str:
        template = template_of_text(text, self._max_body_chars)
        if len(self._templates) >= self._cache_size:
            self._templates.clear()
        self._templates[text] = template
        return template

    def _slot(
        self,
        slots: dict[tuple[str, str, str, int], _Slot],
        policy: Policy,
        tenant: str,
        service: str,
        template: str,
        severity: int,
    ) -> _Slot:
        if len(slots) >= self._slot_cap:
            slots.clear()
        signature_id = pattern_id(service, template, tenant)
        rule = policy.rule_for(signature_id, severity)
        burst_limit = self._burst_factor * max(rule.baseline_per_second, self._burst_min)
        own = rule.signature_baseline_per_second
        template_limit = self._burst_factor * max(own, self._burst_min) if own else 0.0
        slot = _Slot(signature_id, rule, severity_bucket(severity), burst_limit, template_limit)
        slots[(tenant, service, template, severity)] = slot
        return slot

    def _counts(self, slot: _Slot, tenant: str, service: str) -> PatternCounts:
        """The slot's counter; kept in the slot unless the key cap sent it to `other`."""
        counts = self._aggregates.counter(service, slot.signature_id, slot.bucket, tenant)
        if counts.pattern_id == slot.signature_id:
            # Overflowed keys ask every time, so each of their records is counted as overflow.
            slot.counts = counts
        return counts

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


class _Slot:
    """The policy's rule, the counter and the annotation bytes of one (tenant, service,
    template, severity), so a record of a known kind costs one dictionary lookup."""

    __slots__ = (
        "_annotation",
        "_fallbacks",
        "bucket",
        "burst_limit",
        "counts",
        "rule",
        "signature_id",
        "template_limit",
    )

    def __init__(
        self,
        signature_id: str,
        rule: Rule,
        bucket: str,
        burst_limit: float,
        template_limit: float = 0.0,
    ) -> None:
        self.signature_id = signature_id
        self.rule = rule
        self.bucket = bucket
        # Records per second beyond which the pattern is bursting (rules with a baseline).
        self.burst_limit = burst_limit
        # The same for this template alone, when it is one of a merged pattern's (else 0).
        self.template_limit = template_limit
        self.counts: PatternCounts | None = None
        self._annotation: bytes | None = None
        # Built on first use: most slots never need one, and a slot per template adds up.
        self._fallbacks: dict[bool, Rule] | None = None

    @property
    def annotation(self) -> bytes:
        """What annotate() appends for a record kept by this rule, serialized."""
        if self._annotation is None:
            record = LogRecord()
            annotate(record, self.rule.rate, self.rule.pattern_id, self.rule.reason)
            self._annotation = record.SerializeToString()
        return self._annotation

    def fallback(self, policy: Policy, severity_number: int) -> Rule:
        """policy.rule_for_unknown() for a record of this slot, by its own severity_number:
        0 when the slot's severity was inferred, else the slot's severity itself."""
        if self._fallbacks is None:
            self._fallbacks = {}
        key = bool(severity_number)
        rule = self._fallbacks.get(key)
        if rule is None:
            rule = self._fallbacks[key] = policy.rule_for_unknown(
                self.rule.pattern_id, severity_number
            )
        return rule


class _Batch:
    """Per-request state shared by the scopes of one `sample()` call."""

    __slots__ = (
        "index",
        "now",
        "outcome",
        "policy",
        "recalled",
        "record_exemptions",
        "resource_exemptions",
        "slots",
    )

    def __init__(
        self, policy: Policy, slots: dict[tuple[str, str, str, int], _Slot], now: float
    ) -> None:
        self.policy = policy
        self.slots = slots
        self.now = now
        self.outcome = SampleOutcome()
        self.index = 0
        self.record_exemptions = tuple(e for e in policy.exemptions if e.scope != "resource")
        self.resource_exemptions = tuple(e for e in policy.exemptions if e.scope == "resource")
        self.recalled: list[Remembered] = []


def _append_recalled(request: ExportLogsServiceRequest, recalled: list[Remembered]) -> None:
    """Forward remembered records with the request, under their original resource and scope.

    Their adjusted count is 0: the records kept from their pattern already stand for them, so
    the backend's volume sums stay exact.
    """
    groups: dict[Origin, list[bytes]] = {}
    for _, _, origin, record in recalled:
        groups.setdefault(origin, []).append(record)
    for (resource, scope), serialized in groups.items():
        resource_logs = request.resource_logs.add()
        resource_logs.resource.MergeFromString(resource)
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.MergeFromString(scope)
        for payload in serialized:
            record = scope_logs.log_records.add()
            record.MergeFromString(payload)
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
