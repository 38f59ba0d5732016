"""`lipservice-otel report`: the savings report of a running analysis, over the control plane.

Asks the `serve` (embedded analysis) or `analyze` process on `--control-plane` for its
savings (the `Savings` call), then prints them as a table, as JSON (`--json`) or writes one
self-contained HTML page (`--html FILE`). Connection, TLS and token flags are `policy`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.app.policy_command import (
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    control_channel,
    control_token,
)
from lipservice_otel.control.security import authorization_metadata
from lipservice_otel.report.codec import savings_from_proto
from lipservice_otel.report.config import DEFAULT_CURRENCY, ReportConfig
from lipservice_otel.report.render import render_html, render_json, render_text
from lipservice_otel.validation import ConfigError

CALL_TIMEOUT_S = 10


def savings_request(args: argparse.Namespace) -> control_pb2.SavingsRequest:
    """The request, with `--price-per-gib` / `--currency` checked as report.* settings are."""
    request = control_pb2.SavingsRequest()
    if args.price_per_gib is None and args.currency is None:
        return request  # the analysis' own report.price_per_gib
    asked = ReportConfig(
        args.price_per_gib if args.price_per_gib is not None else 0.0,
        args.currency if args.currency is not None else DEFAULT_CURRENCY,
    )
    asked.validate("report")
    if args.price_per_gib is not None:
        request.price_per_gib = asked.price_per_gib
    if args.currency is not None:
        request.currency = asked.currency
    return request


def run_report_command(args: argparse.Namespace) -> int:
    try:
        request = savings_request(args)
    except ConfigError as exc:
        print(f"lipservice-otel report: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        channel = control_channel(args)
        metadata = authorization_metadata(control_token(args))
    except (OSError, ValueError) as exc:
        print(f"lipservice-otel report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with channel:
        stub = control_pb2_grpc.ControlPlaneStub(channel)
        try:
            message = stub.Savings(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as error:
            print(
                f"lipservice-otel report: {args.control_plane}: {error.code().name}: "
                f"{error.details()}",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
    report = savings_from_proto(message)
    if args.html:
        try:
            Path(args.html).write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            print(f"lipservice-otel report: --html {args.html}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        print(f"lipservice-otel report: wrote {args.html}", file=sys.stderr)
    if args.json:
        print(render_json(report))
    elif not args.html:
        print(render_text(report))
    return 0
