"""`otel-gen logs ...`: telemetrygen's flags for logs, plus profiles, replay and a report.

Exit status: 0 when the receiver acknowledged every record, 1 when any was rejected or a
request failed, 2 for a bad flag.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from lipservice_otel.loadgen import config as defaults
from lipservice_otel.loadgen.config import GenConfig, parse_duration, parse_key_value
from lipservice_otel.loadgen.runner import run
from lipservice_otel.validation import ConfigError

EXIT_REJECTED = 1
EXIT_BAD_FLAG = 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-gen", description="OTLP logs load generator (telemetrygen-compatible flags)."
    )
    commands = parser.add_subparsers(dest="signal", required=True)
    logs = commands.add_parser("logs", help="send log records")
    target = logs.add_argument_group("where to send")
    target.add_argument(
        "--otlp-endpoint", default="", help="HOST:PORT (default localhost:4317, :4318 for HTTP)"
    )
    target.add_argument("--otlp-insecure", action="store_true", help="plaintext, no TLS")
    target.add_argument("--otlp-http", action="store_true", help="OTLP/HTTP protobuf, not gRPC")
    target.add_argument("--otlp-http-url-path", default=defaults.DEFAULT_HTTP_PATH)
    target.add_argument(
        "--otlp-header", action="append", default=[], metavar='KEY="VALUE"',
        help="header or gRPC metadata on every request (repeatable)",
    )  # fmt: skip
    target.add_argument("--timeout", default="10s", help="deadline of one request (default 10s)")

    what = logs.add_argument_group("what to send")
    what.add_argument(
        "--profile", choices=defaults.PROFILES, default="fixed",
        help="fixed: --body/--severity-* every time; realistic: Zipf mix of templates, traces, "
        "error bursts, new patterns; incident: a spike at 40-60%% and a new error from 60%%",
    )  # fmt: skip
    what.add_argument(
        "--replay", metavar="FILE",
        help="send a file instead: one line per record, or a Loghub *_structured.csv "
        "(sent once; replayed until --duration ends when one is given)",
    )  # fmt: skip
    what.add_argument("--service", default=defaults.DEFAULT_SERVICE, help="service.name")
    what.add_argument(
        "--otlp-attributes", action="append", default=[], metavar='KEY="VALUE"',
        help="resource attribute (repeatable; true, false, integers and [lists] too)",
    )  # fmt: skip
    what.add_argument(
        "--telemetry-attributes", action="append", default=[], metavar='KEY="VALUE"',
        help="attribute on every record (repeatable)",
    )  # fmt: skip
    what.add_argument("--body", default=defaults.DEFAULT_BODY)
    what.add_argument("--severity-text", default=defaults.DEFAULT_SEVERITY_TEXT)
    what.add_argument("--severity-number", type=int, default=defaults.DEFAULT_SEVERITY_NUMBER)
    what.add_argument("--trace-id", default="", help="32 hex digits")
    what.add_argument("--span-id", default="", help="16 hex digits")
    what.add_argument("--seed", type=int, default=defaults.DEFAULT_SEED, help="profile seed")

    how = logs.add_argument_group("how much")
    how.add_argument(
        "--logs", type=int, default=None,
        help=f"records per worker (default {defaults.DEFAULT_LOGS}; ignored with --duration)",
    )  # fmt: skip
    how.add_argument("--duration", default="0", help="e.g. 30s, 2m, inf (default: use --logs)")
    how.add_argument("--rate", type=float, default=0.0, help="records/s per worker (0: no limit)")
    how.add_argument("--workers", type=int, default=defaults.DEFAULT_WORKERS)
    how.add_argument("--batch-size", type=int, default=defaults.DEFAULT_BATCH_SIZE)

    out = logs.add_argument_group("report")
    out.add_argument("--progress", action="store_true", help="a live progress line on stderr")
    out.add_argument("--report-json", metavar="FILE", help="also write the report as JSON")
    return parser


def _mapping(pairs: Sequence[str], flag: str) -> dict:
    return dict(parse_key_value(pair, flag) for pair in pairs)


def config_from_args(args: argparse.Namespace) -> GenConfig:
    if args.replay is not None and args.logs is not None:
        raise ConfigError("--logs: --replay sends the whole file (limit it with --duration)")
    headers = {key: str(value).lower() if isinstance(value, bool) else str(value)
               for key, value in _mapping(args.otlp_header, "--otlp-header").items()}  # fmt: skip
    return GenConfig(
        endpoint=args.otlp_endpoint,
        insecure=args.otlp_insecure,
        http=args.otlp_http,
        http_path=args.otlp_http_url_path,
        headers=headers,
        resource_attributes=_mapping(args.otlp_attributes, "--otlp-attributes"),
        service=args.service,
        record_attributes=_mapping(args.telemetry_attributes, "--telemetry-attributes"),
        profile=args.profile,
        body=args.body,
        severity_text=args.severity_text,
        severity_number=args.severity_number,
        trace_id=args.trace_id,
        span_id=args.span_id,
        replay=args.replay,
        logs=defaults.DEFAULT_LOGS if args.logs is None else args.logs,
        duration_s=parse_duration(args.duration),
        rate=args.rate,
        workers=args.workers,
        batch_size=args.batch_size,
        timeout_s=parse_duration(args.timeout),
        seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config.validate()
    except ConfigError as exc:
        print(f"otel-gen: {exc}", file=sys.stderr)
        return EXIT_BAD_FLAG
    if config.replay is not None and not Path(config.replay).is_file():
        print(f"otel-gen: --replay: no such file {config.replay!r}", file=sys.stderr)
        return EXIT_BAD_FLAG
    stop = threading.Event()
    # Ctrl-C ends the run early and still prints the report of what was sent; the previous
    # handlers come back afterwards, for callers that run main() in their own process.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        report = run(config, stop, sys.stderr if args.progress else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(report.summary())
    if args.report_json:
        Path(args.report_json).write_text(report.to_json() + "\n")
    return 0 if report.rejected == 0 else EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
