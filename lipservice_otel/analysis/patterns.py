"""Merge templates that differ only where the inline signature could not see a variable.

The signature masks what looks variable in a token on its own: numbers, ids, addresses, paths
with digits. A variable that is a plain word (a user, host, pod or service name) stays, so
``session closed for user alice`` and ``session closed for user bob`` become two patterns, and
a service with many users gets many patterns. Many templates seen together show which
positions are variables: the analysis loop calls this per service, off the hot path.

How it works, per service:

1. Templates are bucketed by token count: only equal-length templates merge, position by
   position.
2. Each bucket becomes term-frequency vectors of position-tagged tokens (``4:alice``; TF-IDF
   with IDF off, see ``_clusters``) and DBSCAN (cosine distance, ``min_samples=1``) clusters
   them. It only proposes candidates: it cannot tell a name from a word that changes the
   meaning. Both are computed with numpy (``_clusters``, ``_dbscan``). scikit-learn did this
   before, with the same clusters on public log samples and on randomised template families
   (only ties between equally near neighbours may be broken otherwise), but importing it
   cost the process ~60 MiB of resident memory.
3. Inside a cluster, templates are grouped greedily by how many positions differ
   (``max_differing_positions``, ``min_token_overlap``, plus one position on the strongest
   evidence only); then every differing position must hold one variable's values
   (``_column_varies``), or the group is split by the value of the position that fails with
   the fewest values, and its parts are checked again.
   This runs twice: the words the first pass took as a name's values (``_known_values``)
   are values wherever else they stand in the service, in the second.
4. A group's merged template masks the positions where its members differ. Its canonical
   pattern id is ``signature.pattern_id(service, merged template)``: every analyzer, before
   and after a restart, names the same group the same way.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lipservice_otel.text.signature import MASK, pattern_id
from lipservice_otel.validation import require

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_MAX_DIFFERING_POSITIONS",
    "DEFAULT_MAX_TEMPLATES",
    "DEFAULT_MERGE_CONFIG",
    "DEFAULT_MIN_COVERING_SHARE",
    "DEFAULT_MIN_DISTINCT_VALUES",
    "DEFAULT_MIN_SPREAD_VALUES",
    "DEFAULT_MIN_TOKEN_OVERLAP",
    "MergeConfig",
    "merge_by_service",
    "merge_templates",
    "merged_template",
]

DEFAULT_EPS = 0.5
DEFAULT_MIN_TOKEN_OVERLAP = 0.6
DEFAULT_MAX_DIFFERING_POSITIONS = 2
DEFAULT_MIN_DISTINCT_VALUES = 4
DEFAULT_MIN_SPREAD_VALUES = 8
DEFAULT_MIN_COVERING_SHARE = 0.05
DEFAULT_MAX_TEMPLATES = 5000

_NEIGHBOURS = 32
_WORKING_MEMORY_MIB = 8


@dataclass(frozen=True, slots=True)
class MergeConfig:
    # DBSCAN radius in cosine distance, (0, 1]. Two templates that differ at a share d of their
    # positions are at most d apart, so from 1 - min_token_overlap up DBSCAN never separates
    # templates the positional check would merge; below, it is a stricter filter.
    eps: float = DEFAULT_EPS
    # Share of positions whose token every member of a group shares, (0, 1]. The default keeps
    # two-token templates apart: one shared word is not enough to call two messages one event.
    min_token_overlap: float = DEFAULT_MIN_TOKEN_OVERLAP
    # Positions where the members of a group may differ, >= 1.
    max_differing_positions: int = DEFAULT_MAX_DIFFERING_POSITIONS
    # Distinct plain words a position needs before it counts as a variable, >= 2.
    min_distinct_values: int = DEFAULT_MIN_DISTINCT_VALUES
    # Effective number of values (exp of the entropy of a position's values over the group's
    # templates) that makes a position a variable whatever its characters, >= 2. Also the
    # only evidence that merges templates too short for min_token_overlap ("disabling ftp").
    min_spread_values: int = DEFAULT_MIN_SPREAD_VALUES
    # Share of a position's records, [0, 1), that the members holding a masked value there
    # must carry before that mask covers the others' words (``term=<*>`` over ``term=remote``).
    # Below it the word is the constant of the loud template and the rare one another variant.
    min_covering_share: float = DEFAULT_MIN_COVERING_SHARE
    # Templates considered per service per call, >= 1; the rest stay unmerged (bounded CPU).
    max_templates: int = DEFAULT_MAX_TEMPLATES

    def __post_init__(self) -> None:
        require(0 < self.eps <= 1, "eps", "must be in (0, 1]")
        require(0 < self.min_token_overlap <= 1, "min_token_overlap", "must be in (0, 1]")
        require(self.max_differing_positions >= 1, "max_differing_positions", "must be >= 1")
        require(self.min_distinct_values >= 2, "min_distinct_values", "must be >= 2")
        require(self.min_spread_values >= 2, "min_spread_values", "must be >= 2")
        require(0 <= self.min_covering_share < 1, "min_covering_share", "must be in [0, 1)")
        require(self.max_templates >= 1, "max_templates", "must be >= 1")


DEFAULT_MERGE_CONFIG = MergeConfig()


def merge_templates(
    templates: Mapping[str, str], config: MergeConfig = DEFAULT_MERGE_CONFIG
) -> dict[str, str]:
    """Alias map for one service's ``pattern_id -> template``: merged id -> canonical id.

    A group's canonical id is the member whose template is the merged template, if there is
    one, else its smallest id. Ids that stay themselves are absent. ``merge_by_service``
    names groups by their merged template instead, which does not change as members come.
    """
    aliases = {}
    for members, merged in _groups(templates, config):
        canonical = min([pid for pid in members if templates[pid] == merged] or members)
        aliases.update((pid, canonical) for pid in members if pid != canonical)
    return aliases


def merged_template(templates: Sequence[str]) -> str:
    """The template of a group: where its members differ, the token becomes ``<*>``.

    Where one member's masked token has a shape all the others fit, that token stays:
    ``chdir(<*>)`` over ``chdir(pwd)``, ``tty=<*>`` over ``tty=NODEVssh``.
    """
    rows = [template.split() for template in templates]
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("merged_template needs one or more templates of equal token count")
    return " ".join(_merged_row(rows))


def merge_by_service(
    patterns: Iterable[tuple[str, str, str]],
    config: MergeConfig = DEFAULT_MERGE_CONFIG,
    counts: Mapping[str, float] | None = None,
    tenants: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Merge ``(pattern_id, service, template)`` triples within each service, never across.

    ``counts`` (pattern id -> records, or records/s) weighs each template by how often it
    occurs when judging how spread a position's values are; without it every template weighs
    one. ``tenants`` (pattern id -> tenant; absent: "") keeps tenants apart too: templates
    merge within one (tenant, service) only, as each tenant's patterns are budgeted alone.

    Returns ``(aliases, canonical_templates)``: merged id -> canonical id, and canonical id ->
    merged template. A canonical id is ``pattern_id(service, merged template, tenant)``, a
    function of the members' templates alone: equal on every analyzer, after restarts, in any
    input order.
    """
    by_scope: dict[tuple[str, str], dict[str, str]] = {}
    for pid, service, template in patterns:
        tenant = tenants.get(pid, "") if tenants else ""
        by_scope.setdefault((tenant, service), {})[pid] = template
    aliases: dict[str, str] = {}
    canonical_templates: dict[str, str] = {}
    for (tenant, service), templates in sorted(by_scope.items()):
        for members, merged in _groups(templates, config, counts):
            canonical = pattern_id(service, merged, tenant)
            canonical_templates[canonical] = merged
            aliases.update((pid, canonical) for pid in members if pid != canonical)
    return aliases, canonical_templates


