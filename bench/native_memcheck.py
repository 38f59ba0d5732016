"""The compiled sampler under valgrind's memcheck, on a small corpus (tracemalloc cannot see
C allocations): valid, mutated and hostile requests through the walker and the compiled
sampler (decision, splice, error-context store; enforce and shadow mode, exemptions, written
severities), bodies through the signature.

    PYTHONMALLOC=malloc valgrind --leak-check=full --errors-for-leak-kinds=definite \\
        --error-exitcode=1 .venv/bin/python bench/native_memcheck.py

Memcheck's findings inside _native (the frames named `_native.c`) are what to look at; the
interpreter's own start-up noise is not ours. Without valgrind this is just a smoke run.
"""

from __future__ import annotations

import random
import re
import sys
from dataclasses import replace

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lipservice_otel.policy.model import Exemption, Policy
from lipservice_otel.sampling import _native
from lipservice_otel.sampling.aggregates import Aggregates
from lipservice_otel.sampling.compiled import CompiledSampler
from lipservice_otel.sampling.config import SamplerConfig


def corpus(seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "memcheck"
    scope_logs = resource_logs.scope_logs.add()
    for n in range(50):
        record = scope_logs.log_records.add()
        record.body.string_value = f"worker {n} took {rng.random():.3f} ms for user{n % 7}"
        record.trace_id = rng.randbytes(16) if n % 3 else bytes([n % 5]) * 16
        # Some without a severity: inferred, and written under infer_severity.write.
        record.severity_number = 17 if n % 11 == 0 else 0 if n % 13 == 5 else 9
        record.attributes.add(key="k").value.int_value = n
    structured = scope_logs.log_records.add()
    structured.body.kvlist_value.values.add(key="msg").value.string_value = "json 12"
    good = request.SerializeToString()
    cases = [good, good[:-5], b"\xff" * 8, b"\x0a\x80", b"\x0a\x02\x0f\x00"]
    for _ in range(200):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            data[position] = rng.randrange(256)
        cases.append(bytes(data))
    return cases


def main() -> int:
    cases = corpus()
    taken = sum(_native.walk(data) is not None for data in cases)
    # A small anomaly budget: learned policies' new patterns fall back to a draw past it.
    config = SamplerConfig(
        template_cache_size=64, max_aggregate_keys=20, anomaly_keep_per_second=10
    )
    writing = replace(config, infer_severity=replace(config.infer_severity, write=True))
    # Exemptions of each scope and kind: equals on an int attribute, a body regex (a Python
    # call per record), a resource attribute.
    exemptions = (
        Exemption("k7", "attribute", "k", equals="7"),
        Exemption("slow", "body", "", pattern=re.compile(r"took 0\.9")),
        Exemption("memcheck", "resource", "service.name", equals="other"),
    )
    sampled = 0
    for settings in (config, writing):
        sampler = CompiledSampler(_native, settings, Policy(default_rate=0.3), Aggregates(20))
        # Enforce, then shadow mode's annotations (cached per slot, or made per record for a
        # reason other than the rule's: bursts, new patterns past the budget, exemptions).
        for policy in (
            Policy(default_rate=0.3),
            Policy(version=2, default_rate=0.5, learned=True),
            Policy(version=3, mode="shadow", default_rate=0.3),
            Policy(version=4, mode="shadow", default_rate=0.5, learned=True),
            Policy(version=5, default_rate=0.3, exemptions=exemptions),
            Policy(version=6, mode="shadow", default_rate=0.5, learned=True, exemptions=exemptions),
        ):
            sampler.set_policy(policy)
            for data in cases * 3:
                walked = sampler.walk(data, 1 << 20)
                sampled += walked is not None and sampler.sample_walked(walked) is not None
    bodies = [f"request {n} from 10.0.{n % 9}.1 in {n} ms" for n in range(500)]
    bodies += ['quoted "a b" 1', "ünï 12", '{"msg": "x 1"}', "Jun 14 15:16:01 host 4 KB"]
    # The compiled token rules and quoting: values of every kind, nested and unbalanced quotes,
    # a token past the rules' length, a body past the token limit, the memos filled past full.
    values = [
        "123e4567-e89b-12d3-a456-426614174000",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7:8",
        "[::1]:80",
        "10/Oct/2000:13:55:36",
        "deadbeef12",
        "x2k4p",
        "storage12",
        "MININT-FNANLI5",
        "a.b+c@mail.example.org",
        "host-7.example.com:8080",
        "(/var/data/12/part)",
        "uid=0",
        "key:value1",
        "GET",
        '"GET /x HTTP/1.1"',
        "'a b'",
        '"a \\"b c\\" d"',
        '"open',
        "it's",
    ]
    bodies += [" ".join(values[i : i + 3]) for i in range(len(values) - 2)]
    bodies += ["x" * 300 + "1 y", " ".join(["w1"] * 600), "Sun Jul 3 10:05:25 4 ms"]
    bodies += [f"token{n}x{n} id-{n}q" for n in range(20_000)]
    templates = {_native.template_of_text(body, 64) for body in bodies}
    print(
        f"walked {len(cases)} requests ({taken} taken), sampled {sampled} natively, "
        f"{len(templates)} templates"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
