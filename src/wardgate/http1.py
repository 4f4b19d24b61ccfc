"""The upstream HTTP/1.1 client: keep-alive connection pools on asyncio protocols, parsed by httptools.

aiohttp's client costs ~49 µs of CPU per request here (a task, a dozen ``update_*`` steps, a timer
handle, header multidicts), as much as its server; a proxy makes one upstream call per request, the
same shape every time. This client does that call and nothing else: one pre-built request head per
route, one ``write``, httptools (llhttp, the parser behind uvicorn) for the answer, the connection back
to its pool when the answer is complete. It speaks what OpenAI-compatible upstreams need: POST with a
Content-Length body, answers with a Content-Length, chunked (SSE streams) or read to the close,
plain TCP or TLS. Redirects, proxies, cookies, compression and 1xx are not used by those APIs and are
not implemented; a ``Connection: close`` or an unparsable answer closes the connection.

Failures raise aiohttp's own exception classes (``ClientConnectorError``, ``ServerDisconnectedError``,
``ClientPayloadError``, ``ClientOSError``), so callers and trace records name them as before.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["MAX_WHOLE_BODY", "Http1Client", "Http1Clients", "Http1Response"]

_PAUSE_AT = 4 * 1024 * 1024
"""Unread bytes of a streamed answer above which the socket stops being read (back pressure)."""
_MAX_HEAD = 64 * 1024
"""The most bytes of headers an answer may have (aiohttp's client allows 8 KB a line)."""
_KEEPALIVE_S = 15.0
"""An idle connection is closed after this long (aiohttp's client default): fds come back when the
load goes, and a connection is not kept past the point where upstreams commonly drop it themselves."""
MAX_WHOLE_BODY = 256 * 1024 * 1024
"""The largest answer ``read()`` takes whole (a batch of embeddings can be tens of MB); past it the
connection is closed and ``ClientPayloadError`` raised, so a hostile upstream cannot exhaust memory."""


class Http1Response:
    """One answer: status and headers at once, the body as it arrives."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_size", "_waiter", "_whole", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._whole = False  # read() is collecting the whole body: no back pressure, a size cap instead

    # -- fed by the connection --------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._whole:
            if self._size > MAX_WHOLE_BODY:
                self.close(aiohttp.ClientPayloadError(f"the answer is larger than {MAX_WHOLE_BODY} bytes"))
                return
        elif self._size > _PAUSE_AT and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        if error is None:
            self._conn = None  # complete: the connection is back in its pool, or closed
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        except BaseException:
            self.close()  # cancelled mid-body: the connection cannot be reused
            raise

    # -- read by the caller -----------------------------------------------------------------
    async def read(self) -> bytes:
        """The whole body (at most ``MAX_WHOLE_BODY`` bytes)."""
        self._whole = True
        if self._conn is not None:
            self._conn.resume()  # readany() may have left the socket paused
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return body

    async def readany(self) -> bytes:
        """The next bytes that arrived (all of those buffered), b"" at the end."""
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                return b""
            await self._wait()
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._conn is not None:
            self._conn.resume()
        return data

    def close(self, error: BaseException | None = None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn._response = None
            conn.abort()
        if not self._done:
            self._finish(error or aiohttp.ClientConnectionError("the answer was abandoned before its end"))


class _Connection(asyncio.Protocol):
    """One keep-alive TCP (or TLS) connection; one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._paused = False
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self.idle_since = 0.0
        self._busy = False  # a request is out and its answer not complete
        self._head: asyncio.Future[Http1Response] | None = None  # until the status line and headers are in
        self._response: Http1Response | None = None
        self._framed = True  # the answer has a Content-Length or is chunked (else it ends with the connection)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # bytes nobody asked for (or past the answer's end): the connection is unusable
            self.abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientPayloadError(f"the upstream sent invalid HTTP: {exc}"))
        except httptools.HttpParserUpgrade:
            self._fail(aiohttp.ClientPayloadError("the upstream asked for a protocol upgrade"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        head, response = self._head, self._response
        if head is None and response is None:
            return  # an idle connection
        if response is not None and not self._framed and exc is None:
            self._response = None
            response._finish()  # an answer without framing ends with the connection
            return
        if exc is not None and not isinstance(exc, ConnectionResetError):
            error: BaseException = aiohttp.ClientOSError(getattr(exc, "errno", None) or 0, str(exc))
        elif head is not None:
            error = aiohttp.ServerDisconnectedError()
        else:
            error = aiohttp.ClientPayloadError("the connection closed before the end of the answer")
        self._fail(error)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > _MAX_HEAD:
            raise httptools.HttpParserError(f"more than {_MAX_HEAD} bytes of headers")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self._busy:  # a second answer in the bytes that ended the first: nobody asked for it
            raise httptools.HttpParserError("an answer nobody asked for")
        parser = self._parser
        headers = CIMultiDict(self._headers)
        self._headers = []
        self._framed = "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        response = self._response = Http1Response(self, parser.get_status_code(), CIMultiDictProxy(headers))
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        self._busy = False
        response, self._response = self._response, None
        keep = self._parser.should_keep_alive()
        if response is not None:
            response._finish()
        if keep and not self.closed:
            self._pool.put_back(self)
        else:
            self.abort()

    # -- used by the pool and the response ---------------------------------------------------
    async def request(self, data: bytes) -> Http1Response:
        """Write one request; the answer once its status and headers are in. Any failure or cancellation
        on the way (a deadline) spends the connection: it is closed, never reused half-way."""
        assert self.transport is not None
        head = self._head = asyncio.get_running_loop().create_future()
        self._response = None
        self._headers = []
        self._head_bytes = 0
        self._busy = True
        self.transport.write(data)
        try:
            return await head
        except BaseException:
            self.abort()
            raise

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self.transport is not None:
                self.transport.abort()

    def _fail(self, error: BaseException) -> None:
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_exception(error)
        response, self._response = self._response, None
        if response is not None:
            response._conn = None
            response._finish(error)
        self.abort()


class _Pool:
    """The connections to one origin: idle ones (the most recently used at the right, taken first; the
    oldest at the left, closed after ``_KEEPALIVE_S``), and a cap on all of them."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: int, connect_timeout_s: float) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._limit = limit
        self._connect_timeout = connect_timeout_s
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None  # one timer per pool, not per connection

    async def acquire(self) -> tuple[_Connection, bool]:
        """A connection to send on, and whether it was reused (an idle one the server may have closed)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn, True
        while len(self._open) >= self._limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake_one()  # pass the turn on
                raise
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        conn = _Connection(self)
        self._open.add(conn)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: conn, self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None)
        except BaseException as exc:
            self.forget(conn)
            if isinstance(exc, OSError | TimeoutError):
                key = SimpleNamespace(host=self.host, port=self.port, ssl=self.tls is not None)
                raise aiohttp.ClientConnectorError(key, OSError(getattr(exc, "errno", None) or 0, str(exc) or "timed out")) from exc  # type: ignore[arg-type]
            raise
        return conn, False

    def put_back(self, conn: _Connection) -> None:
        assert self._loop is not None
        conn.idle_since = self._loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(_KEEPALIVE_S, self._sweep)
        self._wake_one()

    def _sweep(self) -> None:
        assert self._loop is not None
        self._sweeper = None
        idle, now = self._idle, self._loop.time()
        while idle and (idle[0].closed or now - idle[0].idle_since >= _KEEPALIVE_S):
            idle.popleft().abort()
        if idle:
            self._sweeper = self._loop.call_later(max(0.05, idle[0].idle_since + _KEEPALIVE_S - now), self._sweep)

    def forget(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.discard(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def drop_idle(self) -> None:
        idle, self._idle = self._idle, deque()
        for conn in idle:
            conn.abort()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()


class Http1Client:
    """POSTs to one base URL's origin; one pool per client (one client per upstream)."""

    def __init__(self, base_url: str, headers: dict[str, str], *, limit: int = 512, connect_timeout_s: float = 10.0,
                 tls: ssl.SSLContext | None = None) -> None:
        """``tls``: the context for an https URL (default: the system's CAs, hostname checked)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if parts.scheme == "https":
            tls = tls or ssl.create_default_context()
        else:
            tls = None
        port = parts.port or (443 if tls else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = port == (443 if tls else 80)
        host = parts.hostname if default_port else f"{parts.hostname}:{port}"
        if ":" in parts.hostname and not parts.hostname.startswith("["):  # IPv6 literal
            host = f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{port}"
        self._pool = _Pool(parts.hostname, port, tls, limit, connect_timeout_s)
        self._fixed = _header_lines({"Host": host, **headers})
        self._heads: dict[str, bytes] = {}

    def _head(self, path: str) -> bytes:
        head = self._heads.get(path)
        if head is None:
            if any(c in path for c in "\r\n "):
                raise ValueError(f"invalid request path {path!r}")
            head = self._heads[path] = f"POST {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._fixed
        return head

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Http1Response:
        """Send ``body`` to ``path`` (below the base URL's path); return once the status and headers are in."""
        request = b"".join((self._head(path), _header_lines(headers) if headers else b"",
                            b"Content-Length: %d\r\n\r\n" % len(body), body))
        conn, reused = await self._pool.acquire()
        try:
            return await conn.request(request)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not reused:
                raise
        # An idle connection the server had closed (a race every keep-alive client meets): once more,
        # on a new connection; nothing of the answer had arrived.
        self._pool.drop_idle()
        conn, _ = await self._pool.acquire()
        return await conn.request(request)

    async def close(self) -> None:
        self._pool.close()


class Http1Clients:
    """The process's upstream clients, shared by every config generation: a reload keeps the pools."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[object, ...], Http1Client] = {}

    def get(self, base_url: str, headers: dict[str, str], limit: int, connect_timeout_s: float) -> Http1Client:
        key = (base_url, tuple(sorted(headers.items())), limit, connect_timeout_s)
        client = self._by_key.get(key)
        if client is None:
            client = self._by_key[key] = Http1Client(base_url, headers, limit=limit, connect_timeout_s=connect_timeout_s)
        return client

    async def close(self) -> None:
        for client in self._by_key.values():
            await client.close()
        self._by_key.clear()


def _header_lines(headers: dict[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
