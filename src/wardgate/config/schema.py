"""The validated, frozen shape of a wardgate config (SPEC §2).

Every model forbids unknown keys: a typo must not pass silently.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BudgetConfig",
    "Config",
    "KeyConfig",
    "ModelConfig",
    "PolicyConfig",
    "PriceConfig",
    "ServerConfig",
    "SinkConfig",
    "StateConfig",
    "TeamConfig",
    "UpstreamConfig",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    admin_keys: tuple[str, ...] = ()
    max_json_depth: int = Field(64, gt=0)
    max_messages: int = Field(10000, gt=0)
    shutdown_grace_s: float = Field(30.0, ge=0)
    max_string_chars: int = Field(4_000_000, gt=0)
    """Longest string (value or key) a request body may hold; longer is a 400 naming the field."""
    watch_config_s: float = Field(0.0, ge=0)
    """Poll the config files' mtimes this often and reload on change; 0 turns watching off."""


class UpstreamConfig(_Frozen):
    kind: Literal["openai", "echo"] = "openai"
    base_url: str | None = None
    api_key: str | None = Field(None, repr=False)
    timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    ttfb_timeout_s: float | None = Field(None, gt=0)
    """Time to first byte: response headers (and the first chunk of a stream). None: only timeout_s."""
    idle_timeout_s: float | None = Field(None, gt=0)
    """Longest silence between two chunks of a streamed answer. None: only timeout_s."""
    breaker_failures: int = Field(5, gt=0)
    """Consecutive failures that open this upstream's circuit breaker."""
    breaker_cooldown_s: float = Field(10.0, gt=0)
    """How long an open breaker refuses before letting one probe through."""
    max_connections: int = Field(512, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    echo_delay_ms: float = Field(0.0, ge=0)
    """For ``kind: echo``: delay before answering and between streamed chunks."""

    @model_validator(mode="after")
    def _needs_url(self) -> UpstreamConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("base_url is required unless kind is echo")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"base_url must be an http:// or https:// URL with a host, not {self.base_url!r}")
        return self


class PriceConfig(_Frozen):
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class ModelConfig(_Frozen):
    upstream: str
    model: str | None = None
    price: PriceConfig = PriceConfig()
    fallbacks: tuple[str, ...] = ()


class KeyConfig(_Frozen):
    id: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    value: str | None = Field(None, repr=False)

    @model_validator(mode="after")
    def _one_of(self) -> KeyConfig:
        if (self.sha256 is None) == (self.value is None):
            raise ValueError("give exactly one of sha256 or value")
        if self.value is not None and len(self.value) < 8:
            raise ValueError("value: a key must be at least 8 characters")
        return self


Window = Literal["minute", "hour", "day", "month", "total"]


class BudgetConfig(_Frozen):
    window: Window
    requests: int | None = Field(None, ge=0)
    tokens: int | None = Field(None, ge=0)
    usd: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetConfig:
        if self.requests is None and self.tokens is None and self.usd is None:
            raise ValueError("a budget needs at least one of requests, tokens, usd")
        return self


class TeamConfig(_Frozen):
    keys: tuple[KeyConfig, ...] = ()
    policy: str | None = None
    models: tuple[str, ...] = ("*",)
    budgets: tuple[BudgetConfig, ...] = ()
    user_budgets: tuple[BudgetConfig, ...] = ()
    key_budgets: tuple[BudgetConfig, ...] = ()
    tools_allow: tuple[str, ...] | None = None
    tools_deny: tuple[str, ...] = ()


GuardAction = Literal["redact", "block", "flag", "off"]


class PiiPolicy(_Frozen):
    action: GuardAction = "redact"
    restore: bool = False
    entities: tuple[str, ...] | None = None
    operator: Literal["replace", "mask", "hash"] = "replace"


class SecretsPolicy(_Frozen):
    action: GuardAction = "block"


