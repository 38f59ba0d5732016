"""Shard assignment, quotas, the report split, the merged policy and the pattern views
shared through Redis (analysis/shards.py)."""

from __future__ import annotations

import pytest

from lipservice_otel.analysis.plan import PatternView
from lipservice_otel.analysis.shards import (
    merge_policies,
    quota,
    rebalance,
    shard_key,
    shard_of,
    views_from_json,
    views_to_json,
)
from lipservice_otel.control.codec import report_to_proto, split_report_message
from lipservice_otel.policy.model import Exemption, PatternRule, Policy
from lipservice_otel.sampling.aggregates import IntervalReport, PatternCounts, PatternInfo


def test_a_key_lands_in_the_same_shard_in_every_process_and_release():
    # Fixed values: a changed hash would move every service to another owner at an upgrade
    # (with replicas of two releases disagreeing meanwhile).
    assert [shard_of(k, 16) for k in ("checkout", "search", "", "tenant-a")] == [0, 10, 4, 15]
    assert [shard_of(k, 1000) for k in ("checkout", "search")] == [200, 266]
    assert shard_of("checkout", 1) == 0


def test_services_spread_over_the_shards():
    shards = [shard_of(f"service-{n}", 16) for n in range(1600)]
    per_shard = [shards.count(s) for s in range(16)]
    assert min(per_shard) > 60 and max(per_shard) < 140, per_shard


def test_the_tenant_is_the_key_when_there_is_one():
    assert shard_key("checkout", "acme") == "acme"
    assert shard_key("checkout", "") == "checkout"


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 7, 16, 20])
@pytest.mark.parametrize("shards", [1, 16, 17])
def test_quotas_add_up_to_every_shard_and_differ_by_one_at_most(replicas, shards):
    ids = [f"replica-{n}" for n in range(replicas)]
    quotas = [quota(r, ids, shards) for r in ids]
    assert sum(quotas) == shards
    assert max(quotas) - min(quotas) <= 1


def test_a_replica_counts_itself_before_its_heartbeat_is_seen():
    assert quota("new", ["old"], 16) == 8
    assert quota("new", [], 16) == 16


