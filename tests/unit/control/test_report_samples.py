"""Templates and examples go up a Sync stream once; then a known pattern is counts only.

A real control plane (gRPC server, analysis loop) and the real receiver-side client over
127.0.0.1. What the analysis receives is what an observer of its loop sees arrive.
"""

from __future__ import annotations

import asyncio
import contextlib

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.control.client import ControlClient
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import PatternRule, Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo
from lipservice_otel.store.memory import MemoryStore
from lipservice_otel.telemetry import Telemetry
from tests.support.ports import free_port

PATTERNS = {
    "p-login": PatternInfo("shop", "user <*> logged in", ["user 7 logged in"]),
    "p-cache": PatternInfo("shop", "cache miss for <*>", ["cache miss for k1"]),
}


def report(*pattern_ids: str) -> IntervalReport:
    return IntervalReport(
        counts=[PatternCounts("shop", pid, "info", 100, 10) for pid in pattern_ids],
        patterns={pid: PATTERNS[pid] for pid in pattern_ids},
        overflow_records=0,
    )


async def until(condition, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} not within 5 s")


class Analyzer:
    """An analysis loop behind a real control server; what reached it, report by report."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reports: list[IntervalReport] = []
        store = MemoryStore(None, history_limit=10)
        config = AnalysisConfig(min_examples_per_interval=1)
        self.loop = AnalysisLoop(config, store, Policy(version=1))
        self.loop.observe(self)
        self._service = ControlPlaneService(self.loop, store)
        self._server = None

    def reported(self, report: IntervalReport) -> None:
        self.reports.append(report)

    def cycled(self, anomalies) -> None:
        pass

    async def start(self) -> None:
        self._server, _ = await start_control_server(self._service, f"127.0.0.1:{self.port}")

    async def stop(self) -> None:
        await self._server.stop(0)

    async def connected(self) -> None:
        await until(lambda: "r1" in self._service.receivers, "the receiver's hello")

    async def arrived(self, count: int) -> IntervalReport:
        await until(lambda: len(self.reports) >= count, f"report {count}")
        return self.reports[count - 1]


class Receiver:
    """The real client, applying what comes down as a receiver does."""

    def __init__(self, port: int, knows=None) -> None:
        self.applied: list[Policy] = [Policy(version=1)]
        self.telemetry = Telemetry()
        self.client = ControlClient(
            f"127.0.0.1:{port}",
            "r1",
            self.applied.append,
            lambda: self.applied[-1].version,
            reconnect_max_s=0.2,
            policy_cache_file=None,
            telemetry=self.telemetry,
            knows=knows or (lambda pid: self.applied[-1].knows(pid)),
        )

    async def knowing(self, pattern_id: str) -> None:
        await until(lambda: self.applied[-1].knows(pattern_id), f"a policy knowing {pattern_id}")


async def conversation(steps) -> None:
    port = free_port()
    analyzer, receiver = Analyzer(port), Receiver(port)
    await analyzer.start()
    running = asyncio.create_task(receiver.client.run())
    try:
        await analyzer.connected()
        await steps(analyzer, receiver)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await analyzer.stop()


def test_a_known_pattern_goes_up_as_counts_only_and_is_still_learned():
    async def steps(analyzer: Analyzer, receiver: Receiver):
        receiver.client.report(report("p-login"))
        first = await analyzer.arrived(1)
        assert first.patterns == {"p-login": PATTERNS["p-login"]}
        await analyzer.loop.cycle()  # learns p-login: the next version has its rule
        await receiver.knowing("p-login")

        receiver.client.report(report("p-login", "p-cache"))
        second = await analyzer.arrived(2)
        # p-login is known and was sent: counts only. p-cache is new: with its template.
        assert set(second.patterns) == {"p-cache"}
        assert {c.pattern_id for c in second.counts} == {"p-login", "p-cache"}
        assert receiver.telemetry.value("lipservice_control_samples_omitted") == 1

        await analyzer.loop.cycle()
        # The counts-only report was learned from: p-login's last interval is its 100 records,
        # and its template is the one sent first.
        login = analyzer.loop.state.patterns["p-login"]
        assert login.last_counts == {"info": 100}
        assert login.template == "user <*> logged in"
        assert "p-cache" in analyzer.loop.state.patterns

    asyncio.run(conversation(steps))


def test_a_restarted_analyzer_gets_every_template_on_the_new_stream():
    async def steps(analyzer: Analyzer, receiver: Receiver):
        receiver.client.report(report("p-login"))
        await analyzer.arrived(1)
        await analyzer.loop.cycle()
        await receiver.knowing("p-login")

        # Restarted without its state: a new stream to a new analysis on the same port.
        await analyzer.stop()
        restarted = Analyzer(analyzer.port)
        await restarted.start()
        try:
            await restarted.connected()
            receiver.client.report(report("p-login"))
            again = await restarted.arrived(1)
            assert again.patterns == {"p-login": PATTERNS["p-login"]}
            await restarted.loop.cycle()
            assert "p-login" in restarted.loop.state.patterns
        finally:
            await restarted.stop()

    asyncio.run(conversation(steps))


def test_only_a_learned_policy_says_what_the_analysis_knows():
    rule = {"p-login": PatternRule(0.5)}
    assert Policy(pattern_rules=rule, learned=True).knows("p-login")
    assert not Policy(pattern_rules=rule, learned=True).knows("p-cache")
    # A policy file's rules say nothing about what an analysis learned.
    assert not Policy(pattern_rules=rule, learned=False).knows("p-login")
    merged = Policy(pattern_aliases={"p-login-2": "p-login"}, pattern_rules=rule, learned=True)
    assert merged.knows("p-login-2")
    member = Policy(signature_rules={"p-login-3": PatternRule(0.5)}, learned=True)
    assert member.knows("p-login-3")
