"""Long fuzz run over the request decoder and the signature, plus a template flood.

The targets are those of `tests/unit/test_fuzz.py` (defined in `tests/support/fuzz_targets.py`),
given `--examples` inputs each instead of the test's short budget. Then `--flood` records with
all-distinct templates go through the real sampler with its caps lowered to `--cap`, and the
sizes it keeps are reported: they must stay at the caps (bounded memory, overflow counted).

The counts go to stdout and to ``bench/results/fuzz.json``.

Usage (from the repository root, with the package installed, e.g. by ``make``)::

    python bench/fuzz.py --examples 25000 --flood 2000000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fuzz_targets import INPUTS, TARGETS, template_flood  # noqa: E402


def fuzz(examples: int) -> list[dict]:
    results = []
    for target, strategy in TARGETS:
        started = time.perf_counter()
        before = INPUTS[target.__name__]
        settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(target))()
        tried = INPUTS[target.__name__] - before
        seconds = time.perf_counter() - started
        results.append({"target": target.__name__, "inputs": tried, "seconds": round(seconds, 1)})
        print(f"{target.__name__:24} {tried:>9} inputs  {seconds:7.1f}s  no failure", flush=True)
    return results


def report_flood(records: int, cap: int) -> dict:
    result = template_flood(records, cap)
    print(
        f"flood: {records} distinct templates, caps {cap}: overflow counted "
        f"{result['overflow_records']}, memory {result['memory_after_warmup_mib']} MiB after "
        f"warm-up -> {result['memory_at_end_mib']} MiB at the end"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=25_000, help="inputs per target")
    parser.add_argument("--flood", type=int, default=2_000_000, help="distinct-template records")
    parser.add_argument("--cap", type=int, default=10_000, help="template and key caps")
    args = parser.parse_args()
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "fuzz": fuzz(args.examples),
        "flood": report_flood(args.flood, args.cap) if args.flood else None,
    }
    out = ROOT / "bench" / "results" / "fuzz.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
