"""Who may call the control plane, and what a report may claim, against real gRPC servers
and real processes: tokens per method, TLS, mutual TLS, the refusal to start exposed, the
Redis standby path and `serve --workers` with all of it on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.app.service import Analyzer
from lipservice_otel.control.client import ControlClient
from lipservice_otel.policy.model import Policy
from lipservice_otel.settings import Settings, load_settings
from lipservice_otel.telemetry import Telemetry
from tests.support.certificates import Pki, make_pki
from tests.support.ports import free_port, free_ports
from tests.support.running_service import make_settings
from tests.support.traffic import NOISE, TrafficSender

BEARER = "bearer-token-of-32-characters-xx"
ADMIN = "admin-token-of-32-characters-xxx"
WORKERS = 2
READ_CALLS = {
    "GetPolicy": control_pb2.GetPolicyRequest(),
    "ListPatterns": control_pb2.ListPatternsRequest(),
    "History": control_pb2.HistoryRequest(),
}
ADMIN_CALLS = {
    "Regenerate": control_pb2.RegenerateRequest(),
    "SetOverride": control_pb2.Override(pattern_id="0123456789abcdef", rate=0.5),
}


def control_settings(**overrides) -> Settings:
    base = {"control.listen": "127.0.0.1:0", "telemetry.metrics_endpoint": "", "ui.endpoint": ""}
    return load_settings(environ={}, overrides={**base, **overrides})


@contextlib.asynccontextmanager
async def analyzer_of(settings: Settings):
    analyzer = Analyzer(settings, Policy(version=1), "writer", Telemetry())
    await analyzer.start(settings.control.listen)
    await analyzer.loop.regenerate()  # a policy to hand out
    try:
        yield analyzer
    finally:
        await analyzer.stop()


def metadata(token: str | None):
    return (("authorization", f"Bearer {token}"),) if token else ()


async def sync_once(stub, token: str | None, report=None) -> grpc.StatusCode:
    """One Sync stream: hello (and `report`), then the first policy back or the refusal."""

    async def requests():
        yield control_pb2.SyncRequest(hello=control_pb2.ReceiverHello(receiver_id="r"))
        if report is not None:
            yield control_pb2.SyncRequest(report=report)
        await asyncio.sleep(0.3)  # then the stream ends: done reporting

    try:
        call = stub.Sync(requests(), metadata=metadata(token), timeout=5)
        async for _ in call:
            if report is None:
                call.cancel()
                return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def codes(stub, token: str | None) -> dict[str, grpc.StatusCode]:
    found = {"Sync": await sync_once(stub, token)}
    for name, request in {**READ_CALLS, **ADMIN_CALLS}.items():
        try:
            await getattr(stub, name)(request, metadata=metadata(token), timeout=5)
            found[name] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            found[name] = error.code()
    return found


def every(code: grpc.StatusCode, names=("Sync", *READ_CALLS, *ADMIN_CALLS)) -> dict:
    return dict.fromkeys(names, code)


OK, UNAUTHENTICATED = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED


def test_each_call_needs_its_credential_and_health_stays_open():
    settings = control_settings(
        **{"control.auth.bearer_token": BEARER, "control.auth.admin_token": ADMIN}
    )

    async def scenario():
        async with analyzer_of(settings) as analyzer:
            target = f"127.0.0.1:{analyzer.port}"
            async with grpc.aio.insecure_channel(target) as channel:
                stub = control_pb2_grpc.ControlPlaneStub(channel)
                health = health_pb2_grpc.HealthStub(channel)
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                found = {
                    "none": await codes(stub, None),
                    "wrong": await codes(stub, "not-the-token-but-just-as-long"),
                    "bearer": await codes(stub, BEARER),
                    "admin": await codes(stub, ADMIN),
                }
            return answer.status, found, analyzer

    status, found, analyzer = asyncio.run(scenario())
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert found["none"] == every(UNAUTHENTICATED)
    assert found["wrong"] == every(UNAUTHENTICATED)
    assert found["bearer"] == {**every(OK, ("Sync", *READ_CALLS)), **every(DENIED, ADMIN_CALLS)}
    assert found["admin"] == every(OK), "the admin token admits everything"
    refused = analyzer.control._telemetry  # the Telemetry handed to the Analyzer
    assert refused.value("lipservice_control_refused_calls", method="Sync", code="UNAUTHENTICATED")
    assert refused.value(
        "lipservice_control_refused_calls", method="SetOverride", code="PERMISSION_DENIED"
    )


def test_without_an_admin_token_the_bearer_token_admits_admin_calls():
    settings = control_settings(**{"control.auth.bearer_token": BEARER})

    async def scenario():
        async with (
            analyzer_of(settings) as analyzer,
            grpc.aio.insecure_channel(f"127.0.0.1:{analyzer.port}") as channel,
        ):
            stub = control_pb2_grpc.ControlPlaneStub(channel)
            return await codes(stub, BEARER), await codes(stub, None)

    with_token, without = asyncio.run(scenario())
    assert with_token == every(OK)
    assert without == every(UNAUTHENTICATED)


# --- reports -------------------------------------------------------------------------------


def test_a_report_that_lies_is_refused_and_never_learned():
    settings = control_settings(**{"control.auth.bearer_token": BEARER})
    lying = control_pb2.AggregateReport(receiver_id="r")
    lying.counts.add(service="s", pattern_id="p" * 16, severity="info", received=10, kept=11)
    honest = control_pb2.AggregateReport(receiver_id="r")
    honest.counts.add(service="s", pattern_id="q" * 16, severity="info", received=10, kept=3)
    honest.patterns.add(pattern_id="q" * 16, service="s", template="GET <*>", examples=["GET /"])

    async def scenario():
        async with analyzer_of(settings) as analyzer:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{analyzer.port}") as channel:
                stub = control_pb2_grpc.ControlPlaneStub(channel)
                refused = await sync_once(stub, BEARER, lying)
                accepted = await sync_once(stub, BEARER, honest)
            await analyzer.loop.cycle()
            learned = {view.pattern_id for view in analyzer.loop.patterns()}
            return refused, accepted, learned, analyzer.control._telemetry

    refused, accepted, learned, telemetry = asyncio.run(scenario())
    assert refused == grpc.StatusCode.INVALID_ARGUMENT
    assert accepted == grpc.StatusCode.OK
    assert learned == {"q" * 16}
    assert telemetry.value("lipservice_control_refused_reports", reason="invalid") == 1


# --- TLS --------------------------------------------------------------------------------------


async def first_policy(
    client: ControlClient, applied: list[Policy], seconds: float = 5.0, connected=None
):
    """Whether a policy arrived within `seconds`; `connected()` is called before the client
    goes."""
    running = asyncio.create_task(client.run())
    deadline = time.monotonic() + seconds
    while not applied and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if connected is not None:
        connected()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    return bool(applied)


def receiver_client(port: int, telemetry: Telemetry, **tls) -> tuple[ControlClient, list]:
    applied: list[Policy] = []
    settings = control_settings(
        **{f"control.client_tls.{key}": value for key, value in tls.items()}
    )
    client = ControlClient(
        f"localhost:{port}",
        "declared-id",
        applied.append,
        lambda: 0,
        reconnect_max_s=0.2,
        policy_cache_file=None,
        token=BEARER,
        tls=settings.control.client_tls,
        telemetry=telemetry,
    )
    return client, applied


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_name="receiver-7")


def test_tls_and_mutual_tls_with_the_certificate_as_receiver_id(pki):
    server = {
        "control.auth.bearer_token": BEARER,
        "control.tls.cert_file": str(pki.server.cert),
        "control.tls.key_file": str(pki.server.key),
    }
    trusting = {"enabled": True, "ca_file": str(pki.ca)}

    async def scenario():
        results = {}
        telemetry = Telemetry()
        async with analyzer_of(control_settings(**server)) as analyzer:
            port = analyzer.port
            results["tls"] = await first_policy(*receiver_client(port, telemetry, **trusting))
            results["plaintext"] = await first_policy(*receiver_client(port, telemetry), 1.0)
        mutual = {**server, "control.tls.client_ca_file": str(pki.ca)}
        async with analyzer_of(control_settings(**mutual)) as analyzer:
            port = analyzer.port
            results["no client cert"] = await first_policy(
                *receiver_client(port, telemetry, **trusting), 1.0
            )
            stranger = {"cert_file": str(pki.stranger.cert), "key_file": str(pki.stranger.key)}
            results["stranger"] = await first_policy(
                *receiver_client(port, telemetry, **trusting, **stranger), 1.0
            )
            ours = {"cert_file": str(pki.client.cert), "key_file": str(pki.client.key)}
            results["client cert"] = await first_policy(
                *receiver_client(port, telemetry, **trusting, **ours),
                connected=lambda: results.update(receivers=set(analyzer.control.receivers)),
            )
            for _ in range(100):  # the stream ends on the server's side too
                if not analyzer.control.receivers:
                    break
                await asyncio.sleep(0.02)
            results["after"] = set(analyzer.control.receivers)
        return results, telemetry

    results, telemetry = asyncio.run(scenario())
    assert results["tls"] is True
    assert results["plaintext"] is False
    assert results["no client cert"] is False
    assert results["stranger"] is False
    assert results["client cert"] is True
    assert results["receivers"] == {"receiver-7"}, "the certificate's name, not the declared id"
    assert results["after"] == set(), "a receiver whose stream ended is not listed"
    assert telemetry.value("lipservice_control_sync_errors", error="unavailable") >= 3


# --- processes ------------------------------------------------------------------------------


def lipservice(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lipservice_otel", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "--listen", "0.0.0.0:0"],
        ["serve", "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", ""],
    ],
)
def test_an_exposed_control_plane_without_credentials_does_not_start(command):
    exposed = ["--set", "control.listen=0.0.0.0:0", "--metrics-endpoint", ""]
    if command[0] == "analyze":
        exposed = ["--set", "telemetry.metrics_endpoint="]
    process = lipservice(*command, *exposed)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr
    assert "configuration error: control.listen: 0.0.0.0:0 is not a loopback address" in stderr
    assert "control.auth.bearer_token" in stderr


def test_allow_insecure_starts_with_a_warning():
    process = lipservice(
        *("analyze", "--listen", "0.0.0.0:0", "--set", "control.allow_insecure=true"),
        *("--set", "telemetry.metrics_endpoint="),
    )
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "lipservice-otel analyzing" in line:
                break
        assert any("WARNING" in line and "allow_insecure" in line for line in lines), lines
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def wait_until(condition: Callable, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            value = condition()
            if value:
                return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_standby_on_redis_serves_receivers_that_hold_the_token(redis_server, sink, start_service):
    """Receiver A follows the writer, receiver B the standby; B learns from A's traffic through
    Redis. Tokens reach `analyze` in the env form, and a receiver without one gets nothing."""
    tokens = {
        "LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN": BEARER,
        "LIPSERVICE_CONTROL__AUTH__ADMIN_TOKEN": ADMIN,
    }
    ports = [free_port(), free_port()]
    analyzers = []
    for port in ports:
        analyzers.append(
            lipservice(
                *("analyze", "--listen", f"127.0.0.1:{port}", "--store", "redis"),
                *("--redis-url", redis_server.url, "--set", "analysis.interval_s=0.5"),
                *("--set", "analysis.min_examples_per_interval=1"),
                *("--set", "store.redis.lock_ttl_s=2", "--set", "telemetry.metrics_endpoint="),
                env=tokens,
            )
        )
        if len(analyzers) == 1:
            time.sleep(1.0)  # the first one takes the writer lock

    def receiver(port: int, **auth):
        settings = make_settings(
            sink.endpoint,
            **{
                "control.connect": f"127.0.0.1:{port}",
                "control.reconnect_max_s": 0.3,
                "sampler.report_interval_s": 0.25,
                **auth,
            },
        )
        return start_service(settings)

    try:
        writer_side = receiver(ports[0], **{"control.auth.bearer_token": BEARER})
        standby_side = receiver(ports[1], **{"control.auth.bearer_token": BEARER})
        intruder = receiver(ports[1])
        sender = TrafficSender(writer_side.endpoint)
        try:
            for _ in range(4):
                sender.run(NOISE, seconds=0.5, tag="learn")
                if standby_side.service.sampler.policy.learned:
                    break
        finally:
            sender.close()
        wait_until(lambda: standby_side.service.sampler.policy.learned, 20, "the standby's policy")
        assert writer_side.service.sampler.policy.learned
        # The intruder may have met the standby before it listened (unavailable): wait for an
        # attempt the standby answered.
        wait_until(
            lambda: intruder.service.telemetry.value(
                "lipservice_control_sync_errors", error="unauthenticated"
            ),
            20,
            "the intruder refused as unauthenticated",
        )
        assert not intruder.service.sampler.policy.learned
    finally:
        for process in analyzers:
            process.kill()
            process.communicate(timeout=10)


def policy_version(metrics_port: int) -> float | None:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "lipservice_policy_version":
            return family.samples[0].value
    return None


def test_workers_reach_their_parent_with_tls_and_tokens_on(sink, tmp_path, pki):
    control_port, metrics_port = free_port(), free_ports(WORKERS)
    admin_file, bearer_file = tmp_path / "admin", tmp_path / "bearer"
    admin_file.write_text(ADMIN)
    bearer_file.write_text(BEARER)
    parent = lipservice(
        *("serve", "--workers", str(WORKERS), "--grpc-endpoint", f"127.0.0.1:{free_port()}"),
        *("--http-endpoint", "", "--exporter", "otlp", "--otlp-endpoint", sink.endpoint),
        *("--metrics-endpoint", f"127.0.0.1:{metrics_port}"),
        *("--set", f"control.listen=127.0.0.1:{control_port}"),
        *("--set", f"control.tls.cert_file={pki.server.cert}"),
        *("--set", f"control.tls.key_file={pki.server.key}"),
        *("--set", f"control.auth.admin_token_file={admin_file}"),
        env={"LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN": BEARER},
    )

    def policy(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "lipservice_otel", "policy"]
        command += ["--control-plane", f"localhost:{control_port}", "--ca-file", str(pki.ca)]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)

    def version_on_every_worker(version: int) -> bool:
        return all(
            (policy_version(metrics_port + index) or 0) >= version for index in range(WORKERS)
        )

    try:
        wait_until(
            lambda: policy("--token-file", str(bearer_file), "history").returncode == 0,
            30,
            "the parent's control plane",
        )
        refused = policy("--token-file", str(bearer_file), "pin", "0123456789abcdef", "0.5")
        assert refused.returncode == 3 and "PERMISSION_DENIED" in refused.stderr
        anonymous = policy("show")
        assert anonymous.returncode == 3 and "UNAUTHENTICATED" in anonymous.stderr
        pinned = policy("--token-file", str(admin_file), "pin", "0123456789abcdef", "0.5")
        assert pinned.returncode == 0, pinned.stderr
        version = int(pinned.stdout.split()[2].rstrip(":"))
        wait_until(lambda: version_on_every_worker(version), 30, "the pin on every worker")
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.communicate(timeout=30)
