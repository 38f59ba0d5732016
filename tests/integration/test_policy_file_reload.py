"""policy.file is re-read on change by every process that runs the analysis: `analyze` and the
parent of `serve --workers`, not only plain `serve`.

Tried before the fix: the file was watched only by Service (plain `serve`); an Analyzer started
as `analyze` or `serve --workers` kept the first version forever: below, the new base never
reached the analysis (the in-process test) and the workers never switched to shadow mode.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import grpc

from lipservice_otel.app.service import Analyzer, configured_policy
from lipservice_otel.sampling.annotation import ATTR_WOULD_KEEP
from lipservice_otel.settings import load_settings
from tests.support.log_requests import EXPORT, request_with_bodies
from tests.support.ports import free_port
from tests.support.received import attributes_of


def test_analyzer_publishes_each_edit_of_the_policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("default_rate: 0.5\n")
    settings = load_settings(
        environ={},
        overrides={
            "policy.file": str(path),
            "policy.reload_interval_s": 0.02,
            "ui.endpoint": "",
        },
    )

    async def edits() -> list[tuple[str, float]]:
        analyzer = Analyzer(settings, configured_policy(settings), "analyze-test")
        await analyzer.start(None)
        seen = []
        try:
            for mode, rate in (("shadow", 0.25), ("enforce", 0.125)):
                path.write_text(f"mode: {mode}\ndefault_rate: {rate}\n")
                for _ in range(500):
                    policy = analyzer.loop.policy
                    if policy is not None and (policy.mode, policy.default_rate) == (mode, rate):
                        break
                    await asyncio.sleep(0.01)
                seen.append((policy.mode, policy.default_rate) if policy else None)
        finally:
            await analyzer.stop()
        return seen

    assert asyncio.run(edits()) == [("shadow", 0.25), ("enforce", 0.125)]


def shadowed(sink) -> bool:
    """Whether a record forwarded in shadow mode arrived (only shadow mode writes would_keep)."""
    return any(ATTR_WOULD_KEEP in attributes_of(record) for _, record in sink.records())


def test_serve_workers_follow_the_edited_policy_file(sink, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("mode: enforce\n")
    grpc_port = free_port()
    args = ["serve", "--workers", "2", "--policy", str(path)]
    args += ["--grpc-endpoint", f"127.0.0.1:{grpc_port}", "--http-endpoint", ""]
    args += ["--metrics-endpoint", "", "--exporter", "otlp", "--otlp-endpoint", sink.endpoint]
    for setting in (
        "control.listen=127.0.0.1:0",
        "policy.reload_interval_s=0.05",
        "exporter.queue.batch_timeout_s=0.05",
    ):
        args += ["--set", setting]
    process = subprocess.Popen(
        [sys.executable, "-m", "lipservice_otel", *args],
        stderr=subprocess.DEVNULL,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    export = channel.unary_unary(EXPORT, request_serializer=lambda payload: payload)
    payload = request_with_bodies("steady info line").SerializeToString()
    try:
        grpc.channel_ready_future(channel).result(timeout=20)
        path.write_text("mode: shadow\n")
        deadline = time.monotonic() + 20
        while not shadowed(sink) and time.monotonic() < deadline:
            export(payload, timeout=5)
            time.sleep(0.1)
        assert shadowed(sink), "no worker took the edited policy"
    finally:
        channel.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
