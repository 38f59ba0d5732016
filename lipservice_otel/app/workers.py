"""`serve --workers N`: N receiver processes on the same OTLP ports, one analysis.

One Python process samples on one core. With N workers:

1. The parent runs the analysis loop and its control plane, as `analyze` does (unless the
   settings follow a remote one with `control.connect`, or turn analysis off), and a second
   listener for its children on a Unix socket in a directory only this user can enter: the
   children need neither the tokens nor a certificate naming 127.0.0.1 to reach it.
2. It starts N children, each `serve` with the same arguments plus: `--control-plane` at the
   parent's socket, SO_REUSEPORT on both receiver ports (the kernel spreads connections over them),
   /metrics on the configured port + the child's index, and a journal directory of its own.
3. Every child reports its per-pattern counts to the one analysis loop, which merges them as
   it merges any receivers' and streams the same policy back to all of them.
4. SIGTERM or SIGINT is passed to the children; once they have drained their queues the
   analysis stops. A child that exits on its own stops the group (exit 1), so whatever
   restarts the process restarts it whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence

from lipservice_otel.app.service import Analyzer, configured_policy, default_receiver_id
from lipservice_otel.control.config import UNIX_PREFIX
from lipservice_otel.settings import Settings

log = logging.getLogger(__name__)

EXIT_WORKER_FAILED = 1


def worker_arguments(settings: Settings, index: int, control_plane: str | None) -> list[str]:
    """What child `index` adds to the parent's `serve` arguments (later flags win)."""
    args = ["--workers", "1"]
    args += ["--set", "receiver.grpc.reuse_port=true", "--set", "receiver.http.reuse_port=true"]
    if control_plane:
        args += ["--control-plane", control_plane]
    metrics = settings.telemetry.metrics_endpoint
    host, _, port = metrics.rpartition(":")
    if metrics and int(port):
        # One /metrics per child: a shared port would answer each scrape from a random one.
        args += ["--set", f"telemetry.metrics_endpoint={host}:{int(port) + index}"]
    journal = settings.exporter.queue.persistent.directory
    if journal:
        args += ["--set", f"exporter.queue.persistent.directory={journal}/worker-{index}"]
    return args


async def serve_workers(argv: Sequence[str], settings: Settings, workers: int) -> int:
    """Run the group until SIGTERM/SIGINT or a child's exit; returns the exit code."""
    analyzer = None
    control_plane = settings.control.connect
    socket_directory = None
    if control_plane is None and settings.analysis.embedded:
        analyzer = Analyzer(settings, configured_policy(settings), default_receiver_id())
        # mkdtemp makes the directory 0700: the socket's only guard, and enough.
        socket_directory = tempfile.mkdtemp(prefix="lipservice-control-")
        control_plane = f"{UNIX_PREFIX}{socket_directory}/control.sock"
        try:
            await analyzer.start(settings.control.listen)
            await analyzer.listen_locally(control_plane)
        except OSError as exc:
            log.error("cannot start: %s", exc)
            await analyzer.stop()
            shutil.rmtree(socket_directory, ignore_errors=True)
            return EXIT_WORKER_FAILED
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lipservice_otel",
            *argv,
            *worker_arguments(settings, index, control_plane),
        )
        for index in range(workers)
    ]
    log.info(
        "lipservice-otel serving with %d workers (pids %s); analysis %s",
        workers,
        ", ".join(str(child.pid) for child in children),
        "here" if analyzer is not None else control_plane or "off",
    )
    exits = [asyncio.create_task(child.wait()) for child in children]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
    failed = not stop.is_set()
    if failed:
        log.error("a worker exited on its own; stopping the others")
    for child in children:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*exits)
    stopping.cancel()
    if analyzer is not None:
        await analyzer.stop()
        shutil.rmtree(socket_directory, ignore_errors=True)
    return EXIT_WORKER_FAILED if failed or any(codes) else 0
