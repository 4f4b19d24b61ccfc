"""A scripted fake upstream: a real HTTP server on loopback that records what it received."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Scripted:
    """One scripted answer. ``body`` for JSON; ``chunks`` (dicts or raw bytes) for SSE."""

    status: int = 200
    body: Any = None
    chunks: list[Any] | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    """Close the connection after this many chunks (a mid-stream failure)."""


def chat_body(content: str | None = "hello from upstream", tool_calls: list[dict] | None = None,
              usage: dict | None = None, model: str = "up-model") -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:8], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def chat_chunks(text: str, size: int = 5, usage: dict | None = None, model: str = "up-model",
                tool_calls: list[dict] | None = None) -> list[dict]:
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": model}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for i in range(0, len(text), size):
        out.append({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + size]}, "finish_reason": None}]})
    for n, call in enumerate(tool_calls or ()):
        out.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]},
                    "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_calls else "stop"}]})
    out.append({**base, "choices": [], "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    return out


class FakeUpstream:
    """Answers from a script (FIFO), else a default answer; records every request."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: list[Scripted] = []
        self.default = Scripted(body=chat_body())
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    def then(self, *answers: Scripted) -> FakeUpstream:
        self.script.extend(answers)
        return self

    @property
    def last(self) -> dict[str, Any]:
        return self.received[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        self.received.append({"path": request.path, "headers": dict(request.headers), "body": body, "raw": raw})
        answer = self.script.pop(0) if self.script else self._default_for(request.path, body)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.chunks is None:
            return web.Response(status=answer.status, body=orjson.dumps(answer.body), content_type="application/json",
                                headers=answer.headers)
        resp = web.StreamResponse(status=answer.status, headers={"content-type": "text/event-stream", **answer.headers})
        await resp.prepare(request)
        for n, chunk in enumerate(answer.chunks):
            if answer.drop_after is not None and n >= answer.drop_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if answer.chunk_delay_s:
                await asyncio.sleep(answer.chunk_delay_s)
            data = chunk if isinstance(chunk, bytes) else b"data: " + orjson.dumps(chunk) + b"\n\n"
            await resp.write(data)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def _default_for(self, path: str, body: Any) -> Scripted:
        if path.endswith("/embeddings"):
            return Scripted(body={"object": "list", "model": "emb", "data": [{"object": "embedding", "index": 0,
                                  "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 2, "total_tokens": 2}})
        if isinstance(body, dict) and body.get("stream"):
            return Scripted(chunks=chat_chunks("hello from upstream"))
        return self.default


async def on_loopback(aiohttp_server: Any, fake: Any) -> Any:
    """Start a fake upstream's ``app`` on 127.0.0.1 and set its ``url`` (the ``/v1`` base)."""
    server = await aiohttp_server(fake.app, host="127.0.0.1")
    fake.url = str(server.make_url("/v1"))
    return fake