def test_rebalance_takes_free_shards_up_to_the_quota_and_gives_up_the_extras():
    assert rebalance({0, 1}, [5, 3, 9], 4) == ([3, 5], [])
    assert rebalance(range(16), [], 6) == ([], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
    assert rebalance({2}, [], 1) == ([], [])


def test_replicas_joining_one_at_a_time_end_up_balanced():
    holders: dict[int, str] = {}
    replicas: list[str] = []
    for joining in ("a", "b", "c"):
        replicas.append(joining)
        for _ in range(2):  # each replica ticks; extras given up, then taken by the others
            for replica in replicas:
                owned = {s for s, h in holders.items() if h == replica}
                free = [s for s in range(16) if s not in holders]
                take, give = rebalance(owned, free, quota(replica, replicas, 16))
                for shard in give:
                    del holders[shard]
                for shard in take:
                    holders[shard] = replica
        counts = sorted(list(holders.values()).count(r) for r in replicas)
        assert sum(counts) == 16 and counts[-1] - counts[0] <= 1, (joining, counts)


def report() -> IntervalReport:
    return IntervalReport(
        counts=[
            PatternCounts("checkout", "p1", "info", 5, 1),
            PatternCounts("checkout", "p1", "error", 2, 2),
            PatternCounts("search", "p2", "info", 7, 1),
            # The same template counted by another service stays with its pattern.
            PatternCounts("search", "p1", "info", 1, 0),
        ],
        patterns={
            "p1": PatternInfo("checkout", "charged <*>", ["charged 5"]),
            "p2": PatternInfo("search", "query <*>", ["query a"]),
            "p3": PatternInfo("search", "idle", []),
        },
        overflow_records=3,
    )


def split(report: IntervalReport, shards: int):
    return split_report_message(report_to_proto(report, "r1", 7, 99), shards)


def sampled(part) -> set[str]:
    return {p.pattern_id for p in part.patterns}


def test_a_report_splits_by_shard_and_keeps_each_pattern_whole():
    shards = 64
    parts = split(report(), shards)
    checkout, search = shard_of("checkout", shards), shard_of("search", shards)
    assert checkout != search  # with 64 shards these two do not collide
    assert set(parts) == {checkout, search, 0}
    assert {c.pattern_id for c in parts[checkout].counts} == {"p1"}
    assert len(parts[checkout].counts) == 3
    assert sampled(parts[checkout]) == {"p1"}
    assert sampled(parts[search]) == {"p2", "p3"}
    assert [c.pattern_id for c in parts[search].counts] == ["p2"]
    assert sum(p.overflow_records for p in parts.values()) == 3
    assert parts[0].overflow_records == 3
    total = sum(c.received for p in parts.values() for c in p.counts)
    assert total == sum(c.received for c in report().counts)
    # Every part says whose interval it is.
    assert {
        (p.receiver_id, p.policy_version, p.interval_end_unix_nano) for p in parts.values()
    } == {("r1", 7, 99)}


def test_one_shard_gets_the_whole_report():
    whole = report_to_proto(report(), "r1", 7, 99)
    parts = split_report_message(whole, 1)
    assert list(parts) == [0]
    assert parts[0].SerializeToString() == whole.SerializeToString()


def test_the_merged_policy_is_the_base_with_every_shards_rules():
    keep = Exemption(name="audit", scope="resource", key="service.name", equals="audit")
    pinned = Exemption(name="pinned", scope="resource", key="service.name", equals="pay")
    base = Policy(version=1, default_rate=0.5, exemptions=(keep,))
    one = Policy(
        version=4,
        pattern_rules={"p1": PatternRule(0.1, "pattern", 3.0)},
        pattern_aliases={"s1": "p1"},
        exemptions=(keep, pinned),
        learned=True,
        generator="rules",
        created_unix_nano=10,
    )
    two = Policy(
        version=9,
        pattern_rules={"p2": PatternRule(1.0, "anomaly:spike", 8.0)},
        signature_rules={"s2": PatternRule(0.5, "pattern", 1.0)},
        learned=True,
        generator="rules+llm",
        created_unix_nano=20,
    )
    merged = merge_policies(base, [one, two], 42)
    assert merged.version == 42
    assert merged.default_rate == 0.5
    assert dict(merged.pattern_rules) == {**one.pattern_rules, **two.pattern_rules}
    assert dict(merged.pattern_aliases) == {"s1": "p1"}
    assert dict(merged.signature_rules) == dict(two.signature_rules)
    assert [e.name for e in merged.exemptions] == ["audit", "pinned"]
    assert merged.learned and merged.generator == "rules+llm"
    assert merged.created_unix_nano == 20
    assert merged.summary == "2 patterns from 2 shards"


def test_no_shard_written_yet_merges_to_the_base():
    base = Policy(version=3, default_rate=0.2)
    merged = merge_policies(base, [], 5)
    assert merged.version == 5 and not merged.learned and not merged.pattern_rules


def test_a_tenants_patterns_go_to_the_tenants_shard_whatever_their_service():
    shards = 64
    tenant_report = IntervalReport(
        counts=[
            PatternCounts("checkout", "p1", "info", 5, 1, tenant="acme"),
            PatternCounts("search", "p2", "info", 7, 1, tenant="acme"),
            PatternCounts("search", "p3", "info", 2, 0),
        ],
        patterns={
            "p1": PatternInfo("checkout", "charged <*>", tenant="acme"),
            "p2": PatternInfo("search", "query <*>", tenant="acme"),
            "p3": PatternInfo("search", "idle"),
            "p4": PatternInfo("checkout", "quiet <*>", tenant="acme"),  # no count this time
        },
        overflow_records=0,
    )
    parts = split(tenant_report, shards)
    acme, search = shard_of("acme", shards), shard_of("search", shards)
    assert acme != search
    assert sampled(parts[acme]) == {"p1", "p2", "p4"}
    assert sampled(parts[search]) == {"p3"}


def test_pattern_views_round_trip_through_json_and_unknown_keys_are_left_out():
    view = PatternView(
        pattern_id="p1",
        service="checkout",
        template="charged <*>",
        examples=("charged 5",),
        volume_per_second=2.5,
        error_share=0.1,
        rate=0.5,
        reason="pattern",
        explanation="budget",
        first_seen=100.0,
        last_seen=200.0,
        merged_signatures=("s1", "s2"),
    )
    assert views_from_json(views_to_json([view])) == [view]
    newer = b'[{"pattern_id":"p2","service":"s","template":"t","examples":[],"volume_per_second":1,'
    newer += b'"error_share":0,"rate":1,"reason":"r","explanation":"","first_seen":1,'
    newer += b'"last_seen":2,"merged_signatures":[],"from_a_later_release":7}]'
    assert views_from_json(newer)[0].pattern_id == "p2"
