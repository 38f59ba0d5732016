"""Receivers and analyzers sharing policies through a real Redis server.

Two receivers follow one `lipservice-otel analyze` process (a real subprocess); we kill -9 the
analyzer and the receivers keep sampling with their last policy; a restarted analyzer resumes
from Redis (versions continue, known patterns are not new again). A standby replica takes over
writing when the lock holder dies. The `policy` commands read the live policy.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.cli_process import metric
from tests.support.ports import free_port
from tests.support.running_service import make_settings
from tests.support.traffic import NOISE, TrafficSender

ANALYSIS_INTERVAL_S = 0.5


def start_analyzer(
    redis_url: str, port: int, lock_ttl_s: float = 2.0, **extra: object
) -> subprocess.Popen:
    settings = {
        "analysis.interval_s": ANALYSIS_INTERVAL_S,
        "analysis.min_examples_per_interval": 1,
        "store.redis.lock_ttl_s": lock_ttl_s,
        "telemetry.metrics_endpoint": "",
        **extra,
    }
    command = [sys.executable, "-m", "lipservice_otel", "analyze", "--store", "redis"]
    command += ["--redis-url", redis_url, "--listen", f"127.0.0.1:{port}"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until(condition, timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def receiver_settings(sink, control_port: int, cache_file: str):
    return make_settings(
        sink.endpoint,
        **{
            "control.connect": f"127.0.0.1:{control_port}",
            "control.reconnect_max_s": 0.5,
            "control.policy_cache_file": cache_file,
            "sampler.report_interval_s": 0.25,
        },
    )


def teach(senders: list[TrafficSender]) -> None:
    """Three rounds of every sender's noise: enough for the analyzer to learn it."""
    for _ in range(3):
        for sender in senders:
            sender.run(NOISE, seconds=0.5, tag="learn")


def wait_sending(senders: list[TrafficSender], condition, timeout_s: float, what: str):
    """`wait_until` with every sender's noise going on meanwhile: idle while the analyzer
    catches up, the patterns' baselines would decay and the traffic that resumes after it
    would be a burst the receivers keep whole."""

    def sent_then_checked():
        for sender in senders:
            sender.run(NOISE, seconds=0.2, tag="waiting")
        return condition()

    return wait_until(sent_then_checked, timeout_s=timeout_s, what=what)


def sent_and_forwarded(sender: TrafficSender, sink, tag: str) -> tuple[int, int]:
    """Records one second of `sender`'s noise has, and how many of them reach the sink."""
    forwarded_before = len(sink.records())
    sent_before = sum(sender.sent.values())
    sender.run(NOISE, seconds=1.0, tag=tag)
    sent = sum(sender.sent.values()) - sent_before
    return sent, len(sink.wait_for_records(forwarded_before + 1)) - forwarded_before


def stored_version(client: redis.Redis) -> int:
    from lipservice_otel.policy.codec import policy_from_bytes

    blob = client.get("lipservice:policy:latest")
    return policy_from_bytes(blob).version if blob else 0


def test_two_receivers_one_analyzer_survive_a_killed_analyzer(
    redis_server, sink, start_service, tmp_path
):
    control_port = free_port()
    analyzer = start_analyzer(redis_server.url, control_port)
    first = start_service(receiver_settings(sink, control_port, str(tmp_path / "a.policy")))
    second = start_service(receiver_settings(sink, control_port, str(tmp_path / "b.policy")))
    senders = [TrafficSender(r.endpoint, seed=n) for n, r in enumerate((first, second))]
    client = redis.Redis.from_url(redis_server.url)
    try:
        teach(senders)

        def same_learned_policy():
            versions = {r.service.sampler.policy.version for r in (first, second)}
            learned = all(r.service.sampler.policy.learned for r in (first, second))
            return learned and len(versions) == 1 and versions.pop()

        version = wait_sending(
            senders, same_learned_policy, 20.0, "both receivers on one learned policy"
        )
        assert stored_version(client) >= version
        assert client.llen("lipservice:policy:history") >= 1

        analyzer.kill()  # kill -9: no goodbye
        analyzer.wait(10)
        sent, forwarded = sent_and_forwarded(senders[0], sink, "orphaned")
        assert first.service.sampler.policy.learned
        assert 0 < forwarded < 0.5 * sent, "still sampling with the last policy"

        # A restarted receiver would resume the cached policy before reaching anyone.
        cached = (tmp_path / "a.policy").read_bytes()
        assert cached

        last_version = stored_version(client)
        analyzer = start_analyzer(redis_server.url, control_port)
        for sender in senders:
            sender.run(NOISE, seconds=1.5, tag="resumed")
        wait_until(
            lambda: first.service.sampler.policy.version > last_version,
            what="a new version after the restart",
        )
        new_patterns = [
            pid
            for pid, rule in first.service.sampler.policy.pattern_rules.items()
            if rule.reason == "anomaly/new_pattern"
        ]
        assert new_patterns == [], "baselines resumed from Redis: known patterns are not new"
    finally:
        analyzer.kill()
        analyzer.wait(10)
        for sender in senders:
            sender.close()


