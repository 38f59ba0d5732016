"""Inline signatures against Drain3: speed and grouping accuracy on Loghub samples.

The inline signature is measured twice: the Python reference (``text/signature.py``) and the
compiled twin the compiled sampler uses (``lipservice_otel.sampling._native``, when built),
which must give the same templates (checked here too, and by tests/unit/sampling).

For every system directory holding ``*_2k.log_structured_corrected.csv`` (or, failing that,
``*_2k.log_structured.csv``) this feeds the ``Content`` column, in file order, to
``lipservice_otel.text.signature.template_of_text`` and to a ``drain3.TemplateMiner`` with its
default configuration, and reports for each:

- bodies/s, best of ``--repeat`` passes, each from a cold start: the signature module is
  reloaded (empty token memos) and Drain3 gets a new miner (empty tree), so a pass pays for
  learning its 2k lines' vocabulary, as a freshly started receiver would; the compiled
  signature also warm (its memos kept from the passes before, a receiver in steady state),
  and the share of bodies it handed to the Python signature whole ("to py");
- grouping accuracy (GA) against the ``EventId`` ground truth, as defined by Zhu et al.,
  "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP 2019: a message is correctly
  grouped iff the set of messages sharing its predicted group equals the set sharing its
  ground-truth event; GA is the share of correctly grouped messages.

The table goes to stdout and the numbers to ``bench/results/signature.json``.

Usage (from the repository root, with the package installed, e.g. by ``make``)::

    python bench/signature.py --loghub ../shared/loghub

Data: Loghub, used read-only under its research licence. Cite: Jieming Zhu, Shilin He, Pinjia He,
Jinyang Liu, Michael R. Lyu, "Loghub: A Large Collection of System Log Datasets for AI-driven Log
Analytics", ISSRE 2023; and Zhihan Jiang et al., "A Large-scale Evaluation for Log Parsing
Techniques: How Far are We?", ISSTA 2024 (corrected ground truth).
"""

import argparse
import importlib
import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from loghub import find_samples, grouping_accuracy, messages_and_events, new_drain3_miner

from lipservice_otel.sampling.implementation import load_native
from lipservice_otel.text import signature

NATIVE, _ = load_native()

RESULTS = Path(__file__).resolve().parent / "results" / "signature.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loghub", type=Path, default=Path("../shared/loghub"))
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per parser")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    samples = find_samples(args.loghub) if args.loghub.is_dir() else []
    if not samples:
        print(f"no *_2k.log_structured*.csv under {args.loghub}", file=sys.stderr)
        return 2

    rows = [measure(system, path, args.repeat) for system, path in samples]
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "loghub": str(args.loghub),
        "python": platform.python_version(),
        "drain3": importlib.metadata.version("drain3"),
        "machine": platform.machine(),
        "repeat": args.repeat,
        "systems": rows,
        "mean": mean_row(rows),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def measure(system: str, path: Path, repeat: int) -> dict:
    bodies, truth = messages_and_events(path)

    template_of_text = importlib.reload(signature).template_of_text
    inline_groups = [template_of_text(body) for body in bodies]
    inline_rate = best_rate(bodies, lambda: importlib.reload(signature).template_of_text, repeat)

    miner = new_drain3_miner()
    drain_groups = [miner.add_log_message(body)["cluster_id"] for body in bodies]
    drain_rate = best_rate(bodies, lambda: new_drain3_miner().add_log_message, repeat)

    native = {}
    if NATIVE is not None:

        def cold_native() -> Callable[[str], object]:
            # Both memo layers cold: the Python masking function's (reload) and the compiled.
            importlib.reload(signature)
            NATIVE.clear_memos()
            # Called as the Python one is: text alone, max_chars defaulting to the same value.
            return NATIVE.template_of_text

        native_groups = [cold_native()(body) for body in bodies]
        if native_groups != inline_groups:
            raise SystemExit(f"{system}: the compiled signature differs from the Python one")
        python_calls = NATIVE.signature_calls()
        native_rate = best_rate(bodies, cold_native, repeat)
        bodies_to_python = (NATIVE.signature_calls()[0] - python_calls[0]) / repeat
        # Warm: memos kept from the passes before, as a receiver in steady state has them.
        warm_rate = best_rate(bodies, lambda: NATIVE.template_of_text, repeat)
        native = {
            "native_bodies_per_s": round(native_rate),
            "native_warm_bodies_per_s": round(warm_rate),
            "native_warm_speedup": round(warm_rate / drain_rate, 1),
            "native_speedup": round(native_rate / drain_rate, 1),
            "native_bodies_to_python": round(bodies_to_python / len(bodies), 4),
        }

    return {
        "system": system,
        "file": path.name,
        "messages": len(bodies),
        "events": len(set(truth)),
        "inline_bodies_per_s": round(inline_rate),
        "drain3_bodies_per_s": round(drain_rate),
        "speedup": round(inline_rate / drain_rate, 1),
        "inline_ga": round(grouping_accuracy(truth, inline_groups), 4),
        "drain3_ga": round(grouping_accuracy(truth, drain_groups), 4),
        "inline_templates": len(set(inline_groups)),
        "drain3_templates": len(set(drain_groups)),
        **native,
    }


def best_rate(
    bodies: list[str], new_parser: Callable[[], Callable[[str], object]], repeat: int
) -> float:
    best = float("inf")
    for _ in range(repeat):
        parse = new_parser()
        start = time.perf_counter()
        for body in bodies:
            parse(body)
        best = min(best, time.perf_counter() - start)
    return len(bodies) / best


def mean_row(rows: list[dict]) -> dict:
    keys = ["inline_bodies_per_s", "drain3_bodies_per_s", "speedup", "inline_ga", "drain3_ga"]
    if all("native_bodies_per_s" in row for row in rows):
        keys += ["native_bodies_per_s", "native_speedup", "native_bodies_to_python"]
        keys += ["native_warm_bodies_per_s", "native_warm_speedup"]
    return {key: round(sum(row[key] for row in rows) / len(rows), 4) for key in keys}


def print_table(rows: list[dict]) -> None:
    native = all("native_bodies_per_s" in row for row in rows)
    header = (
        f"{'system':<10} {'inline/s':>10} {'drain3/s':>10} {'ratio':>6} "
        + (
            f"{'native/s':>10} {'ratio':>6} {'to py':>6} {'warm/s':>10} {'ratio':>6} "
            if native
            else ""
        )
        + f"{'GA inline':>9} {'GA drain3':>9} {'templates':>9} {'events':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in [*rows, {"system": "mean", **mean_row(rows)}]:
        if row["system"] == "mean":
            print("-" * len(header))
        print(
            f"{row['system']:<10} {round(row['inline_bodies_per_s']):>10,} "
            f"{round(row['drain3_bodies_per_s']):>10,} {row['speedup']:>5.1f}x "
            + (
                f"{round(row['native_bodies_per_s']):>10,} {row['native_speedup']:>5.1f}x "
                f"{row['native_bodies_to_python']:>6.1%} "
                f"{round(row['native_warm_bodies_per_s']):>10,} "
                f"{row['native_warm_speedup']:>5.1f}x "
                if native
                else ""
            )
            + f"{row['inline_ga']:>9.3f} {row['drain3_ga']:>9.3f} "
            f"{row.get('inline_templates', ''):>9} {row.get('events', ''):>6}"
        )


if __name__ == "__main__":
    sys.exit(main())
