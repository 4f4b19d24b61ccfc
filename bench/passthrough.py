"""The yardstick: a thin aiohttp proxy that forwards the body and relays the answer, with no checks.

Whatever wardgate costs is measured against this process in the same run, on the same core. It does
what any aiohttp proxy must (one ClientSession with a pool sized for the load, chunk-by-chunk relay
of streams) and nothing else: no auth, no parsing, no logging.

    python bench/passthrough.py --port 9100 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

__all__ = ["create_app", "main"]

_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")
_FORWARDED = ("content-type",)


def create_app(upstream: str, max_connections: int = 512) -> web.Application:
    base = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # The default pool of 100 would queue 256 clients inside the proxy (DESIGN.md, last fact).
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections)
        app[_SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        yield
        await app[_SESSION].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"content-type": "application/json", "authorization": "Bearer x"}
        async with request.app[_SESSION].post(base + request.path, data=body, headers=headers) as up:
            kind = up.headers.get("content-type", "application/json")
            if not kind.startswith("text/event-stream"):
                return web.Response(body=await up.read(), status=up.status, headers={"content-type": kind})
            resp = web.StreamResponse(status=up.status, headers={"content-type": kind, "cache-control": "no-cache"})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/{tail:.*}", forward)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--upstream", required=True, help="the upstream's origin, e.g. http://127.0.0.1:9001")
    parser.add_argument("--max-connections", type=int, default=512)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    web.run_app(create_app(args.upstream, args.max_connections), host=args.host, port=args.port,
                access_log=None, print=None, backlog=4096, **({"loop": uvloop.new_event_loop()} if uvloop else {}))


if __name__ == "__main__":
    main()
