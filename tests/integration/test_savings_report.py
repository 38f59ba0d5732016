"""`lipservice-otel report` against real `serve` processes fed a stream whose truth is known.

Two `serve` processes (embedded analysis, one in shadow mode, one in enforce mode) export to
one real OTLP sink each and receive the same scripted stream over OTLP/gRPC: a loud pattern
(LOUD_PER_TICK records every TICK_S) and a quiet one (QUIET_PER_TICK), every record INFO with a
fixed body and fixed-width fields, so each encoded LogRecord's size is known exactly (protobuf
ByteSize) and the records/s and bytes/s sent are known exactly. The report's figures are
compared with that truth.

Tolerances, and why: the report reads each pattern's moving baselines, EMAs (weight
`ema_alpha`, 0.7 here) of one value per analysis cycle (`interval_s`). A cycle sums the
receiver's reports (every `report_interval_s`) that arrived since the last one, so with 10
reports per cycle a cycle sees 9-11 of them: its rate is the stream's within about +-10%, and
the EMA of such values (its spread is sqrt(alpha / (2 - alpha)) ~ 0.73 of one value's) within
about +-7%. The first cycles weigh 0.3**n after n more: the stream's start, and in enforce mode
the cycles before the learned rate applied (a new pattern is kept whole), fade within the
stream. So absolute rates are checked to 20%. Ratios of two baselines over the same cycles
(bytes per record, a pattern's share of its service, kept of all) move together and are
checked far tighter. Enforce mode keeps a record when its trace id's randomness falls under
the rate: the trace ids spread that randomness evenly (the golden-ratio sequence), so any run
of records keeps the rate's share of them within a record or two instead of binomially, and
the realised kept figures are compared with the rate and with what the sink received to 25%
(the EMA's spread against a 3 s count at the sink).
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.support.cli_process import CliProcess, serve_config, stop_gracefully
from tests.support.otlp_sink import OtlpSink
from tests.support.ports import free_port

SERVICE = "checkout"
LOUD_BODY = "cache refresh finished for the product catalogue"
QUIET_BODY = "nightly export of the order archive started"
TICK_S = 0.1
GOLDEN = (math.sqrt(5) - 1) / 2
LOUD_PER_TICK = 20  # 200 records/s
QUIET_PER_TICK = 1  # 10 records/s
STREAM_S = 8.0
WARM_UP_S = 2.0
WINDOW_S = 3.0
BAD_INPUTS = ("unreachable", "bad flag", "bad setting")
MODULE = [sys.executable, "-m", "lipservice_otel"]
DEAD_ENDPOINT = f"127.0.0.1:{free_port()}"  # nothing listens there
DAY = 86_400
PRICE_PER_GIB = 0.25
ABSOLUTE = 0.20  # absolute rates: the EMA's warm-up and cycle jitter (module docstring)
RATIO = 0.01  # ratios of baselines over the same cycles
KEPT = 0.25  # realised kept figures against a count at the sink (module docstring)
KEPT_SHARE = 0.15  # kept of all in one baseline's cycles: the rate, but for the warm-up


def trace_id(n: int) -> bytes:
    """The n-th record's trace id (n >= 1): unique, and its last 7 bytes (the randomness the
    sampler draws) the golden-ratio sequence, evenly spread over any run of records."""
    randomness = int((n * GOLDEN) % 1.0 * 2**56)
    return n.to_bytes(9, "big") + randomness.to_bytes(7, "big")


def record(body: str, n: int = 1) -> LogRecord:
    return LogRecord(
        time_unix_nano=1_700_000_000_000_000_000,
        severity_number=9,
        severity_text="INFO",
        body=AnyValue(string_value=body),
        trace_id=trace_id(n),
    )


# Every record of a pattern encodes to the same size: fixed body, fixed-width fields.
LOUD_SIZE = record(LOUD_BODY).ByteSize()
QUIET_SIZE = record(QUIET_BODY).ByteSize()
LOUD_RATE = LOUD_PER_TICK / TICK_S
QUIET_RATE = QUIET_PER_TICK / TICK_S


def tick_request(numbers: Iterator[int]) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=SERVICE))
    )
    records = resource_logs.scope_logs.add().log_records
    records.extend(record(LOUD_BODY, next(numbers)) for _ in range(LOUD_PER_TICK))
    records.extend(record(QUIET_BODY, next(numbers)) for _ in range(QUIET_PER_TICK))
    return request


class Stream:
    """Sends one tick's request to every endpoint every TICK_S, on a fixed schedule."""

    def __init__(self, endpoints: list[str]) -> None:
        self._channels = [grpc.insecure_channel(e) for e in endpoints]
        self._stubs = [logs_service_pb2_grpc.LogsServiceStub(c) for c in self._channels]
        self.ticks = 0
        self._numbers = itertools.count(1)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            request = tick_request(self._numbers)
            for stub in self._stubs:
                try:
                    stub.Export(request, timeout=5)
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code().name}: {error.details()}")
            self.ticks += 1
            next_tick += TICK_S
            self._stop.wait(max(next_tick - time.monotonic(), 0.0))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for channel in self._channels:
            channel.close()


