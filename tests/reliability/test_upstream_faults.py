"""Chaos: each upstream fault gives the client the truth, retries and falls back as configured,
settles the budget, and leaves one trace record that tells what happened."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.reliability.chaos import Fault
from tests.reliability.conftest import post, team_tokens


async def _error(resp) -> tuple[int, str]:
    return resp.status, (await resp.json())["error"]["code"]


async def _record(gw, resp) -> dict:
    return await gw.trace(resp.headers["x-wardgate-request-id"])


def _tried(record: dict) -> list[tuple[str, str | int | None]]:
    return [(a["upstream"], a.get("error") or a.get("status")) for a in record["attempts"]]


async def test_connection_refused_retries_then_falls_back(gw):
    resp = await post(gw, "gone")
    assert resp.status == 200
    record = await _record(gw, resp)
    assert _tried(record) == [("dead", "ClientConnectorError"), ("dead", "ClientConnectorError"), ("echo", 200)]
    assert record["outcome"] == "served" and record["upstream"] == "echo" and record["model"] == "gone"
    used, reserved = await team_tokens(gw)
    assert used == record["usage"]["total_tokens"] > 0 and reserved == 0


async def test_connection_refused_without_fallback_is_a_502_and_releases_the_budget(gw):
    resp = await post(gw, "gone-solo")
    assert await _error(resp) == (502, "upstream_error")
    record = await _record(gw, resp)
    assert record["outcome"] == "error" and record["status"] == 502 and record["error"]["code"] == "upstream_error"
    assert [e for _, e in _tried(record)] == ["ClientConnectorError"] * 2
    assert await team_tokens(gw) == (0, 0)


async def test_connection_reset_is_retried_before_the_first_byte(gw):
    gw.upstream.then(Fault("reset"))
    resp = await post(gw, "solo")
    assert resp.status == 200 and (await resp.json())["choices"][0]["message"]["content"] == "hello from upstream"
    record = await _record(gw, resp)
    assert _tried(record)[1] == ("primary", 200) and _tried(record)[0][1] in {"ServerDisconnectedError", "ClientOSError"}
    assert record["attempts"][0]["retry_in_s"] > 0 and record["attempts"][1]["served"] is True


async def test_5xx_after_retries_shows_the_upstreams_message_without_secrets(gw):
    leak = "Incorrect API key provided: sk-upstream-secret-1234"
    gw.upstream.then(*[Fault("status", 500, message=leak)] * 3)
    resp = await post(gw, "solo")
    status, code = await _error(resp)
    assert (status, code) == (502, "upstream_error")
    text = await resp.text()
    assert "Incorrect API key provided" in text and "sk-upstream-secret-1234" not in text
    record = await _record(gw, resp)
    assert _tried(record) == [("primary", 500)] * 3 and gw.upstream.requests == 3
    assert await team_tokens(gw) == (0, 0)
    assert "sk-upstream-secret-1234" not in gw.traces.read_text()


async def test_429_honours_retry_after(gw):
    gw.upstream.then(Fault("status", 429, retry_after="0.3"))
    started = time.perf_counter()
    resp = await post(gw, "solo")
    assert resp.status == 200 and time.perf_counter() - started >= 0.3
    record = await _record(gw, resp)
    assert _tried(record) == [("primary", 429), ("primary", 200)] and record["attempts"][0]["retry_in_s"] == 0.3


async def test_a_long_retry_after_is_not_waited_for_the_fallback_serves(gw):
    gw.upstream.then(Fault("status", 429, retry_after="120"))
    started = time.perf_counter()
    resp = await post(gw, "main")
    assert resp.status == 200 and time.perf_counter() - started < 2.0
    record = await _record(gw, resp)
    assert _tried(record) == [("primary", 429), ("echo", 200)] and record["upstream"] == "echo"


async def test_slow_first_byte_times_out_each_attempt_then_504(make_chaos_gateway):
    gw = await make_chaos_gateway(retries=1)
    gw.upstream.then(Fault("slow_first_byte", delay_s=1.0), Fault("slow_first_byte", delay_s=1.0))
    resp = await post(gw, "solo", stream=True)
    assert await _error(resp) == (504, "upstream_timeout")
    record = await _record(gw, resp)
    assert [e for _, e in _tried(record)] == ["timeout", "timeout"]
    assert all(a["ms"] < 1000 for a in record["attempts"])  # ttfb_timeout_s: 0.4, not the upstream's 1 s
    assert record["outcome"] == "error" and await team_tokens(gw) == (0, 0)


async def test_slow_first_byte_falls_back(make_chaos_gateway):
    gw = await make_chaos_gateway(retries=0)
    gw.upstream.then(Fault("slow_first_byte", delay_s=1.0))
    resp = await post(gw, "main")
    assert resp.status == 200
    record = await _record(gw, resp)
    assert _tried(record) == [("primary", "timeout"), ("echo", 200)] and record["upstream"] == "echo"


async def test_stream_that_stalls_ends_with_one_error_event_and_settles_what_was_delivered(gw):
    gw.upstream.then(Fault("stall", after_chunks=3, delay_s=1.5))
    resp = await post(gw, "solo", stream=True)
    assert resp.status == 200
    events = [e for e in (await resp.text()).split("\n\n") if e.startswith("data: ")]
    payloads = [orjson.loads(e[6:]) for e in events if e != "data: [DONE]"]
    errors = [p for p in payloads if "error" in p]
    assert len(errors) == 1 and errors[0]["error"]["code"] == "upstream_timeout" and payloads[-1] is errors[0]
    assert "data: [DONE]" not in events
    record = await _record(gw, resp)
    assert record["outcome"] == "error" and record["error"]["code"] == "upstream_timeout"
    assert record["response"]["content"] == "one two "  # the two content chunks before the stall
    used, reserved = await team_tokens(gw)
    settled = record["extra"]["budget"]["settled"]
    assert reserved == 0 and used == settled["prompt_tokens"] + settled["completion_tokens"] > settled["prompt_tokens"]


async def test_truncated_json_is_retried_then_502(gw):
    gw.upstream.then(*[Fault("truncated_json")] * 3)
    resp = await post(gw, "solo")
    assert await _error(resp) == (502, "upstream_error")
    record = await _record(gw, resp)
    assert [e for _, e in _tried(record)] == ["invalid_body"] * 3 and await team_tokens(gw) == (0, 0)


async def test_body_cut_by_the_connection_is_retried(gw):
    gw.upstream.then(Fault("truncated_body"))
    resp = await post(gw, "solo")
    assert resp.status == 200
    record = await _record(gw, resp)
    assert _tried(record)[0][1] in {"ClientPayloadError", "invalid_body"} and _tried(record)[1] == ("primary", 200)


async def test_circuit_breaker_opens_fails_over_in_microseconds_and_closes_after_a_probe(gw):
    gw.upstream.then(*[Fault("status", 503)] * 3)
    assert (await post(gw, "solo")).status == 502  # three failures in a row: the breaker opens
    resp = await post(gw, "solo")
    assert await _error(resp) == (502, "upstream_error") and gw.upstream.requests == 3
    record = await _record(gw, resp)
    assert _tried(record) == [("primary", "circuit_open")] and "circuit open" in record["error"]["message"]
    resp = await post(gw, "main")
    record = await _record(gw, resp)
    assert resp.status == 200 and _tried(record) == [("primary", "circuit_open"), ("echo", 200)]
    await asyncio.sleep(0.35)  # the cool-down: one probe goes through, succeeds, the breaker closes
    assert (await post(gw, "solo")).status == 200 and (await post(gw, "solo")).status == 200
    assert gw.upstream.requests == 5


async def test_client_disconnect_cancels_the_upstream_and_a_slow_client_bounds_buffering(gw):
    gw.upstream.then(Fault("endless"))
    resp = await post(gw, "solo", stream=True)
    assert resp.status == 200
    await resp.content.readexactly(4096)  # the client reads a little, then stops reading
    await asyncio.sleep(0.5)
    at_pause = gw.upstream.bytes_sent
    await asyncio.sleep(0.5)
    # Back-pressure: with the client not reading, the upstream is not read either (bounded by the
    # socket buffers on the way, a few MB on loopback), instead of the gateway buffering it all.
    assert gw.upstream.bytes_sent - at_pause < 256 * 1024 and at_pause < 64 * 1024 * 1024
    request_id = resp.headers["x-wardgate-request-id"]
    resp.close()
    await asyncio.wait_for(gw.upstream.hung_up.wait(), 2.0)  # the upstream call is cancelled promptly
    record = await gw.trace(request_id)
    assert record["outcome"] == "error" and record["error"]["code"] == "client_closed"
    assert (await team_tokens(gw))[1] == 0
