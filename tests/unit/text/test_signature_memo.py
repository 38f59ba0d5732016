"""The shape memo's premise: a token whose digits are all masked away has the masked form of
every token of its shape (its ASCII digits 1-9 read as 0), so one memo entry serves them all.

signature.py and the compiled signature both key masked forms by that shape; if a masking rule
ever looked at which digit is where (a range, a checksum, "0x" against "1x"), two tokens of one
shape would mask differently and these tests would find the pair.
"""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lipservice_otel.text import signature
from lipservice_otel.text.signature import _DIGIT, _mask_token, _shape

# ASCII digits and the characters the rules read around them: hex letters and others, the
# separators of numbers, ids, hosts, paths and key=value, quotes, and non-ASCII digits (str
# isdigit or not, \d or not), which the shape keeps as they are.
_TOKEN_CHARS = st.sampled_from(
    [
        *"0123456789012345abcdefABCDEFgxzGXZ_-.:,+/@=()[]{}<>\"'\\!?;~#%*",
        "\u0663",
        "²",
        "\u0661",
        "é",
        "µ",
    ]
)
_TOKENS = st.lists(_TOKEN_CHARS, min_size=1, max_size=24).map("".join)
_WORDS = st.sampled_from(["com", "org", "io", "log", "Oct", "Jun", "node", "blk_", "0x", "MB"])


@st.composite
def tokens_of_one_shape(draw) -> tuple[str, str]:
    """A token, and the same token with each of its ASCII digits drawn anew."""
    token = draw(st.lists(st.one_of(_TOKENS, _WORDS), min_size=1, max_size=4).map("".join))
    digit = st.sampled_from("0123456789")
    other = "".join(draw(digit) if "0" <= char <= "9" else char for char in token)
    return token, other


@settings(max_examples=800, deadline=None)
@given(pair=tokens_of_one_shape())
@example(pair=("0x1f", "9x7f"))
@example(pair=("10/Oct/2000:13:55:36", "99/Oct/1999:99:99:99"))
@example(pair=("a1b2c3", "a9b0c0"))
@example(pair=("storage12", "storage90"))
@example(pair=("host-7.example.com:8080", "host-0.example.com:0000"))
def test_tokens_of_one_shape_mask_alike_when_no_digit_is_kept(pair):
    token, other = pair
    assert _shape(other) == _shape(token)
    masked = _mask_token(token)
    if not _DIGIT(masked):
        assert _mask_token(other) == masked


@settings(max_examples=300, deadline=None)
@given(pair=tokens_of_one_shape())
def test_a_memo_hit_gives_what_masking_gives(pair):
    # What template_of_text's lookup answers for the second token once the first is masked.
    token, other = pair
    signature._token_memo.clear()
    signature._shape_memo.clear()
    _mask_token(token)
    hit = signature._token_memo.get(other) or signature._shape_memo.get(_shape(other))
    if hit is not None:
        assert hit == _mask_token(other)
