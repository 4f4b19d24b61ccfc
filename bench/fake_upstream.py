"""A fast fake OpenAI-compatible upstream for the benchmark: JSON or SSE, fixed latency, paced chunks.

It must cost far less CPU than the proxies it serves, or it becomes what the benchmark measures: it
is a bare asyncio protocol (uvloop when importable) speaking just enough HTTP/1.1 keep-alive, every
answer is precomputed bytes, and the request body is never parsed (byte searches find the model, a
stream and a usage request). One process serves several behaviours, chosen by the request's model
name, so one proxy process is measured against all of them without a restart.

    python bench/fake_upstream.py --port 9001 [--latency-ms 0] [--chunks 20] [--chunk-delay-ms 0] \\
        [--model bench-slow:200:0] [--model bench-paced:0:2]

Request bodies must come with Content-Length (every OpenAI client and proxy sends it); chunked
request bodies are refused with 411.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import orjson

__all__ = ["Profile", "main", "serve"]

_MODEL = "fake-model"
_PROMPT_TOKENS = 250
_MODEL_MARKERS = (b'"model":"', b'"model": "')
_STREAM_MARKERS = (b'"stream":true', b'"stream": true')
_USAGE_MARKERS = (b'"include_usage":true', b'"include_usage": true')
_ANSWER = "The weather in the mountains tends to change quickly, so pack layers and check the forecast first."
_SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
             b"transfer-encoding: chunked\r\n\r\n")


@dataclass(frozen=True, slots=True)
class Profile:
    """How the fake upstream answers one model."""

    latency_ms: float = 0.0
    chunks: int = 20
    chunk_delay_ms: float = 0.0
    completion_tokens: int = 50


def _response(status: str, body: bytes, kind: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + kind + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _usage(profile: Profile) -> dict[str, int]:
    return {"prompt_tokens": _PROMPT_TOKENS, "completion_tokens": profile.completion_tokens,
            "total_tokens": _PROMPT_TOKENS + profile.completion_tokens}


def _words(profile: Profile) -> list[str]:
    # Plain prose, so output guardrails scan something like a real answer and find nothing to block.
    words = _ANSWER.split(" ")
    return [words[i % len(words)] + " " for i in range(max(profile.chunks, 1))]


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj: dict) -> bytes:
    return _chunk(b"data: " + orjson.dumps(obj) + b"\n\n")


@dataclass(frozen=True, slots=True)
class _Canned:
    """One profile's answers, as the exact bytes to write."""

    latency_s: float
    delay_s: float
    json: bytes
    events: tuple[bytes, ...]  # head + content events; then usage (if asked) and the end
    usage: bytes
    end: bytes

    @classmethod
    def of(cls, profile: Profile) -> _Canned:
        created = int(time.time())
        whole = {"id": "chatcmpl-bench", "object": "chat.completion", "created": created, "model": _MODEL,
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_words(profile))},
                              "finish_reason": "stop"}], "usage": _usage(profile)}
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created, "model": _MODEL}
        events = [_SSE_HEAD + _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                         "finish_reason": None}]})]
        events += [_sse({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
                   for w in _words(profile)]
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        return cls(profile.latency_ms / 1000.0, profile.chunk_delay_ms / 1000.0,
                   _response("200 OK", orjson.dumps(whole)), tuple(events),
                   _sse({**base, "choices": [], "usage": _usage(profile)}), _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


def _model_of(body: bytes) -> bytes | None:
    head = body[:512]  # clients put "model" first; a miss just means the default profile
    for marker in _MODEL_MARKERS:
        start = head.find(marker)
        if start >= 0:
            start += len(marker)
            end = head.find(b'"', start)
            return head[start:end] if end > 0 else None
    return None


_EMBEDDINGS = _response("200 OK", orjson.dumps({
    "object": "list", "model": _MODEL, "data": [{"object": "embedding", "index": 0, "embedding": [0.5] * 16}],
    "usage": {"prompt_tokens": 8, "total_tokens": 8}}))
_HEALTHY = _response("200 OK", b"ok", b"text/plain")
_NOT_FOUND = _response("404 Not Found", b'{"error":{"message":"not found","type":"not_found"}}')
_NO_LENGTH = _response("411 Length Required", b'{"error":{"message":"send content-length","type":"bad_request"}}')


def _content_length(head: bytes) -> int | None:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    stop = head.find(b"\r\n", at + 2)
    return int(head[at + 17:stop if stop > 0 else len(head)])


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered one at a time, in order (no pipelining)."""

    def __init__(self, default: _Canned, by_model: dict[bytes, _Canned]) -> None:
        self._default, self._by_model = default, by_model
        self._buf = bytearray()
        self._busy = False
        self._closing = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._next()

    def _next(self) -> None:
        while not self._busy and self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).lower()
            length = _content_length(head)
            if length is None:
                if b"\r\ntransfer-encoding:" in head:
                    self._finish(_NO_LENGTH, close=True)
                    return
                length = 0
            if len(self._buf) < end + 4 + length:
                return
            body = bytes(self._buf[end + 4:end + 4 + length])
            del self._buf[:end + 4 + length]
            self._closing = b"\r\nconnection: close" in head
            self._answer(head[:head.find(b" http/")], body)

    def _answer(self, line: bytes, body: bytes) -> None:
        if line == b"post /v1/chat/completions":
            canned = self._by_model.get(_model_of(body), self._default) if self._by_model else self._default
            stream = any(m in body for m in _STREAM_MARKERS)
            usage = stream and any(m in body for m in _USAGE_MARKERS)
            self._busy = True
            if canned.latency_s:
                self._loop.call_later(canned.latency_s, self._send, canned, stream, usage)
            else:
                self._send(canned, stream, usage)
        elif line == b"post /v1/embeddings":
            self._finish(_EMBEDDINGS)
        elif line == b"get /healthz":
            self._finish(_HEALTHY)
        else:
            self._finish(_NOT_FOUND)

    def _send(self, canned: _Canned, stream: bool, usage: bool) -> None:
        if not stream:
            self._finish(canned.json)
        elif not canned.delay_s:
            self._finish(b"".join(canned.events) + (canned.usage if usage else b"") + canned.end)
        else:
            self._pace(canned, usage, 0)

    def _pace(self, canned: _Canned, usage: bool, index: int) -> None:
        if self._transport is None:
            return
        if index < len(canned.events):
            self._transport.write(canned.events[index])
            self._loop.call_later(canned.delay_s, self._pace, canned, usage, index + 1)
        else:
            self._finish((canned.usage if usage else b"") + canned.end)

    def _finish(self, data: bytes, close: bool = False) -> None:
        self._busy = False
        if self._transport is None:
            return
        self._transport.write(data)
        if close or self._closing:
            self._transport.close()
            return
        if self._buf:
            self._next()


async def serve(host: str, port: int, default: Profile, by_model: dict[str, Profile]) -> None:
    loop = asyncio.get_running_loop()
    canned_default = _Canned.of(default)
    canned = {name.encode(): _Canned.of(p) for name, p in by_model.items()}
    server = await loop.create_server(lambda: _Connection(canned_default, canned), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


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
    default = Profile(args.latency_ms, args.chunks, args.chunk_delay_ms)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(args.host, args.port, default, by_model))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
