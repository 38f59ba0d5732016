"""The Sync handler leaves nothing behind when its call ends mid-stream.

A real gRPC server in front of a real analysis loop; a real client opens Sync, then the
receiver goes away or the analyzer stops (SIGTERM) while the stream is open. A wait left
pending is collected later and logged as "Task was destroyed but it is pending!".
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import replace

import grpc
import pytest

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.store.memory import MemoryStore


def waiting_on_the_policy_queue() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "Queue.get" in task.get_coro().__qualname__
    ]


async def end_mid_stream(how: str) -> tuple[int, int]:
    store = MemoryStore(None, history_limit=10)
    loop = AnalysisLoop(AnalysisConfig(), store, Policy(version=1))
    service = ControlPlaneService(loop, store)
    server, port = await start_control_server(service, "127.0.0.1:0")
    try:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        hello = control_pb2.SyncRequest(hello=control_pb2.ReceiverHello(receiver_id="r1"))

        async def requests():
            yield hello
            await asyncio.Event().wait()

        call = control_pb2_grpc.ControlPlaneStub(channel).Sync(requests())
        for _ in range(200):
            if "r1" in service.receivers:
                break
            await asyncio.sleep(0.01)
        during = len(waiting_on_the_policy_queue())
        if how == "receiver goes":
            call.cancel()
        else:
            await server.stop(0.1)
        await channel.close()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not waiting_on_the_policy_queue():
                break
        gc.collect()
        return during, len(waiting_on_the_policy_queue())
    finally:
        await server.stop(0)


@pytest.mark.parametrize("how", ["receiver goes", "server stops"])
def test_a_sync_call_that_ends_mid_stream_leaves_no_pending_task(how):
    during, after = asyncio.run(end_mid_stream(how))
    assert during == 1  # the handler waits for the next policy version
    assert after == 0, "the handler's wait for a policy outlived the call"


def test_a_version_is_converted_once_for_every_stream():
    store = MemoryStore(None, history_limit=10)
    loop = AnalysisLoop(AnalysisConfig(), store, Policy(version=1))
    service = ControlPlaneService(loop, store)
    rules = {f"p{n}": PatternRule(0.5) for n in range(1000)}
    policy = Policy(version=2, pattern_rules=rules)
    first = service.sync_response(policy)
    # Every stream sends the same bytes: a thousand receivers cost one encoding.
    assert service.sync_response(policy) is first
    sent = control_pb2.SyncResponse.FromString(first)
    assert sent.policy.version == 2 and len(sent.policy.pattern_rules) == 1000
    newer = service.sync_response(replace(policy, version=3))
    assert control_pb2.SyncResponse.FromString(newer).policy.version == 3


def test_a_receiver_is_listed_while_any_of_its_streams_is_open():
    async def scenario() -> list[set[str]]:
        store = MemoryStore(None, history_limit=10)
        loop = AnalysisLoop(AnalysisConfig(), store, Policy(version=1))
        service = ControlPlaneService(loop, store)
        server, port = await start_control_server(service, "127.0.0.1:0")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        seen = []

        async def until(condition) -> None:
            for _ in range(250):
                if condition():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"not within 5 s; receivers: {service.receivers}")

        def open_stream(receiver_id: str):
            async def requests():
                hello = control_pb2.ReceiverHello(receiver_id=receiver_id)
                yield control_pb2.SyncRequest(hello=hello)
                await asyncio.Event().wait()

            return control_pb2_grpc.ControlPlaneStub(channel).Sync(requests())

        try:
            # A restarted pod reconnects before its old stream is gone: two streams, one id.
            old, new = open_stream("r1"), open_stream("r1")
            other = open_stream("r2")
            await until(lambda: service.receivers.keys() == {"r1", "r2"})
            old.cancel()
            await asyncio.sleep(0.2)
            seen.append(set(service.receivers))
            new.cancel()
            await until(lambda: "r1" not in service.receivers)
            seen.append(set(service.receivers))
            other.cancel()
            await until(lambda: not service.receivers)
            seen.append(set(service.receivers))
            return seen
        finally:
            await channel.close()
            await server.stop(0)

    assert asyncio.run(scenario()) == [{"r1", "r2"}, {"r2"}, set()]
