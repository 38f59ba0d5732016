"""Latency an OTLP sender sees per 1000-record request, at half of lipservice's max load.

    python bench/latency.py [--seconds 15] [--load 0.5]

1. lipservice's max rate is measured as bench/throughput.py does (closed loop, 5 s).
2. Sender processes then send at `--load` x that rate, on a fixed schedule (open loop: a slow
   answer does not slow the schedule, so queueing shows), each 1000-record request timed
   from send to answer. The same schedule is run against rotel re-exporting to the same sink.

The answer comes once the receiver has parsed, sampled and queued the request; forwarding
happens after, in batches (both systems batch for up to 200 ms by default), so this is the
time a hop adds to its sender's export call, not the delay to the backend. Prints a Markdown
table and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import harness
from throughput import measure

SENDERS = 2


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paced(
    start: Callable[[int, Path], AbstractContextManager],
    sink_port: int,
    requests_per_second: float,
    seconds: float,
) -> dict[str, float]:
    with harness.workdir() as workdir, start(sink_port, workdir) as (_, port):
        results = mp.Queue()
        start_at = time.time() + 2.0  # every sender connected before the schedule starts
        senders = [
            mp.Process(
                target=harness.run_paced_sender,
                args=(
                    f"127.0.0.1:{port}",
                    start_at,
                    seconds,
                    requests_per_second / SENDERS,
                    seed + 1,
                    results,
                ),
            )
            for seed in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        latencies, failures = [], 0
        for _ in senders:
            found, failed = results.get()
            latencies.extend(found)
            failures += failed
        for sender in senders:
            sender.join()
    ordered = sorted(latencies)
    return {
        "records_per_second": round(requests_per_second * harness.RECORDS_PER_REQUEST),
        "requests": len(ordered),
        "failed": failures,
        "p50_ms": round(quantile(ordered, 0.50) * 1e3, 2),
        "p99_ms": round(quantile(ordered, 0.99) * 1e3, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="paced run length")
    parser.add_argument("--load", type=float, default=0.5, help="share of lipservice's max")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    forwarded, ready = mp.Value("q", 0), mp.Event()
    sink_port = harness.free_port()
    sink = mp.Process(target=harness.run_sink, args=(sink_port, forwarded, ready), daemon=True)
    sink.start()
    ready.wait(30)
    try:
        load = argparse.Namespace(seconds=5.0, warmup=2.0, senders=2, in_flight=4)
        maximum = measure(
            lambda port, wd, cpus, metrics: harness.lipservice(
                port, wd, cpus=cpus, metrics_port=metrics
            ),
            sink_port,
            forwarded,
            load,
            pinned=False,
        )["records_per_second"]
        rate = maximum * args.load / harness.RECORDS_PER_REQUEST
        results = {
            name: paced(start, sink_port, rate, args.seconds)
            for name, start in (
                ("lipservice", harness.lipservice),
                ("rotel", harness.rotel_collector),
            )
        }
    finally:
        sink.terminate()

    print(f"load: {args.load:.0%} of lipservice's max ({maximum:,} records/s)")
    harness.print_table(
        ["system", "records/s", "requests", "p50 ms", "p99 ms", "mean ms", "failed"],
        [
            [
                name,
                f"{r['records_per_second']:,}",
                r["requests"],
                r["p50_ms"],
                r["p99_ms"],
                r["mean_ms"],
                r["failed"],
            ]
            for name, r in results.items()
        ],
    )
    report = {
        "lipservice_max_records_per_second": maximum,
        "load": args.load,
        "records_per_request": harness.RECORDS_PER_REQUEST,
        "systems": results,
        "machine": harness.machine(),
    }
    print(f"wrote {harness.write_results('latency', report, args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
