"""Agent loop guards through HTTP with the openai SDK: each rule stops a scripted agent."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI, RateLimitError

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted, chat_body

TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]


def sdk(gw, session: str | None = None) -> AsyncOpenAI:
    headers = {"x-wardgate-session": session} if session else {}
    return AsyncOpenAI(base_url=gw.base_url, api_key=TEAM_KEY, max_retries=2, default_headers=headers)


async def test_identical_tool_calls_stop_a_looping_agent(make_gateway):
    gw = await make_gateway(policy="{loops: {max_identical_tool_calls: 3}}")
    call = {"id": "c", "type": "function", "function": {"name": "search", "arguments": '{"q": "same thing"}'}}
    gw.upstream.default = Scripted(body=chat_body(None, tool_calls=[call]))
    client = sdk(gw)
    messages = [{"role": "user", "content": "find it"}]
    turns = 0
    with pytest.raises(RateLimitError) as info:
        for _ in range(10):
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
            turns += 1
            tool_call = answer.choices[0].message.tool_calls[0]
            messages += [answer.choices[0].message.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": tool_call.id, "content": "no results"}]
    assert turns == 3  # three identical calls made; the fourth request is refused
    assert info.value.code == "loop_detected" and "identical_tool_calls" in info.value.message
    # x-should-retry: false — the SDK (max_retries=2) did not retry the 429
    assert len(gw.upstream.received) == 3
    record = await gw.trace(info.value.response.headers["x-wardgate-request-id"])
    assert record["verdicts"][-1]["code"] == "loops.identical_tool_calls"


async def test_too_many_tool_rounds(make_gateway):
    gw = await make_gateway(policy="{loops: {max_tool_rounds: 2, max_identical_tool_calls: 100}}")
    messages = [{"role": "user", "content": "go"}]
    for n in range(3):
        messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": f"c{n}", "type": "function",
                      "function": {"name": "search", "arguments": f'{{"q": "{n}"}}'}}]},
                     {"role": "tool", "tool_call_id": f"c{n}", "content": "r"}]
    with pytest.raises(RateLimitError) as info:
        await sdk(gw).chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert info.value.code == "loop_detected" and "max_tool_rounds" in info.value.message
    messages.append({"role": "user", "content": "thanks, go on"})  # the user spoke: the count restarts
    await sdk(gw).chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)


async def test_identical_requests_in_the_window(make_gateway):
    gw = await make_gateway(policy="{loops: {max_identical_requests: 2}}")
    client = sdk(gw)
    same = [{"role": "user", "content": "again"}]
    await client.chat.completions.create(model="gpt-4o-mini", messages=same)
    await client.chat.completions.create(model="gpt-4o-mini", messages=same)
    with pytest.raises(RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=same)
    assert "identical_requests" in info.value.message
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "different"}])


async def test_requests_per_session(make_gateway):
    gw = await make_gateway(policy="{loops: {max_requests_per_session: 3}}")
    client = sdk(gw, session="agent-run-1")
    for n in range(3):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{n}"}])
    with pytest.raises(RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "q4"}])
    assert "max_requests_per_session" in info.value.message
    await sdk(gw, session="agent-run-2").chat.completions.create(model="gpt-4o-mini",
                                                                 messages=[{"role": "user", "content": "q"}])


async def test_session_token_cap(make_gateway):
    gw = await make_gateway(policy="{loops: {max_session_tokens: 40}}")
    gw.upstream.default = Scripted(body=chat_body("ok", usage={"prompt_tokens": 10, "completion_tokens": 5,
                                                                "total_tokens": 15}))
    client = sdk(gw, session="capped")
    codes = []
    for n in range(4):
        try:
            await client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                                 messages=[{"role": "user", "content": f"turn {n}"}])
            codes.append(200)
        except RateLimitError as exc:
            codes.append(exc.code)
    assert codes[0] == 200 and "loop_detected" in codes
