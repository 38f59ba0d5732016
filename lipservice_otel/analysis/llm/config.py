"""Settings of the optional LLM advisor (analysis.llm)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lipservice_otel.validation import ConfigError, require

DEFAULT_LLM_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True, slots=True)
class LlmConfig:
    # Ask a model (OpenAI or any OpenAI-compatible server) which patterns matter; its judgement
    # weighs into the budgeted rules but can never lower a safety floor or an override.
    enabled: bool = False
    model: str = "gpt-4o-mini"
    # An OpenAI-compatible endpoint (Azure OpenAI, vLLM, Ollama, llama.cpp server), e.g.
    # http://localhost:11434/v1; null uses the openai client's default (OPENAI_BASE_URL or
    # api.openai.com).
    base_url: str | None = None
    # Name of the environment variable that holds the API key. The key itself never goes in
    # the config file, which tends to end up in version control.
    api_key_env: str = DEFAULT_LLM_API_KEY_ENV
    # Sent as the OpenAI-Organization / OpenAI-Project headers when set.
    organization: str | None = None
    project: str | None = None
    # Time the model may take per analysis cycle, all calls together; past it the cycle
    # uses the rules alone.
    timeout_s: float = 15.0
    # Completion tokens per call, and sampling temperature (0 = most repeatable).
    max_tokens: int = 2000
    temperature: float = 0.0
    # Patterns judged per call.
    max_patterns_per_call: int = 20
    # Cost bounds over any sliding hour: calls, and tokens as the server reports them.
    calls_per_hour: int = 60
    token_budget_per_hour: int = 200_000
    # A judgement is asked again after this long (sooner when the pattern's template changes).
    judgement_ttl_s: float = 86_400.0
    # Extra regexes scrubbed from templates and examples before they are sent, on top of
    # the built-in ones (emails, tokens, keys, passwords, IPs, card numbers).
    redaction_patterns: list[str] = field(default_factory=list)
    # After this many failed calls in a row the model is not asked for circuit_cooldown_s;
    # then one trial call decides whether to resume.
    circuit_failures: int = 3
    circuit_cooldown_s: float = 300.0

    def validate(self, key: str) -> None:
        require(bool(self.model.strip()), f"{key}.model", "must not be empty")
        if self.base_url is not None:
            require(
                self.base_url.startswith(("http://", "https://")),
                f"{key}.base_url",
                f"must start with http:// or https://, got {self.base_url!r}",
            )
        require(
            bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env)),
            f"{key}.api_key_env",
            f"must be the name of an environment variable (not the key), got "
            f"{self.api_key_env[:4]!r}...",
        )
        require(self.timeout_s > 0, f"{key}.timeout_s", "must be > 0")
        require(self.max_tokens >= 1, f"{key}.max_tokens", "must be >= 1")
        require(0 <= self.temperature <= 2, f"{key}.temperature", "must be 0-2")
        require(
            1 <= self.max_patterns_per_call <= 500,
            f"{key}.max_patterns_per_call",
            "must be 1-500",
        )
        require(self.calls_per_hour >= 1, f"{key}.calls_per_hour", "must be >= 1")
        require(self.token_budget_per_hour >= 1, f"{key}.token_budget_per_hour", "must be >= 1")
        require(self.judgement_ttl_s > 0, f"{key}.judgement_ttl_s", "must be > 0")
        for n, pattern in enumerate(self.redaction_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{key}.redaction_patterns[{n}]: invalid regex: {exc}") from None
        require(self.circuit_failures >= 1, f"{key}.circuit_failures", "must be >= 1")
        require(self.circuit_cooldown_s > 0, f"{key}.circuit_cooldown_s", "must be > 0")
