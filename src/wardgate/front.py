"""The HTTP/1.1 front: the API routes served on asyncio protocols parsed by httptools; a connection
that asks for anything else is handed to aiohttp's own protocol.

aiohttp's server spends about a third of the routing-only gateway's CPU per request (a parser object
feeding a ``StreamReader``, a ``BaseRequest``, the router, a ``StreamResponse`` and its writer). The
gateway's traffic is four routes of one shape: ``POST`` a JSON body, answer a JSON body or an SSE
stream. This front parses those with httptools (llhttp, the parser behind uvicorn), gives
``proxy.serve_api`` a small request object with what it reads, and writes each answer in one
``transport.write``. The first request on a connection for any other route (health checks, metrics,
admin, feedback, an unknown path, another method) switches that connection to aiohttp for good: the
requests parsed so far are handed over re-framed with a ``Content-Length``, and aiohttp's router,
handlers and errors serve it as they always did.

Connections register with aiohttp's ``web.Server``, so ``AppRunner.cleanup`` shuts both kinds down
the same way: idle ones close, in-flight requests get the grace period, then are cancelled.
Pipelined requests are answered in order, one at a time; a client that disconnects cancels its
handler (aiohttp's ``handler_cancellation``).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from http import HTTPStatus
from typing import Any

import httptools
import structlog
from aiohttp import web
from aiohttp.web_runner import BaseSite
from multidict import CIMultiDict, CIMultiDictProxy

from wardgate.errors import error_body
from wardgate.keys import GENERATION
from wardgate.proxy import API_ROUTES, serve_api

__all__ = ["FrontRequest", "FrontSite", "FrontStream"]

_log = structlog.get_logger("wardgate.front")

_HOT = frozenset(route.encode() for route in API_ROUTES)
_MAX_URL = 8190  # aiohttp's max_line_size: a longer request line is a 414 there too
_MAX_HEAD = 64 * 1024
_KEEPALIVE_S = 75.0  # aiohttp's keepalive_timeout
_PIPELINE_DEPTH = 16  # parsed requests waiting their turn before the socket stops being read
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Date:
    """The ``Date`` header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, email.utils.formatdate(now, usegmt=True).encode()
        return cls.value


