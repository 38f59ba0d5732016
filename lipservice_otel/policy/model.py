"""The sampling policy and the decision function.

A `Policy` is an immutable value: receivers swap in a new one atomically between requests.
The decision order is fixed and every decision carries the reason that made it:

1. exemptions (a matcher on a record attribute, a resource attribute or the body) -> keep,
   reason `exempt/<name>`;
2. the severity floor (default ERROR and above) -> keep, reason `severity`;
3. a per-pattern rate -> reason `pattern` (or the reason the analysis gave it); in a learned
   policy, a pattern it has never seen -> keep, reason `anomaly/new_pattern`;
4. a per-severity default rate -> reason `severity_default`;
5. the global default rate -> reason `default`.

Sampling is deterministic: a record keeps when its 56-bit randomness (taken from the trace id
when there is one, so one trace's logs are kept or dropped together; otherwise from a hash of
the record) falls under `rate * 2**56`. This is the same comparison OpenTelemetry's consistent
probability sampling makes on the trace id's random bits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from lipservice_otel.policy.reasons import (
    REASON_DEFAULT,
    REASON_EXEMPT_PREFIX,
    REASON_NEW_PATTERN,
    REASON_PATTERN,
    REASON_SEVERITY,
    REASON_SEVERITY_DEFAULT,
)

RANDOMNESS_BITS = 56
RANDOMNESS_SPAN = 1 << RANDOMNESS_BITS

# OTLP SeverityNumber ranges, each named by its lowest value.
SEVERITY_LEVELS: dict[str, int] = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "warn": 13,
    "error": 17,
    "fatal": 21,
}
UNSPECIFIED_BUCKET = "unspecified"

DEFAULT_SEVERITY_FLOOR = SEVERITY_LEVELS["error"]
DEFAULT_RATE = 1.0

Mode = Literal["enforce", "shadow"]
MODES: tuple[str, ...] = ("enforce", "shadow")


def severity_bucket(severity_number: int) -> str:
    """Name of the OTLP severity range a SeverityNumber falls in."""
    if severity_number <= 0:
        return UNSPECIFIED_BUCKET
    if severity_number >= SEVERITY_LEVELS["fatal"]:
        return "fatal"
    for name, low in reversed(SEVERITY_LEVELS.items()):
        if severity_number >= low:
            return name
    return UNSPECIFIED_BUCKET


def threshold_for(rate: float) -> int:
    """Randomness values strictly below this are kept."""
    return round(rate * RANDOMNESS_SPAN)


@dataclass(frozen=True, slots=True)
class Exemption:
    """Records matching this are always kept, whatever their rate."""

    name: str
    # Where to look: a record attribute, a resource attribute, or the body text.
    scope: Literal["attribute", "resource", "body"]
    # Attribute key (unused for body).
    key: str
    # Exact value to match, or None to use `pattern` (or presence alone when both are None).
    equals: str | None = None
    pattern: re.Pattern[str] | None = None

    def matches_value(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.equals is not None:
            return value == self.equals
        if self.pattern is not None:
            return self.pattern.search(value) is not None
        return True

    @property
    def reason(self) -> str:
        return REASON_EXEMPT_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class PatternRule:
    """A policy's entry for one pattern."""

    rate: float
    reason: str = REASON_PATTERN
    # The volume the analysis expects (records/s over all receivers); 0 when unknown. The
    # receiver's burst detector compares the current second against it.
    baseline_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class Rule:
    """What the policy says for one (pattern, severity): the rate and why."""

    rate: float
    reason: str
    threshold: int
    # The id stamped on records: the merged pattern when the analysis grouped this signature.
    pattern_id: str = ""
    baseline_per_second: float = 0.0
    # The policy knows this pattern (a learned policy keeps unknown patterns whole).
    known: bool = True
    # The template's own expected volume when the pattern merges several (0 otherwise): the
    # burst detector watches it too, so one template's burst is not diluted by the others.
    signature_baseline_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    rate: float
    reason: str
    pattern_id: str


