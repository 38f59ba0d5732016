"""What the analyzer has learned, and its explicit, versioned snapshot format.

The snapshot is JSON with a `schema` number (never pickled objects), so a newer analyzer can
read an older snapshot and a store can be inspected by hand. Keys added within a schema are
optional with a default (`judgements`, a pattern's `bytes_rate` and `tenant`), so older
snapshots of the same schema still load.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from lipservice_otel.analysis.anomaly import Baseline
from lipservice_otel.analysis.llm.judgement import IMPORTANCES, Judgement
from lipservice_otel.policy.model import Exemption

SNAPSHOT_SCHEMA = 1
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class SnapshotError(ValueError):
    """A stored snapshot cannot be read (unknown schema or corrupt)."""


@dataclass(slots=True)
class PatternState:
    pattern_id: str  # the inline signature's id
    service: str
    template: str
    first_seen: float
    last_seen: float = 0.0
    examples: list[str] = field(default_factory=list)
    rate: Baseline = field(default_factory=Baseline)  # records/s, all severities
    # Severity bucket -> records in the last interval. Replaced each cycle, never changed in
    # place: patterns without records share one empty dict.
    last_counts: dict[str, int] = field(default_factory=dict)
    # Whether the template reads as error-like: worked out on first use, not snapshotted.
    error_like: bool | None = None
    # The tenant whose records these are (analysis.tenant_key); "" without tenants. Patterns are
    # merged and budgeted within their (tenant, service).
    tenant: str = ""
    # Encoded LogRecord bytes/s as received, and the records/s and bytes/s the receivers kept
    # (in shadow mode: would keep). The savings report reads them (report/savings.py).
    bytes_rate: Baseline = field(default_factory=Baseline)
    kept_rate: Baseline = field(default_factory=Baseline)
    kept_bytes_rate: Baseline = field(default_factory=Baseline)


@dataclass(frozen=True, slots=True)
class Override:
    """A person's decision: pin a pattern's rate, or add an exemption, until it expires."""

    key: str  # the pattern id, or "exemption/<name>"
    rate: float | None = None
    exemption: Exemption | None = None
    expires_at: float = 0.0  # unix seconds; 0 never
    note: str = ""


@dataclass(slots=True)
class AnalysisState:
    patterns: dict[str, PatternState] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    canonical_templates: dict[str, str] = field(default_factory=dict)
    error_share: dict[str, Baseline] = field(default_factory=dict)  # per service
    boosts: dict[str, tuple[str, float]] = field(default_factory=dict)  # pid -> (reason, until)
    # The same for single templates of merged patterns (signature id -> (reason, until)): one
    # template's spike keeps that template whole, not every member of its pattern.
    template_boosts: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Canonical patterns whose last interval was well above their baseline: the budget keeps
    # at least their previous rate. Worked out each cycle, not snapshotted.
    rising: frozenset[str] = frozenset()
    overrides: dict[str, Override] = field(default_factory=dict)
    # The LLM advisor's judgements per canonical pattern id: kept here so a restart or a
    # standby replica does not pay for asking again.
    judgements: dict[str, Judgement] = field(default_factory=dict)
    cycles: int = 0

    def groups(self) -> dict[str, list[PatternState]]:
        """The signature patterns of each canonical (merged) pattern."""
        groups: dict[str, list[PatternState]] = {}
        for pattern in self.patterns.values():
            canonical = self.aliases.get(pattern.pattern_id, pattern.pattern_id)
            groups.setdefault(canonical, []).append(pattern)
        return groups

    def to_bytes(self) -> bytes:
        # Written one pattern at a time: the whole document as Python objects first would
        # take about three times the snapshot's size at once (50,000 patterns: ~16 MiB).
        out = io.BytesIO()
        head = {
            "schema": SNAPSHOT_SCHEMA,
            "cycles": self.cycles,
            "aliases": self.aliases,
            "canonical_templates": self.canonical_templates,
            "error_share": {s: _baseline_to_json(b) for s, b in self.error_share.items()},
            "boosts": {pid: list(b) for pid, b in self.boosts.items()},
            "template_boosts": {sid: list(b) for sid, b in self.template_boosts.items()},
            "overrides": [_override_to_json(o) for o in self.overrides.values()],
            "judgements": [_judgement_to_json(j) for j in self.judgements.values()],
        }
        out.write(_ENCODER.encode(head)[:-1].encode())
        out.write(b',"patterns":[')
        for n, pattern in enumerate(self.patterns.values()):
            if n:
                out.write(b",")
            out.write(_ENCODER.encode(_pattern_to_json(pattern)).encode())
        out.write(b"]}")
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> AnalysisState:
        try:
            data = json.loads(blob)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"analysis snapshot is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else None
            raise SnapshotError(
                f"analysis snapshot schema {found!r} is not supported (expected {SNAPSHOT_SCHEMA})"
            )
        try:
            patterns = [_pattern_from_json(p) for p in data["patterns"]]
            overrides = [_override_from_json(o) for o in data["overrides"]]
            judgements = [_judgement_from_json(j) for j in data.get("judgements", [])]
            return cls(
                patterns={p.pattern_id: p for p in patterns},
                aliases=dict(data["aliases"]),
                canonical_templates=dict(data["canonical_templates"]),
                error_share={s: Baseline(*b) for s, b in data["error_share"].items()},
                boosts={pid: (b[0], float(b[1])) for pid, b in data["boosts"].items()},
                template_boosts={
                    sid: (b[0], float(b[1])) for sid, b in data.get("template_boosts", {}).items()
                },
                overrides={o.key: o for o in overrides},
                judgements={j.pattern_id: j for j in judgements},
                cycles=int(data["cycles"]),
            )
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise SnapshotError(f"analysis snapshot is corrupt: {exc!r}") from None


def _baseline_to_json(baseline: Baseline) -> list[float]:
    return [baseline.mean, baseline.variance, baseline.samples]


def _pattern_to_json(pattern: PatternState) -> dict:
    return {
        "id": pattern.pattern_id,
        "service": pattern.service,
        "tenant": pattern.tenant,
        "template": pattern.template,
        "first_seen": pattern.first_seen,
        "last_seen": pattern.last_seen,
        "examples": pattern.examples,
        "rate": _baseline_to_json(pattern.rate),
        "bytes_rate": _baseline_to_json(pattern.bytes_rate),
        "kept_rate": _baseline_to_json(pattern.kept_rate),
        "kept_bytes_rate": _baseline_to_json(pattern.kept_bytes_rate),
        "last_counts": pattern.last_counts,
    }


def _baseline_from_json(raw: list) -> Baseline:
    mean, variance, samples = raw
    return Baseline(float(mean), float(variance), int(samples))


def _pattern_from_json(data: dict) -> PatternState:
    # The byte and kept baselines came later in schema 1: older snapshots start them empty.
    empty = [0.0, 0.0, 0]
    return PatternState(
        pattern_id=data["id"],
        service=data["service"],
        tenant=str(data.get("tenant", "")),
        template=data["template"],
        first_seen=float(data["first_seen"]),
        last_seen=float(data["last_seen"]),
        examples=list(data["examples"]),
        rate=_baseline_from_json(data["rate"]),
        bytes_rate=_baseline_from_json(data.get("bytes_rate", empty)),
        kept_rate=_baseline_from_json(data.get("kept_rate", empty)),
        kept_bytes_rate=_baseline_from_json(data.get("kept_bytes_rate", empty)),
        last_counts={str(k): int(v) for k, v in data["last_counts"].items()},
    )


def _override_to_json(override: Override) -> dict:
    exemption = override.exemption
    return {
        "key": override.key,
        "rate": override.rate,
        "expires_at": override.expires_at,
        "note": override.note,
        "exemption": None
        if exemption is None
        else {
            "name": exemption.name,
            "scope": exemption.scope,
            "key": exemption.key,
            "equals": exemption.equals,
            "matches": exemption.pattern.pattern if exemption.pattern else None,
        },
    }


def _override_from_json(data: dict) -> Override:
    raw = data["exemption"]
    exemption = None
    if raw is not None:
        exemption = Exemption(
            name=raw["name"],
            scope=raw["scope"],
            key=raw["key"],
            equals=raw["equals"],
            pattern=re.compile(raw["matches"]) if raw["matches"] is not None else None,
        )
    return Override(
        key=data["key"],
        rate=data["rate"],
        exemption=exemption,
        expires_at=float(data["expires_at"]),
        note=data["note"],
    )


def _judgement_to_json(judgement: Judgement) -> dict:
    return {
        "id": judgement.pattern_id,
        "importance": judgement.importance,
        "min_rate": judgement.min_rate,
        "reason": judgement.reason,
        "model": judgement.model,
        "fingerprint": judgement.fingerprint,
        "judged_at": judgement.judged_at,
    }


def _judgement_from_json(data: dict) -> Judgement:
    min_rate = data["min_rate"]
    if data["importance"] not in IMPORTANCES:
        raise ValueError(f"judgement importance {data['importance']!r}")
    return Judgement(
        pattern_id=data["id"],
        importance=str(data["importance"]),
        min_rate=None if min_rate is None else float(min_rate),
        reason=str(data["reason"]),
        model=str(data["model"]),
        fingerprint=str(data["fingerprint"]),
        judged_at=float(data["judged_at"]),
    )
