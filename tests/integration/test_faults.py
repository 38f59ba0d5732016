"""Real faults under steady load from the real OpenTelemetry SDK exporters.

Every record is numbered, so each test counts exactly what the sender sent, what we
acknowledged, what arrived downstream and how often. The promise under test: nothing
acknowledged is ever missing; duplicates only where at-least-once allows them.

- the downstream is stopped for 30 s, then restarted on the same port;
- `lipservice-otel serve` gets SIGTERM while records are queued and retrying;
- `lipservice-otel serve` with the persistent queue is killed with SIGKILL, then restarted.
"""

from __future__ import annotations

import signal
import time

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

from lipservice_otel.exporter.journal import pending_entries
from tests.support.cli_process import metric, serve_config, start_serve
from tests.support.numbered import SdkSender, tally, wait_for_seqs
from tests.support.otlp_sink import OtlpSink
from tests.support.ports import free_port
from tests.support.running_service import make_settings

OUTAGE_S = 30.0


def test_downstream_stopped_for_30s_under_load_loses_nothing(start_service):
    port = free_port()
    first_sink = OtlpSink(port)
    first_sink.server.start()
    settings = make_settings(
        first_sink.endpoint,
        **{
            "exporter.queue.max_records": 4000,
            "exporter.retry.max_interval_s": 1.0,
            # Keep every record: the count must be exact, not learned down to a sample.
            "analysis.embedded": False,
        },
    )
    running = start_service(settings)
    sender = SdkSender(GrpcExporter(endpoint=running.endpoint, insecure=True, timeout=5))
    sender.start()
    time.sleep(3)
    first_sink.server.stop(0).wait()
    time.sleep(OUTAGE_S)
    second_sink = OtlpSink(port)
    second_sink.server.start()
    try:
        time.sleep(3)
        sender.stop()
        records = wait_for_seqs(
            lambda: first_sink.records() + second_sink.records(), sender.acknowledged, 60
        )
        result = tally(sender.sent, sender.acknowledged, records)
        print(f"downstream stopped {OUTAGE_S:.0f}s: {result}")
        assert result.missing == 0, result
        assert result.acknowledged == result.sent, result
        refused = running.service.telemetry.value(
            "lipservice_receiver_refused_records", transport="grpc", reason="queue_full"
        )
        assert refused > 0  # the queue filled and pushed back instead of dropping
        assert sender.refusals > 0
    finally:
        second_sink.server.stop(0)


def test_sigterm_under_load_drains_everything_acknowledged(sink, tmp_path):
    config = serve_config(sink.endpoint)
    serve = start_serve(tmp_path, config)
    endpoint = config["receiver"]["grpc"]["endpoint"]
    sender = SdkSender(GrpcExporter(endpoint=endpoint, insecure=True, timeout=2))
    sender.start()
    time.sleep(2)
    # The downstream stumbles: batches are queued and retrying when SIGTERM arrives.
    sink.fail_next(6, grpc.StatusCode.UNAVAILABLE)
    time.sleep(0.3)
    code, _ = serve.signal(signal.SIGTERM)
    sender.stop(abandon=True)  # the receiver is gone; what it did not acknowledge is ours
    result = tally(sender.sent, sender.acknowledged, sink.records())
    print(f"SIGTERM under load: {result}")
    assert code == 0, serve.log()
    assert result.missing == 0, result
    assert result.acknowledged > 0
    assert any("draining the sending queue" in line for line in serve.lines)


def test_kill_9_with_persistent_queue_replays_everything_acknowledged(sink, tmp_path):
    journal = tmp_path / "journal"
    config = serve_config(
        sink.endpoint,
        exporter={
            "type": "otlp",
            "otlp": {"endpoint": sink.endpoint},
            "queue": {"batch_timeout_s": 0.05, "persistent": {"directory": str(journal)}},
            "retry": {"initial_interval_s": 0.1, "max_interval_s": 0.5},
        },
    )
    http_url = f"http://{config['receiver']['http']['endpoint']}/v1/logs"
    serve = start_serve(tmp_path, config)
    sender = SdkSender(HttpExporter(endpoint=http_url, timeout=2), batch_size=25)
    sender.start()
    time.sleep(1.5)
    sink.fail_next(10**6, grpc.StatusCode.UNAVAILABLE)  # the downstream goes down
    time.sleep(1.5)
    delivered_before = len(sink.records())
    acknowledged_before = len(sender.acknowledged)
    assert serve.signal(signal.SIGKILL)[0] == -signal.SIGKILL
    assert list(journal.glob("*.wal"))
    sink.recover()
    restarted = start_serve(tmp_path, config)
    try:
        time.sleep(1.5)
        sender.stop()
        records = wait_for_seqs(sink.records, sender.acknowledged, 30)
        result = tally(sender.sent, sender.acknowledged, records)
        replayed = metric(
            config["telemetry"]["metrics_endpoint"], "lipservice_queue_replayed_records_total"
        )
        print(
            f"kill -9 with persistent queue: {result}; acknowledged before the kill="
            f"{acknowledged_before}, delivered before the kill={delivered_before}, "
            f"replayed={replayed:.0f}"
        )
        assert result.missing == 0, result
        assert acknowledged_before > delivered_before  # the kill did strand acknowledged data
        assert replayed >= acknowledged_before - delivered_before
    finally:
        assert restarted.signal(signal.SIGTERM)[0] == 0
    # Everything was exported and marked done: a third start would replay nothing.
    assert pending_entries([path.read_bytes() for path in sorted(journal.glob("*.wal"))]) == []
