"""The compiled signature gives text/signature.py's template for every body.

The extension pairs and masks quoted strings itself, masks tokens by signature.py's token rules
compiled (all but the quoting ones of _mask_core), through its own memos, with `_mask_token`
itself for the tokens those do not cover, joins context words, and hands whole bodies to
signature.py where it has no path (non-ASCII, JSON): any difference here is a bug in one of
those rules as compiled, or in the splitting, memo keying, prefix or join.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lipservice_otel.text.signature import _mask_token, template_of_text
from tests.support.log_families import log_bodies, log_families
from tests.support.native import native_module


@settings(max_examples=400, deadline=None)
@given(family=log_families())
def test_log_families_sign_alike(family):
    native = native_module()
    for body in family:
        assert native.template_of_text(body, 2048) == template_of_text(body, 2048), body


@settings(max_examples=600, deadline=None)
@given(body=log_bodies, max_chars=st.sampled_from([16, 40, 2048]))
def test_any_text_signs_alike(body, max_chars):
    native = native_module()
    assert native.template_of_text(body, max_chars) == template_of_text(body, max_chars)


def test_memo_hits_give_what_a_miss_gave():
    native = native_module()
    bodies = [f"worker {n} took {n}.5 ms on host-{n}.example.com" for n in range(3000)]
    first = [native.template_of_text(b, 2048) for b in bodies]
    again = [native.template_of_text(b, 2048) for b in reversed(bodies)]
    assert first == list(reversed(again)) == [template_of_text(b, 2048) for b in bodies]


def test_the_common_body_stays_native():
    native = native_module()
    native.template_of_text("warm 12 up", 2048)
    bodies_before, _ = native.signature_calls()
    for n in range(1000):
        native.template_of_text(f"request {n} served in {n % 50} ms", 2048)
    bodies_after, _ = native.signature_calls()
    assert bodies_after == bodies_before


# Characters the token rules read: digits, hex and other letters, the separators of numbers,
# ids, hosts, paths, key=value and e-mail, the strip characters, quotes and backslashes.
_TOKEN_CHARS = st.sampled_from(list("0123456789abcdefxyzABCFXZ_-.:,+/@=()[]{}<>\"'\\!?;~#%*"))
_TOKEN_PARTS = st.one_of(
    st.lists(_TOKEN_CHARS, min_size=1, max_size=12).map("".join),
    st.sampled_from(["com", "io", "org", "http://", "://", "<*>", "ssh2", "-1", "0x", "::"]),
)
_NUMBERISH = st.lists(st.sampled_from(list("0123456789afxZ_.:+-,")), min_size=1, max_size=10)
_TOKENS = st.one_of(
    st.lists(_TOKEN_PARTS, min_size=1, max_size=4).map("".join),
    # Numbers, near-numbers and their surrounding punctuation.
    st.tuples(
        st.sampled_from(["", "", "(", "[", '"', "'", "<", "{", "(["]),
        _NUMBERISH.map("".join),
        st.sampled_from(["", "", ")", ",", ".", ":", "]", "!", "'", ">", ")."]),
    ).map("".join),
)


@settings(max_examples=700, deadline=None)
@given(token=_TOKENS)
@example(token="-12")
@example(token="(3.5,")
@example(token="1,5")
@example(token="1,")
@example(token="'-7'")
@example(token="[12:30:01.5+02:00]")
@example(token="a.b")
@example(token="x@y")
@example(token="-")
def test_tokens_mask_alike(token):
    native = native_module()
    assert native.template_of_text(token, 2048) == _mask_token(token) or token.startswith("{")


# Pieces of the values _mask_unit and _VARIABLE look for: UUIDs and IPv6 addresses (hex runs
# of every length around their group sizes, colons), hosts and e-mail (labels, dots, top-level
# domains, "@"), paths and URLs, access log dates, key=value and key:value, counters.
_RULE_PIECES = st.one_of(
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=13),
    st.text("0123456789", min_size=1, max_size=5),
    st.text("ghxyzGHXYZ_", min_size=1, max_size=4),
    st.sampled_from([":", "::", "-", ".", "@", "/", "(", "=", "_", "+", ",", "~", "./", "../"]),
    st.sampled_from(["://", "[", "]", "..", "com", "net", "io", "local", "Example", "x", "ab"]),
    st.sampled_from(["COM", "org:80", "host", "Oct", "oct", "OCT", "user", "key", "ms"]),
)
_AROUND = (st.sampled_from(["", "", "x", "-", "_", "(", "1", ".", "=", "/", "@"]),)


def _near(sizes: list[int]) -> st.SearchStrategy[int]:
    """A size, or one off it: where a regex's counted repetition starts or stops matching."""
    return st.sampled_from(sizes).flatmap(lambda n: st.integers(max(n - 1, 0), n + 1))


