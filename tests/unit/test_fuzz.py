"""A short fuzz run over the request decoder and the signature (see
tests/support/fuzz_targets.py; `bench/fuzz.py` runs the same targets for longer and reports how
many inputs it tried)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.fuzz_targets import INPUTS, TARGETS, template_flood

# Enough to catch a regression in seconds; the long budget lives in bench/fuzz.py.
SHORT_BUDGET = 300


@pytest.mark.parametrize(("target", "strategy"), TARGETS, ids=[t.__name__ for t, _ in TARGETS])
def test_fuzz_short_budget(target, strategy):
    before = INPUTS[target.__name__]
    run = settings(
        max_examples=SHORT_BUDGET,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(strategy)(target))
    run()
    assert INPUTS[target.__name__] - before >= SHORT_BUDGET // 2


def test_a_flood_of_distinct_templates_costs_bounded_memory():
    result = template_flood(records=30_000, cap=1000, batch=2000)
    # Every record past the caps is counted, none is lost from the totals.
    assert result["overflow_records"] >= 30_000 - 2 * 1000
    # After warm-up (a third of the flood) memory moves only within the bounded caches (the
    # sampler's caps, the signature's token memos of a few MB, cleared when full), not with
    # the flood; bench/fuzz.py shows the plateau over millions of templates.
    assert result["memory_at_end_mib"] - result["memory_after_warmup_mib"] < 8.0, result
    assert result["peak_mib"] < 32, result
