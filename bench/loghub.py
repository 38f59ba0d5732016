"""Loghub's 2k samples and how a log parser is scored on them.

Data: Loghub, used read-only under its research licence (https://github.com/logpai/loghub).
Each system directory holds ``*_2k.log_structured_corrected.csv`` (the corrected ground truth
of Jiang et al., ISSTA 2024) or, failing that, ``*_2k.log_structured.csv``; its ``Content``
column is the log message and ``EventId`` its true template.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

SAMPLE_GLOBS = ("*_2k.log_structured_corrected.csv", "*_2k.log_structured.csv")


def find_samples(root: Path) -> list[tuple[str, Path]]:
    """(system, sample file) for each system directory under `root` that has one."""
    samples = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        for pattern in SAMPLE_GLOBS:
            found = sorted(directory.glob(pattern))
            if found:
                samples.append((directory.name, found[0]))
                break
    return samples


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return list(csv.DictReader(handle))


def messages_and_events(path: Path) -> tuple[list[str], list[str]]:
    """The sample's log messages and, in the same order, their true template ids."""
    rows = read_rows(path)
    return [row["Content"] for row in rows], [row["EventId"] for row in rows]


def new_drain3_miner() -> TemplateMiner:
    # An explicit default config: TemplateMiner() alone would read a drain3.ini from the
    # working directory if one were there.
    return TemplateMiner(config=TemplateMinerConfig())


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Grouping accuracy (Zhu et al., ICSE-SEIP 2019): the share of messages whose predicted
    group has exactly their true event's members."""
    truth_sizes = Counter(truth)
    members: dict[Hashable, list[Hashable]] = {}
    for event, group in zip(truth, predicted, strict=True):
        members.setdefault(group, []).append(event)
    correct = 0
    for events in members.values():
        # One true event in the group, and none of that event's messages elsewhere.
        if len(set(events)) == 1 and truth_sizes[events[0]] == len(events):
            correct += len(events)
    return correct / len(truth)
