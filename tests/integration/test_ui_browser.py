"""The live page in a real browser (Debian's chromium, headless, through its chromedriver)
against a real `serve` with the embedded analysis, fed a scripted stream whose volumes the
test knows and whose kept records it counts at the sink."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.ci import missing
from tests.support.cli_process import (
    metric,
    serve_config,
    start_analyze,
    start_serve,
    stop_gracefully,
)
from tests.support.ports import free_port
from tests.support.traffic import Pattern, TrafficSender

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What this machine's chromium needs to run headless, offline and as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1300",
)
BEARER = "reader-token-0123456789"
ADMIN = "admin-token-0123456789"
PATTERNS = [
    Pattern("login", "user {n} logged in from the mobile app", 300),
    Pattern("cache", "cache miss for catalogue key {n}", 120),
    Pattern("payment", "payment {n} settled by the card processor", 40),
]
# Comes once the analysis has learned the others: a new pattern, an anomaly as it happens.
NEWCOMER = Pattern("refund", "refund {n} queued for manual review", 150)
EVERYONE = [*PATTERNS, NEWCOMER]


def browser(profile: Path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (make test installs the test extra)")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        missing("Debian's chromium and chromium-driver are not installed (make chromium)")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Given the driver's path, selenium has nothing to look up or download.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def eventually(read, done, timeout_s: float = 20.0):
    """read() once done(read()) holds. The page reloads and redraws meanwhile, so an element
    that is not there yet (or was just replaced) is looked up again."""
    deadline = time.monotonic() + timeout_s
    value = None
    while True:
        try:
            value = read()
            if done(value):
                return value
        except Exception as exc:  # selenium's NoSuchElement / StaleElementReference
            value = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s:.0f} s")
        time.sleep(0.2)


def settled_count(read, quiet_s: float = 1.0, timeout_s: float = 20.0) -> int:
    """len(read()) once it has not changed for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    count, since = len(read()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = len(read())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return count
    raise AssertionError(f"the sink still grows after {timeout_s:.0f} s ({count} records)")


def active_sort(driver) -> tuple[str, str] | None:
    return driver.execute_script(
        "const b = document.querySelector('button.sort.active');"
        "return b ? [b.dataset.sort, b.dataset.order] : null;"
    )


def sort_table(driver, key: str, order: str) -> list[dict]:
    """Click `key`'s header (a click sorts by it, loudest first, or flips its order) until
    the table says it is sorted by `key` in `order`; the rows then."""
    from selenium.webdriver.common.by import By

    for _ in range(2):
        before = active_sort(driver)
        if before == [key, order]:
            return driver.execute_script(ROWS_SCRIPT)
        driver.find_element(By.CSS_SELECTOR, f"button.sort[data-sort={key}]").click()
        eventually(lambda: active_sort(driver), lambda now, before=before: now != before)
    assert active_sort(driver) == [key, order]
    return driver.execute_script(ROWS_SCRIPT)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def status_of(url: str, headers: dict | None = None, data: bytes | None = None) -> int | None:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return None  # nothing listens


ROWS_SCRIPT = """
return Array.from(document.querySelectorAll('#patterns tbody tr')).map(row => ({
  id: row.dataset.patternId,
  example: row.querySelector('.example').textContent,
  rate: Number(row.querySelector('.rate').dataset.value),
  volume: Number(row.querySelector('.volume').dataset.value),
  bytes: Number(row.querySelector('.bytes').dataset.value),
  window: row.querySelector('.window-records').dataset.value,
  sparkline: row.querySelectorAll('.spark').length,
}));
"""

POST_WITHOUT_CSRF = """
const done = arguments[arguments.length - 1];
fetch('/api/pin', {method: 'POST', credentials: 'same-origin',
  headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({pattern_id: arguments[0], rate: 0, for_s: 60})})
  .then(response => done(response.status));
"""


@pytest.fixture
def served(tmp_path, sink, monkeypatch):
    ui = f"127.0.0.1:{free_port()}"
    # The suite turns the page off for every process (tests/conftest.py); this one shows it.
    monkeypatch.delenv("LIPSERVICE_UI__ENDPOINT", raising=False)
    config = serve_config(
        sink.endpoint,
        analysis={"embedded": True, "interval_s": 1.0, "target_reduction": 0.8},
        sampler={"report_interval_s": 0.3},
        control={
            "listen": f"127.0.0.1:{free_port()}",
            "auth": {"bearer_token": BEARER, "admin_token": ADMIN},
        },
        ui={"endpoint": ui, "bucket_s": 2.0, "history_s": 120.0},
    )
    process = start_serve(tmp_path, config)
    yield process, config, f"http://{ui}"
    stop_gracefully(process)


def test_live_page_shows_the_truth_sorts_and_pins(served, sink, tmp_path):
    process, config, url = served
    sender = TrafficSender(config["receiver"]["grpc"]["endpoint"], service="checkout")
    try:
        sender.run(PATTERNS, seconds=2.5, tag="steady")
        time.sleep(1.5)  # a cycle or two: the analysis knows these patterns
        sender.run(EVERYONE, seconds=1.0, tag="newcomer")
    finally:
        sender.close()
    sent = {
        p.name: sum(n for (_, name, _), n in sender.sent.items() if name == p.name)
        for p in EVERYONE
    }
    total = sum(sent.values())
    # Kept records are forwarded: what the sink holds once it stops growing is the truth.
    kept = settled_count(sink.records)

    # The process's own counters agree with the stream.
    metrics = config["telemetry"]["metrics_endpoint"]
    assert metric(metrics, "lipservice_receiver_accepted_records_total") == total
    assert metric(metrics, "lipservice_sampler_kept_records_total") == kept

    # Nothing without a credential; a bearer header is enough for the API.
    assert status_of(f"{url}/api/summary") == 401
    assert status_of(f"{url}/api/summary", {"Authorization": f"Bearer {BEARER}"}) == 200

    driver = browser(tmp_path / "profile")
    try:
        driver.get(url)
        from selenium.webdriver.common.by import By

        # A wrong token is refused, the admin token signs in.
        eventually(lambda: driver.find_element(By.ID, "signin-section").is_displayed(), bool)
        driver.find_element(By.ID, "token").send_keys("not-the-token-at-all")
        driver.find_element(By.ID, "signin-button").click()
        eventually(lambda: driver.find_element(By.ID, "signin-refused").is_displayed(), bool)
        driver.find_element(By.ID, "token").send_keys(ADMIN)
        driver.find_element(By.ID, "signin-button").click()
        cookie = eventually(lambda: driver.get_cookie("lipservice_session"), bool)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # The numbers shown are the stream's: received as sent, kept as the sink got.
        received = eventually(
            lambda: driver.find_element(By.ID, "received").text, lambda t: t == f"{total:,}"
        )
        assert number(received) == total
        assert number(driver.find_element(By.ID, "kept").text) == kept
        assert number(driver.find_element(By.ID, "dropped").text) == total - kept
        assert 0 < kept < total  # the analysis sampled it down
        services = driver.find_elements(By.CSS_SELECTOR, "#services tbody tr")
        assert [row.get_attribute("data-service") for row in services] == ["checkout"]

        rows = eventually(
            lambda: driver.execute_script(ROWS_SCRIPT),
            lambda r: len(r) == len(EVERYONE) and all(row["window"] for row in r),
        )
        ids = {}
        for pattern in EVERYONE:
            words = [part for part in pattern.body.split("{n}") if part]
            (row,) = [r for r in rows if all(word in r["example"] for word in words)]
            name = pattern.name
            assert number(row["window"]) == sent[name], name
            assert row["sparkline"] == 1
            ids[name] = row["id"]
        anomaly = eventually(
            lambda: driver.find_elements(By.CSS_SELECTOR, "#anomalies li[data-kind=new_pattern]"),
            bool,
        )
        assert ids["refund"] in anomaly[0].text

        # Sorting: each column both ways, the rows in the order the header says.
        for key, field, order in (
            ("bytes", "bytes", "desc"),
            ("volume", "volume", "desc"),
            ("volume", "volume", "asc"),
            ("rate", "rate", "desc"),
            ("rate", "rate", "asc"),
        ):
            values = [row[field] for row in sort_table(driver, key, order)]
            assert values == sorted(values, reverse=order == "desc"), (key, order)

        # A change without the session's CSRF token is refused.
        target = rows[0]["id"]
        assert driver.execute_async_script(POST_WITHOUT_CSRF, target) == 403

        # Pinning through the form: a new policy version, and the pin listed with its expiry.
        before = int(driver.find_element(By.ID, "status").get_attribute("data-version"))
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-pattern-id='{target}']")
        row.find_element(By.CSS_SELECTOR, "button.pin-this").click()
        rate = driver.find_element(By.ID, "pin-rate")
        rate.clear()
        rate.send_keys("0.5")
        driver.find_element(By.ID, "pin-button").click()
        result = eventually(
            lambda: driver.find_element(By.ID, "pin-result").text, lambda t: "policy version" in t
        )
        pinned_version = int(result.rsplit(" ", 1)[1])
        assert pinned_version > before
        pin = eventually(
            lambda: driver.find_elements(By.CSS_SELECTOR, f"#pins li[data-pattern-id='{target}']"),
            bool,
        )[0]
        assert "at rate 0.5 until" in pin.text
        eventually(
            lambda: int(driver.find_element(By.ID, "status").get_attribute("data-version")),
            lambda v: v >= pinned_version,
        )
        history = driver.find_elements(By.CSS_SELECTOR, "#history li")
        assert any(int(item.get_attribute("data-version")) == pinned_version for item in history)

        driver.execute_script("window.scrollTo(0, 0)")
        screenshot = tmp_path / "live-page.png"
        driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
        copy_to = os.environ.get("LIVE_PAGE_SCREENSHOT")
        if copy_to:
            shutil.copyfile(screenshot, copy_to)
    finally:
        driver.quit()

    # The same JSON as the page, over the bearer header: the pin is in the policy.
    request = urllib.request.Request(
        f"{url}/api/pins", headers={"Authorization": f"Bearer {BEARER}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        pins = json.load(response)["pins"]
    assert [(p["pattern_id"], p["rate"], p["in_policy"]) for p in pins] == [(target, 0.5, True)]
    assert process.process.poll() is None


def test_analyze_serves_the_page_and_stops_with_it(tmp_path, monkeypatch):
    monkeypatch.delenv("LIPSERVICE_UI__ENDPOINT", raising=False)
    ui = f"127.0.0.1:{free_port()}"
    process = start_analyze(tmp_path, f"127.0.0.1:{free_port()}", {"ui.endpoint": ui})
    try:
        process.wait_for(f"live page on http://{ui}/")
        assert status_of(f"http://{ui}/") == 200
        assert status_of(f"http://{ui}/api/summary") == 200  # no tokens: open on loopback
    finally:
        code, _ = stop_gracefully(process)
    assert code == 0
    assert status_of(f"http://{ui}/") is None
