"""ControlClient keeps syncing whatever a policy version or the local disk does to it.

The peer is a real gRPC server on a free port whose Sync stream sends the versions a test
chooses, as a misbehaving or newer analyzer could.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.control.client import ControlClient
from lipservice_otel.control.security import MESSAGE_SIZE_OPTIONS
from lipservice_otel.policy.codec import policy_to_proto
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.telemetry import Telemetry


class ScriptedControlPlane(control_pb2_grpc.ControlPlaneServicer):
    def __init__(self, policies: list[control_pb2.Policy]) -> None:
        self._policies = policies

    async def Sync(self, request_iterator, context):
        await anext(request_iterator)  # the hello
        for policy in self._policies:
            yield control_pb2.SyncResponse(policy=policy)
        await asyncio.Event().wait()  # stay connected, as an analyzer between versions


def undecodable(version: int) -> control_pb2.Policy:
    message = policy_to_proto(Policy(version=version))
    message.exemptions.add(name="broken", scope="body", matches="(unclosed")
    return message


async def follow(policies: list[control_pb2.Policy], cache_file: str | None, options=()):
    server = grpc.aio.server(options=options)
    control_pb2_grpc.add_ControlPlaneServicer_to_server(ScriptedControlPlane(policies), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    applied: list[int] = []
    telemetry = Telemetry()
    client = ControlClient(
        f"127.0.0.1:{port}",
        "r1",
        lambda policy: applied.append(policy.version),
        lambda: applied[-1] if applied else 1,
        reconnect_max_s=0.2,
        policy_cache_file=cache_file,
        telemetry=telemetry,
    )
    running = asyncio.create_task(client.run())
    want = policies[-1].version
    for _ in range(200):
        if (applied and applied[-1] == want) or running.done():
            break
        await asyncio.sleep(0.02)
    alive = not running.done()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await running
    await server.stop(0)
    return applied, alive, telemetry


def sync_errors(telemetry: Telemetry, error: str) -> float:
    return telemetry.value("lipservice_control_sync_errors", error=error)


def test_a_policy_cache_that_cannot_be_written_does_not_end_policy_sync(tmp_path):
    cache = str(tmp_path / "no-such-directory" / "policy.pb")
    policies = [policy_to_proto(Policy(version=v)) for v in (2, 3)]
    applied, alive, telemetry = asyncio.run(follow(policies, cache))
    assert alive, "the client must keep running"
    assert applied == [2, 3]
    assert sync_errors(telemetry, "policy_cache") == 2


def test_a_policy_that_fails_to_decode_is_skipped_and_the_next_applied(tmp_path):
    cache = tmp_path / "policy.pb"
    policies = [undecodable(2), policy_to_proto(Policy(version=3))]
    applied, alive, telemetry = asyncio.run(follow(policies, str(cache)))
    assert alive
    assert applied == [3], "the bad version is not applied, the next one is"
    assert sync_errors(telemetry, "bad_policy") == 1
    assert cache.exists(), "only the good version was cached"
    assert list(tmp_path.iterdir()) == [cache], "no temporary file left behind"


def test_a_policy_over_grpcs_default_4_mib_reaches_the_receiver():
    # ~100,000 rules: what analysis.max_patterns above ~80,000 gives.
    rules = {f"{n:016x}": PatternRule(0.25, "budget", 1.5) for n in range(100_000)}
    large = policy_to_proto(Policy(version=2, pattern_rules=rules))
    assert large.ByteSize() > 4 * 1024 * 1024
    applied, alive, telemetry = asyncio.run(follow([large], None, MESSAGE_SIZE_OPTIONS))
    assert alive and applied == [2]
    assert sync_errors(telemetry, "resource_exhausted") == 0
