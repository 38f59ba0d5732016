"""Hypothesis strategies for ExportLogsServiceRequest: structured bodies, attributes, trace
ids of every length, unicode, upstream stamps, severities to infer; and the same as bytes,
cut or mutated."""

from __future__ import annotations

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.support.log_families import log_bodies, log_families

_KEYS = st.sampled_from(
    ["service.name", "user", "http.status", "msg", "level", "k8s.pod", "sampling.adjusted_count"]
)


def _any_values(depth: int) -> st.SearchStrategy:
    leaves = st.one_of(
        st.builds(lambda s: AnyValue(string_value=s), log_bodies),
        st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
        st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda d: AnyValue(double_value=d), st.floats(allow_nan=False)),
        st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=16)),
        st.just(AnyValue()),
    )
    if depth <= 0:
        return leaves

    def kvlist(pairs):
        value = AnyValue()
        value.kvlist_value.SetInParent()
        for key, item in pairs:
            value.kvlist_value.values.add(key=key).value.CopyFrom(item)
        return value

    def array(items):
        value = AnyValue()
        value.array_value.SetInParent()
        for item in items:
            value.array_value.values.add().CopyFrom(item)
        return value

    inner = _any_values(depth - 1)
    return st.one_of(
        leaves,
        st.lists(st.tuples(_KEYS, inner), max_size=4).map(kvlist),
        st.lists(inner, max_size=4).map(array),
    )


bodies = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), log_bodies),
    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=3000)),
    _any_values(3),
    st.none(),
)
_ids = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.just(bytes(16)),
    st.binary(max_size=20),
    st.just(b""),
)
# What most traffic looks like: valid or no ids, no upstream stamps, few attributes.
_clean_ids = st.one_of(st.binary(min_size=16, max_size=16), st.just(b""), st.just(bytes(16)))
_clean_span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.just(b""))
_clean_keys = st.sampled_from(["user", "http.status", "k8s.pod"])
_severity_texts = st.sampled_from(["", "INFO", "warn", "ERROR", "debug", "Fatal", "notice"])


@st.composite
def records(draw, family: list[str] | None = None, clean: bool = False):
    record = {}
    if family is not None and draw(st.booleans()):
        record["body"] = AnyValue(string_value=draw(st.sampled_from(family)))
    else:
        record["body"] = draw(bodies)
    record["severity_number"] = draw(st.one_of(st.just(0), st.integers(0, 24), st.just(9)))
    record["severity_text"] = draw(_severity_texts)
    record["time_unix_nano"] = draw(st.integers(0, 2**64 - 1))
    record["trace_id"] = draw(_clean_ids if clean else _ids)
    record["span_id"] = draw(
        _clean_span_ids if clean else st.one_of(st.binary(min_size=8, max_size=8), _ids)
    )
    record["attributes"] = draw(
        st.lists(
            st.tuples(
                _clean_keys if clean else _KEYS,
                st.one_of(
                    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=20)),
                    st.builds(lambda d: AnyValue(double_value=d), st.floats(0.5, 100)),
                    st.builds(lambda i: AnyValue(int_value=i), st.integers(1, 100)),
                ),
            ),
            max_size=2 if clean else 4,
        )
    )
    return record


@st.composite
def requests(draw, max_records: int = 12, clean: bool = False) -> ExportLogsServiceRequest:
    """clean: only records the compiled sampler takes without Python (see compiled.py)."""
    request = ExportLogsServiceRequest()
    family = draw(log_families())
    for _ in range(draw(st.integers(0, 3))):
        resource_logs = request.resource_logs.add()
        service = draw(st.one_of(st.none(), st.sampled_from(["api", "db", "ünï", ""])))
        if service is not None:
            resource_logs.resource.attributes.add(key="service.name").value.string_value = service
        if draw(st.booleans()):
            resource_logs.resource.attributes.add(key="host").value.int_value = 3
        for _ in range(draw(st.integers(0, 2))):
            scope_logs = resource_logs.scope_logs.add()
            if draw(st.booleans()):
                scope_logs.scope.name = draw(st.sampled_from(["app", "ščope"]))
            for _ in range(draw(st.integers(0, max_records))):
                fields = draw(records(family, clean))
                record = scope_logs.log_records.add()
                body = fields.pop("body")
                if body is not None:
                    record.body.CopyFrom(body)
                for key, value in fields.pop("attributes"):
                    record.attributes.append(KeyValue(key=key, value=value))
                for name, value in fields.items():
                    setattr(record, name, value)
    return request


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    """Bytes flipped, cut or inserted at the given positions."""
    out = bytearray(data)
    for kind, position, chunk in edits:
        position = min(position, len(out))
        if kind == "flip" and out:
            out[min(position, len(out) - 1)] ^= chunk[0] or 1
        elif kind == "cut":
            del out[position : position + len(chunk)]
        else:
            out[position:position] = chunk
    return bytes(out)


edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert"]),
        st.integers(0, 4096),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)
