"""A bounded soak: a real `wardgate serve` under steady mixed traffic, with faults, for minutes.

Traffic: whole and streamed answers, clients that disconnect mid-stream, and an upstream that
fails (500, reset connections, slow first byte, streams that stall). The gateway process is sampled
every few seconds: RSS, open file descriptors, asyncio tasks (from ``GET /admin/config``). At the
end it prints growth after the warm-up, and fds/tasks once the load has drained, against baseline.

    .venv/bin/python bench/soak.py --minutes 10 --rps 150 [--warmup-s 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

_KEY, _ADMIN = "soak-team-key-0001", "soak-admin-key-0001"
_WORDS = [f"word{i} " for i in range(40)]


def _chunk(text: str | None, finish: str | None = None, usage: bool = False) -> bytes:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    if usage:
        return b"data: " + orjson.dumps({**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 40,
                                                                           "total_tokens": 60}}) + b"\n\n"
    delta = {"content": text} if text is not None else {}
    return b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


async def _upstream(request: web.Request) -> web.StreamResponse:
    """The fault-injecting upstream: behaviour chosen by the model name the gateway sends."""
    body = await request.json()
    model, stream = body.get("model", ""), bool(body.get("stream"))
    if model == "flaky" and random.random() < 0.5:
        return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=500)
    if model == "reset" and random.random() < 0.5:
        request.transport.close()  # type: ignore[union-attr]
        return web.Response()
    if model == "slow":
        await asyncio.sleep(1.5)  # past the upstream's ttfb_timeout_s: the gateway falls back
    if not stream:
        return web.json_response({"id": "c", "object": "chat.completion", "created": 1, "model": model,
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_WORDS)},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60}})
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    try:
        for i, word in enumerate(_WORDS):
            if model == "stall" and i == 10:
                await asyncio.sleep(2.0)  # past idle_timeout_s: the client gets one error event
                return resp
            await resp.write(_chunk(word))
            await asyncio.sleep(0.01)
        await resp.write(_chunk(None, "stop") + _chunk(None, usage=True) + b"data: [DONE]\n\n")
    except ConnectionError:
        pass  # the gateway hung up (its client disconnected): expected here
    return resp


def _config(upstream_url: str, tmp: Path, window: float) -> str:
    """``window``: the loop guard's window and the reservation TTL. The memory store keeps per-request
    entries that long (bounded by rate x window), so RSS can only level off after it has passed."""
    return f"""version: 1
server: {{admin_keys: ["{_ADMIN}"], shutdown_grace_s: 5}}
upstreams:
  chaos: {{base_url: "{upstream_url}/v1", api_key: "x", max_retries: 1, ttfb_timeout_s: 1.0, idle_timeout_s: 0.5,
          breaker_failures: 1000}}
  echo: {{kind: echo}}
models:
  ok: {{upstream: chaos}}
  flaky: {{upstream: chaos, fallbacks: [backup]}}
  reset: {{upstream: chaos, fallbacks: [backup]}}
  slow: {{upstream: chaos, fallbacks: [backup]}}
  stall: {{upstream: chaos}}
  backup: {{upstream: echo}}
teams:
  soak:
    keys: [{{id: soak, value: "{_KEY}"}}]
    models: ["*"]
    budgets: [{{window: day, tokens: 100000000000}}, {{window: minute, requests: 100000000}}]
    policy: std
policies:
  std: {{loops: {{window_s: {window}}}}}
state: {{backend: memory, reservation_ttl_s: {window}}}
sinks:
  - {{type: jsonl, path: "{tmp}/traces.jsonl", max_bytes: 50000000, retention_days: 1}}
