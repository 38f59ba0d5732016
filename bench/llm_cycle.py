"""One analysis cycle with the LLM advisor, against the local OpenAI-wire stand-in.

Prints the three things a reviewer wants to see: the request body the advisor sent (as the
server received it, redacted), the judgements that passed validation, and the policy diff
(the same traffic planned by the rules alone vs. rules + the model's judgements).

    .venv/bin/python bench/llm_cycle.py

No network and no API key: the stand-in (tests/support/openai_standin.py) plays a keyword model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# The stand-in and the sample traffic live with the tests; this script runs from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.advisor_cycle import (
    IDS,
    KEY_ENV,
    TRAFFIC,
    Clock,
    cycle,
    kept_share,
    llm_config,
    make_loop,
)
from tests.support.openai_standin import API_KEY, OpenAIStandIn


def main() -> None:
    os.environ[KEY_ENV] = API_KEY
    with OpenAIStandIn() as standin:
        rules_only = cycle(make_loop(Clock()), Clock())
        clock = Clock()
        loop = make_loop(clock, llm_config(standin))
        advised = cycle(loop, clock)

        print("=== 1. request body received by the server (redacted) ===")
        body = standin.requests[0]
        for message in body["messages"]:
            if message["role"] == "user":
                message["content"] = json.loads(message["content"])
        print(json.dumps(body, indent=2, ensure_ascii=False))

        print("\n=== 2. validated judgements ===")
        print(loop.consultation.describe())
        for judgement in loop.consultation.judgements:
            name = next(n for n, pid in IDS.items() if pid == judgement.pattern_id)
            min_rate = "-" if judgement.min_rate is None else f"{judgement.min_rate:g}"
            print(
                f"{judgement.pattern_id}  {name:<9} {judgement.importance:<8} "
                f"min_rate={min_rate:<4} {judgement.reason}"
            )

        print("\n=== 3. policy diff: rules alone -> rules + llm ===")
        print(f"generator: {rules_only.generator} -> {advised.generator}")
        print(f"{'pattern':<17} {'name':<9} {'rec/10s':>7}  {'rules':<18} rules+llm")
        for name, pid in IDS.items():
            before, after = rules_only.pattern_rules[pid], advised.pattern_rules[pid]
            mark = "" if (before.rate, before.reason) == (after.rate, after.reason) else "  *"
            print(
                f"{pid:<17} {name:<9} {TRAFFIC[name][1]:>7}  "
                f"{f'{before.rate:g} ({before.reason})':<18} "
                f"{after.rate:g} ({after.reason}){mark}"
            )
        print(
            f"kept share of the service: {kept_share(rules_only):.3f} -> "
            f"{kept_share(advised):.3f} (target 0.2)"
        )
        print(f"summary: {advised.summary}")
        print(f"\nexplain {IDS['healthz']}: {loop.explain(IDS['healthz']).explanation}")


if __name__ == "__main__":
    main()
