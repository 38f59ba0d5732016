"""The processes the pipeline benchmarks share: workload, counting sink, senders, peers.

- A workload is a set of pre-serialized 1000-record OTLP requests. Each body has an 8-digit
  slot that senders overwrite with a send counter, so every record a sender sends is new text
  (a body-keyed cache cannot hit forever on replayed bytes) while costing the sender a
  vectorised byte copy, not a re-serialization.
- The sink is an OTLP/gRPC server that counts records; every system under test exports to it.
- Senders replay the workload as fast as answers come back (a fixed number of calls in
  flight), or at a fixed request rate recording each call's latency.
- The systems under test run as subprocesses: `lipservice-otel serve` and rotel (the Rust
  collector PyPI's `rotel` wheel bundles), both receiving and exporting OTLP/gRPC uncompressed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import rotel
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
RECORDS_PER_REQUEST = 1000
ROTEL_BINARY = Path(rotel.__file__).parent / "rotel-agent"

# {u}: the 8-digit slot senders rewrite. {n}, {o}, {h}: values fixed at build time. Two
# templates have no slot: exact repeats ("heartbeat") are common in real logs too.
TEMPLATES = (
    "GET /api/v1/orders/{u} 200 {n}ms",
    "user {u} logged in from 10.{o}.{o}.{o}",
    "PacketResponder {o} for block blk_{u} terminating",
    "Received block blk_{u} of size {n} from /10.{o}.{o}.{o}",
    "worker-{o} heartbeat ok",
    "cache miss for key session:{h}{u}",
    "Connection closed by 10.{o}.{o}.{o} port {u} [preauth]",
    "GC pause {n}ms, heap {u}MB",
    'request_id={h}{u} method=POST path="/checkout" status=201 duration={n}ms',
    "Starting task {u}.{o} in stage {o} (TID {n})",
)
# Stamped with letters, the slot is a word no masking rule touches: every record a template
# of its own, the worst case for everything keyed by template.
DISTINCT_TEMPLATES = (
    "cache entry {u} evicted after {n}ms",
    "feature flag {u} evaluated for tenant {o}",
    "worker {u} joined the pool",
)
WORKLOADS = {"realistic": (TEMPLATES, False), "distinct-templates": (DISTINCT_TEMPLATES, True)}
SLOT = "{u}"
SLOT_WIDTH = 8
_SLOT_POWERS = 10 ** np.arange(SLOT_WIDTH - 1, -1, -1)
_LETTER_OFFSET = ord("a") - ord("0")
# Half the records carry a trace id, in runs of a few consecutive records per trace, as the
# lines one request logs do.
TRACED_SHARE = 0.5
TRACE_RECORDS = 4
# A policy keeping a quarter of INFO: with 2 % errors about 26 % of records are forwarded.
BENCH_POLICY = "severity_rates:\n  info: 0.25\n"


class Workload:
    """Pre-serialized requests and where their body slots are.

    `request(i, stamp)` writes stamp x 1000 + the record's position into the slots of request
    i, so distinct stamps give distinct bodies.
    """

    def __init__(
        self, count: int, seed: int, kind: str = "realistic", error_share: float = 0.02
    ) -> None:
        templates, self._letters = WORKLOADS[kind]
        rng = random.Random(seed)
        weights = [1 / (rank + 1) for rank in range(len(templates))]  # Zipf-like
        self._payloads: list[np.ndarray] = []
        self._slots: list[np.ndarray] = []
        for _ in range(count):
            request = ExportLogsServiceRequest()
            resource_logs = request.resource_logs.add()
            kv = resource_logs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", "bench"
            scope = resource_logs.scope_logs.add()
            bodies = []
            trace_id = b""
            for n in range(RECORDS_PER_REQUEST):
                body = _body(rng, rng.choices(templates, weights)[0])
                bodies.append(body)
                record = scope.log_records.add()
                record.body.string_value = body
                error = rng.random() < error_share
                record.severity_number = 17 if error else 9
                record.severity_text = "ERROR" if error else "INFO"
                record.time_unix_nano = time.time_ns()
                if n % TRACE_RECORDS == 0:
                    trace_id = rng.randbytes(16) if rng.random() < TRACED_SHARE else b""
                if trace_id:
                    record.trace_id = trace_id
                    record.span_id = rng.randbytes(8)
                attribute = record.attributes.add()
                attribute.key, attribute.value.string_value = "thread", f"t{rng.randrange(8)}"
            payload = request.SerializeToString()
            self._payloads.append(np.frombuffer(bytearray(payload), dtype=np.uint8).copy())
            self._slots.append(_slot_indices(payload, bodies))

    def __len__(self) -> int:
        return len(self._payloads)

    def request(self, index: int, stamp: int) -> bytes:
        payload = self._payloads[index % len(self._payloads)]
        slots = self._slots[index % len(self._payloads)]
        values = (stamp * RECORDS_PER_REQUEST + np.arange(len(slots))) % 10**SLOT_WIDTH
        digits = (values[:, None] // _SLOT_POWERS) % 10 + ord("0")
        if self._letters:
            digits += _LETTER_OFFSET
        payload[slots] = digits
        return payload.tobytes()


def _body(rng: random.Random, template: str) -> str:
    body = template.replace(SLOT, "0" * SLOT_WIDTH)
    while "{n}" in body:
        body = body.replace("{n}", str(rng.randrange(100_000)), 1)
    while "{o}" in body:
        body = body.replace("{o}", str(rng.randrange(256)), 1)
    return body.replace("{h}", f"{rng.getrandbits(32):08x}")


def _slot_indices(payload: bytes, bodies: list[str]) -> np.ndarray:
    """Byte indices (records x SLOT_WIDTH) of every body's slot in the serialized payload."""
    # The slot is the body's last run of zeros: no other value renders as SLOT_WIDTH zeros.
    zeros = b"0" * SLOT_WIDTH
    starts, position = [], 0
    for body in bodies:
        encoded = body.encode()
        at = payload.index(encoded, position)
        position = at + len(encoded)
        slot = encoded.rfind(zeros)
        if slot >= 0:
            starts.append(at + slot)
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(SLOT_WIDTH)


