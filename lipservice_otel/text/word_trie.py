"""Regular expressions that match any of many words, built as tries."""

from __future__ import annotations

import re
from collections.abc import Iterable


# Regexes of many words are built as tries: sre tries alternatives one by one, and a trie fails
# on the first character at most positions, so dozens of words cost about as much as one.
def trie_pattern(words: Iterable[str], after_first: str = "") -> str:
    """Alternation matching any of `words`; `after_first` is inserted after the first char.

    In a word, a space or "-" matches any run of whitespace, "-" or "_", and "'" also matches
    a curly apostrophe.
    """
    root: dict = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(" " if char in " -" else char, {})
        node[""] = {}
    branches = [_trie_char(c) + after_first + _trie_node(child) for c, child in root.items()]
    return "(?:" + "|".join(branches) + ")"


def _trie_node(node: dict) -> str:
    branches = [_trie_char(char) + _trie_node(child) for char, child in node.items() if char]
    if not branches:
        return ""
    ends_here = "" in node
    if len(branches) == 1 and not ends_here:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")


def _trie_char(char: str) -> str:
    if char == " ":
        return r"[\s_-]+"
    if char == "'":
        return "['\u2019]"
    return re.escape(char)