class InjectionPolicy(_Frozen):
    action: Literal["block", "flag", "off"] = "block"
    threshold: float | None = Field(None, ge=0, le=1)
    roles: tuple[Literal["user", "tool", "system", "assistant"], ...] = ("user", "tool")


class OutputPolicy(_Frozen):
    action: Literal["block", "flag", "off"] = "block"
    categories: tuple[str, ...] | None = None
    system_prompt_leak: bool = True


class ToolCallsPolicy(_Frozen):
    action: Literal["block", "flag", "off"] = "flag"


class LoopsPolicy(_Frozen):
    action: Literal["block", "flag", "off"] = "block"
    max_requests_per_session: int = Field(200, gt=0)
    max_identical_requests: int = Field(5, gt=0)
    window_s: float = Field(600, gt=0)
    max_tool_rounds: int = Field(30, gt=0)
    max_identical_tool_calls: int = Field(5, gt=0)
    max_session_tokens: int | None = Field(None, gt=0)
    max_session_usd: float | None = Field(None, gt=0)


class LogPolicy(_Frozen):
    content: Literal["full", "redacted", "hashes", "none"] = "redacted"


class PolicyConfig(_Frozen):
    extends: str | None = None
    pii: PiiPolicy = PiiPolicy()
    secrets: SecretsPolicy = SecretsPolicy()
    injection: InjectionPolicy = InjectionPolicy()
    output: OutputPolicy = OutputPolicy()
    tool_calls: ToolCallsPolicy = ToolCallsPolicy()
    loops: LoopsPolicy = LoopsPolicy()
    log: LogPolicy = LogPolicy()
    default_max_tokens: int = Field(4096, gt=0)
    """Completion-token cap assumed when a request names none (budget reservations)."""
    fail_open: bool = False
    """When a guardrail raises: False refuses with 503 guardrail_unavailable, True serves and flags."""


class StateConfig(_Frozen):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    on_error: Literal["closed", "open"] = "closed"
    reservation_ttl_s: float = Field(900.0, gt=0)
    key_prefix: str = Field("wg", pattern=r"^[A-Za-z0-9_.:-]+$")
    """Prefix of every Redis key, so several gateways (or test runs) can share one Redis."""
    timeout_s: float = Field(3.0, gt=0)
    """How long one Redis call may wait for a pooled connection, a new connection's connect, and then its
    reply, each, before the call counts as a state outage (``on_error`` decides). Wall time of a busy event
    loop counts too: a burst of hundreds of concurrent requests needs more than Redis's own sub-millisecond
    latency, most of all at start, when the pool's connections are opened all at once."""
    max_connections: int = Field(64, gt=0)
    """Redis connections per process; past this a call waits (up to ``timeout_s``) for a free one."""


class JsonlSink(_Frozen):
    type: Literal["jsonl"]
    path: str = "./wardgate-logs/traces.jsonl"
    max_bytes: int | None = Field(100 * 1024 * 1024, gt=0)
    rotate_daily: bool = True
    retention_days: float | None = Field(14, gt=0)


class RedisStreamSink(_Frozen):
    type: Literal["redis_stream"]
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "wardgate:traces"
    maxlen: int = Field(100_000, gt=0)


class PostgresSink(_Frozen):
    type: Literal["postgres"]
    dsn: str
    table: str = Field("wardgate_traces", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    retention_days: float | None = Field(30, gt=0)


class HttpSink(_Frozen):
    type: Literal["http"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    batch_size: int = Field(256, gt=0)
    timeout_s: float = Field(10.0, gt=0)


SinkConfig = Annotated[Union[JsonlSink, RedisStreamSink, PostgresSink, HttpSink], Field(discriminator="type")]


class Config(_Frozen):
    version: Literal[1] = 1
    server: ServerConfig = ServerConfig()
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    state: StateConfig = StateConfig()
    sinks: tuple[SinkConfig, ...] = ()
    spill_dir: str = "./wardgate-logs/spill"
