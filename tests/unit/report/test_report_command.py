"""`lipservice-otel report` in-process against a real control plane on a thread of its own."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from lipservice_otel.analysis.config import AnalysisConfig
from lipservice_otel.analysis.loop import AnalysisLoop
from lipservice_otel.app.cli import main
from lipservice_otel.control.security import ControlTokens
from lipservice_otel.control.server import ControlPlaneService, start_control_server
from lipservice_otel.policy.model import Policy
from lipservice_otel.report.savings import Price
from lipservice_otel.store.memory import MemoryStore

TOKEN = "bearer-token-for-the-report"


@pytest.fixture(scope="module")
def control_plane():
    """A control plane in front of an analysis loop that knows no pattern yet."""
    loop = asyncio.new_event_loop()
    found: dict = {}

    async def serve():
        store = MemoryStore(None, history_limit=10)
        analysis = AnalysisLoop(AnalysisConfig(), store, Policy(version=3, mode="shadow"))
        service = ControlPlaneService(analysis, store, price=Price(2.0, "EUR"))
        found["server"], port = await start_control_server(
            service, "127.0.0.1:0", tokens=ControlTokens(bearer=TOKEN)
        )
        found["endpoint"] = f"127.0.0.1:{port}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    yield found["endpoint"]
    asyncio.run_coroutine_threadsafe(found["server"].stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_json_with_a_token_file(control_plane, tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    code = main(["report", "--control-plane", control_plane, "--token-file", str(token), "--json"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    # Nothing learned yet: no services, nothing saved, the analysis' own price.
    assert (document["mode"], document["basis"], document["policy_version"]) == (
        "shadow",
        "projection",
        3,
    )
    assert document["services"] == [] and document["totals"]["saved_money_per_month"] == 0.0
    assert (document["price_per_gib"], document["currency"]) == (2.0, "EUR")


def test_the_table_of_nothing_is_its_header_and_totals(control_plane, capsys):
    assert main(["report", "--control-plane", control_plane, "--token", TOKEN]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Savings (shadow mode") and lines[-1].startswith("TOTAL")


def test_a_page_that_cannot_be_written_is_an_error(control_plane, tmp_path, capsys):
    target = tmp_path / "missing" / "savings.html"
    code = main(
        ["report", "--control-plane", control_plane, "--token", TOKEN, "--html", str(target)]
    )
    assert code == 2
    assert f"--html {target}" in capsys.readouterr().err


def test_a_missing_token_is_refused_with_the_status(control_plane, capsys):
    assert main(["report", "--control-plane", control_plane]) == 3
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_a_bad_currency_flag_names_the_setting(control_plane, capsys):
    assert main(["report", "--control-plane", control_plane, "--currency", ""]) == 2
    assert "report.currency" in capsys.readouterr().err
