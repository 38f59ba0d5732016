"""otel-gen -> the real receiver -> a real gRPC sink: the report matches what arrived."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc

from lipservice_otel.loadgen.cli import main as otel_gen
from lipservice_otel.loadgen.profiles import RealisticSource
from lipservice_otel.policy.reasons import REASON_ERROR_CONTEXT
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_REASON
from tests.support.metrics import metric_samples, total
from tests.support.peers import http_port
from tests.support.received import attributes_of
from tests.support.running_service import make_settings, with_policy

SAMPLING = {"severity_rates": {"debug": 0.05, "info": 0.2}}


def run_otel_gen(tmp_path: Path, *flags: str) -> tuple[int, dict]:
    report_file = tmp_path / "report.json"
    code = otel_gen(["logs", "--otlp-insecure", "--report-json", str(report_file), *flags])
    return code, json.loads(report_file.read_text())


def assert_accounting(running, sink, report: dict, transport: str) -> list:
    """Everything the receiver acknowledged was kept (and delivered) or counted as dropped."""
    samples = metric_samples(running)
    kept = total(samples, "lipservice_sampler_kept_records_total")
    dropped = total(samples, "lipservice_sampler_dropped_records_total")
    accepted = total(samples, "lipservice_receiver_accepted_records_total", transport=transport)
    assert accepted == report["acknowledged"] == report["sent"]
    assert kept + dropped == report["acknowledged"]
    sink.wait_for_records(int(kept))
    running.stop()
    records = [record for _, record in sink.records()]
    delivered = Counter(attributes_of(record)[ATTR_REASON] for record in records)
    kept_by_reason = {
        labels["reason"]: value
        for name, labels, value in samples
        if name == "lipservice_sampler_kept_records_total"
    }
    # Error context also forwards earlier-dropped records of an errored trace (counted as
    # dropped, adjusted count 0); every other reason arrives exactly as counted.
    context = kept_by_reason.pop(REASON_ERROR_CONTEXT, 0)
    assert context <= delivered.pop(REASON_ERROR_CONTEXT, 0) <= context + dropped
    assert delivered == kept_by_reason
    return records


def test_realistic_load_is_accounted_for_and_errors_all_arrive(tmp_path, sink, start_service):
    running = start_service(with_policy(make_settings(sink.endpoint), **SAMPLING))
    workers, per_worker, batch = 2, 3000, 100
    code, report = run_otel_gen(
        tmp_path,
        "--otlp-endpoint", running.endpoint,
        "--profile", "realistic",
        "--workers", str(workers),
        "--logs", str(per_worker),
        "--batch-size", str(batch),
        "--seed", "7",
    )  # fmt: skip
    assert code == 0
    assert report["sent"] == report["acknowledged"] == workers * per_worker
    assert report["rejected"] == 0 and report["errors"] == {}
    assert report["requests"] == workers * per_worker // batch
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]

    records = assert_accounting(running, sink, report, "grpc")
    # The profile is seeded: regenerate what each worker sent and count its errors.
    expected_errors = 0
    for worker in range(workers):
        source = RealisticSource(7 + worker)
        for _ in range(per_worker // batch):
            expected_errors += sum(spec.severity_number >= 17 for spec in source.batch(batch, 0))
    assert expected_errors > 0
    assert sum(record.severity_number >= 17 for record in records) == expected_errors
    # Sampling happened, and the kept records still stand for the whole volume.
    assert len(records) < 0.6 * report["sent"]
    represented = sum(attributes_of(record)[ATTR_ADJUSTED_COUNT] for record in records)
    assert abs(represented - report["sent"]) < 0.15 * report["sent"]


def test_telemetrygen_flags_shape_every_record(tmp_path, sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    code, report = run_otel_gen(
        tmp_path,
        "--otlp-endpoint", running.endpoint,
        "--logs", "250",
        "--batch-size", "50",
        "--rate", "5000",
        "--service", "checkout",
        "--otlp-attributes", 'deployment.environment="staging"',
        "--telemetry-attributes", 'tenant="acme"',
        "--telemetry-attributes", "shard=3",
        "--body", "payment accepted",
        "--severity-text", "Warning",
        "--severity-number", "13",
        "--trace-id", "ae87dadd90e9935a4bc9660628efd569",
        "--span-id", "5828fa4960140870",
        "--otlp-header", 'x-tenant="acme"',
    )  # fmt: skip
    assert code == 0 and report["acknowledged"] == 250
    received = sink.wait_for_records(250)
    assert len(received) == 250
    resource, record = received[0]
    resource_attributes = attributes_of(resource)
    assert resource_attributes["service.name"] == "checkout"
    assert resource_attributes["deployment.environment"] == "staging"
    assert record.body.string_value == "payment accepted"
    assert (record.severity_number, record.severity_text) == (13, "Warning")
    assert record.trace_id.hex() == "ae87dadd90e9935a4bc9660628efd569"
    assert record.span_id.hex() == "5828fa4960140870"
    assert {"tenant": "acme", "shard": 3}.items() <= attributes_of(record).items()


def test_refusals_are_reported_as_rejected(tmp_path, sink, start_service):
    # Downstream is down and the queue is tiny: the receiver refuses with RESOURCE_EXHAUSTED.
    sink.fail_next(10_000, grpc.StatusCode.UNAVAILABLE)
    settings = make_settings(
        sink.endpoint,
        **{
            "exporter.queue.max_records": 300,
            "exporter.retry.max_interval_s": 0.2,
            "shutdown_timeout_s": 2.0,
        },
    )
    running = start_service(settings)
    code, report = run_otel_gen(
        tmp_path, "--otlp-endpoint", running.endpoint, "--logs", "2000", "--batch-size", "100"
    )
    assert code == 1
    assert report["sent"] == 2000
    assert report["rejected"] > 0
    assert report["acknowledged"] + report["rejected"] == report["sent"]
    assert report["errors"] == {"RESOURCE_EXHAUSTED": report["rejected"] // 100}
    samples = metric_samples(running)
    refused = total(samples, "lipservice_receiver_refused_records_total", reason="queue_full")
    assert refused == report["rejected"]
    accepted = total(samples, "lipservice_receiver_accepted_records_total")
    assert accepted == report["acknowledged"]
    sink.recover()


def test_replay_sends_each_line_and_loghub_levels(tmp_path, sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    lines = tmp_path / "app.log"
    lines.write_text("first line\nsecond line\n\nthird line\n")
    structured = tmp_path / "HDFS_2k.log_structured.csv"
    structured.write_text(
        "LineId,Date,Time,Pid,Level,Component,Content,EventId,EventTemplate\n"
        "1,081109,203615,148,INFO,dfs.DataNode,PacketResponder 1 terminating,E10,x\n"
        '2,081109,203616,149,WARN,dfs.FSNamesystem,"BLOCK* ask 10.0.0.1, replicate",E7,y\n'
        "3,081109,203617,150,ERROR,dfs.DataNode,Exception writing block,E3,z\n"
    )
    for path in (lines, structured):
        code, report = run_otel_gen(
            tmp_path, "--otlp-endpoint", running.endpoint, "--replay", str(path)
        )
        assert code == 0 and report["profile"] == "replay"
    received = [record for _, record in sink.wait_for_records(6)]
    assert [r.body.string_value for r in received] == [
        "first line",
        "second line",
        "third line",
        "PacketResponder 1 terminating",
        "BLOCK* ask 10.0.0.1, replicate",
        "Exception writing block",
    ]
    assert [r.severity_number for r in received] == [0, 0, 0, 9, 13, 17]
    loghub = {"loghub.component": "dfs.DataNode", "loghub.event_id": "E10"}
    assert loghub.items() <= attributes_of(received[3]).items()


def test_command_line_progress_and_exit_status(tmp_path, sink, start_service):
    running = start_service(make_settings(sink.endpoint))
    command = [sys.executable, "-m", "lipservice_otel.loadgen.cli", "logs", "--otlp-insecure"]
    done = subprocess.run(
        [*command, "--otlp-endpoint", running.endpoint, "--duration", "1200ms", "--rate", "500",
         "--progress"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "acknowledged" in done.stderr.splitlines()[-1]
    first = done.stdout.splitlines()[0]
    assert first.startswith("otel-gen: ") and "records/s" in first
    # About 1.2 s at 500/s: the pacer never exceeds the rate (a busy machine may fall short).
    sent = int(first.split()[1])
    assert 300 <= sent <= 650
    bad = subprocess.run([*command, "--duration", "ten"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--duration" in bad.stderr


def test_otlp_http_load_matches_what_arrived(tmp_path, sink, start_service):
    running = start_service(
        with_policy(
            make_settings(sink.endpoint, **{"receiver.http.endpoint": "127.0.0.1:0"}), **SAMPLING
        )
    )
    code, report = run_otel_gen(
        tmp_path,
        "--otlp-http",
        "--otlp-endpoint", f"127.0.0.1:{http_port(running)}",
        "--profile", "realistic",
        "--workers", "2",
        "--logs", "2000",
    )  # fmt: skip
    assert code == 0 and report["transport"] == "http"
    assert report["acknowledged"] == report["sent"] == 4000
    assert_accounting(running, sink, report, "http")
