"""The compiled error-context store against error_context.py's, operation for operation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lipservice_otel.sampling.error_context import ENTRY_OVERHEAD_BYTES, ErrorContext
from tests.support.native import native_module

TRACES = [bytes([n]) * 16 for n in range(6)]
ORIGINS = [(b"resource", b"scope"), (b"", b"")]

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("remember"),
            st.sampled_from(TRACES),
            st.sampled_from(ORIGINS),
            st.binary(max_size=300),
        ),
        st.tuples(st.just("recall"), st.sampled_from(TRACES)),
        st.tuples(st.just("is_hot"), st.sampled_from(TRACES)),
        st.tuples(st.just("give_back"), st.sampled_from(TRACES)),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 0.5, 2.0, 7.0, 40.0])),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(
    ops=operations,
    limits=st.tuples(
        st.sampled_from([1.0, 5.0]),
        st.sampled_from([600, 5000, 1 << 20]),
        st.sampled_from([0.0, 3.0, 30.0]),
        st.sampled_from([1, 3, 100]),
        st.sampled_from([1, 2, 256]),
    ),
)
def test_the_stores_agree(ops, limits):
    native = native_module()
    python, compiled = ErrorContext(*limits), native.ErrorContext(*limits)
    now = 100.0
    last_recalled: dict[bytes, list] = {}
    for op in ops:
        kind = op[0]
        if kind == "wait":
            now += op[1]
        elif kind == "remember":
            for store in (python, compiled):
                store.remember(op[1], now, op[2], op[3])
        elif kind == "recall":
            got = compiled.recall(op[1], now)
            assert got == python.recall(op[1], now)
            last_recalled[op[1]] = got
        elif kind == "is_hot":
            assert compiled.is_hot(op[1], now) == python.is_hot(op[1], now)
        else:
            entries = last_recalled.pop(op[1], [])
            python.give_back(entries)
            compiled.give_back(entries)
        assert compiled.bytes_held == python.bytes_held


def test_entry_overhead_is_the_same():
    assert native_module().ENTRY_OVERHEAD_BYTES == ENTRY_OVERHEAD_BYTES
