"""The PostHog preset against a stand-in that enforces PostHog's logs ingestion contract.

Asserted: the project token goes out as a Bearer header, large batches are split so no body
is over 2 MiB (as sent and after gunzip), 429 + Retry-After is waited out, 5xx and timeouts
are retried, other 4xx are not, `service.name` is on every resource, and every record
arrives, duplicated only where a timed-out attempt had in fact been delivered. The preset's
pure parts (the split, Retry-After, the key settings) are in tests/unit/exporter/test_posthog.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.numbered import numbered_request, seq_of, tally
from tests.support.otlp_http import post
from tests.support.posthog_standin import MAX_BODY_BYTES, TOKEN, PosthogStandIn
from tests.support.running_service import make_settings


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
