"""The analyzer killed (kill -9) and restarted while receivers stream through it.

Real processes: `lipservice-otel analyze` on a real Redis, `lipservice-otel serve` following
it over the control plane with a policy cache file, the real OpenTelemetry SDK exporter
sending numbered records (exempt, so each acknowledged one must arrive downstream). While the
analyzer is gone the receiver keeps its last policy, in memory and in its cache file; once a
new analyzer listens on the same address the receiver reconnects and takes the versions
that follow; nothing is lost downstream.
"""

from __future__ import annotations

import time

import redis
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.control.client import read_policy_cache
from lipservice_otel.policy.codec import policy_from_bytes
from tests.support.cli_process import (
    control_stub,
    history_versions,
    metric,
    start_analyze,
    start_serve,
    stop_gracefully,
)
from tests.support.numbered import SdkSender, tally, wait_for_seqs
from tests.support.ports import free_port
from tests.support.received import until

KEEP_NUMBERED = {
    "exemptions": [{"name": "numbered", "resource": "service.name", "equals": "numbered"}]
}
GONE_S = 3.0


def stored_version(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        blob = client.get("lipservice:policy:latest")
    finally:
        client.close()
    return policy_from_bytes(blob).version if blob else 0


def analyzer_settings(redis_url: str) -> dict:
    return {
        "store.type": "redis",
        "store.redis.url": redis_url,
        # The killed writer's lock expires soon, so its successor writes without a long wait.
        "store.redis.lock_ttl_s": 2.0,
        "analysis.interval_s": 0.5,
        "analysis.min_examples_per_interval": 1,
        "policy.document": KEEP_NUMBERED,
    }


def receiver_config(sink_endpoint: str, control: str, cache_file: str) -> dict:
    return {
        "receiver": {"grpc": {"endpoint": f"127.0.0.1:{free_port()}"}, "http": {"endpoint": ""}},
        "exporter": {
            "type": "otlp",
            "otlp": {"endpoint": sink_endpoint},
            "queue": {"batch_timeout_s": 0.05},
        },
        "control": {
            "connect": control,
            "reconnect_max_s": 0.5,
            "policy_cache_file": cache_file,
        },
        "sampler": {"report_interval_s": 0.25},
        "telemetry": {"metrics_endpoint": f"127.0.0.1:{free_port()}"},
    }


def test_analyzer_killed_and_restarted_while_receivers_stream(redis_server, sink, tmp_path):
    control = f"127.0.0.1:{free_port()}"
    cache = tmp_path / "receiver.policy"
    analyzer = start_analyze(tmp_path, control, analyzer_settings(redis_server.url))
    config = receiver_config(sink.endpoint, control, str(cache))
    metrics = config["telemetry"]["metrics_endpoint"]
    receiver = start_serve(tmp_path, config)
    sender = SdkSender(
        GrpcExporter(endpoint=config["receiver"]["grpc"]["endpoint"], insecure=True, timeout=5)
    )

    def version() -> int:
        return int(metric(metrics, "lipservice_policy_version"))

    def cached() -> int:
        policy = read_policy_cache(str(cache))
        return policy.version if policy else 0

    try:
        sender.start()
        until(version, lambda v: v >= 2, 30, "the first learned policy at the receiver")

        analyzer.kill()  # kill -9: no goodbye, no final write
        kept = version()
        stored = stored_version(redis_server.url)
        time.sleep(GONE_S)
        assert version() == kept, "the receiver keeps its last policy"
        assert cached() == kept, "and its cache file"
        assert receiver.process.poll() is None

        analyzer = start_analyze(tmp_path, control, analyzer_settings(redis_server.url))
        channel, stub = control_stub(control)
        with channel:
            after = stub.Regenerate(control_pb2.RegenerateRequest(), timeout=10).version
            history = history_versions(stub)
        # Every version since the first learned one (2), none skipped, none started over.
        assert history == list(range(history[0], 1, -1)), history
        assert after > stored, "versions continue from the store"
        until(version, lambda v: v >= after, 30, f"policy version {after} at the receiver")
        until(cached, lambda v: v >= after, 10, f"policy version {after} in the cache file")

        sender.stop()
        records = wait_for_seqs(sink.records, sender.acknowledged, 30)
        result = tally(sender.sent, sender.acknowledged, records)
        print(f"analyzer kill -9 for {GONE_S:.0f}s: {result}; policy {kept} -> {after}")
        assert result.missing == 0, result
        assert result.acknowledged == result.sent, result
        reconnects = receiver.count("control plane")
        assert reconnects <= 2 * GONE_S / 0.25 + 10, receiver.log()  # with backoff, bounded
    finally:
        sender.stop(abandon=True)
        analyzer.kill()
        code, _ = stop_gracefully(receiver)
    assert code == 0, receiver.log()
