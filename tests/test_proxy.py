"""The proxy end to end: the official openai SDK and raw HTTP against the real app and a fake upstream."""

from __future__ import annotations

import orjson
import pytest
from openai import (
    AsyncOpenAI,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
)

from tests.conftest import OTHER_KEY, TEAM_KEY, Gateway, gateway_yaml
from tests.fakes import Scripted, chat_body, chat_chunks
from wardgate.app import create_app
from wardgate.config.load import load_config_text

SPEC_FIELDS = {"schema", "request_id", "trace_id", "session_id", "time", "team", "key_id", "user", "route", "model",
               "upstream", "upstream_model", "stream", "status", "outcome", "verdicts", "redactions", "usage",
               "cost_usd", "timings_ms", "tags", "prompt", "request", "response", "error"}

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def sdk(gw, key: str = TEAM_KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


async def test_chat_completion_through_the_sdk(gateway):
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], temperature=0.3, user="u-42",
        extra_headers={"x-wardgate-tags": "feature=search,env=test", "x-wardgate-prompt": "answer@v7"},
        extra_body={"vendor_field": {"keep": [1, 2]}})
    answer = raw.parse()
    assert answer.choices[0].message.content == "hello from upstream"
    sent = gateway.upstream.last
    assert sent["body"]["model"] == "up-model"
    assert sent["body"]["temperature"] == 0.3 and sent["body"]["vendor_field"] == {"keep": [1, 2]}
    assert sent["headers"]["Authorization"] == "Bearer sk-upstream-secret"
    request_id = raw.headers["x-wardgate-request-id"]
    assert float(raw.headers["x-wardgate-overhead-ms"]) >= 0
    record = await gateway.trace(request_id)
    assert SPEC_FIELDS <= set(record)
    assert record["team"] == "search" and record["key_id"] == "search-dev" and record["user"] == "u-42"
    assert record["model"] == "gpt-4o-mini" and record["upstream"] == "fake" and record["upstream_model"] == "up-model"
    assert record["outcome"] == "served" and record["status"] == 200 and record["stream"] is False
    assert record["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert record["cost_usd"] == pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6)
    assert record["tags"] == {"feature": "search", "env": "test"} and record["prompt"] == "answer@v7"
    assert record["timings_ms"]["total"] >= record["timings_ms"]["overhead"] >= 0
    assert set(record["timings_ms"]["stages"]) >= {"authenticate", "parse", "route"}
    assert TEAM_KEY not in gateway.traces.read_text()


async def test_unchanged_body_is_forwarded_byte_for_byte(make_gateway):
    gw = await make_gateway()
    raw = b'{"model": "text-embedding-3-small",   "input": "same bytes", "encoding_format": "float"}'
    resp = await gw.client.post("/v1/embeddings", data=raw, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert resp.status == 200
    assert gw.upstream.last["raw"] == raw


async def test_streaming_relays_chunks_and_strips_the_usage_chunk(gateway):
    gateway.upstream.then(Scripted(chunks=chat_chunks("streamed answer text", size=4), chunk_delay_s=0.01))
    raw = await sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    stream = raw.parse()
    pieces, usage_chunks = [], 0
    async for chunk in stream:
        if not chunk.choices:
            usage_chunks += 1
        elif chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == "streamed answer text" and len(pieces) == 5
    assert usage_chunks == 0
    assert gateway.upstream.last["body"]["stream_options"] == {"include_usage": True}
    record = await gateway.trace(raw.headers["x-wardgate-request-id"])
    assert record["usage"]["total_tokens"] == 15 and record["response"]["content"] == "streamed answer text"


async def test_streaming_trace_has_usage_and_ttft(gateway):
    gateway.upstream.then(Scripted(chunks=chat_chunks("abc", usage={"prompt_tokens": 7, "completion_tokens": 3,
                                                                     "total_tokens": 10})))
    raw = await sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    stream = raw.parse()
    usage = [c.usage async for c in stream if c.usage]
    assert usage and usage[0].total_tokens == 10  # the client asked: it keeps the usage chunk
    record = await gateway.trace(raw.headers["x-wardgate-request-id"])
    assert record["stream"] is True and record["outcome"] == "served"
    assert record["usage"]["total_tokens"] == 10 and record["timings_ms"]["ttft"] is not None
    assert record["response"]["content"] == "abc"


async def test_chunks_arrive_before_the_answer_ends(gateway):
    gateway.upstream.then(Scripted(chunks=chat_chunks("x" * 40, size=4), chunk_delay_s=0.05))
    resp = await gateway.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True,
                                     "messages": [{"role": "user", "content": "hi"}]},
                                     headers={"Authorization": f"Bearer {TEAM_KEY}"})
    first = await resp.content.readuntil(b"\n\n")
    assert first.startswith(b"data: ")
    rest = await resp.read()
    assert rest.rstrip().endswith(b"data: [DONE]")


