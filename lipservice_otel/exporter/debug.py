"""Prints what would be sent: one summary line per batch, optionally one line per record."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.exporter import Prepared, as_is
from lipservice_otel.exporter.config import DebugExporterConfig
from lipservice_otel.sampling.annotation import ATTR_ADJUSTED_COUNT, ATTR_PATTERN_ID, ATTR_REASON

SUMMARY_PREFIX = "lipservice debug exporter:"


class DebugExporter:
    name = "debug"

    def __init__(self, config: DebugExporterConfig, stream: TextIO | None = None) -> None:
        self._detailed = config.verbosity == "detailed"
        self._stream = stream or sys.stdout

    def prepare(self, payload: bytes, records: int) -> Prepared:
        return as_is(payload, records)

    async def export(self, payload: bytes, records: int) -> int:
        request = ExportLogsServiceRequest.FromString(payload)
        reasons: Counter[str] = Counter()
        represented = 0.0
        lines = []
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    attributes = {kv.key: kv.value for kv in record.attributes}
                    reason = attributes.get(ATTR_REASON)
                    reasons[reason.string_value if reason else "none"] += 1
                    adjusted = attributes.get(ATTR_ADJUSTED_COUNT)
                    represented += adjusted.double_value if adjusted else 1.0
                    if self._detailed:
                        pattern = attributes.get(ATTR_PATTERN_ID)
                        lines.append(
                            f"  [{record.severity_text or record.severity_number}] "
                            f"{record.body.string_value or record.body}"
                            f" pattern={pattern.string_value if pattern else '-'}"
                            f" adjusted_count={adjusted.double_value if adjusted else 1.0:g}"
                        )
        by_reason = " ".join(f"{reason}={n}" for reason, n in sorted(reasons.items()))
        print(
            f"{SUMMARY_PREFIX} batch records={records} represents={represented:g} "
            f"resources={len(request.resource_logs)} kept_by_reason: {by_reason}",
            file=self._stream,
            flush=not self._detailed,
        )
        if lines:
            print("\n".join(lines), file=self._stream, flush=True)
        return 0

    async def close(self) -> None:
        self._stream.flush()
