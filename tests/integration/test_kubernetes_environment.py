"""`serve` in a pod that Kubernetes filled with service-link variables.

Tried before the fix: `serve` with these variables exited 2 at once with
"configuration error: analyze_port: unknown key" (the crash loop of issue 14).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.ports import free_port

SERVICE_LINKS = {
    "LIPSERVICE_ANALYZE_SERVICE_HOST": "10.96.0.12",
    "LIPSERVICE_ANALYZE_SERVICE_PORT": "4320",
    "LIPSERVICE_ANALYZE_PORT": "tcp://10.96.0.12:4320",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP": "tcp://10.96.0.12:4320",
    "LIPSERVICE_ANALYZE_PORT_4320_TCP_ADDR": "10.96.0.12",
    "LIPSERVICE_REDIS_SERVICE_HOST": "10.96.0.13",
    "LIPSERVICE_REDIS_PORT": "tcp://10.96.0.13:6379",
    "LIPSERVICE_REDIS_PORT_6379_TCP": "tcp://10.96.0.13:6379",
}


def test_serve_starts_beside_service_link_variables():
    grpc_port = free_port()
    env = {
        **os.environ,
        **SERVICE_LINKS,
        "LIPSERVICE_RECEIVER__GRPC__ENDPOINT": f"127.0.0.1:{grpc_port}",
        "LIPSERVICE_TELEMETRY__LOG_LEVEL": "debug",
    }
    args = ["serve", "--exporter", "debug", "--http-endpoint", "", "--metrics-endpoint", ""]
    args += ["--set", "control.listen=127.0.0.1:0", "--set", "analysis.embedded=false"]
    process = subprocess.Popen(
        [sys.executable, "-m", "lipservice_otel", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()
            lines.append(line)
            if "lipservice-otel serving" in line:
                break
        assert process.poll() is None, "".join(lines) + process.stderr.read()
        assert f"127.0.0.1:{grpc_port}" in lines[-1], "the real LIPSERVICE_ setting was read"
        ignored = "".join(line for line in lines if "ignoring LIPSERVICE_" in line)
        assert all(f"ignoring {name}:" in ignored for name in SERVICE_LINKS), "".join(lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stderr.close()
