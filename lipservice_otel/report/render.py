"""The savings report as people and machines read it: a text table, JSON, one HTML page.

Pure functions from a `SavingsReport` to a string. The HTML page is self-contained (inline
style, no script, no external asset), so it can be mailed or archived as one file.
"""

from __future__ import annotations

import html
import json

from lipservice_otel.report.savings import (
    BASIS_PROJECTION,
    Figures,
    PatternSavings,
    Price,
    SavingsReport,
    ServiceSavings,
    TenantSavings,
    savings_to_dict,
)

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
EXAMPLE_WIDTH = 50
ALL_PATTERNS = "*"  # the pattern column of a service's own row
# A row of the table: a tenant's, a service's, a pattern's, or the totals (None).
Row = TenantSavings | ServiceSavings | PatternSavings | None
_ROW_KINDS = {TenantSavings: "tenant", ServiceSavings: "service"}  # the HTML row's class


def format_bytes(size: float) -> str:
    """Binary units, one decimal: 1536 -> '1.5 KiB'."""
    for unit in BYTE_UNITS[:-1]:
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {BYTE_UNITS[-1]}"


def format_money(amount: float | None, price: Price) -> str:
    return "" if amount is None else f"{amount:,.2f} {price.currency}"


def headline(report: SavingsReport) -> str:
    """What the figures are: a projection in shadow mode, realised in enforce mode."""
    if report.basis == BASIS_PROJECTION:
        what = f"shadow mode: what enforcing policy v{report.policy_version} would save"
    else:
        what = f"enforce mode: what policy v{report.policy_version} saves (realised)"
    price = (
        f"; price {report.price.per_gib:g} {report.price.currency}/GiB"
        if report.price.per_gib > 0
        else ""
    )
    return f"Savings ({what}){price}"


def summary(report: SavingsReport) -> str:
    """One line of totals."""
    totals, price = report.totals, report.price
    line = (
        f"in {totals.records_per_second:,.1f} records/s, "
        f"{format_bytes(totals.bytes_per_second)}/s; kept {totals.kept_record_share:.1%} of "
        f"records, {totals.kept_byte_share:.1%} of bytes; saves "
        f"{format_bytes(totals.saved_bytes_per_day)}/day, "
        f"{format_bytes(totals.saved_bytes_per_month)}/month"
    )
    money = price.of(totals.saved_bytes_per_month)
    if money is not None:
        line += f" ({format_money(money, price)}/month)"
    return line


def render_json(report: SavingsReport) -> str:
    return json.dumps(savings_to_dict(report), indent=2)


def render_text(report: SavingsReport) -> str:
    tenants = any(s.tenant for s in report.services)
    priced = report.price.per_gib > 0
    header = [
        *(["TENANT"] if tenants else []),
        "SERVICE",
        "PATTERN",
        "RATE",
        "REASON",
        "IN REC/S",
        "IN BYTES/S",
        "KEPT REC/S",
        "KEPT BYTES/S",
        "SAVED/DAY",
        "SAVED/MONTH",
        *(["MONEY/MONTH"] if priced else []),
        "SHARE REC",
        "SHARE BYTES",
        "EXAMPLE",
    ]
    rows = [header]
    rows.extend(_text_row(report, row, tenants, priced) for row in ordered_rows(report, tenants))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    table = "\n".join(
        (
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[-1]
        ).rstrip()
        for row in rows
    )
    return f"{headline(report)}\n{summary(report)}\n\n{table}"


def ordered_rows(report: SavingsReport, tenants: bool) -> list[Row]:
    """Rows as the table shows them: each tenant (when there are tenants) before its services,
    each service before its patterns, the totals (None) last."""
    rows: list[Row] = []
    for tenant in report.tenants if tenants else (None,):
        if tenant is not None:
            rows.append(tenant)
        for service in report.services:
            if tenant is None or service.tenant == tenant.tenant:
                rows.append(service)
                rows.extend(service.patterns)
    rows.append(None)
    return rows


def describe(
    report: SavingsReport, row: Row
) -> tuple[list[str], tuple[str, str], Figures, tuple[float, float], str]:
    """A row's names (tenant, service, pattern), rule (rate, reason), figures, shares and
    example."""
    if row is None:
        return ["TOTAL", "", ""], ("", ""), report.totals, (1.0, 1.0), ""
    shares = (row.record_share, row.byte_share)
    if isinstance(row, TenantSavings):
        return [row.tenant, ALL_PATTERNS, ALL_PATTERNS], ("", ""), row.figures, shares, ""
    if isinstance(row, ServiceSavings):
        return [row.tenant, row.service, ALL_PATTERNS], ("", ""), row.figures, shares, ""
    rule = (f"{row.rate:g}", row.reason)
    return [row.tenant, row.service, row.pattern_id], rule, row.figures, shares, row.example


