"""Closed-loop load: N clients each send a request, wait for the whole answer, send the next.

Two drivers with one result shape: `wrk` (C, with a Lua script cycling through the bodies) when it is
installed, because on a 2-core machine a Python client can be the bottleneck before the proxy is; and
a built-in aiohttp client, which is also the only one that measures time to first byte of a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

__all__ = ["NONCE", "Load", "Result", "agent_conversation", "chat_1kb", "have_wrk", "prompt_mix", "run_aiohttp",
           "run_wrk"]

NONCE = "__NONCE__"
_NONCE_BYTES = NONCE.encode()

_MS = 1000.0


@dataclass(frozen=True, slots=True)
class Load:
    """What to send: clients cycle through ``bodies`` (client i starts at body i).

    Each ``NONCE`` in a body is replaced by a request counter, so no two requests are identical
    (a gateway's loop guard rightly refuses the same request sent thousands of times).
    """

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
    error_detail: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _client(session: aiohttp.ClientSession, load: Load, start: int, until: float, measure_from: float,
                  totals: list[float], ttfbs: list[float], errors: list[int], counter: Iterator[int]) -> None:
    headers = {"authorization": f"Bearer {load.api_key}", "content-type": "application/json"}
    i = start
    while True:
        began = time.perf_counter()
        if began >= until or (load.max_requests is not None and len(totals) + errors[0] >= load.max_requests):
            return
        body = load.bodies[i % len(load.bodies)].replace(_NONCE_BYTES, str(next(counter)).encode(), 1)
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
        except (TimeoutError, aiohttp.ClientError):
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


async def run_aiohttp(load: Load, start_at: int = 0) -> Result:
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
        counter = itertools.count(start_at)
        await asyncio.gather(*(_client(session, load, n, until, measure_from, totals, ttfbs, errors, counter)
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


def _lua_pair(body: bytes) -> str:
    pre, found, post = body.decode("utf-8").partition(NONCE)
    return "{" + _long_string(pre) + (", " + _long_string(post) if found else "") + "}"


def _lua_script(load: Load, path: str) -> str:
    bodies = ",\n".join(_lua_pair(b) for b in load.bodies)
    seed = int.from_bytes(os.urandom(3), "big") * 1000  # distinct nonces across wrk runs
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {load.api_key}"
local bodies = {{
{bodies}
}}
local i = 0
local n = {seed}
request = function()
  i = i % #bodies + 1
  n = n + 1
  local b = bodies[i]
  if b[2] == nil then return wrk.format(nil, "{path}", nil, b[1]) end
  return wrk.format(nil, "{path}", nil, b[1] .. n .. b[2])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _wrk_once(load: Load, script: Path, seconds: int, affinity: str | None) -> dict:
    origin = load.url.partition("://")[2].partition("/")[0]
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
    kinds = ("connect", "read", "write", "status", "timeout")
    detail = ", ".join(f"{k} {data[k]}" for k in kinds if data[k])
    # wrk counts a non-2xx answer as a request and as a status error: only the good ones count here.
    return Result("wrk", data["requests"] - data["status"], sum(data[k] for k in kinds), data["duration_us"] / 1e6,
                  data["p50_us"] / _MS, data["p99_us"] / _MS, error_detail=detail)


# What the scenarios send. Bodies are orjson-encoded ("model" first, no spaces): that is what
# bench/fake_upstream.py's byte searches expect, and what the OpenAI SDKs send in substance.

_PROSE = ("I am planning a two-week trip through the north of the country in early autumn and would like help "
          "putting together an itinerary. We will arrive by train, prefer small towns to big cities, and want "
          "two or three longer walks of four to six hours. Please suggest where to stay each night, how to get "
          "between places without a car, which days to keep free in case the weather turns, and what we should "
          "book in advance. We are two adults, one of whom does not eat meat, and our budget is moderate. ")


def _sharegpt_texts(corpus: Path) -> list[str]:
    """Real chat prompts: the benign ShareGPT rows of the injection corpus, when it is there."""
    if not corpus.is_file():
        return []
    texts = []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("label") == "benign" and row.get("source") == "sharegpt" and row.get("text"):
                texts.append(row["text"])
    return texts


def chat_1kb(model: str, stream: bool = False) -> bytes:
    """A ~1 KB chat request: a system prompt and one user turn."""
    body = {"model": model, "messages": [
        {"role": "system", "content": "You are a helpful travel assistant. Answer briefly and concretely."},
        {"role": "user", "content": _PROSE + _PROSE[:335] + f"(ticket {NONCE})"}], "max_tokens": 64}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def prompt_mix(model: str, corpus: Path) -> list[bytes]:
    """One request per real chat prompt (median ~150 characters, p99 ~5 KB)."""
    texts = _sharegpt_texts(corpus) or [_PROSE[: n * 40] for n in range(1, 13)]
    return [orjson.dumps({"model": model, "messages": [{"role": "user", "content": f"{t}\n\n(ticket {NONCE})"}],
                          "max_tokens": 64}) for t in texts]


_TOOLS = [{"type": "function", "function": {
    "name": name, "description": desc,
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    for name, desc in (("search_docs", "Search the team's documents"), ("read_page", "Read one page by title"))]


def agent_conversation(model: str, corpus: Path, max_bytes: int = 100 * 1024, step_bytes: int = 3600) -> list[bytes]:
    """An agent loop's requests as it grows: each adds a tool call and a ~3.6 KB tool result, up to max_bytes.

    ~28 tool rounds in all: under the default loop guard's 30 (SPEC §2 loops.max_tool_rounds).
    """
    texts = _sharegpt_texts(corpus) or [_PROSE]
    messages: list[dict] = [
        {"role": "system", "content": "You are a research agent. Use the tools, then answer with sources."},
        {"role": "user", "content": f"Task {NONCE}: summarize what our documents say about trip planning."}]
    bodies: list[bytes] = []
    cursor = 0
    for step in range(10_000):
        body = orjson.dumps({"model": model, "messages": messages, "tools": _TOOLS, "max_tokens": 256})
        if len(body) > max_bytes:
            break
        bodies.append(body)
        result = ""
        while len(result) < step_bytes:
            result += texts[cursor % len(texts)] + "\n"
            cursor += 1
        name = _TOOLS[step % 2]["function"]["name"]
        messages.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{step}", "type": "function",
            "function": {"name": name, "arguments": orjson.dumps({"query": f"trip planning, part {step}"}).decode()}}]})
        messages.append({"role": "tool", "tool_call_id": f"call_{step}", "content": result[:step_bytes]})
    return bodies
