"""Severity inference for records sent without one, and the error-like word check."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from lipservice_otel.text.error_words import DEFAULT_ERROR_WORDS, compile_error_words, is_error_like
from lipservice_otel.text.severity import (
    infer_severity,
    severity_from_body,
    severity_from_text,
    severity_from_value,
)

TRACE, DEBUG, INFO, WARN, ERROR, FATAL = 1, 5, 9, 13, 17, 21


def any_value(value: object) -> AnyValue:
    """An OTLP AnyValue from a plain Python value; dicts become kvlists."""
    if isinstance(value, dict):
        pairs = [KeyValue(key=key, value=any_value(item)) for key, item in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WARN", WARN),
        ("warning", WARN),
        (" Warning\n", WARN),
        ("[ERROR]", ERROR),
        ("err", ERROR),
        ("SEVERE", ERROR),  # java.util.logging
        ("fail", ERROR),  # .NET console
        ("crit", 18),  # syslog crit -> ERROR2 (OTel data model, appendix B)
        ("Critical", 18),
        ("alert", 19),
        ("emerg", FATAL),
        ("emergency", FATAL),
        ("fatal", FATAL),
        ("panic", FATAL),
        ("notice", 10),
        ("information", INFO),
        ("Informational", INFO),
        ("trace", TRACE),
        ("dbg", DEBUG),
        ("finer", DEBUG),
        ("FINE", 6),
        ("finest", TRACE),
        ("config", 7),
        ("ERROR2", 18),
        ("fatal4", 24),
        ("E", ERROR),  # logcat / glog letters
        ("W", WARN),
        ("I", INFO),
        ("D", DEBUG),
        ("V", TRACE),
        ("F", FATAL),
        ("3", ERROR),  # syslog severity digits
        ("0", FATAL),
        ("7", DEBUG),
        ("30", INFO),  # pino / bunyan
        ("50", ERROR),
        ("500", ERROR),  # Google Cloud LogSeverity
        ("stdout", 0),
        ("", 0),
        ("8", 0),
        ("\u00b2", 0),  # a Unicode digit is not a level
    ],
)
def test_severity_from_text(text: str, expected: int) -> None:
    assert severity_from_text(text) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param('{"level":"error","msg":"db down"}', ERROR, id="json-level"),
        pytest.param('  {"severity": "WARNING", "message": "slow"}', WARN, id="json-gcp"),
        pytest.param('{"log.level": "warn"}', WARN, id="json-ecs-dotted"),
        pytest.param('{"log": {"level": "error"}}', ERROR, id="json-ecs-nested"),
        pytest.param('{"level":50,"msg":"x"}', ERROR, id="json-pino-number"),
        pytest.param('{"levelname": "CRITICAL"}', 18, id="json-python-json-logger"),
        pytest.param('{"log":"2024-01-02 ERROR boom\\n","stream":"stderr"}', ERROR, id="docker"),
        pytest.param('{"user": {"level": "admin"}}', 0, id="json-nested-other-level"),
        pytest.param('{"level":"error","msg":"trunc', ERROR, id="json-truncated"),
        pytest.param("<3>Jan  2 03:04:05 host app[12]: boom", ERROR, id="syslog-pri-err"),
        pytest.param("<27>1 2024-01-02T03:04:05Z host app 12 - - boom", ERROR, id="syslog-pri-27"),
        pytest.param("<190>info", INFO, id="syslog-pri-local7-info"),
        pytest.param("<12>warning", WARN, id="syslog-pri-warning"),
        pytest.param("E/ActivityManager(  123): ANR in com.example", ERROR, id="logcat-brief"),
        pytest.param("01-02 03:04:05.678  123  456 W Tag: slow", WARN, id="logcat-threadtime"),
        pytest.param("01-02 03:04:05.678 F/libc( 123): abort", FATAL, id="logcat-time"),
        pytest.param('ts=2024-01-02T03:04:05Z level=warn msg="slow"', WARN, id="logfmt"),
        pytest.param('time="2024-01-02T03:04:05Z" level=error msg="x"', ERROR, id="logrus-text"),
        pytest.param("lvl=dbug msg=x", DEBUG, id="logfmt-lvl"),
        pytest.param("2024-01-02 03:04:05,123 - app.db - ERROR - boom", ERROR, id="python-format"),
        pytest.param("ERROR:root:boom", ERROR, id="python-basicconfig"),
        pytest.param("WARNING:urllib3.connectionpool:Retrying", WARN, id="python-warning"),
        pytest.param("2024-01-02 03:04:05,123 ERROR [main] c.e.App - boom", ERROR, id="log4j"),
        pytest.param("2024-01-02 03:04:05.123 [main] WARN  c.e.App - slow", WARN, id="logback"),
        pytest.param("SEVERE: boom", ERROR, id="java-util-logging"),
        pytest.param("2024-01-02T03:04:05.000Z\tERROR\tpkg/f.go:12\tboom", ERROR, id="zap"),
        pytest.param("2024-01-02T03:04:05.000Z\tinfo\tpkg/f.go:12\tok", INFO, id="zap-lowercase"),
        pytest.param("<*> error pkg/f.go:<*> boom", ERROR, id="zap-template"),
        pytest.param("3:04PM ERR boom key=v", ERROR, id="zerolog-console"),
        pytest.param("[03:04:05 WRN] slow", WARN, id="serilog-console"),
        pytest.param("fail: Microsoft.AspNetCore.Server[0]", ERROR, id="dotnet-console"),
        pytest.param("E0102 03:04:05.678901    123 file.go:12] boom", ERROR, id="glog"),
        pytest.param("I0102 03:04:05.678901 1 main.go:1] up", INFO, id="glog-info"),
        pytest.param("E<*> <*> <*> file.go:<*>] boom", ERROR, id="glog-template"),
        pytest.param("081109 203615 148 INFO dfs.DataNode: x", INFO, id="date-time-pid-level"),
        pytest.param("<*> <*> <*> WARN dfs.DataNode: x", WARN, id="masked-header-level"),
        pytest.param(
            "17/06/09 20:10:40 ERROR executor.Executor: boom", ERROR, id="slashed-date-level"
        ),
        pytest.param(
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
            "R02-M1-N0-C:J12-U11 RAS KERNEL FATAL data TLB error",
            FATAL,
            id="node-header-level",
        ),
        pytest.param(
            "2015-07-29 17:41:44,747 - WARN  [main:Q@1] - x", WARN, id="dash-separated-level"
        ),
        pytest.param(
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child",
            ERROR,
            id="bracketed-date-bracketed-level",
        ),
        pytest.param("2024/01/02 03:04:05 [crit] 12#0: *1 open() failed", 18, id="nginx"),
        pytest.param("2024-01-02 03:04:05.123 UTC [12] ERROR:  relation", ERROR, id="postgres"),
        pytest.param("Jul 25 23:23:13 combo xinetd[1]: warning: can't x", WARN, id="syslog-line"),
        pytest.param("panic: runtime error: index out of range", FATAL, id="go-panic"),
        pytest.param("ALERT exited abnormally with [1]", 19, id="bare-capitals"),
        pytest.param("warning", WARN, id="whole-body-level"),
        pytest.param("critical", 18, id="whole-body-critical"),
        pytest.param("Failed password for invalid user admin from <*> port <*> ssh2", 0, id="sshd"),
        pytest.param("Received block blk_<*> of size <*> from <*>", 0, id="no-level"),
        pytest.param("Error occurred while reading", 0, id="prose-error-word"),
        pytest.param("Info about the run", 0, id="prose-info-word"),
        pytest.param("trace: span exporter stopped", 0, id="go-package-prefix"),
        pytest.param("CONFIG ERROR: missing key", ERROR, id="jul-word-is-not-bare"),
        pytest.param("I/O error on /dev/sda", 0, id="not-logcat"),
        pytest.param("set level: 3 for motor", 0, id="unquoted-number"),
        pytest.param("battery_level=40 service.log.level=debug", 0, id="other-keys"),
        pytest.param("", 0, id="empty"),
    ],
)
def test_severity_from_body(body: str, expected: int) -> None:
    assert severity_from_body(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"level": "error", "msg": "x"}, ERROR, id="level"),
        pytest.param({"Severity": "WARNING"}, WARN, id="key-case"),
        pytest.param({"log.level": "warn"}, WARN, id="ecs-dotted"),
        pytest.param({"log": {"level": "fatal"}}, FATAL, id="ecs-nested"),
        pytest.param({"lvl": "dbg"}, DEBUG, id="lvl"),
        pytest.param({"level": 50}, ERROR, id="pino-int"),
        pytest.param({"level": 30.0}, INFO, id="pino-double"),
        pytest.param({"level": 3}, ERROR, id="gelf-syslog-int"),
        pytest.param({"level": True}, 0, id="bool"),
        pytest.param({"level": 30.5}, 0, id="fractional"),
        pytest.param({"log": "E0102 03:04:05.678901 1 f.go:1] boom", "stream": "x"}, ERROR),
        pytest.param({"message": "[WARN] slow"}, WARN, id="message-key"),
        pytest.param({"level": "unknown", "msg": "ERROR boom"}, ERROR, id="unknown-then-msg"),
        pytest.param({"msg": "hello", "count": 3}, 0, id="no-level"),
        pytest.param("2024-01-02 03:04:05 WARN slow", WARN, id="string-body"),
        pytest.param(42, 0, id="int-body"),
    ],
)
def test_severity_from_value(body: object, expected: int) -> None:
    assert severity_from_value(any_value(body)) == expected


def test_severity_from_value_of_empty_and_array_bodies() -> None:
    assert severity_from_value(AnyValue()) == 0
    array = AnyValue(array_value=ArrayValue(values=[any_value("ERROR")]))
    assert severity_from_value(array) == 0


@pytest.mark.parametrize(
    ("number", "text", "body", "expected"),
    [
        pytest.param(INFO, "ERROR", "ERROR: x", INFO, id="number-wins"),
        pytest.param(0, "warn", "ERROR: x", WARN, id="text-before-body"),
        pytest.param(0, "stdout", "ERROR: x", ERROR, id="unknown-text-falls-to-body"),
        pytest.param(0, "", {"level": "error"}, ERROR, id="kvlist-body"),
        pytest.param(0, "", "hello", 0, id="nothing"),
    ],
)
def test_infer_severity_order(number: int, text: str, body: object, expected: int) -> None:
    assert infer_severity(number, text, any_value(body)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Failed password for invalid user admin from <*> port <*> ssh2",
        "POSSIBLE BREAK-IN ATTEMPT!",
        "Invalid user test from <*>",
        "reverse mapping checking getaddrinfo for <*> failed - POSSIBLE BREAK-IN ATTEMPT!",
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=<*>",
        "Couldn't authenticate user",
        "Couldn\u2019t authenticate user",
        "failed to connect to db-7: 0 retries left",
        "Job <*> failed",
        "Processed <*> records, <*> failed to parse",
        "<*> errors occurred during sync",
        "3 errors",
        "errors=5",
        "error_count=5",
        "Error: <*>",
        "error: no such host",
        "no errors, 2 failures",
        "java.lang.NullPointerException",
        "IOException: stream closed",
        "ConnectionRefusedError: [Errno <*>]",
        "rpc error: code = DEADLINE_EXCEEDED",
        "register_security failed.",
        "node not-responding",
        "Request timed-out after <*>",
        "Out of memory: Killed process <*> (java)",
        "Segmentation fault (core dumped)",
        "Traceback (most recent call last):",
        "Command has been aborted",
        "write: broken pipe",
    ],
)
def test_error_like(text: str) -> None:
    assert is_error_like(text)


@pytest.mark.parametrize(
    "text",
    [
        "0 failed",
        "0 errors",
        "no errors",
        "No failures",
        "without error",
        "did not fail",
        "error=0",
        "errors: 0",
        "failed=0",
        "error_count=0",
        "succeeded with 0 failures",
        "Found 0 errors in 3 files",
        "Tests: 5 passed, 0 failed",
        "errors=0, warnings=3",
        "err=<nil> error=<nil>",
        '{"error": null}',
        'error=""',
        # Template counters: one slot stands for zero and non-zero alike.
        "<*> failed",
        "<*> errors",
        "Processed <*> records, <*> failed",
        "succeeded with <*> failures",
        "failed=<*> skipped=<*>",
        "errors: <*>, warnings: <*>",
        "error_count=<*>",
        "timeout=<*>",
        # Noise and near misses.
        "Received block blk_<*> of size <*> from <*>",
        "session opened for user root by (uid=<*>)",
        "Connection closed by <*> [preauth]",
        "check pass; user unknown",
        "errorless terror interrupts",
        "non-fatal",
        "error-free run",
        "failover complete",
        "ErrorHandler registered",
        "Linkerror event interval expired",
        "",
    ],
)
def test_not_error_like(text: str) -> None:
    assert not is_error_like(text)


def test_raw_line_and_its_template() -> None:
    assert not is_error_like("Processed 10 records, 0 failed")
    assert is_error_like("Processed 10 records, 3 failed")
    # The template covers both lines; a counter alone does not make it an error.
    assert not is_error_like("Processed <*> records, <*> failed")


def test_configured_words() -> None:
    words = ("quota", "can't")
    assert is_error_like("Quota reached", words)
    assert is_error_like("I can\u2019t", words)
    assert not is_error_like("request failed", words)
    assert not is_error_like("0 quota", words)
    matcher = compile_error_words(["overheat"])
    assert matcher("GPU OVERHEAT detected")
    assert matcher("SensorOverheat")
    assert not matcher("overheated")


@pytest.mark.parametrize("words", [[], [""], ["error", "  "]])
def test_compile_error_words_rejects_empty(words: list[str]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        compile_error_words(words)


def test_default_words_are_lowercase_and_unique() -> None:
    assert len(set(DEFAULT_ERROR_WORDS)) == len(DEFAULT_ERROR_WORDS)
    assert all(word == word.lower().strip() for word in DEFAULT_ERROR_WORDS)


MEGABYTE = 1_000_000


@pytest.mark.parametrize(
    ("text", "severity", "error_like"),
    [
        pytest.param("a" * MEGABYTE, 0, False, id="one-word"),
        pytest.param("[" * MEGABYTE, 0, False, id="brackets"),
        pytest.param("{" * MEGABYTE, 0, False, id="braces"),
        pytest.param('{"a":' * 20_000 + "1" + "}" * 20_000, 0, False, id="deep-json"),
        pytest.param("1 " * (MEGABYTE // 2), 0, False, id="numbers"),
        pytest.param("<*> " * (MEGABYTE // 4), 0, False, id="slots"),
        pytest.param("- " * (MEGABYTE // 2), 0, False, id="separators"),
        pytest.param("0 errors " * (MEGABYTE // 9), 0, False, id="negated-hits"),
        pytest.param(" " * MEGABYTE + "ERROR boom", 0, True, id="level-beyond-prefix"),
        pytest.param("ERROR " + "x" * MEGABYTE, ERROR, True, id="level-then-huge"),
        pytest.param('{"level":"warn","m":"' + "x" * MEGABYTE + '"}', WARN, False, id="big-json"),
        pytest.param("error_" + "a" * MEGABYTE, 0, True, id="long-key"),
    ],
)
def test_hostile_megabyte_bodies(text: str, severity: int, error_like: bool) -> None:
    assert severity_from_body(text) == severity
    assert is_error_like(text) is error_like
