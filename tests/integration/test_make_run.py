"""`make run` as a new user runs it: start, send with the OTel SDK, see the debug line, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from opentelemetry._logs import SeverityNumber

from tests.support.sdk_logs import sdk_logger

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_line(stream, needle: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen; output was:\n{''.join(seen)}")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_make_run_serves_and_prints_debug_summary():
    grpc_port, metrics_port = free_port(), free_port()
    args = (
        f"--grpc-endpoint 127.0.0.1:{grpc_port} --metrics-endpoint 127.0.0.1:{metrics_port} "
        f"--http-endpoint 127.0.0.1:{free_port()} --set control.listen=127.0.0.1:{free_port()}"
    )
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_line(process.stdout, "lipservice-otel serving", timeout_s=120)
        provider, logger = sdk_logger(f"127.0.0.1:{grpc_port}", service="make-run")
        for n in range(20):
            logger.emit(body=f"hello {n}", severity_number=SeverityNumber.INFO)
        logger.emit(body="it broke", severity_number=SeverityNumber.ERROR)
        provider.force_flush()
        provider.shutdown()
        line = wait_for_line(process.stdout, "lipservice debug exporter:", timeout_s=30)
        assert "records=21" in line
        assert "severity=1" in line
        # SIGTERM to the server alone, as Kubernetes would send it; make reports its status.
        (server,) = children_of(process.pid)
        os.kill(server, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert "shutting down" in output
    assert process.returncode == 0
