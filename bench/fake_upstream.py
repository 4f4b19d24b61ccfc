"""A fast fake OpenAI-compatible upstream for the benchmark: JSON or SSE, fixed latency, paced chunks.

Every answer is precomputed bytes and the request body is never parsed (byte searches find the
model, a stream and a usage request), so the upstream costs far less CPU than the proxies it serves.
One process serves several behaviours, chosen by the request's model name, so that one proxy
process can be measured against all of them without a restart.

    python bench/fake_upstream.py --port 9001 [--latency-ms 0] [--chunks 20] [--chunk-delay-ms 0] \
        [--model bench-slow:200:0] [--model bench-paced:0:2]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import orjson
from aiohttp import web

__all__ = ["Profile", "create_app", "main"]

_MODEL = "fake-model"
_PROMPT_TOKENS = 250
_MODEL_MARKERS = (b'"model":"', b'"model": "')
_STREAM_MARKERS = (b'"stream":true', b'"stream": true')
_USAGE_MARKERS = (b'"include_usage":true', b'"include_usage": true')


@dataclass(frozen=True, slots=True)
class Profile:
    """How the fake upstream behaves: the same for every request it serves."""

    latency_ms: float = 0.0
    chunks: int = 20
    chunk_delay_ms: float = 0.0
    completion_tokens: int = 50


def _usage(profile: Profile) -> dict[str, int]:
    return {"prompt_tokens": _PROMPT_TOKENS, "completion_tokens": profile.completion_tokens,
            "total_tokens": _PROMPT_TOKENS + profile.completion_tokens}


def _answer_words(profile: Profile) -> list[str]:
    # Plain prose, so output guardrails scan something like a real answer and find nothing to block.
    words = ("The weather in the mountains tends to change quickly, so pack layers and check the "
             "forecast before you leave. ").split(" ")
    return [words[i % len(words)] + " " for i in range(max(profile.chunks, 1))]


def _chat_json(profile: Profile) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": _MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_answer_words(profile))},
                     "finish_reason": "stop"}],
        "usage": _usage(profile),
    })


def _sse(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chat_events(profile: Profile) -> tuple[list[bytes], bytes]:
    """The content events in order, and the usage event sent only when the client asked for it."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()), "model": _MODEL}
    events = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})]
    for word in _answer_words(profile):
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}))
    events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = _sse({**base, "choices": [], "usage": _usage(profile)})
    return events, usage


def _embeddings_json() -> bytes:
    vector = [round(0.001 * i, 3) for i in range(16)]
    return orjson.dumps({"object": "list", "model": _MODEL,
                         "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                         "usage": {"prompt_tokens": 8, "total_tokens": 8}})


@dataclass(frozen=True, slots=True)
class _Canned:
    """One profile's precomputed answers."""

    latency_s: float
    delay_s: float
    chat_body: bytes
    events: tuple[bytes, ...]
    usage_event: bytes

    @classmethod
    def of(cls, profile: Profile) -> _Canned:
        events, usage = _chat_events(profile)
        latency_s, delay_s = profile.latency_ms / 1000.0, profile.chunk_delay_ms / 1000.0
        return cls(latency_s, delay_s, _chat_json(profile), tuple(events), usage)


def _model_of(body: bytes) -> bytes | None:
    head = body[:512]  # clients put "model" first; a miss just means the default profile
    for marker in _MODEL_MARKERS:
        start = head.find(marker)
        if start >= 0:
            start += len(marker)
            end = head.find(b'"', start)
            return head[start:end] if end > 0 else None
    return None


def create_app(profile: Profile, by_model: dict[str, Profile] | None = None) -> web.Application:
    default = _Canned.of(profile)
    canned = {name.encode(): _Canned.of(p) for name, p in (by_model or {}).items()}
    embeddings_body = _embeddings_json()
    sse_headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        answer = canned.get(_model_of(body), default) if canned else default
        if answer.latency_s:
            await asyncio.sleep(answer.latency_s)
        if not any(m in body for m in _STREAM_MARKERS):
            return web.Response(body=answer.chat_body, content_type="application/json")
        resp = web.StreamResponse(headers=sse_headers)
        await resp.prepare(request)
        for event in answer.events:
            await resp.write(event)
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
        if any(m in body for m in _USAGE_MARKERS):
            await resp.write(answer.usage_event)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        await request.read()
        if default.latency_s:
            await asyncio.sleep(default.latency_s)
        return web.Response(body=embeddings_body, content_type="application/json")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait before answering")
    parser.add_argument("--chunks", type=int, default=20, help="content events in a streamed answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="pause after each streamed event")
    parser.add_argument("--model", action="append", default=[], metavar="NAME:LATENCY_MS:CHUNK_DELAY_MS",
                        help="another behaviour, for requests naming this model (repeatable)")
    args = parser.parse_args(argv)
    by_model = {}
    for spec in args.model:
        name, latency, delay = spec.split(":")
        by_model[name] = Profile(float(latency), args.chunks, float(delay))
    try:
        import uvloop
    except ImportError:
        uvloop = None
    profile = Profile(args.latency_ms, args.chunks, args.chunk_delay_ms)
    web.run_app(create_app(profile, by_model), host=args.host, port=args.port, access_log=None, print=None,
                backlog=4096, **({"loop": uvloop.new_event_loop()} if uvloop else {}))


if __name__ == "__main__":
    main()
