"""Throughput of the whole pipeline against rotel's plain re-export, same load, same sink.

    python bench/throughput.py [--seconds 10] [--warmup 3] [--senders 2] [--in-flight 4]
                               [--workers 1,2] [--rounds 1] [--implementations compiled,python]
                               [--modes unpinned,pinned]

One counting OTLP/gRPC sink serves the whole run. Each system in turn receives the same load
(sender processes replaying 1000-record requests whose bodies are new on every send, half of
them with a trace id, 2 % errors, a few calls in flight each) and exports to the sink,
uncompressed:

- rotel (the Rust collector bundled by PyPI's `rotel`): receive OTLP/gRPC, batch, re-export;
- `lipservice-otel serve` (default settings, embedded analysis, a policy keeping 25 % of
  INFO): parse, sign, decide, annotate, count, batch, export the ~26 % kept; once per
  `--workers` value (`serve --workers N` for N > 1).

Each `--implementations` entry is a `serve` run with that `sampler.implementation` (the
compiled sampler and its Python twin). `--modes pinned` runs each system on CPU 0 alone
(taskset), the senders and the sink on CPU 1; `unpinned` lets the scheduler place everything.
For lipservice the records the compiled sampler still handed to Python are read from its
/metrics (lipservice_sampler_python_records, by reason) and printed as shares of the records.

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

LOAD_CPUS = "1"  # pinned mode: senders and sink here, the system under test on SYSTEM_CPUS
SYSTEM_CPUS = "0"

Start = Callable[[int, Path, "str | None", "int | None"], AbstractContextManager]


def pinned_sender(cpus: str | None, *args) -> None:
    harness.pin_self(cpus)
    harness.run_sender(*args)


def pinned_sink(cpus: str | None, *args) -> None:
    harness.pin_self(cpus)
    harness.run_sink(*args)


def measure(
    start: Start,
    sink_port: int,
    forwarded,
    args: argparse.Namespace,
    pinned: bool,
) -> dict[str, float]:
    metrics_port = harness.free_port()
    system_cpus, load_cpus = (SYSTEM_CPUS, LOAD_CPUS) if pinned else (None, None)
    with (
        harness.workdir() as workdir,
        start(sink_port, workdir, system_cpus, metrics_port) as (process, port),
    ):
        sent, refused = mp.Value("q", 0), mp.Value("q", 0)
        stop_at = time.time() + args.warmup + args.seconds
        senders = [
            mp.Process(
                target=pinned_sender,
                args=(
                    load_cpus,
                    f"127.0.0.1:{port}",
                    stop_at,
                    args.in_flight,
                    seed + 1,
                    sent,
                    refused,
                ),
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
        to_python = python_shares(metrics_port)
    accepted, refused_n, sunk, cpu = (b - a for a, b in zip(begin, end, strict=True))
    return {
        **to_python,
        "records_per_second": round(accepted / elapsed),
        "refused_per_second": round(refused_n / elapsed),
        "cpu_us_per_record": round(cpu / accepted * 1e6, 2) if accepted else 0.0,
        "cpu_cores_used": round(cpu / elapsed, 2),
        "forwarded_share": round(sunk / accepted, 3) if accepted else 0.0,
    }


def python_shares(metrics_port: int) -> dict[str, float]:
    """lipservice only: shares of accepted records the compiled sampler handed to Python."""
    try:
        samples = harness.scrape(metrics_port)
    except OSError:
        return {}  # rotel: no such endpoint
    accepted = samples.get('lipservice_receiver_accepted_records_total{transport="grpc"}', 0.0)
    shares = {}
    for reason in ("request", "record"):
        n = samples.get(f'lipservice_sampler_python_records_total{{reason="{reason}"}}', 0.0)
        shares[f"to_python_{reason}"] = round(n / accepted, 4) if accepted else 0.0
    return shares


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="load before measuring")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--in-flight", type=int, default=4, help="calls outstanding per sender")
    parser.add_argument("--workers", default="1", help="comma-separated serve --workers values")
    parser.add_argument("--rounds", type=int, default=1, help="alternations; median kept")
    parser.add_argument(
        "--implementations",
        default="compiled,python",
        help="comma-separated sampler.implementation values to run serve with",
    )
    parser.add_argument(
        "--modes", default="unpinned,pinned", help="unpinned and/or pinned (taskset, see above)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a git worktree of an older commit, with its generated "
        "lipservice_otel/_proto copied in) to run as system 'lipservice baseline'",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    systems: dict[str, Start] = {
        "rotel": lambda port, wd, cpus, _: harness.rotel_collector(port, wd, cpus)
    }
    if args.baseline:
        systems["lipservice baseline"] = lambda port, wd, cpus, metrics: harness.lipservice(
            port, wd, root=args.baseline.resolve(), cpus=cpus, metrics_port=metrics
        )
    for implementation in args.implementations.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            extra = ("--set", f"sampler.implementation={implementation}")
            extra += ("--workers", str(workers)) if workers > 1 else ()
            name = f"lipservice {implementation}" + (f" --workers {workers}" if workers > 1 else "")
            systems[name] = lambda port, wd, cpus, metrics, extra=extra: harness.lipservice(
                port, wd, *extra, cpus=cpus, metrics_port=metrics
            )

    results: dict[str, dict[str, dict[str, float]]] = {}
    all_rounds: dict[str, dict[str, list[float]]] = {}
    for mode in args.modes.split(","):
        pinned = mode == "pinned"
        forwarded, ready = mp.Value("q", 0), mp.Event()
        sink_port = harness.free_port()
        sink = mp.Process(
            target=pinned_sink,
            args=(LOAD_CPUS if pinned else None, sink_port, forwarded, ready),
            daemon=True,
        )
        sink.start()
        ready.wait(30)
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
        try:
            for _ in range(args.rounds):
                for name, start in systems.items():
                    rounds[name].append(measure(start, sink_port, forwarded, args, pinned))
        finally:
            sink.terminate()
        medians = {
            name: sorted(runs, key=lambda r: r["records_per_second"])[len(runs) // 2]
            for name, runs in rounds.items()
        }
        peer = medians["rotel"]
        for result in medians.values():
            result["ratio_to_rotel"] = (
                round(result["records_per_second"] / peer["records_per_second"], 2)
                if peer["records_per_second"]
                else 0.0
            )
            result["cpu_ratio_to_rotel"] = (
                round(result["cpu_us_per_record"] / peer["cpu_us_per_record"], 2)
                if peer["cpu_us_per_record"]
                else 0.0
            )
        results[mode] = medians
        all_rounds[mode] = {
            n: [r["records_per_second"] for r in runs] for n, runs in rounds.items()
        }
        print(
            f"\n{mode}"
            + (f" (systems on CPU {SYSTEM_CPUS}, load on {LOAD_CPUS})" if pinned else "")
        )
        harness.print_table(
            [
                "system",
                "records/s",
                "vs rotel",
                "CPU µs/record",
                "CPU vs rotel",
                "CPU cores",
                "forwarded",
                "to Python (request/record)",
            ],
            [
                [
                    name,
                    f"{r['records_per_second']:,}",
                    f"{r['ratio_to_rotel']:.2f}x",
                    r["cpu_us_per_record"],
                    f"{r['cpu_ratio_to_rotel']:.2f}x",
                    r["cpu_cores_used"],
                    f"{r['forwarded_share']:.0%}",
                    " / ".join(
                        f"{r[f'to_python_{reason}']:.2%}" for reason in ("request", "record")
                    )
                    if "to_python_request" in r
                    else "",
                ]
                for name, r in medians.items()
            ],
        )
    report = {
        "modes": results,
        "rounds": all_rounds,
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
