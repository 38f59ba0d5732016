"""Sampling quality on Loghub, replayed through the running receiver, against uniform sampling.

    python bench/sampling_quality.py --loghub ../shared/loghub [--rate 2000] [--learn 12]
                                     [--measure 10]

For each system directory holding ``*_2k.log_structured_corrected.csv`` (or, failing that,
``*_2k.log_structured.csv``), in a fresh `lipservice-otel serve` (embedded analysis,
`analysis.target_reduction` 0.8, no policy file) exporting to a sink in this process:

1. learning pass: `otel-gen logs --replay FILE` at `--rate` records/s for `--learn` seconds,
   the file looped, one service per system;
2. measured pass: the same for `--measure` seconds, each record tagged `bench.pass=measured`.
   otel-gen replays in file order from one worker, so the N records it had acknowledged are
   the looped file's first N: that is the ground truth.

Reported per system, over the measured pass: the reduction achieved; the share of ERROR+
records (by the file's Level column) forwarded; the share of templates (the ground-truth
EventId) with at least one record forwarded; for BGL, the share of alert lines (Label column
not "-") forwarded; the median and 90th percentile over templates of the relative error of
each template's volume rebuilt as the sum of `sampling.adjusted_count` of its forwarded
records. Next to them, uniform probabilistic sampling keeping the same fraction, computed
exactly rather than drawn: it keeps any record with probability p, so ERROR+ and alerts
p, a template of n records has an example with probability 1 - (1-p)^n, and its volume
estimate K/p with K ~ Binomial(n, p) has a known error distribution.

The analysis loop runs every 2 s instead of 10 s so a pass lasts seconds, and keeps a
pattern it sees for the first time whole for 4 s instead of 300 s, so the patterns of the
learning pass's first cycle are not still "new" in the measured pass; everything else is the
default. Prints a Markdown table and writes bench/results/sampling_quality.json.

Data: Loghub, used read-only under its research licence (https://github.com/logpai/loghub).
Cite: Jieming Zhu, Shilin He, Pinjia He, Jinyang Liu, Michael R. Lyu, "Loghub: A Large
Collection of System Log Datasets for AI-driven Log Analytics", ISSRE 2023; and Zhihan Jiang
et al., "A Large-scale Evaluation for Log Parsing Techniques: How Far are We?", ISSTA 2024
(corrected ground truth).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import harness
import numpy as np
from loghub import find_samples, read_rows
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from scipy.stats import binom

from lipservice_otel.text.error_words import is_error_like
from lipservice_otel.text.severity import severity_from_body, severity_from_text

WARN, ERROR = 13, 17
PASS_KEY = "bench.pass"
SETTINGS = (
    *("--set", "analysis.target_reduction=0.8"),
    *("--set", "analysis.interval_s=2"),
    *("--set", "analysis.anomaly_cooldown_s=4"),
)


@dataclass(frozen=True, slots=True)
class Line:
    event_id: str
    content: str
    error: bool
    alert: bool


@dataclass(frozen=True, slots=True)
class Forwarded:
    event_id: str
    content: str
    severity: int
    adjusted_count: float
    reason: str


class Sink:
    """An OTLP/gRPC sink keeping the measured pass's records."""

    def __init__(self) -> None:
        self.records: list[Forwarded] = []
        self._lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler(
            harness.LOGS_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    self._export, request_deserializer=None, response_serializer=None
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _export(self, payload: bytes, context) -> bytes:
        found = []
        for resource_logs in ExportLogsServiceRequest.FromString(payload).resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    values = {kv.key: kv.value for kv in record.attributes}
                    if values.get(PASS_KEY) and values[PASS_KEY].string_value == "measured":
                        found.append(
                            Forwarded(
                                values["loghub.event_id"].string_value,
                                record.body.string_value,
                                record.severity_number,
                                values["sampling.adjusted_count"].double_value,
                                values["lipservice.reason"].string_value,
                            )
                        )
        with self._lock:
            self.records.extend(found)
        return b""

    def take(self) -> list[Forwarded]:
        with self._lock:
            found, self.records = self.records, []
        return found


def read_lines(path: Path) -> list[Line]:
    return [
        Line(
            row["EventId"],
            row["Content"],
            severity_from_text((row.get("Level") or "").strip()) >= ERROR,
            (row.get("Label") or "-") != "-",
        )
        for row in read_rows(path)
    ]


def replay(path: Path, port: int, service: str, rate: float, seconds: float, tag: str) -> int:
    """Records the receiver acknowledged, from otel-gen's report."""
    with harness.workdir() as workdir:
        report = workdir / "report.json"
        subprocess.run(
            [
                *(sys.executable, "-m", "lipservice_otel", "gen", "logs", "--replay", str(path)),
                *("--otlp-endpoint", f"127.0.0.1:{port}", "--otlp-insecure"),
                *("--service", service, "--rate", str(rate), "--duration", f"{seconds}s"),
                *("--telemetry-attributes", f'{PASS_KEY}="{tag}"'),
                *("--report-json", str(report)),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return json.loads(report.read_text())["acknowledged"]


def uniform(p: float, sizes: list[int]) -> dict[str, float]:
    """Uniform sampling at rate p, exactly: expected coverage, and the relative error's
    quantiles over templates (each template one draw of K ~ Binomial(n, p))."""
    errors, weights = [], []
    for n in sizes:
        k = np.arange(n + 1)
        errors.append(np.abs(k / (n * p) - 1.0))
        weights.append(binom.pmf(k, n, p) / len(sizes))
    errors, weights = np.concatenate(errors), np.concatenate(weights)
    order = np.argsort(errors)
    cumulative = np.cumsum(weights[order])

    def quantile(q: float) -> float:
        return float(errors[order][np.searchsorted(cumulative, q)])

    return {
        "templates_with_example": float(np.mean([1 - (1 - p) ** n for n in sizes])),
        "error_plus_kept": p,
        "alerts_kept": p,
        "median_relative_error": quantile(0.5),
        "p90_relative_error": quantile(0.9),
    }


def evaluate(lines: list[Line], sent: int, forwarded: list[Forwarded]) -> dict[str, object]:
    measured = [lines[i % len(lines)] for i in range(sent)]
    volume = Counter(line.event_id for line in measured)
    rebuilt: Counter[str] = Counter()
    for record in forwarded:
        rebuilt[record.event_id] += record.adjusted_count
    relative = sorted(abs(rebuilt[e] - n) / n for e, n in volume.items())
    alert_contents = {line.content for line in lines if line.alert}
    errors_sent = sum(line.error for line in measured)
    alerts_sent = sum(line.alert for line in measured)
    kept_share = len(forwarded) / sent
    kept_contents = Counter(record.content for record in forwarded)
    ours = {
        "templates_with_example": len({r.event_id for r in forwarded} & set(volume)) / len(volume),
        "error_plus_kept": (
            sum(r.severity >= ERROR for r in forwarded) / errors_sent if errors_sent else None
        ),
        "alerts_kept": (
            sum(r.content in alert_contents for r in forwarded) / alerts_sent
            if alerts_sent
            else None
        ),
        "median_relative_error": float(np.quantile(relative, 0.5)),
        "p90_relative_error": float(np.quantile(relative, 0.9)),
    }
    return {
        "sent": sent,
        "forwarded": len(forwarded),
        "reduction": 1 - kept_share,
        "templates": len(volume),
        "error_plus_sent": errors_sent,
        "alerts_sent": alerts_sent,
        "kept_by_reason": dict(Counter(r.reason for r in forwarded).most_common()),
        # Lines the receiver can only judge by their text (what severity inference and the
        # error-like floor see when a record comes without a level).
        "inferred_warn_plus": inferred(measured, kept_contents, severity_from_body_is_warn),
        "error_like": inferred(measured, kept_contents, is_error_like),
        "lipservice": ours,
        "uniform": uniform(kept_share, list(volume.values())),
    }


def severity_from_body_is_warn(content: str) -> bool:
    return severity_from_body(content) >= WARN


def inferred(
    measured: list[Line], kept_contents: Counter[str], judged: Callable[[str], bool]
) -> dict[str, float]:
    """Records and templates whose text `judged` picks, and the share of them forwarded."""
    picked = [line for line in measured if judged(line.content)]
    sent_contents = Counter(line.content for line in picked)
    kept = sum(min(n, kept_contents[content]) for content, n in sent_contents.items())
    return {
        "sent": len(picked),
        "templates": len({line.event_id for line in picked}),
        "kept": kept / len(picked) if picked else None,
    }


def run_system(name: str, path: Path, sink: Sink, args: argparse.Namespace) -> dict[str, object]:
    with (
        harness.workdir() as workdir,
        harness.lipservice(sink.port, workdir, *SETTINGS, policy="{}\n") as (_, port),
    ):
        replay(path, port, name, args.rate, args.learn, "learning")
        time.sleep(1.0)  # the learning pass's last batches reach the sink before the marker
        sink.take()
        sent = replay(path, port, name, args.rate, args.measure, "measured")
        time.sleep(1.5)  # batches flush every 0.2 s
        forwarded = sink.take()
    return evaluate(read_lines(path), sent, forwarded)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", type=Path, default=Path("../shared/loghub"))
    parser.add_argument("--rate", type=float, default=2000.0, help="records/s replayed")
    parser.add_argument("--learn", type=float, default=12.0, help="learning pass, seconds")
    parser.add_argument("--measure", type=float, default=10.0, help="measured pass, seconds")
    parser.add_argument("--systems", nargs="*", help="only these systems (default: all)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    samples = find_samples(args.loghub) if args.loghub.is_dir() else []
    if args.systems:
        samples = [(name, path) for name, path in samples if name in args.systems]
    if not samples:
        wanted = f" for {', '.join(args.systems)}" if args.systems else ""
        print(f"no *_2k.log_structured*.csv under {args.loghub}{wanted}", file=sys.stderr)
        return 2
    sink = Sink()
    sink.server.start()
    try:
        results = {name: run_system(name, path, sink, args) for name, path in samples}
    finally:
        sink.server.stop(0)

    rows = []
    for name, r in results.items():
        ours, even = r["lipservice"], r["uniform"]
        rows.append(
            [
                name,
                f"{r['reduction']:.1%}",
                percent(ours["error_plus_kept"])
                + " / "
                + percent(even["error_plus_kept"] if r["error_plus_sent"] else None),
                f"{percent(ours['templates_with_example'])} / "
                f"{percent(even['templates_with_example'])}",
                percent(ours["alerts_kept"])
                + " / "
                + percent(even["alerts_kept"] if r["alerts_sent"] else None),
                f"{ours['median_relative_error']:.3f} / {even['median_relative_error']:.3f}",
                f"{ours['p90_relative_error']:.3f} / {even['p90_relative_error']:.3f}",
            ]
        )
    print("lipservice / uniform sampling at the same kept fraction")
    harness.print_table(
        [
            "system",
            "reduction",
            "ERROR+ kept",
            "templates with an example",
            "alerts kept",
            "median rel. error",
            "p90 rel. error",
        ],
        rows,
    )
    report = {
        "loghub": str(args.loghub),
        "rate": args.rate,
        "learn_s": args.learn,
        "measure_s": args.measure,
        "settings": [s for s in SETTINGS if s != "--set"],
        "systems": results,
        "machine": harness.machine(),
    }
    print(f"wrote {harness.write_results('sampling_quality', report, args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
