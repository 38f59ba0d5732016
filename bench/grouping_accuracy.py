"""Grouping accuracy of inline signatures, of signatures after pattern merging, and of Drain3.

For every system directory holding ``*_2k.log_structured_corrected.csv`` (or, failing that,
``*_2k.log_structured.csv``) this groups the ``Content`` column three ways:

1. inline: by ``lipservice_otel.text.signature.template_of_text``, as a receiver does per record;
2. merged: the same templates after ``lipservice_otel.analysis.patterns.merge_by_service``
   with its default ``MergeConfig``, each system being one service, as the analysis loop
   does;
3. Drain3: by the cluster id of a ``drain3.TemplateMiner`` with its default configuration,
   fed the messages in file order.

With ``--leave-one-out`` it also reports, per system, the merged GA with the ``MergeConfig``
thresholds chosen without that system: every config of ``GRID`` is scored on the other
systems, the best mean wins (ties: the higher worst system, then the config nearest
the defaults, ``_prior``), and that config is measured on the held-out system. Those figures, not
the all-in ones, say what the merging does on logs it was never tuned for.

It reports each grouping's accuracy (GA) against the ``EventId`` ground truth, as defined by
Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP 2019: a message is
correctly grouped iff the set of messages sharing its predicted group equals the set sharing
its ground-truth event; GA is the share of correctly grouped messages.

The table goes to stdout and the numbers to ``bench/results/grouping_accuracy.json``.

Usage (from the repository root, with the `bench` extra installed, as `make test` does)::

    python bench/grouping_accuracy.py --loghub ../shared/loghub
    python bench/grouping_accuracy.py --loghub ../shared/loghub --leave-one-out

Data: Loghub, used read-only under its research licence. Cite: Jieming Zhu, Shilin He, Pinjia
He, Jinyang Liu, Michael R. Lyu, "Loghub: A Large Collection of System Log Datasets for
AI-driven Log Analytics", ISSRE 2023; and Zhihan Jiang et al., "A Large-scale Evaluation for
Log Parsing Techniques: How Far are We?", ISSTA 2024 (corrected ground truth).
"""

import argparse
import itertools
import json
import platform
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from loghub import find_samples, grouping_accuracy, messages_and_events, new_drain3_miner

from lipservice_otel.analysis.patterns import MergeConfig, merge_by_service
from lipservice_otel.text.signature import pattern_id, template_of_text

RESULTS = Path(__file__).resolve().parent / "results" / "grouping_accuracy.json"

