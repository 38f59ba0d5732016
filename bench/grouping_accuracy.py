"""Grouping accuracy of inline signatures, of signatures after pattern merging, and of Drain3.

For every system directory holding ``*_2k.log_structured_corrected.csv`` (or, failing that,
``*_2k.log_structured.csv``) this groups the ``Content`` column three ways:

1. inline: by ``lipservice_otel.text.signature.template_of_text``, as a receiver does per record;
2. merged: the same templates after ``lipservice_otel.analysis.patterns.merge_by_service``
   with its default ``MergeConfig``, each system being one service, as the analysis loop
   does;
3. Drain3: by the cluster id of a ``drain3.TemplateMiner`` with its default configuration,
   fed the messages in file order.

and reports each grouping's accuracy (GA) against the ``EventId`` ground truth, as defined by
Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP 2019: a message is
correctly grouped iff the set of messages sharing its predicted group equals the set sharing
its ground-truth event; GA is the share of correctly grouped messages.

The table goes to stdout and the numbers to ``bench/results/grouping_accuracy.json``.

Usage (from the repository root, with the `bench` extra installed, as `make test` does)::

    python bench/grouping_accuracy.py --loghub ../shared/loghub

Data: Loghub, used read-only under its research licence. Cite: Jieming Zhu, Shilin He, Pinjia
He, Jinyang Liu, Michael R. Lyu, "Loghub: A Large Collection of System Log Datasets for
AI-driven Log Analytics", ISSRE 2023; and Zhihan Jiang et al., "A Large-scale Evaluation for
Log Parsing Techniques: How Far are We?", ISSTA 2024 (corrected ground truth).
"""

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from loghub import find_samples, grouping_accuracy, messages_and_events, new_drain3_miner

from lipservice_otel.analysis.patterns import MergeConfig, merge_by_service
from lipservice_otel.text.signature import pattern_id, template_of_text

RESULTS = Path(__file__).resolve().parent / "results" / "grouping_accuracy.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", type=Path, default=Path("../shared/loghub"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    samples = find_samples(args.loghub)
    if not samples:
        print(f"no *_2k.log_structured*.csv under {args.loghub}", file=sys.stderr)
        return 2

    config = MergeConfig()
    rows = [measure(system, path, config) for system, path in samples]
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "loghub": str(args.loghub),
        "python": platform.python_version(),
        "merge_config": asdict(config),
        "systems": rows,
        "mean": mean_row(rows),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def measure(system: str, path: Path, config: MergeConfig) -> dict:
    bodies, truth = messages_and_events(path)

    inline = [pattern_id(system, template_of_text(body)) for body in bodies]
    templates = {pid: template_of_text(body) for pid, body in zip(inline, bodies, strict=True)}
    aliases, _ = merge_by_service(
        ((pid, system, template) for pid, template in templates.items()), config
    )
    merged = [aliases.get(pid, pid) for pid in inline]

    miner = new_drain3_miner()
    drain = [miner.add_log_message(body)["cluster_id"] for body in bodies]

    return {
        "system": system,
        "file": path.name,
        "messages": len(bodies),
        "events": len(set(truth)),
        "inline_ga": round(grouping_accuracy(truth, inline), 4),
        "merged_ga": round(grouping_accuracy(truth, merged), 4),
        "drain3_ga": round(grouping_accuracy(truth, drain), 4),
        "inline_groups": len(set(inline)),
        "merged_groups": len(set(merged)),
        "drain3_groups": len(set(drain)),
    }


def mean_row(rows: list[dict]) -> dict:
    keys = ("inline_ga", "merged_ga", "drain3_ga")
    return {key: round(sum(row[key] for row in rows) / len(rows), 4) for key in keys}


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'system':<10} {'GA inline':>9} {'GA merged':>9} {'GA drain3':>9} "
        f"{'groups inline/merged/drain3':>27} {'events':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        groups = f"{row['inline_groups']}/{row['merged_groups']}/{row['drain3_groups']}"
        print(
            f"{row['system']:<10} {row['inline_ga']:>9.4f} {row['merged_ga']:>9.4f} "
            f"{row['drain3_ga']:>9.4f} {groups:>27} {row['events']:>6}"
        )
    mean = mean_row(rows)
    print("-" * len(header))
    print(
        f"{'mean':<10} {mean['inline_ga']:>9.4f} {mean['merged_ga']:>9.4f} "
        f"{mean['drain3_ga']:>9.4f}"
    )


if __name__ == "__main__":
    sys.exit(main())
