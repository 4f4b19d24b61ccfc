"""Forwarding to upstreams: one ClientSession per process, retries with backoff, fallbacks.

Retries happen only before the first byte reaches the client (DESIGN.md "Streaming").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from wardgate.config.schema import Config, ModelConfig, UpstreamConfig
from wardgate.errors import GatewayError
from wardgate.exchange import Exchange

__all__ = ["Reply", "Upstream", "Upstreams", "HttpUpstream"]

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_HOP_HEADERS = ("x-request-id", "openai-organization", "openai-processing-ms", "x-ratelimit-limit-requests")


@dataclass(slots=True)
class Reply:
    """An upstream answer: a whole body, or an open stream of raw bytes."""

    status: int
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    _release: Any = None

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class Upstream(Protocol):
    """Sends one request body to one upstream route and returns its reply."""

    async def send(self, route: str, body: bytes, stream: bool, headers: dict[str, str]) -> Reply: ...


class HttpUpstream:
    """An OpenAI-compatible HTTP server."""

    def __init__(self, name: str, config: UpstreamConfig, session: aiohttp.ClientSession) -> None:
        self.name = name
        self._base = (config.base_url or "").rstrip("/")
        self._session = session
        self._headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            self._headers["authorization"] = f"Bearer {config.api_key}"
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s, sock_connect=config.connect_timeout_s)

    async def send(self, route: str, body: bytes, stream: bool, headers: dict[str, str]) -> Reply:
        url = self._base + route.removeprefix("/v1")
        resp = await self._session.post(url, data=body, headers={**self._headers, **headers}, timeout=self._timeout)
        if stream and resp.status == 200:
            return Reply(resp.status, chunks=resp.content.iter_any(), headers=dict(resp.headers), _release=resp.close)
        try:
            data = await resp.read()
        finally:
            resp.release()
        return Reply(resp.status, body=data, headers=dict(resp.headers))


def _upstream_message(body: bytes) -> str | None:
    """The upstream's own error message, when it sent an OpenAI error envelope."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"][:500]
    return None


def _retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("retry-after") or reply.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Upstreams:
    """All configured upstreams of one config generation, and the retry/fallback policy."""

    def __init__(self, config: Config, session: aiohttp.ClientSession, extra: dict[str, Upstream] | None = None) -> None:
        from wardgate.echo import EchoUpstream  # the built-in one; imported here to keep echo optional

        self._config = config
        self._by_name: dict[str, Upstream] = {}
        for name, up in config.upstreams.items():
            self._by_name[name] = EchoUpstream(up) if up.kind == "echo" else HttpUpstream(name, up, session)
        self._by_name.update(extra or {})

    def _chain(self, ex: Exchange) -> list[tuple[str, ModelConfig]]:
        assert ex.model_alias is not None and ex.model is not None
        chain = [(ex.model_alias, ex.model)]
        for alias in ex.model.fallbacks:
            chain.append((alias, self._config.models[alias]))
        return chain

    async def send(self, ex: Exchange, body_for: Any) -> Reply:
        """Try the model, then its fallbacks, each with retries; return the first good reply.

        ``body_for(upstream_model) -> bytes`` builds the body to send for a given upstream model.
        A reply with a non-retryable 4xx is returned as is (the client's own error).
        """
        last_error: GatewayError | None = None
        headers = {"traceparent": ex.extra["traceparent"]} if "traceparent" in ex.extra else {}
        for alias, model in self._chain(ex):
            up_cfg = self._config.upstreams[model.upstream]
            upstream = self._by_name[model.upstream]
            upstream_model = model.model or alias
            body = body_for(upstream_model)
            for attempt in range(up_cfg.max_retries + 1):
                started = time.perf_counter()
                entry: dict[str, Any] = {"model": alias, "upstream": model.upstream, "upstream_model": upstream_model}
                ex.attempts.append(entry)
                try:
                    reply = await upstream.send(ex.route, body, ex.stream, headers)
                except asyncio.TimeoutError:
                    entry.update(error="timeout", ms=_ms(started))
                    last_error = GatewayError(504, "upstream_timeout", f"upstream {model.upstream!r} timed out")
                    ex.upstream_ms += _ms(started)
                    delay = None
                except aiohttp.ClientError as exc:
                    entry.update(error=type(exc).__name__, ms=_ms(started))
                    last_error = GatewayError(502, "upstream_error", f"upstream {model.upstream!r} is unreachable")
                    ex.upstream_ms += _ms(started)
                    delay = None
                else:
                    entry.update(status=reply.status, ms=_ms(started))
                    ex.upstream_ms += _ms(started)
                    if reply.status < 400 or reply.status not in _RETRY_STATUSES:
                        ex.upstream_name, ex.upstream, ex.upstream_model = model.upstream, up_cfg, upstream_model
                        return reply
                    message = _upstream_message(reply.body) or f"HTTP {reply.status}"
                    last_error = GatewayError(502, "upstream_error", f"upstream {model.upstream!r} failed: {message}")
                    delay = _retry_after(reply)
                    reply.release()
                if attempt < up_cfg.max_retries:
                    backoff = delay if delay is not None else 0.1 * 2**attempt
                    await asyncio.sleep(min(backoff, 10.0) * random.uniform(0.8, 1.2))
        assert last_error is not None
        raise last_error


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