async def test_tool_call_round_trip(gateway):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    gateway.upstream.then(Scripted(body=chat_body(None, tool_calls=[call])), Scripted(body=chat_body("It is sunny.")))
    client = sdk(gateway)
    messages = [{"role": "user", "content": "weather in Paris?"}]
    first = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    tool_call = first.choices[0].message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21C"}]
    second = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "It is sunny."
    assert gateway.upstream.last["body"]["messages"][-1]["content"] == "sunny, 21C"
    assert gateway.upstream.last["body"]["tools"] == TOOLS


async def test_echo_upstream_speaks_openai(gateway):
    client = sdk(gateway)
    answer = await client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "ping"}])
    assert answer.choices[0].message.content == "echo: ping" and answer.usage.total_tokens > 0
    stream = await client.chat.completions.create(model="echo-model", stream=True,
                                                  messages=[{"role": "user", "content": "a longer streamed echo"}])
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: a longer streamed echo"
    called = await client.chat.completions.create(model="echo-model", tools=TOOLS,
                                                  messages=[{"role": "user", "content": "weather?"}])
    assert orjson.loads(called.choices[0].message.tool_calls[0].function.arguments) == {"city": "echo"}
    emb = await client.embeddings.create(model="echo-model", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 16
    comp = await client.completions.create(model="echo-model", prompt="hello")
    assert comp.choices[0].text == "echo: hello"
    resp = await client.responses.create(model="echo-model", input="hi there")
    assert resp.output_text == "echo: hi there"


async def test_embeddings_through_the_sdk(gateway):
    emb = await sdk(gateway).embeddings.create(model="text-embedding-3-small", input="vector me")
    assert emb.data[0].embedding == [0.1, 0.2]
    assert gateway.upstream.last["path"] == "/v1/embeddings"


async def test_models_lists_only_the_teams_models(gateway):
    names = [m.id async for m in sdk(gateway, OTHER_KEY).models.list()]
    assert names == ["echo-model"]
    assert len([m async for m in sdk(gateway).models.list()]) == 3


async def _refused(gateway, exc_type, **kwargs):
    with pytest.raises(exc_type) as info:
        await sdk(gateway, kwargs.pop("key", TEAM_KEY)).chat.completions.create(**kwargs)
    request_id = info.value.response.headers["x-wardgate-request-id"]
    return info.value, await gateway.trace(request_id)


async def test_refusals_use_the_openai_envelope_and_are_traced(gateway):
    msgs = [{"role": "user", "content": "x"}]
    err, record = await _refused(gateway, AuthenticationError, key="wrong-key-123", model="gpt-4o-mini", messages=msgs)
    assert err.code == "invalid_api_key" and record["team"] is None and record["status"] == 401
    assert record["outcome"] == "blocked" and SPEC_FIELDS <= set(record)
    err, record = await _refused(gateway, PermissionDeniedError, key=OTHER_KEY, model="gpt-4o-mini", messages=msgs)
    assert err.code == "model_not_allowed" and record["team"] == "other" and record["status"] == 403
    err, record = await _refused(gateway, NotFoundError, model="no-such-model", messages=msgs)
    assert err.code == "model_not_found" and record["status"] == 404
    err, record = await _refused(gateway, BadRequestError, model="gpt-4o-mini", messages="not a list")
    assert err.code == "invalid_request" and "messages" in err.message and record["status"] == 400
    assert len(gateway.upstream.received) == 0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"model": 5, "messages": []}', b"\xff\xfe",
                                  b'{"model": "gpt-4o-mini", "messages": [{"role": "robot"}]}',
                                  b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": "yes"}'])