# The thresholds leave-one-out searches, each over values that make sense for any log; eps
# stays at its default (from 1 - min_token_overlap up it does not separate anything more).
# min_covering_share 0 is the mask covering whatever the records say.
GRID = {
    "min_token_overlap": (0.5, 0.6, 0.7),
    "max_differing_positions": (1, 2, 3),
    "min_distinct_values": (3, 4, 5, 6),
    "min_spread_values": (4, 5, 6, 8, 10, 12, 16),
    "min_covering_share": (0.0, 0.02, 0.05, 0.1),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", type=Path, default=Path("../shared/loghub"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--leave-one-out",
        action="store_true",
        help="also choose the merge thresholds on all systems but one and measure on that one",
    )
    args = parser.parse_args(argv)

    samples = find_samples(args.loghub)
    if not samples:
        print(f"no *_2k.log_structured*.csv under {args.loghub}", file=sys.stderr)
        return 2

    config = MergeConfig()
    systems = [prepare(system, path) for system, path in samples]
    rows = [measure(system, config) for system in systems]
    report = {
        "loghub": str(args.loghub),
        "python": platform.python_version(),
        "merge_config": asdict(config),
    }
    if args.leave_one_out:
        report["grid"] = GRID
        report["selected_on_all"] = asdict(select(systems, grid_configs()))
        for row, chosen in zip(rows, leave_one_out(systems), strict=True):
            row["loo_merged_ga"] = round(merged_ga(systems[rows.index(row)], chosen), 4)
            row["loo_merge_config"] = asdict(chosen)
    print_table(rows)
    if args.leave_one_out:
        print_choices(rows, report["selected_on_all"])
    report["systems"] = rows
    report["mean"] = mean_row(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


@dataclass(frozen=True, slots=True)
class System:
    name: str
    path: Path
    bodies: list[str]
    truth: list[str]
    inline: list[str]  # the inline pattern id of each body
    templates: dict[str, str]  # inline pattern id -> template
    counts: Counter  # inline pattern id -> messages, as the analysis sees each pattern's rate


def prepare(name: str, path: Path) -> System:
    bodies, truth = messages_and_events(path)
    inline = [pattern_id(name, template_of_text(body)) for body in bodies]
    templates = {pid: template_of_text(body) for pid, body in zip(inline, bodies, strict=True)}
    return System(name, path, bodies, truth, inline, templates, Counter(inline))


def merged_ids(system: System, config: MergeConfig) -> list[str]:
    aliases, _ = merge_by_service(
        ((pid, system.name, template) for pid, template in system.templates.items()),
        config,
        system.counts,
    )
    return [aliases.get(pid, pid) for pid in system.inline]


def merged_ga(system: System, config: MergeConfig) -> float:
    return grouping_accuracy(system.truth, merged_ids(system, config))


def measure(system: System, config: MergeConfig) -> dict:
    merged = merged_ids(system, config)
    miner = new_drain3_miner()
    drain = [miner.add_log_message(body)["cluster_id"] for body in system.bodies]
    return {
        "system": system.name,
        "file": system.path.name,
        "messages": len(system.bodies),
        "events": len(set(system.truth)),
        "inline_ga": round(grouping_accuracy(system.truth, system.inline), 4),
        "merged_ga": round(grouping_accuracy(system.truth, merged), 4),
        "drain3_ga": round(grouping_accuracy(system.truth, drain), 4),
        "inline_groups": len(set(system.inline)),
        "merged_groups": len(set(merged)),
        "drain3_groups": len(set(drain)),
    }


def grid_configs() -> list[MergeConfig]:
    return [
        MergeConfig(**dict(zip(GRID, values, strict=True)))
        for values in itertools.product(*GRID.values())
    ]


def _prior(config: MergeConfig) -> tuple:
    # Where the scores cannot tell configs apart the data has no say: keep the defaults (each
    # argued from a log shape in docs/analysis.md), or move as few thresholds, as few grid
    # steps, as the tie allows.
    default = MergeConfig()
    steps = [
        abs(values.index(getattr(config, name)) - values.index(getattr(default, name)))
        if getattr(default, name) in values
        else len(values)
        for name, values in GRID.items()
    ]
    return (-sum(1 for step in steps if step), -sum(steps))


def select(systems: Sequence[System], configs: Sequence[MergeConfig]) -> MergeConfig:
    """The config with the best mean GA over ``systems`` (ties: best worst system, caution)."""

    def score(config: MergeConfig) -> tuple:
        scores = [merged_ga(system, config) for system in systems]
        return (round(sum(scores) / len(scores), 6), round(min(scores), 6), _prior(config))

    return max(configs, key=score)


def leave_one_out(systems: Sequence[System]) -> list[MergeConfig]:
    """For each system, the config ``select`` chooses on all the others."""
    configs = grid_configs()
    cache: dict[tuple[str, MergeConfig], float] = {}
    # merged_ga per (system, config) once: each system is in the training set of seven runs.
    for system in systems:
        for config in configs:
            cache[system.name, config] = merged_ga(system, config)
    chosen = []
    for held_out in systems:
        training = [s for s in systems if s is not held_out]

        def score(config: MergeConfig, training=training) -> tuple:
            scores = [cache[s.name, config] for s in training]
            return (round(sum(scores) / len(scores), 6), round(min(scores), 6), _prior(config))

        chosen.append(max(configs, key=score))
    return chosen


def mean_row(rows: list[dict]) -> dict:
    keys = [k for k in ("inline_ga", "merged_ga", "loo_merged_ga", "drain3_ga") if k in rows[0]]
    return {key: round(sum(row[key] for row in rows) / len(rows), 4) for key in keys}


def print_table(rows: list[dict]) -> None:
    loo = "loo_merged_ga" in rows[0]
    header = (
        f"{'system':<10} {'GA inline':>9} {'GA merged':>9} "
        + (f"{'GA LOO':>9} " if loo else "")
        + f"{'GA drain3':>9} {'groups inline/merged/drain3':>27} {'events':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        groups = f"{row['inline_groups']}/{row['merged_groups']}/{row['drain3_groups']}"
        print(
            f"{row['system']:<10} {row['inline_ga']:>9.4f} {row['merged_ga']:>9.4f} "
            + (f"{row['loo_merged_ga']:>9.4f} " if loo else "")
            + f"{row['drain3_ga']:>9.4f} {groups:>27} {row['events']:>6}"
        )
    mean = mean_row(rows)
    print("-" * len(header))
    print(
        f"{'mean':<10} {mean['inline_ga']:>9.4f} {mean['merged_ga']:>9.4f} "
        + (f"{mean['loo_merged_ga']:>9.4f} " if loo else "")
        + f"{mean['drain3_ga']:>9.4f}"
    )
    if loo:
        print(
            f"{'min':<10} {'':>9} {min(r['merged_ga'] for r in rows):>9.4f} "
            f"{min(r['loo_merged_ga'] for r in rows):>9.4f}"
        )


def print_choices(rows: list[dict], selected_on_all: dict) -> None:
    names = list(GRID)
    print("\nthresholds chosen without each system (" + ", ".join(names) + "):")
    for row in rows:
        chosen = row["loo_merge_config"]
        print(f"  {row['system']:<10} " + " ".join(f"{chosen[n]:>5}" for n in names))
    print(f"  {'all eight':<10} " + " ".join(f"{selected_on_all[n]:>5}" for n in names))


if __name__ == "__main__":
    sys.exit(main())