def _groups(
    templates: Mapping[str, str], config: MergeConfig, counts: Mapping[str, float] | None = None
) -> list[tuple[list[str], str]]:
    """Sorted (pattern ids, merged template) of groups of two or more; order-independent."""
    # Ids are hashes, so the first max_templates of them are a fair sample of the service.
    # A row is a template with each list of values kept once: templates with one row are one.
    pids_by_row: dict[tuple[str, ...], list[str]] = {}
    for pid in sorted(templates)[: config.max_templates]:
        tokens = templates[pid].split()
        if tokens:  # an empty body is not a message to merge with another
            pids_by_row.setdefault(_collapse_lists(tokens), []).append(pid)
    by_length: dict[int, list[tuple[str, ...]]] = {}
    weight: dict[tuple[str, ...], float] = {}
    for row, pids in sorted(pids_by_row.items()):
        by_length.setdefault(len(row), []).append(row)
        weight[row] = sum(max(counts.get(pid, 0.0), 0.0) for pid in pids) if counts else len(pids)
    # Units: sets of rows that merge, each with its merged row. A row no group takes is a
    # unit of its own (it may still stand for several templates).
    candidates = []  # (rows, their clusters, positions that may differ, free ones) per length
    for length, rows in by_length.items():
        free = _free_positions(length, config)
        # One position more than min_token_overlap leaves free may differ, on the strongest
        # evidence only: "disabling telnet" / "disabling ftp", or a four-token template with
        # two names ("user alice on web-1").
        most_varying = min(config.max_differing_positions, free + 1) if length >= 2 else 0
        clusters = []
        if len(rows) > 1 and most_varying:
            clusters = _clusters([list(row) for row in rows], config.eps)
        candidates.append((rows, clusters, most_varying, free))
    # Names recur across a service's events: the words a position of one event was shown to
    # take (``session closed for user <*>``, four users) are values wherever else they stand
    # (the same three users after ``session opened for user``). A second pass uses them.
    units = _units(candidates, weight, config, frozenset())
    known = _known_values(units, weight, config)
    if known:
        units = _units(candidates, weight, config, known)
    # A unit whose merged row is another's plus bracketed asides that hold a value joins it:
    # only where the template without the aside is itself seen, so the aside is optional.
    root = list(range(len(units)))
    unit_of_row = {merged: n for n, (_, merged) in enumerate(units)}
    for n, (_, merged) in enumerate(units):
        core = unit_of_row.get(_without_asides(merged))
        if core is not None and core != n:
            root[n] = core
    groups: dict[int, list[str]] = {}
    for n, (rows, _) in enumerate(units):
        top = n
        while root[top] != top:
            top = root[top]
        groups.setdefault(top, []).extend(pid for row in rows for pid in pids_by_row[row])
    return sorted(
        (sorted(members), " ".join(units[top][1]))
        for top, members in groups.items()
        if len(members) > 1
    )


