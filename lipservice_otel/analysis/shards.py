"""Sharded analysis, the pure part: which shard a pattern belongs to, how many shards each
replica takes, a report split by shard, and the shards' rules merged into one policy.

A pattern's shard key is its tenant when it has one, else its service; its shard is a stable
hash of that key modulo the number of shards, the same in every process and release (not
Python's `hash`, which is salted per process). A tenant's or service's patterns all land in
one shard, so the budget over them (per service, per tenant) is planned by one owner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from lipservice_otel.analysis.plan import PatternView
from lipservice_otel.analysis.state import AnalysisState
from lipservice_otel.policy.model import Exemption, PatternRule, Policy

K = TypeVar("K", bound="Keyed")
S = TypeVar("S", bound="Keyed")


def shard_key(service: str, tenant: str = "") -> str:
    return tenant or service


def shard_of(key: str, shards: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def quota(replica: str, replicas: Sequence[str], shards: int) -> int:
    """The shards `replica` should own among the live `replicas`: an even split, the first
    `shards % len(replicas)` replicas in id order taking one more, so the quotas add up to
    `shards` and no two differ by more than one."""
    ordered = sorted(set(replicas) | {replica})
    base, extra = divmod(shards, len(ordered))
    return base + (1 if ordered.index(replica) < extra else 0)


def rebalance(
    owned: Iterable[int], free: Iterable[int], target: int
) -> tuple[list[int], list[int]]:
    """(shards to take, shards to give up) to bring `owned` to `target`: free shards lowest
    first while under it, the highest owned ones while over it."""
    owned, free = sorted(owned), sorted(free)
    if len(owned) > target:
        return [], owned[target:]
    return free[: target - len(owned)], []


class Keyed(Protocol):
    """A count or a sample, as either side of the wire has it."""

    pattern_id: str
    service: str
    tenant: str


def split_by_shard(
    counts: Iterable[K], samples: Iterable[S], shards: int
) -> tuple[dict[int, list[K]], dict[int, list[S]]]:
    """A report's counts and samples grouped by shard. A pattern stays whole in one shard (its
    first count's key decides, or its sample's when it has no count), so its template,
    examples and counts arrive together."""
    shard_by_pattern: dict[str, int] = {}
    shard_by_key: dict[str, int] = {}

    def shard_for(item: Keyed) -> int:
        key = shard_key(item.service, item.tenant)
        shard = shard_by_key.get(key)
        if shard is None:
            shard = shard_by_key[key] = shard_of(key, shards)
        return shard

    by_shard: dict[int, list[K]] = {}
    for item in counts:
        pid = item.pattern_id
        shard = shard_by_pattern.get(pid)
        if shard is None:
            shard = shard_by_pattern[pid] = shard_for(item)
        by_shard.setdefault(shard, []).append(item)
    samples_by_shard: dict[int, list[S]] = {}
    for sample in samples:
        shard = shard_by_pattern.get(sample.pattern_id)
        if shard is None:
            shard = shard_for(sample)
        samples_by_shard.setdefault(shard, []).append(sample)
    return by_shard, samples_by_shard


def merge_policies(base: Policy, shard_policies: Iterable[Policy], version: int) -> Policy:
    """The policy every receiver gets: the configured `base` with every shard's learned rules
    and the exemptions people added through overrides. Shards hold disjoint patterns, so the
    rule tables are a plain union."""
    rules: dict[str, PatternRule] = {}
    aliases: dict[str, str] = {}
    signature_rules: dict[str, PatternRule] = {}
    exemptions: dict[str, Exemption] = {e.name: e for e in base.exemptions}
    generators, created, shards = set(), 0, 0
    for shard in shard_policies:
        shards += 1
        rules.update(shard.pattern_rules)
        aliases.update(shard.pattern_aliases)
        signature_rules.update(shard.signature_rules)
        for exemption in shard.exemptions:
            exemptions.setdefault(exemption.name, exemption)
        generators.add(shard.generator)
        created = max(created, shard.created_unix_nano)
    return replace(
        base,
        version=version,
        pattern_rules=rules,
        pattern_aliases=aliases,
        signature_rules=signature_rules,
        exemptions=tuple(exemptions.values()),
        learned=shards > 0,
        generator="rules+llm" if "rules+llm" in generators else ("rules" if shards else "file"),
        created_unix_nano=created,
        summary=f"{len(rules)} patterns from {shards} shards",
    )


def merge_states(states: Iterable[AnalysisState]) -> AnalysisState:
    """One state over several shards' (disjoint patterns), for reading only: the tables are
    new, the patterns in them the shards' own."""
    merged = AnalysisState()
    for state in states:
        merged.patterns.update(state.patterns)
        merged.aliases.update(state.aliases)
        merged.canonical_templates.update(state.canonical_templates)
        merged.error_share.update(state.error_share)
        merged.boosts.update(state.boosts)
        merged.template_boosts.update(state.template_boosts)
        merged.rising = merged.rising | state.rising
        merged.overrides.update(state.overrides)
        merged.judgements.update(state.judgements)
        merged.cycles = max(merged.cycles, state.cycles)
    return merged


_VIEW_FIELDS = {f.name: f for f in dataclasses.fields(PatternView)}
_VIEW_TUPLES = {name for name, f in _VIEW_FIELDS.items() if str(f.type).startswith("tuple")}


def views_to_json(views: Iterable[PatternView]) -> bytes:
    """A shard's pattern views, for any replica's ListPatterns (JSON, as the state is)."""
    return json.dumps([dataclasses.asdict(v) for v in views], separators=(",", ":")).encode()


def views_from_json(blob: bytes) -> list[PatternView]:
    """Keys a replica of another release does not know are left out; missing ones default."""
    return [
        PatternView(
            **{k: tuple(v) if k in _VIEW_TUPLES else v for k, v in raw.items() if k in _VIEW_FIELDS}
        )
        for raw in json.loads(blob)
    ]