def _names(names: list[str], tenants: bool) -> list[str]:
    # Without tenants the tenant column is left out; the totals' label moves to the next one.
    return names if tenants else [names[0] if names[0] == "TOTAL" else names[1], names[2]]


def _text_row(report: SavingsReport, row: Row, tenants: bool, priced: bool) -> list[str]:
    names, rule, figures, shares, example = describe(report, row)
    money = report.price.of(figures.saved_bytes_per_month)
    return [
        *_names(names, tenants),
        *rule,
        f"{figures.records_per_second:,.2f}",
        format_bytes(figures.bytes_per_second),
        f"{figures.kept_records_per_second:,.2f}",
        format_bytes(figures.kept_bytes_per_second),
        format_bytes(figures.saved_bytes_per_day),
        format_bytes(figures.saved_bytes_per_month),
        *([format_money(money, report.price)] if priced else []),
        f"{shares[0]:.1%}",
        f"{shares[1]:.1%}",
        _shorten(example),
    ]


def _shorten(text: str, width: int = EXAMPLE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1d232a}
h1{font-size:1.4em;margin:0 0 .3em}
p.summary{margin:0 0 1.5em;color:#46505a}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1.5em}
.card{border:1px solid #d5dbe1;border-radius:6px;padding:.8em 1.2em;min-width:11em}
.card b{display:block;font-size:1.3em}
table{border-collapse:collapse;width:100%}
th,td{padding:.3em .6em;border-bottom:1px solid #e4e8ec;text-align:right;white-space:nowrap}
th{background:#f3f5f7;position:sticky;top:0}
td.text,th.text{text-align:left}
td.example{white-space:normal;font-family:ui-monospace,monospace;font-size:.9em;color:#46505a}
tr.tenant td{background:#eef2f5;font-weight:700}
tr.service td{background:#f8fafb;font-weight:600}
tr.total td{font-weight:700;border-top:2px solid #1d232a}
""".strip()


def render_html(report: SavingsReport) -> str:
    """One self-contained page: a headline, the totals as cards, the table."""
    totals, price = report.totals, report.price
    cards = [
        ("records in", f"{totals.records_per_second:,.1f}/s"),
        ("bytes in", f"{format_bytes(totals.bytes_per_second)}/s"),
        ("kept", f"{totals.kept_byte_share:.1%} of bytes"),
        ("saved per day", format_bytes(totals.saved_bytes_per_day)),
        ("saved per month", format_bytes(totals.saved_bytes_per_month)),
    ]
    money = price.of(totals.saved_bytes_per_month)
    if money is not None:
        cards.append(("money saved per month", format_money(money, price)))
    tenants = any(s.tenant for s in report.services)
    columns = [
        *(["tenant"] if tenants else []),
        "service",
        "pattern",
        "rate",
        "reason",
        "records/s in",
        "bytes/s in",
        "records/s kept",
        "bytes/s kept",
        "saved/day",
        "saved/month",
        *(["money/month"] if money is not None else []),
        "share of records",
        "share of bytes",
        "example",
    ]
    text_columns = {"tenant", "service", "pattern", "reason", "example"}
    head = "".join(
        f'<th class="text">{c}</th>' if c in text_columns else f"<th>{c}</th>" for c in columns
    )
    body = [_html_row(report, row, tenants) for row in ordered_rows(report, tenants)]
    card_html = "".join(
        f'<div class="card">{html.escape(label)}<b>{html.escape(value)}</b></div>'
        for label, value in cards
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        "<title>LipService savings report</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(headline(report))}</h1>"
        f'<p class="summary">{html.escape(summary(report))}</p>'
        f'<div class="cards">{card_html}</div>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>\n"
    )


def _html_row(report: SavingsReport, row: Row, tenants: bool) -> str:
    names, rule, figures, shares, example = describe(report, row)
    kind = "total" if row is None else _ROW_KINDS.get(type(row), "pattern")
    cells = [f'<td class="text">{html.escape(t)}</td>' for t in _names(names, tenants)]
    cells.append(f"<td>{html.escape(rule[0])}</td>")
    cells.append(f'<td class="text">{html.escape(rule[1])}</td>')
    cells.extend(f"<td>{html.escape(v)}</td>" for v in _html_figures(figures, report.price))
    cells.extend(f"<td>{share:.1%}</td>" for share in shares)
    cells.append(f'<td class="text example">{html.escape(_shorten(example, 120))}</td>')
    return f'<tr class="{kind}">{"".join(cells)}</tr>'


def _html_figures(figures: Figures, price: Price) -> list[str]:
    values = [
        f"{figures.records_per_second:,.2f}",
        format_bytes(figures.bytes_per_second),
        f"{figures.kept_records_per_second:,.2f}",
        format_bytes(figures.kept_bytes_per_second),
        format_bytes(figures.saved_bytes_per_day),
        format_bytes(figures.saved_bytes_per_month),
    ]
    money = price.of(figures.saved_bytes_per_month)
    if money is not None:
        values.append(format_money(money, price))
    return values
