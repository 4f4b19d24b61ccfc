"""CPU per upstream call: aiohttp's ClientSession against wardgate.http1, on the same fake upstream.

    .venv/bin/python bench/upstream_client.py [--requests 64000] [--concurrency 64]

The fake upstream runs on core 1, this process on core 0 (when there are two cores); each client
sends the 1 KB chat body and reads the whole answer, after a warm-up. CPU time is this process's
only, so the figure is what a proxy pays per upstream call, socket calls included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from loadgen import chat_1kb

from wardgate.http1 import Http1Client

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent
_HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


async def _load(call: Callable[[], Awaitable[None]], total: int, concurrency: int) -> float:
    """CPU microseconds per call over ``total`` calls, ``concurrency`` at a time."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / total * 1e6


async def _aiohttp(url: str, body: bytes, total: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=512)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def call() -> None:
            async with session.post(url + "/chat/completions", data=body, headers=_HEADERS) as resp:
                await resp.read()

        await _load(call, total // 8, concurrency)
        return await _load(call, total, concurrency)


async def _http1(url: str, body: bytes, total: int, concurrency: int) -> float:
    client = Http1Client(url, _HEADERS)

    async def call() -> None:
        resp = await client.post("/chat/completions", body)
        await resp.read()

    await _load(call, total // 8, concurrency)
    try:
        return await _load(call, total, concurrency)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two = (os.cpu_count() or 1) >= 2
    cmd = [sys.executable, str(_HERE / "fake_upstream.py"), "--port", str(port)]
    upstream = subprocess.Popen(["taskset", "-c", "1", *cmd] if two else cmd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.7)
        if two:
            os.sched_setaffinity(0, {0})
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        url, body = f"http://127.0.0.1:{port}/v1", chat_1kb("gpt-4o-mini")
        for name, bench in (("aiohttp ClientSession", _aiohttp), ("wardgate.http1", _http1)):
            per = runner(bench(url, body, args.requests, args.concurrency))
            print(f"{name:22s} {per:6.1f} µs CPU per call ({args.requests} calls, {args.concurrency} at a time)")
    finally:
        upstream.kill()


if __name__ == "__main__":
    main()