@dataclass(frozen=True, slots=True)
class Policy:
    version: int = 0
    mode: Mode = "enforce"
    # Records at or above this SeverityNumber are always kept.
    severity_floor: int = DEFAULT_SEVERITY_FLOOR
    # Rate for records no other rule covers.
    default_rate: float = DEFAULT_RATE
    # Severity bucket name (see SEVERITY_LEVELS, plus "unspecified") -> rate.
    severity_rates: Mapping[str, float] = field(default_factory=dict)
    # pattern_id -> rule.
    pattern_rules: Mapping[str, PatternRule] = field(default_factory=dict)
    exemptions: tuple[Exemption, ...] = ()
    # Signature pattern id -> merged pattern id, from the analysis' template merging.
    pattern_aliases: Mapping[str, str] = field(default_factory=dict)
    # Signature pattern id -> its own rule inside a merged pattern: its baseline, and the rate
    # of its merged pattern unless an anomaly of that template alone boosted it. Outranks the
    # merged pattern's rule for that signature; records still carry the merged id.
    signature_rules: Mapping[str, PatternRule] = field(default_factory=dict)
    # Generated from traffic: a pattern it has never seen is new, and kept whole.
    learned: bool = False
    # Who made this version (file, rules, llm, override) and what changed; for people.
    generator: str = "file"
    created_unix_nano: int = 0
    summary: str = ""

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    def knows(self, signature_id: str) -> bool:
        """Whether the analysis that learned this policy has the signature's template: every
        pattern it tracks has a rule (or an alias into one), so a receiver need not send the
        template and examples again."""
        return self.learned and (
            signature_id in self.pattern_rules
            or signature_id in self.pattern_aliases
            or signature_id in self.signature_rules
        )

    def rule_for(self, signature_id: str, severity_number: int) -> Rule:
        """Steps 2-5 of the decision order (exemptions depend on the record, not the pattern)."""
        pid = self.pattern_aliases.get(signature_id, signature_id)
        pattern = self.pattern_rules.get(pid)
        member = self.signature_rules.get(signature_id)
        known = pattern is not None or member is not None or not self.learned
        baseline = pattern.baseline_per_second if pattern is not None else 0.0
        own = member.baseline_per_second if member is not None else 0.0
        if severity_number >= self.severity_floor:
            return _rule(1.0, REASON_SEVERITY, pid, baseline, own=own)
        if member is not None:
            return _rule(member.rate, member.reason, pid, baseline, own=own)
        if pattern is not None:
            return _rule(pattern.rate, pattern.reason, pid, baseline)
        if not known:
            return _rule(1.0, REASON_NEW_PATTERN, pid, baseline, known=False)
        return self.rule_for_unknown(pid, severity_number)

    def rule_for_unknown(self, pid: str, severity_number: int) -> Rule:
        """Steps 4-5: the rule for a pattern without one of its own."""
        rate = self.severity_rates.get(severity_bucket(severity_number))
        if rate is not None:
            return _rule(rate, REASON_SEVERITY_DEFAULT, pid, 0.0)
        return _rule(self.default_rate, REASON_DEFAULT, pid, 0.0)


def _rule(
    rate: float, reason: str, pid: str, baseline: float, known: bool = True, own: float = 0.0
) -> Rule:
    return Rule(rate, reason, threshold_for(rate), pid, baseline, known, own)


def decide(
    policy: Policy,
    pattern_id: str,
    severity_number: int,
    randomness: int,
    exemption: Exemption | None = None,
) -> Decision:
    """The whole decision for one record; the sampler computes the same thing with caches."""
    if exemption is not None:
        return Decision(True, 1.0, exemption.reason, pattern_id)
    rule = policy.rule_for(pattern_id, severity_number)
    return Decision(randomness < rule.threshold, rule.rate, rule.reason, rule.pattern_id)
