"""The docs' reference tables cannot drift from the code, nor their links from the files."""

from __future__ import annotations

import dataclasses
import re
import typing
import urllib.parse
import urllib.request
from pathlib import Path

import lipservice_otel
from lipservice_otel.settings import Settings
from lipservice_otel.telemetry import METRICS
from tests.support.running_service import make_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
METRICS_DOC = (DOCS / "metrics.md").read_text()


def setting_defaults(cls=Settings, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from setting_defaults(hints[f.name], key + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield key, default


def documented_defaults(text: str = CONFIGURATION) -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z_.]+)` \| [^|]+(?:\\\|[^|]+)* \| `([^`]*)` \|", text, re.M)
    return dict(rows)


def as_yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == {}:
        return "{}"
    return str(value)


def test_every_setting_is_documented_with_its_default():
    documented = documented_defaults()
    for key, default in setting_defaults():
        assert key in documented, f"{key} missing from the table in docs/configuration.md"
        assert documented[key] == as_yaml(default), key
    assert set(documented) == {key for key, _ in setting_defaults()}


def test_every_metric_is_documented_and_exposed(start_service, sink):
    running = start_service(make_settings(sink.endpoint))
    for spec in METRICS:
        assert f"| `{spec.name}` | {spec.kind} | {spec.unit} |" in METRICS_DOC, spec.name
    url = f"http://127.0.0.1:{running.service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        exposed = response.read().decode()
    for spec in METRICS:
        assert f"# HELP {spec.name}" in exposed, spec.name


def test_public_api_is_complete():
    for name in lipservice_otel.__all__:
        assert hasattr(lipservice_otel, name), name


# Links: every relative link in README.md and docs/*.md names an existing file, and its
# #anchor (if any) a heading of that file.

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's heading id: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text only
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's id, with GitHub's -1, -2, ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = anchor(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else f"{base}-{count}")
    return ids


def relative_links(path: Path):
    for target in LINK.findall(prose(path.read_text())):
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme or target.startswith("//"):
            continue  # http:, https:, mailto:, ...
        yield target


DOC_FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_anchor_follows_github():
    assert anchor("Learning the policy: the loop") == "learning-the-policy-the-loop"
    assert anchor("Exporters: OTLP/HTTP and PostHog") == "exporters-otlphttp-and-posthog"
    assert anchor("The `sampler.max_body_chars` limit") == "the-samplermax_body_chars-limit"
    assert anchors("# A\n## A\n```\n# A\n```\n### A!\n") == {"a", "a-1", "a-2"}


def test_every_relative_link_resolves():
    checked = 0
    for source in DOC_FILES:
        for target in relative_links(source):
            path_part, _, fragment = target.partition("#")
            path_part = urllib.parse.unquote(path_part)
            resolved = (source.parent / path_part).resolve() if path_part else source
            where = f"{source.relative_to(ROOT)}: ({target})"
            assert resolved.exists(), f"{where} names a missing file"
            assert resolved.is_relative_to(ROOT), f"{where} leaves the repository"
            if fragment:
                assert resolved.is_file() and resolved.suffix == ".md", f"{where}: not Markdown"
                ids = anchors(resolved.read_text())
                assert urllib.parse.unquote(fragment) in ids, f"{where} names a missing heading"
            checked += 1
    assert checked, "no relative links found: the link pattern is broken"
