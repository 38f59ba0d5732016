"""Log body -> template -> stable pattern id.

A template is the body with its variable parts (numbers, ids, addresses, dates, quoted text...)
replaced by ``<*>``; records sharing a template share a pattern id. This runs for every record,
so it is built around ``str.split`` and two bounded memos rather than regexes over the body:
most tokens of a stream are words seen before, and a dict hit costs far less than any regex.
"""

import json
import re
from typing import TYPE_CHECKING

import xxhash

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = [
    "DEFAULT_MAX_BODY_CHARS",
    "MASK",
    "pattern_id",
    "template_of_text",
    "template_of_value",
]

MASK = "<*>"
DEFAULT_MAX_BODY_CHARS = 2048

# Structured bodies: deeper, wider or bigger data is summarised, so hostile input costs bounded
# work whatever its size.
_MAX_DEPTH = 8
_MAX_ITEMS = 64
_MAX_NODES = 256
# A string under one of these keys is the human message of a structured log: two records with
# the same fields but different messages are different events, so the message's own template
# goes into the structure's template.
_MESSAGE_KEYS = frozenset(("message", "msg", "body", "log"))

# Token -> masked token, for tokens without digits (nearly all words) and the few whose masked
# form keeps a digit ("ssh2"). Digit-normalised shape -> masked token for the rest: masking
# never looks at which digit is where, only at where digits are, so "blk_-4821" and "blk_-1234"
# share an entry, and unique ids still hit the memo. Only short tokens are kept, which bounds
# memory to a few MB.
_MEMO_MAX_ENTRIES = 16384
_MEMO_MAX_TOKEN_CHARS = 128
_token_memo: dict[str, str] = {}
_shape_memo: dict[bytes, str] = {}
# Bytes: bytes.translate is several times faster than str.translate.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")

_LEADING = "([{<\"'"
_TRAILING = ")]}>,;.:!?\"'"

_DIGIT = re.compile(r"\d").search
# Digits, "@" or a dotted name (a hostname?): no other token can hold a variable part.
_MAY_VARY = re.compile(r"[\d@]|\.[^\W\d_]").search

# Quoted strings are matched pairwise left to right and the callback decides. A double quote
# honours backslash escapes. A single quote opens only after a space or "=([{," and closes
# only before a space or ",.;:)]}!?", so the apostrophes of "couldn't" never pair up. Each
# lookbehind comes after its quote: a pattern starting with a literal lets the regex engine
# skip to the next quote instead of trying every position.
_QUOTED = re.compile(
    r'"(?<!\\")[^"\\]*(?:\\[\s\S][^"\\]*)*"'
    r"|'(?<![^\s=(\[{,]')[^']*'(?=[\s,.;:)\]}!?]|\Z)"
)
# Quotes and backslashes inside a token are kept out of masks: the quoting pass pairs quotes,
# and a template read again must pair them the same way.
_SPLIT_AT_QUOTES = re.compile(r"""(["'\\])""").split
_QUOTE_OR_BACKSLASH = re.compile(r"""["'\\]""").search
_MAX_QUOTING_ROUNDS = 8
_HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)

_KEY_BEFORE_EQUALS = re.compile(r"[^\W\d][\w.:\-\[\]]*").fullmatch
# A key before ":" has no digit, so "host-7:8080" and "10.0.0.1:80" are not key:value.
_KEY_BEFORE_COLON = re.compile(r"(?:[^\W\d]|[.\-])+").fullmatch