spill_dir: "{tmp}/spill"
"""


_MIX = [("ok", False, False, 30), ("ok", True, False, 25), ("ok", True, True, 10), ("flaky", False, False, 10),
        ("reset", True, False, 8), ("slow", False, False, 2), ("stall", True, False, 5), ("flaky", True, False, 10)]


async def _one(session: aiohttp.ClientSession, base: str, counts: collections.Counter, sessions: int) -> None:
    model, stream, disconnect, _ = random.choices(_MIX, weights=[m[3] for m in _MIX])[0]
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": f"soak {random.random()}"}]}
    # A steady state has a bounded set of live agent sessions and users, as production does; one new
    # session per request would instead measure the per-session caches filling up to their caps.
    n = random.randrange(sessions)
    headers = {"Authorization": f"Bearer {_KEY}", "x-wardgate-session": f"soak-{n}", "x-wardgate-user": f"u-{n % 200}"}
    try:
        async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
            if disconnect:
                await resp.content.readuntil(b"\n\n")
                await resp.content.readuntil(b"\n\n")
                resp.close()  # the client goes away mid-stream
                counts["disconnected"] += 1
                return
            await resp.read()
            counts[f"{model}:{'stream' if stream else 'whole'}:{resp.status}"] += 1
    except (TimeoutError, aiohttp.ClientError) as exc:
        counts[f"client_error:{type(exc).__name__}"] += 1


async def _sample(session: aiohttp.ClientSession, base: str, pid: int) -> dict[str, float]:
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    async with session.get(f"{base}/admin/config", headers={"Authorization": f"Bearer {_ADMIN}"}) as resp:
        tasks = (await resp.json())["process"]["asyncio_tasks"]
    return {"rss_mb": rss_kb / 1024, "fds": fds, "tasks": tasks}


async def _load(base: str, rps: float, until: float, counts: collections.Counter, sessions: int) -> None:
    """Open-loop arrivals at a steady rate (not closed-loop: a slow gateway does not slow the load)."""
    inflight: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=512)) as session:
        next_at = time.monotonic()
        while time.monotonic() < until:
            task = asyncio.create_task(_one(session, base, counts, sessions))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            next_at += random.expovariate(rps)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*inflight, return_exceptions=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="wardgate-soak-"))
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _upstream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    up_port, gw_port = _free_port(), _free_port()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    (tmp / "gateway.yaml").write_text(_config(f"http://127.0.0.1:{up_port}", tmp, args.window_s))
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115, ASYNC230 - closed at the end
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "wardgate", "serve", "--config",
                                                str(tmp / "gateway.yaml"), "--port", str(gw_port),
                                                "--log-level", "warning", stdout=log, stderr=log)
    base = f"http://127.0.0.1:{gw_port}"
    async with aiohttp.ClientSession() as probe:
        for _ in range(100):
            try:
                async with probe.get(base + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        baseline = await _sample(probe, base, proc.pid)
        print(f"baseline: {baseline}  (logs and traces in {tmp})", flush=True)
        counts: collections.Counter = collections.Counter()
        started = time.monotonic()
        load = asyncio.create_task(_load(base, args.rps, started + args.minutes * 60, counts, args.sessions))
        samples = []
        while not load.done():
            await asyncio.sleep(args.every_s)
            s = {"t": round(time.monotonic() - started, 1), **await _sample(probe, base, proc.pid)}
            samples.append(s)
            print(f"t={s['t']:7.1f}s rss={s['rss_mb']:7.1f} MB fds={s['fds']:4.0f} tasks={s['tasks']:4.0f} "
                  f"requests={sum(counts.values())}", flush=True)
        await load
        # Let in-flight work, the sink writer and the upstream pool's keep-alive (15 s) drain.
        await asyncio.sleep(args.drain_s)
        drained = await _sample(probe, base, proc.pid)
    proc.send_signal(signal.SIGTERM)
    code = await proc.wait()
    await runner.cleanup()
    log.close()
    after = [s for s in samples if s["t"] >= args.warmup_s] or samples
    first, last = after[0], after[-1]
    peak = max(s["rss_mb"] for s in after)
    growth = (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100
    summary = {"minutes": args.minutes, "rps": args.rps, "sessions": args.sessions, "window_s": args.window_s, "requests": sum(counts.values()),
               "rss_mb_at_warmup": round(first["rss_mb"], 1), "rss_mb_end": round(last["rss_mb"], 1),
               "rss_mb_peak_after_warmup": round(peak, 1), "rss_growth_after_warmup_pct": round(growth, 2),
               "fds_baseline": baseline["fds"], "fds_drained": drained["fds"],
               "tasks_baseline": baseline["tasks"], "tasks_drained": drained["tasks"],
               "exit_code": code, "outcomes": dict(sorted(counts.items()))}
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        Path(args.json).write_bytes(orjson.dumps({"summary": summary, "samples": samples}, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rps", type=float, default=150.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--every-s", type=float, default=5.0)
    parser.add_argument("--window-s", type=float, default=60.0,
                        help="loops.window_s and state.reservation_ttl_s (production defaults: 600 and 900)")
    parser.add_argument("--sessions", type=int, default=2000, help="distinct agent sessions in the traffic")
    parser.add_argument("--drain-s", type=float, default=20.0, help="idle time before the final sample")
    parser.add_argument("--json", help="write the summary and samples here")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
