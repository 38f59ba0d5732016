"""`lipservice-otel policy ...`: read and steer the live policy over the control-plane API."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.control.config import ControlClientTlsConfig
from lipservice_otel.control.security import (
    MESSAGE_SIZE_OPTIONS,
    authorization_metadata,
    client_credentials,
    tls_options,
)

EXIT_UNAVAILABLE = 3
EXIT_USAGE = 2
EXAMPLE_WIDTH = 60


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_patterns(patterns) -> str:
    """The patterns as a table; with a TENANT column when any has a tenant
    (analysis.tenant_key set), since one service name may then stand for several teams."""
    with_tenant = any(p.tenant for p in patterns)
    tenant_header = ("TENANT",) if with_tenant else ()
    rows = [("PATTERN", *tenant_header, "SERVICE", "VOLUME/S", "RATE", "REASON", "EXAMPLE")]
    for p in patterns:
        example = p.examples[0] if p.examples else p.template
        rows.append(
            (
                p.pattern_id,
                *((p.tenant,) if with_tenant else ()),
                p.service,
                f"{p.volume_per_second:.2f}",
                f"{p.rate:g}",
                p.reason,
                _shorten(example, EXAMPLE_WIDTH),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    )


def format_explanation(pattern) -> str:
    seen = datetime.fromtimestamp(pattern.first_seen_unix_nano / 1e9, UTC)
    lines = [
        f"pattern   {pattern.pattern_id} (service {pattern.service}"
        + (f", tenant {pattern.tenant})" if pattern.tenant else ")"),
        f"template  {pattern.template}",
        f"volume    {pattern.volume_per_second:.2f} records/s, "
        f"{pattern.error_share:.1%} at the severity floor",
        f"rate      {pattern.rate:g} (reason: {pattern.reason})",
        f"why       {pattern.explanation}",
        f"first     {seen:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if len(pattern.merged_signatures) > 1:
        lines.append(f"merged    {', '.join(pattern.merged_signatures)}")
    lines.extend(f"example   {_shorten(e, 100)}" for e in pattern.examples)
    return "\n".join(lines)


def format_history(versions) -> str:
    # The summary starts with the version's pattern count: older versions in the history do
    # not carry their rules (store.history_rules_versions), so the rules cannot be counted.
    lines = []
    for policy in versions:
        created = datetime.fromtimestamp(policy.created_unix_nano / 1e9, UTC)
        lines.append(
            f"v{policy.version:<5} {created:%Y-%m-%d %H:%M:%S}  {policy.generator:<8} "
            f"{policy.summary}"
        )
    return "\n".join(lines) or "no policy versions yet"


def control_channel(args: argparse.Namespace) -> grpc.Channel:
    """The channel to `--control-plane` with the TLS the flags ask for (`policy`, `report`)."""
    if (args.cert_file is None) != (args.key_file is None):
        raise ValueError("--cert-file and --key-file go together")
    if not (args.tls or args.ca_file or args.cert_file):
        return grpc.insecure_channel(args.control_plane, options=MESSAGE_SIZE_OPTIONS)
    tls = ControlClientTlsConfig(
        enabled=True,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        server_name=args.server_name,
    )
    return grpc.secure_channel(
        args.control_plane, client_credentials(tls), options=tls_options(tls)
    )


def control_token(args: argparse.Namespace) -> str | None:
    """`--token`, or the content of `--token-file`."""
    if args.token_file:
        return Path(args.token_file).read_text(encoding="utf-8").strip()
    return args.token


def run_policy_command(args: argparse.Namespace) -> int:
    try:
        channel = control_channel(args)
        metadata = authorization_metadata(control_token(args))
    except (OSError, ValueError) as exc:
        print(f"lipservice-otel policy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with channel:
        stub = control_pb2_grpc.ControlPlaneStub(channel)
        try:
            print(_call(stub, args, metadata))
        except grpc.RpcError as error:
            print(
                f"lipservice-otel policy: {args.control_plane}: {error.code().name}: "
                f"{error.details()}",
                file=sys.stderr,
            )
            return EXIT_UNAVAILABLE
        except LookupError as missing:
            print(f"lipservice-otel policy: {missing.args[0]}", file=sys.stderr)
            return 1
    return 0


def _call(stub, args: argparse.Namespace, metadata) -> str:
    call = {"timeout": 10, "metadata": metadata}
    if args.action == "show":
        request = control_pb2.ListPatternsRequest(
            service=args.service, limit=args.limit, tenant=args.tenant
        )
        return format_patterns(stub.ListPatterns(request, **call).patterns)
    if args.action == "explain":
        for pattern in stub.ListPatterns(control_pb2.ListPatternsRequest(), **call).patterns:
            if (
                args.pattern_id == pattern.pattern_id
                or args.pattern_id in pattern.merged_signatures
            ):
                return format_explanation(pattern)
        raise LookupError(f"no pattern {args.pattern_id} in the live policy")
    if args.action == "history":
        request = control_pb2.HistoryRequest(limit=args.limit)
        return format_history(stub.History(request, **call).versions)
    if args.action == "pin":
        expires = int((time.time() + args.for_s) * 1e9) if args.for_s else 0
        override = control_pb2.Override(
            pattern_id=args.pattern_id, rate=args.rate, expires_unix_nano=expires, note=args.note
        )
        policy = stub.SetOverride(override, **call)
        return f"policy version {policy.version}: {args.pattern_id} pinned at {args.rate:g}"
    policy = stub.Regenerate(control_pb2.RegenerateRequest(), **call)
    return f"policy version {policy.version}: {policy.summary}"
