"""Workers: each builds batches from its source, paces them and sends them on its own
connection, until its records are sent, the duration is over, the file ends, or `stop` is set.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import TextIO

from lipservice_otel.loadgen.config import GenConfig
from lipservice_otel.loadgen.pacing import Pacer, paced_batch_size
from lipservice_otel.loadgen.profiles import INCIDENT_SCRIPT, Source, build_source
from lipservice_otel.loadgen.records import LogSpec, encode_request, key_values, resource_of
from lipservice_otel.loadgen.replay import ReplaySource
from lipservice_otel.loadgen.report import Report, WorkerStats, build_report, progress_line
from lipservice_otel.loadgen.transport import GrpcTransport, HttpTransport, Transport

PROGRESS_INTERVAL_S = 1.0
PROGRESS_WIDTH = 100


def build_transport(config: GenConfig) -> Transport:
    if config.http:
        return HttpTransport(
            config.target(), config.insecure, config.http_path, config.headers, config.timeout_s
        )
    return GrpcTransport(config.target(), config.insecure, config.headers, config.timeout_s)


def _sources(config: GenConfig) -> list[Source]:
    if config.replay is not None:
        # One reader for all workers; with a duration the file is replayed until it ends.
        shared = ReplaySource(Path(config.replay), loop=config.duration_s > 0)
        return [shared] * config.workers
    fixed = LogSpec(
        config.body,
        config.severity_number,
        config.severity_text,
        bytes.fromhex(config.trace_id),
        bytes.fromhex(config.span_id),
    )
    return [build_source(config, worker, fixed) for worker in range(config.workers)]


def _scripted_events(config: GenConfig) -> list[dict[str, object]]:
    if config.profile != "incident":
        return []
    return [
        {
            "name": event.name,
            "start": event.start,
            "end": event.end,
            "share": event.share,
            "severity": event.template.severity[1],
            "body": event.template.text,
        }
        for event in INCIDENT_SCRIPT
    ]


class _Worker:
    def __init__(self, config: GenConfig, source: Source, transport: Transport, start: float):
        self.stats = WorkerStats()
        self._config = config
        self._source = source
        self._transport = transport
        self._start = start
        self._resource = resource_of(config.service, config.resource_attributes)
        self._common = key_values(config.record_attributes)

    def _next_batch(self, batch_size: int, deadline: float) -> list[LogSpec]:
        config = self._config
        if config.bounded_by_count():
            left = config.logs - self.stats.sent
            if left <= 0:
                return []
            return self._source.batch(min(batch_size, left), self.stats.sent / config.logs)
        now = time.monotonic()
        if now >= deadline:
            return []
        progress = (now - self._start) / config.duration_s if math.isfinite(deadline) else 0.0
        return self._source.batch(batch_size, progress)

    def run(self, stop: threading.Event) -> None:
        config = self._config
        deadline = self._start + config.duration_s if config.duration_s else math.inf
        pacer = Pacer(config.rate)
        batch_size = paced_batch_size(config.batch_size, config.rate)
        try:
            while not stop.is_set():
                records = self._next_batch(batch_size, deadline)
                if not records:
                    return
                payload = encode_request(self._resource, records, self._common, time.time_ns())
                pacer.wait(len(records))
                if time.monotonic() >= deadline:
                    return
                began = time.perf_counter()
                result = self._transport.send(payload, len(records))
                self.stats.add(len(records), result, time.perf_counter() - began)
        finally:
            self._transport.close()


def run(
    config: GenConfig,
    stop: threading.Event | None = None,
    progress: TextIO | None = None,
) -> Report:
    """Run the workers to the end and report; `progress` gets a live line every second."""
    config.validate()
    stop = stop or threading.Event()
    start = time.monotonic()
    workers = [
        _Worker(config, source, build_transport(config), start) for source in _sources(config)
    ]
    threads = [
        threading.Thread(target=worker.run, args=(stop,), name=f"otel-gen-{i}", daemon=True)
        for i, worker in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    stats = [worker.stats for worker in workers]
    for thread in threads:
        while thread.is_alive():
            thread.join(PROGRESS_INTERVAL_S)
            if progress is not None:
                line = progress_line(stats, time.monotonic() - start)
                # Padded, so a shorter line fully covers the one it overwrites.
                progress.write("\r" + line.ljust(PROGRESS_WIDTH))
                progress.flush()
    if progress is not None:
        progress.write("\n")
    return build_report(
        stats,
        time.monotonic() - start,
        config.target(),
        "http" if config.http else "grpc",
        "replay" if config.replay else config.profile,
        _scripted_events(config),
    )
