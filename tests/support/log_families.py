"""Hypothesis strategies for log bodies: families of one template with varying values (the
shape of real traffic, generated here: tests never read ../shared/), and hostile text."""

from __future__ import annotations

import json
import random
import string

from hypothesis import strategies as st

_WORDS = st.sampled_from(
    [
        *("user", "session", "request", "connection", "block", "server", "worker", "pod"),
        *("cache", "took", "failed", "ok", "retry", "GET", "POST", "ms", "s", "KB", "MB"),
        *("Jun", "Mon", "[Tue,", "(Oct", "ssh2", "eth0", "ipv4", "java.io.File", "app.log"),
        *("done:", "status=200", "->", "=", ":", ",", ";", "(", ")", "[", "]", "{}"),
    ]
)
_HEX = st.text("0123456789abcdef", min_size=8, max_size=24)
_VALUES = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    _HEX,
    st.uuids().map(str),
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses(v=4), st.integers(1, 65535)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.integers(0, 10**6).map(lambda n: f"blk_-{n}"),
    st.integers(0, 999).map(lambda n: f"/var/data/{n}/part"),
    st.integers(0, 999).map(lambda n: f"https://host{n}.example.com/x?id={n}"),
    st.integers(0, 999).map(lambda n: f"user{n}@mail.example.org"),
    st.integers(0, 999).map(lambda n: f"pod-{n}x2k"),
    st.integers(0, 99).map(lambda n: f"{n}.{n}ms"),
    st.integers(0, 99).map(lambda n: f"key={n}"),
    st.integers(0, 99).map(lambda n: f"storage{n:03d}"),
    st.integers(0, 9).map(lambda n: f"MININT-FNANLI{n}"),
)
# A template: words and value slots; a family fills the slots again and again.
_TEMPLATES = st.lists(st.one_of(_WORDS, st.just(None)), min_size=1, max_size=14)


@st.composite
def log_families(draw, max_members: int = 6) -> list[str]:
    """Bodies of one family: the same words, the values drawn anew for each member."""
    template = draw(_TEMPLATES)
    separator = draw(st.sampled_from([" ", " ", "  ", "\t"]))
    return [
        separator.join(word if word is not None else draw(_VALUES) for word in template)
        for _ in range(draw(st.integers(1, max_members)))
    ]


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["msg", "level", "user_1", "a", "b"]), inner, max_size=4),
    ),
    max_leaves=12,
)

log_bodies = st.one_of(
    log_families().map(" ".join),
    st.text(max_size=300),
    st.text(string.printable, max_size=300),
    st.text(alphabet=string.ascii_letters + string.digits + " .:-_=/\"'@", max_size=200),
    _JSON.map(json.dumps),
    st.builds(lambda a, b: f'{a} "{b}" done', _WORDS, st.text(max_size=30)),
)


# ---- plain generators for deterministic families (pattern merging tests) ----


def names(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct lowercase names of letters only, which the signature keeps as words."""
    found: set[str] = set()
    while len(found) < count:
        found.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randrange(4, 9))))
    return sorted(found)


def hosts(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct host names (``web-east``, ``db-kqzv``): words with a dash, no digits."""
    roles = ("web", "db", "cache", "edge", "queue")
    return [f"{rng.choice(roles)}-{name}" for name in names(count, rng)]


def ids(kind: str, rng: random.Random) -> str:
    """An id of one kind, as a store prints them: ``chunk_12_3``, ``snapshot_7``."""
    return f"{kind}_{rng.randrange(10_000)}" + (
        f"_{rng.randrange(99)}" if rng.random() < 0.5 else ""
    )


def records(family, count: int, rng: random.Random) -> list[str]:
    """``count`` bodies of one family: ``family(rng)`` renders one with fresh values."""
    return [family(rng) for _ in range(count)]