async def test_malformed_bodies_get_400_and_a_record(gateway, body):
    resp = await gateway.client.post("/v1/chat/completions", data=body, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert resp.status == 400
    payload = await resp.json()
    assert payload["error"]["code"] == "invalid_request" and payload["error"]["message"]
    record = await gateway.trace(resp.headers["x-wardgate-request-id"])
    assert record["status"] == 400 and record["outcome"] == "error" and record["team"] == "search"


async def test_oversized_body_gets_413(gateway):
    big = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 300_000}]})
    resp = await gateway.client.post("/v1/chat/completions", data=big, headers={"Authorization": f"Bearer {TEAM_KEY}"})
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "request_too_large"
    record = await gateway.trace(resp.headers["x-wardgate-request-id"])
    assert record["status"] == 413


async def test_unknown_route_is_404_and_traced(gateway):
    resp = await gateway.client.get("/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    await gateway.trace(resp.headers["x-wardgate-request-id"])
    health = await gateway.client.get("/healthz")
    assert health.status == 200 and (await gateway.client.get("/readyz")).status == 200
    assert all(r["route"] not in ("/healthz", "/readyz") for r in gateway.records())


async def test_an_upstream_cookie_is_never_sent_on_a_later_request(aiohttp_client, fake_upstream, tmp_path):
    # By name, not by IP: aiohttp's default cookie jar ignores cookies from IP addresses.
    url = fake_upstream.url.replace("127.0.0.1", "localhost")
    client = await aiohttp_client(create_app(load_config_text(gateway_yaml(url, tmp_path / "t.jsonl"), env={})),
                                  server_kwargs={"host": "127.0.0.1"})
    gw = Gateway(client, fake_upstream, tmp_path / "t.jsonl")
    fake_upstream.then(Scripted(body=chat_body("hi"), headers={"Set-Cookie": "session=team-search-secret; Path=/"}))
    msgs = [{"role": "user", "content": "x"}]
    for _ in range(2):
        await sdk(gw).chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert len(fake_upstream.received) == 2
    assert all("cookie" not in {k.lower() for k in r["headers"]} for r in fake_upstream.received)


async def test_upstream_failure_is_retried_then_502(gateway):
    gateway.upstream.then(Scripted(status=500, body={"error": {"message": "boom"}}), Scripted(body=chat_body("ok")))
    answer = await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "ok"
    gateway.upstream.then(*[Scripted(status=503, body={"error": {"message": "down"}})] * 2)
    with pytest.raises(Exception) as info:
        await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502 and info.value.code == "upstream_error"
    record = await gateway.trace(info.value.response.headers["x-wardgate-request-id"])
    assert record["outcome"] == "error" and len(record["attempts"]) == 2


async def test_upstream_client_error_is_relayed(gateway):
    gateway.upstream.then(Scripted(status=400, body={"error": {"message": "bad temperature", "type": "invalid_request_error",
                                                               "param": "temperature", "code": "bad_param"}}))
    with pytest.raises(BadRequestError) as info:
        await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "bad_param" and len(gateway.upstream.received) == 1


async def test_traceparent_is_propagated(gateway):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    resp = await gateway.client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "x"}]}, headers={"Authorization": f"Bearer {TEAM_KEY}", "traceparent": parent})
    sent = gateway.upstream.last["headers"]["traceparent"]
    assert sent.startswith("00-0af7651916cd43dd8448eb211c80319c-") and sent != parent
    record = await gateway.trace(resp.headers["x-wardgate-request-id"])
    assert record["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


async def test_session_header_and_derived_session(gateway):
    headers = {"Authorization": f"Bearer {TEAM_KEY}"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}
    a = await gateway.client.post("/v1/chat/completions", json=body, headers=headers)
    body["messages"].append({"role": "assistant", "content": "a"})
    b = await gateway.client.post("/v1/chat/completions", json=body, headers=headers)
    c = await gateway.client.post("/v1/chat/completions", json=body, headers={**headers, "x-wardgate-session": "run-7"})
    ra, rb, rc = [await gateway.trace(r.headers["x-wardgate-request-id"]) for r in (a, b, c)]
    assert ra["session_id"] == rb["session_id"] and rc["session_id"] == "run-7"


async def test_paths_outside_v1_get_openai_errors_not_html(gateway):
    stray = await gateway.client.get("/nothing/here")
    assert stray.status == 404 and stray.content_type == "application/json"
    assert (await stray.json())["error"]["code"] == "not_found"
    for method, path in (("POST", "/healthz"), ("DELETE", "/admin/traces"), ("GET", "/admin/reload"),
                         ("POST", "/admin/traces/req_123")):
        resp = await gateway.client.request(method, path)
        assert resp.status == 405, (method, path)
        assert (await resp.json())["error"]["code"] == "method_not_allowed"
