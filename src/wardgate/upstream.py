"""Forwarding to upstreams: one connection pool per origin per process (wardgate.http1), timeouts, retries,
breakers, fallbacks.

Retries happen only before the first byte reaches the client (DESIGN.md "Streaming"): a streamed
answer's first chunk is read inside the attempt, so a stall or reset before it is retried too.
Every attempt runs within the request's deadline (the first model's ``timeout_s``).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from wardgate.breaker import Breaker
from wardgate.config.schema import Config, ModelConfig, UpstreamConfig
from wardgate.deadlines import Deadlines
from wardgate.errors import GatewayError
from wardgate.exchange import Exchange
from wardgate.http1 import Http1Clients, Http1Response

__all__ = ["HttpUpstream", "Reply", "Upstream", "Upstreams"]

_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 10.0
"""A retry-after longer than this is not waited for: the model's fallbacks are tried instead."""
_KEYLIKE = re.compile(r"\b(sk|pk|rk|sess)-[A-Za-z0-9_\-*]{6,}|(?i:bearer)\s+\S+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_HOP_HEADERS = ("x-request-id", "openai-organization", "openai-processing-ms", "x-ratelimit-limit-requests")


@dataclass(slots=True)
class Reply:
    """An upstream answer: a whole body, or an open stream of raw bytes."""

    status: int
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    _release: Any = None

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


class Upstream(Protocol):
    """Sends one request body to one upstream route and returns its reply.

    ``deadline`` (``time.monotonic()`` seconds) bounds the whole exchange, a stream's chunks included:
    past it the call, or the chunk iterator, raises ``TimeoutError``.
    """

    async def send(self, route: str, body: bytes, stream: bool, headers: dict[str, str], deadline: float) -> Reply: ...


class HttpUpstream:
    """An OpenAI-compatible HTTP server, called through the process's ``Http1Client`` for its origin.

    One deadline per read, filed in a timer wheel (``wardgate.deadlines``: no loop timer per call):
    until the answer's head is in, the first byte's timeout (``ttfb_timeout_s``) or the deadline,
    whichever is sooner; a streamed answer's first chunk is read within the attempt too; then each
    chunk has until the deadline, or ``idle_timeout_s`` of silence when set.
    """

    def __init__(self, name: str, config: UpstreamConfig, clients: Http1Clients) -> None:
        self.name = name
        headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        self._client = clients.get(config.base_url or "", headers, config.max_connections, config.connect_timeout_s)
        self._ttfb = config.ttfb_timeout_s
        self._idle = config.idle_timeout_s
        self._deadlines = Deadlines()

    async def send(self, route: str, body: bytes, stream: bool, headers: dict[str, str], deadline: float) -> Reply:
        loop = asyncio.get_running_loop()
        now = loop.time()
        end = now + (deadline - time.monotonic())
        resp: Http1Response | None = None
        try:
            async with self._deadlines.at(end if self._ttfb is None else min(end, now + self._ttfb)) as timer:
                resp = await self._client.post(route.removeprefix("/v1"), body, headers)
                if stream and resp.status == 200:
                    first = await resp.readany()
                    return Reply(resp.status, chunks=self._chunks(resp, first, end), headers=resp.headers,
                                 _release=resp.close)
                if self._ttfb is not None:  # the first byte is in: the rest of the body has until the deadline
                    timer.reschedule(end)
                data = await resp.read()
        except BaseException:
            if resp is not None:
                resp.close()
            raise
        return Reply(resp.status, body=data, headers=resp.headers)

    async def _chunks(self, resp: Http1Response, first: bytes, end: float) -> AsyncIterator[bytes]:
        """The rest of the stream; a silence longer than ``idle_timeout_s`` or the deadline raises TimeoutError."""
        loop = asyncio.get_running_loop()
        idle = self._idle
        chunk = first
        while chunk:
            yield chunk
            async with self._deadlines.at(end if idle is None else min(end, loop.time() + idle)):
                chunk = await resp.readany()


def _upstream_message(body: bytes, config: UpstreamConfig) -> str | None:
    """The upstream's own error message, when it sent an OpenAI error envelope and it is safe to show:
    one line, at most 500 characters, with our upstream key and anything key-like masked."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return None
    message = err["message"]
    if config.api_key:
        message = message.replace(config.api_key, "***")
    return _CONTROL.sub(" ", _KEYLIKE.sub("***", message))[:500]


def _truncated(reply: Reply, stream: bool) -> bool:
    """A whole 2xx JSON body cut short (the connection dropped mid-body, or a broken upstream)."""
    if stream or reply.chunks is not None or reply.status >= 300:
        return False
    body = reply.body
    if body[:1] == b"{" and body[-1:] == b"}":  # the usual case, without copying the body
        return False
    body = body.strip()
    return not (body.startswith(b"{") and body.endswith(b"}"))


def _retry_after(reply: Reply) -> float | None:
    value = reply.headers.get("retry-after") or reply.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Upstreams:
    """All configured upstreams of one config generation, and the retry/fallback policy."""

    def __init__(self, config: Config, clients: Http1Clients, extra: dict[str, Upstream] | None = None) -> None:
        # The built-in upstream, imported here to keep echo optional.
        from wardgate.echo import EchoUpstream

        self._config = config
        self._by_name: dict[str, Upstream] = {}
        self._breakers: dict[str, Breaker] = {}
        for name, up in config.upstreams.items():
            self._by_name[name] = EchoUpstream(up) if up.kind == "echo" else HttpUpstream(name, up, clients)
            if up.kind != "echo":
                self._breakers[name] = Breaker(up.breaker_failures, up.breaker_cooldown_s)
        self._by_name.update(extra or {})

    def _chain(self, ex: Exchange) -> list[tuple[str, ModelConfig]]:
        assert ex.model_alias is not None and ex.model is not None
        chain = [(ex.model_alias, ex.model)]
        for alias in ex.model.fallbacks:
            chain.append((alias, self._config.models[alias]))
        return chain

    def breaker(self, upstream: str) -> Breaker | None:
        return self._breakers.get(upstream)

    async def send(self, ex: Exchange, body_for: Any) -> Reply:
        """Try the model, then its fallbacks, each with retries; return the first good reply.

        ``body_for(upstream_model) -> bytes`` builds the body to send for a given upstream model.
        A reply with a non-retryable 4xx is returned as is (the client's own error). Every attempt
        is in ``ex.attempts``; the last failure decides the error: 504 upstream_timeout or 502.
        """
        last_error: GatewayError | None = None
        headers = {"traceparent": ex.extra["traceparent"]} if "traceparent" in ex.extra else {}
        chain = self._chain(ex)
        deadline = time.monotonic() + self._config.upstreams[chain[0][1].upstream].timeout_s
        for alias, model in chain:
            up_cfg = self._config.upstreams[model.upstream]
            upstream_model = model.model or alias
            body = body_for(upstream_model)
            for attempt in range(up_cfg.max_retries + 1):
                entry: dict[str, Any] = {"model": alias, "upstream": model.upstream, "upstream_model": upstream_model}
                breaker = self._breakers.get(model.upstream)
                if breaker is not None and not breaker.allow():
                    entry.update(error="circuit_open", ms=0.0)
                    ex.attempts.append(entry)
                    last_error = GatewayError(502, "upstream_error",
                                              f"upstream {model.upstream!r} is failing (circuit open)")
                    break
                ex.attempts.append(entry)
                reply, error, delay = await self._attempt(ex, model.upstream, up_cfg, body, headers, entry, deadline)
                if reply is not None:
                    entry["served"] = True
                    ex.upstream_name, ex.upstream, ex.upstream_model = model.upstream, up_cfg, upstream_model
                    return reply
                last_error = error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GatewayError(504, "upstream_timeout", "the upstream did not answer within the deadline")
                if attempt == up_cfg.max_retries or (delay is not None and delay > min(_MAX_RETRY_AFTER_S, remaining)):
                    break  # honour retry-after: never sooner, so move on to the fallbacks
                backoff = delay if delay is not None else 0.1 * 2**attempt * random.uniform(0.8, 1.2)
                if backoff >= remaining:
                    break
                entry["retry_in_s"] = round(backoff, 3)
                await asyncio.sleep(backoff)
        assert last_error is not None
        raise last_error

    async def _attempt(self, ex: Exchange, name: str, up_cfg: UpstreamConfig, body: bytes, headers: dict[str, str],
                       entry: dict[str, Any], deadline: float) -> tuple[Reply | None, GatewayError | None, float | None]:
        """One try: (a reply to return, or the error and the retry-after the upstream asked for)."""
        breaker = self._breakers.get(name)
        started = time.perf_counter()
        try:
            reply = await self._by_name[name].send(ex.route, body, ex.stream, headers, deadline)
        except TimeoutError:
            ms = entry["ms"] = _ms(started)
            entry["error"] = "timeout"
            ex.upstream_ms += ms
            _fail(breaker)
            return None, GatewayError(504, "upstream_timeout", f"upstream {name!r} timed out"), None
        except aiohttp.ClientError as exc:
            ms = entry["ms"] = _ms(started)
            entry["error"] = type(exc).__name__
            ex.upstream_ms += ms
            _fail(breaker)
            return None, GatewayError(502, "upstream_error", f"upstream {name!r} is unreachable ({type(exc).__name__})"), None
        except BaseException:
            if breaker is not None:
                breaker.abandon()
            raise
        entry["status"] = reply.status
        ms = entry["ms"] = _ms(started)
        ex.upstream_ms += ms
        if _truncated(reply, ex.stream):
            entry["error"] = "invalid_body"
            _fail(breaker)
            return None, GatewayError(502, "upstream_error", f"upstream {name!r} sent an incomplete body"), None
        if reply.status not in _RETRY_STATUSES:
            if breaker is not None:
                breaker.success()
            return reply, None, None
        message = _upstream_message(reply.body, up_cfg) or f"HTTP {reply.status}"
        if reply.status >= 500:
            _fail(breaker)
        elif breaker is not None:
            breaker.abandon()  # a 429/408/409 says nothing about whether the upstream is up
        reply.release()
        return None, GatewayError(502, "upstream_error", f"upstream {name!r} failed: {message}"), _retry_after(reply)


def _fail(breaker: Breaker | None) -> None:
    if breaker is not None:
        breaker.failure()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
