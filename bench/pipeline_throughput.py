"""Full-pipeline throughput of one `lipservice-otel serve` process.

    python bench/pipeline_throughput.py [--seconds 10] [--senders 2] [--in-flight 4]

Three kinds of process: a counting OTLP/gRPC sink, the receiver under test (`serve`, otlp
exporter to the sink, a policy keeping ~25 % of INFO), and sender processes replaying
pre-serialized 1000-record requests (a realistic mix of templates, with trace ids on half the
records and 2 % errors) with a few calls in flight each. Reports records/s accepted, the
receiver's CPU seconds per million records, and the kept share. Prints a table and writes
bench/results/pipeline_throughput.json. Times are this machine's; compare runs side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

ROOT = Path(__file__).resolve().parent.parent
EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
RECORDS_PER_REQUEST = 1000

TEMPLATES = (
    "GET /api/v1/orders/{n} 200 {n}ms",
    "user {n} logged in from 10.{o}.{o}.{o}",
    "PacketResponder {o} for block blk_{n} terminating",
    "Received block blk_{n} of size {n} from /10.{o}.{o}.{o}",
    "worker-{o} heartbeat ok, queue depth {n}",
    "cache miss for key session:{h}",
    "Connection closed by 10.{o}.{o}.{o} port {n} [preauth]",
    "GC pause {n}ms, heap {n}MB",
    'request_id={h} method=POST path="/checkout" status=201 duration={n}ms',
    "Starting task {n}.{o} in stage {o} (TID {n})",
)


def make_payloads(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(TEMPLATES))]  # Zipf-like
    payloads = []
    for _ in range(count):
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        kv = resource_logs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "bench"
        scope = resource_logs.scope_logs.add()
        for _ in range(RECORDS_PER_REQUEST):
            template = rng.choices(TEMPLATES, weights)[0]
            body = (
                template.replace("{n}", str(rng.randrange(100_000)), 2)
                .replace("{n}", str(rng.randrange(1000)))
                .replace("{o}", str(rng.randrange(256)))
                .replace("{h}", f"{rng.getrandbits(64):016x}")
            )
            record = scope.log_records.add()
            record.body.string_value = body
            error = rng.random() < 0.02
            record.severity_number = 17 if error else 9
            record.severity_text = "ERROR" if error else "INFO"
            record.time_unix_nano = time.time_ns()
            if rng.random() < 0.5:
                record.trace_id = rng.randbytes(16)
                record.span_id = rng.randbytes(8)
            attribute = record.attributes.add()
            attribute.key, attribute.value.string_value = "thread", f"t{rng.randrange(8)}"
        payloads.append(request.SerializeToString())
    return payloads


class CountingSink(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, counter) -> None:
        self._counter = counter

    def Export(self, request, context):
        n = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
        with self._counter.get_lock():
            self._counter.value += n
        return logs_service_pb2.ExportLogsServiceResponse()


def run_sink(port: int, counter, ready) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(CountingSink(counter), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def run_sender(endpoint: str, seconds: float, in_flight: int, seed: int, sent, refused) -> None:
    payloads = make_payloads(16, seed)
    channel = grpc.insecure_channel(endpoint)
    grpc.channel_ready_future(channel).result(timeout=30)
    export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    deadline = time.monotonic() + seconds
    pending: list = []
    n = 0
    while time.monotonic() < deadline:
        while len(pending) < in_flight:
            pending.append(export.future(payloads[n % len(payloads)], timeout=30))
            n += 1
        done = pending.pop(0)
        try:
            done.result()
            with sent.get_lock():
                sent.value += RECORDS_PER_REQUEST
        except grpc.RpcError:
            with refused.get_lock():
                refused.value += RECORDS_PER_REQUEST
    for call in pending:
        try:
            call.result()
            with sent.get_lock():
                sent.value += RECORDS_PER_REQUEST
        except grpc.RpcError:
            with refused.get_lock():
                refused.value += RECORDS_PER_REQUEST


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--output", default=str(ROOT / "bench/results/pipeline_throughput.json"))
    args = parser.parse_args()

    sink_port, receiver_port = free_port(), free_port()
    forwarded = mp.Value("q", 0)
    ready = mp.Event()
    sink = mp.Process(target=run_sink, args=(sink_port, forwarded, ready), daemon=True)
    sink.start()
    ready.wait(30)

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as policy:
        policy.write("severity_rates:\n  info: 0.25\n")
    receiver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lipservice_otel",
            "serve",
            "--grpc-endpoint",
            f"127.0.0.1:{receiver_port}",
            "--exporter",
            "otlp",
            "--otlp-endpoint",
            f"127.0.0.1:{sink_port}",
            "--metrics-endpoint",
            "",
            "--policy",
            policy.name,
        ],
        cwd=ROOT,
    )
    try:
        wait_for_port(receiver_port)
        sent, refused = mp.Value("q", 0), mp.Value("q", 0)
        senders = [
            mp.Process(
                target=run_sender,
                args=(f"127.0.0.1:{receiver_port}", args.seconds, args.in_flight, s, sent, refused),
            )
            for s in range(args.senders)
        ]
        cpu_before = cpu_seconds(receiver.pid)
        started = time.monotonic()
        for process in senders:
            process.start()
        for process in senders:
            process.join()
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(receiver.pid) - cpu_before
        time.sleep(1.0)  # let the last batches reach the sink
    finally:
        receiver.terminate()
        receiver.wait(30)
        sink.terminate()
        os.unlink(policy.name)

    accepted = sent.value
    result = {
        "records_accepted": accepted,
        "records_refused": refused.value,
        "records_forwarded": forwarded.value,
        "seconds": round(elapsed, 2),
        "records_per_second": round(accepted / elapsed),
        "receiver_cpu_seconds_per_million_records": round(cpu_used / accepted * 1e6, 2),
        "receiver_cpu_utilisation": round(cpu_used / elapsed, 2),
        "kept_share": round(forwarded.value / accepted, 3) if accepted else 0.0,
        "senders": args.senders,
        "in_flight": args.in_flight,
        "cpus": os.cpu_count(),
    }
    for key, value in result.items():
        print(f"{key:45} {value}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
