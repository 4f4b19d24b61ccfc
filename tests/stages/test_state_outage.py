"""Redis going away and coming back: on_error closed refuses with 503, open serves and flags."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.conftest import TEAM_KEY
from tests.forwarder import Forwarder

BODY = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def redis_proxy(redis_url):
    forwarder = Forwarder("127.0.0.1", 6379)
    await forwarder.start()
    yield forwarder
    if forwarder._server is not None:
        await forwarder.stop()


async def _gateway(make_gateway, forwarder: Forwarder, on_error: str):
    url = forwarder.url("redis://127.0.0.1:6379/0")
    state = f"{{backend: redis, redis_url: '{url}', on_error: {on_error}, key_prefix: 'wgtest-{uuid.uuid4().hex[:8]}'}}"
    return await make_gateway(extra=f"state: {state}\n", team_overrides={"budgets": "[{window: day, tokens: 100000}]"})


async def _post(gw):
    resp = await gw.client.post("/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    return resp, await resp.json()


async def test_closed_refuses_while_redis_is_down_and_recovers(make_gateway, redis_proxy):
    gw = await _gateway(make_gateway, redis_proxy, "closed")
    resp, _ = await _post(gw)
    assert resp.status == 200
    await redis_proxy.stop()
    resp, payload = await _post(gw)
    assert resp.status == 503 and payload["error"]["code"] == "state_unavailable"
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert record["outcome"] == "blocked"
    ready = await gw.client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["state"]["reachable"] is False
    await redis_proxy.start()
    resp, _ = await _post(gw)
    assert resp.status == 200
    assert (await gw.client.get("/readyz")).status == 200


async def test_open_serves_and_flags_while_redis_is_down(make_gateway, redis_proxy):
    gw = await _gateway(make_gateway, redis_proxy, "open")
    await redis_proxy.stop()
    resp, _ = await _post(gw)
    assert resp.status == 200
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    codes = {v["code"] for v in record["verdicts"]}
    assert "budget.state_unavailable" in codes and record["extra"]["budget"]["store"] == "memory_fallback"
    assert (await gw.client.get("/readyz")).status == 200  # open: ready, degraded
    await redis_proxy.start()
    resp, _ = await _post(gw)
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert resp.status == 200 and record["extra"]["budget"]["store"] == "primary"


async def test_a_hung_redis_is_an_outage_after_state_timeout_s(make_gateway):
    """A Redis that accepts connections and never answers: refused after ``state.timeout_s``, not hung."""
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        state = f"{{backend: redis, redis_url: 'redis://127.0.0.1:{port}/0', timeout_s: 0.3, on_error: closed}}"
        gw = await make_gateway(extra=f"state: {state}\n", team_overrides={"budgets": "[{window: day, tokens: 100000}]"})
        started = time.monotonic()
        resp, payload = await _post(gw)
        elapsed = time.monotonic() - started
        assert resp.status == 503 and payload["error"]["code"] == "state_unavailable"
        assert elapsed < 2.5  # the 3 s default would not be done by now
    finally:
        release.set()
        server.close()
        await server.wait_closed()
