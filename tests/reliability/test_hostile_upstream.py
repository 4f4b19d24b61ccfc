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