class _Reject(Exception):
    """A request this front answers itself, with the connection closed after (bad framing, limits)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FrontRequest:
    """What ``proxy.serve_api`` reads of a request, as ``web.Request`` names it."""

    __slots__ = ("_body", "_protocol", "_too_large", "app", "content_length", "headers", "keep_alive", "method",
                 "path", "version")

    def __init__(self, protocol: _FrontProtocol, method: str, path: str, headers: CIMultiDictProxy[str],
                 body: bytes, too_large: bool, keep_alive: bool, version: str) -> None:
        self._protocol = protocol
        self.app = protocol.app
        self.method = method
        self.path = path
        self.headers = headers
        # The body is already read: its size, or None past the limit (then read() raises, as aiohttp's does).
        self.content_length = None if too_large else len(body)
        self._body = body
        self._too_large = too_large
        self.keep_alive = keep_alive
        self.version = version

    async def read(self) -> bytes:
        if self._too_large:
            limit = self.app[GENERATION].config.server.max_body_bytes
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=limit + 1)
        return self._body

    def stream_response(self, headers: dict[str, str]) -> FrontStream:
        return FrontStream(self._protocol, self, headers)


class FrontStream:
    """A 200 streamed answer (SSE) with ``web.StreamResponse``'s ``prepare``/``write``/``write_eof``:
    chunked on HTTP/1.1; on HTTP/1.0 the body runs to the close."""

    __slots__ = ("_chunked", "_protocol", "_request", "headers", "prepared")

    def __init__(self, protocol: _FrontProtocol, request: FrontRequest, headers: dict[str, str]) -> None:
        self._protocol = protocol
        self._request = request
        self._chunked = request.version != "1.0"
        self.headers = dict(headers)
        self.prepared = False

    async def prepare(self, _request: Any = None) -> None:
        if self.prepared:
            return
        self.prepared = True
        framing = b"transfer-encoding: chunked\r\n" if self._chunked else b""
        self._protocol.write(_head(200, self.headers, self._request.keep_alive and self._chunked) + framing + b"\r\n")

    async def write(self, data: bytes) -> None:
        if not data:
            return
        protocol = self._protocol
        protocol.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        if protocol.paused:
            await protocol.drain()

    async def write_eof(self) -> None:
        if self._chunked:
            self._protocol.write(b"0\r\n\r\n")


def _whole(status: int, headers: Any, keep_alive: bool, body: bytes) -> bytes:
    """A complete answer with a ``Content-Length`` body."""
    return _head(status, headers, keep_alive) + b"content-length: %d\r\n\r\n%b" % (len(body), body)


def _head(status: int, headers: Any, keep_alive: bool) -> bytes:
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    reason = _REASONS.get(status, b"Unknown")
    connection = b"" if keep_alive else b"connection: close\r\n"
    return b"HTTP/1.1 %d %b\r\ndate: %b\r\n%b%b" % (
        status, reason, _Date.get(), connection, "".join(lines).encode("utf-8"))


class _FrontProtocol(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, server: web.Server, app: web.Application) -> None:
        self.app = app
        self.paused = False
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._task: asyncio.Task[None] | None = None
        self._pending: deque[FrontRequest] = deque()
        self._handoff: list[bytes] | None = None  # re-framed requests for aiohttp, once one is not ours
        self._closing = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._last_active = 0.0
        self._task_handler = None  # read by web.Server.connection_lost
        # A message begun but not complete: its bytes are inside the parser, so the hand-over waits
        # for its end (it is re-framed like the others), never cutting a request in two.
        self._in_message = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0
        self._too_large = False
        self._ours = False

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connection_made(self, transport)  # type: ignore[arg-type]
        self._last_active = self._loop.time()
        self._loop.call_later(_KEEPALIVE_S, self._check_idle)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._server.connection_lost(self, exc)  # type: ignore[arg-type]
        self._transport = None
        self._pending.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: so does its upstream call
        self._wake_drain(ConnectionResetError("the client closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except _Reject as exc:
            self._refuse(exc.status, str(exc))
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _Reject):
                self._refuse(cause.status, str(cause))
            else:
                _log.exception("front_callback_failed", error=repr(cause or exc))
                self._refuse(500, "internal error while reading the request")
            return
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
            return
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")
            return
        if self._handoff is not None and self._task is None and not self._in_message:
            self._switch()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain(None)

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()
        self._in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_URL:
            raise _Reject(414, f"the request line is longer than {_MAX_URL} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if self._head_size > _MAX_HEAD:
            raise _Reject(431, f"the request headers are larger than {_MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        path = self._url.partition(b"?")[0]
        self._ours = self._handoff is None and path in _HOT and self._parser.get_method() == b"POST"
        limit = self.app[GENERATION].config.server.max_body_bytes
        self._limit = limit if self._ours else limit + 2  # past aiohttp's client_max_size (limit + 1): its 413
        if self._ours:
            for name, value in self._headers:
                lower = name.lower()
                if lower == b"content-length" and value.strip().isdigit() and int(value) > limit:
                    self._too_large = True
                elif lower == b"expect" and value.strip().lower() == b"100-continue" and not self._too_large:
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body.append(body)
        self._body_size += len(body)
        if self._body_size > self._limit:
            if self._ours:
                self._too_large = True
                self._body.clear()
            else:
                self._body[-1] = body[: len(body) - (self._body_size - self._limit)]

    def on_message_complete(self) -> None:
        self._in_message = False
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        if not self._ours:
            self._hand_over(body)
            return
        headers = CIMultiDictProxy(CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._headers))
        request = FrontRequest(self, "POST", self._url.partition(b"?")[0].decode("latin-1"), headers, body,
                               self._too_large, self._parser.should_keep_alive(),
                               self._parser.get_http_version())
        if self._task is None:
            self._start(request)
        else:
            self._pending.append(request)
            if len(self._pending) >= _PIPELINE_DEPTH and self._transport is not None:
                self._transport.pause_reading()

    # -- serving ----------------------------------------------------------------------------------
    def _start(self, request: FrontRequest) -> None:
        self._task = self._loop.create_task(self._serve(request))

    async def _serve(self, request: FrontRequest) -> None:
        keep = request.keep_alive
        try:
            answer = await serve_api(request)  # type: ignore[arg-type]  # reads what web.Request has
            if isinstance(answer, FrontStream):
                keep = keep and answer._chunked
                await answer.prepare()
                await answer.write_eof()
            else:
                self.write(_whole(answer.status, answer.headers, keep and not self._closing, answer.body))
        except (asyncio.CancelledError, ConnectionError):
            keep = False
        except Exception:  # noqa: BLE001 - serve_api answers its own errors; this is a bug in writing it
            _log.exception("front_response_failed", path=request.path)
            keep = False
        finally:
            self._task = None
            self._next(keep)

    def _next(self, keep: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        self._last_active = self._loop.time()
        if not keep or self._closing:
            transport.close()
        elif self._pending:
            self._start(self._pending.popleft())
            if len(self._pending) < _PIPELINE_DEPTH:
                transport.resume_reading()
        elif self._handoff is not None and not self._in_message:
            self._switch()

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)

    async def drain(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        self._drain_waiter = self._loop.create_future()
        await self._drain_waiter

    def _wake_drain(self, error: BaseException | None) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or is over a limit, then close (as aiohttp does)."""
        _log.warning("front_bad_request", status=status, message=message)
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        code = "invalid_request" if status in (400, 414, 431) else "internal_error"
        if self._task is None:  # an answer in progress must finish first; then the close cuts the rest
            transport.write(_whole(status, {"content-type": "application/json"}, False, error_body(status, code, message)))
            transport.close()
        else:
            self._closing = True
            self._pending.clear()
            transport.pause_reading()

    # -- the hand-over to aiohttp -------------------------------------------------------------------
    def _hand_over(self, body: bytes) -> None:
        """Re-frame one parsed request for aiohttp (and every request after it on this connection)."""
        skip = (b"content-length", b"transfer-encoding")
        head = b"".join(b"%b: %b\r\n" % pair for pair in self._headers if pair[0].lower() not in skip)
        line = b"%b %b HTTP/%b\r\n" % (self._parser.get_method(), self._url, self._parser.get_http_version().encode())
        framing = b"content-length: %d\r\n\r\n" % len(body)
        if self._handoff is None:
            self._handoff = []
        self._handoff.append(line + head + framing + body)

    def _switch(self) -> None:
        transport, data = self._transport, b"".join(self._handoff or ())
        self._handoff = None
        if transport is None:
            return
        self._server.connection_lost(self, None)  # type: ignore[arg-type]
        handler = self._server()  # aiohttp's RequestHandler, registered with the same server
        transport.set_protocol(handler)
        handler.connection_made(transport)
        transport.resume_reading()
        handler.data_received(data)
        self._transport = None

    # -- keep-alive and shutdown (web.Server calls close() and shutdown()) ---------------------------
    def _check_idle(self) -> None:
        if self._transport is None:
            return
        idle_for = self._loop.time() - self._last_active
        if self._task is None and idle_for >= _KEEPALIVE_S:
            self._transport.close()
        else:
            self._loop.call_later(max(_KEEPALIVE_S - idle_for, 1.0), self._check_idle)

    def close(self) -> None:
        self._closing = True
        if self._task is None and self._transport is not None:
            self._transport.close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        self._closing = True
        task = self._task
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()


class FrontSite(BaseSite):
    """``web.TCPSite``/``web.SockSite`` with this front as the protocol (``sock`` or ``host``/``port``)."""

    __slots__ = ("_host", "_port", "_sock")

    def __init__(self, runner: web.AppRunner, host: str | None = None, port: int | None = None,
                 sock: Any = None, backlog: int = 2048) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._sock = host, port, sock

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2] if self._sock is not None else (self._host, self._port)
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        runner = self._runner
        server, app = runner.server, runner.app  # type: ignore[attr-defined]
        assert server is not None

        def protocol() -> _FrontProtocol:
            return _FrontProtocol(server, app)

        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(protocol, sock=self._sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(protocol, self._host, self._port, backlog=self._backlog,
                                                    reuse_address=True)