def test_with_policy_slices_each_receiver_gets_the_rules_of_its_own_patterns(
    redis_server, sink, start_service, tmp_path
):
    """Two receivers of different services behind one analyzer with control.policy_slices:
    each applies only its own patterns' rules, the two together are the whole policy, and
    both go on sampling by them."""
    from lipservice_otel.policy.codec import policy_from_bytes

    control_port = free_port()
    analyzer = start_analyzer(redis_server.url, control_port, **{"control.policy_slices": "true"})
    first = start_service(receiver_settings(sink, control_port, str(tmp_path / "a.policy")))
    second = start_service(receiver_settings(sink, control_port, str(tmp_path / "b.policy")))
    receivers = (first, second)
    senders = [
        TrafficSender(r.endpoint, service=service, seed=n)
        for n, (r, service) in enumerate(zip(receivers, ("shop", "search"), strict=True))
    ]
    client = redis.Redis.from_url(redis_server.url)
    try:
        teach(senders)

        def sliced_and_current():
            blob = client.get("lipservice:policy:latest")
            whole = policy_from_bytes(blob) if blob else None
            policies = [r.service.sampler.policy for r in receivers]
            if whole is None or any(p.version != whole.version or not p.learned for p in policies):
                return None
            return whole, policies

        whole, (mine, theirs) = wait_sending(
            senders, sliced_and_current, timeout_s=40.0, what="both on the latest version"
        )
        assert mine.pattern_rules and theirs.pattern_rules
        assert not mine.pattern_rules.keys() & theirs.pattern_rules.keys()
        assert mine.pattern_rules.keys() | theirs.pattern_rules.keys() == whole.pattern_rules.keys()

        sent, forwarded = sent_and_forwarded(senders[0], sink, "sliced")
        assert 0 < forwarded < 0.5 * sent, "sampling by its slice"
    finally:
        for sender in senders:
            sender.close()
        analyzer.terminate()
        analyzer.wait(10)


def test_standby_replica_takes_over_when_the_writer_dies(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    first_port, second_port = free_port(), free_port()
    writer = start_analyzer(redis_server.url, first_port, lock_ttl_s=1.0)
    wait_until(lambda: client.get("lipservice:writer"), what="the writer lock")
    standby = start_analyzer(redis_server.url, second_port, lock_ttl_s=1.0)
    try:
        time.sleep(3 * ANALYSIS_INTERVAL_S)
        holder = client.get("lipservice:writer")
        writer.kill()
        writer.wait(10)
        wait_until(
            lambda: client.get("lipservice:writer") not in (None, holder),
            timeout_s=10,
            what="the standby to take the lock",
        )
        assert standby.poll() is None
    finally:
        for process in (writer, standby):
            process.kill()
            process.wait(10)


def test_policy_commands_show_explain_history(sink, start_service):
    settings = make_settings(
        sink.endpoint,
        **{
            "analysis.interval_s": ANALYSIS_INTERVAL_S,
            "sampler.report_interval_s": 0.2,
            "control.listen": f"127.0.0.1:{free_port()}",
        },
    )
    running = start_service(settings)
    sender = TrafficSender(running.endpoint)
    sender.run(NOISE, seconds=2.0, tag="learn")
    sender.close()
    wait_until(lambda: running.service.sampler.policy.learned, what="a learned policy")
    control = settings.control.listen

    def policy(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "lipservice_otel", "policy", "--control-plane", control]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)

    shown = policy("show")
    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.strip().splitlines()
    assert header.split()[:5] == ["PATTERN", "SERVICE", "VOLUME/S", "RATE", "REASON"]
    assert len(rows) == len(NOISE)
    assert "GET /api/cart returned 200 in" in shown.stdout
    top_pattern = rows[0].split()[0]

    explained = policy("explain", top_pattern)
    assert explained.returncode == 0, explained.stderr
    assert f"pattern   {top_pattern}" in explained.stdout
    assert "service budget" in explained.stdout

    pinned = policy("pin", top_pattern, "0.5", "--for", "60")
    assert pinned.returncode == 0, pinned.stderr
    assert running.service.sampler.policy.pattern_rules[top_pattern].rate == 0.5

    history = policy("history")
    assert history.returncode == 0
    assert "first learned policy" in history.stdout
    assert "rules" in history.stdout

    missing = policy("explain", "0000000000000000")
    assert missing.returncode == 1 and "no pattern" in missing.stderr


def test_policy_command_reports_an_unreachable_control_plane():
    nobody = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "lipservice_otel", "policy", "--control-plane", nobody, "show"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "UNAVAILABLE" in result.stderr


def test_analyze_answers_grpc_health_checks(redis_server):
    port = free_port()
    analyzer = start_analyzer(redis_server.url, port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "lipservice.v1.ControlPlane"):
                request = health_pb2.HealthCheckRequest(service=service)
                response = stub.Check(request, timeout=5)
                assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        analyzer.kill()
        analyzer.wait(10)


def test_gen_subcommand_is_otel_gen():
    result = subprocess.run(
        [sys.executable, "-m", "lipservice_otel", "gen", "logs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--otlp-endpoint" in result.stdout


def test_analyze_serves_its_own_metrics():
    control_port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "lipservice_otel", "analyze"]
    command += ["--listen", f"127.0.0.1:{control_port}", "--set", "analysis.interval_s=0.2"]
    command += ["--set", f"telemetry.metrics_endpoint=127.0.0.1:{metrics_port}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cycles() -> float:
        try:
            return metric(f"127.0.0.1:{metrics_port}", "lipservice_analysis_cycles_total")
        except OSError:
            return 0.0  # not listening yet

    try:
        # Before, `analyze` served no /metrics at all: its counters went nowhere.
        wait_until(lambda: cycles() >= 2, 30, "two analysis cycles counted on analyze's /metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
