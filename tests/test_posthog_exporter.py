"""The PostHog preset against a stand-in that enforces PostHog's logs ingestion contract.

Asserted: the project token goes out as a Bearer header, large batches are split so no body
is over 2 MiB (as sent and after gunzip), 429 + Retry-After is waited out, 5xx and timeouts
are retried, other 4xx are not, `service.name` is on every resource, and every record
arrives, duplicated only where a timed-out attempt had in fact been delivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

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
from tests.conftest import make_settings
from tests.numbered import numbered_request, seq_of, tally
from tests.posthog_standin import MAX_BODY_BYTES, TOKEN, PosthogStandIn
from tests.test_http_receiver import post


@pytest.fixture
def posthog():
    standin = PosthogStandIn()
    yield standin
    standin.stop()


def posthog_settings(standin: PosthogStandIn, **overrides):
    return make_settings(
        None,
        **{
            "exporter.type": "posthog",
            "exporter.posthog.endpoint": standin.url,
            "exporter.posthog.api_key": TOKEN,
            "exporter.retry.max_interval_s": 0.5,
            **overrides,
        },
    )


def send(running, first: int, count: int, body_bytes: int = 40, service="shop") -> None:
    payload = numbered_request(first, count, body_bytes, service).SerializeToString()
    status, _, _ = post(running.http_url, payload)
    assert status == 200


def test_large_batches_are_split_under_2_mib_and_all_arrive(posthog, start_service):
    running = start_service(posthog_settings(posthog, **{"exporter.queue.batch_timeout_s": 0.5}))
    sent = set()
    for n in range(6):  # 6 x 800 records x 2 KB: about 10 MB in a few batches
        send(running, n * 800, 800, body_bytes=2048, service=None if n == 0 else "shop")
        sent.update(range(n * 800, (n + 1) * 800))
    result = tally(sent, sent, posthog.wait_for_records(len(sent)))
    assert (result.delivered, result.duplicated, result.missing) == (4800, 0, 0), result
    accepted = [a for a in posthog.attempts if a.status == 200]
    assert len(accepted) >= 5
    assert max(a.decompressed_bytes for a in accepted) <= MAX_BODY_BYTES
    assert max(a.body_bytes for a in accepted) < MAX_BODY_BYTES
    assert all(a.status != 413 for a in posthog.attempts)
    services = set()
    for request in posthog.requests:
        for resource_logs in request.resource_logs:
            names = [
                kv.value.string_value
                for kv in resource_logs.resource.attributes
                if kv.key == "service.name"
            ]
            assert len(names) == 1
            services.add(names[0])
    assert services == {"unknown_service", "shop"}


def test_429_retry_after_is_waited_out(posthog, start_service):
    running = start_service(posthog_settings(posthog))
    posthog.answer_next(1, 429, retry_after="2")
    send(running, 0, 10)
    result = tally(set(range(10)), set(range(10)), posthog.wait_for_records(10))
    assert (result.delivered, result.duplicated) == (10, 0)
    limited, accepted = posthog.attempts[0], posthog.attempts[1]
    assert limited.status == 429 and accepted.status == 200
    assert accepted.at - limited.at >= 2.0


def test_5xx_and_timeouts_are_retried_at_least_once(posthog, start_service):
    running = start_service(posthog_settings(posthog, **{"exporter.posthog.timeout_s": 0.5}))
    posthog.answer_next(2, 503)
    posthog.answer_next(1, 500)
    # Answered too late: the exporter gives up on the attempt, which was delivered anyway.
    posthog.answer_next(1, 200, delay_s=1.0)
    send(running, 0, 25)
    records = posthog.wait_for_records(50)
    result = tally(set(range(25)), set(range(25)), records)
    assert (result.delivered, result.missing) == (25, 0)
    assert result.duplicated == 25  # exactly the timed-out attempt, no more
    assert [a.status for a in posthog.attempts[:3]] == [503, 503, 500]
    errors = running.service.telemetry.value(
        "lipservice_exporter_send_errors", exporter="posthog", code="timeout"
    )
    assert errors == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_other_4xx_are_not_retried(posthog, start_service, status):
    running = start_service(posthog_settings(posthog))
    posthog.answer_next(1, status)
    send(running, 0, 3)
    telemetry = running.service.telemetry
    deadline = time.monotonic() + 10
    while telemetry.value("lipservice_exporter_failed_records", exporter="posthog") < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    assert len(posthog.attempts) == 1
    send(running, 3, 2)  # the next batch goes through
    assert sorted(seq_of(r) for _, r in posthog.wait_for_records(2)) == [3, 4]


def test_wrong_token_is_refused_by_the_standin(posthog, start_service):
    running = start_service(
        posthog_settings(posthog, **{"exporter.posthog.api_key": "phc_someone_else"})
    )
    send(running, 0, 1)
    deadline = time.monotonic() + 10
    while not posthog.attempts:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert posthog.attempts[0].status == 401
    assert posthog.records() == []


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


def test_cli_refuses_a_personal_key_at_start_up():
    environment = {**os.environ, "POSTHOG_API_KEY": "phx_personal_key"}
    completed = subprocess.run(
        [sys.executable, "-m", "lipservice_otel", "serve", "--exporter", "posthog"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "exporter.posthog.api_key: is a personal API key (phx_...)" in completed.stderr
    assert "phx_personal_key" not in completed.stderr


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