def _count_records(payload: bytes) -> int:
    request = ExportLogsServiceRequest.FromString(payload)
    return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)


def run_sink(port: int, counter, ready) -> None:
    """Counting OTLP/gRPC sink (a process target): answers every export with success."""

    def export(payload: bytes, context) -> bytes:
        n = _count_records(payload)
        with counter.get_lock():
            counter.value += n
        return b""

    handler = grpc.method_handlers_generic_handler(
        LOGS_SERVICE,
        {
            "Export": grpc.unary_unary_rpc_method_handler(
                export, request_deserializer=None, response_serializer=None
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 256 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def _exports(endpoint: str, connections: int) -> list:
    """Export callables over `connections` TCP connections of their own.

    Servers sharing a port with SO_REUSEPORT are handed whole connections: a sender needs
    several to spread over them, as many clients would.
    """
    options = [("grpc.use_local_subchannel_pool", 1)]
    exports = []
    for _ in range(connections):
        channel = grpc.insecure_channel(endpoint, options=options)
        grpc.channel_ready_future(channel).result(timeout=30)
        exports.append(
            channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        )
    return exports


def _stamp(seed: int, n: int) -> int:
    # Senders of different seeds stamp disjoint ranges for their first 10^4 requests (10^7
    # records): no two records alike, for the distinct-templates workload.
    return seed * 10**4 + n


def run_sender(
    endpoint: str,
    stop_at: float,
    in_flight: int,
    seed: int,
    sent,
    refused,
    kind: str = "realistic",
    records: float = float("inf"),
) -> None:
    """Closed loop (a process target): keeps `in_flight` calls outstanding, each on a
    connection of its own, until `stop_at` or until `records` have been sent."""
    workload = Workload(8, seed, kind)
    exports = _exports(endpoint, in_flight)
    pending: list = []
    n = 0

    def settle(call) -> None:
        counter = sent
        try:
            call.result()
        except grpc.RpcError:
            counter = refused
        with counter.get_lock():
            counter.value += RECORDS_PER_REQUEST

    while time.time() < stop_at and n * RECORDS_PER_REQUEST < records:
        while len(pending) < in_flight:
            export = exports[n % in_flight]
            pending.append(export.future(workload.request(n, _stamp(seed, n)), timeout=30))
            n += 1
        settle(pending.pop(0))
    for call in pending:
        settle(call)


def run_paced_sender(
    endpoint: str, start_at: float, seconds: float, rate: float, seed: int, results
) -> None:
    """Open loop (a process target): `rate` requests/s; puts each call's seconds in `results`."""
    workload = Workload(8, seed)
    [export] = _exports(endpoint, 1)
    latencies: list[float] = []
    failures = [0]

    def done(call, sent_at: float) -> None:
        if call.exception() is None:
            latencies.append(time.perf_counter() - sent_at)
        else:
            failures[0] += 1

    calls = []
    time.sleep(max(0.0, start_at - time.time()))
    origin = time.perf_counter()
    for n in range(int(seconds * rate)):
        payload = workload.request(n, _stamp(seed, n))
        delay = origin + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent_at = time.perf_counter()
        call = export.future(payload, timeout=30)
        call.add_done_callback(lambda c, at=sent_at: done(c, at))
        calls.append(call)
    for call in calls:
        with contextlib.suppress(grpc.RpcError):
            call.result()
    results.put((latencies, failures[0]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants."""
    total = 0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its live descendants."""
    total = 0
    for member in _process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/statm").read_text().split()
        except OSError:
            continue
        total += int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def pinned(cpus: str | None) -> list[str]:
    """The command prefix running a process on `cpus` only (taskset), or none."""
    return ["taskset", "-c", cpus] if cpus else []


def pin_self(cpus: str | None) -> None:
    """Run this process (a sender or sink) on `cpus` only."""
    if cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})


def scrape(port: int) -> dict[str, float]:
    """A Prometheus text page as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@contextlib.contextmanager
def lipservice(
    sink_port: int,
    workdir: Path,
    *extra: str,
    policy: str = BENCH_POLICY,
    root: Path = ROOT,
    cpus: str | None = None,
    metrics_port: int | None = None,
) -> Iterator[tuple[subprocess.Popen, int]]:
    """`lipservice-otel serve` exporting uncompressed OTLP/gRPC to the sink; (process, port).

    `root`: the checkout whose package runs (another one than this, e.g. a git worktree of an
    older commit, to compare two versions in one run). `cpus`: pinned there (taskset).
    `metrics_port`: serve /metrics there (off otherwise).
    """
    port = free_port()
    policy_file = workdir / "policy.yaml"
    policy_file.write_text(policy)
    metrics = f"127.0.0.1:{metrics_port}" if metrics_port else ""
    args = [
        *pinned(cpus),
        *(sys.executable, "-m", "lipservice_otel", "serve"),
        *("--grpc-endpoint", f"127.0.0.1:{port}", "--http-endpoint", ""),
        *("--exporter", "otlp", "--otlp-endpoint", f"127.0.0.1:{sink_port}"),
        *("--metrics-endpoint", metrics, "--policy", str(policy_file)),
        *("--set", "exporter.otlp.compression=none"),
        *("--set", f"control.listen=127.0.0.1:{free_port()}"),
        # The live page's fixed default port would collide between runs side by side.
        *("--set", "ui.endpoint="),
        *("--set", "telemetry.log_level=warning"),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with _running(args, workdir / "lipservice.log", port, root, env) as process:
        yield process, port


@contextlib.contextmanager
def rotel_collector(
    sink_port: int, workdir: Path, cpus: str | None = None
) -> Iterator[tuple[subprocess.Popen, int]]:
    """rotel receiving OTLP/gRPC and re-exporting it uncompressed to the sink (on `cpus`)."""
    port = free_port()
    args = [
        *pinned(cpus),
        *(str(ROTEL_BINARY), "start"),
        *("--otlp-grpc-endpoint", f"127.0.0.1:{port}"),
        *("--otlp-http-endpoint", f"127.0.0.1:{free_port()}"),
        *("--exporter", "otlp", "--otlp-exporter-endpoint", f"http://127.0.0.1:{sink_port}"),
        *("--otlp-exporter-protocol", "grpc", "--otlp-exporter-compression", "none"),
        *("--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log")),
    ]
    with _running(args, workdir / "rotel.out", port) as process:
        yield process, port


@contextlib.contextmanager
def _running(
    args: list[str], log: Path, port: int, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield process
    except RuntimeError:
        raise RuntimeError(f"{args[0]} did not start:\n{log.read_text()[-2000:]}") from None
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lipservice-bench-") as path:
        yield Path(path)


def machine() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "system": platform.system(),
    }


def write_results(name: str, result: dict, output: Path | None = None) -> Path:
    path = output or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A Markdown table, so it can be pasted into bench/README.md as is."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for number, row in enumerate(cells):
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("| " + " | ".join(padded) + " |")
        if number == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
