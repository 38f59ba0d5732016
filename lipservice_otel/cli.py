"""`lipservice-otel` command line: one entry point, one subcommand per role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import yaml

from lipservice_otel.config import ConfigError, Settings, load_settings
from lipservice_otel.policy import PolicyError
from lipservice_otel.service import Service

EXIT_CONFIG_ERROR = 2
EXIT_START_FAILED = 1

log = logging.getLogger("lipservice_otel")


def _parse_set(pairs: Sequence[str]) -> dict[str, object]:
    overrides = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected KEY=VALUE (e.g. exporter.type=otlp), got {pair!r}")
        overrides[key] = yaml.safe_load(raw) if raw else ""
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipservice-otel", description="OpenTelemetry logs sampling processor."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="receive OTLP logs, sample them, forward the rest")
    serve.add_argument("--config", help="YAML settings file")
    serve.add_argument("--policy", help="YAML policy file, re-read when it changes")
    serve.add_argument("--grpc-endpoint", help="OTLP/gRPC listen address (receiver.grpc.endpoint)")
    serve.add_argument("--exporter", choices=("debug", "otlp"), help="exporter.type")
    serve.add_argument("--otlp-endpoint", help="downstream OTLP/gRPC host:port (exporter.otlp)")
    serve.add_argument("--metrics-endpoint", help="/metrics address ('' disables)")
    serve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by its dotted YAML key, e.g. --set sampler.max_body_chars=4096",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "policy.file": args.policy,
        "receiver.grpc.endpoint": args.grpc_endpoint,
        "exporter.type": args.exporter,
        "exporter.otlp.endpoint": args.otlp_endpoint,
        "telemetry.metrics_endpoint": args.metrics_endpoint,
        **_parse_set(args.set),
    }
    return load_settings(args.config, overrides=overrides)


async def serve(settings: Settings) -> int:
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await service.stop()
        return EXIT_START_FAILED
    log.info(
        "lipservice-otel serving: OTLP/gRPC %s -> %s exporter; metrics %s",
        settings.receiver.grpc.endpoint,
        settings.exporter.type,
        settings.telemetry.metrics_endpoint or "off",
    )
    await stop.wait()
    log.info("shutting down: draining the sending queue")
    left = await service.stop()
    return 0 if left == 0 else EXIT_START_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except (ConfigError, PolicyError) as exc:
        print(f"lipservice-otel: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    logging.basicConfig(
        level=settings.telemetry.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(settings))
