"""The HTTP/1.1 front (``wardgate.front``) on the wire: raw sockets, so framing is what is tested.

The shared ``gateway`` fixture serves through the front (tests/front_server.py); the SDK-level
behaviour is covered by the rest of the suite. Here: keep-alive, pipelining, the hand-over of a
connection to aiohttp, chunked and ``Expect: 100-continue`` bodies, limits and malformed requests.
"""

from __future__ import annotations

import asyncio

import orjson

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted, chat_chunks

_CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def _post(body: bytes = _CHAT, extra: bytes = b"", version: bytes = b"1.1", framing: bytes | None = None) -> bytes:
    framing = b"content-length: %d\r\n" % len(body) if framing is None else framing
    return (b"POST /v1/chat/completions HTTP/%b\r\nhost: gw\r\nauthorization: Bearer %b\r\n"
            b"content-type: application/json\r\n%b%b\r\n" % (version, TEAM_KEY.encode(), framing, extra)) + body


async def _open(gateway):
    return await asyncio.open_connection(gateway.client.host, gateway.client.port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-case names), body (de-chunked; to the close without framing)."""
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
        return status, headers, body
    return status, headers, await reader.read()


async def test_keep_alive_serves_several_requests_on_one_connection(gateway):
    reader, writer = await _open(gateway)
    for _ in range(3):
        writer.write(_post())
        status, headers, body = await _response(reader)
        assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "hello from upstream"
        assert headers["x-wardgate-request-id"].startswith("req_") and "date" in headers
        assert "connection" not in headers
    writer.close()


async def test_pipelined_requests_are_answered_in_order(gateway):
    gateway.upstream.then(Scripted(body={"id": "first", "choices": []}, delay_s=0.2),
                          Scripted(body={"id": "second", "choices": []}))
    reader, writer = await _open(gateway)
    writer.write(_post() + _post())
    first, second = await _response(reader), await _response(reader)
    assert orjson.loads(first[2])["id"] == "first" and orjson.loads(second[2])["id"] == "second"
    writer.close()


async def test_a_connection_asking_for_another_route_is_handed_to_aiohttp(gateway):
    reader, writer = await _open(gateway)
    # An API request, then one the front does not serve, pipelined in one write, then an API request again.
    writer.write(_post() + b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
    status, headers, _ = await _response(reader)
    assert status == 200 and "server" not in headers
    status, headers, body = await _response(reader)
    assert status == 200 and orjson.loads(body) == {"status": "ok"} and "aiohttp" in headers["server"]
    writer.write(_post())
    status, _, body = await _response(reader)
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "hello from upstream"
    writer.close()


async def test_the_hand_over_waits_for_a_request_cut_between_two_reads(gateway):
    reader, writer = await _open(gateway)
    second = _post()
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n" + second[:40])  # the POST's start rides along
    await asyncio.sleep(0.2)
    writer.write(second[40:])
    status, headers, _ = await _response(reader)
    assert status == 200 and "aiohttp" in headers["server"]
    status, _, body = await _response(reader)
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "hello from upstream"
    writer.close()


async def test_a_handed_over_request_keeps_its_body_and_query(gateway):
    reader, writer = await _open(gateway)
    feedback = orjson.dumps({"request_id": "req_nope", "score": 1})
    writer.write(b"POST /v1/feedback?x=1 HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer %b\r\n"
                 b"transfer-encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (TEAM_KEY.encode(), len(feedback), feedback))
    status, _, body = await _response(reader)
    assert status == 404 and orjson.loads(body)["error"]["code"] == "not_found"  # aiohttp's handler read the body
    writer.close()


async def test_a_chunked_body_and_expect_continue(gateway):
    reader, writer = await _open(gateway)
    half = len(_CHAT) // 2
    chunked = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, _CHAT[:half], len(_CHAT) - half, _CHAT[half:])
    writer.write(_post(b"", framing=b"transfer-encoding: chunked\r\n", extra=b"expect: 100-continue\r\n"))
    status, _, _ = await _response(reader)
    assert status == 100
    writer.write(chunked)
    status, _, _ = await _response(reader)
    assert status == 200 and gateway.upstream.last["body"]["messages"][0]["content"] == "hi"
    writer.close()


async def test_a_body_over_the_limit_is_413_and_recorded(gateway):
    reader, writer = await _open(gateway)
    writer.write(_post(b"x" * 200_001))
    status, headers, body = await _response(reader)
    assert status == 413 and orjson.loads(body)["error"]["code"] == "request_too_large"
    record = await gateway.trace(headers["x-wardgate-request-id"])
    assert record["status"] == 413
    writer.write(_post())  # the body was read to its end: the connection is still usable
    assert (await _response(reader))[0] == 200
    writer.close()


async def test_a_chunked_body_over_the_limit_is_413(gateway):
    reader, writer = await _open(gateway)
    big = b"y" * 150_000
    writer.write(_post(b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (len(big), big, len(big), big),
                       framing=b"transfer-encoding: chunked\r\n"))
    status, _, body = await _response(reader)
    assert status == 413 and orjson.loads(body)["error"]["code"] == "request_too_large"
    writer.close()


async def test_malformed_requests_get_an_openai_error_and_a_close(gateway):
    for raw, status in [(b"NOT HTTP AT ALL\r\n\r\n", 400),
                        (b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: abc\r\n\r\n", 400),
                        (b"POST /v1/chat/completions HTTP/1.1\r\nx: " + b"a" * 70_000 + b"\r\n\r\n", 431),
                        (b"POST /v1/chat/completions?" + b"q" * 9000 + b" HTTP/1.1\r\n\r\n", 414)]:
        reader, writer = await _open(gateway)
        writer.write(raw)
        got, headers, body = await _response(reader)
        assert got == status and orjson.loads(body)["error"]["type"] == "invalid_request_error"
        assert headers["connection"] == "close" and await reader.read() == b""
        writer.close()


async def test_http_1_0_gets_its_answer_then_the_close(gateway):
    reader, writer = await _open(gateway)
    writer.write(_post(version=b"1.0"))
    status, headers, body = await _response(reader)
    assert status == 200 and headers["connection"] == "close" and orjson.loads(body)["choices"]
    assert await reader.read() == b""
    writer.close()


async def test_an_http_1_0_stream_runs_to_the_close_without_chunks(gateway):
    gateway.upstream.then(Scripted(chunks=chat_chunks("streamed over one point oh", size=5)))
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    reader, writer = await _open(gateway)
    writer.write(_post(body, version=b"1.0"))
    status, headers, data = await _response(reader)
    assert status == 200 and "transfer-encoding" not in headers and headers["content-type"] == "text/event-stream"
    assert data.endswith(b"data: [DONE]\n\n") and data.count(b"chat.completion.chunk") >= 5
    writer.close()


async def test_a_stream_is_chunked_and_the_connection_kept(gateway):
    gateway.upstream.then(Scripted(chunks=chat_chunks("streamed answer", size=4), chunk_delay_s=0.01))
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    reader, writer = await _open(gateway)
    writer.write(_post(body))
    status, headers, data = await _response(reader)
    assert status == 200 and headers["transfer-encoding"] == "chunked" and data.endswith(b"data: [DONE]\n\n")
    writer.write(_post())
    assert (await _response(reader))[0] == 200
    writer.close()


async def test_a_client_that_leaves_cancels_its_request_and_it_is_recorded(gateway):
    gateway.upstream.then(Scripted(body={"id": "late", "choices": []}, delay_s=2.0))
    _, writer = await _open(gateway)
    writer.write(_post(extra=b"x-request-id: leaves-early\r\n"))
    await asyncio.sleep(0.3)
    writer.close()
    deadline = asyncio.get_running_loop().time() + 5
    while not any(r.get("error") and r["error"]["code"] == "client_closed" for r in gateway.records()):
        assert asyncio.get_running_loop().time() < deadline, gateway.records()
        await asyncio.sleep(0.05)


async def test_shutdown_closes_idle_connections_and_cancels_what_outlives_the_grace(fake_upstream, tmp_path):
    import socket

    from aiohttp import web

    from tests.conftest import Gateway, gateway_yaml
    from wardgate.app import create_app
    from wardgate.config import load_config_text
    from wardgate.front import FrontSite

    traces = tmp_path / "traces.jsonl"
    app = create_app(load_config_text(gateway_yaml(fake_upstream.url, traces), env={}))
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.3)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await FrontSite(runner, sock=sock).start()
    host, port = sock.getsockname()[:2]
    idle_reader, idle_writer = await asyncio.open_connection(host, port)
    idle_writer.write(_post())
    assert (await _response(idle_reader))[0] == 200  # answered; the connection now idles
    fake_upstream.then(Scripted(body={"id": "too-late", "choices": []}, delay_s=5.0))
    busy_reader, busy_writer = await asyncio.open_connection(host, port)
    busy_writer.write(_post(extra=b"x-request-id: outlives-grace\r\n"))
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    await runner.cleanup()
    assert asyncio.get_running_loop().time() - started < 3  # the grace, not the upstream's 5 s
    assert await asyncio.wait_for(idle_reader.read(), 2) == b""
    assert await asyncio.wait_for(busy_reader.read(), 2) == b""
    records = Gateway(None, fake_upstream, traces).records()
    late = [r for r in records if r.get("error") and r["error"]["code"] == "client_closed"]
    assert len(late) == 1 and late[0]["status"] == 499
    idle_writer.close()
    busy_writer.close()
