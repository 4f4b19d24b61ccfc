"""Every OpenAI field with a value of the wrong type, on every route, through both upstream kinds.

The answer may be a 400 (the gateway refused it) or a 200 (it passed the field on, as a proxy does
with fields it does not own); it is never a 5xx, and every refusal is OpenAI's JSON error envelope.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.conftest import TEAM_KEY

AUTH = {"Authorization": f"Bearer {TEAM_KEY}", "content-type": "application/json"}
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
FIELDS = ("model", "messages", "input", "prompt", "stream", "stream_options", "user", "tools", "tool_choice",
          "max_tokens", "n", "response_format", "temperature", "metadata", "instructions")
WRONG = (None, 0, -1, 1.5, True, "", "x", [], {}, [1], [None], {"a": 1}, [{"role": "user"}],
         [{"type": "function"}], [{"type": "function", "function": {"name": 5, "parameters": "x"}}])
MESSAGES = ([{"role": "user"}], [{"role": "user", "content": [{"type": "text"}]}],
            [{"role": "user", "content": [{"type": "text", "text": 5}]}], [{"role": "assistant", "tool_calls": "x"}],
            [{"role": "assistant", "tool_calls": [1]}], [{"role": "assistant", "tool_calls": [{"function": "x"}]}],
            [{"role": "assistant", "tool_calls": [{"id": 1, "function": {"name": 5, "arguments": {}}}]}],
            [{"role": "tool", "content": None, "tool_call_id": 5}], [{"role": "user", "content": "hi", "name": {}}])


def _bodies(model: str) -> list[bytes]:
    base = {"model": model, "messages": [{"role": "user", "content": "hi"}], "input": "hi", "prompt": "hi"}
    out = [orjson.dumps({**base, field: value}) for field in FIELDS for value in WRONG]
    out += [orjson.dumps({**base, "messages": m, "stream": s}) for m in MESSAGES for s in (False, True)]
    return out


@pytest.mark.parametrize("model", ["gpt-4o-mini", "echo-model"])
async def test_no_wrong_typed_field_gets_a_5xx(gateway, model):
    bodies = _bodies(model)
    failures = []
    semaphore = asyncio.Semaphore(16)

    async def send(route: str, body: bytes) -> None:
        async with semaphore:
            resp = await gateway.client.post(route, data=body, headers=AUTH)
            raw = await resp.read()
        if resp.status >= 500 or resp.status >= 400 and not (resp.content_type == "application/json" and "error" in orjson.loads(raw)):
            failures.append((route, body[:160], resp.status, raw[:200]))

    await asyncio.gather(*(send(route, body) for route in ROUTES for body in bodies))
    assert not failures, failures[:5]
