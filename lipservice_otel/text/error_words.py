"""Whether a record's words say something failed (error-like patterns)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from lipservice_otel.text.word_trie import trie_pattern

__all__ = ["DEFAULT_ERROR_WORDS", "compile_error_words", "is_error_like"]

# Words that say an operation went wrong. Level names ("warning", "critical") are left to
# severity inference; "not found", "unknown" and "expired" are left out because they are routine
# far more often than not ("cache entry not found", "check pass; user unknown").
DEFAULT_ERROR_WORDS: tuple[str, ...] = (
    "abnormal", "abnormally", "abort", "aborted", "aborting", "break-in", "broken pipe",
    "can't", "cannot", "core dumped", "corrupt", "corrupted", "corruption", "could not",
    "couldn't", "crash", "crashed", "deadlock", "denied", "error", "errored", "errors",
    "exceeded", "exception", "exceptions", "fail", "failed", "failing", "fails", "failure",
    "failures", "fatal", "illegal", "invalid", "killed", "no space left", "not responding",
    "out of memory", "panic", "panicked", "problem", "problems", "refused", "rejected",
    "segfault", "segmentation fault", "timed out", "timeout", "timeouts", "traceback",
    "unable", "unauthorized", "unavailable", "unhandled", "unreachable", "unsuccessful",
)  # fmt: skip


def compile_error_words(words: Iterable[str]) -> Callable[[str], bool]:
    """Compile `words` once into a matcher: ``matcher(text)`` is ``is_error_like(text, words)``.

    Words match whole and in any case. "_" and "." separate words ("AUTH_FAILED", "ssl.error")
    but "-" does not ("non-fatal", "error-free"); inside a phrase a space or "-" matches any run
    of whitespace, "-" or "_" ("timed-out"), and "'" also matches U+2019. A single word also
    matches as the capitalised tail of a CamelCase name: "IOException", "ConnectionRefused".
    Raises ValueError for an empty list or an empty word.
    """
    cleaned = sorted({word.strip().lower() for word in words})
    if not cleaned or not all(cleaned):
        raise ValueError("error words must be a non-empty list of non-empty strings")
    # Matched against the lowercased text: a case-sensitive scan is several times faster.
    find_words = re.compile(rf"(?<![a-z0-9-]){trie_pattern(cleaned)}(?![a-z0-9-])").finditer
    camel = [word.capitalize() for word in cleaned if word.isalpha()]
    find_tails = (
        re.compile(trie_pattern(camel, after_first=r"(?<=[A-Za-z0-9].)") + "(?![A-Za-z])").finditer
        if camel
        else None
    )

    def matcher(text: str) -> bool:
        lowered = text.lower()
        for hit in find_words(lowered):
            if not _negated(lowered, hit.start(), hit.end()):
                return True
        if find_tails is None:
            return False
        return any(not _negated(text, hit.start(), hit.end()) for hit in find_tails(text))

    return matcher


# What makes a hit a non-event. Zero or absence in front: "no errors", "0 failed", "without
# error", "succeeded with 0 failures", "did not fail".
_NEGATED_BEFORE = re.compile(
    r"(?:(?<![\w-])(?:no|not|never|without|zero)|(?<![\w.,])0)\s+$", re.IGNORECASE
)
# A field value ends at the end of text, at a separator, or where the next key starts.
_FIELD_END = r"(?=\s*$|\s*[,;)}\]|]|\s+[\w.]+[=:])"
# A zero or empty value after the hit (after a key suffix such as "_count"): "error=0",
# "errors: 0", "failed=0", "error_count=0", "error=<nil>", '"error": null'.
_EMPTY_AFTER = re.compile(
    r"""(?:[_.][A-Za-z_.]{0,32})?["']?\s*[=:]\s*"""
    rf"""(?:0+(?:\.0+)?|none|null|nil|<nil>|false|""|''){_FIELD_END}""",
    re.IGNORECASE,
)
# Template counters: a masked count as a list item ("Processed <*>, <*> failed", "with <*>
# errors") or as a field value ("failed=<*>", "errors: <*>", "error_count: <*>"). One slot
# stands for zero and non-zero alike, and counter lines are printed whether or not anything
# failed, so a counter alone does not make its whole template an error.
_COUNT_BEFORE = re.compile(r"(?:^|[,;:(|]|(?<![\w-])(?:with|and))\s*<\*>\s+$", re.IGNORECASE)
_ITEM_END = re.compile(r"\s*(?:$|[,;.)|])")
_COUNT_AFTER = re.compile(
    rf"""(?P<suffix>[_.][A-Za-z_.]{{0,32}})?["']?\s*(?P<sep>[=:])\s*<\*>{_FIELD_END}"""
)
_BEFORE_CHARS = 16


def _negated(text: str, start: int, end: int) -> bool:
    window = max(0, start - _BEFORE_CHARS)
    if _NEGATED_BEFORE.search(text, window, start) or _EMPTY_AFTER.match(text, end):
        return True
    if _COUNT_BEFORE.search(text, window, start) and _ITEM_END.match(text, end):
        return True
    count = _COUNT_AFTER.match(text, end)
    # "Error: <*>" is how an error code gets printed: after ":" only a plural ("errors: <*>") or
    # a suffixed key ("error_count: <*>") reads as a counter.
    return count is not None and (
        count["sep"] == "=" or bool(count["suffix"]) or text[end - 1] in "sS"
    )


_DEFAULT_MATCHER = compile_error_words(DEFAULT_ERROR_WORDS)


@lru_cache(maxsize=16)
def _matcher(words: tuple[str, ...]) -> Callable[[str], bool]:
    return compile_error_words(words)


def is_error_like(text: str, words: tuple[str, ...] = DEFAULT_ERROR_WORDS) -> bool:
    """Whether `text` (a body, or its ``<*>`` template) says something went wrong.

    True when one of `words` occurs and is not negated by a zero or an absence ("0 errors", "no
    failures", "error=0") and, in a template, does not read as a counter ("..., <*> failed",
    "failed=<*>"). A configured list is compiled once and cached; or call the matcher from
    `compile_error_words` directly.
    """
    matcher = _DEFAULT_MATCHER if words is DEFAULT_ERROR_WORDS else _matcher(tuple(words))
    return matcher(text)
