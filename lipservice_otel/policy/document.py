"""The policy document: the YAML/JSON form people write (policy.file, policy.document)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lipservice_otel.policy.model import (
    DEFAULT_RATE,
    MODES,
    SEVERITY_LEVELS,
    UNSPECIFIED_BUCKET,
    Exemption,
    PatternRule,
    Policy,
)


class PolicyError(ValueError):
    """A policy document is invalid; the message starts with the offending key."""


def policy_from_document(document: Mapping[str, Any], version: int = 0) -> Policy:
    """Build a Policy from its YAML/JSON form, naming the key of the first invalid value."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"policy: expected a mapping, got {type(document).__name__}")
    allowed = {
        "mode",
        "severity_floor",
        "default_rate",
        "severity_rates",
        "pattern_rates",
        "exemptions",
    }
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise PolicyError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    mode = document.get("mode", "enforce")
    if mode not in MODES:
        raise PolicyError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    return Policy(
        version=version,
        mode=mode,
        severity_floor=_severity_floor(document.get("severity_floor", "error")),
        default_rate=_rate(document.get("default_rate", DEFAULT_RATE), "default_rate"),
        severity_rates=_severity_rates(document.get("severity_rates") or {}),
        pattern_rules=_pattern_rates(document.get("pattern_rates") or {}),
        exemptions=_exemptions(document.get("exemptions") or []),
    )


def _rate(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PolicyError(f"{key}: must be a number from 0 to 1, got {value!r}")
    return float(value)


def _severity_floor(value: Any) -> int:
    if isinstance(value, str) and value.lower() in SEVERITY_LEVELS:
        return SEVERITY_LEVELS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 25:
        # 25 (above FATAL4) means "no floor": nothing is kept for its severity alone.
        return value
    names = ", ".join(SEVERITY_LEVELS)
    raise PolicyError(f"severity_floor: must be one of {names} or 1-25, got {value!r}")


def _severity_rates(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise PolicyError("severity_rates: expected a mapping of severity -> rate")
    buckets = (*SEVERITY_LEVELS, UNSPECIFIED_BUCKET)
    rates = {}
    for name, rate in value.items():
        if name not in buckets:
            raise PolicyError(f"severity_rates.{name}: must be one of {', '.join(buckets)}")
        rates[name] = _rate(rate, f"severity_rates.{name}")
    return rates


def _pattern_rates(value: Any) -> dict[str, PatternRule]:
    if not isinstance(value, Mapping):
        raise PolicyError("pattern_rates: expected a mapping of pattern_id -> rate")
    return {
        str(pid): PatternRule(_rate(rate, f"pattern_rates.{pid}")) for pid, rate in value.items()
    }


def _exemptions(value: Any) -> tuple[Exemption, ...]:
    if not isinstance(value, list):
        raise PolicyError("exemptions: expected a list")
    return tuple(_exemption(item, f"exemptions[{i}]") for i, item in enumerate(value))


def _exemption(item: Any, key: str) -> Exemption:
    if not isinstance(item, Mapping):
        raise PolicyError(f"{key}: expected a mapping")
    allowed = {"name", "attribute", "resource", "body", "equals", "matches"}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise PolicyError(
            f"{key}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )
    scopes = [s for s in ("attribute", "resource", "body") if s in item]
    if len(scopes) != 1:
        raise PolicyError(f"{key}: set exactly one of attribute, resource, body")
    scope = scopes[0]
    if "equals" in item and "matches" in item:
        raise PolicyError(f"{key}: cannot define both equals and matches")
    if scope == "body" and "equals" not in item and "matches" not in item:
        raise PolicyError(f"{key}: a body exemption needs equals or matches")
    pattern = None
    if "matches" in item:
        try:
            pattern = re.compile(str(item["matches"]))
        except re.error as exc:
            raise PolicyError(f"{key}.matches: invalid regular expression: {exc}") from None
    attribute_key = "" if scope == "body" else str(item[scope])
    name = str(item.get("name") or attribute_key or "body")
    equals = None if "equals" not in item else str(item["equals"])
    return Exemption(name=name, scope=scope, key=attribute_key, equals=equals, pattern=pattern)