def _hex(size: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    # Letters only too: an id starting with a digit is masked by "-?\d" whatever else it is.
    alphabet = st.sampled_from(["abcdef", "abcdef0123456789ABCDEF"])
    return st.tuples(alphabet, size).flatmap(lambda t: st.text(t[0], min_size=t[1], max_size=t[1]))


_UUIDS = st.tuples(*[_hex(_near([n])) for n in (8, 4, 4, 4, 12)]).map("-".join)
_IPV6 = st.one_of(
    st.lists(_hex(_near([1, 4])), min_size=1, max_size=9).map(":".join),
    st.tuples(
        st.lists(_hex(_near([1, 4])), max_size=7).map(":".join),
        st.lists(_hex(_near([1, 4])), max_size=3).map(":".join),
    ).map("::".join),
)
_DATES = st.tuples(
    st.text("0123456789", min_size=1, max_size=3),
    st.sampled_from(["Oct", "oct", "OCT", "Octo", "Oc", "O1t"]),
    st.text("0123456789", min_size=3, max_size=5),
    st.sampled_from(["", ":13:55:36", "x", "/x"]),
).map(lambda t: f"{t[0]}/{t[1]}/{t[2]}{t[3]}")
_IDS = st.one_of(
    _hex(_near([8])),
    st.text("abcxyz0123_", min_size=1, max_size=10),
    st.tuples(st.text("abXY", min_size=1, max_size=3), st.text("0123", min_size=1, max_size=3))
    .map("".join)
    .flatmap(lambda part: st.lists(st.just(part), min_size=1, max_size=3).map("".join)),
)
_LABELS = st.lists(st.text("ab1_-", min_size=0, max_size=4), min_size=1, max_size=4).map(".".join)
_DOMAINS = st.sampled_from(["com", "io", "org", "c", "co1", "x_y", "COM", "local", "zz", "com-"])
_HOSTS = st.tuples(_LABELS, _DOMAINS, st.sampled_from(["", ":80", ":", ":8a", ".", "/x"])).map(
    lambda t: f"{t[0]}.{t[1]}{t[2]}"
)
_EMAILS = st.tuples(st.text("a.+-_1", min_size=0, max_size=4), _HOSTS).map("@".join)
_PATHS = st.tuples(
    st.sampled_from(["", "(", "x(", "~", ".", "..", "...", "~~", "http:", "a://", "x(..", "(~"]),
    st.lists(st.text("ab12_.", max_size=4), min_size=1, max_size=3).map("/".join),
).map(lambda t: f"{t[0]}/{t[1]}")
_VALUES = st.one_of(_UUIDS, _IPV6, _DATES, _IDS, _HOSTS, _EMAILS, _PATHS)
_KEYED = st.tuples(
    st.sampled_from(["a", "_a", "1a", "a.b", "a[0]", "a-b", "a:b", "a1", "host.com", "x(y"]),
    st.sampled_from(["=", ":", "=(", ":[", "=="]),
    _VALUES,
).map("".join)
_RULE_TOKENS = st.one_of(
    st.lists(_RULE_PIECES, min_size=1, max_size=9).map("".join),
    st.tuples(*_AROUND, st.one_of(_VALUES, _KEYED), *_AROUND).map("".join),
    st.lists(st.one_of(_VALUES, *_AROUND), min_size=2, max_size=4).map("".join),
)


@settings(max_examples=3000, deadline=None)
@given(token=_RULE_TOKENS)
@example(token="123e4567-e89b-12d3-a456-426614174000")
@example(token="2001:db8::1")
@example(token="fe80:0:0:0:0:0:0:1")
@example(token="a:b:c:d:e:f:1:2:3")
@example(token="[::1]:80")
@example(token="10/Oct/2000:13:55:36")
@example(token="deadbeef12")
@example(token="x2k4p")
@example(token="storage12")
@example(token="MININT-FNANLI5")
@example(token="user.name+tag@mail.example.org")
@example(token="a@b.com.x")
@example(token="host-7.example.com:8080")
@example(token="(/var/data/12/part)")
@example(token="~/x1")
@example(token="../a/1")
@example(token="uid=0")
@example(token="rhost=a-1.b.net")
@example(token="key:value1")
@example(token="host.com:80")
@example(token="deadbeef-dead-beef-dead-beefdeadbe1")
@example(token="deadbeef-dead-beef-dead-beefdeadbee1")
@example(token="ab.io")
@example(token="x(../1")
@example(token="x(./1")
@example(token="100/Oct/2000")
@example(token="1/Oct/2000")
@example(token="x/::1")
@example(token="=::a")
def test_value_tokens_mask_alike(token):
    native = native_module()
    assert native.template_of_text(token, 2048) == _mask_token(token) or token.startswith("{")


@st.composite
def tokens_of_one_shape(draw) -> tuple[str, str]:
    token = draw(_TOKENS)
    digit = st.sampled_from("0123456789")
    return token, "".join(draw(digit) if "0" <= char <= "9" else char for char in token)


@settings(max_examples=300, deadline=None)
@given(pair=tokens_of_one_shape())
def test_a_shape_memo_hit_gives_what_masking_gives(pair):
    # The first token fills the compiled memos, the second of its shape may be answered there.
    native = native_module()
    first, second = pair
    native.clear_memos()
    native.template_of_text(first, 2048)
    assert native.template_of_text(second, 2048) == template_of_text(second, 2048)


_QUOTE_CHARS = st.sampled_from(list("\"\"''\\ \t=([{,.;:)]}!?ab1-/"))
_QUOTE_WORDS = st.sampled_from(
    ["GET", "POST", "DELETE", "get", "/index.html", "HTTP/1.1", "it's", "don't", "a b", "12"]
)
_BEFORE_QUOTE = st.sampled_from(["", " ", "=", "(", "[", "{", ",", "a", "\\", "'", '"'])
_AFTER_QUOTE = st.sampled_from(["", " ", ",", ".", ";", ":", ")", "]", "}", "!", "?", "a", "'"])
_QUOTED = st.tuples(
    _BEFORE_QUOTE,
    st.sampled_from(['"', "'"]),
    st.lists(_QUOTE_WORDS, max_size=3).map(" ".join),
    st.sampled_from(['"', "'"]),
    _AFTER_QUOTE,
).map("".join)
quoted_bodies = st.one_of(
    st.lists(st.one_of(_QUOTED, _QUOTE_WORDS), max_size=8).map(" ".join),
    st.lists(st.one_of(_QUOTED, _QUOTE_CHARS), max_size=10).map("".join),
    st.lists(st.one_of(_QUOTE_CHARS, _QUOTE_WORDS), max_size=40).map("".join),
    st.lists(st.one_of(_QUOTE_CHARS, _QUOTE_WORDS), max_size=20).map(" ".join),
    # Non-ASCII among quotes: the compiled path hands these to signature.py whole.
    st.lists(
        st.one_of(_QUOTE_CHARS, st.sampled_from(["é", "“", "”", "\u00a0", "٣"])), max_size=30
    ).map("".join),
)


@settings(max_examples=800, deadline=None)
@given(body=quoted_bodies, max_chars=st.sampled_from([12, 2048]))
@example(body='GET "GET /a HTTP/1.1" 200', max_chars=2048)
@example(body="""a "b \\"c d\\" e" f""", max_chars=2048)
@example(body="""x='a b' y="c 'd e' f" z""", max_chars=2048)
@example(body='"\'a b\' c" \'d "e f" g\\', max_chars=2048)
@example(body='unbalanced "a b c', max_chars=2048)
@example(body="""it's 'x y'z 'p q'. done""", max_chars=2048)
@example(body='"a \\', max_chars=2048)
@example(body='''"a"b" c"d e"''', max_chars=2048)
def test_quoted_bodies_sign_alike(body, max_chars):
    native = native_module()
    assert native.template_of_text(body, max_chars) == template_of_text(body, max_chars)


def test_nested_quotes_take_the_rounds_signature_py_takes():
    native = native_module()
    body = " ".join(['"' * depth + "a b" + '"' * depth for depth in range(1, 12)])
    for text in (body, "'" + body + "'", body.replace('"', "'")):
        assert native.template_of_text(text, 2048) == template_of_text(text, 2048)


_CONTEXT = st.sampled_from(
    ["Jun", "[Tue,", "(Oct", "Mon,", "KB", "ms,", "s.", "MiB)", "sec]", "B", "12", "3.5", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(st.one_of(_CONTEXT, st.sampled_from(["<*>", "<*>x", "10:05:25"])), max_size=12)
)
def test_context_words_join_masks_alike(body):
    native = native_module()
    text = " ".join(body)
    assert native.template_of_text(text, 2048) == template_of_text(text, 2048)


def test_max_chars_defaults_to_signature_pys():
    native = native_module()
    body = "x" * 3000 + " 1"
    assert native.template_of_text(body) == template_of_text(body)


# Every printable ASCII character and whitespace, for the exhaustive boundary checks below.
_ASCII = [chr(c) for c in range(32, 127)] + ["\t", "\x0b", "\x1c"]


def test_every_quote_boundary_signs_alike():
    # What may stand before an opening quote and after a closing one, for both quotes, around
    # one word, several, and an HTTP request line.
    native = native_module()
    differences = [
        body
        for before in _ASCII
        for opening in "\"'"
        for inner in ("a", "a b", "GET /x y")
        for closing in "\"'"
        for after in _ASCII
        for body in [f"x {before}{opening}{inner}{closing}{after} y"]
        if native.template_of_text(body, 2048) != template_of_text(body, 2048)
    ]
    assert differences == []


def test_every_short_token_masks_alike():
    # All one- and two-character tokens, and each pair after a digit, a sign, a letter and a
    # dotted name: where a token stops being a word that cannot vary, or a number.
    native = native_module()
    pairs = [a + b for a in _ASCII[1:95] for b in _ASCII[1:95]]
    starts = ("1", "-1", "x", "a.", "x@a.")
    tokens = _ASCII[1:95] + pairs + [start + pair for start in starts for pair in pairs]
    differences = [
        t for t in tokens if native.template_of_text(t, 2048) != template_of_text(t, 2048)
    ]
    assert differences == []
