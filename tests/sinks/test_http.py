from __future__ import annotations

import orjson
import pytest
from aiohttp import web

from tests.sinks import trace_record
from wardgate.sinks import HttpSink, HttpSinkError, build_sink


def _collector(status: int = 200) -> tuple[web.Application, list[tuple[dict, list]]]:
    received: list[tuple[dict, list]] = []

    async def ingest(request: web.Request) -> web.Response:
        received.append((dict(request.headers), orjson.loads(await request.read())))
        return web.Response(status=status, text="nope" if status >= 300 else "ok")

    app = web.Application()
    app.router.add_post("/ingest", ingest)
    return app, received


async def test_posts_each_batch_as_a_json_array_with_headers(aiohttp_server) -> None:
    app, received = _collector()
    server = await aiohttp_server(app)
    sink = build_sink({"type": "http", "url": str(server.make_url("/ingest")),
                       "headers": {"Authorization": "Bearer t0k"}, "batch_size": 100, "timeout_s": 5})
    await sink.open()
    await sink.write([trace_record(0), trace_record(1)])
    await sink.close()
    ((headers, body),) = received
    assert body == [trace_record(0), trace_record(1)]
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"] == "application/json"
    assert sink.batch_size == 100


async def test_non_2xx_raises(aiohttp_server) -> None:
    app, _ = _collector(status=503)
    server = await aiohttp_server(app)
    sink = HttpSink(str(server.make_url("/ingest")))
    await sink.open()
    with pytest.raises(HttpSinkError) as raised:
        await sink.write([trace_record(0)])
    await sink.close()
    assert raised.value.status == 503


def test_build_sink_rejects_unknown_types_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="unknown sink type"):
        build_sink({"type": "kafka"})
    with pytest.raises(ValueError, match="'url'"):
        build_sink({"type": "http"})
