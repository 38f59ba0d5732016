"""How many records/s one core of otel-gen drives, by profile, transport and worker count.

    python bench/otel_gen_throughput.py [--seconds 4]

The receiver is rotel with its blackhole exporter (a Rust OTLP receiver that costs little), on
the other core, so the number is otel-gen's, not the receiver's. otel-gen runs pinned to one
core. Prints a table and writes bench/results/otel_gen_throughput.json. Times are this
machine's; compare runs side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rotel

ROOT = Path(__file__).resolve().parent.parent
ROTEL = Path(rotel.__file__).parent / "rotel-agent"
GENERATOR_CPU, RECEIVER_CPU = 0, 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(cpu: int):
    return lambda: os.sched_setaffinity(0, {cpu})


def start_blackhole(workdir: str) -> tuple[subprocess.Popen, int, int]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "ROTEL_EXPORTER": "blackhole",
        "ROTEL_PID_FILE": f"{workdir}/rotel.pid",
        "ROTEL_LOG_FILE": f"{workdir}/rotel.log",
    }
    process = subprocess.Popen(
        [str(ROTEL), "start"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pinned(RECEIVER_CPU),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", grpc_port)) == 0:
                return process, grpc_port, http_port
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("rotel did not start")


def run_otel_gen(port: int, http: bool, profile: str, workers: int, seconds: float, out: str):
    command = [
        sys.executable, "-m", "lipservice_otel.loadgen.cli", "logs",
        "--otlp-endpoint", f"127.0.0.1:{port}", "--otlp-insecure",
        "--profile", profile, "--workers", str(workers), "--batch-size", "500",
        "--duration", f"{seconds}s", "--report-json", out,
    ] + (["--otlp-http"] if http else [])  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, preexec_fn=pinned(GENERATOR_CPU))
    return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        process, grpc_port, http_port = start_blackhole(workdir)
        try:
            for transport, port in (("grpc", grpc_port), ("http", http_port)):
                for profile in ("fixed", "realistic"):
                    for workers in (1, 2, 4):
                        report = run_otel_gen(
                            port, transport == "http", profile, workers, args.seconds,
                            f"{workdir}/report.json",
                        )  # fmt: skip
                        rows.append(
                            {
                                "transport": transport,
                                "profile": profile,
                                "workers": workers,
                                "records_per_second": round(report["rate_per_s"]),
                                "rejected": report["rejected"],
                                "latency_p99_ms": round(report["latency_p99_ms"], 2),
                            }
                        )
                        print(
                            f"{transport:5} {profile:10} workers={workers}  "
                            f"{rows[-1]['records_per_second']:>9,} records/s  "
                            f"p99 {rows[-1]['latency_p99_ms']} ms"
                        )
        finally:
            process.terminate()
            process.wait(10)
    result = {"otel_gen_cpus": 1, "batch_size": 500, "seconds": args.seconds, "runs": rows}
    out = ROOT / "bench" / "results" / "otel_gen_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