def report_flags(control: str, *flags: str) -> list[str]:
    return [*MODULE, "report", "--control-plane", control, *flags]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def bad_input_commands(control: str) -> list[list[str]]:
    """A dead endpoint; a bad price as a flag; a bad price as a setting of `serve`."""
    return [
        report_flags(DEAD_ENDPOINT),
        report_flags(control, "--price-per-gib", "-2"),
        [*MODULE, "serve", "--set", "report.price_per_gib=-1"],
    ]


def loud_records(sink: OtlpSink) -> int:
    return sum(record.body.string_value == LOUD_BODY for _, record in sink.records())


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """Both modes, fed the same stream for STREAM_S; yields what the tests compare."""
    directory = tmp_path_factory.mktemp("savings")
    processes, sinks, controls, endpoints = [], {}, {}, []
    try:
        for mode in ("shadow", "enforce"):
            sink = OtlpSink()
            sink.server.start()
            control = f"127.0.0.1:{free_port()}"
            config = serve_config(
                sink.endpoint,
                # A boost (the stream's start is a new pattern) lasts one cycle, not 300 s.
                analysis={
                    "embedded": True,
                    "interval_s": 1.0,
                    "ema_alpha": 0.7,
                    "anomaly_cooldown_s": 1.0,
                },
                sampler={"report_interval_s": 0.1},
                control={"listen": control},
                policy={"document": {"mode": mode}},
                report={"price_per_gib": PRICE_PER_GIB, "currency": "EUR"},
                ui={"endpoint": ""},
            )
            path = directory / f"{mode}.yaml"
            path.write_text(yaml.safe_dump(config))
            # Both start at once; each is waited for below.
            processes.append(CliProcess(["serve", "--config", str(path)]))
            sinks[mode], controls[mode] = sink, control
            endpoints.append(config["receiver"]["grpc"]["endpoint"])
        for process in processes:
            process.wait_for("lipservice-otel serving")
        stream = Stream(endpoints)
        stream.start()
        page = directory / "savings.html"
        # The reports of the tests, each a process of its own. Those that need no settled
        # figures (the table, a price on the command line, the bad inputs) run during the
        # warm-up, once the first cycles have learned the patterns; the two the figures are
        # compared from, at the end.
        early = {
            "table": report_flags(controls["enforce"]),
            "priced": report_flags(
                controls["enforce"], "--json", "--price-per-gib", "1", "--currency", "c"
            ),
            **dict(zip(BAD_INPUTS, bad_input_commands(controls["shadow"]), strict=True)),
        }
        final = {
            "shadow": report_flags(controls["shadow"], "--json"),
            "enforce": report_flags(controls["enforce"], "--json", "--html", str(page)),
        }
        with ThreadPoolExecutor(len(early) + len(final)) as pool:
            time.sleep(WARM_UP_S)
            started = {name: pool.submit(run, command) for name, command in early.items()}
            time.sleep(STREAM_S - WINDOW_S - WARM_UP_S)
            # The sink's count over the last seconds, when the learned policy has settled.
            window_start = (time.monotonic(), loud_records(sinks["enforce"]))
            time.sleep(WINDOW_S)
            window = (time.monotonic(), loud_records(sinks["enforce"]))
            started.update({name: pool.submit(run, command) for name, command in final.items()})
            done = {name: future.result() for name, future in started.items()}
        stream.stop()
        assert not stream.failures, stream.failures[:3]
        sink_loud_rate = (window[1] - window_start[1]) / (window[0] - window_start[0])
        for name in ("table", "priced", *final):
            assert done[name].returncode == 0, f"{name}: {done[name].stderr}"
        yield {
            "reports": {mode: json.loads(done[mode].stdout) for mode in ("shadow", "enforce")},
            "table": done["table"].stdout,
            "bad_inputs": [done[name] for name in BAD_INPUTS],
            "priced": json.loads(done["priced"].stdout),
            "page": page.read_text(),
            "controls": controls,
            "sinks": sinks,
            "sink_loud_rate": sink_loud_rate,
            "sent_ticks": stream.ticks,
        }
    finally:
        for process in processes:
            stop_gracefully(process)
        for sink in sinks.values():
            sink.server.stop(0)


def rows(report: dict) -> dict[str, dict]:
    (service,) = report["services"]
    assert service["service"] == SERVICE and service["tenant"] == ""
    by_example = {row["example"]: row for row in service["patterns"]}
    return {"loud": by_example[LOUD_BODY], "quiet": by_example[QUIET_BODY]}


