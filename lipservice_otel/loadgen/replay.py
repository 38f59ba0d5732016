"""Records read from a file: one log line per record, or a Loghub structured CSV.

A Loghub `*_structured.csv` (a header with `Content`, most with `Level`, often `Component`
and the ground-truth `EventId`) gives each record its level as severity and keeps the
component and event id as attributes, so a sampling-quality bench can compare what was kept
with the true templates. A plain file is sent line by line with no severity, as a filelog
receiver without a parser would, leaving the receiver to infer it.

The file is read lazily and shared by every worker (each takes the next batch under a lock),
so a large file is not held in memory. With `loop`, it starts again at the end.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lipservice_otel.loadgen.records import LogSpec
from lipservice_otel.text.severity import severity_from_text

ATTR_COMPONENT = "loghub.component"
ATTR_EVENT_ID = "loghub.event_id"


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def is_structured_csv(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    return "Content" in header


def read_lines(path: Path) -> Iterator[LogSpec]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line:
                yield LogSpec(line)


def read_structured_csv(path: Path) -> Iterator[LogSpec]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            level = (row.get("Level") or "").strip()
            attributes = tuple(
                _attribute(key, row[column])
                for column, key in (("Component", ATTR_COMPONENT), ("EventId", ATTR_EVENT_ID))
                if row.get(column)
            )
            yield LogSpec(
                row["Content"],
                severity_from_text(level) if level else 0,
                level,
                attributes=attributes,
            )


def read_records(path: Path) -> Iterator[LogSpec]:
    return read_structured_csv(path) if is_structured_csv(path) else read_lines(path)


class ReplaySource:
    def __init__(self, path: Path, loop: bool) -> None:
        self._path = path
        self._loop = loop
        self._records = read_records(path)
        self._lock = threading.Lock()

    def batch(self, n: int, progress: float) -> list[LogSpec]:
        with self._lock:
            found = list(islice(self._records, n))
            if len(found) < n and self._loop:
                self._records = read_records(self._path)
                found.extend(islice(self._records, n - len(found)))
            return found
