"""Memory of `lipservice-otel serve` under traffic built to grow it: bounded, caps counted.

    python bench/memory.py            # quick: 300k distinct templates, 1M realistic records
    python bench/memory.py --full     # 1M distinct templates, 10M realistic records
    python bench/memory.py --distinct-templates 3000000 --only distinct-templates

Two scenarios, each in a fresh `serve` process with default settings (embedded analysis, a
policy keeping 25 % of INFO, otlp exporter to a counting sink):

- distinct templates: every record's body is a template never seen before (a random word in
  a fixed sentence), the worst case for every structure keyed by template: body and slot
  caches, per-pattern counters, the analysis loop's pattern table and merging;
- realistic: the throughput benchmark's traffic (10 Zipf-weighted templates, values new in
  every record, half the records traced, 2 % errors), which fills the error-context window.

Reported per scenario: resident set size before traffic, after it (and one counting interval
later), the peak (VmHWM), and what the caps left out, read from the process's own /metrics:
the records counted under `other` once the aggregate key cap (`sampler.max_aggregate_keys`)
was reached (`lipservice_aggregate_overflow_records`), the new patterns the analysis left for
a later cycle (`analysis.max_new_patterns_per_cycle`, `lipservice_analysis_deferred_patterns`)
and those it forgot beyond `analysis.max_patterns` (`lipservice_analysis_forgotten_patterns`).
Prints a Markdown table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections.abc import Sequence
from pathlib import Path

import harness

TARGET_MIB = 250
SENDERS = 2
MIB = 1024 * 1024
QUICK = {"distinct-templates": 300_000, "realistic": 1_000_000}
FULL = {"distinct-templates": 1_000_000, "realistic": 10_000_000}
REPORT_INTERVAL_S = 10.0  # sampler.report_interval_s default: counters are handed on this often


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def scenario(kind: str, records: int, sink_port: int) -> dict[str, float]:
    metrics_port = harness.free_port()
    with (
        harness.workdir() as workdir,
        harness.lipservice(
            sink_port, workdir, "--metrics-endpoint", f"127.0.0.1:{metrics_port}"
        ) as (process, port),
    ):
        time.sleep(1.0)
        idle = harness.rss_bytes(process.pid)
        sent, refused = mp.Value("q", 0), mp.Value("q", 0)
        started = time.monotonic()
        senders = [
            mp.Process(
                target=harness.run_sender,
                args=(f"127.0.0.1:{port}", float("inf"), 4, seed + 1, sent, refused),
                kwargs={"kind": kind, "records": records / SENDERS},
            )
            for seed in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        largest = idle
        while any(sender.is_alive() for sender in senders):
            largest = max(largest, harness.rss_bytes(process.pid))
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        after = harness.rss_bytes(process.pid)
        # One more interval: the counters of the last one are handed to the analysis loop and
        # the overflow they counted reaches /metrics.
        time.sleep(REPORT_INTERVAL_S + 1.0)
        settled = harness.rss_bytes(process.pid)
        metrics = harness.scrape(metrics_port)
        peak = peak_rss_bytes(process.pid)
    return {
        "records": sent.value,
        "refused": refused.value,
        "seconds": round(elapsed, 1),
        "rss_idle_mib": round(idle / MIB, 1),
        "rss_after_mib": round(after / MIB, 1),
        "rss_settled_mib": round(settled / MIB, 1),
        "rss_peak_mib": round(max(peak, largest) / MIB, 1),
        "overflow_records": int(metrics.get("lipservice_aggregate_overflow_records_total", 0)),
        "deferred_patterns": int(metrics.get("lipservice_analysis_deferred_patterns_total", 0)),
        "forgotten_patterns": int(
            metrics.get('lipservice_analysis_forgotten_patterns_total{reason="max_patterns"}', 0)
        ),
        "patterns_distinct_last_interval": int(metrics.get("lipservice_patterns_distinct", 0)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1M templates and 10M records")
    parser.add_argument(
        "--distinct-templates",
        type=int,
        help="records (each a template of its own) in that scenario: a longer flood fills the "
        "analysis to analysis.max_patterns, which 1M in ~20 s does not",
    )
    parser.add_argument("--only", choices=sorted(QUICK), help="run this scenario alone")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    sizes = dict(FULL if args.full else QUICK)
    if args.distinct_templates:
        sizes["distinct-templates"] = args.distinct_templates
    if args.only:
        sizes = {args.only: sizes[args.only]}

    forwarded, ready = mp.Value("q", 0), mp.Event()
    sink_port = harness.free_port()
    sink = mp.Process(target=harness.run_sink, args=(sink_port, forwarded, ready), daemon=True)
    sink.start()
    ready.wait(30)
    try:
        results = {kind: scenario(kind, records, sink_port) for kind, records in sizes.items()}
    finally:
        sink.terminate()

    harness.print_table(
        [
            "scenario",
            "records",
            "RSS idle MiB",
            "RSS after MiB",
            "peak MiB",
            "overflow records",
            "patterns deferred",
            "patterns forgotten",
        ],
        [
            [
                kind,
                f"{r['records']:,}",
                r["rss_idle_mib"],
                r["rss_settled_mib"],
                r["rss_peak_mib"],
                f"{r['overflow_records']:,}",
                f"{r['deferred_patterns']:,}",
                f"{r['forgotten_patterns']:,}",
            ]
            for kind, r in results.items()
        ],
    )
    worst = max(r["rss_peak_mib"] for r in results.values())
    verdict = "within" if worst <= TARGET_MIB else "OVER"
    print(f"peak {worst} MiB: {verdict} the {TARGET_MIB} MiB target")
    report = {
        "mode": "full" if args.full else "quick",
        "sizes": sizes,
        "target_mib": TARGET_MIB,
        "scenarios": results,
        "machine": harness.machine(),
    }
    print(f"wrote {harness.write_results('memory', report, args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
