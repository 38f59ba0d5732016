"""otel-gen's parts: flag syntax, pacing, profiles, replay, encoding, report arithmetic."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.loadgen.config import GenConfig, parse_duration, parse_key_value
from lipservice_otel.loadgen.pacing import MAX_CATCH_UP_S, Pacer, paced_batch_size
from lipservice_otel.loadgen.profiles import (
    CATALOG,
    INCIDENT_SCRIPT,
    TRACED_SHARE,
    RealisticSource,
    Template,
)
from lipservice_otel.loadgen.records import LogSpec, encode_request, key_values, resource_of
from lipservice_otel.loadgen.replay import ReplaySource
from lipservice_otel.loadgen.report import percentile
from lipservice_otel.text.signature import template_of_text
from lipservice_otel.validation import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0), ("0", 0.0)],
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_inf_and_bad_durations():
    assert parse_duration("inf") == math.inf
    for bad in ("30", "ten", "5s3", "-1s"):
        with pytest.raises(ConfigError, match="--duration"):
            parse_duration(bad)


def test_telemetrygen_attribute_syntax():
    flag = "--otlp-attributes"
    assert parse_key_value('env="prod"', flag) == ("env", "prod")
    assert parse_key_value("debug=true", flag) == ("debug", True)
    assert parse_key_value("shard=-3", flag) == ("shard", -3)
    assert parse_key_value("ids=[1, 2,3]", flag) == ("ids", (1, 2, 3))
    assert parse_key_value('zones=["a,b", "c"]', flag) == ("zones", ("a,b", "c"))
    with pytest.raises(ConfigError, match="double quotes"):
        parse_key_value("env=prod", flag)
    with pytest.raises(ConfigError, match="same type"):
        parse_key_value('mixed=[1, "a"]', flag)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_key_value("novalue", flag)


@pytest.mark.parametrize(
    ("config", "flag"),
    [
        (GenConfig(workers=0), "--workers"),
        (GenConfig(batch_size=0), "--batch-size"),
        (GenConfig(rate=-1), "--rate"),
        (GenConfig(logs=0), "--logs"),
        (GenConfig(endpoint="localhost"), "--otlp-endpoint"),
        (GenConfig(profile="incident", duration_s=math.inf), "--profile"),
        (GenConfig(profile="realistic", replay="app.log"), "--replay"),
        (GenConfig(trace_id="abc"), "--trace-id"),
        (GenConfig(severity_number=30), "--severity-number"),
    ],
)
def test_bad_flags_are_named(config, flag):
    with pytest.raises(ConfigError, match=f"^{flag}:"):
        config.validate()


def test_default_endpoints_follow_the_transport():
    assert GenConfig().target() == "localhost:4317"
    assert GenConfig(http=True).target() == "localhost:4318"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_holds_the_rate_and_limits_catch_up():
    clock = FakeClock()
    pacer = Pacer(1000, clock, clock.sleep)
    for _ in range(50):
        pacer.wait(100)
    # 50 batches of 100 at 1000/s: the last one may leave after 4.9 s.
    assert clock.now == pytest.approx(104.9)
    clock.now += 10  # a stall (slow receiver)
    start = clock.now
    for _ in range(20):
        pacer.wait(100)
    # Catching up bursts for at most MAX_CATCH_UP_S worth of records, then paces again.
    assert clock.now - start == pytest.approx(2.0 - MAX_CATCH_UP_S - 0.1)


def test_unthrottled_pacer_never_sleeps():
    clock = FakeClock()
    Pacer(0, clock, clock.sleep).wait(10_000)
    assert clock.now == 100.0


def test_low_rates_send_small_batches_often():
    assert paced_batch_size(100, 0) == 100
    assert paced_batch_size(100, 50) == 5
    assert paced_batch_size(100, 1) == 1
    assert paced_batch_size(100, 100_000) == 100


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


def template_of(entry: Template) -> str:
    return template_of_text(entry.render(random.Random(0)))


def draw(source, records: int, batch: int = 100, total: int | None = None) -> list[LogSpec]:
    total = total or records
    out: list[LogSpec] = []
    while len(out) < records:
        out.extend(source.batch(batch, len(out) / total))
    return out


def test_realistic_profile_is_seeded_skewed_and_traced():
    records = draw(RealisticSource(3), 50_000)
    assert records == draw(RealisticSource(3), 50_000)
    assert records != draw(RealisticSource(4), 50_000)
    by_template = Counter(template_of_text(spec.body) for spec in records)
    ranked = [count for _, count in by_template.most_common()]
    # Zipf: the head template alone outweighs the tail, and a few make most of the volume.
    assert ranked[0] > 0.15 * len(records)
    assert sum(ranked[:5]) > 0.5 * len(records)
    assert len(by_template) >= len(CATALOG)
    traced = sum(bool(spec.trace_id) for spec in records) / len(records)
    assert abs(traced - TRACED_SHARE) < 0.1
    # Records of a trace come together and share the trace id.
    assert len({spec.trace_id for spec in records if spec.trace_id}) < 0.6 * len(records)
    assert {spec.severity_text for spec in records} >= {"DEBUG", "INFO", "WARN", "ERROR"}


def test_realistic_profile_invents_patterns_and_bursts_errors():
    records = draw(RealisticSource(5), 200_000)
    catalog = {template_of(entry) for entry in CATALOG}
    seen = {template_of_text(spec.body) for spec in records}
    assert len(seen - catalog) >= 10, "new patterns appear over time"
    errors = [i for i, spec in enumerate(records) if spec.severity_number == 17]
    windows = Counter(i // 1000 for i in errors)
    # A burst: some 1000-record window holds far more errors than the average one.
    assert max(windows.values()) > 5 * (len(errors) / (len(records) / 1000))


def test_incident_script_happens_when_announced():
    total = 20_000
    records = draw(RealisticSource(1, INCIDENT_SCRIPT, bursts=False), total, total=total)
    for event in INCIDENT_SCRIPT:
        template = template_of(event.template)
        positions = [i for i, s in enumerate(records) if template_of_text(s.body) == template]
        inside = range(int(event.start * total), int(event.end * total))
        assert positions and all(i in inside for i in positions), event.name
        assert abs(len(positions) / len(inside) - event.share) < 0.05, event.name


def test_replay_reads_lines_once_or_in_a_loop(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("a\n\nb\r\nc\n")
    once = ReplaySource(path, loop=False)
    assert [s.body for s in once.batch(2, 0)] == ["a", "b"]
    assert [s.body for s in once.batch(2, 0)] == ["c"]
    assert once.batch(2, 0) == []
    looped = ReplaySource(path, loop=True)
    assert [s.body for s in looped.batch(7, 0)] == ["a", "b", "c", "a", "b", "c"]


def test_a_csv_without_content_is_plain_lines(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("name,value\ncpu,3\n")
    assert [s.body for s in ReplaySource(path, loop=False).batch(5, 0)] == ["name,value", "cpu,3"]


def test_encoded_request_round_trips():
    resource = resource_of("checkout", {"service.name": "override", "region": "eu"})
    specs = [
        LogSpec("hello", 9, "INFO", b"\x01" * 16, b"\x02" * 8),
        LogSpec("bye", attributes=key_values({"retry": 2})),
    ]
    payload = encode_request(resource, specs, key_values({"flag": True}), 123)
    request = ExportLogsServiceRequest.FromString(payload)
    (resource_logs,) = request.resource_logs
    attributes = {kv.key: kv.value for kv in resource_logs.resource.attributes}
    assert attributes["service.name"].string_value == "override"
    first, second = resource_logs.scope_logs[0].log_records
    assert (first.body.string_value, first.severity_number, first.time_unix_nano) == (
        "hello",
        9,
        123,
    )
    assert first.trace_id == b"\x01" * 16 and first.span_id == b"\x02" * 8
    assert [kv.key for kv in second.attributes] == ["flag", "retry"]
    assert second.attributes[0].value.bool_value is True
