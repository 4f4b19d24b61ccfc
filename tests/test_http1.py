"""The upstream HTTP/1.1 client against a raw asyncio server that answers byte for byte as told."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from typing import Self

import aiohttp
import pytest

from wardgate.http1 import Http1Client

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]
"""Gets one request (head + body); writes the answer; returns whether to keep the connection."""


class RawServer:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        if self.server is None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._handlers:  # connections the client keeps alive
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


def raw(answer: bytes, keep: bool = True) -> Answer:
    """Writes ``answer`` as given to every request; ``keep``: whether the connection stays open."""
    async def reply(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        await writer.drain()
        return keep
    return reply


def whole(body: bytes, extra: bytes = b"") -> Answer:
    return raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + extra
               + b"content-length: %d\r\n\r\n" % len(body) + body, keep=b"connection: close" not in extra.lower())


async def test_a_connection_is_reused_and_the_request_is_what_was_asked():
    async with RawServer(whole(b'{"ok":1}')) as server:
        client = Http1Client(server.url, {"authorization": "Bearer k", "content-type": "application/json"})
        for i in range(5):
            resp = await client.post("/chat/completions", b'{"n":%d}' % i, {"traceparent": "00-a-b-01"})
            assert resp.status == 200 and await resp.read() == b'{"ok":1}'
            assert resp.headers["Content-Type"] == "application/json"
        await client.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    for line in (b"authorization: Bearer k", b"traceparent: 00-a-b-01", b"Content-Length: 7", b"Host: 127.0.0.1:"):
        assert line in first
    assert first.endswith(b'\r\n\r\n{"n":0}')


async def test_connection_close_and_an_answer_read_to_the_close():
    async with RawServer(raw(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it", keep=False)) as server:
        client = Http1Client(server.url, {})
        for _ in range(2):
            resp = await client.post("/x", b"{}")
            assert await resp.read() == b"all of it"
    assert server.connections == 2
    async with RawServer(whole(b"{}", b"Connection: close\r\n")) as server:
        client = Http1Client(server.url, {})
        for _ in range(2):
            assert await (await client.post("/x", b"{}")).read() == b"{}"
    assert server.connections == 2


async def test_a_chunked_stream_arrives_piece_by_piece():
    release = asyncio.Event()

    async def stream(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"7\r\ndata: 1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with RawServer(stream) as server:
        client = Http1Client(server.url, {})
        resp = await client.post("/chat/completions", b"{}")
        assert await resp.readany() == b"data: 1"  # before the server wrote the rest
        release.set()
        rest = b""
        while chunk := await resp.readany():
            rest += chunk
        assert rest == b"data: 2"
        assert (await (await client.post("/x", b"{}")).readany()).startswith(b"data: 1")  # on the same connection
    assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error():
    async def once(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await whole(b"{}")(request, writer)
        return False  # closes after every answer, without saying so

    async with RawServer(once) as server:
        client = Http1Client(server.url, {})
        for _ in range(3):
            resp = await client.post("/x", b"{}")
            assert await resp.read() == b"{}"
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
    assert server.connections == 3


async def test_failures_raise_aiohttps_exception_classes():
    reset = raw(b"", keep=False)
    garbage = raw(b"NOT HTTP AT ALL\r\n\r\n")
    cut = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this", keep=False)
    huge_head = raw(b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n")
    for answer, error in ((reset, aiohttp.ServerDisconnectedError), (garbage, aiohttp.ClientPayloadError),
                          (cut, aiohttp.ClientPayloadError), (huge_head, aiohttp.ClientPayloadError)):
        async with RawServer(answer) as server:
            client = Http1Client(server.url, {})
            with pytest.raises(error):
                await (await client.post("/x", b"{}")).read()
    async with RawServer(whole(b"{}")) as server:
        url = server.url
    with pytest.raises(aiohttp.ClientConnectorError):
        await Http1Client(url, {}).post("/x", b"{}")


async def test_the_pool_cap_queues_requests_and_a_cancelled_read_spends_its_connection():
    gate = asyncio.Event()

    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b'"wait"' in request:
            await gate.wait()
        return await whole(b"{}")(request, writer)

    async with RawServer(slow) as server:
        client = Http1Client(server.url, {}, limit=2)
        results = [asyncio.create_task(client.post("/x", b'"wait"')) for _ in range(4)]
        await _until(lambda: len(server.requests) == 2)
        await asyncio.sleep(0.1)
        assert server.connections == 2 and len(server.requests) == 2  # the other two wait for a connection
        gate.set()
        for task in results:
            assert await (await task).read() == b"{}"
        assert server.connections == 2
        gate.clear()
        stuck = asyncio.create_task(client.post("/x", b'"wait"'))
        await asyncio.sleep(0.05)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        gate.set()
        assert await (await client.post("/x", b"{}")).read() == b"{}"  # not on the spent connection


async def test_a_large_stream_is_read_with_back_pressure_and_arrives_whole():
    piece = b"x" * 65536

    async def big(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(160):  # 10 MB, more than the client buffers before it stops reading
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async with RawServer(big) as server:
        client = Http1Client(server.url, {})
        resp = await client.post("/x", b"{}")
        await asyncio.sleep(0.3)  # the client stops reading at its cap; the server waits in drain()
        total = 0
        while chunk := await resp.readany():
            total += len(chunk)
        assert total == 160 * len(piece)


async def test_https_with_a_private_ca(tmp_path):
    crypto = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = crypto.Name([crypto.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (crypto.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(crypto.SubjectAlternativeName([crypto.DNSName("localhost")]), critical=False)
            .add_extension(crypto.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = RawServer(whole(b'{"tls":true}'))
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.server.sockets[0].getsockname()[1]
    async with server:
        trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        client = Http1Client(f"https://localhost:{port}/v1", {}, tls=trusted)
        assert await (await client.post("/x", b"{}")).read() == b'{"tls":true}'
        with pytest.raises(aiohttp.ClientConnectorError):  # the system's CAs do not know this one
            await Http1Client(f"https://localhost:{port}/v1", {}).post("/x", b"{}")


async def test_an_answer_nobody_asked_for_closes_the_connection():
    two = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra")
    async with RawServer(two) as server:
        client = Http1Client(server.url, {})
        for _ in range(3):
            assert await (await client.post("/x", b"{}")).read() == b"{}"  # never the stray "extra"
    assert server.connections == 3


async def test_a_whole_answer_larger_than_the_stream_buffer_is_read_and_a_cap_bounds_it(monkeypatch):
    body = b"[" + b"0.123456789," * 900_000 + b"0]"  # ~11 MB: a large batch of embeddings

    async def big(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 1 << 20):
            writer.write(body[i:i + (1 << 20)])
            await writer.drain()
        return True

    async with RawServer(big) as server:
        client = Http1Client(server.url, {})
        resp = await client.post("/embeddings", b"{}")
        assert await asyncio.wait_for(resp.read(), 10) == body  # read() is not held by back pressure
        import wardgate.http1

        monkeypatch.setattr(wardgate.http1, "MAX_WHOLE_BODY", 4 * 1024 * 1024)
        resp = await client.post("/embeddings", b"{}")
        with pytest.raises(aiohttp.ClientPayloadError, match="larger than"):
            await asyncio.wait_for(resp.read(), 10)
        assert await asyncio.wait_for((await client.post("/embeddings", b"{}")).readany(), 10)  # a new connection


async def test_idle_connections_are_closed_after_the_keepalive(monkeypatch):
    import wardgate.http1

    monkeypatch.setattr(wardgate.http1, "_KEEPALIVE_S", 1.0)
    async with RawServer(whole(b"{}")) as server:
        client = Http1Client(server.url, {})
        first = [asyncio.create_task(client.post("/x", b"{}")) for _ in range(3)]
        for task in first:
            await (await task).read()
        assert server.connections == 3
        await asyncio.sleep(0.05)
        await (await client.post("/x", b"{}")).read()  # within the keep-alive: a pooled one
        assert server.connections == 3
        await _until(lambda: not client._pool._open and not client._pool._idle)  # all idle past the keep-alive
        await (await client.post("/x", b"{}")).read()
        assert server.connections == 4
