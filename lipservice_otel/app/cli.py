"""`lipservice-otel` command line: one entry point, one subcommand per role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import yaml

from lipservice_otel.app.policy_command import run_policy_command
from lipservice_otel.app.report_command import run_report_command
from lipservice_otel.app.service import Analyzer, Service, configured_policy, default_receiver_id
from lipservice_otel.app.workers import serve_workers
from lipservice_otel.policy.document import PolicyError
from lipservice_otel.settings import Settings, ignored_environment, load_settings
from lipservice_otel.telemetry import Telemetry
from lipservice_otel.validation import ConfigError

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
    serve.add_argument("--policy", help="YAML policy file, re-read when it changes")
    serve.add_argument("--grpc-endpoint", help="OTLP/gRPC listen address (receiver.grpc.endpoint)")
    serve.add_argument(
        "--http-endpoint", help="OTLP/HTTP listen address, '' disables (receiver.http.endpoint)"
    )
    serve.add_argument(
        "--exporter", choices=("debug", "otlp", "otlp_http", "posthog"), help="exporter.type"
    )
    serve.add_argument("--otlp-endpoint", help="downstream OTLP/gRPC host:port (exporter.otlp)")
    serve.add_argument("--metrics-endpoint", help="/metrics address ('' disables)")
    serve.add_argument(
        "--control-plane",
        metavar="HOST:PORT",
        help="follow a remote `analyze` service instead of the embedded analysis loop",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N receiver processes sharing the OTLP ports (SO_REUSEPORT) and one analysis",
    )
    _add_common(serve)

    analyze = commands.add_parser(
        "analyze", help="run the analysis loop alone, as the control plane for many receivers"
    )
    analyze.add_argument("--listen", metavar="HOST:PORT", help="control.listen")
    analyze.add_argument("--store", choices=("memory", "redis"), help="store.type")
    analyze.add_argument("--redis-url", help="store.redis.url")
    _add_common(analyze)

    commands.add_parser("gen", help="generate OTLP log load (the otel-gen command)", add_help=False)
    policy = commands.add_parser("policy", help="inspect and steer the live policy")
    _add_control_connection(policy)
    actions = policy.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="the live policy as a table")
    show.add_argument("--service", default="", help="only this service.name")
    show.add_argument("--tenant", default="", help="only this tenant (analysis.tenant_key)")
    show.add_argument("--limit", type=int, default=50, help="rows (0: all)")
    explain = actions.add_parser("explain", help="why a pattern has its rate")
    explain.add_argument("pattern_id")
    history = actions.add_parser("history", help="policy versions and what changed")
    history.add_argument("--limit", type=int, default=20)
    pin = actions.add_parser("pin", help="pin a pattern's rate (an override)")
    pin.add_argument("pattern_id")
    pin.add_argument("rate", type=float)
    pin.add_argument("--for", dest="for_s", type=float, default=0, help="seconds (0: forever)")
    pin.add_argument("--note", default="")
    actions.add_parser("regenerate", help="run an analysis cycle now")

    report = commands.add_parser(
        "report", help="what the sampling saves, per service and pattern (docs/savings.md)"
    )
    _add_control_connection(report)
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--html", metavar="FILE", help="write the report as one HTML page")
    report.add_argument(
        "--price-per-gib",
        type=float,
        help="price of one GiB sent, instead of the analysis' report.price_per_gib",
    )
    report.add_argument("--currency", help="the price's currency label (report.currency)")
    return parser


def _add_control_connection(command: argparse.ArgumentParser) -> None:
    """How `policy` and `report` reach the control plane: address, token, TLS."""
    command.add_argument(
        "--control-plane",
        metavar="HOST:PORT",
        default="localhost:4320",
        help="the serve (embedded) or analyze process to ask (default localhost:4320)",
    )
    credentials = command.add_mutually_exclusive_group()
    credentials.add_argument(
        "--token", help="control.auth bearer or admin token (pin and regenerate need admin)"
    )
    credentials.add_argument(
        "--token-file", help="a file holding the token (keeps it out of argv and history)"
    )
    command.add_argument(
        "--ca-file", help="speak TLS; the control plane's certificate must chain to this CA"
    )
    command.add_argument("--cert-file", help="client certificate, for mutual TLS (with --key-file)")
    command.add_argument("--key-file", help="client private key, for mutual TLS")
    command.add_argument(
        "--tls", action="store_true", help="speak TLS with the system's CAs (implied by --ca-file)"
    )
    command.add_argument("--server-name", help="name the server certificate must carry")


def _add_common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", help="YAML settings file")
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by its dotted YAML key, e.g. --set sampler.max_body_chars=4096",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {
        "policy.file": "policy",
        "receiver.grpc.endpoint": "grpc_endpoint",
        "receiver.http.endpoint": "http_endpoint",
        "exporter.type": "exporter",
        "exporter.otlp.endpoint": "otlp_endpoint",
        "telemetry.metrics_endpoint": "metrics_endpoint",
        "control.connect": "control_plane",
        "control.listen": "listen",
        "store.type": "store",
        "store.redis.url": "redis_url",
    }
    overrides = {key: getattr(args, name, None) for key, name in flags.items()}
    overrides.update(_parse_set(args.set))
    return load_settings(args.config, overrides=overrides)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings) -> int:
    service = Service(settings)
    stop = _stop_on_signals()
    try:
        await service.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await service.stop()
        return EXIT_START_FAILED
    if service.control_client is not None:
        analysis = f"control plane {settings.control.connect}"
    elif service.analyzer is not None:
        analysis = f"embedded analysis (control plane {settings.control.listen})"
    else:
        analysis = "no analysis"
    log.info(
        "lipservice-otel serving: OTLP/gRPC %s, OTLP/HTTP %s -> %s exporter; %s; metrics %s",
        settings.receiver.grpc.endpoint,
        settings.receiver.http.endpoint or "off",
        settings.exporter.type,
        analysis,
        settings.telemetry.metrics_endpoint or "off",
    )
    await stop.wait()
    log.info("shutting down: draining the sending queue")
    left = await service.stop()
    return 0 if left == 0 else EXIT_START_FAILED


async def analyze(settings: Settings) -> int:
    # Its own /metrics: cycles, refused calls and reports, deferred and forgotten patterns.
    telemetry = Telemetry()
    analyzer = Analyzer(settings, configured_policy(settings), default_receiver_id(), telemetry)
    stop = _stop_on_signals()
    # A SIGTERM while the start still waits for the store (a Redis that does not answer)
    # stops it there: Kubernetes would otherwise wait out the grace period and kill -9.
    starting = asyncio.create_task(analyzer.start(settings.control.listen))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await analyzer.stop()
        return 0
    try:
        starting.result()
        if settings.telemetry.metrics_endpoint:
            telemetry.serve(settings.telemetry.metrics_endpoint)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await analyzer.stop()
        return EXIT_START_FAILED
    log.info(
        "lipservice-otel analyzing: control plane %s, %s store; metrics %s",
        settings.control.listen,
        settings.store.type,
        settings.telemetry.metrics_endpoint or "off",
    )
    await stop.wait()
    log.info("shutting down: giving up shards and leases")
    await analyzer.stop()
    telemetry.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gen"]:
        # The load generator under the one entry point; it parses its own telemetrygen flags.
        from lipservice_otel.loadgen.cli import main as gen_main

        return gen_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.workers < 1:
        parser.error("--workers: must be >= 1")
    if args.command == "policy":
        return run_policy_command(args)
    if args.command == "report":
        return run_report_command(args)
    try:
        settings = settings_from_args(args)
    except (ConfigError, PolicyError) as exc:
        print(f"lipservice-otel: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    logging.basicConfig(
        level=settings.telemetry.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ignored_environment(os.environ):
        log.debug("ignoring %s: not a LIPSERVICE_<SECTION>__<FIELD> setting", name)
    try:
        if args.command == "serve" and args.workers > 1:
            return asyncio.run(serve_workers(argv, settings, args.workers))
        return asyncio.run(serve(settings) if args.command == "serve" else analyze(settings))
    except (ConfigError, PolicyError) as exc:
        # Found while building components: a policy file or store snapshot that cannot be used.
        print(f"lipservice-otel: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