def _units(
    candidates: Sequence[tuple[list[tuple[str, ...]], list[list[int]], int, int]],
    weight: Mapping[tuple[str, ...], float],
    config: MergeConfig,
    known: frozenset[str],
) -> list[tuple[list[tuple[str, ...]], tuple[str, ...]]]:
    """Sets of rows that merge, each with its merged row; a row no group takes is its own."""
    units: list[tuple[list[tuple[str, ...]], tuple[str, ...]]] = []
    for rows, clusters, most_varying, free in candidates:
        grouped: set[int] = set()
        for cluster in clusters:
            members = [rows[i] for i in cluster]
            weights = [weight[row] for row in members]
            for group in _positional_groups(members, weights, most_varying, config, free, known):
                group_rows = [members[i] for i in group]
                units.append((group_rows, tuple(_merged_row(group_rows))))
                grouped.update(cluster[i] for i in group)
        units.extend(([row], row) for n, row in enumerate(rows) if n not in grouped)
    return units


def _known_values(
    units: Sequence[tuple[list[tuple[str, ...]], tuple[str, ...]]],
    weight: Mapping[tuple[str, ...], float],
    config: MergeConfig,
) -> frozenset[str]:
    """The words merged groups took as a name's values (not merely covered by a mask)."""
    known: set[str] = set()
    for rows, _ in units:
        if len(rows) < 2:
            continue
        weights = [weight[row] for row in rows]
        for column in zip(*rows, strict=True):
            if len(set(column)) > 1 and _names_vary(column, weights, config):
                known.update(token for token in column if MASK not in token)
    return frozenset(known)


