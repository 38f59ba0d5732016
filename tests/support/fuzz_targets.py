"""Fuzz targets shared by the short run in `make test` and the long one in `bench/fuzz.py`.

Each target is a hypothesis test body plus the strategy feeding it; each counts the inputs
it was given, so both runs can say how many they tried.

1. `decode_http_body`: any bytes, as protobuf or JSON, plain or claiming gzip, through the
   OTLP/HTTP decoder. Only `BadRequest` may come out, and what decodes re-encodes.
2. `decode_mutated_request`: a valid request with bytes flipped, cut or inserted.
3. `decode_json_document`: JSON documents shaped like OTLP/JSON with wrong types, bad ids,
   deep nesting.
4. `sign_text`: any text through the signature: no exception, the same answer twice, a
   bounded template, a 16-hex-digit pattern id.

`template_flood` is the cardinality attack: all-distinct templates through the real sampler,
whose memory must plateau at its caps while the overflow is counted.
"""

from __future__ import annotations

import gzip
import json
import string
import time
import tracemalloc
from collections import Counter

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.document import policy_from_document
from lipservice_otel.receiver.http_codec import BadRequest, decode_request, decompress
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.sampler import Sampler
from lipservice_otel.settings import load_settings
from lipservice_otel.text.signature import pattern_id, template_of_text
from tests.support.numbered import numbered_request

MAX_BYTES = 1024 * 1024
INPUTS: Counter[str] = Counter()


def _decode(body: bytes, encoding: str, content_encoding: str = "") -> None:
    try:
        request = decode_request(decompress(body, content_encoding, MAX_BYTES), encoding)
    except BadRequest as exc:
        assert exc.status in (400, 413, 415)
        return
    assert isinstance(request, ExportLogsServiceRequest)
    ExportLogsServiceRequest.FromString(request.SerializeToString())


bodies = st.tuples(
    st.binary(max_size=2048),
    st.sampled_from(["protobuf", "json"]),
    st.sampled_from(["", "gzip", "identity"]),
)


def decode_http_body(case: tuple[bytes, str, str]) -> None:
    INPUTS["decode_http_body"] += 1
    body, encoding, content_encoding = case
    if content_encoding == "gzip" and body[:1] == b"g":
        body = gzip.compress(body)  # sometimes valid gzip around arbitrary bytes
    _decode(body, encoding, content_encoding)


_SEED = numbered_request(0, 3).SerializeToString()
mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "insert"]),
        st.integers(0, len(_SEED)),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def decode_mutated_request(edits: list[tuple[str, int, bytes]]) -> None:
    INPUTS["decode_mutated_request"] += 1
    data = bytearray(_SEED)
    for kind, position, chunk in edits:
        position = min(position, len(data))
        if kind == "flip" and data:
            data[min(position, len(data) - 1)] ^= chunk[0] or 1
        elif kind == "cut":
            del data[position : position + len(chunk)]
        else:
            data[position:position] = chunk
    _decode(bytes(data), "protobuf")


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["5b8efff798038103d269b633813fc60c", "zz", "", "SEVERITY_NUMBER_INFO"]),
)
_OTLP_JSON_KEYS = st.sampled_from(
    [
        "resourceLogs",
        "scopeLogs",
        "logRecords",
        "traceId",
        "spanId",
        "body",
        "stringValue",
        "kvlistValue",
        "arrayValue",
        "values",
        "attributes",
        "key",
        "value",
        "severityNumber",
        "timeUnixNano",
        "resource",
        "unknownField",
    ]
)


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_OTLP_JSON_KEYS, inner, max_size=5)
    )


_json_values = st.recursive(_scalars, _containers, max_leaves=30)
json_documents = st.dictionaries(st.just("resourceLogs"), _json_values, max_size=1)


def decode_json_document(document: dict) -> None:
    INPUTS["decode_json_document"] += 1
    _decode(json.dumps(document).encode(), "json")


texts = st.text(max_size=300) | st.from_regex(
    r"[A-Za-z0-9 =:/._\-\"'\[\]{}<>@%,]{0,200}", fullmatch=True
)


def sign_text(text: str) -> None:
    INPUTS["sign_text"] += 1
    template = template_of_text(text)
    assert isinstance(template, str)
    assert template == template_of_text(text)
    assert len(template) <= 4 * len(text) + 64
    identifier = pattern_id("fuzz", template)
    assert len(identifier) == 16 and int(identifier, 16) >= 0


def template_flood(records: int, cap: int, batch: int = 10_000) -> dict:
    """All-distinct templates through the sampler; memory must plateau at the caps."""
    config = load_settings(
        environ={},
        overrides={"sampler.template_cache_size": cap, "sampler.max_aggregate_keys": cap},
    )
    aggregates = Aggregates(cap)
    sampler = Sampler(config.sampler, policy_from_document({"default_rate": 0.1}), aggregates)
    serial = iter(range(3 * records))

    def word() -> str:
        # A fresh all-letter word each time: letters are never masked, so every body is a new
        # template.
        n, letters = next(serial) + 26**4, []
        while n:
            n, digit = divmod(n, 26)
            letters.append(string.ascii_lowercase[digit])
        return "".join(letters)

    tracemalloc.start()
    started = time.perf_counter()
    warm = None
    warmup_batches = max(1, records // batch // 3)
    overflow = 0
    for sent in range(0, records, batch):
        request = ExportLogsServiceRequest()
        scope_logs = request.resource_logs.add().scope_logs.add()
        for _ in range(batch):
            scope_logs.log_records.add().body.string_value = f"{word()} {word()} on {word()}"
        sampler.sample(request)
        if sent == warmup_batches * batch:
            warm = tracemalloc.get_traced_memory()[0]
        if sent % (50 * batch) == 0:
            overflow += aggregates.drain().overflow_records
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    overflow += aggregates.drain().overflow_records
    result = {
        "records": records,
        "cap": cap,
        "overflow_records": overflow,
        "memory_after_warmup_mib": round((warm or current) / 2**20, 2),
        "memory_at_end_mib": round(current / 2**20, 2),
        "peak_mib": round(peak / 2**20, 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result


TARGETS = (
    (decode_http_body, bodies),
    (decode_mutated_request, mutations),
    (decode_json_document, json_documents),
    (sign_text, texts),
)
