"""`python -m lipservice_otel ...` as a deployment runs it, with its log kept for counting."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from tests.support.ports import free_port


class CliProcess:
    """One lipservice-otel command; its stderr lines are collected as they come."""

    def __init__(self, arguments: list[str], ready: str | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lipservice_otel", *arguments],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready:
            self.wait_for(ready)

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def count(self, needle: str, since: int = 0) -> int:
        return sum(needle in line for line in self.lines[since:])

    def wait_for(self, needle: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged; stderr:\n{self.log()}")

    def wait_for_handler(self, sig: int, timeout_s: float = 30.0) -> None:
        """Until the process catches `sig` (Linux: the SigCgt mask in /proc), so a signal
        sent next reaches its handler, not the default action of a process still starting."""
        deadline = time.monotonic() + timeout_s
        status = Path(f"/proc/{self.process.pid}/status")
        while time.monotonic() < deadline and self.process.poll() is None:
            caught = next(
                (line for line in status.read_text().splitlines() if line.startswith("SigCgt:")),
                "SigCgt: 0",
            )
            if int(caught.split()[1], 16) & (1 << (sig - 1)):
                return
            time.sleep(0.05)
        raise AssertionError(f"signal {sig} not handled within {timeout_s:g} s:\n{self.log()}")

    def signal(self, sig: int, timeout_s: float = 60.0) -> tuple[int, float]:
        """Send `sig`; returns the exit code and how long the process took to exit."""
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        took = time.monotonic() - started
        self._close()
        return code, took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close()

    def _close(self) -> None:
        self._reader.join(5)
        self.process.stderr.close()


def start_analyze(directory: Path, listen: str, settings: dict, wait: bool = True) -> CliProcess:
    """`lipservice-otel analyze --config FILE`, `settings` given as dotted keys; with `wait`,
    once it logs that it is analyzing."""
    config: dict = {"control": {"listen": listen}, "telemetry": {"metrics_endpoint": ""}}
    for dotted, value in settings.items():
        *sections, field = dotted.split(".")
        node = config
        for section in sections:
            node = node.setdefault(section, {})
        node[field] = value
    path = directory / f"analyze-{listen.rsplit(':', 1)[1]}.yaml"
    path.write_text(yaml.safe_dump(config))
    ready = "lipservice-otel analyzing" if wait else None
    return CliProcess(["analyze", "--config", str(path)], ready=ready)


def stop_gracefully(process: CliProcess, timeout_s: float = 30.0) -> tuple[int, float]:
    try:
        return process.signal(signal.SIGTERM, timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"no exit {timeout_s:.0f} s after SIGTERM:\n{process.log()}") from None


def control_stub(endpoint: str) -> tuple[grpc.Channel, control_pb2_grpc.ControlPlaneStub]:
    channel = grpc.insecure_channel(endpoint)
    return channel, control_pb2_grpc.ControlPlaneStub(channel)


def history_versions(stub: control_pb2_grpc.ControlPlaneStub, limit: int = 100) -> list[int]:
    response = stub.History(control_pb2.HistoryRequest(limit=limit), timeout=10)
    return [policy.version for policy in response.versions]


def start_serve(directory: Path, config: dict, name: str = "serve") -> CliProcess:
    """`lipservice-otel serve --config FILE`, once it logs that it is serving."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return CliProcess(["serve", "--config", str(path)], ready="lipservice-otel serving")


def metric(metrics_endpoint: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples carrying `labels`, from a process's /metrics."""
    url = f"http://{metrics_endpoint}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def serve_config(sink_endpoint: str, **sections) -> dict:
    """`serve` on free ports exporting to `sink_endpoint`, every record counted exactly;
    `sections` replace keys of a top-level section."""
    config = {
        "receiver": {
            "grpc": {"endpoint": f"127.0.0.1:{free_port()}"},
            "http": {"endpoint": f"127.0.0.1:{free_port()}"},
        },
        "exporter": {
            "type": "otlp",
            "otlp": {"endpoint": sink_endpoint},
            "queue": {"batch_timeout_s": 0.05},
            "retry": {"initial_interval_s": 0.1, "max_interval_s": 0.5},
        },
        # Keep every record: the count must be exact, not learned down to a sample.
        "analysis": {"embedded": False},
        "telemetry": {"metrics_endpoint": f"127.0.0.1:{free_port()}"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config
