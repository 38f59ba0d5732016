"""Severity for records sent without one.

Many pipelines send ``severity_number`` 0: filelog receivers without a parser, syslog
forwarders, stdout capture. Read as INFO, their errors would be sampled like chatter, because
the severity floor only protects records that carry a severity. So we recover it the way
PostHog's intake does (number, else normalised text, else the body's own level key) and add the
level tokens that common text formats put at the front of a line.

Mappings follow the OpenTelemetry logs data model, appendix B (syslog crit -> ERROR2, alert ->
ERROR3, notice -> INFO2, java.util.logging FINE -> DEBUG2 ...), so a record means the same here as
after a Collector severity parser. All functions are pure; regexes only look at a bounded prefix
and JSON is parsed only up to a size limit, so a hostile body costs bounded work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValueList

from lipservice_otel.text.word_trie import trie_pattern

__all__ = [
    "infer_severity",
    "severity_from_body",
    "severity_from_text",
    "severity_from_value",
]


# --- severity ------------------------------------------------------------------------------

# Leading-token forms sit at the front of a line; scanning further only finds prose.
_SCAN_CHARS = 256
# Larger JSON bodies are not parsed (the cost grows with size); the `level=` / `"level":` scan
# of the prefix still finds a level written near the start, where loggers put it.
_JSON_PARSE_CHARS = 64 * 1024

# Syslog severity 0-7 (RFC 5424): emerg, alert, crit, err, warning, notice, info, debug.
_SYSLOG = (21, 19, 18, 17, 13, 10, 9, 5)
# pino / bunyan numeric levels 10, 20 ... 60: trace, debug, info, warn, error, fatal.
_BY_TENS = (1, 5, 9, 13, 17, 21)
# Google Cloud LogSeverity 100, 200 ... 800: debug, info, notice, warning, error, critical,
# alert, emergency.
_BY_HUNDREDS = (5, 9, 10, 13, 17, 18, 19, 21)


def _levels() -> dict[str, int]:
    levels = {
        # TRACE
        "trace": 1, "trc": 1, "trce": 1, "finest": 1, "verbose": 1, "vrb": 1, "v": 1,
        # DEBUG
        "debug": 5, "dbg": 5, "dbug": 5, "finer": 5, "d": 5, "fine": 6, "config": 7,
        # INFO
        "info": 9, "inf": 9, "information": 9, "informational": 9, "i": 9, "notice": 10,
        # WARN
        "warn": 13, "warning": 13, "wrn": 13, "w": 13,
        # ERROR
        "error": 17, "err": 17, "fail": 17, "severe": 17, "e": 17,
        "crit": 18, "critical": 18, "alert": 19,
        # FATAL
        "fatal": 21, "ftl": 21, "f": 21, "a": 21, "emerg": 21, "emergency": 21,
        "panic": 21, "pnc": 21, "dpanic": 21,
    }  # fmt: skip
    # The data model's short names with a step: "ERROR2" -> 18, "FATAL4" -> 24.
    for name, low in (("trace", 1), ("debug", 5), ("info", 9), ("warn", 13), ("error", 17)):
        levels.update({f"{name}{step}": low + step - 1 for step in (2, 3, 4)})
    levels.update({f"fatal{step}": 21 + step - 1 for step in (2, 3, 4)})
    return levels


_LEVELS = _levels()
_TEXT_TRIM = " \t\r\n[]():"


def severity_from_text(severity_text: str) -> int:
    """SeverityNumber for a level name ("warning" -> 13, "E" -> 17, "3" -> 17); 0 if unknown."""
    key = severity_text.strip(_TEXT_TRIM).lower()
    found = _LEVELS.get(key)
    if found is not None:
        return found
    if key.isascii() and key.isdigit() and len(key) <= 3:
        return _severity_from_number(int(key))
    return 0


def _severity_from_number(number: int) -> int:
    if 0 <= number <= 7:
        return _SYSLOG[number]
    if 10 <= number < 70:
        return _BY_TENS[number // 10 - 1]
    if 100 <= number <= 800 and number % 100 == 0:
        return _BY_HUNDREDS[number // 100 - 1]
    return 0


# Level words as they appear in text: in any case where clearly tagged ("[error]", "error:",
# a tab-separated column), the rest only in capitals, because "trace:", "config:" or "Info"
# also start ordinary messages (Go package prefixes, prose).
_ANY_CASE = (
    "debug", "info", "information", "informational", "notice", "warn", "warning", "error",
    "err", "fail", "severe", "crit", "critical", "alert", "emerg", "emergency", "fatal",
    "panic", "dpanic", "trce", "dbug",
)  # fmt: skip
_CAPITALS_ONLY = ("TRACE", "VERBOSE", "TRC", "DBG", "INF", "WRN", "FTL", "PNC", "VRB")
# java.util.logging names read as prose when bare ("CONFIG ERROR: ..."): tagged forms only.
_JUL = ("FINEST", "FINER", "FINE", "CONFIG")
# zap's lowercase console encoder: a bare lowercase level after the timestamp column (the
# template collapses its tabs to spaces).
_ZAP_LOWERCASE = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")

_TAGGED = trie_pattern(
    [form for word in _ANY_CASE for form in (word, word.upper(), word.title())]
    + list(_CAPITALS_ONLY + _JUL)
)
_BARE = trie_pattern([word.upper() for word in _ANY_CASE] + list(_CAPITALS_ONLY))

# A number-ish column (date, time, pid) or its masked slot in a template.
_NUM = r"(?:<\*>|\d[\d:.,/-]*)"
# Tokens that may precede the level in a line header. Each is atomic so a failed match never
# re-splits the header: the work stays linear in the (bounded) prefix.
_HEADER_TOKEN = r"""(?>
      \[[^\]]{0,64}\]               # [2024-01-02 03:04:05] [main] [pid 12]
    | \([^)]{0,64}\)
    | (?=\S*?(?:\d|<\*>))\S++       # holding a digit or a slot: dates, pids, host-12, R<*>
    | [-|:>#=*]{1,3}(?=\s)          # column separators: "-", "|", "---"
    | [A-Z][A-Z_]++(?=\s)           # capitalised columns: "UTC", "RAS KERNEL", "NULL"
    | \S++(?=\s+-\s)                # a logger name in "date - name - LEVEL - msg"
)"""
# Classic syslog header left in the body: "Jun 14 15:16:01 host prog[123]: ".
_SYSLOG_HEADER = r"(?:[A-Z][a-z]{2}\s+(?:\d{1,2}|<\*>)\s+\S+\s+\S+\s+[^\s:]{1,64}:\s+)?"
_LEADING = re.compile(
    rf"""^\s*(?:
        <(?P<pri>\d{{1,3}})>                                        # syslog PRI: <27>...
      | (?P<glog>[IWEF])(?:\d{{4}}|<\*>)\s+{_NUM}\s                 # glog/klog: E0102 03:04:05
      | {_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s+(?P<logcat>[VDIWEFA])\s  # logcat threadtime
      | {_SYSLOG_HEADER}(?:{_HEADER_TOKEN}\s+){{0,10}}?
        (?:
            (?P<brief>[VDIWEFA])/[^\s:(]{{1,64}}\s*(?:\(\s*(?:\d+|<\*>)\s*\))?:  # E/Tag(12):
          | \[\s*(?:[^\]\s]{{1,32}}\s+)?(?P<bracket>{_TAGGED})\s*\]  # [error], [03:04:05 ERR]
          | (?P<colon>{_TAGGED}):                                   # error: / ERROR:root:
          | (?P<tab>{_TAGGED})(?=\t)                                # zap console column
          | (?P<bare>{_BARE})(?=[\s|,;-]|$)                         # ERROR msg
          | (?<=\s)(?P<lower>{trie_pattern(_ZAP_LOWERCASE)})(?=\s)         # <ts> error msg
          | (?P<alone>{_TAGGED})\s*$                                # the whole line: "warning"
        )
    )""",
    re.VERBOSE,
)
# Keys loggers use for the level: pino, bunyan, zap, logrus, winston "level"; Google Cloud
# "severity"; ECS "log.level"; python-json-logger "levelname".
_LEVEL_KEYS = frozenset(
    ("level", "lvl", "severity", "log.level", "levelname", "loglevel", "log_level")
)
# A level key anywhere in the (lowercased) prefix: logfmt and logrus `level=error`, JSON-ish
# `"level":"warn"`. The lookbehind sits after the first char so sre can skip ahead to an "l"/"s".
_KEYED = re.compile(
    trie_pattern(sorted(_LEVEL_KEYS), after_first=r"(?<![\w.].)")
    + r"""(?P<quoted>["']?)\s*[=:]\s*["']?(?P<value>[a-z]+|\d{1,3})(?!\w)"""
)


def severity_from_body(text: str) -> int:
    """SeverityNumber a string body declares for itself; 0 if it declares none.

    Tried in order: a JSON object's level key; a syslog PRI; a level token at the front of the
    line, after a header of timestamps, pids and bracketed columns (log4j, logback, Python
    logging, zap, logcat, glog, log4j, nginx, httpd ...); a ``level=`` / ``"level":`` key in
    the first 256 chars.
    """
    head = text[:_SCAN_CHARS]
    if head.lstrip()[:1] == "{" and len(text) <= _JSON_PARSE_CHARS:
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            return _severity_from_fields(document)
    match = _LEADING.match(head)
    if match:
        word = match[match.lastgroup]
        if match.lastgroup != "pri":
            return severity_from_text(word)
        if int(word) <= 191:
            return _SYSLOG[int(word) % 8]
    lowered = head.lower()
    if "level" in lowered or "lvl" in lowered or "severity" in lowered:
        for key in _KEYED.finditer(lowered):
            # A bare number after an unquoted key ("level: 3" in prose) is too weak a signal.
            if key["quoted"] or not key["value"].isdigit():
                found = severity_from_text(key["value"])
                if found:
                    return found
    return 0


def severity_from_value(value: AnyValue) -> int:
    """SeverityNumber an OTLP body declares: a map's level key, or a string's own level."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return severity_from_body(value.string_value)
    if kind == "kvlist_value":
        return _severity_from_fields(value.kvlist_value)
    return 0


def infer_severity(severity_number: int, severity_text: str, body: AnyValue) -> int:
    """The record's SeverityNumber, else its severity text's, else its body's; 0 if none."""
    if severity_number:
        return severity_number
    if severity_text:
        found = severity_from_text(severity_text)
        if found:
            return found
    return severity_from_value(body)


# The human message of a structured record (docker's {"log": "...", "stream": ...} included):
# with no level key, the message itself may start with a level.
_MESSAGE_KEYS = frozenset(("msg", "message", "log"))


def _severity_from_fields(fields: dict | KeyValueList) -> int:
    message = ""
    for key, value in _items(fields):
        name = key.lower()
        if name in _LEVEL_KEYS:
            found = _severity_from_scalar(value)
            if found:
                return found
        elif name == "log" and isinstance(value, dict | KeyValueList):
            # ECS nests the level: {"log": {"level": "error"}}.
            found = _severity_from_fields(value)
            if found:
                return found
        elif name in _MESSAGE_KEYS and isinstance(value, str) and not message:
            message = value
    return severity_from_body(message) if message else 0


def _items(fields: dict | KeyValueList) -> Iterator[tuple[str, object]]:
    if isinstance(fields, dict):
        yield from fields.items()
        return
    for pair in fields.values:
        kind = pair.value.WhichOneof("value")
        yield pair.key, getattr(pair.value, kind) if kind else None


def _severity_from_scalar(value: object) -> int:
    if isinstance(value, str):
        return severity_from_text(value)
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return _severity_from_number(value)
    # JSON numbers often arrive as doubles (the Collector's json_parser yields float64).
    if isinstance(value, float) and value.is_integer():
        return _severity_from_number(int(value))
    return 0
