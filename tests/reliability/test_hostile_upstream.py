"""An upstream that answers 200 with the wrong shapes: every guardrail and a token budget on.

A broken upstream is the gateway's problem to contain: the client gets the body as it came (when it is
a JSON object the guardrails could read) or a 502 ``upstream_error``, never a 500, and every request
leaves a trace record.
"""

from __future__ import annotations

import pytest

from tests.conftest import TEAM_KEY
from tests.fakes import Scripted

AUTH = {"Authorization": f"Bearer {TEAM_KEY}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
WHOLE = [
    {"choices": "x"}, {"choices": [1]}, {"choices": [{"message": "x"}]}, {"choices": [{"message": None}]},
    {"choices": [{"message": {"content": 5}}]}, {"choices": [{"message": {"content": ["a", {"text": 1}]}}]},
    {"choices": [{"message": {"tool_calls": "x"}}]}, {"choices": [{"message": {"tool_calls": 5}}]},
    {"choices": [{"message": {"tool_calls": [1, None]}}]},
    {"choices": [{"message": {"tool_calls": [{"function": "x"}]}}]},
    {"choices": [{"message": {"tool_calls": [{"id": 1, "function": {"name": 5, "arguments": {"a": 1}}}]}}]},
    {"usage": "x"}, {"usage": {"prompt_tokens": "a", "completion_tokens": None}},
    {"usage": {"prompt_tokens": -5, "completion_tokens": 1e30}}, {"usage": {"prompt_tokens": 2**70}},
    {"choices": [{"message": {"content": "ok"}, "finish_reason": 7}], "usage": [1]}, {}, {"error": "x"},
    {"output": "x"}, {"output": [1, {"content": 5}]}, {"data": "x"},
]
STREAMED = [
    [b"data: not json\n\n"], [b"data: [1]\n\n"], [b"data: 5\n\n"], [{"choices": 5}], [{"choices": [None]}],
    [{"choices": [{"delta": "x"}]}], [{"choices": [{"delta": {"content": 5}}]}],
    [{"choices": [{"delta": {"tool_calls": "x"}}]}], [{"choices": [{"delta": {"tool_calls": 5}}]}],
    [{"choices": [{"delta": {"tool_calls": [{"index": "a"}]}}]}], [{"choices": [{"delta": {"tool_calls": [{"index": {}}]}}]}],
    [{"choices": [{"delta": {"tool_calls": [{"index": 0, "function": "x"}]}, "finish_reason": "stop"}]}],
    [{"choices": [{"delta": {"content": "x", "tool_calls": 5}, "finish_reason": "stop"}]}],
    [{"choices": [{"delta": {"tool_calls": [{"index": 99999999, "function": {"arguments": 5}}]}}]}],
    [{"choices": [], "usage": "x"}], [{"choices": [], "usage": {"prompt_tokens": "a", "completion_tokens": []}}],
    [b"event: weird\ndata: {\n\n", b": comment only\n\n", b"data:\n\n", b"\n\n\n"],
]


@pytest.mark.parametrize("answer", WHOLE, ids=[str(a)[:40] for a in WHOLE])
async def test_a_misshapen_whole_answer_is_never_a_500(make_gateway, answer):
    gw = await make_gateway(team_overrides={"budgets": "[{window: day, tokens: 1000000}]"})
    gw.upstream.then(Scripted(body=answer))
    resp = await gw.client.post("/v1/chat/completions", json=BODY, headers=AUTH)
    assert resp.status < 500 or (resp.status == 502 and (await resp.json())["error"]["code"] == "upstream_error")
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert record["status"] == resp.status


@pytest.mark.parametrize("chunks", STREAMED, ids=[str(c)[:40] for c in STREAMED])
@pytest.mark.parametrize("content", ["hi", "mail me at ada@example.com"], ids=["plain", "with-pii"])
async def test_a_misshapen_stream_is_never_a_500(make_gateway, chunks, content):
    # With PII in the request the answer goes through the restore filter, which re-encodes each event.
    gw = await make_gateway(team_overrides={"budgets": "[{window: day, tokens: 1000000}]"})
    gw.upstream.then(Scripted(chunks=chunks))
    body = {**BODY, "messages": [{"role": "user", "content": content}], "stream": True}
    resp = await gw.client.post("/v1/chat/completions", json=body, headers=AUTH)
    text = await resp.text()
    assert resp.status == 200, text
    assert "internal_error" not in text
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert record["outcome"] in ("served", "error", "blocked")


OTHER_ROUTES = {"/v1/responses": {"model": "gpt-4o-mini", "input": "mail ada@example.com"},
                "/v1/completions": {"model": "gpt-4o-mini", "prompt": "mail ada@example.com"},
                "/v1/embeddings": {"model": "text-embedding-3-small", "input": "mail ada@example.com"}}
OTHER_WHOLE = [
    {"output": 5}, {"output": [{"type": "message", "content": 5}]}, {"output": [{"type": "message", "content": [5, {"text": 5}]}]},
    {"output": [{"type": "function_call", "name": {}, "arguments": []}]}, {"status": [], "output": []},
    {"choices": [{"text": 5}]}, {"choices": [{"text": None, "finish_reason": []}]}, {"data": 5}, {"data": [5]},
    {"usage": {"input_tokens": "x", "output_tokens": []}}, {"usage": {"total_tokens": 5}}, [], 5, "x",
]
OTHER_STREAMED = [
    [{"type": 5}], [{"type": "response.output_text.delta", "delta": 5}], [{"type": "response.output_text.delta"}],
    [{"type": "response.completed", "response": 5}], [{"type": "response.completed", "response": {"usage": "x"}}],
    [{"type": "response.completed", "response": {"usage": {"input_tokens": "a"}}}],
    [{"choices": [{"text": 5}]}], [{"choices": [{"text": "x", "finish_reason": "stop"}]}],
]
OTHER_CASES = ([(route, answer, False) for route in OTHER_ROUTES for answer in OTHER_WHOLE]
               + [(route, chunks, True) for route in ("/v1/responses", "/v1/completions") for chunks in OTHER_STREAMED])


@pytest.mark.parametrize(("route", "answer", "stream"), OTHER_CASES,
                         ids=[f"{r}-{str(a)[:30]}-{'stream' if s else 'whole'}" for r, a, s in OTHER_CASES])
async def test_the_other_routes_contain_a_misshapen_answer_too(make_gateway, route, answer, stream):
    gw = await make_gateway(team_overrides={"budgets": "[{window: day, tokens: 1000000}]"})
    gw.upstream.then(Scripted(chunks=answer) if stream else Scripted(body=answer))
    resp = await gw.client.post(route, json={**OTHER_ROUTES[route], "stream": stream}, headers=AUTH)
    text = await resp.text()
    assert resp.status < 500 or resp.status == 502, text
    assert "internal_error" not in text, text
    await gw.trace(resp.headers["x-wardgate-request-id"])


async def test_an_event_that_never_ends_is_cut_at_8_mb_not_buffered_without_bound(make_gateway):
    gw = await make_gateway()
    gw.upstream.then(Scripted(chunks=[b"data: " + b"x" * (9 * 1024 * 1024)]))  # no blank line: one endless event
    resp = await gw.client.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=AUTH)
    text = await resp.text()
    assert resp.status == 200 and text.count("data: ") == 1 and '"code":"upstream_error"' in text
    assert "EventTooLarge" in text and len(text) < 1000  # the error event only: nothing of the 9 MB
    record = await gw.trace(resp.headers["x-wardgate-request-id"])
    assert record["outcome"] == "error" and record["error"]["code"] == "upstream_error"
