"""control.policy_slices: each Sync stream gets the rules of the patterns it reports.

A real control server in front of a real analysis loop; raw Sync streams (what a receiver's
client sends) report chosen patterns, and the test decodes what comes down each stream.
"""

from __future__ import annotations

import asyncio

import grpc

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.codec import report_to_proto
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore


def report(*pattern_ids: str) -> IntervalReport:
    return IntervalReport(
        counts=[PatternCounts("shop", pid, "info", 100, 10) for pid in pattern_ids],
        patterns={pid: PatternInfo("shop", f"{pid} <*>", [f"{pid} 1"]) for pid in pattern_ids},
        overflow_records=0,
    )


class Stream:
    """One receiver's Sync stream: what it sends up, and every policy that came down."""

    def __init__(self, channel: grpc.aio.Channel, receiver_id: str, version: int = 0) -> None:
        self._up: asyncio.Queue = asyncio.Queue()
        self._up.put_nowait(
            control_pb2.SyncRequest(
                hello=control_pb2.ReceiverHello(receiver_id=receiver_id, policy_version=version)
            )
        )
        self.receiver_id = receiver_id
        self.policies: list[control_pb2.Policy] = []
        self._call = control_pb2_grpc.ControlPlaneStub(channel).Sync(self._requests())
        self._task = asyncio.create_task(self._read())

    async def _requests(self):
        while True:
            yield await self._up.get()

    async def _read(self) -> None:
        async for response in self._call:
            self.policies.append(response.policy)

    def send(self, *pattern_ids: str) -> None:
        message = report_to_proto(report(*pattern_ids), self.receiver_id, 0)
        self._up.put_nowait(control_pb2.SyncRequest(report=message))

    async def received(self, count: int) -> control_pb2.Policy:
        for _ in range(250):
            if len(self.policies) >= count:
                return self.policies[count - 1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.receiver_id}: {len(self.policies)} policies, not {count}")

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()


async def with_control_plane(steps, slices: bool = True) -> None:
    store = MemoryStore(None, history_limit=10)
    config = AnalysisConfig(min_examples_per_interval=1, merge_patterns=False)
    loop = AnalysisLoop(config, store, Policy(version=1))
    service = ControlPlaneService(loop, store, slices=slices)
    server, port = await start_control_server(service, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await steps(loop, service, channel)
    finally:
        await channel.close()
        await server.stop(0)


async def until(condition, what: str) -> None:
    for _ in range(250):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} not within 5 s")


def test_each_stream_gets_the_rules_of_what_it_reports():
    async def steps(loop, service, channel):
        one, two = Stream(channel, "one"), Stream(channel, "two")
        await until(lambda: service.receivers.keys() == {"one", "two"}, "both hellos")
        one.send("login", "cache")
        two.send("search")
        await until(lambda: loop._pending.reports == 2, "both reports folded")
        policy = await loop.cycle()
        assert set(policy.pattern_rules) == {"login", "cache", "search"}
        first_one, first_two = await one.received(1), await two.received(1)
        assert first_one.version == first_two.version == policy.version
        assert set(first_one.pattern_rules) == {"login", "cache"}
        assert set(first_two.pattern_rules) == {"search"}
        assert first_one.learned and first_two.learned

        # "two" starts seeing a pattern the analysis learned from "one": the version comes
        # again at once, with it, rather than at the next cycle.
        two.send("search", "login")
        again = await two.received(2)
        assert again.version == policy.version
        assert set(again.pattern_rules) == {"search", "login"}
        one.close()
        two.close()

    asyncio.run(with_control_plane(steps))


def test_a_reconnecting_receiver_gets_its_slice_after_its_first_report_not_at_hello():
    async def steps(loop, service, channel):
        first = Stream(channel, "r1")
        await until(lambda: "r1" in service.receivers, "the hello")
        first.send("login")
        await until(lambda: loop._pending.reports == 1, "the report folded")
        policy = await loop.cycle()
        await first.received(1)
        first.close()

        # Back with an older version: nothing at the hello (a slice of nothing would drop
        # every rule it has), its slice once it has reported.
        back = Stream(channel, "r1", version=1)
        await until(lambda: "r1" in service.receivers, "the second hello")
        await asyncio.sleep(0.3)
        assert back.policies == []
        back.send("login")
        sliced = await back.received(1)
        assert sliced.version == policy.version and set(sliced.pattern_rules) == {"login"}
        back.close()

    asyncio.run(with_control_plane(steps))


def test_without_slices_every_stream_gets_the_whole_policy():
    async def steps(loop, service, channel):
        one, two = Stream(channel, "one"), Stream(channel, "two")
        await until(lambda: service.receivers.keys() == {"one", "two"}, "both hellos")
        one.send("login")
        two.send("search")
        await until(lambda: loop._pending.reports == 2, "both reports folded")
        await loop.cycle()
        for stream in (one, two):
            assert set((await stream.received(1)).pattern_rules) == {"login", "search"}
            stream.close()

    asyncio.run(with_control_plane(steps, slices=False))
