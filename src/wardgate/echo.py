"""The built-in ``echo`` upstream: answers locally like an OpenAI server, streaming included.

For the demo and tests (no network). It repeats the last user message, calls the first offered tool
with arguments that satisfy its schema's required properties, and answers a tool result by quoting it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from wardgate.config.schema import UpstreamConfig
from wardgate.tokens import content_text, count_messages, count_tokens
from wardgate.upstream import Reply

__all__ = ["EchoUpstream"]

_CHUNK_CHARS = 12


def _example(schema: Any) -> Any:
    """A value that satisfies a simple JSON Schema (required properties only)."""
    if not isinstance(schema, dict):
        return "echo"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else "string"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {name: _example(props.get(name, {})) for name in required if isinstance(name, str)}
    return {"integer": 1, "number": 1.0, "boolean": True, "array": [], "null": None}.get(kind, "echo")


def _chat_answer(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if last.get("role") == "tool":
        return f"The tool returned: {content_text(last.get('content'))}", []
    if tools and body.get("tool_choice") != "none":
        fn = tools[0]["function"]
        args = orjson.dumps(_example(fn.get("parameters") or {})).decode()
        call = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                "function": {"name": fn.get("name", "tool"), "arguments": args}}
        return None, [call]
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return f"echo: {content_text(user.get('content'))}", []


class EchoUpstream:
    """Speaks the OpenAI API for chat, completions, embeddings and responses, locally."""

    def __init__(self, config: UpstreamConfig) -> None:
        self._delay = config.echo_delay_ms / 1000.0

    async def send(self, route: str, body: bytes, stream: bool, headers: dict[str, str], deadline: float) -> Reply:
        if self._delay:
            async with asyncio.timeout(deadline - time.monotonic()):
                await asyncio.sleep(self._delay)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "echo upstream: body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "echo upstream: body must be an object")
        model = str(data.get("model") or "echo")
        if route == "/v1/embeddings":
            return Reply(200, body=orjson.dumps(_embeddings(data, model)))
        if route == "/v1/completions":
            prompt = data.get("prompt")
            text = "echo: " + (prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode())
            usage = _usage(count_tokens(text[6:], model), text, model)
            return Reply(200, body=orjson.dumps(_completion(model, text, usage)))
        if route == "/v1/responses":
            return Reply(200, body=orjson.dumps(_response(data, model)))
        content, calls = _chat_answer(data)
        usage = _usage(count_messages(data.get("messages") or [], model), content or orjson.dumps(calls).decode(), model)
        if stream:
            include = bool((data.get("stream_options") or {}).get("include_usage"))
            return Reply(200, chunks=self._stream(model, content, calls, usage if include else None))
        return Reply(200, body=orjson.dumps(_chat(model, content, calls, usage)))

    async def _stream(self, model: str, content: str | None, calls: list[dict[str, Any]],
                      usage: dict[str, int] | None) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            event = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(event) + b"\n\n"

        yield chunk({"role": "assistant", "content": "" if content is not None else None})
        for i in range(0, len(content or ""), _CHUNK_CHARS):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield chunk({"content": content[i : i + _CHUNK_CHARS]})  # type: ignore[index]
        for n, call in enumerate(calls):
            yield chunk({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            args = call["function"]["arguments"]
            for i in range(0, len(args), _CHUNK_CHARS):
                yield chunk({"tool_calls": [{"index": n, "function": {"arguments": args[i : i + _CHUNK_CHARS]}}]})
        yield chunk({}, "tool_calls" if calls else "stop")
        if usage is not None:
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


def _usage(prompt_tokens: int, answer: str, model: str) -> dict[str, int]:
    completion = count_tokens(answer, model)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _chat(model: str, content: str | None, calls: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "logprobs": None,
                                         "finish_reason": "tool_calls" if calls else "stop"}], "usage": usage}


def _completion(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage}


def _vector(text: str, dims: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] + i * 31) % 255) / 127.0 - 1.0 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _embeddings(data: dict[str, Any], model: str) -> dict[str, Any]:
    inputs = data.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    dims = data.get("dimensions") if isinstance(data.get("dimensions"), int) else 16
    texts = [i if isinstance(i, str) else orjson.dumps(i).decode() for i in items]
    tokens = sum(count_tokens(t, model) for t in texts)
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": n, "embedding": _vector(t, max(1, min(dims, 4096)))}
                     for n, t in enumerate(texts)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _response(data: dict[str, Any], model: str) -> dict[str, Any]:
    given = data.get("input")
    if isinstance(given, list):
        texts = [content_text(m.get("content")) for m in given if isinstance(m, dict)]
        given = texts[-1] if texts else ""
    text = f"echo: {given if isinstance(given, str) else ''}"
    prompt = count_tokens(str(given), model)
    completion = count_tokens(text, model)
    return {"id": "resp_" + uuid.uuid4().hex[:24], "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "status": "completed",
                        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}}


def _error(status: int, message: str) -> Reply:
    return Reply(status, body=orjson.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                       "param": None, "code": None}}))
