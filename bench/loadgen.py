"""Closed-loop load: N clients each send a request, wait for the whole answer, send the next.

Two drivers with one result shape: `wrk` (C, with a Lua script cycling through the bodies) when it is
installed, because on a 2-core machine a Python client can be the bottleneck before the proxy is; and
a built-in aiohttp client, which is also the only one that measures time to first byte of a stream.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

__all__ = ["Load", "Result", "have_wrk", "run_aiohttp", "run_wrk"]

_MS = 1000.0


@dataclass(frozen=True, slots=True)
class Load:
    """What to send: clients cycle through ``bodies`` (client i starts at body i)."""

    url: str
    bodies: Sequence[bytes]
    concurrency: int
    duration_s: float
    warmup_s: float = 1.0
    stream: bool = False
    api_key: str = "bench-key-123456"
    max_requests: int | None = None
    """Stop after this many measured requests (aiohttp driver), even before the duration is up."""


@dataclass(frozen=True, slots=True)
class Result:
    driver: str
    requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    ttfb_p50_ms: float | None = None
    ttfb_p99_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _client(session: aiohttp.ClientSession, load: Load, start: int, until: float, measure_from: float,
                  totals: list[float], ttfbs: list[float], errors: list[int]) -> None:
    headers = {"authorization": f"Bearer {load.api_key}", "content-type": "application/json"}
    i = start
    while True:
        began = time.perf_counter()
        if began >= until or (load.max_requests is not None and len(totals) + errors[0] >= load.max_requests):
            return
        body = load.bodies[i % len(load.bodies)]
        i += 1
        first = None
        try:
            async with session.post(load.url, data=body, headers=headers) as resp:
                if load.stream:
                    async for _chunk in resp.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                else:
                    await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        ended = time.perf_counter()
        if began < measure_from or ended > until:
            continue  # warm-up, or straddling the end of the window
        if not ok:
            errors[0] += 1
            continue
        totals.append((ended - began) * _MS)
        if first is not None:
            ttfbs.append((first - began) * _MS)


async def run_aiohttp(load: Load) -> Result:
    """The built-in closed-loop client; requests that end after the window are not counted."""
    connector = aiohttp.TCPConnector(limit=load.concurrency, limit_per_host=load.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    totals: list[float] = []
    ttfbs: list[float] = []
    errors = [0]
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        now = time.perf_counter()
        measure_from = now + load.warmup_s
        until = measure_from + load.duration_s
        await asyncio.gather(*(_client(session, load, n, until, measure_from, totals, ttfbs, errors)
                               for n in range(load.concurrency)))
    elapsed = min(load.duration_s, time.perf_counter() - measure_from)
    totals.sort()
    ttfbs.sort()
    return Result("aiohttp", len(totals), errors[0], elapsed, _percentile(totals, 50), _percentile(totals, 99),
                  _percentile(ttfbs, 50) if ttfbs else None, _percentile(ttfbs, 99) if ttfbs else None)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _long_string(text: str) -> str:
    """A Lua long-bracket literal whose level does not occur in the text."""
    level = 0
    while "]" + "=" * level + "]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def _lua_script(load: Load, path: str) -> str:
    bodies = ",\n".join(_long_string(b.decode("utf-8")) for b in load.bodies)
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {load.api_key}"
local bodies = {{
{bodies}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "{path}", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d}}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _wrk_once(load: Load, script: Path, seconds: int, affinity: str | None) -> dict:
    origin, _, path = load.url.partition("://")[2].partition("/")
    cmd = ["wrk", "-t1", f"-c{load.concurrency}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
           f"http://{origin}/"]
    if affinity is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", affinity, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    return json.loads(line.removeprefix("WRKJSON "))


def run_wrk(load: Load, affinity: str | None = None) -> Result:
    """Warm up, then measure, with wrk on one thread (pinned to ``affinity`` cores when given)."""
    if load.stream:
        raise ValueError("wrk cannot time the first byte of a stream: use run_aiohttp")
    path = "/" + load.url.partition("://")[2].partition("/")[2]
    with tempfile.TemporaryDirectory(prefix="wardgate-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(_lua_script(load, path), encoding="utf-8")
        if load.warmup_s > 0:
            _wrk_once(load, script, max(1, round(load.warmup_s)), affinity)
        data = _wrk_once(load, script, max(1, round(load.duration_s)), affinity)
    return Result("wrk", data["requests"], data["errors"], data["duration_us"] / 1e6,
                  data["p50_us"] / _MS, data["p99_us"] / _MS)
