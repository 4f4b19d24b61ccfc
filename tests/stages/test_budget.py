"""Budgets, rate limits and per-user budgets through HTTP, with the memory store and with Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from openai import AsyncOpenAI, RateLimitError

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted, chat_body, chat_chunks
from wardgate.tokens import count_messages

MESSAGES = [{"role": "user", "content": "hello budget"}]
MAX_TOKENS = 5
PROMPT = count_messages(MESSAGES, "up-model")
PER_REQUEST = PROMPT + MAX_TOKENS  # the reservation; the fake upstream reports exactly this much usage
USAGE = {"prompt_tokens": PROMPT, "completion_tokens": MAX_TOKENS, "total_tokens": PER_REQUEST}


async def make(make_gateway, budgets: str, user_budgets: str = "[]", state: str = "{backend: memory}",
               policy: str = "{loops: {action: off}}", clock: Any = None):
    """The team ``search`` with these budgets; loop guards off (these tests repeat one request)."""
    gw = await make_gateway(extra=f"state: {state}\n", policy=policy,
                            team_overrides={"budgets": budgets, "user_budgets": user_budgets}, clock=clock)
    gw.upstream.default = Scripted(body=chat_body("ok", usage=USAGE))
    return gw


def client(gw, key: str = TEAM_KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


async def _one(gw, user: str | None = None) -> tuple[int, str | None]:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    if user:
        body["user"] = user
    resp = await gw.client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    payload = await resp.json()
    code = payload["error"]["code"] if resp.status != 200 else None
    return resp.status, code


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_concurrent_requests_never_pass_the_daily_token_budget(make_gateway, request, backend):
    state = "{backend: memory}"
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        state = f"{{backend: redis, redis_url: '{url}', key_prefix: 'wgtest-{uuid.uuid4().hex[:8]}'}}"
    budget_requests = 37
    gw = await make(make_gateway, f"[{{window: day, tokens: {PER_REQUEST * budget_requests}}}]", state=state)
    gw.upstream.default = Scripted(body=chat_body("ok", usage=USAGE), delay_s=0.01)
    results = await asyncio.gather(*[_one(gw) for _ in range(300)])
    admitted = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(admitted) * PER_REQUEST <= PER_REQUEST * budget_requests
    assert len(admitted) == budget_requests  # exact: no overspend, no lost capacity
    assert {r for r in refused} == {(429, "budget_exceeded")}
    await asyncio.sleep(0.5)
    records = [r for r in gw.records() if r["schema"] == "wardgate.trace/1"]
    assert sum(1 for r in records if r["status"] == 429) == len(refused)
    assert sum(1 for r in records if r["status"] == 200) == len(admitted)


async def test_budget_refusal_headers_and_trace(make_gateway):
    gw = await make(make_gateway, f"[{{window: day, tokens: {PER_REQUEST}}}]")
    raw = await client(gw).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                     max_tokens=MAX_TOKENS)
    assert raw.headers["x-ratelimit-limit-tokens"] == str(PER_REQUEST)
    assert raw.headers["x-ratelimit-remaining-tokens"] == "0"
    with pytest.raises(RateLimitError) as info:
        await client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
    resp = info.value.response
    assert info.value.code == "budget_exceeded" and resp.headers["x-should-retry"] == "false"
    assert int(resp.headers["retry-after"]) > 0
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert record["outcome"] == "blocked" and record["verdicts"][-1]["code"] == "budget.exceeded"


async def test_settlement_uses_real_usage(make_gateway):
    # The reservation assumes the default completion cap; settlement charges what the upstream reported.
    gw = await make(make_gateway, "[{window: day, tokens: 100000}]")
    raw = await client(gw).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    record = await gw.trace(raw.headers["x-wardgate-request-id"])
    assert record["extra"]["budget"]["estimate"]["completion_tokens"] == 4096
    assert record["extra"]["budget"]["settled"] == {"prompt_tokens": PROMPT, "completion_tokens": MAX_TOKENS}
    second = await client(gw).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                        max_tokens=MAX_TOKENS)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 100000 - 2 * PER_REQUEST


async def test_upstream_failure_releases_the_reservation(make_gateway):
    gw = await make(make_gateway, f"[{{window: day, tokens: {PER_REQUEST}}}]")
    gw.upstream.then(*[Scripted(status=500, body={"error": {"message": "down"}})] * 2)
    assert await _one(gw) == (502, "upstream_error")
    assert await _one(gw) == (200, None)  # the failed request's reservation was released


async def test_client_disconnect_mid_stream_settles_what_was_delivered(make_gateway):
    gw = await make(make_gateway, "[{window: day, tokens: 100000}]")
    gw.upstream.then(Scripted(chunks=chat_chunks("word " * 200, size=5), chunk_delay_s=0.01))
    resp = await gw.client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {TEAM_KEY}"},
                                json={"model": "gpt-4o-mini", "stream": True, "messages": MESSAGES})
    for _ in range(6):  # the role chunk, then some words
        await resp.content.readuntil(b"\n\n")
    request_id = resp.headers["x-wardgate-request-id"]
    resp.close()
    record = await gw.trace(request_id)
    assert record["outcome"] == "error" and record["error"]["code"] == "client_closed"
    settled = record["extra"]["budget"]["settled"]
    assert settled["prompt_tokens"] == PROMPT and 0 < settled["completion_tokens"] < 200
    raw = await client(gw).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                     max_tokens=MAX_TOKENS)
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 100000 - PROMPT - settled["completion_tokens"] - PER_REQUEST


async def test_rate_limit_is_smooth(make_gateway):
    clock = _Clock(time.time())  # the requests' arrival time: a slow machine must not refill the bucket
    gw = await make(make_gateway, "[{window: minute, requests: 120}]", clock=clock)
    statuses = [await _one(gw) for _ in range(121)]
    assert statuses[:120] == [(200, None)] * 120 and statuses[120] == (429, "rate_limited")
    with pytest.raises(RateLimitError) as info:
        await client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert info.value.code == "rate_limited" and info.value.response.headers["retry-after"] == "1"
    clock.now += 0.55  # 120/min refills one request every 0.5 s: one more, not a whole window
    assert await _one(gw) == (200, None)
    assert (await _one(gw))[0] == 429


async def test_per_user_budgets(make_gateway):
    gw = await make(make_gateway, "[]", user_budgets=f"[{{window: day, tokens: {PER_REQUEST * 2}}}]")
    assert [await _one(gw, "alice") for _ in range(3)] == [(200, None), (200, None), (429, "budget_exceeded")]
    assert await _one(gw, "bob") == (200, None)


class _Clock:
    """The gateway's wall clock, moved by the test (a fake at the boundary: time itself)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_calendar_windows_roll_over(make_gateway):
    clock = _Clock(1_767_225_540.0)  # 2025-12-31 23:59:00 UTC: the hour, the day and the month end in 60 s
    gw = await make_gateway(extra="state: {backend: memory}\n", policy="{loops: {action: off}}", clock=clock,
                            team_overrides={"budgets": "[{window: hour, requests: 2}, {window: month, requests: 3}]"})
    assert [await _one(gw) for _ in range(3)] == [(200, None), (200, None), (429, "budget_exceeded")]
    resp = await gw.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                                headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert resp.status == 429 and resp.headers["retry-after"] == "60"  # until the hour (and year) turns
    clock.now += 61  # 2026-01-01 00:00:01: a new hour and a new month
    assert [await _one(gw) for _ in range(3)] == [(200, None), (200, None), (429, "budget_exceeded")]
    clock.now += 3600  # the next hour; the month's 3 requests are not used up yet
    assert await _one(gw) == (200, None)
    assert await _one(gw) == (429, "budget_exceeded")  # month: 3 of 3


async def test_the_encodings_are_loaded_when_the_gateway_starts_not_on_the_first_request(make_gateway):
    from wardgate import tokens

    tokens._encoding.cache_clear()
    await make(make_gateway, "[{window: day, tokens: 100000}]")
    loaded = tokens._encoding.cache_info().currsize
    assert loaded >= 1  # before any request: the first one does not pay the ~0.3 s table load
