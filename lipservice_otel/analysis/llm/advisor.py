"""The LLM policy advisor: asks a model which patterns matter, inside hard bounds.

Once per analysis cycle the loop hands over the patterns that have no fresh judgement (new,
template changed, or older than `judgement_ttl_s`), loudest first. The advisor:

1. gives up at once when it has no key, the circuit is open, the server asked to wait
   (429 Retry-After) or the hourly call/token budget is spent;
2. sends them in batches of `max_patterns_per_call` through the official `openai` client,
   each pattern as its id, template, 1-3 redacted examples, severity mix and volume/s;
   calls are spread over the hour (at most calls_per_hour x interval_s / 3600, at least one,
   per cycle) so a big first cycle cannot spend the whole hour;
3. asks for structured output with a JSON schema, and falls back to JSON mode for good when
   the server rejects that (400/422);
4. keeps only judgements that pass `judgement.read_judgements`;
5. stops at the first failure or when `timeout_s` has passed, keeping what it already has.

Every outcome is a `Consultation` saying what happened, so the policy version records
whether the model contributed or why not. Failures never raise: the rules carry on alone.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lipservice_otel.analysis.llm.config import LlmConfig
from lipservice_otel.analysis.llm.judgement import (
    DISCARD_MALFORMED,
    INSTRUCTIONS,
    RESPONSE_NAME,
    RESPONSE_SCHEMA,
    Judgement,
    PatternBrief,
    fingerprint,
    read_judgements,
)
from lipservice_otel.analysis.llm.redaction import Redactor

log = logging.getLogger(__name__)

STATUS_DISABLED = "disabled"
STATUS_OK = "ok"
STATUS_NOTHING_NEW = "nothing_new"
STATUS_NOT_ASKED = "not_asked"  # a regeneration without a new interval: cached judgements only
STATUS_NO_KEY = "no_key"
STATUS_BUDGET = "budget"
STATUS_CIRCUIT_OPEN = "circuit_open"
STATUS_RATE_LIMITED = "rate_limited"
STATUS_TIMEOUT = "timeout"
STATUS_ERROR = "error"

MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 300
# Before a call its size is estimated from its characters; the usage field settles it after.
CHARS_PER_TOKEN = 4
# A 429 without a usable Retry-After waits this long; a server cannot park us for over an hour.
DEFAULT_RETRY_AFTER_S = 60.0
MAX_RETRY_AFTER_S = 3600.0
HOUR_S = 3600.0
# Status codes that mean "this server does not take json_schema response formats".
SCHEMA_REJECTED = frozenset({400, 422})


@dataclass(frozen=True, slots=True)
class Consultation:
    """What asking the model did in one cycle."""

    status: str
    judgements: tuple[Judgement, ...] = ()
    asked: int = 0
    calls: int = 0
    tokens: int = 0
    discarded: Mapping[str, int] = field(default_factory=dict)
    detail: str = ""
    left: int = 0  # patterns not asked this cycle (calls per cycle, budget, a failure)

    def describe(self) -> str:
        if self.status in (STATUS_DISABLED, STATUS_NOTHING_NEW, STATUS_NOT_ASKED):
            return f"llm: {self.status.replace('_', ' ')}"
        text = "llm: "
        if self.calls:
            text += (
                f"{self.calls} call{'s' if self.calls > 1 else ''}, {self.tokens} tokens: "
                f"{len(self.judgements)} of {self.asked} patterns judged"
            )
            if self.discarded:
                counts = ", ".join(f"{k}={v}" for k, v in sorted(self.discarded.items()))
                text += f", discarded {counts}"
            if self.left:
                text += f", {self.left} left for later cycles"
        if self.status != STATUS_OK:
            text += ", then " if self.calls else "skipped: "
            text += self.status + (f" ({self.detail})" if self.detail else "")
        return text


class HourlyBudget:
    """Calls and tokens spent over the last hour (a sliding window)."""

    def __init__(self, calls: int, tokens: int) -> None:
        self._max_calls = calls
        self._max_tokens = tokens
        self._spent: deque[tuple[float, int]] = deque()

    def refuses(self, now: float, estimated_tokens: int) -> bool:
        while self._spent and self._spent[0][0] <= now - HOUR_S:
            self._spent.popleft()
        used = sum(tokens for _, tokens in self._spent)
        return len(self._spent) >= self._max_calls or used + estimated_tokens > self._max_tokens

    def charge(self, now: float, tokens: int) -> None:
        self._spent.append((now, tokens))


class CircuitBreaker:
    """Closed until `threshold` failures in a row; open for `cooldown_s`; then one trial."""

    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._failures = 0
        self._opened_at: float | None = None

    def allows(self, now: float) -> bool:
        return self._opened_at is None or now >= self._opened_at + self._cooldown_s

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None

    def failed(self, now: float) -> None:
        self._failures += 1
        # A failed trial after the cool-off opens it again at once.
        if self._failures >= self._threshold or self._opened_at is not None:
            self._opened_at = now


class _Stop(Exception):
    """Ends a consultation early with a status (and a detail for the summary)."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


