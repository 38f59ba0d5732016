"""The latest results of every benchmark as one Markdown report, for bench/README.md.

    python bench/report.py [--results bench/results]

Reads the JSON files the benchmarks wrote (a missing one is skipped) and prints their tables
under one heading with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path

import harness
import scale


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def throughput(report: dict) -> None:
    load_ = report["load"]
    print(
        f"### Throughput vs rotel\n\n{load_['senders']} sender processes x {load_['in_flight']} "
        f"connections, {load_['records_per_request']}-record requests, "
        f"{load_['seconds']:g} s measured after {load_['warmup']:g} s; pinned: each system on "
        "CPU 0, the load on CPU 1.\n"
    )
    harness.print_table(
        ["mode", "system", "records/s", "vs rotel", "CPU µs/record", "CPU vs rotel", "forwarded"],
        [
            [
                mode,
                name,
                f"{r['records_per_second']:,}",
                f"{r['ratio_to_rotel']:.2f}x",
                r["cpu_us_per_record"],
                f"{r['cpu_ratio_to_rotel']:.2f}x",
                f"{r['forwarded_share']:.0%}",
            ]
            for mode, systems in report["modes"].items()
            for name, r in systems.items()
        ],
    )


def latency(report: dict) -> None:
    print(
        f"### Latency per 1000-record request\n\nAt {report['load']:.0%} of lipservice's max "
        f"({report['lipservice_max_records_per_second']:,} records/s), open loop.\n"
    )
    harness.print_table(
        ["system", "records/s", "requests", "p50 ms", "p99 ms", "mean ms"],
        [
            [
                name,
                f"{r['records_per_second']:,}",
                r["requests"],
                r["p50_ms"],
                r["p99_ms"],
                r["mean_ms"],
            ]
            for name, r in report["systems"].items()
        ],
    )


def memory(report: dict) -> None:
    print(f"### Memory ({report['mode']} mode; target {report['target_mib']} MiB)\n")
    harness.print_table(
        ["scenario", "records", "RSS idle MiB", "RSS after MiB", "peak RSS MiB", "overflow"],
        [
            [
                kind,
                f"{r['records']:,}",
                r["rss_idle_mib"],
                r["rss_settled_mib"],
                r["rss_peak_mib"],
                f"{r['overflow_records']:,}",
            ]
            for kind, r in report["scenarios"].items()
        ],
    )


def signature(speed: dict, accuracy: dict | None) -> None:
    print(
        "### Signature speed and grouping accuracy (Loghub 2k samples)\n\n"
        f"Bodies/s from a cold start, best of {speed['repeat']}; Drain3 {speed['drain3']} "
        "with its default configuration.\n"
    )
    merged = {row["system"]: row["merged_ga"] for row in (accuracy or {}).get("systems", [])}
    harness.print_table(
        ["system", "signature/s", "Drain3/s", "speed", "GA inline", "GA merged", "GA Drain3"],
        [
            [
                row["system"],
                f"{row['inline_bodies_per_s']:,}",
                f"{row['drain3_bodies_per_s']:,}",
                f"{row['speedup']}x",
                f"{row['inline_ga']:.3f}",
                f"{merged[row['system']]:.3f}" if row["system"] in merged else "-",
                f"{row['drain3_ga']:.3f}",
            ]
            for row in speed["systems"]
        ],
    )


def sampling_quality(report: dict) -> None:
    print(
        "### Sampling quality (Loghub through otel-gen --replay, target reduction 80 %)\n\n"
        f"{report['rate']:g} records/s, {report['learn_s']:g} s learning then "
        f"{report['measure_s']:g} s measured; each cell: lipservice / uniform sampling at the "
        "same kept fraction (computed exactly).\n"
    )

    def pair(ours: float | None, even: float | None, digits: str = ".1%") -> str:
        if ours is None:
            return "-"
        return f"{ours:{digits}} / {even:{digits}}"

    rows = []
    for name, r in report["systems"].items():
        ours, even = r["lipservice"], r["uniform"]
        rows.append(
            [
                name,
                f"{r['reduction']:.1%}",
                pair(ours["error_plus_kept"], even["error_plus_kept"]),
                pair(ours["templates_with_example"], even["templates_with_example"]),
                pair(ours["alerts_kept"], even["alerts_kept"]),
                pair(ours["median_relative_error"], even["median_relative_error"], ".3f"),
                pair(ours["p90_relative_error"], even["p90_relative_error"], ".3f"),
            ]
        )
    harness.print_table(
        [
            "system",
            "reduction",
            "ERROR+ kept",
            "templates with an example",
            "alert lines kept",
            "median rel. error",
            "p90 rel. error",
        ],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=harness.RESULTS)
    args = parser.parse_args(argv)
    machine = harness.machine()
    print(
        f"## Results of {datetime.date.today().isoformat()}\n\n"
        f"{machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), "
        f"Python {machine['python']}, {machine['system']}. The load generators and sinks run on "
        "the same CPUs as the system under test.\n"
    )
    sections = (
        ("throughput", throughput),
        ("latency", latency),
        ("memory", memory),
        ("sampling_quality", sampling_quality),
    )
    for name, section in sections:
        report = load(args.results, name)
        if report is not None:
            section(report)
            print()
    speed = load(args.results, "signature")
    if speed is not None:
        signature(speed, load(args.results, "grouping_accuracy"))
    report = load(args.results, "scale")
    if report is not None:
        print()
        scale.print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