def _merged_row(rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        column[0] if len(set(column)) == 1 else _covering_token(column) or MASK
        for column in zip(*rows, strict=True)
    ]


def _collapse_lists(tokens: list[str]) -> tuple[str, ...]:
    """``tokens`` with each run of a repeated value-holding token (or 2-3 token group) kept once.

    ``delete blk_<*> blk_<*> blk_<*>`` is a list of values whose length is itself a value:
    ``delete blk_<*>``; so is ``node-<*> <*> <ok> node-<*> <*> <ok>``. A repeated word
    (``very very``) is text and stays.
    """
    masked = [token for token in tokens if MASK in token]
    if len(set(masked)) == len(masked):  # no value-holding token repeats: no list
        return tuple(tokens)
    out: list[str] = []
    for token in tokens:
        out.append(token)
        for period in (1, 2, 3):
            tail = out[-period:]
            if (
                len(out) >= 2 * period
                and tail == out[-2 * period : -period]
                and any(MASK in t for t in tail)
            ):
                del out[-period:]
                break
    return tuple(out)


_OPENING = {"(": ")", "[": "]", "{": "}"}


def _without_asides(row: tuple[str, ...]) -> tuple[str, ...]:
    """``row`` without its bracketed segments that hold a value: ``(<*> KB)``, ``[pid <*>]``.

    ``sent <*> bytes (<*> KB)`` is ``sent <*> bytes`` with a detail: the brackets say the
    segment is an aside, the mask that it carries a value, not a different outcome. An aside of
    words only (``(deprecated)``, ``[retrying]``) may change the meaning, so it stays.
    """
    if not any(token[:1] in _OPENING for token in row):
        return row
    kept: list[str] = []
    n = 0
    while n < len(row):
        closing = _OPENING.get(row[n][:1])
        end = n
        if closing is not None:
            end = next((e for e in range(n, len(row)) if row[e].endswith(closing)), -1)
        if closing is not None and end >= 0 and any(MASK in t for t in row[n : end + 1]):
            n = end + 1
            continue
        kept.append(row[n])
        n += 1
    return tuple(kept) if kept else row


def _free_positions(length: int, config: MergeConfig) -> int:
    # The positions that may differ on any evidence: zero for a single token and for short
    # templates that min_token_overlap leaves nothing to vary in. The epsilon absorbs float
    # rounding (5 x (1 - 0.6) is 1.9999...).
    by_overlap = math.floor(length * (1 - config.min_token_overlap) + 1e-9)
    return min(config.max_differing_positions, by_overlap)


def _clusters(rows: list[list[str]], eps: float) -> list[list[int]]:
    """DBSCAN clusters of two or more equal-length rows, as ascending indices into ``rows``."""
    # Imported here: only the analysis loop needs numpy.
    import numpy as np

    # The term-frequency vector of a row has one feature per position-tagged token
    # (``4:alice``), L2-normalised. No IDF: IDF weighs a token by its rarity, and a variable's
    # values are the rarest tokens, so it would push apart exactly the templates to merge, the
    # more so the more values the variable takes. Without it, the cosine distance between two
    # templates is at most the share of positions where they differ. A token that no other
    # template has at that position says nothing about which templates are alike: it is no
    # feature (-1 below). A row is then its token id at each position.
    tokens = np.empty((len(rows), len(rows[0])), dtype=np.int32)
    for position, column in enumerate(zip(*rows, strict=True)):
        counts = Counter(column)
        ids = {token: n for n, token in enumerate(t for t, c in counts.items() if c > 1)}
        tokens[:, position] = [ids.get(token, -1) for token in column]
    # Rows with the same features have the same vector: the clustering sees each vector once,
    # which keeps it small when a name takes many values. Rows without features share
    # nothing with any other row and are left out.
    rows_by_vector: dict[bytes, list[int]] = {}
    for index, row in enumerate(tokens):
        if (row >= 0).any():
            rows_by_vector.setdefault(row.tobytes(), []).append(index)
    points = list(rows_by_vector.values())
    if not points:
        return []
    labels = _dbscan(tokens[[point[0] for point in points]], eps) if len(points) > 1 else [0]
    clusters: dict[int, list[int]] = {}
    for label, point in zip(labels, points, strict=True):
        clusters.setdefault(int(label), []).extend(point)
    return sorted(sorted(cluster) for cluster in clusters.values() if len(cluster) > 1)


