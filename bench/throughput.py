"""Throughput of the whole pipeline against rotel's plain re-export, same load, same sink.

    python bench/throughput.py [--seconds 10] [--warmup 3] [--senders 2] [--in-flight 4]
                               [--workers 1,2] [--rounds 1]

One counting OTLP/gRPC sink serves the whole run. Each system in turn receives the same load
(sender processes replaying 1000-record requests whose bodies are new on every send, half of
them with a trace id, 2 % errors, a few calls in flight each) and exports to the sink,
uncompressed:

- rotel (the Rust collector bundled by PyPI's `rotel`): receive OTLP/gRPC, batch, re-export;
- `lipservice-otel serve` (default settings, embedded analysis, a policy keeping 25 % of
  INFO): parse, sign, decide, annotate, count, batch, export the ~26 % kept; once per
  `--workers` value (`serve --workers N` for N > 1).

After a warm-up, a steady window is measured: records/s answered with success, CPU
microseconds per record of the system's processes, the share forwarded to the sink, and the
ratio to rotel's rate. With `--rounds` the systems alternate and the median round is kept.
The senders and the sink share the machine's cores with the system under test: the ratio is
the result, not the absolute rate. Prints a Markdown table and writes
bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import harness


def measure(
    start: Callable[[int, Path], AbstractContextManager],
    sink_port: int,
    forwarded,
    args: argparse.Namespace,
) -> dict[str, float]:
    with harness.workdir() as workdir, start(sink_port, workdir) as (process, port):
        sent, refused = mp.Value("q", 0), mp.Value("q", 0)
        stop_at = time.time() + args.warmup + args.seconds
        senders = [
            mp.Process(
                target=harness.run_sender,
                args=(f"127.0.0.1:{port}", stop_at, args.in_flight, seed + 1, sent, refused),
            )
            for seed in range(args.senders)
        ]
        for sender in senders:
            sender.start()
        time.sleep(args.warmup)
        begin = (sent.value, refused.value, forwarded.value, harness.cpu_seconds(process.pid))
        started = time.monotonic()
        time.sleep(args.seconds)
        end = (sent.value, refused.value, forwarded.value, harness.cpu_seconds(process.pid))
        elapsed = time.monotonic() - started
        for sender in senders:
            sender.join()
    accepted, refused_n, sunk, cpu = (b - a for a, b in zip(begin, end, strict=True))
    return {
        "records_per_second": round(accepted / elapsed),
        "refused_per_second": round(refused_n / elapsed),
        "cpu_us_per_record": round(cpu / accepted * 1e6, 2) if accepted else 0.0,
        "cpu_cores_used": round(cpu / elapsed, 2),
        "forwarded_share": round(sunk / accepted, 3) if accepted else 0.0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="load before measuring")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--in-flight", type=int, default=4, help="calls outstanding per sender")
    parser.add_argument("--workers", default="1", help="comma-separated serve --workers values")
    parser.add_argument("--rounds", type=int, default=1, help="alternations; median kept")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a git worktree of an older commit, with its generated "
        "lipservice_otel/_proto copied in) to run as system 'lipservice baseline'",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    systems: dict[str, Callable[[int, Path], AbstractContextManager]] = {
        "rotel": harness.rotel_collector
    }
    if args.baseline:
        systems["lipservice baseline"] = lambda port, wd: harness.lipservice(
            port, wd, root=args.baseline.resolve()
        )
    for workers in (int(w) for w in args.workers.split(",")):
        extra = ("--workers", str(workers)) if workers > 1 else ()
        name = "lipservice" + (f" --workers {workers}" if workers > 1 else "")
        systems[name] = lambda port, wd, extra=extra: harness.lipservice(port, wd, *extra)

    forwarded, ready = mp.Value("q", 0), mp.Event()
    sink_port = harness.free_port()
    sink = mp.Process(target=harness.run_sink, args=(sink_port, forwarded, ready), daemon=True)
    sink.start()
    ready.wait(30)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    try:
        for _ in range(args.rounds):
            for name, start in systems.items():
                rounds[name].append(measure(start, sink_port, forwarded, args))
    finally:
        sink.terminate()

    results = {
        name: sorted(runs, key=lambda r: r["records_per_second"])[len(runs) // 2]
        for name, runs in rounds.items()
    }
    peer = results["rotel"]["records_per_second"]
    for result in results.values():
        result["ratio_to_rotel"] = round(result["records_per_second"] / peer, 2) if peer else 0.0
    harness.print_table(
        ["system", "records/s", "CPU µs/record", "CPU cores", "forwarded", "vs rotel"],
        [
            [
                name,
                f"{r['records_per_second']:,}",
                r["cpu_us_per_record"],
                r["cpu_cores_used"],
                f"{r['forwarded_share']:.0%}",
                f"{r['ratio_to_rotel']:.2f}x",
            ]
            for name, r in results.items()
        ],
    )
    report = {
        "systems": results,
        "rounds": {name: [r["records_per_second"] for r in runs] for name, runs in rounds.items()},
        "load": {
            "senders": args.senders,
            "in_flight": args.in_flight,
            "records_per_request": harness.RECORDS_PER_REQUEST,
            "seconds": args.seconds,
            "warmup": args.warmup,
        },
        "machine": harness.machine(),
    }
    print(f"wrote {harness.write_results('throughput', report, args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
