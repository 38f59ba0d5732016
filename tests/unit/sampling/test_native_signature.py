"""The compiled signature gives text/signature.py's template for every body.

The extension pairs and masks quoted strings itself, applies two token rules itself (a token
that cannot vary is its own mask, a number is masked whole), masks other tokens through its own
memos filled by signature.py's `_mask_token`, joins context words, and hands whole bodies to
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
