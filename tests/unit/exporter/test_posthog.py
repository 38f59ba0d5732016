"""The PostHog preset's pure parts: a record over the 2 MiB request limit, the project key and
region settings, Retry-After, and the request split (against a stand-in that enforces
PostHog's contract: tests/integration/test_posthog_exporter.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.exporter.config import (
    POSTHOG_ENDPOINTS,
    POSTHOG_MAX_REQUEST_BYTES,
    PosthogExporterConfig,
)
from lipservice_otel.exporter.otlp_http import retry_after_seconds
from lipservice_otel.exporter.posthog import posthog_exporter
from lipservice_otel.exporter.split import split_request
from lipservice_otel.settings import load_settings
from lipservice_otel.validation import ConfigError
from tests.support.numbered import numbered_request, seq_of
from tests.support.posthog_standin import TOKEN


def test_a_record_over_2_mib_is_dropped_and_counted_the_rest_sent():
    request = numbered_request(0, 3, body_bytes=1000)
    request.resource_logs[0].scope_logs[0].log_records[1].body.string_value = "x" * (
        POSTHOG_MAX_REQUEST_BYTES + 1
    )
    exporter = posthog_exporter(PosthogExporterConfig(api_key=TOKEN))
    prepared = exporter.prepare(request.SerializeToString(), 3)
    assert prepared.unsendable == 1
    assert "request limit" in prepared.unsendable_reason
    (payload, records), *more = prepared.requests
    assert not more and records == 2
    sent = ExportLogsServiceRequest.FromString(payload)
    assert [seq_of(r) for r in sent.resource_logs[0].scope_logs[0].log_records] == [0, 2]


def test_api_key_comes_from_posthog_api_key_and_phx_is_refused():
    settings = load_settings(
        environ={"POSTHOG_API_KEY": "phc_from_env"}, overrides={"exporter.type": "posthog"}
    )
    assert settings.exporter.posthog.api_key == "phc_from_env"
    assert settings.exporter.posthog.url == POSTHOG_ENDPOINTS["us"]
    assert "phc_from_env" not in repr(settings)
    explicit = load_settings(
        environ={"POSTHOG_API_KEY": "phc_from_env"},
        overrides={"exporter.type": "posthog", "exporter.posthog.api_key": "phc_explicit"},
    )
    assert explicit.exporter.posthog.api_key == "phc_explicit"
    with pytest.raises(ConfigError, match=r"exporter\.posthog\.api_key: is a personal API key"):
        load_settings(
            environ={"POSTHOG_API_KEY": "phx_personal"}, overrides={"exporter.type": "posthog"}
        )
    with pytest.raises(ConfigError, match=r"required with exporter\.type posthog"):
        load_settings(environ={}, overrides={"exporter.type": "posthog"})
    eu = load_settings(
        environ={"POSTHOG_API_KEY": "phc_x"},
        overrides={"exporter.type": "posthog", "exporter.posthog.region": "eu"},
    )
    assert eu.exporter.posthog.url == "https://eu.i.posthog.com/i/v1/logs"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 120 ", 120.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_forms(header, expected):
    assert retry_after_seconds(header) == expected


def test_retry_after_as_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


@st.composite
def requests(draw):
    request = ExportLogsServiceRequest()
    seq = 0
    for r in range(draw(st.integers(1, 3))):
        resource_logs = request.resource_logs.add()
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", f"s{r}" * draw(st.integers(0, 50))
        for s in range(draw(st.integers(1, 3))):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = f"scope{s}"
            for size in draw(st.lists(st.integers(0, 3000), max_size=40)):
                record = scope_logs.log_records.add()
                record.body.string_value = "b" * size
                kv = record.attributes.add()
                kv.key, kv.value.int_value = "seq", seq
                seq += 1
    return request


@settings(max_examples=200, deadline=None)
@given(request=requests(), limit=st.integers(200, 20_000))
def test_split_keeps_every_record_in_order_under_the_limit(request, limit):
    split = split_request(request, limit)
    flattened = []
    for payload, count in split.parts:
        assert len(payload) <= limit
        part = ExportLogsServiceRequest.FromString(payload)
        records = [
            (rl.resource.SerializeToString(), sl.scope.name, seq_of(record))
            for rl in part.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]
        assert len(records) == count > 0
        flattened.extend(records)
    original = [
        (rl.resource.SerializeToString(), sl.scope.name, seq_of(record))
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    kept = {seq for *_, seq in flattened}
    assert flattened == [entry for entry in original if entry[2] in kept]
    assert split.too_large == len(original) - len(flattened)
    if split.too_large:
        assert limit < 3100 + 200