class Advisor:
    def __init__(
        self,
        config: LlmConfig,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._config = config
        self._clock = clock
        self._api_key = environ.get(config.api_key_env, "")
        self._redact = Redactor(config.redaction_patterns)
        self._budget = HourlyBudget(config.calls_per_hour, config.token_budget_per_hour)
        self._breaker = CircuitBreaker(config.circuit_failures, config.circuit_cooldown_s)
        self._calls_per_cycle = max(1, math.floor(config.calls_per_hour * interval_s / HOUR_S))
        self._retry_at = 0.0
        self._json_schema = True  # until the server rejects it
        if not self._api_key:
            log.warning(
                "analysis.llm is enabled but $%s is empty: the rules work alone",
                config.api_key_env,
            )

    def request_body(self, briefs: Sequence[PatternBrief]) -> dict[str, Any]:
        """The chat completion request for one batch (redacted), minus response_format."""
        patterns = [self._brief_json(b) for b in briefs]
        return {
            "model": self._config.model,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {
                    "role": "user",
                    "content": json.dumps({"patterns": patterns}, ensure_ascii=False),
                },
            ],
            "max_tokens": self._config.max_tokens,
            "temperature": self._config.temperature,
        }

    def _brief_json(self, brief: PatternBrief) -> dict[str, Any]:
        redact = self._redact
        return {
            "pattern_id": brief.pattern_id,
            "service": redact(brief.service),
            "template": redact(brief.template),
            "examples": [redact(e)[:MAX_EXAMPLE_CHARS] for e in brief.examples[:MAX_EXAMPLES]],
            "severity_mix": {k: round(v, 3) for k, v in sorted(brief.severity_mix.items())},
            "volume_per_second": round(brief.volume_per_second, 3),
        }

    async def advise(self, briefs: Sequence[PatternBrief]) -> Consultation:
        if not briefs:
            return Consultation(STATUS_NOTHING_NEW)
        if not self._api_key:
            return Consultation(STATUS_NO_KEY, detail=f"${self._config.api_key_env} is empty")
        size = self._config.max_patterns_per_call
        batches = [briefs[i : i + size] for i in range(0, len(briefs), size)]
        judgements: list[Judgement] = []
        discarded: Counter[str] = Counter()
        progress = {"calls": 0, "tokens": 0, "asked": 0}
        status, detail = STATUS_OK, ""
        try:
            self._check_gates(self._clock(), 0)  # no client at all while we must stay away
            # The client is built before the clock starts: `timeout_s` bounds the model's
            # answers, not the import of the client library on a busy machine.
            async with self._client() as client, asyncio.timeout(self._config.timeout_s):
                for batch in batches[: self._calls_per_cycle]:
                    found, dropped = await self._judge(client, batch, progress)
                    judgements.extend(found)
                    discarded.update(dropped)
        except _Stop as stop:
            status, detail = stop.status, stop.detail
        except TimeoutError:
            self._breaker.failed(self._clock())
            status, detail = STATUS_TIMEOUT, f"{self._config.timeout_s:g} s"
        consultation = Consultation(
            status,
            tuple(judgements),
            progress["asked"],
            progress["calls"],
            progress["tokens"],
            dict(discarded),
            detail,
            len(briefs) - progress["asked"],
        )
        (log.info if status == STATUS_OK else log.warning)("%s", consultation.describe())
        return consultation

    def _client(self):
        # Imported here: the client costs ~0.4 s to import and most deployments never call it.
        import openai

        # One client per consultation: its connection pool belongs to the running event loop,
        # and nothing stays open between cycles. Retries are the next cycle's job.
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self._config.base_url,
            organization=self._config.organization,
            project=self._config.project,
            timeout=self._config.timeout_s,
            max_retries=0,
        )

    async def _judge(
        self, client, batch: Sequence[PatternBrief], progress: dict[str, int]
    ) -> tuple[list[Judgement], Counter[str]]:
        body = self.request_body(batch)
        progress["asked"] += len(batch)
        content = await self._complete(client, body, progress)
        found, discarded = read_judgements(content, {b.pattern_id for b in batch})
        if discarded[DISCARD_MALFORMED] and not found:
            self._breaker.failed(self._clock())
            raise _Stop(STATUS_ERROR, "the answer is not the requested JSON")
        self._breaker.succeeded()
        now = self._clock()
        templates = {b.pattern_id: b.template for b in batch}
        judged = [
            replace(
                j,
                model=self._config.model,
                fingerprint=fingerprint(templates[j.pattern_id]),
                judged_at=now,
            )
            for j in found
        ]
        return judged, discarded

    async def _complete(self, client, body: dict[str, Any], progress: dict[str, int]) -> str:
        import openai

        while True:
            now = self._clock()
            self._check_gates(now, len(json.dumps(body)) // CHARS_PER_TOKEN + body["max_tokens"])
            tokens = 0
            progress["calls"] += 1
            try:
                completion = await client.chat.completions.create(
                    **body, response_format=_response_format(self._json_schema)
                )
                tokens = _tokens_used(completion, body)
            except openai.RateLimitError as error:
                wait = _retry_after(error.response.headers)
                self._retry_at = now + wait
                raise _Stop(STATUS_RATE_LIMITED, f"retry after {wait:g} s") from None
            except openai.APIStatusError as error:
                if self._json_schema and error.status_code in SCHEMA_REJECTED:
                    log.info("%s rejected json_schema output; using json_object", body["model"])
                    self._json_schema = False
                    continue
                self._breaker.failed(now)
                raise _Stop(STATUS_ERROR, f"HTTP {error.status_code}") from None
            except openai.APITimeoutError:
                self._breaker.failed(now)
                raise _Stop(STATUS_TIMEOUT, f"{self._config.timeout_s:g} s") from None
            except openai.APIConnectionError as error:
                self._breaker.failed(now)
                raise _Stop(STATUS_ERROR, f"connection: {error}") from None
            except openai.OpenAIError as error:
                # Anything else the client raises (an unreadable response, ...): still a
                # failed call, never a failed analysis cycle.
                self._breaker.failed(now)
                raise _Stop(STATUS_ERROR, type(error).__name__) from None
            finally:
                self._budget.charge(now, tokens)
                progress["tokens"] += tokens
            return _content(completion)

    def _check_gates(self, now: float, estimated_tokens: int) -> None:
        if not self._breaker.allows(now):
            raise _Stop(STATUS_CIRCUIT_OPEN)
        if now < self._retry_at:
            raise _Stop(STATUS_RATE_LIMITED, f"retry after {self._retry_at - now:g} s")
        if self._budget.refuses(now, estimated_tokens):
            raise _Stop(STATUS_BUDGET)


def _response_format(json_schema: bool) -> dict[str, Any]:
    if not json_schema:
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": RESPONSE_NAME, "strict": True, "schema": RESPONSE_SCHEMA},
    }


def _content(completion) -> str:
    if not completion.choices:
        return ""
    message = completion.choices[0].message
    return message.content or ""


def _tokens_used(completion, body: dict[str, Any]) -> int:
    usage = completion.usage
    if usage is not None and usage.total_tokens:
        return int(usage.total_tokens)
    # Some compatible servers leave usage out; charge an estimate rather than nothing.
    return (len(json.dumps(body)) + len(_content(completion))) // CHARS_PER_TOKEN


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait from a 429's headers (retry-after-ms, or Retry-After seconds or date)."""
    wait = DEFAULT_RETRY_AFTER_S
    milliseconds, value = headers.get("retry-after-ms"), headers.get("retry-after")
    try:
        if milliseconds:
            wait = float(milliseconds) / 1000
        elif value:
            wait = _seconds(value)
    except (TypeError, ValueError):
        pass  # unreadable: the default wait
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def _seconds(retry_after: str) -> float:
    """Retry-After is delay-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    try:
        return float(retry_after)
    except ValueError:
        return email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
