"""The report as a table, JSON and one HTML page, from a hand-built report."""

from __future__ import annotations

import html.parser
import json

from lipservice_otel.report.codec import savings_from_proto, savings_to_proto
from lipservice_otel.report.render import format_bytes, render_html, render_json, render_text
from lipservice_otel.report.savings import Price, compute_savings, savings_to_dict
from tests.unit.report.test_savings import pattern, policy, two_patterns

NO_PRICE = Price()


def report(price: Price = NO_PRICE, mode: str = "enforce"):
    state = two_patterns()
    state.patterns["quiet"].examples = ['<script>alert("x")</script> & more']
    return compute_savings(state, policy(mode), price)


def test_bytes_read_in_binary_units():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_bytes(2**60) == "1024.0 PiB"


def test_the_table_has_a_row_per_service_and_pattern_and_the_totals():
    lines = render_text(report(Price(0.5, "EUR"))).splitlines()
    assert lines[0] == "Savings (enforce mode: what policy v7 saves (realised)); price 0.5 EUR/GiB"
    # 17,600 bytes/s saved: 1,520,640,000 bytes (1.4 GiB) a day, 42.5 GiB (21.24 EUR) a month.
    assert "saves 1.4 GiB/day, 42.5 GiB/month (21.24 EUR/month)" in lines[1]
    header, service, loud, quiet, total = lines[3:]
    assert header.split()[:3] == ["SERVICE", "PATTERN", "RATE"] and "MONEY/MONTH" in header
    assert service.split()[:2] == ["api", "*"]
    assert loud.split()[:4] == ["api", "loud", "0.1", "budget"]
    assert "12.00" in loud.split() and "2.3" in loud.split()  # kept records/s, KiB/s
    assert quiet.split()[:4] == ["api", "quiet", "1", "rare"]
    assert total.startswith("TOTAL") and "21.24" in total.split()
    assert not any(line != line.rstrip() for line in lines)


def test_without_a_price_there_is_no_money_column():
    text = render_text(report())
    assert "MONEY" not in text and "price" not in text.splitlines()[0]
    assert render_text(report(mode="shadow")).startswith(
        "Savings (shadow mode: what enforcing policy v7 would save)"
    )


def test_tenants_get_a_column_when_there_are_any():
    state = two_patterns()
    state.patterns["other"] = pattern("other", 1.0, 10.0, {"info": 1}, 1.0, service="web")
    state.patterns["other"].tenant = "team-a"
    lines = render_text(compute_savings(state, policy("enforce"), Price())).splitlines()
    assert lines[3].split()[:3] == ["TENANT", "SERVICE", "PATTERN"]
    # Each tenant's row, then its services and their patterns; the totals last.
    firsts = [line.split()[:3] for line in lines[4:]]
    assert firsts[0] == ["*", "*", "101.00"]  # the tenant "" (no tenant) first: most bytes
    assert ["team-a", "*", "*"] in firsts
    assert firsts[firsts.index(["team-a", "*", "*"]) + 1] == ["team-a", "web", "*"]
    assert firsts[-1][0] == "TOTAL"


def test_json_is_the_documented_dict():
    built = report(Price(1.0))
    assert json.loads(render_json(built)) == savings_to_dict(built)


class Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources.extend(v for k, v in attrs if k in ("src", "href") and v)

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "td":
            self.cells.append(data)


def test_the_page_is_self_contained_and_escapes_what_it_shows():
    text = render_html(report(Price(0.5, "EUR")))
    page = Page()
    page.feed(text)
    assert "script" not in page.tags and page.sources == []  # nothing to fetch or run
    assert "table" in page.tags and "style" in page.tags
    # The example body is shown as text, not markup.
    assert '<script>alert("x")</script> & more' in page.cells
    assert "&lt;script&gt;" in text
    assert "21.24 EUR" in text


def test_the_wire_carries_the_whole_report():
    for built in (report(Price(0.5, "EUR")), report(mode="shadow")):
        assert savings_from_proto(savings_to_proto(built)) == built
