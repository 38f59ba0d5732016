"""The disk holding the persistent queue fills up under load, then space frees up.

A real `lipservice-otel serve` journals to a 2 MiB tmpfs that another file has nearly
filled; the real OpenTelemetry SDK HTTP exporter sends numbered records; the downstream is
down throughout, so every acknowledged record lives only in the journal. While the disk is
full senders get 503 (retry later) and nothing is acknowledged that was not written and
fsynced. Then the other file goes, sending resumes, the process is killed (kill -9) and
restarted with the downstream back: every acknowledged record arrives.
"""

from __future__ import annotations

import signal
import time

import grpc
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

from tests.support.cli_process import metric, serve_config, start_serve, stop_gracefully
from tests.support.numbered import SdkSender, tally, wait_for_seqs
from tests.support.received import until
from tests.support.small_disk import fill, small_tmpfs

REFUSED = "lipservice_receiver_refused_records_total"


def journal_config(sink_endpoint: str, journal: str) -> dict:
    persistent = {"directory": journal, "fsync": "always", "segment_bytes": 1 << 20}
    return serve_config(
        sink_endpoint,
        exporter={"queue": {"batch_timeout_s": 0.05, "persistent": persistent}},
    )


def test_persistent_queue_on_a_full_disk_refuses_then_resumes(sink, tmp_path):
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        journal = disk / "journal"
        journal.mkdir()
        config = journal_config(sink.endpoint, str(journal))
        metrics = config["telemetry"]["metrics_endpoint"]
        url = f"http://{config['receiver']['http']['endpoint']}/v1/logs"
        sink.fail_next(10**6, grpc.StatusCode.UNAVAILABLE)  # the downstream is down
        filler = fill(disk, leave_bytes=160 * 1024)
        serve = start_serve(tmp_path, config)
        sender = SdkSender(HttpExporter(endpoint=url, timeout=1), batch_size=25)
        restarted = None
        try:
            sender.start()
            until(lambda: metric(metrics, REFUSED, reason="journal"), bool, 30, "a journal refusal")
            time.sleep(1.0)  # a while full: senders keep retrying and keep being refused
            acknowledged_full = set(sender.acknowledged)
            refused = metric(metrics, REFUSED, transport="http", reason="journal")
            assert sender.refusals > 0 and refused > 0
            filler.unlink()  # space frees up
            until(
                lambda: len(sender.acknowledged) - len(acknowledged_full),
                bool,
                30,
                "an acknowledgement once space is free",
            )
            time.sleep(1.0)
            sender.stop(abandon=True)
            code, _ = serve.signal(signal.SIGKILL)
            assert code == -signal.SIGKILL
            sink.recover()
            restarted = start_serve(tmp_path, config, name="restarted")
            records = wait_for_seqs(sink.records, sender.acknowledged, 30)
            result = tally(sender.sent, sender.acknowledged, records)
            print(
                f"disk full: {result}; acknowledged while full={len(acknowledged_full)}, "
                f"refused records={refused:.0f}"
            )
            assert result.missing == 0, result
            assert "Traceback" not in serve.log(), serve.log()
        finally:
            sender.stop(abandon=True)
            serve.kill()
            if restarted is not None:
                code, _ = stop_gracefully(restarted)
                assert code == 0, restarted.log()