def _dbscan(tokens, eps: float) -> list[int]:
    """DBSCAN labels (cosine, min_samples=1) over each point's nearest neighbours only.

    With min_samples=1 every point is a core point, so a cluster is a connected component of
    the graph joining points at most ``eps`` apart. DBSCAN over all pairs makes neighbourhood
    lists that grow with the square of the points when many templates are alike; a graph of
    each point's ``_NEIGHBOURS`` nearest (ties to the lower index), made symmetric, keeps such
    a family connected in n x _NEIGHBOURS memory. Distances are computed in slices of bounded
    size.
    """
    import numpy as np

    count, length = tokens.shape
    neighbours = min(_NEIGHBOURS, count - 1)
    features = (tokens >= 0).sum(axis=1)
    # A position where every point has the same feature adds one to every pair's count.
    constant = (tokens == tokens[0]).all(axis=0)
    everywhere = int((tokens[0, constant] >= 0).sum())
    varying = tokens[:, ~constant]
    parent = list(range(count))

    def root(point: int) -> int:
        while parent[point] != point:
            parent[point] = parent[parent[point]]
            point = parent[point]
        return point

    # Per point of a slice and point compared: two bytes per position, then a few counts
    # and distances of 8 bytes.
    step = max(1, _WORKING_MEMORY_MIB * 1024 * 1024 // (count * (2 * length + 40)))
    for start in range(0, count, step):
        block = varying[start : start + step]
        same = (block[:, None, :] == varying[None, :, :]) & (block[:, None, :] >= 0)
        shared = everywhere + same.sum(axis=2)
        distance = 1.0 - shared / np.sqrt(features[start : start + step, None] * features)
        distance[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        # The k nearest: all closer than the k-th distance, then the lowest indices at it.
        kth = np.partition(distance, neighbours - 1, axis=1)[:, neighbours - 1 : neighbours]
        tied = distance == kth
        room = neighbours - (distance < kth).sum(axis=1, keepdims=True)
        nearest = (distance < kth) | (tied & (np.cumsum(tied, axis=1) <= room))
        # The epsilon absorbs float rounding: templates that differ at 3 of 10 positions are
        # 0.3 apart, not 0.30000000000000004.
        close = nearest & (distance <= eps + 1e-9)
        for point, other in zip(*np.nonzero(close), strict=True):
            parent[root(int(point) + start)] = root(int(other))
    return [root(point) for point in range(count)]


@dataclass(slots=True)
class _Group:
    members: list[int]
    # The members' shared token at each position, None where they differ.
    tokens: list[str | None]


def _positional_groups(
    rows: Sequence[Sequence[str]],
    weights: Sequence[float],
    most_varying: int,
    config: MergeConfig,
    free: int,
    known: frozenset[str] = frozenset(),
) -> list[list[int]]:
    """Groups (indices into equal-length ``rows``, two or more) that pass the positional check."""
    # Greedy, in the caller's (sorted) order: a row joins the first group it differs from in
    # at most most_varying positions, counting those where the group already varies.
    # Candidates come from an index: split the positions into most_varying + 1 blocks, and a
    # row that fits a group equals that group's constant tokens on at least one whole block.
    length = len(rows[0])
    blocks = [
        range(length * b // (most_varying + 1), length * (b + 1) // (most_varying + 1))
        for b in range(most_varying + 1)
    ]
    groups: list[_Group] = []
    index: dict[tuple[int, tuple[str | None, ...]], list[int]] = {}
    for r, row in enumerate(rows):
        keys = [(b, tuple(row[p] for p in block)) for b, block in enumerate(blocks)]
        candidates = sorted({g for key in keys for g in index.get(key, ())})
        for g in candidates:
            group = groups[g]
            differing = [p for p, token in enumerate(group.tokens) if token != row[p]]
            if len(differing) <= most_varying:
                group.members.append(r)
                for p in differing:
                    group.tokens[p] = None
                break
        else:
            groups.append(_Group([r], list(row)))
            for key in keys:
                index.setdefault(key, []).append(len(groups) - 1)
    # Index entries of blocks where a group came to vary are stale; the differing count above
    # rejects them, so they are not removed.
    passed = []
    for group in groups:
        if len(group.members) > 1:
            passed.extend(_split_until_valid(group.members, rows, weights, config, free, known))
    return [members for members in passed if len(members) > 1]


def _split_until_valid(
    members: list[int],
    rows: Sequence[Sequence[str]],
    weights: Sequence[float],
    config: MergeConfig,
    free: int,
    known: frozenset[str],
) -> list[list[int]]:
    member_weights = [weights[i] for i in members]
    columns = [c for c in zip(*(rows[i] for i in members), strict=True) if len(set(c)) > 1]
    # A position that is no variable on any evidence splits the group first; only then, if
    # more positions differ than are free, one that lacks the strongest evidence. Of those,
    # the one with the fewest values: the likeliest to be the event's own word ("startup" /
    # "shutdown" rather than the daemon's name).
    failing = [c for c in columns if not _column_varies(c, member_weights, config, False, known)]
    if not failing and len(columns) > free:
        failing = [c for c in columns if not _column_varies(c, member_weights, config, True, known)]
    if failing:
        column = min(failing, key=lambda c: len(set(c)))
        by_value: dict[str, list[int]] = {}
        for member, value in zip(members, column, strict=True):
            by_value.setdefault(value, []).append(member)
        return [
            part
            for same_value in by_value.values()
            if len(same_value) > 1
            for part in _split_until_valid(same_value, rows, weights, config, free, known)
        ]
    return [members]


def _column_varies(
    column: Sequence[str],
    weights: Sequence[float],
    config: MergeConfig,
    strict: bool = False,
    known: frozenset[str] = frozenset(),
) -> bool:
    """Whether the tokens a group has at one position are the values of one variable.

    Five kinds of evidence, strongest first:

    - the values are many and spread: their effective number (``exp`` of the entropy of the
      values, each weighted by how often its templates occur) reaches ``min_spread_values``,
      whatever their characters (``[Node_A7]``, ``print-spool``, ``GigabitEthernet0/1``). A
      fixed set the code picks from (verbs, states, commands) has a handful of values, and
      a few of them carry most records (``boot`` and ``wait`` far more than ``halt``); names,
      ids and hosts keep coming and share the traffic. One value carrying most records while
      a few others are rare is a constant with exceptions: the entropy stays low;
    - the words are ``known``: another group of the service took them as a name's values,
      on the first or the last evidence (``_known_values``). Names recur across events;
    - every member holds a value there, in one identifier of one shape but for its words
      (``chunk_<*>``, ``snapshot_<*>``): ids of several kinds, printed by one statement. A
      key before a separator (``size=<*>`` / ``count=<*>``, ``load....<*>``) names the
      field, and another key is another message;
    - the signature masked a variable there in one member and the others fit its shape
      (``_covering_token``), as long as the masked members carry ``min_covering_share`` of
      the records: a word that a frequent template carries in every record is its constant,
      and a rare template with a value there is a variant of the event, not another value;
    - ``min_distinct_values`` distinct name-like (lowercase) words: two or three words at one
      place are more often alternatives ("closed" / "reset", "startup" / "shutdown") than
      names, and keeping them apart costs a few patterns.

    ``strict`` (more positions differ than ``min_token_overlap`` leaves free) takes only the
    first two.
    """
    if _spread(column, weights) >= config.min_spread_values and all(_ALNUM(t) for t in column):
        return True
    if known and all(token in known for token in column):
        return True
    if strict:
        return False
    if all(MASK in t and _IDENTIFIER(t) for t in column) and len({_shape(t) for t in column}) == 1:
        return True
    if _covering_token(column) is not None and _masked_share(column, weights) >= (
        config.min_covering_share
    ):
        return True
    return _distinct_names(column, config)


def _names_vary(column: Sequence[str], weights: Sequence[float], config: MergeConfig) -> bool:
    """Whether a position's words are a name's values by the column alone (first, last kind)."""
    spread = _spread(column, weights) >= config.min_spread_values
    return (spread and all(_ALNUM(t) for t in column)) or _distinct_names(column, config)


def _distinct_names(column: Sequence[str], config: MergeConfig) -> bool:
    return len(set(column)) >= config.min_distinct_values and all(_is_name_like(t) for t in column)


def _shape(token: str) -> str:
    """``token`` with each run of letters and digits as ``a``: ``chunk_<*>`` is ``a_<*>``."""
    return _WORDS("a", token)


def _masked_share(column: Sequence[str], weights: Sequence[float]) -> float:
    """The share of the records (or, without counts, of the members) whose token holds a mask."""
    total = sum(weights)
    if total <= 0:
        return _masked_share(column, [1.0] * len(column))
    return sum(w for token, w in zip(column, weights, strict=True) if MASK in token) / total


def _spread(column: Sequence[str], weights: Sequence[float]) -> float:
    """The effective number of distinct tokens in ``column``: exp of their weighted entropy."""
    by_token: Counter[str] = Counter()
    for token, weight in zip(column, weights, strict=True):
        by_token[token] += weight
    total = sum(by_token.values())
    if total <= 0:  # no counts yet: every template weighs one
        return _spread(column, [1.0] * len(column))
    entropy = -sum(w / total * math.log(w / total) for w in by_token.values() if w > 0)
    return math.exp(entropy)


# Letters or digits: a token with neither ("->", "|", "****") is the message's punctuation.
_ALNUM = re.compile(r"[^\W_]").search
_WORDS = re.compile(r"[^\W_]+").sub
# One identifier holding a value (``chunk_<*>``, ``node<*>x``): letters, digits, ``_`` and masks.
# A separator (``key=<*>``, ``load....<*>``) makes the word a key naming the field instead.
_IDENTIFIER = re.compile(rf"(?:\w|{re.escape(MASK)})+").fullmatch
# Paths, dotted names and key=value pairs are values whatever their case ("org.acme.Job").
_QUALIFIED = re.compile(r"[/=]|\w\.\w").search


def _is_name_like(token: str) -> bool:
    # Names of users, hosts, pods and services are lowercase. A capitalised word is a keyword,
    # state or class the code picked from a fixed set ("GET", "Paused", "LOOKING").
    if MASK in token:
        return True
    return bool(_ALNUM(token)) and (token.lower() == token or bool(_QUALIFIED(token)))


def _covering_token(column: Sequence[str]) -> str | None:
    """The most specific masked token whose shape every token of ``column`` fits, if any.

    The signature saw a variable there in one record, so ``chdir(<*>)`` covers ``chdir(pwd)``
    and ``<*>:`` covers ``./run.sh:``. Punctuation is covered only where the variable was
    empty (``(<*>)`` covers ``()``): a bare ``<*>`` against ``****`` or ``->`` is more likely
    a separator or a placeholder the code printed than a value.
    """
    values = set(column)
    covering = []
    for token in values:
        if MASK not in token:
            continue
        parts = token.split(MASK)
        shape = re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL).fullmatch
        empty = "".join(parts)
        if all(
            shape(other) and (MASK in other or other == empty or _ALNUM(other)) for other in values
        ):
            covering.append(token)
    return min(covering, key=lambda token: (-len(token), token)) if covering else None
