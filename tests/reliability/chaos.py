"""A fault-injecting fake upstream: a real HTTP server on loopback that misbehaves on cue.

Each request takes the next ``Fault`` from the script (FIFO), else answers correctly. Faults are
the ones a gateway meets in production: refused connections (a closed port, see ``closed_port``),
resets, 5xx, 429 with retry-after, a slow first byte, a stream that stalls, a body cut short.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Literal

import orjson
from aiohttp import web

from tests.fakes import chat_body, chat_chunks

Kind = Literal["ok", "status", "reset", "slow_first_byte", "stall", "truncated_body", "truncated_json", "endless"]


@dataclass(frozen=True)
class Fault:
    kind: Kind
    status: int = 500
    delay_s: float = 0.0
    after_chunks: int = 3
    retry_after: str | None = None
    message: str = "the upstream is overloaded"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChaosUpstream:
    def __init__(self) -> None:
        self.script: list[Fault] = []
        self.requests = 0
        self.bytes_sent = 0
        self.hung_up = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/v1/{tail:.*}", self._handle)

    def then(self, *faults: Fault) -> ChaosUpstream:
        self.script.extend(faults)
        return self

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests += 1
        fault = self.script.pop(0) if self.script else Fault("ok")
        stream = bool(body.get("stream"))
        if fault.kind == "reset":
            sock = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            return web.json_response({"error": {"message": fault.message, "type": "server_error"}},
                                     status=fault.status, headers=headers)
        if fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.delay_s)
        if fault.kind in ("truncated_body", "truncated_json"):
            whole = orjson.dumps(chat_body("this answer is cut"))
            if fault.kind == "truncated_json":  # a complete HTTP message whose JSON is cut
                return web.Response(body=whole[: len(whole) // 2], content_type="application/json")
            resp = web.StreamResponse(headers={"content-type": "application/json", "content-length": str(len(whole))})
            await resp.prepare(request)
            await resp.write(whole[: len(whole) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if fault.kind == "endless":
            return await self._endless(request)
        if not stream:
            return web.json_response(chat_body("hello from upstream"))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for n, chunk in enumerate(chat_chunks("one two three four five six seven", size=4)):
            if fault.kind == "stall" and n == fault.after_chunks:
                await asyncio.sleep(fault.delay_s)
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """SSE comments as fast as the gateway takes them, counting bytes, until it hangs up."""
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        pad = b": " + b"x" * 4094 + b"\n\n"
        try:
            while True:
                await resp.write(pad)
                self.bytes_sent += len(pad)
        except (ConnectionError, asyncio.CancelledError):
            self.hung_up.set()
            raise