def test_shadow_mode_projects_the_savings_of_the_learned_policy(running):
    report = running["reports"]["shadow"]
    assert (report["mode"], report["basis"]) == ("shadow", "projection")
    loud, quiet = rows(report).values()
    # Records/s and bytes/s in: the stream's, to the EMA's tolerance; bytes per record exact.
    assert loud["records_per_second"] == pytest.approx(LOUD_RATE, rel=ABSOLUTE)
    assert quiet["records_per_second"] == pytest.approx(QUIET_RATE, rel=ABSOLUTE)
    assert loud["bytes_per_second"] == pytest.approx(LOUD_RATE * LOUD_SIZE, rel=ABSOLUTE)
    assert loud["bytes_per_second"] / loud["records_per_second"] == pytest.approx(LOUD_SIZE)
    assert quiet["bytes_per_second"] / quiet["records_per_second"] == pytest.approx(QUIET_SIZE)
    # Shares of the service: 200 of 210 records/s; bytes weighted by each size.
    assert loud["record_share"] == pytest.approx(LOUD_RATE / (LOUD_RATE + QUIET_RATE), abs=RATIO)
    loud_bytes, quiet_bytes = LOUD_RATE * LOUD_SIZE, QUIET_RATE * QUIET_SIZE
    assert loud["byte_share"] == pytest.approx(loud_bytes / (loud_bytes + quiet_bytes), abs=RATIO)
    # The budget samples the loud pattern; every record is INFO, so the projection keeps the
    # rate's share of it, and the saved bytes are the rest.
    assert loud["rate"] < 0.5, loud["reason"]
    assert loud["kept_record_share"] == pytest.approx(loud["rate"], rel=1e-9)
    expected_saved = LOUD_RATE * LOUD_SIZE * (1 - loud["rate"])
    assert loud["saved_bytes_per_second"] == pytest.approx(expected_saved, rel=ABSOLUTE)
    assert loud["saved_bytes_per_day"] == pytest.approx(loud["saved_bytes_per_second"] * DAY)
    assert loud["saved_bytes_per_month"] == pytest.approx(loud["saved_bytes_per_day"] * 30)
    assert loud["saved_money_per_month"] == pytest.approx(
        loud["saved_bytes_per_month"] / 2**30 * PRICE_PER_GIB
    )
    assert report["currency"] == "EUR"
    # Totals are the patterns' sums.
    totals = report["totals"]
    assert totals["saved_bytes_per_second"] == pytest.approx(
        loud["saved_bytes_per_second"] + quiet["saved_bytes_per_second"]
    )
    # A projection: the sink got every record (shadow drops nothing).
    sent_loud = running["sent_ticks"] * LOUD_PER_TICK
    received = running["sinks"]["shadow"].wait_for_records(
        running["sent_ticks"] * (LOUD_PER_TICK + QUIET_PER_TICK)
    )
    assert sum(r.body.string_value == LOUD_BODY for _, r in received) == sent_loud


def test_enforce_mode_reports_the_realised_savings(running):
    report = running["reports"]["enforce"]
    assert (report["mode"], report["basis"]) == ("enforce", "realised")
    loud, quiet = rows(report).values()
    assert loud["records_per_second"] == pytest.approx(LOUD_RATE, rel=ABSOLUTE)
    assert loud["bytes_per_second"] / loud["records_per_second"] == pytest.approx(LOUD_SIZE)
    rate = loud["rate"]
    assert rate < 0.5
    # What the receivers kept: the rate's share of the stream ...
    assert loud["kept_record_share"] == pytest.approx(rate, rel=KEPT_SHARE)
    assert loud["kept_records_per_second"] == pytest.approx(LOUD_RATE * rate, rel=KEPT)
    # ... each record counted at its size as received ...
    assert loud["kept_bytes_per_second"] / loud["kept_records_per_second"] == pytest.approx(
        LOUD_SIZE
    )
    # ... and what the sink received of it over the last seconds.
    sink_bytes = running["sink_loud_rate"] * LOUD_SIZE
    assert loud["kept_bytes_per_second"] == pytest.approx(sink_bytes, rel=KEPT)
    assert loud["saved_bytes_per_second"] == pytest.approx(
        loud["bytes_per_second"] - loud["kept_bytes_per_second"]
    )
    # The quiet pattern is rare: kept whole, saves nothing.
    assert quiet["kept_record_share"] == pytest.approx(1.0)
    assert quiet["saved_bytes_per_second"] == pytest.approx(0.0, abs=1.0)


def test_table_and_html_page(running):
    table = running["table"]
    assert "enforce mode" in table and "TOTAL" in table
    assert LOUD_BODY[:40] in table and "EUR" in table
    page = running["page"]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert LOUD_BODY in page and "<script" not in page
    assert "http://" not in page and "https://" not in page  # no external asset
    # A price asked for on the command line instead of the analysis' own.
    priced = running["priced"]
    assert (priced["price_per_gib"], priced["currency"]) == (1.0, "c")
    totals = priced["totals"]
    assert totals["saved_money_per_month"] == pytest.approx(totals["saved_bytes_per_month"] / 2**30)


def test_bad_inputs_get_clear_errors(running):
    unreachable, bad_flag, bad_setting = running["bad_inputs"]
    assert unreachable.returncode == 3
    assert DEAD_ENDPOINT in unreachable.stderr and "UNAVAILABLE" in unreachable.stderr
    assert bad_flag.returncode == 2 and "report.price_per_gib" in bad_flag.stderr
    assert bad_setting.returncode == 2 and "report.price_per_gib" in bad_setting.stderr
