"""Scrubbing log text before it leaves the process for a model.

Examples are real log bodies: they hold emails, tokens, passwords and addresses. Every text
the LLM advisor sends passes through `Redactor` first. The built-in rules always apply;
`analysis.llm.redaction_patterns` adds to them. A rule with a group named `secret` replaces
only that group (so `password=<redacted>` still tells the model what was there); otherwise
the whole match goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

REDACTED = "<redacted>"
SECRET_GROUP = "secret"

_SECRET_KEYS = (
    r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credential|auth|session[_-]?id|cookie|signature"
)


def _luhn(digits: str) -> bool:
    numbers = [int(c) for c in digits if c.isdigit()]
    checksum = 0
    for position, number in enumerate(reversed(numbers)):
        if position % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        checksum += number
    return checksum % 10 == 0


def _opaque(token: str) -> bool:
    """Random-looking: upper case, lower case and digits together (not a word, not hex)."""
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    label: str = REDACTED
    # A further test on the match, for shapes a regex alone over-matches.
    check: Callable[[str], bool] | None = None


BUILT_IN_RULES = (
    # Order matters: "Authorization: Bearer x" must lose the token before the key=value rule
    # sees "Authorization:".
    _Rule(
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
        )
    ),
    _Rule(re.compile(r"(?<=://)(?P<secret>[^/\s:@]+:[^/\s@]+)@")),
    _Rule(re.compile(r"(?i)\b(?:bearer|basic|digest|token)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})")),
    _Rule(re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
    _Rule(
        re.compile(
            r"\b(?:(?:sk|pk|rk)[-_](?:live[-_]|test[-_]|proj[-_])?[A-Za-z0-9_-]{16,}"
            r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}"
            r"|xox[abprs]-[A-Za-z0-9-]{10,}|phc_[A-Za-z0-9]{20,}|AIza[0-9A-Za-z_-]{35})"
        )
    ),
    _Rule(
        re.compile(
            rf"(?i)\b[\w.-]*(?:{_SECRET_KEYS})[\w.-]*[\"']?\s*[:=]\s*"
            r"(?P<secret>\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"
        )
    ),
    _Rule(re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    _Rule(
        re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"),
        "<ip>",
    ),
    _Rule(
        re.compile(
            r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
            r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?)"
            r"(?![\w:])"
        ),
        "<ip>",
    ),
    _Rule(re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "<card>", _luhn),
    _Rule(re.compile(r"\b[A-Za-z0-9_-]{32,}\b"), REDACTED, _opaque),
)


class Redactor:
    """Applies the built-in rules, then the configured ones, to a text."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._rules = BUILT_IN_RULES + tuple(_Rule(re.compile(p)) for p in extra_patterns)

    def __call__(self, text: str) -> str:
        for rule in self._rules:
            text = rule.pattern.sub(lambda match, rule=rule: _replace(match, rule), text)
        return text


def _replace(match: re.Match[str], rule: _Rule) -> str:
    if rule.check is not None and not rule.check(match.group()):
        return match.group()
    if SECRET_GROUP not in rule.pattern.groupindex or match.group(SECRET_GROUP) is None:
        return rule.label
    start, end = match.span(SECRET_GROUP)
    whole = match.group()
    offset = match.start()
    return whole[: start - offset] + rule.label + whole[end - offset :]
