"""Error context: the window's bounds on their own (through the real receiver with real trace
ids from the OpenTelemetry SDK: tests/integration/test_error_context.py)."""

from __future__ import annotations

from lipservice_otel.sampling.error_context import ENTRY_OVERHEAD_BYTES, ErrorContext

ORIGIN = (b"resource", b"scope")


def remember_all(context: ErrorContext, trace_ids: list[bytes], record: bytes, at: float) -> None:
    for trace_id in trace_ids:
        context.remember(trace_id, at, ORIGIN, record)


def test_a_long_trace_keeps_its_last_records_only():
    context = ErrorContext(60.0, 1 << 30, 30.0, 100, max_records_per_trace=4)
    for n in range(10):
        context.remember(b"t" * 16, 1.0, ORIGIN, f"step {n}".encode())
    recalled = context.recall(b"t" * 16, 1.0)
    assert [entry[3] for entry in recalled] == [b"step 6", b"step 7", b"step 8", b"step 9"]


def test_the_byte_cap_counts_bookkeeping_and_holds_what_is_queued():
    record = b"x" * 100
    cap = 50 * (len(record) + ENTRY_OVERHEAD_BYTES)
    context = ErrorContext(60.0, cap, 30.0, 100, max_records_per_trace=256)
    remember_all(context, [n.to_bytes(16, "big") for n in range(200)], record, 1.0)
    # Only the newest 50 fit: the oldest traces were forgotten.
    assert context.bytes_held == cap
    assert context.recall((149).to_bytes(16, "big"), 1.0) == []
    assert len(context.recall((150).to_bytes(16, "big"), 1.0)) == 1
    # A recalled entry is still in the window queue until it ages out: still counted.
    assert context.bytes_held == cap
    context.remember(b"later".ljust(16), 100.0, ORIGIN, record)  # the window moved on
    assert context.bytes_held == len(record) + ENTRY_OVERHEAD_BYTES


def test_recall_returns_only_records_inside_the_window():
    context = ErrorContext(5.0, 1 << 30, 30.0, 100, max_records_per_trace=256)
    context.remember(b"t" * 16, 1.0, ORIGIN, b"old")
    context.remember(b"t" * 16, 4.0, ORIGIN, b"recent")
    assert [entry[3] for entry in context.recall(b"t" * 16, 7.0)] == [b"recent"]
    assert context.is_hot(b"t" * 16, 30.0) and not context.is_hot(b"t" * 16, 40.0)