# A path starts the token or follows "(" as in "chdir(/home/x)".
_PATH = re.compile(r"(?:^|\()(?:~|\.{1,2})?/").search
# Hostnames are told from dotted code names ("java.io.File", "app.log") by a common top-level
# domain, optionally followed by a port.
_HOSTNAME = re.compile(r"(?:[\w-]+\.)+([^\W\d_]{2,})(?::\d+)?").fullmatch
_TOP_LEVEL_DOMAINS = frozenset(
    (
        *("com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "co", "arpa"),
        *("local", "localdomain", "internal", "lan", "corp", "home"),
        *("uk", "de", "fr", "jp", "cn", "ru", "nl", "br", "au", "it", "es", "ca", "us", "tw"),
        *("kr", "in", "eu", "ch", "se", "no", "at", "pl", "be", "dk", "fi", "cz", "hk", "sg"),
    )
)
_EMAIL = re.compile(r"(?<![\w.+-])\w[\w.+-]*@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")

# Once a variable part starts, the rest of its dotted, dashed or underscored chain belongs to
# it: "2024-01-02T03:04:05.123Z", "10.1.2.3:8080", "1445144423722_0020_m_000000_0".
_REST = r"(?:[\w.:+-]|,\d)*"
_NUMBER_LIKE = re.compile(r"-?\d" + _REST).fullmatch
_VARIABLE = re.compile(
    "|".join(
        start + _REST
        for start in (
            # UUIDs and IPv6 addresses can start with a letter.
            r"(?<![^\W_])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            r"(?<![^\W_])(?=[0-9a-fA-F:]{0,38}\d)"
            r"[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,6}::[0-9a-fA-F:.]*",
            r"(?<![^\W_])(?=[0-9a-fA-F:]{0,38}\d)[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){7}",
            r"(?<![^\s(\[=/])::[0-9a-fA-F][0-9a-fA-F:.]*",
            # Access log dates ("10/Oct/2000:13:55:36"), whose month name is not a number.
            r"(?<![^\W_])\d{1,2}/[A-Z][a-z]{2}/\d{4}",
            # Numbers, times, dates, IPv4, durations, versions, ids and hex starting with a digit.
            r"(?<![^\W_])-?\d",
            # Long hex starting with a letter: hashes, object ids.
            r"(?<![^\W_])(?=[a-fA-F]*\d)[0-9a-fA-F]{8,}(?![^\W_])",
            # Letters and digits mixed more than once: generated ids ("x2k4p", "a1b2c3").
            r"(?<![^\W_])[^\W\d_]+\d+[^\W\d_]+\d",
            # A counter glued to a word ("storage12", "nodeio11"): the word stays. One digit is
            # more often part of a name ("ssh2", "eth0", "ipv4") than a counter, so it stays.
            r"(?<=[^\W\d_])\d{2,}(?![^\W_])",
            # The last dash-separated part of a name, holding a digit ("MININT-FNANLI5").
            r"(?<=-)[^\W\d_]+\d[^\W_]*(?![^\W_]|-)",
        )
    )
)

# Words that belong to a value beside them: a month or weekday before a masked token is part
# of a date ("Jun 14 15:16:01"); a unit after one was picked by a formatter for that value
# ("5.2 KB" vs "850.0 B").
_DATE_WORDS = frozenset(
    opening + word + closing
    for word in (
        *("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        *("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    )
    for opening in ("", "[", "(")
    for closing in ("", ",")
)
_UNITS = frozenset(
    unit + punctuation
    for unit in (
        *("B", "KB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB"),
        *("ns", "us", "µs", "ms", "s", "sec"),
    )
    for punctuation in ("", ",", ";", ".", ")", "]")
)
_CONTEXT_WORDS = _DATE_WORDS | _UNITS


def template_of_text(text: str, max_chars: int = DEFAULT_MAX_BODY_CHARS) -> str:
    """The template of a text body; only its first ``max_chars`` characters are read."""
    if len(text) > max_chars:
        text = text[:max_chars]
    if text[:1] == "{" or (text[:1].isspace() and text.lstrip()[:1] == "{"):
        shape = _shape_of_json_text(text, max_chars)
        if shape is not None:
            return shape
    if '"' in text or "'" in text:
        text = _mask_quoted_strings(text)
    by_token = _token_memo.get
    by_shape = _shape_memo.get
    # _shape(token), inlined: a call would cost as much as the lookup it serves.
    tokens = [
        by_token(token)
        or by_shape(token.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO))
        or _mask_token(token)
        for token in text.split()
    ]
    if not _CONTEXT_WORDS.isdisjoint(tokens):
        _mask_context_words(tokens)
    return " ".join(tokens)


def template_of_value(value: "AnyValue", max_chars: int = DEFAULT_MAX_BODY_CHARS) -> str:
    """The template of an OTLP ``AnyValue`` body: text for a string, structure otherwise."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return template_of_text(value.string_value, max_chars)
    if kind is None:
        return ""
    return _shape_of_any(value, 0, [_MAX_NODES], max_chars)


def pattern_id(service_name: str, template: str, tenant: str = "") -> str:
    """16 hex chars naming a template within a service (and tenant, when tenants are counted),
    equal on every host and restart. Without a tenant the id is the one it always was."""
    # Protobuf never hands us invalid UTF-8, but Python callers can pass lone surrogates: they
    # must hash, not raise.
    text = (
        f"{tenant}\x1e{service_name}\x1f{template}" if tenant else f"{service_name}\x1f{template}"
    )
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass"))


# The compiled signature (sampling/_native.c) carries the token and quoting rules below too;
# tests/unit/sampling/test_native_signature.py fails on any difference between the two.
def _mask_token(token: str) -> str:
    if not _MAY_VARY(token):
        masked = token
    else:
        end = token.rstrip(_TRAILING)
        core = end.lstrip(_LEADING)
        # Numbers are the commonest variable tokens; _mask_core would mask them too, slower.
        masked_core = MASK if _NUMBER_LIKE(core) else _mask_core(core)
        masked = token[: len(end) - len(core)] + masked_core + token[len(end) :]
    if len(token) <= _MEMO_MAX_TOKEN_CHARS:
        if not _DIGIT(token) or _DIGIT(masked):
            _remember(_token_memo, token, masked)
        else:
            _remember(_shape_memo, _shape(token), masked)
    return masked


def _shape(token: str) -> bytes:
    return token.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO)


def _remember(memo: dict, key: str | bytes, masked: str) -> None:
    if len(memo) >= _MEMO_MAX_ENTRIES:
        memo.clear()
    memo[key] = masked


def _mask_core(core: str) -> str:
    """Mask a token without its surrounding punctuation; ``key=value`` keeps ``key=``."""
    if not _QUOTE_OR_BACKSLASH(core):
        return _mask_plain(core)
    equals = core.find("=")
    if (
        equals > 0
        and _KEY_BEFORE_EQUALS(core[:equals])
        and not _QUOTE_OR_BACKSLASH(core[equals + 1 :].lstrip(_LEADING))
    ):
        # key="value": the quotes are the value's own, and stay (see _mask_value).
        return _mask_value(core, equals)
    return "".join(
        _mask_plain(part) if _MAY_VARY(part) else part for part in _SPLIT_AT_QUOTES(core)
    )


def _mask_plain(core: str) -> str:
    equals = core.find("=")
    if equals > 0 and _KEY_BEFORE_EQUALS(core[:equals]):
        return _mask_value(core, equals)
    colon = core.find(":")
    if (
        colon > 0
        and core[colon + 1 : colon + 3] != "//"
        and _KEY_BEFORE_COLON(core[:colon])
        and not _is_hostname(core[:colon])
    ):
        return _mask_value(core, colon)
    return _mask_unit(core)


def _mask_value(core: str, separator: int) -> str:
    # A value is one unit: if any part of it varies, all of it does. An opening quote or
    # bracket stays, as its closing one does ('pod="<*>"').
    value = core[separator + 1 :].lstrip(_LEADING)
    if value and _mask_unit(value) != value:
        return core[: len(core) - len(value)] + MASK
    return core


def _mask_unit(text: str) -> str:
    if "/" in text:
        # A URL names a host, and hosts vary. A path with a digit holds ids; one without
        # names a fixed place ("/healthz"), which is worth keeping apart.
        if "://" in text:
            return MASK
        path = _PATH(text)
        if path:
            start = path.start() + (text[path.start()] == "(")
            if _DIGIT(text, start):
                return _VARIABLE.sub(MASK, text[:start]) + MASK
    if _is_hostname(text):
        return MASK
    if "@" in text:
        text = _EMAIL.sub(MASK, text)
    return _VARIABLE.sub(MASK, text)


def _is_hostname(text: str) -> bool:
    hostname = "." in text and _HOSTNAME(text)
    return bool(hostname) and hostname.group(1).lower() in _TOP_LEVEL_DOMAINS


def _mask_quoted_strings(text: str) -> str:
    # Masking a quoted string can let the quotes around it pair up ('"a b" c'), so repeat
    # until none does, and a template read again is quoted the same way. Real text needs one
    # or two rounds; the cap keeps contrived nestings from costing a scan per quote.
    for _ in range(_MAX_QUOTING_ROUNDS):
        masked = _QUOTED.sub(_mask_quoted, text)
        if masked == text or ('"' not in masked and "'" not in masked):
            return masked
        text = masked
    return text


def _mask_quoted(match: re.Match) -> str:
    # One quoted word stays for the token rules, like any word. Several are free text (a
    # name, a user agent, a request line), which varies. The method of an HTTP request line
    # is the one constant part of it worth keeping.
    quoted = match.group()
    words = quoted[1:-1].split(None, 1)
    if len(words) < 2:
        return quoted
    if words[0] in _HTTP_METHODS and quoted[0] == '"':
        return words[0] + " " + MASK
    return MASK


def _mask_context_words(tokens: list[str]) -> None:
    # Right to left, so a weekday sees its month already masked ("Sun Jul 3 10:05:25").
    for i in range(len(tokens) - 1, -1, -1):
        word = tokens[i]
        if word in _DATE_WORDS:
            if i + 1 < len(tokens) and tokens[i + 1].startswith(MASK):
                tokens[i] = word.replace(word.strip("[(,"), MASK, 1)
        elif word in _UNITS and i > 0 and tokens[i - 1] == MASK:
            tokens[i] = word.replace(word.rstrip(_TRAILING), MASK, 1)


def _shape_of_json_text(text: str, max_chars: int) -> str | None:
    # Whitespace is normalised first, as the text path does, so text that is not JSON cannot
    # have a template that is.
    try:
        parsed = json.loads(" ".join(text.split()))
    except (ValueError, RecursionError):
        # RecursionError: a body of 2k opening brackets nests deeper than the parser recurses.
        return None
    if not isinstance(parsed, dict):
        return None
    return _shape_of_json(parsed, 0, [_MAX_NODES], max_chars)


# Shapes name keys and value types, never values. They read the same whether a structure came
# as an OTLP kvlist or as a JSON string body.


def _shape_of_json(value, depth: int, budget: list[int], max_chars: int) -> str:
    budget[0] -= 1
    if isinstance(value, str):
        return "<str>"
    if isinstance(value, bool):
        return "<bool>"
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, float):
        return "<double>"
    if value is None:
        return "<null>"
    if depth >= _MAX_DEPTH or budget[0] < 0:
        return "{...}" if isinstance(value, dict) else "[...]"
    if isinstance(value, dict):
        return _render_map(
            (
                (key, _message_template(item, budget, max_chars))
                if key in _MESSAGE_KEYS and isinstance(item, str)
                else (key, _shape_of_json(item, depth + 1, budget, max_chars))
                for key, item in value.items()
            ),
            max_chars,
        )
    return _render_list(
        _shape_of_json(item, depth + 1, budget, max_chars) for item in value[:_MAX_ITEMS]
    )


def _shape_of_any(value, depth: int, budget: list[int], max_chars: int) -> str:
    budget[0] -= 1
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return "<str>"
    if kind == "bool_value":
        return "<bool>"
    if kind == "int_value":
        return "<int>"
    if kind == "double_value":
        return "<double>"
    if kind == "bytes_value":
        return "<bytes>"
    if kind is None:
        return "<null>"
    if depth >= _MAX_DEPTH or budget[0] < 0:
        return "{...}" if kind == "kvlist_value" else "[...]"
    if kind == "kvlist_value":
        return _render_map(
            (
                (pair.key, _message_template(pair.value.string_value, budget, max_chars))
                if pair.key in _MESSAGE_KEYS and pair.value.WhichOneof("value") == "string_value"
                else (pair.key, _shape_of_any(pair.value, depth + 1, budget, max_chars))
                for pair in value.kvlist_value.values
            ),
            max_chars,
        )
    return _render_list(
        _shape_of_any(item, depth + 1, budget, max_chars)
        for item in value.array_value.values[:_MAX_ITEMS]
    )


def _message_template(text: str, budget: list[int], max_chars: int) -> str:
    # A message costs the budget as many nodes as its text could have held, so a kvlist of
    # many long messages stays bounded work too.
    budget[0] -= min(len(text), max_chars) // 64
    return template_of_text(text, max_chars) if budget[0] >= 0 else "<str>"


def _render_map(items, max_chars: int) -> str:
    parts = []
    for count, (key, shape) in enumerate(items):
        if count == _MAX_ITEMS:
            parts.append("...")
            break
        parts.append((_mask_token(key[:max_chars]) if key else '""') + ":" + shape)
    # Keys holding ids ({"user_42": ...}) mask alike; such a map is a list, and like a list
    # its length does not make a new pattern.
    return "{" + " ".join(dict.fromkeys(parts)) + "}"


def _render_list(shapes) -> str:
    # Element shapes are collapsed and sorted: neither the length nor the order of an array
    # makes a new pattern.
    distinct = sorted(set(shapes))
    return "[" + " ".join(distinct) + "...]" if distinct else "[]"
